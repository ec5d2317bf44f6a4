"""Caching, reruns of failed runs, tags and artifacts, read back through the Prefect API.

Every assertion here is about what Prefect recorded: the states of the task
runs of each step (``Cached`` or ``Completed``; a mapped step has one task
run per partition), the flow run's tags, and the artifacts attached to it.
"""

import json
import shutil
import time
from pathlib import Path
from uuid import UUID

import numpy as np
import pandas as pd
import pytest
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterTags
from prefect.client.schemas.sorting import FlowRunSort

import somseg.tasks.artifacts
from somseg.config import ExecutionConfig, GateConfig, SegmentationConfig, SegmentsConfig
from somseg.errors import QualityGateError
from somseg.flows.cli import EXIT_UNEXPECTED, main
from somseg.flows.score import score_segments_flow
from somseg.flows.train import train_segments_flow
from somseg.model import SegmentationModel

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_harness")]

BEFORE_CLUSTERING = (
    "ingest-partition", "validate-partition", "count-duplicates", "combine-validation", "impute-partition",
    "save-cleaning", "pack-training-blocks", "som-epoch", "save-weights", "assess-partition",
)
FROM_CLUSTERING = ("cluster-neurons", "evaluate-run", "label-segments", "build-model", "assign-partition", "draw-figures")
CACHED_TASKS = BEFORE_CLUSTERING + FROM_CLUSTERING


@pytest.fixture(scope="module")
def config(fast_config: SegmentationConfig) -> SegmentationConfig:
    # Partitions of 2,000 rows: the sample is read, checked and learnt in three, every epoch a pass over
    # them (a task per epoch, whatever the default sample size).
    return fast_config.model_copy(update={"execution": ExecutionConfig(partition_rows=2_000),
                                          "som": fast_config.som.model_copy(update={"sample_rows_per_neuron": None})})


@pytest.fixture(scope="module")
def three_segments(config: SegmentationConfig) -> SegmentationConfig:
    return config.model_copy(update={"segments": SegmentsConfig(k=3)})


def _task_states(flow_run_id: UUID, expected: tuple[str, ...] = (), timeout: float = 30) -> dict[str, str]:
    """Step name -> the state of its task runs ('Cached', 'Completed', ...), for one flow run.

    The API records task-run states from events, a moment after the flow
    returns, so wait until the ``expected`` steps are there and every task
    run is in a final state. A step whose task runs ended differently maps
    to their states joined by '+'.
    """
    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        settled = all(run.state is not None and run.state.is_final() for run in runs)
        seen: dict[str, set[str]] = {}
        for run in runs:
            if run.state is not None:
                seen.setdefault(run.name.rsplit("-", 1)[0], set()).add(run.state.name)
        if (settled and set(expected) <= set(seen)) or time.monotonic() > deadline:
            return {name: "+".join(sorted(states)) for name, states in seen.items()}
        time.sleep(0.2)


def _train(table: Path, out: Path, work: Path, config: SegmentationConfig):
    """Run the training flow; its final state (the flow run id is in its details)."""
    return train_segments_flow(str(table), str(out), config=config, work_dir=str(work), return_state=True)


def _artifacts(flow_run_id: UUID) -> dict[str, object]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {artifact.key: artifact for artifact in found}


@pytest.fixture(scope="module")
def first_run(sample_table: Path, tmp_path_factory: pytest.TempPathFactory, config: SegmentationConfig) -> dict:
    base = tmp_path_factory.mktemp("cache")
    state = _train(sample_table, base / "run", base / "work", config)
    assert state.is_completed(), state
    return {"base": base, "flow_run_id": state.state_details.flow_run_id}


def test_a_fresh_run_computes_every_step(first_run: dict) -> None:
    states = _task_states(first_run["flow_run_id"], CACHED_TASKS)

    assert {name: states[name] for name in CACHED_TASKS} == {name: "Completed" for name in CACHED_TASKS}


def test_changing_k_recomputes_clustering_and_after_only(
    first_run: dict, sample_table: Path, three_segments: SegmentationConfig
) -> None:
    base = first_run["base"]

    state = _train(sample_table, base / "run", base / "work", three_segments)

    assert state.is_completed(), state
    states = _task_states(state.state_details.flow_run_id, CACHED_TASKS + ("publish-run",))
    assert {name: states[name] for name in BEFORE_CLUSTERING} == {name: "Cached" for name in BEFORE_CLUSTERING}
    assert {name: states[name] for name in FROM_CLUSTERING} == {name: "Completed" for name in FROM_CLUSTERING}
    # Never cached: the gates are re-judged and the run folder rewritten every time.
    assert states["enforce-quality-gates"] == states["publish-run"] == states["plan-input"] == "Completed"


