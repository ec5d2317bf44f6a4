"""The Dask flows on a local cluster of 2 threaded workers, against the local flows on the same data."""

import json
from pathlib import Path

import pandas as pd
import pytest

from somseg.config import (
    EvaluationConfig,
    ExecutionConfig,
    LocalClusterSpec,
    ScoringConfig,
    SegmentationConfig,
    SomConfig,
)
from somseg.io import read_table

pytest.importorskip("prefect_dask")
pytestmark = pytest.mark.flow

# Epoch sums are added in another order than the local engine's, so figures
# agree to rounding only; 1e-9 leaves ample room above the ~1e-15 observed.
TOLERANCE = 1e-9
EXECUTION = ExecutionConfig(
    mode="dask", local_cluster=LocalClusterSpec(n_workers=2, processes=False), partition_rows=2_500
)
# The local flow's bootstrap evaluation has no Dask counterpart yet; off, it only costs time here.
CONFIG = SegmentationConfig(
    som=SomConfig(engine="batch", init="pca"), evaluation=EvaluationConfig(bootstrap_resamples=0)
)


def write_dataset(table: Path, folder: Path, rows_per_file: int = 2_500) -> Path:
    frame = read_table(table, "ID", CONFIG.feature_names)
    folder.mkdir()
    for index, start in enumerate(range(0, len(frame), rows_per_file)):
        frame.iloc[start : start + rows_per_file].to_parquet(
            folder / f"part-{index:03d}.parquet", index=False, row_group_size=500
        )
    return folder


@pytest.fixture(scope="module")
def runs(prefect_harness: None, reference_table: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from flows.score_dask import run_score_dask
    from flows.train import train_segments_flow
    from flows.train_dask import run_train_dask

    base = tmp_path_factory.mktemp("dask-flows")
    dataset = write_dataset(reference_table, base / "dataset")
    local = Path(
        train_segments_flow(str(reference_table), str(base / "local"), config=CONFIG, work_dir=str(base / "work"))
    )
    on_dask = Path(run_train_dask(str(dataset), str(base / "dask"), CONFIG, EXECUTION, str(base / "work")))
    scored = Path(
        run_score_dask(
            str(dataset / "*.parquet"),
            str(on_dask / "model"),
            str(base / "scored"),
            ScoringConfig(),
            EXECUTION,
            str(base / "work"),
        )
    )
    return {"local": local, "dask": on_dask, "scored": scored}


def metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text(encoding="utf-8"))


def test_training_figures_match_the_local_batch_engine(runs: dict[str, Path]) -> None:
    local, on_dask = metrics(runs["local"]), metrics(runs["dask"])
    for name in (
        "quantization_error",
        "topographic_error",
        "topographic_error_4",
        "outlier_threshold",
        "outlier_share",
    ):
        assert on_dask[name] == pytest.approx(local[name], abs=TOLERANCE), name
    assert on_dask["n_rows"] == local["n_rows"] == 8068


def test_segment_sizes_and_labels_are_identical(runs: dict[str, Path]) -> None:
    local = pd.read_parquet(runs["local"] / "profiles.parquet")
    on_dask = pd.read_parquet(runs["dask"] / "profiles.parquet")
    assert on_dask[["segment", "label", "size"]].equals(local[["segment", "label", "size"]])
    pd.testing.assert_frame_equal(on_dask, local, rtol=1e-12)


def test_segments_dataset_has_the_local_schema_and_rows(runs: dict[str, Path]) -> None:
    local = pd.read_parquet(runs["local"] / "segments.parquet")
    on_dask = pd.read_parquet(runs["dask"] / "segments.parquet")  # a folder of part files
    assert len(list((runs["dask"] / "segments.parquet").glob("part-*.parquet"))) > 1
    assert list(on_dask.columns) == list(local.columns)
    assert on_dask.dtypes.astype(str).tolist() == local.dtypes.astype(str).tolist()
    pd.testing.assert_frame_equal(on_dask.drop(columns="quantization_error"), local.drop(columns="quantization_error"))
    assert (on_dask["quantization_error"] - local["quantization_error"]).abs().max() < TOLERANCE


