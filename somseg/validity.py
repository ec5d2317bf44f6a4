"""Invalid rows: values that are not numbers, or lie outside a feature's declared range.

A row is invalid when any of its screened values does not parse as a number
or lies outside its feature's declared ``[min, max]`` (inclusive, as the
data-quality suite's range expectation). A missing value is never invalid:
it is imputed later. The screen runs on every partition as it is ingested
(:class:`RowScreen`), so it is the same on any executor: each partition
gives the rows to keep, one record per invalid value (id, column, value as
text, reason) and an :class:`InvalidRows` partial result; partial results
add up over the partitions, and the run decides on the total
(:func:`somseg.gates.judge_invalid_rows`).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

Bounds = tuple[float | None, float | None]
InvalidRowPolicy = Literal["fail", "drop"]

VALID, NOT_A_NUMBER, BELOW_MIN, ABOVE_MAX = 0, 1, 2, 3
N_REASONS = 3  # not a number, below min, above max
REJECTED_COLUMNS = ("id", "column", "value", "reason")
_SAMPLE_VALUES = 5


def parse_numbers(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A column's values as float64, and where a value is present but not a number.

    Parameters
    ----------
    values : pandas.Series
        Numbers, or text as read from a file.

    Returns
    -------
    numbers : ndarray of float64
        NaN where the value is missing, empty or not a number.
    not_numbers : ndarray of bool
        True where a non-empty value does not parse as a number.
    """
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=np.float64, na_value=np.nan), np.zeros(len(values), dtype=bool)
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() & values.notna() & (values.astype("string").str.strip() != "")
    return numbers.to_numpy(dtype=np.float64, na_value=np.nan), bad.to_numpy(dtype=bool)


def invalid_codes(
    values: np.ndarray | Sequence[np.ndarray],
    bounds: Sequence[Bounds],
    not_numbers: np.ndarray | Mapping[int, np.ndarray] | None = None,
    n_rows: int | None = None,
) -> np.ndarray:
    """Why each value is invalid: :data:`VALID`, :data:`NOT_A_NUMBER` (also ``inf``), :data:`BELOW_MIN` or :data:`ABOVE_MAX`.

    Parameters
    ----------
    values : ndarray of shape (n_rows, n_columns), or sequence of n_columns arrays of shape (n_rows,)
        Parsed values, NaN where missing (or not a number). As columns, a
        table's own arrays are read where they lie, without a matrix built
        for them.
    bounds : sequence of (float or None, float or None)
        Each column's inclusive range; None is unbounded.
    not_numbers : ndarray of bool, shape (n_rows, n_columns), or mapping of column index to bool array, optional
        Values that did not parse as numbers (a mapping names only the columns that have such flags).
    n_rows : int, optional
        The number of rows, when ``values`` is a sequence that may hold no column.

    Returns
    -------
    ndarray of int8, shape (n_rows, n_columns)
        A missing value is valid: NaN compares false with either bound.
    """
    columns = [np.asarray(column, dtype=np.float64) for column in _columns(values)]
    if n_rows is None:
        n_rows = values.shape[0] if isinstance(values, np.ndarray) else (len(columns[0]) if columns else 0)
    if len(columns) != len(bounds) or any(len(column) != n_rows for column in columns):
        raise ValueError(f"{len(bounds)} bounds for {len(columns)} columns of lengths {sorted({len(c) for c in columns})}")
    flags = dict(enumerate(_columns(not_numbers))) if isinstance(not_numbers, np.ndarray) else not_numbers or {}
    codes = np.zeros((n_rows, len(bounds)), dtype=np.int8, order="F")  # filled a column at a time
    for c, ((low, high), column) in enumerate(zip(bounds, columns, strict=True)):
        code = codes[:, c]
        if low is not None:
            code[column < low] = BELOW_MIN
        if high is not None:
            code[column > high] = ABOVE_MAX
        flagged = flags.get(c)
        if flagged is not None:
            code[np.asarray(flagged, dtype=bool)] = NOT_A_NUMBER
        # inf and -inf parse as floats but are no measurement: no mean, no distance, no segment.
        code[np.isinf(column)] = NOT_A_NUMBER
    return codes


