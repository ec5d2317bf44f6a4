"""One pipeline, any executor: the same config on threads and on a Dask cluster gives the same run.

The data is generated here (the repository's sample, and a continuous
variant whose rows never repeat), written as a multi-file Parquet dataset,
so a fresh clone tests the Dask path without ../shared.
"""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from somseg.config import (
    EvaluationConfig,
    ExecutionConfig,
    GateConfig,
    LocalClusterSpec,
    ScoringConfig,
    SegmentationConfig,
)

pytest.importorskip("prefect_dask")
pytestmark = [pytest.mark.flow, pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

LOCAL = ExecutionConfig(mode="local", partition_rows=1_000)
DASK = ExecutionConfig(mode="dask", partition_rows=1_000, local_cluster=LocalClusterSpec(n_workers=2, processes=False))
VOLATILE = {"durations_seconds", "finished_at", "execution"}


def write_dataset(frame: pd.DataFrame, folder: Path, rows_per_file: int = 1_250, row_group: int = 500) -> Path:
    folder.mkdir()
    for index, start in enumerate(range(0, len(frame), rows_per_file)):
        frame.iloc[start : start + rows_per_file].to_parquet(
            folder / f"part-{index:03d}.parquet", index=False, row_group_size=row_group
        )
    return folder


@pytest.fixture(scope="module")
def datasets(sample_table: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("datasets")
    frame = pd.read_csv(sample_table, usecols=["ID", "Age", "Work_Experience", "Family_Size"])
    # Continuous jitter: no row repeats, so every partition trains as a block of its own.
    rng = np.random.default_rng(11)
    jitter = frame.copy()
    for name, high in (("Age", 100.0), ("Work_Experience", 60.0), ("Family_Size", 20.0)):
        jitter[name] = (jitter[name] + rng.uniform(0, 0.99, len(jitter))).clip(upper=high)
    return {
        "repeating": write_dataset(frame.iloc[:4_000], base / "repeating"),
        "continuous": write_dataset(jitter.iloc[:4_000], base / "continuous"),
    }


@pytest.fixture(scope="module")
def config(fast_config: SegmentationConfig) -> SegmentationConfig:
    return fast_config.model_copy(
        update={
            # 16 neurons x 50 rows < 4,000 rows: the epochs sample, keyed by each block's global first row.
            "som": fast_config.som.model_copy(update={"sample_rows_per_neuron": 50}),
            "evaluation": EvaluationConfig(bootstrap_resamples=2, k_max=5, silhouette_sample=1_000),
            "gates": GateConfig(max_quantization_error=2.0, max_topographic_error=1.0),
        }
    )


def _train(dataset: Path, out: Path, work: Path, config: SegmentationConfig, execution: ExecutionConfig):
    from somseg.flows.train import train_segments_flow

    state = train_segments_flow(str(dataset), str(out), config.model_copy(update={"execution": execution}),
                                str(work), return_state=True)
    assert state.is_completed(), state
    return state


@pytest.fixture(scope="module", params=["repeating", "continuous"])
def runs(request: pytest.FixtureRequest, datasets: dict[str, Path], config: SegmentationConfig,
         tmp_path_factory: pytest.TempPathFactory) -> dict:
    from somseg.flows.score import score_segments_flow

    base = tmp_path_factory.mktemp(request.param)
    dataset = datasets[request.param]
    # Separate work folders: the Dask run computes every step itself rather than reading the local run's cache.
    local = _train(dataset, base / "local", base / "work-local", config, LOCAL)
    on_dask = _train(dataset, base / "dask", base / "work-dask", config, DASK)
    scored = score_segments_flow(str(dataset / "*.parquet"), str(base / "dask" / "model"), str(base / "scored"),
                                 ScoringConfig(execution=DASK), str(base / "work-dask"), return_state=True)
    assert scored.is_completed(), scored
    return {"local": base / "local", "dask": base / "dask", "scored": base / "scored", "states": (local, on_dask),
            "kind": request.param}


def metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text(encoding="utf-8"))


def test_the_same_metrics_evaluation_included(runs: dict) -> None:
    local, on_dask = metrics(runs["local"]), metrics(runs["dask"])
    assert (local["execution"], on_dask["execution"]) == ("local", "dask")
    assert {k: v for k, v in on_dask.items() if k not in VOLATILE} == {k: v for k, v in local.items() if k not in VOLATILE}
    assert local["n_partitions"] == 7 and local["n_rows"] == 4_000  # per file: row groups of 500+500, then 250
    assert local["evaluation"]["stability"] is not None and len(local["evaluation"]["k_choice"]["scores"]) == 4


def test_the_same_segments_profiles_and_model(runs: dict) -> None:
    from somseg.model import SegmentationModel

    local, on_dask = runs["local"], runs["dask"]
    assert sorted(p.name for p in (on_dask / "segments.parquet").iterdir()) == [f"part-{i:05d}.parquet" for i in range(7)]
    pd.testing.assert_frame_equal(pd.read_parquet(on_dask / "segments.parquet"), pd.read_parquet(local / "segments.parquet"))
    pd.testing.assert_frame_equal(pd.read_parquet(on_dask / "profiles.parquet"), pd.read_parquet(local / "profiles.parquet"))
    a, b = SegmentationModel.load(local / "model"), SegmentationModel.load(on_dask / "model")
    assert np.array_equal(a.weights, b.weights) and a.labels == b.labels and a.training == b.training


def test_the_same_report_sections(runs: dict) -> None:
    def sections(run: Path) -> list[str]:
        return re.findall(r"<h2>(.*?)</h2>", (run / "report.html").read_text(encoding="utf-8"))

    assert sections(runs["dask"]) == sections(runs["local"])
    assert {"Summary", "Segments", "Metrics against thresholds", "Choice of k", "Stability", "The map"} <= set(
        sections(runs["local"])
    )
    assert sorted(p.name for p in (runs["dask"] / "figures").iterdir()) == sorted(
        p.name for p in (runs["local"] / "figures").iterdir()
    )


def _artifacts(state) -> dict[str, object]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    return {artifact.key: artifact for artifact in found}


def test_the_same_ui_artifacts(runs: dict) -> None:
    local, on_dask = (_artifacts(state) for state in runs["states"])
    assert set(on_dask) == set(local) >= {"training-summary", "som-map", "segment-profiles", "training-data-quality", "som-training"}
    for key in ("som-map", "segment-profiles", "training-data-quality", "som-training"):
        assert on_dask[key].data == local[key].data, key

    def summary(artifact, run: Path) -> str:
        text = artifact.data.replace(str(run), "<out>")
        return re.sub(r"Step timings: .*", "", text)

    assert summary(on_dask["training-summary"], runs["dask"]) == summary(local["training-summary"], runs["local"])


def test_scoring_the_training_data_on_dask_reproduces_training(runs: dict) -> None:
    scored, trained = metrics(runs["scored"]), metrics(runs["dask"])
    sizes = pd.read_parquet(runs["dask"] / "profiles.parquet")["size"].tolist()
    assert [s["count"] for s in scored["segments"]] == sizes
    for name in ("quantization_error", "topographic_error", "outlier_share"):
        assert scored[name] == pytest.approx(trained[name], abs=1e-12), name
    assert scored["segment_psi"] == pytest.approx(0.0, abs=1e-12)
    assert max(scored["feature_psi"].values()) == pytest.approx(0.0, abs=1e-12)
    pd.testing.assert_frame_equal(pd.read_parquet(runs["scored"] / "segments.parquet"),
                                  pd.read_parquet(runs["dask"] / "segments.parquet"))
