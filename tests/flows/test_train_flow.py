"""The training flow end to end, under the Prefect test harness."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from somseg.config import FeatureSpec, GateConfig, QualityConfig, SegmentationConfig, load_config
from somseg.errors import DataError, DataQualityError, QualityGateError
from somseg.flows.cli import main
from somseg.flows.train import train_segments_flow

REFERENCE_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "reference.yaml"

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
    assert 0.03 < segments["is_outlier"].mean() < 0.07
    profiles = pd.read_parquet(out / "profiles.parquet")
    assert profiles["size"].sum() == len(segments)
    # segments.k 'auto': the run used the recommended k, and its config.yaml says which.
    chosen = json.loads((out / "metrics.json").read_text())["evaluation"]["k_choice"]["recommended_k"]
    assert segments["segment_label"].nunique() == len(profiles) == chosen
    assert f"k: {chosen}" in (out / "config.yaml").read_text()
    for name in ("metrics.json", "validation.json", "config.yaml", "report.html", "model/model.json", "model/weights.npy"):
        assert (out / name).is_file(), name
    assert not (out / "last_failure").exists()
    assert not list(tmp_path.glob(".run.*")), "staging folders must not be left behind"


def _without_ranges(config: SegmentationConfig) -> SegmentationConfig:
    """``config`` whose features declare no range: the shipped suite's range is then the only check of ages."""
    return config.model_copy(update={"features": [FeatureSpec(name=name) for name in config.feature_names]})


def test_failed_expectation_stops_before_training(
    sample_table: Path, tmp_path: Path, reference_config: SegmentationConfig
) -> None:
    out = tmp_path / "run"
    with pytest.raises(DataQualityError) as failure:
        train_segments_flow(str(_with_bad_ages(sample_table, tmp_path)), str(out), _without_ranges(reference_config),
                            work_dir=str(tmp_path / "work"))

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
    # The map that failed can be looked at: its report and pictures are kept with the diagnostics.
    report = (out / "last_failure" / "report.html").read_text()
    assert "Failed training run: run" in report and "&gt; max 0.01 (gates.max_quantization_error)" in report
    assert report.count("data:image/png;base64,") == 2
    assert (out / "last_failure" / "figures" / "u_matrix.png").is_file()
    assert not (out / "last_failure" / "report-error.txt").exists()


def test_cli_exits_non_zero_with_a_plain_message(
    sample_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], reference_config: SegmentationConfig
) -> None:
    import yaml

    config = tmp_path / "no-ranges.yaml"
    config.write_text(yaml.safe_dump(_without_ranges(reference_config).model_dump(mode="json")), encoding="utf-8")
    code = main(["train", str(_with_bad_ages(sample_table, tmp_path)), "--out", str(tmp_path / "run"),
                 "--config", str(config), "--work-dir", str(tmp_path / "work")])

    err = capsys.readouterr().err
    assert code == DataQualityError.exit_code
    assert "data quality check failed" in err and "Traceback" not in err


