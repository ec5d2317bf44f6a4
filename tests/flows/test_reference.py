"""The notebook's figures (REFERENCE.md), reproduced by the training flow on the real table."""

import json
from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.reference, pytest.mark.flow, pytest.mark.usefixtures("prefect_harness")]

# label: (customers, mean Age, mean Work_Experience, mean Family_Size, sd Age, sd Work_Exp, sd Family_Size)
REFERENCE_PROFILES = {
    "Early Career Adults": (2940, 36.78, 1.09, 2.24, 9.18, 1.34, 0.84),
    "Senior / Retired": (1743, 67.47, 0.82, 1.94, 10.77, 1.09, 0.84),
    "Established Professionals": (1665, 38.24, 8.26, 2.70, 11.92, 2.04, 1.41),
    "Family-Oriented": (1720, 35.64, 0.88, 4.86, 12.76, 1.24, 1.20),
}


def test_quality_figures(reference_run: Path) -> None:
    metrics = json.loads((reference_run / "metrics.json").read_text())

    assert metrics["quantization_error"] == pytest.approx(0.40081, abs=0.001)
    assert metrics["topographic_error"] == pytest.approx(0.05156, abs=0.002)
    assert metrics["n_rows"] == 8068


def test_segment_profiles_carry_the_reference_names(reference_run: Path) -> None:
    profiles = pd.read_parquet(reference_run / "profiles.parquet").set_index("label")

    assert set(profiles.index) == set(REFERENCE_PROFILES)
    for label, (size, *stats) in REFERENCE_PROFILES.items():
        row = profiles.loc[label]
        observed = [row[f"{f}_{s}"] for s in ("mean", "sd") for f in ("Age", "Work_Experience", "Family_Size")]
        assert row["size"] == size, label
        assert [round(v, 2) for v in observed] == pytest.approx(stats, abs=0.005), label


def test_every_customer_is_labelled_once(reference_run: Path, reference_table: Path) -> None:
    segments = pd.read_parquet(reference_run / "segments.parquet")
    ids = pd.read_csv(reference_table, usecols=["ID"])["ID"]

    assert segments["ID"].tolist() == ids.tolist()
    assert segments["segment_label"].value_counts().to_dict() == {k: v[0] for k, v in REFERENCE_PROFILES.items()}
    assert segments["is_outlier"].sum() == pytest.approx(0.05 * len(segments), abs=2)