def test_the_same_run_again_is_served_from_the_cache(
    first_run: dict, sample_table: Path, config: SegmentationConfig
) -> None:
    base = first_run["base"]

    state = _train(sample_table, base / "run", base / "work", config)

    states = _task_states(state.state_details.flow_run_id, CACHED_TASKS + ("publish-run",))
    assert {name: states[name] for name in CACHED_TASKS} == {name: "Cached" for name in CACHED_TASKS}
    assert states["publish-run"] == "Completed"


def test_rerun_after_a_failed_gate_skips_the_steps_that_had_completed(
    sample_table: Path, tmp_path: Path, three_segments: SegmentationConfig
) -> None:
    strict = three_segments.model_copy(update={"gates": GateConfig(max_quantization_error=0.01)})

    failed = _train(sample_table, tmp_path / "run", tmp_path / "work", strict)

    assert failed.is_failed()
    with pytest.raises(QualityGateError):
        failed.result()
    first = _task_states(failed.state_details.flow_run_id, BEFORE_CLUSTERING + ("enforce-quality-gates",))
    assert first["enforce-quality-gates"] == "Failed"
    assert not set(FROM_CLUSTERING) & set(first), "nothing after the gate may run"

    fixed = _train(sample_table, tmp_path / "run", tmp_path / "work", three_segments)

    assert fixed.is_completed(), fixed
    second = _task_states(fixed.state_details.flow_run_id, CACHED_TASKS)
    assert {name: second[name] for name in BEFORE_CLUSTERING} == {name: "Cached" for name in BEFORE_CLUSTERING}
    assert {name: second[name] for name in FROM_CLUSTERING} == {name: "Completed" for name in FROM_CLUSTERING}
    summaries = [_artifacts(run.state_details.flow_run_id)["training-summary"].data for run in (failed, fixed)]
    assert summaries[0].startswith("# Training run FAILED (QualityGateError)")
    assert "| quantization error | 0." in summaries[0] and "| <= 0.01 | **FAIL** |" in summaries[0]
    assert "gates.max_quantization_error" in summaries[0] and "last_failure" in summaries[0]
    assert summaries[1].startswith("# Training run PASSED")


def test_same_cli_command_after_a_late_crash_redoes_only_the_rest(
    sample_table: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: SegmentationConfig
) -> None:
    table = Path(shutil.copyfile(sample_table, tmp_path / "crash-demo.csv"))
    (tmp_path / "config.yaml").write_text(json.dumps(config.model_dump(mode="json")), encoding="utf-8")
    command = ["train", str(table), "--config", str(tmp_path / "config.yaml"), "--out", str(tmp_path / "run"),
               "--work-dir", str(tmp_path / "work")]
    real_assign = SegmentationModel.assign

    def crash(*args, **kwargs):
        raise RuntimeError("worker lost its disk")

    monkeypatch.setattr(SegmentationModel, "assign", crash)
    assert main(command) == EXIT_UNEXPECTED
    monkeypatch.setattr(SegmentationModel, "assign", real_assign)
    assert main(command) == 0

    crashed, rerun = _runs_tagged("dataset:crash-demo")
    assert crashed.state.name == "Failed" and rerun.state.name == "Completed"
    assert {"somseg", "train-segments", "dataset:crash-demo"} <= set(rerun.tags)
    first, second = _task_states(crashed.id, ("assign-partition",)), _task_states(rerun.id, CACHED_TASKS)
    assert first["assign-partition"] == "Failed"
    before_crash = BEFORE_CLUSTERING + ("cluster-neurons", "label-segments", "build-model")
    assert {name: second[name] for name in before_crash} == {name: "Cached" for name in before_crash}
    assert second["assign-partition"] == "Completed"
    assert (tmp_path / "run" / "segments.parquet").is_dir()


def _runs_tagged(tag: str) -> list:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[tag])), sort=FlowRunSort.START_TIME_ASC
        )