def _columns(values: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    if isinstance(values, np.ndarray):
        if values.ndim != 2:
            raise ValueError(f"values must be a 2-D array or a sequence of columns, got shape {values.shape}")
        return [values[:, c] for c in range(values.shape[1])]
    return [np.asarray(column) for column in values]


# What a screened column is parsed as: a value that does not parse is "not a <kind>".
ParsedAs = Literal["number", "date", "category"]


def reasons(bounds: Bounds, parsed_as: ParsedAs = "number") -> tuple[str, str, str, str]:
    """The reason text of each code for a column with ``bounds`` (index 0, valid, is empty)."""
    low, high = bounds
    return ("", f"not a {parsed_as}", f"below min {low:g}" if low is not None else "below min",
            f"above max {high:g}" if high is not None else "above max")


@dataclass(frozen=True)
class InvalidRows:
    """Partial result of the screen: rows seen, rows invalid, and per column why and which values.

    Attributes
    ----------
    columns : tuple of str
        The screened columns, in order.
    bounds : tuple of (float or None, float or None)
        Each column's declared range.
    n_rows : int
        Rows screened (before any was dropped).
    n_invalid : int
        Rows with at least one invalid value.
    counts : ndarray of int64, shape (n_columns, 3)
        Per column, the rows whose value is not a number, below min, above max.
    samples : tuple of tuple of str
        Per column, the first invalid values, as text.
    files : tuple of str
        The input files that held invalid rows, in order.
    parsed_as : tuple of str
        What each column is parsed as (empty: numbers).
    """

    columns: tuple[str, ...]
    bounds: tuple[Bounds, ...]
    n_rows: int
    n_invalid: int
    counts: np.ndarray
    samples: tuple[tuple[str, ...], ...]
    files: tuple[str, ...] = ()
    parsed_as: tuple[ParsedAs, ...] = ()

    def __add__(self, other: "InvalidRows") -> "InvalidRows":
        samples = tuple((a + b)[:_SAMPLE_VALUES] for a, b in zip(self.samples, other.samples, strict=True))
        return InvalidRows(
            self.columns, self.bounds, self.n_rows + other.n_rows, self.n_invalid + other.n_invalid,
            self.counts + other.counts, samples, tuple(dict.fromkeys(self.files + other.files)), self.parsed_as,
        )

    @property
    def share(self) -> float:
        """Invalid rows over rows screened (0 for no rows)."""
        return self.n_invalid / self.n_rows if self.n_rows else 0.0

    def by_column(self) -> dict[str, int]:
        """Invalid rows per column that has any (a row invalid in two columns counts in both)."""
        totals = self.counts.sum(axis=1)
        return {name: int(total) for name, total in zip(self.columns, totals, strict=True) if total}

    def problems(self) -> list[str]:
        """One line per column with invalid values: the count per reason and sample values."""
        lines = []
        kinds = self.parsed_as or ("number",) * len(self.columns)
        for name, bounds, counts, samples, kind in zip(
            self.columns, self.bounds, self.counts, self.samples, kinds, strict=True
        ):
            if not counts.sum():
                continue
            why = ", ".join(f"{int(n)} {reason}" for n, reason in zip(counts, reasons(bounds, kind)[1:], strict=True) if n)
            lines.append(f"column {name!r}: {int(counts.sum())} row(s) ({why}); sample values: {', '.join(samples)}")
        return lines


@dataclass(frozen=True)
class ScreenedRows:
    """A partition through the screen: the rows to keep, the records of invalid values, the partial result."""

    keep: np.ndarray
    rejected: pa.Table
    invalid: InvalidRows


@dataclass(frozen=True)
class RowScreen:
    """Finds the invalid rows of a partition; with policy ``drop`` they are left out of the ingested table.

    Parameters
    ----------
    columns : tuple of str
        Screened columns: the features (derived ones after deriving), then
        input columns that only expressions use (checked as numbers only).
    bounds : tuple of (float or None, float or None)
        Each column's inclusive range.
    policy : {'fail', 'drop'}
        ``fail`` keeps every row (the run stops on the total); ``drop``
        keeps only the valid rows.
    parsed_as : tuple of {'number', 'date', 'category'}, optional
        What each column is parsed as (empty: numbers): a value that does
        not parse is "not a number", "not a date" or "not a category".
    """

    columns: tuple[str, ...]
    bounds: tuple[Bounds, ...]
    policy: InvalidRowPolicy = "fail"
    parsed_as: tuple[ParsedAs, ...] = ()

    def screen(
        self,
        ids: pa.Array | pa.ChunkedArray,
        values: np.ndarray | Sequence[np.ndarray],
        not_numbers: np.ndarray | Mapping[int, np.ndarray],
        texts: Mapping[int, pa.Array],
        source: str,
    ) -> ScreenedRows:
        """Screen one partition.

        Parameters
        ----------
        ids : pyarrow array
            The id of each row.
        values : ndarray of shape (n_rows, n_columns), or sequence of n_columns arrays
            The screened columns, parsed (NaN where missing or not a number).
        not_numbers : ndarray of bool, shape (n_rows, n_columns), or mapping of column index to bool array
            Values that did not parse as numbers (see :func:`invalid_codes`).
        texts : mapping of int to pyarrow string array
            The raw text of the columns read as text, by column index: the
            value recorded for one that is not a number.
        source : str
            The input file the partition comes from.

        Returns
        -------
        ScreenedRows
        """
        columns = _columns(values)
        n_rows = len(ids)
        codes = invalid_codes(columns, self.bounds, not_numbers, n_rows=n_rows)
        invalid = codes != VALID
        rows_invalid = invalid.any(axis=1)
        counts = np.zeros((len(self.columns), 3), dtype=np.int64)
        if rows_invalid.any():  # most partitions have no invalid value: nothing to count
            counts[:] = np.stack([(codes == code).sum(axis=0) for code in (NOT_A_NUMBER, BELOW_MIN, ABOVE_MAX)], axis=1)
        rejected = self._records(pa.chunked_array([ids]) if isinstance(ids, pa.Array) else ids, columns, codes, texts)
        samples = tuple(
            tuple(rejected.filter(pc.equal(rejected.column("column"), name)).column("value")[:_SAMPLE_VALUES].to_pylist())
            for name in self.columns
        )
        partial = InvalidRows(self.columns, self.bounds, n_rows, int(rows_invalid.sum()),
                              counts.astype(np.int64), samples, (source,) if rows_invalid.any() else (), self.parsed_as)
        return ScreenedRows(~rows_invalid if self.policy == "drop" else np.ones(n_rows, dtype=bool), rejected, partial)

    def _records(
        self, ids: pa.ChunkedArray, columns: list[np.ndarray], codes: np.ndarray, texts: Mapping[int, pa.Array]
    ) -> pa.Table:
        tables = [self._empty(ids.type)]
        for c, name in enumerate(self.columns):
            rows = np.flatnonzero(codes[:, c])
            if not rows.size:
                continue
            found = codes[rows, c]
            value = pc.cast(pa.array(columns[c][rows], type=pa.float64()), pa.string())
            if c in texts:
                raw = pc.cast(texts[c].take(pa.array(rows)), pa.string())
                value = pc.if_else(pa.array(found == NOT_A_NUMBER), raw, value)
            tables.append(pa.table({
                "id": ids.take(pa.array(rows)),
                "column": pa.array(np.full(rows.size, name, dtype=object), type=pa.string()),
                "value": value,
                "reason": pa.array(np.asarray(reasons(self.bounds[c], self._parsed_as(c)), dtype=object)[found],
                                   type=pa.string()),
                "_row": pa.array(rows, type=pa.int64()),
                "_column": pa.array(np.full(rows.size, c, dtype=np.int64)),
            }))
        # One table in row order (then column order), as a reader of the input would look them up.
        records = pa.concat_tables(tables).sort_by([("_row", "ascending"), ("_column", "ascending")])
        return records.select(list(REJECTED_COLUMNS))

    def _parsed_as(self, column: int) -> ParsedAs:
        return self.parsed_as[column] if self.parsed_as else "number"

    @staticmethod
    def _empty(id_type: pa.DataType) -> pa.Table:
        return pa.table({
            "id": pa.array([], type=id_type),
            **{name: pa.array([], type=pa.string()) for name in REJECTED_COLUMNS[1:]},
            "_row": pa.array([], type=pa.int64()),
            "_column": pa.array([], type=pa.int64()),
        })


def row_screen(
    features: Sequence[str],
    bounds: Sequence[Bounds],
    input_columns: Sequence[str] = (),
    policy: InvalidRowPolicy = "fail",
    text_columns: Mapping[str, ParsedAs] | None = None,
) -> RowScreen:
    """The screen of ``features`` (with their ranges) and of the input columns only expressions use.

    Parameters
    ----------
    features : sequence of str
    bounds : sequence of (float or None, float or None)
        Each feature's declared range.
    input_columns : sequence of str
        Columns read from the input (checked as numbers); those that are not
        features are screened after the features, without a range.
    policy : {'fail', 'drop'}
    text_columns : mapping of str to {'date', 'category'}, optional
        Columns read as text and parsed as dates or levels, screened last,
        without a range.

    Returns
    -------
    RowScreen
    """
    text = dict(text_columns or {})
    extra = [name for name in input_columns if name not in features and name not in text]
    columns = (*features, *extra, *text)
    parsed_as: tuple[ParsedAs, ...] = (*("number",) * (len(features) + len(extra)), *text.values())
    return RowScreen(columns, tuple([*map(tuple, bounds), *[(None, None)] * (len(extra) + len(text))]), policy, parsed_as)