def test_model_bundle_matches(runs: dict[str, Path]) -> None:
    from somseg.model import SegmentationModel

    local, on_dask = SegmentationModel.load(runs["local"] / "model"), SegmentationModel.load(runs["dask"] / "model")
    assert on_dask.labels == local.labels
    assert (on_dask.neuron_segment == local.neuron_segment).all()
    assert on_dask.training["feature_reference"] == local.training["feature_reference"]
    assert on_dask.cleaner.medians_.tolist() == local.cleaner.medians_.tolist()


def test_validation_is_combined_over_partitions(runs: dict[str, Path]) -> None:
    report = json.loads((runs["dask"] / "validation.json").read_text(encoding="utf-8"))
    assert report["success"] and report["meta"]["partitions"] == 4  # one per file of 2,500 rows
    row_count = next(
        r for r in report["results"] if r["expectation_config"]["type"] == "expect_table_row_count_to_be_between"
    )
    assert row_count["result"]["observed_value"] == 8068


def test_scoring_the_training_data_on_dask_reproduces_training(runs: dict[str, Path]) -> None:
    scored, trained = metrics(runs["scored"]), metrics(runs["dask"])
    sizes = pd.read_parquet(runs["dask"] / "profiles.parquet")["size"].tolist()
    assert [s["count"] for s in scored["segments"]] == sizes
    for name in ("quantization_error", "topographic_error", "outlier_share"):
        assert scored[name] == pytest.approx(trained[name], abs=TOLERANCE), name
    # The training data against its own reference: no drift at all.
    assert scored["segment_psi"] == pytest.approx(0.0, abs=1e-12)
    assert max(scored["feature_psi"].values()) == pytest.approx(0.0, abs=1e-12)
    rows = pd.read_parquet(runs["scored"] / "segments.parquet")
    assert rows.equals(pd.read_parquet(runs["dask"] / "segments.parquet"))


def test_partition_results_combine_into_the_whole_tables_verdict() -> None:
    from tasks.distributed import combine_reports
    from tasks.expectations import EXPECTATIONS_DIR, load_suite, run_suite

    suite = load_suite(EXPECTATIONS_DIR / "customers.json")
    first = pd.DataFrame(
        {"ID": range(100), "Age": 30.0, "Work_Experience": [None] * 30 + [1.0] * 70, "Family_Size": 2.0}
    )
    second = pd.DataFrame({"ID": range(99, 199), "Age": 40.0, "Work_Experience": 2.0, "Family_Size": 3.0})
    reports = [run_suite(first, suite), run_suite(second, suite)]
    assert not reports[0]["success"]  # 30 % missing in the first partition alone
    combined = combine_reports(reports, {"ID": (2, [99])}, n_rows=200)
    by_type = {
        (r["expectation_config"]["type"], r["expectation_config"]["kwargs"].get("column")): r
        for r in combined["results"]
    }
    not_null = by_type[("expect_column_values_to_not_be_null", "Work_Experience")]
    assert not_null["success"] and not_null["result"]["unexpected_count"] == 30  # 15 % over the whole table
    unique = by_type[("expect_column_values_to_be_unique", "ID")]
    assert not unique["success"] and unique["result"]["unexpected_count"] == 2
    assert unique["result"]["partial_unexpected_list"] == [99]
    assert by_type[("expect_table_row_count_to_be_between", None)]["result"]["observed_value"] == 200
    assert combined["statistics"]["unsuccessful_expectations"] == 1 and not combined["success"]


def test_an_aggregate_expectation_is_refused_rather_than_guessed() -> None:
    from tasks.distributed import combine_reports

    result = {
        "expectation_config": {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "Age"}},
        "success": True,
        "result": {"observed_value": 40.0},
    }
    with pytest.raises(ValueError, match="cannot be combined"):
        combine_reports([{"results": [result]}, {"results": [result]}], {}, n_rows=10)
