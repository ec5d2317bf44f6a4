"""Ingest, validate, clean and gate tasks through .fn()."""

from pathlib import Path

import pandas as pd
import pytest
from prefect.logging import disable_run_logger

from somseg.config import GateConfig, SegmentationConfig
from somseg.errors import DataError, DataQualityError, QualityGateError
from somseg.io import read_frame
from tasks.expectations import resolve_suite
from tasks.ingest import ingest_table
from tasks.preprocess import clean_features
from tasks.quality import enforce_expectations, validate_table
from tasks.som import MapAssessment, enforce_gates

CONFIG = SegmentationConfig()


def _ingest(source: Path, work: Path) -> Path:
    with disable_run_logger():
        return ingest_table.fn(source, CONFIG.id_column, CONFIG.feature_names, str(work))


def test_ingest_keeps_only_the_id_and_features(sample_table: Path, tmp_path: Path) -> None:
    table = read_frame(_ingest(sample_table, tmp_path))

    assert list(table.columns) == ["ID", "Age", "Work_Experience", "Family_Size"]
    assert table["ID"].dtype == "int64"
    assert len(table) == len(pd.read_csv(sample_table))


def test_ingest_reads_semicolon_csv_with_bom(sample_table: Path, tmp_path: Path) -> None:
    source = tmp_path / "excel-export.csv"
    pd.read_csv(sample_table).to_csv(source, sep=";", index=False, encoding="utf-8-sig")

    table = read_frame(_ingest(source, tmp_path / "work"))

    expected = read_frame(_ingest(sample_table, tmp_path / "work2"))
    pd.testing.assert_frame_equal(table, expected)


def test_validation_passes_the_sample_and_reports_failures(sample_table: Path, tmp_path: Path) -> None:
    suite = resolve_suite("customers")
    frame = pd.read_csv(sample_table)
    frame.loc[:2, "ID"] = frame.loc[3, "ID"]  # four rows share an ID
    broken = tmp_path / "dup.csv"
    frame.to_csv(broken, index=False)

    with disable_run_logger():
        good = validate_table.fn(_ingest(sample_table, tmp_path / "w1"), suite, str(tmp_path / "w1"))
        bad = validate_table.fn(_ingest(broken, tmp_path / "w2"), suite, str(tmp_path / "w2"))

    assert good.success and good.report.is_file()
    assert not bad.success
    with pytest.raises(DataQualityError, match=r"expect_column_values_to_be_unique on column 'ID'.*4 unexpected"):
        enforce_expectations.fn(bad, str(broken), "customers")


def test_cleaning_refuses_values_outside_the_configured_range(sample_table: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(sample_table)
    frame.loc[:4, "Family_Size"] = 25
    source = tmp_path / "big-families.csv"
    frame.to_csv(source, index=False)

    with pytest.raises(DataError, match=r"column 'Family_Size': 5 row\(s\) outside the valid range \[1.0, 20.0\]"):
        clean_features.fn(_ingest(source, tmp_path), CONFIG.features, str(tmp_path))


def _assessment(qe: float, te: float) -> MapAssessment:
    return MapAssessment(Path("b"), Path("d"), qe, te, te, 1.0, 10)


@pytest.mark.parametrize(
    ("qe", "te", "message"),
    [(0.6, 0.05, "quantization error 0.60000 > max 0.5"), (0.4, 0.2, "topographic error 0.20000 > max 0.1")],
)
def test_gate_names_the_measured_value_and_the_threshold(qe: float, te: float, message: str) -> None:
    with pytest.raises(QualityGateError, match=message):
        enforce_gates.fn(_assessment(qe, te), GateConfig())


def test_gate_passes_a_good_map() -> None:
    enforce_gates.fn(_assessment(0.4, 0.05), GateConfig())