def test_a_training_run_publishes_its_monitoring_artifacts(first_run: dict) -> None:
    artifacts = _artifacts(first_run["flow_run_id"])

    assert {"training-summary", "som-map", "segment-profiles", "training-data-quality", "som-training",
            "training-report"} <= set(artifacts)
    assert (first_run["base"] / "run" / "report.html").resolve().as_uri() in artifacts["training-report"].data
    summary = artifacts["training-summary"].data
    assert "**Segments:** k = " in summary and "recommended k = " in summary and "Silhouette 0." in summary
    assert "| data quality | 13 of 13 expectations met | all | pass |" in summary
    assert "| quantization error | 0." in summary and "| <= 0.5 | pass |" in summary
    assert str(first_run["base"] / "run") in summary
    picture = artifacts["som-map"].data
    assert picture.count("](data:image/png;base64,iVBORw0KGgo") == 2  # U-matrix and hit map, as PNGs
    assert artifacts["som-training"].type == "progress" and artifacts["som-training"].data == 100.0
    profiles = _table_rows(artifacts["segment-profiles"])
    assert sum(row["size"] for row in profiles) == 5000
    quality = _table_rows(artifacts["training-data-quality"])
    assert len(quality) == 13 and all(row["success"] for row in quality)


def _table_rows(artifact) -> list[dict]:
    return json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data


def test_a_scoring_run_publishes_its_drift_summary(first_run: dict, sample_table: Path, tmp_path: Path) -> None:
    base = first_run["base"]

    state = score_segments_flow(str(sample_table), str(base / "run" / "model"), str(tmp_path / "scored"),
                                work_dir=str(base / "work"), return_state=True)

    assert state.is_completed(), state
    drift = _artifacts(state.state_details.flow_run_id)["drift-summary"].data
    assert drift.startswith("# Drift: no drift beyond the limits")
    assert "| segment mix PSI | 0.000 | 0.25 |" in drift


def test_som_training_progress_moves_epoch_by_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: SegmentationConfig
) -> None:
    seen: list[float] = []
    real_update = somseg.tasks.artifacts.update_progress_artifact

    def record(artifact_id, progress):
        seen.append(progress)
        return real_update(artifact_id, progress)

    monkeypatch.setattr(somseg.tasks.artifacts, "update_progress_artifact", record)
    # Continuous rows do not repeat: each partition stays a training block, and every epoch is a pass over them.
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(40, 10, size=(3_000, 3)), columns=["Age", "Work_Experience", "Family_Size"])
    frame.insert(0, "ID", np.arange(3_000))
    frame = frame.clip(lower=[0, 18, 0, 1], upper=[None, 100, 60, 20], axis=1)
    frame.to_csv(tmp_path / "continuous.csv", index=False)
    relaxed = config.model_copy(update={"gates": GateConfig(max_quantization_error=5, max_topographic_error=1),
                                        "execution": ExecutionConfig(partition_rows=1_000)})

    state = _train(tmp_path / "continuous.csv", tmp_path / "run", tmp_path / "work", relaxed)

    assert state.is_completed(), state
    assert seen == [20.0, 40.0, 60.0, 80.0, 100.0]
    states = _task_states(state.state_details.flow_run_id, ("som-epoch",))
    assert states["som-epoch"] == "Completed" and "train-batch-som" not in states

    # Sampled epochs (16 neurons x 20 rows < 3,000): their rows are gathered in one pass, and the epochs
    # run on them in the flow, with the same progress.
    seen.clear()
    sampling = relaxed.model_copy(update={"som": relaxed.som.model_copy(update={"sample_rows_per_neuron": 20})})
    state = _train(tmp_path / "continuous.csv", tmp_path / "sampled", tmp_path / "work", sampling)

    assert state.is_completed(), state
    assert seen == [20.0, 40.0, 60.0, 80.0, 100.0]
    states = _task_states(state.state_details.flow_run_id, ("gather-epoch-samples",))
    assert states["gather-epoch-samples"] == "Completed" and "som-epoch" not in states


def test_failed_expectations_show_in_the_data_quality_table_and_summary(
    sample_table: Path, tmp_path: Path, config: SegmentationConfig
) -> None:
    frame = pd.read_csv(sample_table)
    frame.loc[4_993:, "ID"] = frame.loc[:6, "ID"].to_numpy()  # the last partition repeats the first one's IDs
    frame.to_csv(tmp_path / "duplicates.csv", index=False)

    state = _train(tmp_path / "duplicates.csv", tmp_path / "run", tmp_path / "work", config)

    assert state.is_failed()
    artifacts = _artifacts(state.state_details.flow_run_id)
    failed = [row for row in _table_rows(artifacts["training-data-quality"]) if not row["success"]]
    assert [(row["expectation"], row["column"], row["unexpected_count"]) for row in failed] == [
        ("expect_column_values_to_be_unique", "ID", 14)
    ]
    summary = artifacts["training-summary"].data
    assert summary.startswith("# Training run FAILED (DataQualityError)")
    assert "| data quality | 12 of 13 expectations met | all | **FAIL** |" in summary
    assert "| quantization error | not measured |" in summary
    assert "som-map" not in artifacts, "nothing is trained after failed expectations"
