"""Acceptance on tables unlike the sample: each trains with the defaults (or a short config, no script),
passes the default gates, and scores a held-out fifth of its raw rows with the saved model."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from somseg.data import tables
from somseg.flows.cli import main

pytestmark = [pytest.mark.flow, pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

# Everything but the id comes from the defaults for the mall and credit tables; the
# marketing table needs its derived features, a date, its categories and the ranges
# that leave out its few absurd rows declared.
MARKETING_CONFIG = """\
id_column: ID
features:
  - {name: Age, expr: "2014 - Year_Birth", min: 18, max: 100}
  - {name: Income, min: 0, max: 300000, transform: log1p}
  - {name: Children, expr: "Kidhome + Teenhome"}
  - {name: Spent, expr: "MntWines + MntFruits + MntMeatProducts + MntFishProducts + MntSweetProducts + MntGoldProds",
     transform: log1p}
  - {name: Purchases, expr: "NumWebPurchases + NumStorePurchases"}
  - {name: Tenure, expr: 'years_since(Dt_Customer, "2014-12-31", "%d-%m-%Y")'}
  - {name: Recency}
  - {name: Education, kind: categorical}
quality: {invalid_rows: drop}
"""


def _split(frame: pd.DataFrame, tmp_path: Path, name: str, **csv: object) -> tuple[Path, Path]:
    """Write four fifths of the raw rows to train on and the other fifth to score, as the table was written."""
    held_out = np.random.default_rng(0).random(len(frame)) < 0.2
    paths = []
    for part, rows in (("train", ~held_out), ("new", held_out)):
        path = tmp_path / f"{name}-{part}.csv"
        text = frame[rows].to_csv(index=False, sep=csv.get("sep", ","))
        path.write_text(str(csv.get("prefix", "")) + text, encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]


@pytest.mark.parametrize("kind", ["mall", "credit", "marketing"])
def test_a_kind_of_customer_table_trains_passes_the_default_gates_and_scores_new_rows(kind: str, tmp_path: Path) -> None:
    options: list[str]
    if kind == "mall":
        train, new = _split(tables.mall(seed=3), tmp_path, kind)
        options = ["--id-column", "CustomerID"]
    elif kind == "credit":
        train, new = _split(tables.credit(seed=3), tmp_path, kind)
        options = ["--id-column", "CUST_ID"]
    else:
        train, new = _split(tables.marketing(seed=3), tmp_path, kind, sep=";", prefix="\ufeff")
        (tmp_path / "marketing.yaml").write_text(MARKETING_CONFIG, encoding="utf-8")
        assert len(MARKETING_CONFIG.splitlines()) <= 15
        options = ["--config", str(tmp_path / "marketing.yaml")]
    run, scored, work = tmp_path / "run", tmp_path / "scored", str(tmp_path / "work")

    assert main(["train", str(train), *options, "--out", str(run), "--work-dir", work]) == 0
    assert main(["score", str(new), "--model", str(run / "model"), "--out", str(scored), "--work-dir", work]) == 0

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["gates_passed"] is True
    if kind == "marketing":  # born in 1893, 1899, 1900 and an income of 666,666, wherever they fell
        rejected = pd.read_parquet(run / "rejected.parquet")
        assert set(rejected["column"]) <= {"Age", "Income"} and metrics["invalid_rows"]["rejected_rows"] >= 1
    assert metrics["topographic_error"] <= 0.1 and metrics["relative_quantization_error"] <= 0.8
    labels = pd.read_parquet(run / "profiles.parquet")["label"]
    assert labels.is_unique and labels.str.len().gt(0).all()
    expected = len(pd.read_csv(new, sep=None, engine="python", encoding="utf-8-sig"))
    if kind == "marketing":  # scoring drops the absurd rows of the new fifth too, by the model's rule
        expected -= pd.read_parquet(scored / "rejected.parquet")["id"].nunique()
    segments = pd.read_parquet(scored / "segments.parquet")
    assert len(segments) == expected and segments["segment_label"].isin(set(labels)).all()