def test_values_outside_a_declared_range_stop_the_run_before_the_expectations(
    sample_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code = main(["train", str(_with_bad_ages(sample_table, tmp_path)), "--out", str(out),
                 "--config", str(REFERENCE_CONFIG), "--work-dir", str(tmp_path / "work")])

    err = capsys.readouterr().err
    assert code == DataError.exit_code
    assert "7 row(s) have a value that does not parse (as a number, date or category) or is outside its declared range" in err
    assert "column 'Age': 7 row(s) (7 above max 100); sample values: 150" in err and "quality.invalid_rows: drop" in err
    assert not (tmp_path / "work" / "artifacts" / "validate-partition").exists(), "stopped before the expectations"
    assert not (out / "segments.parquet").exists()


def _with_invalid_rows(sample_table: Path, tmp_path: Path) -> Path:
    """The sample with 21 invalid rows: ages of 150 or text, a family of 0 (one row has two invalid values)."""
    frame = pd.read_csv(sample_table).astype({"Age": object})
    frame.loc[range(10), "Age"] = 150
    frame.loc[range(2_500, 2_505), "Age"] = "unknown"
    frame.loc[range(4_000, 4_006), "Family_Size"] = 0
    frame.loc[4_000, "Age"] = 150
    path = tmp_path / "invalid.csv"
    frame.to_csv(path, index=False)
    return path


def test_dropped_rows_are_left_out_listed_and_counted(
    sample_table: Path, tmp_path: Path, fast_config: SegmentationConfig, caplog: pytest.LogCaptureFixture
) -> None:
    config = fast_config.model_copy(update={"quality": QualityConfig(invalid_rows="drop")})
    source = _with_invalid_rows(sample_table, tmp_path)

    out = Path(train_segments_flow(str(source), str(tmp_path / "run"), config, str(tmp_path / "work")))

    input_ids = pd.read_csv(source)["ID"]
    rejected = pd.read_parquet(out / "rejected.parquet")
    assert list(rejected.columns) == ["id", "column", "value", "reason"] and len(rejected) == 22
    assert set(rejected["id"]) == set(input_ids[[*range(10), *range(2_500, 2_505), *range(4_000, 4_006)]])
    assert rejected[rejected["id"] == input_ids[4_000]][["column", "reason"]].values.tolist() == [
        ["Age", "above max 100"], ["Family_Size", "below min 1"]
    ]
    segments = pd.read_parquet(out / "segments.parquet")
    assert len(segments) == 5_000 - 21 and not set(segments["ID"]) & set(rejected["id"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_rows"] == 4_979
    assert metrics["invalid_rows"] == {"policy": "drop", "rejected_rows": 21, "input_rows": 5_000,
                                       "share": pytest.approx(0.0042), "max_share": 0.01,
                                       "by_column": {"Age": 16, "Family_Size": 6}}
    assert json.loads((out / "validation.json").read_text())["success"]
    assert "invalid rows: dropped 21 of 5,000 (0.42%" in caplog.text  # the flow logs its prints


def test_more_invalid_rows_than_the_share_allows_fail_the_run_naming_the_setting(
    sample_table: Path, tmp_path: Path, fast_config: SegmentationConfig
) -> None:
    config = fast_config.model_copy(update={"quality": QualityConfig(invalid_rows="drop", max_invalid_share=0.002)})
    out = tmp_path / "run"

    with pytest.raises(DataError) as failure:
        train_segments_flow(str(_with_invalid_rows(sample_table, tmp_path)), str(out), config, str(tmp_path / "work"))

    message = str(failure.value)
    assert "21 of 5,000 row(s) (0.42%) are invalid, above quality.max_invalid_share 0.002" in message
    assert "column 'Age': 16 row(s) (5 not a number, 11 above max 100); sample values: 150" in message
    assert "column 'Family_Size': 6 row(s) (6 below min 1)" in message and "raise quality.max_invalid_share" in message
    assert not (out / "segments.parquet").exists() and not (out / "rejected.parquet").exists()


def test_cli_rejects_missing_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "run")])

    assert code != 0
    assert "nope.csv does not exist" in capsys.readouterr().err
    assert not (tmp_path / "run" / "segments.parquet").exists()


def _money_table(path: Path, n: int, seed: int) -> pd.DataFrame:
    """A table unlike the reference: text ids, skewed money columns with gaps, a text column, ';' and a BOM."""
    rng = np.random.default_rng(seed)
    wealth = rng.lognormal(0, 1, n)
    frame = pd.DataFrame({"CUST_ID": [f"C{10001 + i}" for i in range(n)], "TENURE_BAND": rng.choice(["new", "old"], n)})
    for j, name in enumerate(["BALANCE", "PURCHASES", "CASH_ADVANCE", "CREDIT LIMIT", "PAYMENTS", "MIN_PAYMENTS"]):
        values = np.round(wealth ** (0.5 + 0.2 * j) * rng.lognormal(5, 0.8, n), 2)
        values[rng.random(n) < 0.03] = np.nan
        frame[name] = values
    path.write_text("\ufeff" + frame.to_csv(index=False, sep=";"), encoding="utf-8")
    return frame


