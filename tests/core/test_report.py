"""The HTML report: built from a run folder alone, self-contained, escaped."""

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from somseg.assessment import assess_in_memory
from somseg.cleaning import FeatureCleaner
from somseg.config import (
    EvaluationConfig,
    SegmentationConfig,
    SegmentsConfig,
    SomConfig,
)
from somseg.errors import DataError
from somseg.evaluation import evaluate_segmentation
from somseg.model import SegmentationModel
from somseg.plots import FIGURES, load_map_view
from somseg.report import FIGURES_DIR, REPORT_FILE, build_report
from somseg.results import TrainingRecord, dump_json
from somseg.runs import training_metrics
from somseg.segments import cluster_neurons, profile_segments

FEATURES = ["Age", "Work_Experience"]
SOM = SomConfig(engine="minisom", init="random", rows=3, cols=3, sigma=1.0, iterations=200, seed=3)
SEGMENTS = SegmentsConfig(k=3, n_init=3)
EVALUATION = EvaluationConfig(bootstrap_resamples=2, k_min=2, k_max=4)
HOSTILE_LABEL = "Seniors <script>alert(1)</script>"


@pytest.fixture(scope="module")
def tiny() -> dict:
    """Raw table, cleaner, standardised matrix and a trained 3 x 3 map."""
    from somseg.som import build_engine

    rng = np.random.default_rng(0)
    raw = pd.DataFrame({
        "Age": rng.choice([25.0, 45.0, 70.0], 90) + rng.normal(0, 2, 90),
        "Work_Experience": rng.integers(0, 10, 90).astype(float),
    })
    raw.loc[::7, "Work_Experience"] = np.nan
    cleaner = FeatureCleaner(FEATURES).fit(raw)
    X = cleaner.transform(raw)
    weights = build_engine(SOM).fit(X).weights_
    return {"raw": raw, "cleaner": cleaner, "X": X, "weights": weights, "neuron_segment": cluster_neurons(weights, SEGMENTS)}


