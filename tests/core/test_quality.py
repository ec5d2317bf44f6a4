"""somseg.quality: one verdict for a table from its partitions' validation results and duplicate counts."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from somseg.errors import ConfigError
from somseg.quality import (
    DuplicateCount,
    bucket_values,
    combine_reports,
    count_duplicates,
    failed_expectations,
    is_per_row,
    partition_suite,
    scoring_suite,
    unique_columns,
    value_hashes,
)
from somseg.stats import combine

SUITE = {
    "name": "s",
    "expectations": [
        {"type": "expect_column_to_exist", "kwargs": {"column": "ID"}},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 100}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "ID"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "W", "mostly": 0.75}},
    ],
}


def _result(kind: str, kwargs: dict, success: bool, **result) -> dict:
    return {"success": success, "expectation_config": {"type": kind, "kwargs": kwargs}, "result": result}


def _reports() -> list[dict]:
    """Two partitions of 100 rows: the first alone would fail not-null (30 % missing)."""
    first = [
        _result("expect_column_to_exist", {"column": "ID"}, True),
        _result("expect_table_row_count_to_be_between", {"min_value": 100}, True, observed_value=100),
        _result("expect_column_values_to_not_be_null", {"column": "W", "mostly": 0.75}, False,
                element_count=100, unexpected_count=30, partial_unexpected_list=[None]),
    ]
    second = [
        _result("expect_column_values_to_not_be_null", {"column": "W", "mostly": 0.75}, True,
                element_count=100, unexpected_count=0, partial_unexpected_list=[]),
    ]
    return [{"success": False, "results": first, "meta": {}}, {"success": True, "results": second, "meta": {}}]


def test_partitions_check_per_row_expectations_and_the_first_checks_the_rest() -> None:
    first, other = partition_suite(SUITE, first=True), partition_suite(SUITE, first=False)
    assert [e["type"] for e in first["expectations"]] == [
        "expect_column_to_exist", "expect_table_row_count_to_be_between", "expect_column_values_to_not_be_null"
    ]
    assert [e["type"] for e in other["expectations"]] == ["expect_column_values_to_not_be_null"]
    assert unique_columns(SUITE) == ["ID"] and not is_per_row(SUITE["expectations"][2])


def test_scoring_keeps_every_check_but_the_training_tables_row_count() -> None:
    scoring = scoring_suite(SUITE)
    assert [e["type"] for e in scoring["expectations"]] == [
        "expect_column_to_exist", "expect_column_values_to_be_unique", "expect_column_values_to_not_be_null"
    ]
    assert scoring["name"] == "s" and len(SUITE["expectations"]) == 4


def test_partition_results_combine_into_the_whole_tables_verdict() -> None:
    report = combine_reports(SUITE, _reports(), {"ID": DuplicateCount(200, 0, 2, (99,))}, n_rows=200)

    by_type = {r["expectation_config"]["type"]: r for r in report["results"]}
    assert [r["expectation_config"]["type"] for r in report["results"]] == [e["type"] for e in SUITE["expectations"]]
    not_null = by_type["expect_column_values_to_not_be_null"]
    assert not_null["success"] and not_null["result"]["unexpected_count"] == 30  # 15 % over the whole table
    unique = by_type["expect_column_values_to_be_unique"]
    assert not unique["success"] and unique["result"]["unexpected_count"] == 2
    assert unique["result"]["partial_unexpected_list"] == [99]
    assert by_type["expect_table_row_count_to_be_between"]["result"]["observed_value"] == 200
    assert report["statistics"]["unsuccessful_expectations"] == 1 and not report["success"]
    assert report["meta"]["partitions"] == 2
    assert failed_expectations(report) == [
        "expect_column_values_to_be_unique on column 'ID'; 2 unexpected row(s) (1.00%); sample values: 99"
    ]


def test_an_aggregate_expectation_is_refused_on_several_partitions_and_kept_on_one() -> None:
    suite = {"name": "s", "expectations": [{"type": "expect_column_mean_to_be_between", "kwargs": {"column": "Age"}}]}
    result = _result("expect_column_mean_to_be_between", {"column": "Age"}, True, observed_value=40.0)
    one = combine_reports(suite, [{"results": [result], "meta": {}}], {}, n_rows=10)
    assert one["success"] and one["results"] == [result]
    with pytest.raises(ConfigError, match="cannot be judged on a table of 2 partitions"):
        combine_reports(suite, [{"results": [result], "meta": {}}, {"results": [], "meta": {}}], {}, n_rows=20)


def test_an_empty_suite_passes() -> None:
    report = combine_reports({"name": "s", "expectations": []}, [{"results": [], "meta": {}}], {}, n_rows=3)
    assert report["success"] and report["statistics"]["evaluated_expectations"] == 0


@pytest.mark.parametrize("ids", [np.arange(1_000) % 700, np.array([f"C{v:04d}" for v in np.arange(1_000) % 700])])
def test_duplicates_meet_in_one_bucket_whichever_partition_they_are_in(ids) -> None:
    values = pd.Series(ids)
    parts = [bucket_values(values.iloc[a:b], 4) for a, b in ((0, 300), (300, 650), (650, 1_000))]
    counted = [
        count_duplicates(
            pa.chunked_array([pa.Array.from_pandas(p.values.iloc[p.offsets[b] : p.offsets[b + 1]]) for p in parts]),
            np.concatenate([p.hashes[p.offsets[b] : p.offsets[b + 1]] for p in parts]),
        )
        for b in range(4)
    ]
    total = combine([DuplicateCount(p.n_rows, p.n_missing, 0, ()) for p in parts] + counted)
    assert total.n_rows == 1_000 and total.n_missing == 0
    assert total.n_duplicated == int(values.duplicated(keep=False).sum()) == 600
    assert len(total.sample) == 20 and all(v in set(values[values.duplicated(keep=False)]) for v in total.sample)


def test_text_duplicates_are_counted_exactly_whatever_the_hashes() -> None:
    ids = pa.array(["a", "b", "a", "c", "d", "d", "d", "e"])
    exact = count_duplicates(ids)
    assert exact.n_duplicated == 5 and set(exact.sample) == {"a", "d"}
    real = bucket_values(pd.Series(ids.to_pylist()), 1)
    assert count_duplicates(pa.Array.from_pandas(real.values), real.hashes).n_duplicated == 5
    # Hashes that collide for every value only widen the candidates: the text decides.
    assert count_duplicates(ids, np.zeros(8, dtype=np.uint64)) == exact
    # Distinct hashes clear every value without encoding it.
    assert count_duplicates(ids, np.arange(8, dtype=np.uint64)).n_duplicated == 0
    with pytest.raises(ValueError, match="7 hashes for 8 values"):
        count_duplicates(ids, np.zeros(7, dtype=np.uint64))


def test_text_held_by_arrow_is_hashed_from_its_bytes_the_same_in_every_layout(monkeypatch) -> None:
    words = ["C001", "", "C001", "longer than eight bytes", "é", "C002"]
    plain = value_hashes(pd.Series(words, dtype="str"))
    assert plain[0] == plain[2] and len(set(plain.tolist())) == 5
    monkeypatch.setattr(pd.util, "hash_array", lambda *a, **k: pytest.fail("text was made into Python strings"))
    layouts = {
        "string": pa.array(words, pa.string()),
        "sliced": pa.array(["x", *words], pa.large_string()).slice(1),
        "chunked": pa.chunked_array([words[:3], words[3:]], pa.large_string()),
    }
    for name, array in layouts.items():
        series = pa.table({"id": array}).to_pandas()["id"]  # as a partition is read
        assert series.dtype == "str", name
        assert (value_hashes(series) == plain).all(), name


def test_missing_values_are_not_duplicates() -> None:
    bucketed = bucket_values(pd.Series([1.0, np.nan, np.nan, 2.0]), 2)
    assert (bucketed.n_rows, bucketed.n_missing) == (4, 2) and len(bucketed.values) == 2
    assert count_duplicates(pa.array(bucketed.values)).n_duplicated == 0
