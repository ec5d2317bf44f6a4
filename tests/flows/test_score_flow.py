"""The scoring flow: a saved model segments new customers without retraining."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from somseg.config import (
    DriftGateConfig,
    ExecutionConfig,
    ScoringConfig,
    ScoringQualityConfig,
    SegmentationConfig,
)
from somseg.errors import DataError, DriftError, ModelBundleError
from somseg.flows.cli import main
from somseg.flows.score import score_segments_flow
from somseg.flows.train import train_segments_flow
from somseg.model import SegmentationModel

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_harness")]


@pytest.fixture(scope="module")
def split_run(
    sample_table: Path, tmp_path_factory: pytest.TempPathFactory, fast_config: SegmentationConfig
) -> dict[str, Path]:
    """Train on the first 3,000 sample rows; the rest, with shifted experience, is new data."""
    base = tmp_path_factory.mktemp("split")
    frame = pd.read_csv(sample_table)
    train, new = frame.iloc[:3000], frame.iloc[3000:].copy()
    # Shifted so that the new data's own median differs from the training one.
    new["Work_Experience"] = (new["Work_Experience"] + 6).clip(upper=60)
    train.to_csv(base / "train.csv", index=False)
    new.to_csv(base / "new.csv", index=False)
    run = Path(train_segments_flow(str(base / "train.csv"), str(base / "run"), fast_config, str(base / "work")))
    return {"base": base, "model": run / "model", "new": base / "new.csv", "work": base / "work"}


def test_scoring_the_training_table_gives_the_training_segments(reference_run: Path, reference_table: Path, tmp_path: Path) -> None:
    out = Path(score_segments_flow(str(reference_table), str(reference_run / "model"), str(tmp_path / "scored"),
                                   work_dir=str(tmp_path / "work")))

    trained = pd.read_parquet(reference_run / "segments.parquet")
    scored = pd.read_parquet(out / "segments.parquet")
    pd.testing.assert_frame_equal(scored, trained)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["quantization_error"] == pytest.approx(0.40081, abs=0.001)
    assert metrics["topographic_error"] == pytest.approx(0.05156, abs=0.002)
    assert metrics["segment_psi"] == pytest.approx(0.0, abs=1e-12)


def test_new_rows_are_imputed_with_the_training_medians(split_run: dict[str, Path], tmp_path: Path) -> None:
    out = Path(score_segments_flow(str(split_run["new"]), str(split_run["model"]), str(tmp_path / "scored"),
                                   config=ScoringConfig(execution=ExecutionConfig(partition_rows=1_000)),
                                   work_dir=str(split_run["work"])))

    model = SegmentationModel.load(split_run["model"])
    assert json.loads((out / "metrics.json").read_text())["n_partitions"] == 2
    assert sorted(p.name for p in (out / "segments.parquet").iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    new = pd.read_csv(split_run["new"])
    row = new[new["Work_Experience"].isna()].iloc[0]
    training_median = model.cleaner.medians_[1]
    assert training_median != new["Work_Experience"].median()
    imputed = np.array([row["Age"], training_median, row["Family_Size"]])
    standardised = (imputed - model.cleaner.mean_) / model.cleaner.scale_
    expected_bmu = np.linalg.norm(model.weights.reshape(-1, 3) - standardised, axis=1).argmin()
    scored = pd.read_parquet(out / "segments.parquet").set_index("ID")
    assert scored.loc[row["ID"], "bmu"] == expected_bmu
    assert scored.loc[row["ID"], "segment_label"] == model.labels[int(model.neuron_segment[expected_bmu])]


def test_metrics_compare_segment_shares_with_training(split_run: dict[str, Path], tmp_path: Path) -> None:
    out = Path(score_segments_flow(str(split_run["new"]), str(split_run["model"]), str(tmp_path / "scored"),
                                   work_dir=str(split_run["work"])))

    metrics = json.loads((out / "metrics.json").read_text())
    assert {"quantization_error", "topographic_error", "outlier_share", "segment_psi", "feature_psi"} <= set(metrics)
    assert sum(s["share"] for s in metrics["segments"]) == pytest.approx(1.0)
    assert sum(s["training_share"] for s in metrics["segments"]) == pytest.approx(1.0)
    assert metrics["feature_psi"]["Work_Experience"] > metrics["feature_psi"]["Age"]


def test_drift_gate_names_the_drifted_feature(split_run: dict[str, Path], tmp_path: Path) -> None:
    older = pd.read_csv(split_run["new"])
    older["Age"] = (older["Age"] + 30).clip(upper=100)
    older.to_csv(tmp_path / "older.csv", index=False)
    failing = ScoringConfig(drift=DriftGateConfig(action="fail"))

    with pytest.raises(DriftError) as failure:
        score_segments_flow(str(tmp_path / "older.csv"), str(split_run["model"]), str(tmp_path / "scored"),
                            config=failing, work_dir=str(split_run["work"]))

    assert "feature Age PSI" in str(failure.value)
    assert not (tmp_path / "scored" / "segments.parquet").exists()
    assert json.loads((tmp_path / "scored" / "last_failure" / "metrics.json").read_text())["feature_psi"]["Age"] > 0.25


def test_drift_warning_does_not_fail_the_run(split_run: dict[str, Path], tmp_path: Path) -> None:
    older = pd.read_csv(split_run["new"])
    older["Age"] = (older["Age"] + 30).clip(upper=100)
    older.to_csv(tmp_path / "older.csv", index=False)

    out = Path(score_segments_flow(str(tmp_path / "older.csv"), str(split_run["model"]), str(tmp_path / "scored"),
                                   work_dir=str(split_run["work"])))

    warnings = json.loads((out / "metrics.json").read_text())["drift_warnings"]
    assert any(w.startswith("feature Age PSI") for w in warnings)


def test_twenty_customers_are_scored_and_their_drift_is_not_judged(split_run: dict[str, Path], tmp_path: Path) -> None:
    # The training suite asks for at least 100 rows: a fact about the training table, not about a batch to score.
    pd.read_csv(split_run["new"]).head(20).to_csv(tmp_path / "few.csv", index=False)

    out = Path(score_segments_flow(str(tmp_path / "few.csv"), str(split_run["model"]), str(tmp_path / "scored"),
                                   work_dir=str(split_run["work"])))

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_rows"] == 20 and len(pd.read_parquet(out / "segments.parquet")) == 20
    assert metrics["drift"]["judged"] is False and metrics["drift_warnings"] == []
    assert metrics["drift"]["note"].startswith("too few rows to judge drift: 20 scored, drift.min_rows is 30")
    assert {check["name"] for check in metrics["drift"]["checks"]} >= {"outlier share", "segment mix PSI"}


def test_dropped_rows_are_not_scored_and_are_listed(split_run: dict[str, Path], tmp_path: Path) -> None:
    new = pd.read_csv(split_run["new"]).astype({"Family_Size": object})
    new.loc[new.index[:3], "Age"] = 10
    new.loc[new.index[3:5], "Family_Size"] = "many"
    new.to_csv(tmp_path / "invalid.csv", index=False)
    dropping = ScoringConfig(quality=ScoringQualityConfig(invalid_rows="drop"))

    out = Path(score_segments_flow(str(tmp_path / "invalid.csv"), str(split_run["model"]), str(tmp_path / "scored"),
                                   config=dropping, work_dir=str(split_run["work"])))

    rejected = pd.read_parquet(out / "rejected.parquet")
    assert rejected[["column", "value", "reason"]].values.tolist() == [
        ["Age", "10", "below min 18"]] * 3 + [["Family_Size", "many", "not a number"]] * 2
    assert rejected["id"].tolist() == new["ID"][:5].tolist()
    scored = pd.read_parquet(out / "segments.parquet")
    assert scored["ID"].tolist() == new["ID"][5:].tolist()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_rows"] == len(new) - 5
    assert metrics["invalid_rows"]["policy"] == "drop" and metrics["invalid_rows"]["rejected_rows"] == 5
    assert metrics["invalid_rows"]["by_column"] == {"Age": 3, "Family_Size": 2}


def test_invalid_rows_fail_scoring_as_the_model_was_trained(split_run: dict[str, Path], tmp_path: Path) -> None:
    new = pd.read_csv(split_run["new"])
    new.loc[new.index[:3], "Age"] = 10
    new.to_csv(tmp_path / "invalid.csv", index=False)

    with pytest.raises(DataError, match=r"column 'Age': 3 row\(s\) \(3 below min 18\)"):
        score_segments_flow(str(tmp_path / "invalid.csv"), str(split_run["model"]), str(tmp_path / "scored"),
                            work_dir=str(split_run["work"]))
    assert not (tmp_path / "scored" / "segments.parquet").exists()


def _score_cli(table: Path, model: Path, out: Path, work: Path) -> int:
    return main(["score", str(table), "--model", str(model), "--out", str(out), "--work-dir", str(work)])


def test_missing_feature_column_is_a_clear_error(split_run: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pd.read_csv(split_run["new"]).drop(columns=["Family_Size"]).to_csv(tmp_path / "partial.csv", index=False)

    code = _score_cli(tmp_path / "partial.csv", split_run["model"], tmp_path / "scored", split_run["work"])

    err = capsys.readouterr().err
    assert code == DataError.exit_code
    assert "lacks column(s) Family_Size" in err and "Traceback" not in err
    assert not (tmp_path / "scored").exists()


def _copy_bundle(model: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(model, tmp_path / "model"))


def test_corrupted_bundle_is_refused(split_run: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = _copy_bundle(split_run["model"], tmp_path)
    weights = bytearray((bundle / "weights.npy").read_bytes())
    weights[-1] ^= 0xFF
    (bundle / "weights.npy").write_bytes(bytes(weights))

    code = _score_cli(split_run["new"], bundle, tmp_path / "scored", split_run["work"])

    assert code == ModelBundleError.exit_code
    assert "checksum of weights.npy does not match" in capsys.readouterr().err
    assert not (tmp_path / "scored").exists()


def test_bundle_of_another_format_version_is_refused(split_run: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = _copy_bundle(split_run["model"], tmp_path)
    manifest = json.loads((bundle / "MANIFEST.json").read_text())
    (bundle / "MANIFEST.json").write_text(json.dumps({**manifest, "format_version": 99}))

    code = _score_cli(split_run["new"], bundle, tmp_path / "scored", split_run["work"])

    assert code == ModelBundleError.exit_code
    assert "format version 99" in capsys.readouterr().err
    assert not (tmp_path / "scored").exists()


def test_scoring_keeps_its_own_copy_of_the_verified_bundle(split_run: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    bundle = Path(shutil.copytree(split_run["model"], tmp_path / "model"))
    first = Path(score_segments_flow(str(split_run["new"]), str(bundle), str(tmp_path / "a"), work_dir=str(split_run["work"])))
    shutil.rmtree(bundle)
    shutil.copytree(split_run["model"], tmp_path / "elsewhere")

    second = Path(score_segments_flow(str(split_run["new"]), str(tmp_path / "elsewhere"), str(tmp_path / "b"),
                                      work_dir=str(split_run["work"])))

    pd.testing.assert_frame_equal(pd.read_parquet(second / "segments.parquet"), pd.read_parquet(first / "segments.parquet"))
    assert json.loads((second / "metrics.json").read_text())["model"] == str((tmp_path / "elsewhere").resolve())


def _digests(folder: Path) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def test_scoring_into_the_training_run_is_refused_and_deletes_nothing(
    split_run: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    run = split_run["model"].parent
    before = _digests(run)

    code = _score_cli(split_run["new"], split_run["model"], run, split_run["work"])

    err = capsys.readouterr().err
    assert code == DataError.exit_code and "contains the model" in err and "choose another output folder" in err
    assert _digests(run) == before, "the training run, its model included, is untouched"


def test_training_into_the_folder_that_holds_its_input_is_refused(tmp_path: Path, sample_table: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    table = folder / "customers.csv"
    table.write_bytes(sample_table.read_bytes())

    code = main(["train", str(table), "--out", str(folder), "--work-dir", str(tmp_path / "work")])

    assert code == DataError.exit_code and "contains the input file" in capsys.readouterr().err
    assert table.read_bytes() == sample_table.read_bytes()