def _write_run(folder: Path, tiny: dict) -> Path:
    """A run folder with the files 'segment train' writes, from the tiny map."""
    config = SegmentationConfig(
        features=[{"name": f} for f in FEATURES], labels={"rules": []}, som=SOM, segments=SEGMENTS,
        gates={"max_quantization_error": 0.1, "max_topographic_error": 0.5}, evaluation=EVALUATION,
    )
    match, figures, partial = assess_in_memory(tiny["X"], tiny["weights"], tiny["raw"][FEATURES].to_numpy(),
                                               sample=np.arange(len(tiny["X"])))
    segment = tiny["neuron_segment"][match.bmu]
    labels = {0: "Young", 1: HOSTILE_LABEL, 2: "Middle"}
    profiles = profile_segments(figures, tiny["neuron_segment"], FEATURES, 3)
    profiles.insert(1, "label", profiles["segment"].map(labels))
    folder.mkdir()
    record = TrainingRecord(n_rows=len(segment), quantization_error=figures.quantization_error,
                            topographic_error=figures.topographic_error, segment_shares=profiles["share"].tolist(),
                            feature_reference={})
    SegmentationModel(
        id_column="ID", features=list(config.features), cleaner=tiny["cleaner"], weights=tiny["weights"],
        neuron_segment=tiny["neuron_segment"], labels=labels, outlier_threshold=1.0, suite={}, training=record,
    ).save(folder / "model")
    pd.DataFrame({"ID": np.arange(len(segment)), "bmu": match.bmu, "segment": segment}).to_parquet(folder / "segments.parquet")
    profiles.to_parquet(folder / "profiles.parquet")
    evaluation = evaluate_segmentation(partial.sample, tiny["weights"], tiny["neuron_segment"], figures, SOM, SEGMENTS, EVALUATION)
    metrics = training_metrics(figures, config, source="tiny.csv", n_partitions=1, execution="local", evaluation=evaluation)
    (folder / "metrics.json").write_text(dump_json(metrics))
    validation = {
        "success": True, "suite_name": "customers",
        "statistics": {"evaluated_expectations": 1, "successful_expectations": 1},
        "results": [{
            "success": True,
            "expectation_config": {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "ID"}},
            "result": {"element_count": 90, "unexpected_count": 0},
        }],
    }
    (folder / "validation.json").write_text(json.dumps(validation))
    (folder / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    return folder


@pytest.fixture(scope="module")
def template_run(tiny: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_run(tmp_path_factory.mktemp("template") / "run", tiny)


@pytest.fixture
def run_dir(template_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(template_run, tmp_path / "run"))


def _fake_figures(folder: Path) -> Path:
    folder.mkdir()
    for name in FIGURES:
        (folder / f"{name}.png").write_bytes(b"\x89PNG fake " + name.encode())
    return folder


def test_report_is_one_self_contained_escaped_file(run_dir: Path) -> None:
    report = build_report(run_dir)

    html = report.read_text(encoding="utf-8")
    assert report == run_dir.resolve() / REPORT_FILE
    assert sorted(p.stem for p in (run_dir / FIGURES_DIR).glob("*.png")) == sorted(FIGURES)
    assert html.count('src="data:image/png;base64,') == len(FIGURES)
    assert "<script" not in html and "<link" not in html and 'src="http' not in html
    assert "Seniors &lt;script&gt;alert(1)&lt;/script&gt;" in html
    headings = ("Summary", "Segments", "Metrics against thresholds", "Choice of k", "Stability", "The map", "Data quality")
    for heading in (*headings, "Configuration"):
        assert f"<h2>{heading}</h2>" in html
    assert "Recommended k = " in html
    assert "n_init: 3" in html
    # QE (about 0.31) fails its 0.1 gate; TE passes its 0.5 gate.
    assert html.count('<span class="pass">pass</span>') >= 2 and '<span class="fail">FAIL</span>' in html


def test_report_of_an_older_run_without_evaluation_or_validation(run_dir: Path) -> None:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["evaluation"] = None
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    (run_dir / "validation.json").unlink()

    html = build_report(run_dir, _fake_figures(run_dir.parent / "figs")).read_text(encoding="utf-8")

    assert "evaluation was not computed" in html and "validation.json not found" in html
    assert "<h2>Choice of k</h2>" not in html


def test_given_figures_are_embedded_not_redrawn(run_dir: Path) -> None:
    (run_dir / FIGURES_DIR).mkdir()
    (run_dir / FIGURES_DIR / "stale.png").write_bytes(b"old")

    html = build_report(run_dir, _fake_figures(run_dir.parent / "figs")).read_text(encoding="utf-8")

    assert base64.b64encode(b"\x89PNG fake hit_map").decode() in html
    assert not (run_dir / FIGURES_DIR / "stale.png").exists()  # the folder is replaced as a whole


def test_a_folder_that_is_not_a_run_is_refused(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text("{}")

    with pytest.raises(DataError, match="lacks profiles.parquet, segments.parquet, model"):
        build_report(tmp_path)
    with pytest.raises(DataError, match="no such folder"):
        build_report(tmp_path / "missing")


def test_map_view_undoes_the_scaling_and_counts_hits(run_dir: Path, tiny: dict) -> None:
    view = load_map_view(run_dir / "model", run_dir / "segments.parquet", run_dir / "profiles.parquet")

    np.testing.assert_allclose(view.planes, tiny["weights"] * tiny["cleaner"].scale_ + tiny["cleaner"].mean_)
    assert view.hits.sum() == len(tiny["X"]) and view.hits.shape == (9,)
    assert view.feature_names == FEATURES and view.labels[1] == HOSTILE_LABEL


def test_unreadable_metrics_name_the_file(run_dir: Path) -> None:
    (run_dir / "metrics.json").write_text("{not json")

    with pytest.raises(DataError, match=r"metrics.json cannot be read"):
        build_report(run_dir)


def test_the_title_and_the_rebuild_command_name_the_published_folder(run_dir: Path, tmp_path: Path) -> None:
    html = build_report(run_dir, _fake_figures(tmp_path / "figs"), published_as=tmp_path / "runs" / "2026-11").read_text()

    assert "<title>Segmentation report: 2026-11</title>" in html
    assert f"segment report {tmp_path / 'runs' / '2026-11'}" in html
