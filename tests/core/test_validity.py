"""somseg.validity: which values make a row invalid, the records of them, and their counts over partitions."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from somseg.stats import combine
from somseg.validity import (
    ABOVE_MAX,
    BELOW_MIN,
    NOT_A_NUMBER,
    VALID,
    RowScreen,
    invalid_codes,
    parse_numbers,
    row_screen,
)

NAN = np.nan


def test_a_value_is_invalid_outside_its_inclusive_range_and_a_missing_one_never() -> None:
    values = np.array([[18.0, 0.0], [100.0, NAN], [17.9, -1.0], [100.5, 1e9], [NAN, 5.0]])

    codes = invalid_codes(values, [(18, 100), (0, None)])

    assert codes.tolist() == [
        [VALID, VALID],
        [VALID, VALID],
        [BELOW_MIN, BELOW_MIN],
        [ABOVE_MAX, VALID],
        [VALID, VALID],
    ]


def test_a_value_that_is_not_a_number_is_invalid_whatever_the_range() -> None:
    values = np.array([[NAN, 1.0], [20.0, NAN]])
    not_numbers = np.array([[True, False], [False, True]])

    codes = invalid_codes(values, [(18, 100), (None, None)], not_numbers)

    assert codes.tolist() == [[NOT_A_NUMBER, VALID], [VALID, NOT_A_NUMBER]]


def test_unbounded_columns_have_no_invalid_number_but_an_infinite_one() -> None:
    values = np.array([[-1e300], [1e300], [NAN], [np.inf], [-np.inf]])

    assert invalid_codes(values, [(None, None)])[:, 0].tolist() == [VALID, VALID, VALID, NOT_A_NUMBER, NOT_A_NUMBER]


def test_text_is_parsed_and_only_present_values_that_are_not_numbers_are_flagged() -> None:
    numbers, bad = parse_numbers(pd.Series(["1.5", "abc", "", "  ", None, " 7", "1e3", "n/a"], dtype=object))

    np.testing.assert_array_equal(numbers, [1.5, NAN, NAN, NAN, NAN, 7.0, 1000.0, NAN])
    assert bad.tolist() == [False, True, False, False, False, False, False, True]


def test_numbers_need_no_parsing() -> None:
    numbers, bad = parse_numbers(pd.Series([1, 2, None], dtype="Int64"))

    np.testing.assert_array_equal(numbers, [1.0, 2.0, NAN])
    assert not bad.any()


def _screen(policy: str = "drop") -> RowScreen:
    return RowScreen(("Age", "Income"), ((18.0, 100.0), (0.0, None)), policy)  # type: ignore[arg-type]


def _partition(ids: list, ages: list, incomes: list, text: list | None = None):
    values = np.array([ages, incomes], dtype=np.float64).T
    not_numbers = np.zeros(values.shape, dtype=bool)
    texts = {}
    if text is not None:
        not_numbers[:, 0] = [t is not None and not _is_number(t) for t in text]
        texts[0] = pa.array(text, type=pa.string())
    return pa.array(ids), values, not_numbers, texts


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_each_invalid_value_is_one_record_and_a_row_can_give_several() -> None:
    ids, values, not_numbers, texts = _partition(
        ["a", "b", "c", "d"], [20, NAN, 150, 10], [5, 1, 2, -3], text=["20", "old", "150", "10"]
    )

    screened = _screen().screen(ids, values, not_numbers, texts, "in.csv")

    assert screened.keep.tolist() == [True, False, False, False]
    assert screened.rejected.to_pylist() == [
        {"id": "b", "column": "Age", "value": "old", "reason": "not a number"},
        {"id": "c", "column": "Age", "value": "150", "reason": "above max 100"},
        {"id": "d", "column": "Age", "value": "10", "reason": "below min 18"},
        {"id": "d", "column": "Income", "value": "-3", "reason": "below min 0"},
    ]
    invalid = screened.invalid
    assert (invalid.n_rows, invalid.n_invalid, invalid.files) == (4, 3, ("in.csv",))
    assert invalid.counts.tolist() == [[1, 1, 1], [0, 1, 0]]
    assert invalid.by_column() == {"Age": 3, "Income": 1}
    assert invalid.samples == (("old", "150", "10"), ("-3",))


def test_columns_as_their_own_arrays_screen_as_the_matrix_does() -> None:
    ids, values, not_numbers, texts = _partition(
        ["a", "b", "c", "d", "e"], [20, NAN, 150, 10, np.inf], [5, 1, 2, -3, 7], text=["20", "old", "150", "10", "inf"]
    )
    matrix = _screen().screen(ids, values, not_numbers, texts, "in.csv")

    # As a reader hands them over: one array per column, flags only for the column read as text.
    columns = _screen().screen(ids, [values[:, 0].copy(), values[:, 1].copy()], {0: not_numbers[:, 0]}, texts, "in.csv")

    assert columns.keep.tolist() == matrix.keep.tolist() == [True, False, False, False, False]
    assert columns.rejected.equals(matrix.rejected)
    assert columns.invalid.counts.tolist() == matrix.invalid.counts.tolist() == [[2, 1, 1], [0, 1, 0]]
    with pytest.raises(ValueError, match="2 bounds for 1 columns"):
        _screen().screen(ids, [values[:, 0]], {}, texts, "in.csv")
    # No column to screen: every row is kept, and counted.
    nothing = RowScreen((), (), "drop").screen(ids, [], {}, {}, "in.csv")  # type: ignore[arg-type]
    assert nothing.keep.tolist() == [True] * 5 and nothing.invalid.n_rows == 5


def test_under_fail_every_row_is_kept_and_counted() -> None:
    ids, values, not_numbers, texts = _partition([1, 2], [20, 150], [1, 1])

    screened = _screen("fail").screen(ids, values, not_numbers, texts, "in.csv")

    assert screened.keep.all()
    assert screened.invalid.n_invalid == 1


def test_a_partition_without_invalid_rows_gives_an_empty_record_table_of_the_id_type() -> None:
    ids, values, not_numbers, texts = _partition([1, 2], [20, NAN], [1, 1])

    screened = _screen().screen(ids, values, not_numbers, texts, "in.csv")

    assert screened.keep.all() and screened.rejected.num_rows == 0
    assert screened.rejected.schema.names == ["id", "column", "value", "reason"]
    assert screened.rejected.schema.field("id").type == pa.int64()
    assert screened.invalid.files == () and screened.invalid.share == 0.0


def test_counts_add_over_partitions_keeping_the_first_samples_and_each_file_once() -> None:
    screen = _screen()
    first = screen.screen(*_partition([1, 2], [150, 20], [1, 1]), "a.parquet").invalid
    second = screen.screen(*_partition([3, 4, 5], [160, 170, 20], [-1, 1, 1]), "a.parquet").invalid
    third = screen.screen(*_partition([6], [20], [1]), "b.parquet").invalid

    total = combine([first, second, third])

    assert (total.n_rows, total.n_invalid) == (6, 3)
    assert total.by_column() == {"Age": 3, "Income": 1}
    assert total.samples[0] == ("150", "160", "170")
    assert total.files == ("a.parquet",)
    assert total.share == pytest.approx(0.5)
    assert total.problems() == [
        "column 'Age': 3 row(s) (3 above max 100); sample values: 150, 160, 170",
        "column 'Income': 1 row(s) (1 below min 0); sample values: -1",
    ]


def test_input_columns_only_expressions_use_are_screened_as_numbers_after_the_features() -> None:
    screen = row_screen(["Age", "Spent"], [(18, 100), (None, None)], ["Year_Birth", "Spent", "MntWines"], "drop")

    assert screen.columns == ("Age", "Spent", "Year_Birth", "MntWines")
    assert screen.bounds == ((18, 100), (None, None), (None, None), (None, None))
