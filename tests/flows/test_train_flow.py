"""The training flow end to end, under the Prefect test harness."""

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from somseg.config import GateConfig, SegmentationConfig
from somseg.errors import DataQualityError, QualityGateError
from somseg.flows.cli import main
from somseg.flows.train import train_segments_flow

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_harness")]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _with_bad_ages(sample_table: Path, tmp_path: Path, n_bad: int = 7) -> Path:
    frame = pd.read_csv(sample_table)
    frame.loc[: n_bad - 1, "Age"] = 150
    bad = tmp_path / "bad_ages.csv"
    frame.to_csv(bad, index=False)
    return bad


def test_sample_run_writes_every_output(sample_table: Path, tmp_path: Path, fast_config: SegmentationConfig) -> None:
    out = Path(train_segments_flow(str(sample_table), str(tmp_path / "run"), fast_config, str(tmp_path / "work")))

    segments = pd.read_parquet(out / "segments.parquet")
    assert len(segments) == len(pd.read_csv(sample_table))
    assert list(segments.columns) == ["ID", "bmu", "segment", "segment_label", "quantization_error", "is_outlier"]
    assert segments["segment_label"].nunique() == 4
    assert 0.03 < segments["is_outlier"].mean() < 0.07
    profiles = pd.read_parquet(out / "profiles.parquet")
    assert profiles["size"].sum() == len(segments)
    for name in ("metrics.json", "validation.json", "config.yaml", "report.html", "model/model.json", "model/weights.npy"):
        assert (out / name).is_file(), name
    assert not (out / "last_failure").exists()
    assert not list(tmp_path.glob(".run.*")), "staging folders must not be left behind"


def test_failed_expectation_stops_before_training(sample_table: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(DataQualityError) as failure:
        train_segments_flow(str(_with_bad_ages(sample_table, tmp_path)), str(out), work_dir=str(tmp_path / "work"))

    message = str(failure.value)
    assert "expect_column_values_to_be_between on column 'Age'" in message
    assert "7 unexpected row(s)" in message
    assert "150" in message
    assert (out / "last_failure" / "validation.json").is_file()
    assert not (out / "segments.parquet").exists()
    assert not (tmp_path / "work" / "artifacts" / "impute-partition").exists(), "nothing is learnt"


def test_failed_gate_keeps_metrics_and_the_last_good_run(
    sample_table: Path, tmp_path: Path, fast_config: SegmentationConfig
) -> None:
    out, work = tmp_path / "run", str(tmp_path / "work")
    train_segments_flow(str(sample_table), str(out), fast_config, work)
    good = _digest(out / "segments.parquet")
    strict = fast_config.model_copy(update={"gates": GateConfig(max_quantization_error=0.01)})

    with pytest.raises(QualityGateError) as failure:
        train_segments_flow(str(sample_table), str(out), config=strict, work_dir=work)

    assert "quantization error 0." in str(failure.value) and "> max 0.01" in str(failure.value)
    assert _digest(out / "segments.parquet") == good
    failed_metrics = (out / "last_failure" / "metrics.json").read_text()
    assert '"max_quantization_error": 0.01' in failed_metrics


def test_cli_exits_non_zero_with_a_plain_message(
    sample_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["train", str(_with_bad_ages(sample_table, tmp_path)), "--out", str(tmp_path / "run"),
                 "--work-dir", str(tmp_path / "work")])

    err = capsys.readouterr().err
    assert code == DataQualityError.exit_code
    assert "data quality check failed" in err and "Traceback" not in err


def test_cli_rejects_missing_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "run")])

    assert code != 0
    assert "nope.csv does not exist" in capsys.readouterr().err
    assert not (tmp_path / "run" / "segments.parquet").exists()