def test_any_table_trains_with_only_its_id_column_and_scores_new_rows(tmp_path: Path) -> None:
    table = _money_table(tmp_path / "cards.csv", 2_500, seed=1)
    _money_table(tmp_path / "new.csv", 500, seed=2)
    # Only what keeps the test fast; the features, the grid, the suite and the names come from the defaults.
    (tmp_path / "fast.yaml").write_text(
        "som: {epochs: 5}\n"
        "gates: {max_topographic_error: 0.5}\n"
        "evaluation: {bootstrap_resamples: 0, k_max: 5, silhouette_sample: 1000, stability_rows: 2000}\n",
        encoding="utf-8",
    )
    run, work = tmp_path / "run", str(tmp_path / "work")

    assert main(["train", str(tmp_path / "cards.csv"), "--id-column", "CUST_ID", "--config", str(tmp_path / "fast.yaml"),
                 "--out", str(run), "--work-dir", work]) == 0
    assert main(["score", str(tmp_path / "new.csv"), "--model", str(run / "model"), "--out", str(tmp_path / "scored"),
                 "--work-dir", work]) == 0

    written = load_config(run / "config.yaml")
    money = [name for name in table.columns if name not in ("CUST_ID", "TENURE_BAND")]
    assert written.id_column == "CUST_ID" and written.feature_names == money
    grid = json.loads((run / "metrics.json").read_text())["grid"]
    assert (grid["rows"], grid["cols"]) == (written.som.rows, written.som.cols)
    assert 240 <= grid["rows"] * grid["cols"] <= 260, "about 5 * sqrt(2,500) neurons"
    assert written.som.sigma == max(grid["rows"], grid["cols"]) / 4
    assert json.loads((run / "validation.json").read_text())["suite_name"] == "auto"
    labels = set(pd.read_parquet(run / "profiles.parquet")["label"])
    assert all(any(name in label for name in money) or label == "Typical Customers" for label in labels), labels
    segments = pd.read_parquet(run / "segments.parquet")
    assert segments["CUST_ID"].tolist() == table["CUST_ID"].tolist()
    scored = pd.read_parquet(tmp_path / "scored" / "segments.parquet")
    assert len(scored) == 500 and scored["CUST_ID"].iloc[0] == "C10001"


def test_features_and_id_column_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _money_table(tmp_path / "cards.csv", 300, seed=3)
    code = main(["train", str(tmp_path / "cards.csv"), "--id-column", "CUST_ID", "--features", "BALANCE,TENURE_BAND",
                 "--out", str(tmp_path / "run"), "--work-dir", str(tmp_path / "work")])
    assert code == 3 and "column 'TENURE_BAND'" in capsys.readouterr().err
    code = main(["train", str(tmp_path / "cards.csv"), "--id-column", "CUST_ID", "--features", "CUST_ID,BALANCE",
                 "--out", str(tmp_path / "run")])
    assert code == 2 and "cannot also be a feature" in capsys.readouterr().err


def _train_and_score(tmp_path: Path, table: str, new: str, features_yaml: str) -> Path:
    """Train on ``table`` with these features and a small fast map, score ``new`` with the model; the run folder."""
    (tmp_path / "config.yaml").write_text(
        features_yaml + "som: {rows: 4, cols: 4, epochs: 5}\ngates: {max_topographic_error: 0.5}\n"
        "evaluation: {bootstrap_resamples: 0, k_max: 5, silhouette_sample: 1000, stability_rows: 2000}\n",
        encoding="utf-8",
    )
    run, work = tmp_path / "run", str(tmp_path / "work")
    assert main(["train", str(tmp_path / table), "--config", str(tmp_path / "config.yaml"), "--out", str(run),
                 "--work-dir", work]) == 0
    assert main(["score", str(tmp_path / new), "--model", str(run / "model"), "--out", str(tmp_path / "scored"),
                 "--work-dir", work]) == 0
    return run


def test_declared_transforms_are_kept_in_the_model_and_applied_again_at_scoring(tmp_path: Path) -> None:
    _money_table(tmp_path / "cards.csv", 1_500, seed=4)
    run = _train_and_score(tmp_path, "cards.csv", "cards.csv", "id_column: CUST_ID\nfeatures:\n"
                           "  - {name: BALANCE, transform: log1p}\n"
                           "  - {name: PURCHASES, transform: signed_log1p}\n"
                           "  - {name: PAYMENTS, transform: robust}\n"
                           "  - {name: CASH_ADVANCE, transform: quantile}\n"
                           "  - {name: MIN_PAYMENTS}\n")

    model = json.loads((run / "model" / "model.json").read_text())
    assert model["cleaner"]["transforms"] == ["log1p", "signed_log1p", "robust", "quantile", "none"]
    assert len(model["cleaner"]["quantiles"][3]) == 101 and model["cleaner"]["quantiles"][0] is None
    trained = pd.read_parquet(run / "segments.parquet")
    scored = pd.read_parquet(tmp_path / "scored" / "segments.parquet")
    pd.testing.assert_frame_equal(scored, trained)
    profiles = pd.read_parquet(run / "profiles.parquet")
    raw = pd.read_csv(tmp_path / "cards.csv", sep=";", encoding="utf-8-sig")
    assert profiles["BALANCE_mean"].min() >= raw["BALANCE"].min(), "profiles stay in raw units"


def test_a_map_trained_for_one_iteration_fails_the_default_gates(sample_table: Path, tmp_path: Path) -> None:
    config = SegmentationConfig.model_validate({"som": {"engine": "minisom", "init": "random", "iterations": 1},
                                                "evaluation": {"bootstrap_resamples": 0}})
    with pytest.raises(QualityGateError) as failure:
        train_segments_flow(str(sample_table), str(tmp_path / "run"), config, str(tmp_path / "work"))
    assert "(gates.max_topographic_error)" in str(failure.value)


