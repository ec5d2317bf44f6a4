"""Derived features: a small, safe expression language over a table's columns.

A derived feature is declared in the config as ``{name: Age, expr: "2014 - Year_Birth"}``
and computed from the input's columns on every partition, at training and
at scoring alike. An expression holds

* numbers (``2014``, ``0.5``, ``1e3``);
* column names: as they are when they are identifiers (``MntWines``), in
  quotes when they are not (``"Annual Income (k$)"``);
* ``+``, ``-``, ``*``, ``/``, ``**``, unary ``-`` and parentheses;
* the functions ``log1p``, ``log``, ``sqrt``, ``abs``, ``min`` and ``max``
  (``min``/``max`` of two or more arguments, row by row);
* ``days_since(column, "2014-12-31")`` and ``years_since(column, "2014-12-31")``:
  the time from a date column's value to a fixed reference date (a fixed
  date, never "today", so that scoring computes what training computed),
  with an optional third argument, the column's ``strftime`` format
  (``"%d-%m-%Y"``) when its dates are not ISO 8601.

The text is parsed with Python's own parser into a tree, and only the
nodes above are accepted; the tree is then evaluated with numpy, column
by column. Nothing is ever handed to ``eval``. A missing input value makes
the derived value missing (it is then imputed like any other). A date
that does not parse stops the run, naming the column and sample values.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

_OPERATORS: dict[type, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.divide,
    ast.Pow: np.power,
}
_FUNCTIONS: dict[str, tuple[Callable[..., np.ndarray], int | None]] = {  # name: (function, arguments; None = 2 or more)
    "log1p": (np.log1p, 1),
    "log": (np.log, 1),
    "sqrt": (np.sqrt, 1),
    "abs": (np.abs, 1),
    "min": (np.minimum.reduce, None),
    "max": (np.maximum.reduce, None),
}
# Date functions: name -> days per unit of the result.
_DATE_FUNCTIONS = {"days_since": 1.0, "years_since": 365.2425}
_SAMPLE_VALUES = 5


class DateParseError(ValueError):
    """Values of a date column that are not dates in the expected format."""

    def __init__(self, column: str, count: int, samples: list[object], date_format: str | None) -> None:
        shown = ", ".join(repr(v) for v in samples)
        expected = f"format {date_format!r}" if date_format else "ISO 8601 (give the format as a third argument, e.g. '%d-%m-%Y')"
        super().__init__(f"column {column!r}: {count} value(s) are not dates in {expected}; sample values: {shown}")
        self.column = column


@dataclass(frozen=True)
class Expression:
    """A parsed expression: its text, the columns it reads, and its tree.

    Build it with :func:`parse_expression`.
    """

    text: str
    columns: tuple[str, ...]
    _tree: ast.expr = field(repr=False, compare=False)
    date_columns: tuple[str, ...] = ()

    @property
    def date_formats(self) -> dict[str, str | None]:
        """The format each date column is parsed with (None: ISO 8601), as its first date function gives it."""
        formats: dict[str, str | None] = {}
        for node in ast.walk(self._tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _DATE_FUNCTIONS:
                column, _, *date_format = node.args
                name = column.id if isinstance(column, ast.Name) else column.value  # type: ignore[attr-defined]
                formats.setdefault(name, date_format[0].value if date_format else None)  # type: ignore[attr-defined]
        return formats

    def evaluate(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """The expression's value for every row, from the named input columns.

        Numeric columns are float64 arrays, NaN where missing; the
        :attr:`date_columns` are given as read (text, dates or timestamps,
        None where missing). Division by zero and logarithms of values out of
        their domain give NaN or infinity as numpy does; infinities are turned
        into NaN (missing).

        Raises
        ------
        DateParseError
            If a date column holds values that are not dates.
        """
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            value = np.asarray(_evaluate(self._tree, columns), dtype=np.float64)
        if value.ndim == 0:  # an expression of numbers alone
            size = len(next(iter(columns.values()))) if columns else 1
            value = np.full(size, float(value))
        return np.where(np.isfinite(value), value, np.nan)


def parse_expression(text: str) -> Expression:
    """Parse an expression of the language above.

    Raises
    ------
    ValueError
        Naming what is not allowed and where, for example
        ``unknown function 'exp' (allowed: abs, log, log1p, max, min, sqrt)``.
    """
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ValueError(f"expression {text!r} is not valid: {exc.msg} at column {exc.offset}") from exc
    columns: list[str] = []
    dates: list[str] = []
    _check(tree, text, columns, dates)
    return Expression(text, tuple(dict.fromkeys(columns)), tree, tuple(dict.fromkeys(dates)))


def _check(node: ast.expr, text: str, columns: list[str], dates: list[str]) -> None:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _DATE_FUNCTIONS:
        _check_date_call(node, text, columns, dates)
    elif isinstance(node, ast.Constant):
        if isinstance(node.value, str):
            columns.append(node.value)
        elif not isinstance(node.value, (int, float)) or isinstance(node.value, bool):
            raise ValueError(f"expression {text!r}: {node.value!r} is neither a number nor a column name")
    elif isinstance(node, ast.Name):
        columns.append(node.id)
    elif isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        _check(node.left, text, columns, dates)
        _check(node.right, text, columns, dates)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        _check(node.operand, text, columns, dates)
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        name = node.func.id
        if name not in _FUNCTIONS:
            raise ValueError(f"expression {text!r}: unknown function {name!r} (allowed: {', '.join(_allowed())})")
        wanted = _FUNCTIONS[name][1]
        if (wanted is None and len(node.args) < 2) or (wanted is not None and len(node.args) != wanted):
            count = "two or more arguments" if wanted is None else f"{wanted} argument"
            raise ValueError(f"expression {text!r}: {name}() takes {count}, got {len(node.args)}")
        for argument in node.args:
            _check(argument, text, columns, dates)
    else:
        shown = ast.get_source_segment(text.strip(), node) or type(node).__name__
        raise ValueError(
            f"expression {text!r}: {shown!r} is not allowed; use numbers, column names (quoted if they are not "
            "identifiers), + - * / **, parentheses and the functions " + ", ".join(_allowed())
        )


def _allowed() -> list[str]:
    return sorted([*_FUNCTIONS, *_DATE_FUNCTIONS])


def _check_date_call(node: ast.Call, text: str, columns: list[str], dates: list[str]) -> None:
    name = node.func.id  # type: ignore[attr-defined]
    usage = f'{name}(column, "YYYY-MM-DD") or {name}(column, "YYYY-MM-DD", "%d-%m-%Y")'
    if node.keywords or len(node.args) not in (2, 3):
        raise ValueError(f"expression {text!r}: {name}() takes a date column, a reference date and optionally a format: {usage}")
    column, *rest = node.args
    if isinstance(column, ast.Name):
        columns.append(column.id)
        dates.append(column.id)
    elif isinstance(column, ast.Constant) and isinstance(column.value, str):
        columns.append(column.value)
        dates.append(column.value)
    else:
        raise ValueError(f"expression {text!r}: the first argument of {name}() must be a column name: {usage}")
    if not all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in rest):
        raise ValueError(f"expression {text!r}: the reference date and format of {name}() must be quoted text: {usage}")
    try:
        _reference_date(rest[0].value)  # type: ignore[attr-defined]
    except ValueError as exc:
        raise ValueError(f"expression {text!r}: {exc}") from exc


def _reference_date(text: str) -> np.datetime64:
    try:
        return np.datetime64(text.strip(), "ns")
    except (ValueError, TypeError) as exc:
        raise ValueError(f"reference date {text!r} is not a date (write it as YYYY-MM-DD)") from exc


def parse_dates(values: np.ndarray, column: str, date_format: str | None = None) -> np.ndarray:
    """A date column as datetime64[ns] (NaT where missing).

    Text is parsed as ISO 8601, or with ``date_format``; dates and timestamps
    (Parquet's types) are taken as they are, time zones dropped.

    Raises
    ------
    DateParseError
        Naming the column, how many values are not dates, and samples of them.
    """
    parsed, bad, text = _parse_dates(values, date_format)
    if bad.any():
        raise DateParseError(column, int(bad.sum()), text[bad].head(_SAMPLE_VALUES).tolist(), date_format)
    return parsed


def bad_dates(values: np.ndarray, date_format: str | None = None) -> np.ndarray:
    """Where a value is present but not a date (ISO 8601, or ``date_format``): a bool array."""
    return _parse_dates(values, date_format)[1]


def _parse_dates(values: np.ndarray, date_format: str | None) -> tuple[np.ndarray, np.ndarray, pd.Series]:
    import pandas as pd  # here: the config reads this module, and a config error should cost no pandas import

    series = pd.Series(values, dtype=object if np.asarray(values).dtype.kind in "OUS" else None)
    if pd.api.types.is_datetime64_any_dtype(series):
        parsed = series.dt.tz_localize(None) if getattr(series.dt, "tz", None) is not None else series
        return parsed.to_numpy(dtype="datetime64[ns]"), np.zeros(len(series), dtype=bool), series
    text = series.astype("string").str.strip()
    given = text.notna() & (text != "")
    parsed = pd.to_datetime(text.where(given), format=date_format or "ISO8601", errors="coerce")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    return parsed.to_numpy(dtype="datetime64[ns]"), (given & parsed.isna()).to_numpy(dtype=bool), text


def _evaluate(node: ast.expr, columns: Mapping[str, np.ndarray]) -> np.ndarray | float:
    if isinstance(node, ast.Constant):
        return columns[node.value] if isinstance(node.value, str) else float(node.value)
    if isinstance(node, ast.Name):
        return columns[node.id]
    if isinstance(node, ast.BinOp):
        return _OPERATORS[type(node.op)](_evaluate(node.left, columns), _evaluate(node.right, columns))
    if isinstance(node, ast.UnaryOp):
        value = _evaluate(node.operand, columns)
        return np.negative(value) if isinstance(node.op, ast.USub) else value
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    if node.func.id in _DATE_FUNCTIONS:
        return _time_since(node, columns)
    function, wanted = _FUNCTIONS[node.func.id]
    arguments = [_evaluate(argument, columns) for argument in node.args]
    if wanted is None:
        return function(np.broadcast_arrays(*[np.asarray(a, dtype=np.float64) for a in arguments]))
    return function(arguments[0])


def _time_since(node: ast.Call, columns: Mapping[str, np.ndarray]) -> np.ndarray:
    column, reference, *date_format = node.args
    name = column.id if isinstance(column, ast.Name) else column.value  # type: ignore[attr-defined]
    when = parse_dates(columns[name], name, date_format[0].value if date_format else None)  # type: ignore[attr-defined]
    elapsed = _reference_date(reference.value) - when  # type: ignore[attr-defined]
    days = elapsed / np.timedelta64(1, "D")  # NaT gives NaN
    return days / _DATE_FUNCTIONS[node.func.id]  # type: ignore[attr-defined]
