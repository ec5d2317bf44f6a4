"""The Great Expectations adapter: shipped and path suites, results in the suite's order, clear errors."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from somseg.errors import ConfigError
from somseg.tasks.expectations import load_suite, run_suite


def test_the_shipped_suite_is_found_by_name_from_the_installed_package() -> None:
    suite = load_suite("customers")
    assert suite["name"] == "customers" and len(suite["expectations"]) == 13


def test_a_suite_by_path_and_the_errors_that_name_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "mine.json"
    path.write_text('{"name": "mine", "expectations": [{"type": "expect_column_to_exist", "kwargs": {"column": "ID"}}]}',
                    encoding="utf-8")
    assert load_suite(str(path))["name"] == "mine"
    with pytest.raises(ConfigError, match=r"'nope' \(quality.suite\) is neither a shipped suite \(customers\)"):
        load_suite("nope")
    with pytest.raises(ConfigError, match="cannot be read"):
        load_suite(str(tmp_path / "absent.json"))
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_suite(str(path))
    path.write_text('{"name": "x"}', encoding="utf-8")
    with pytest.raises(ConfigError, match="no 'expectations' list"):
        load_suite(str(path))
    path.write_text('{"name": "x", "expectations": []}', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"has no expectations; use 'auto'"):
        load_suite(str(path))
    path.write_text('{"name": "x", "expectations": [{"kwargs": {}}]}', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"1 expectation\(s\) without a 'type'"):
        load_suite(str(path))


def test_the_auto_suite_follows_the_config() -> None:
    from somseg.config import SegmentationConfig
    from somseg.tasks.expectations import training_suite

    config = SegmentationConfig.model_validate({
        "id_column": "CUST_ID", "features": [{"name": "Income", "min": 0}, {"name": "Spend"}],
        "quality": {"min_rows": 20, "max_missing_share": 0.1},
    })
    suite = training_suite(config)
    kinds = [(e["type"].removeprefix("expect_"), e["kwargs"].get("column")) for e in suite["expectations"]]
    assert suite["name"] == "auto" and kinds == [
        ("column_to_exist", "CUST_ID"), ("column_to_exist", "Income"), ("column_to_exist", "Spend"),
        ("table_row_count_to_be_between", None), ("column_values_to_not_be_null", "CUST_ID"),
        ("column_values_to_be_unique", "CUST_ID"), ("column_values_to_be_between", "Income"),
        ("column_values_to_not_be_null", "Income"), ("column_values_to_not_be_null", "Spend"),
    ]
    between = suite["expectations"][6]["kwargs"]
    assert (between["min_value"], between["max_value"]) == (0, None)
    assert suite["expectations"][3]["kwargs"] == {"min_value": 20}
    assert suite["expectations"][7]["kwargs"]["mostly"] == pytest.approx(0.9)
    frame = pd.DataFrame({"CUST_ID": [f"C{i}" for i in range(30)], "Income": np.r_[np.arange(29.0), -1.0],
                          "Spend": np.r_[np.ones(26), [np.nan] * 4]})
    report = run_suite(frame, suite)
    failed = [r["expectation_config"]["kwargs"].get("column") for r in report["results"] if not r["success"]]
    assert failed == ["Income", "Spend"], "one income below 0; 4 of 30 spends missing, above 10 %"


def test_results_come_back_in_the_suites_order_even_when_gx_reorders_them() -> None:
    suite = {
        "name": "s",
        "expectations": [
            {"type": "expect_column_values_to_be_between", "kwargs": {"column": "Age", "min_value": 18, "max_value": 100}},
            {"type": "expect_column_to_exist", "kwargs": {"column": "Missing"}},  # raises inside GX
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "Age"}},
        ],
    }
    frame = pd.DataFrame({"ID": [1, 2, 3], "Age": [20.0, 150.0, np.nan]})

    report = run_suite(frame, suite)

    assert [r["expectation_config"]["type"] for r in report["results"]] == [e["type"] for e in suite["expectations"]]
    assert [r["success"] for r in report["results"]] == [False, False, False]
    assert report["results"][0]["result"]["unexpected_count"] == 1
    assert report["statistics"]["evaluated_expectations"] == 3 and not report["success"]


def test_an_empty_suite_validates_without_great_expectations() -> None:
    report = run_suite(pd.DataFrame({"ID": [1]}), {"name": "empty", "expectations": []})
    assert report["success"] and report["results"] == []


def test_validation_leaves_the_suite_it_is_given_unchanged() -> None:
    import copy

    import pandas as pd

    from somseg.tasks.expectations import load_suite, run_suite

    suite = load_suite("customers")
    before = copy.deepcopy(suite)
    frame = pd.DataFrame({"ID": [1, 2], "Age": [30.0, 40.0], "Work_Experience": [1.0, None], "Family_Size": [2.0, 3.0]})
    run_suite(frame, suite)
    assert suite == before, "the suite is part of the validation step's cache key"


def test_the_auto_suites_ranges_judge_each_value_as_the_invalid_row_screen_does() -> None:
    from somseg.config import SegmentationConfig
    from somseg.tasks.expectations import training_suite
    from somseg.validity import invalid_codes

    config = SegmentationConfig.model_validate({
        "features": [{"name": "Age", "min": 18, "max": 100}, {"name": "Income", "min": 0}],
        "quality": {"min_rows": 1, "max_missing_share": 1},
    })
    ranges = [e for e in training_suite(config)["expectations"] if e["type"] == "expect_column_values_to_be_between"]
    assert [(e["kwargs"]["column"], e["kwargs"]["min_value"], e["kwargs"]["max_value"]) for e in ranges] == [
        ("Age", 18, 100), ("Income", 0, None)
    ]
    assert not any("strict_min" in e["kwargs"] or "strict_max" in e["kwargs"] for e in ranges), "bounds are inclusive"
    ages = np.array([18.0, 100.0, np.nan, 17.999, 100.001])
    incomes = np.array([0.0, 1e9, 5.0, np.nan, -0.001])
    for rows, valid in ((slice(0, 3), True), (slice(3, 5), False)):
        frame = pd.DataFrame({"ID": np.arange(5)[rows], "Age": ages[rows], "Income": incomes[rows]})
        report = run_suite(frame, {"name": "ranges", "expectations": ranges})
        screened = invalid_codes(frame[["Age", "Income"]].to_numpy(), [(18, 100), (0, None)])
        assert [r["success"] for r in report["results"]] == [valid, valid]
        assert [r["result"]["unexpected_count"] for r in report["results"]] == screened.astype(bool).sum(axis=0).tolist()