def _marketing_table(path: Path, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "ID": np.arange(n) + 5000, "Year_Birth": rng.integers(1945, 1996, n), "Kidhome": rng.integers(0, 3, n),
        "Teenhome": rng.integers(0, 3, n), "Income": np.round(rng.lognormal(10.8, 0.4, n)),
        "MntWines": rng.integers(0, 1500, n), "MntFruits": rng.integers(0, 200, n), "MntMeatProducts": rng.integers(0, 1000, n),
        "Education": rng.choice(["Graduation", "PhD", "Master"], n),
        "Dt_Customer": pd.to_datetime("2012-07-30") + pd.to_timedelta(rng.integers(0, 700, n), unit="D"),
    })
    frame["Dt_Customer"] = frame["Dt_Customer"].dt.strftime("%d-%m-%Y")
    frame.loc[rng.random(n) < 0.02, "Income"] = np.nan
    path.write_text("\ufeff" + frame.to_csv(index=False, sep=";"), encoding="utf-8")
    return frame


def test_derived_features_are_computed_at_training_and_again_at_scoring(tmp_path: Path) -> None:
    _marketing_table(tmp_path / "marketing.csv", 1_200, seed=5)
    _marketing_table(tmp_path / "new.csv", 300, seed=6)
    run = _train_and_score(tmp_path, "marketing.csv", "new.csv", "features:\n"
                           "  - {name: Age, expr: '2014 - Year_Birth', min: 18, max: 100}\n"
                           "  - {name: Children, expr: 'Kidhome + Teenhome'}\n"
                           "  - {name: Spent, expr: 'MntWines + MntFruits + MntMeatProducts', transform: log1p}\n"
                           "  - {name: Income, transform: log1p}\n")

    raw = pd.read_csv(tmp_path / "marketing.csv", sep=";", encoding="utf-8-sig")
    segments = pd.read_parquet(run / "segments.parquet")
    profiles = pd.read_parquet(run / "profiles.parquet")
    overall = (profiles["Age_mean"] * profiles["size"]).sum() / profiles["size"].sum()
    assert overall == pytest.approx((2014 - raw["Year_Birth"]).mean())
    assert (profiles["Spent_mean"] * profiles["size"]).sum() / len(segments) == pytest.approx(
        (raw["MntWines"] + raw["MntFruits"] + raw["MntMeatProducts"]).mean()), "profiles in raw units"
    model = json.loads((run / "model" / "model.json").read_text())
    assert [f.get("expr") for f in model["features"]] == ["2014 - Year_Birth", "Kidhome + Teenhome",
                                                          "MntWines + MntFruits + MntMeatProducts", None]
    assert len(pd.read_parquet(tmp_path / "scored" / "segments.parquet")) == 300


def test_a_derived_feature_out_of_its_range_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame = _marketing_table(tmp_path / "marketing.csv", 300, seed=7)
    frame.loc[3, "Year_Birth"] = 1893  # an absurd row: 121 years old in 2014
    frame.to_csv(tmp_path / "marketing.csv", index=False)
    (tmp_path / "config.yaml").write_text("features:\n  - {name: Age, expr: '2014 - Year_Birth', min: 18, max: 100}\n"
                                          "  - {name: Income}\n", encoding="utf-8")
    code = main(["train", str(tmp_path / "marketing.csv"), "--config", str(tmp_path / "config.yaml"),
                 "--out", str(tmp_path / "run"), "--work-dir", str(tmp_path / "work")])
    err = capsys.readouterr().err
    assert code in (3, 4) and "Age" in err and "121" in err


