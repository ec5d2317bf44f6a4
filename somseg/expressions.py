"""Derived features: a small, safe expression language over a table's columns.

A derived feature is declared in the config as ``{name: Age, expr: "2014 - Year_Birth"}``
and computed from the input's columns on every partition, at training and
at scoring alike. An expression holds

* numbers (``2014``, ``0.5``, ``1e3``);
* column names: as they are when they are identifiers (``MntWines``), in
  quotes when they are not (``"Annual Income (k$)"``);
* ``+``, ``-``, ``*``, ``/``, ``**``, unary ``-`` and parentheses;
* the functions ``log1p``, ``log``, ``sqrt``, ``abs``, ``min`` and ``max``
  (``min``/``max`` of two or more arguments, row by row).

The text is parsed with Python's own parser into a tree, and only the
nodes above are accepted; the tree is then evaluated with numpy, column
by column. Nothing is ever handed to ``eval``. A missing input value makes
the derived value missing (it is then imputed like any other).
"""

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

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


@dataclass(frozen=True)
class Expression:
    """A parsed expression: its text, the columns it reads, and its tree.

    Build it with :func:`parse_expression`.
    """

    text: str
    columns: tuple[str, ...]
    _tree: ast.expr = field(repr=False, compare=False)

    def evaluate(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """The expression's value for every row, from the named input columns (float64 arrays, NaN where missing).

        Division by zero and logarithms of values out of their domain give NaN
        or infinity as numpy does; infinities are turned into NaN (missing).
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
    _check(tree, text, columns)
    return Expression(text, tuple(dict.fromkeys(columns)), tree)


def _check(node: ast.expr, text: str, columns: list[str]) -> None:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, str):
            columns.append(node.value)
        elif not isinstance(node.value, (int, float)) or isinstance(node.value, bool):
            raise ValueError(f"expression {text!r}: {node.value!r} is neither a number nor a column name")
    elif isinstance(node, ast.Name):
        columns.append(node.id)
    elif isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        _check(node.left, text, columns)
        _check(node.right, text, columns)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        _check(node.operand, text, columns)
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        name = node.func.id
        if name not in _FUNCTIONS:
            raise ValueError(f"expression {text!r}: unknown function {name!r} (allowed: {', '.join(sorted(_FUNCTIONS))})")
        wanted = _FUNCTIONS[name][1]
        if (wanted is None and len(node.args) < 2) or (wanted is not None and len(node.args) != wanted):
            count = "two or more arguments" if wanted is None else f"{wanted} argument"
            raise ValueError(f"expression {text!r}: {name}() takes {count}, got {len(node.args)}")
        for argument in node.args:
            _check(argument, text, columns)
    else:
        shown = ast.get_source_segment(text.strip(), node) or type(node).__name__
        raise ValueError(
            f"expression {text!r}: {shown!r} is not allowed; use numbers, column names (quoted if they are not "
            "identifiers), + - * / **, parentheses and the functions " + ", ".join(sorted(_FUNCTIONS))
        )


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
    function, wanted = _FUNCTIONS[node.func.id]
    arguments = [_evaluate(argument, columns) for argument in node.args]
    if wanted is None:
        return function(np.broadcast_arrays(*[np.asarray(a, dtype=np.float64) for a in arguments]))
    return function(arguments[0])