def test_dates_and_learnt_categories_are_kept_in_the_model_and_applied_at_scoring(tmp_path: Path) -> None:
    _marketing_table(tmp_path / "marketing.csv", 1_200, seed=8)
    _marketing_table(tmp_path / "new.csv", 300, seed=9)
    run = _train_and_score(tmp_path, "marketing.csv", "new.csv", "features:\n"
                           "  - {name: Tenure, expr: 'years_since(Dt_Customer, \"2014-12-31\", \"%d-%m-%Y\")'}\n"
                           "  - {name: Income, transform: log1p}\n"
                           "  - {name: Education, kind: categorical}\n")

    raw = pd.read_csv(tmp_path / "marketing.csv", sep=";", encoding="utf-8-sig")
    model = json.loads((run / "model" / "model.json").read_text())
    education = raw["Education"].value_counts()
    assert model["features"][2]["categories"] == list(education.index), "learnt, most frequent first"
    assert model["cleaner"]["features"][2:] == [f"Education={level}" for level in education.index]
    profiles = pd.read_parquet(run / "profiles.parquet")
    shares = (profiles[[f"Education={level}_mean" for level in education.index]].mul(profiles["size"], axis=0).sum()
              / profiles["size"].sum())
    np.testing.assert_allclose(shares, education / len(raw)), "profiles show each level's share"
    tenure = (pd.Timestamp("2014-12-31") - pd.to_datetime(raw["Dt_Customer"], format="%d-%m-%Y")).dt.days / 365.2425
    assert (profiles["Tenure_mean"] * profiles["size"]).sum() / profiles["size"].sum() == pytest.approx(tenure.mean())
    assert len(pd.read_parquet(tmp_path / "scored" / "segments.parquet")) == 300


def test_ordinal_and_categorical_levels_score_and_an_unknown_level_is_named(
    sample_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = pd.read_csv(sample_table)
    frame.to_csv(tmp_path / "customers.csv", index=False)
    frame.head(50).to_csv(tmp_path / "new.csv", index=False)
    run = _train_and_score(tmp_path, "customers.csv", "new.csv", "features:\n"
                           "  - {name: Age, min: 18, max: 100}\n"
                           "  - {name: Spending_Score, kind: ordinal, categories: [Low, Average, High]}\n"
                           "  - {name: Profession, kind: categorical}\n")
    profiles = pd.read_parquet(run / "profiles.parquet")
    codes = frame["Spending_Score"].map({"Low": 0, "Average": 1, "High": 2})
    assert (profiles["Spending_Score_mean"] * profiles["size"]).sum() / profiles["size"].sum() == pytest.approx(codes.mean())
    scored = pd.read_parquet(tmp_path / "scored" / "segments.parquet")
    trained = pd.read_parquet(run / "segments.parquet").head(50)
    np.testing.assert_array_equal(scored["segment"], trained["segment"])

    frame.head(50).assign(Spending_Score="Very High").to_csv(tmp_path / "odd.csv", index=False)
    capsys.readouterr()
    code = main(["score", str(tmp_path / "odd.csv"), "--model", str(run / "model"), "--out", str(tmp_path / "odd"),
                 "--work-dir", str(tmp_path / "work")])
    err = capsys.readouterr().err
    assert code == 3 and "odd.csv" in err and "'Spending_Score': 50 row(s)" in err and "'Very High'" in err


def test_a_constant_feature_stops_the_run_naming_it(sample_table: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    pd.read_csv(sample_table).assign(Age=40).to_csv(tmp_path / "forty.csv", index=False)

    code = main(["train", str(tmp_path / "forty.csv"), "--config", str(REFERENCE_CONFIG), "--out", str(tmp_path / "run"),
                 "--work-dir", str(tmp_path / "work")])

    err = capsys.readouterr().err
    assert code == 3 and "column 'Age' has one value (40) in all 5,000 rows" in err
    assert not (tmp_path / "run" / "segments.parquet").exists()


def test_a_second_run_on_a_busy_folder_is_refused_and_leftovers_are_cleared(
    sample_table: Path, tmp_path: Path, fast_config: SegmentationConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    from somseg.io import run_folder_lock

    out = tmp_path / "run"
    with run_folder_lock(out.resolve()):  # another run is writing it
        code = main(["train", str(sample_table), "--config", str(REFERENCE_CONFIG), "--out", str(out),
                     "--work-dir", str(tmp_path / "work")])
    assert code == 3 and "being written by another run" in capsys.readouterr().err
    assert not out.exists()

    left = tmp_path / ".run.staging-0123456789ab"  # a killed run's
    (left / "model").mkdir(parents=True)
    train_segments_flow(str(sample_table), str(out), fast_config, str(tmp_path / "work"))
    assert not left.exists() and (out / "segments.parquet").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "work"], "nothing left beside the output folder"


def test_diagnostics_that_cannot_be_written_do_not_hide_the_runs_error(
    sample_table: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import somseg.flows.support as support

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device", str(tmp_path / "run" / "last_failure"))

    monkeypatch.setattr(support, "record_failure", full_disk)
    config = SegmentationConfig.model_validate({"som": {"engine": "minisom", "init": "random", "iterations": 1},
                                                "evaluation": {"bootstrap_resamples": 0}})
    with pytest.raises(QualityGateError, match="gates.max_topographic_error"):
        train_segments_flow(str(sample_table), str(tmp_path / "run"), config, str(tmp_path / "work"))
