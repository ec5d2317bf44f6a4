"""Ordinal and categorical features: text levels coded as numbers the map can use.

An *ordinal* feature (``Spending_Score: Low < Average < High``) becomes its
level's position, 0, 1, 2, ..., and is then cleaned like any number. A
*categorical* one (``Profession``) becomes one 0/1 column per level,
``Profession=Doctor`` and so on; the cleaner weights the block so that it
counts as one feature (:class:`somseg.cleaning.FeatureCleaner`), and a
segment's mean of a column is the share of its customers at that level.

Levels are compared as text with surrounding spaces removed; an empty or
missing value is missing (imputed later), and any other value that is not a
level is an invalid value, reported with its count and samples. The levels of
a categorical feature may be learnt from the training table
(:func:`count_levels` on each partition, added, then :func:`learn_levels`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

Kind = Literal["ordinal", "categorical"]
_SAMPLE_VALUES = 5


class UnknownLevelError(ValueError):
    """Values of a coded feature that are none of its levels."""

    def __init__(self, column: str, count: int, samples: Sequence[str], levels: Sequence[str]) -> None:
        shown = ", ".join(repr(v) for v in samples)
        known = ", ".join(map(repr, levels[:10])) + (", ..." if len(levels) > 10 else "")
        super().__init__(
            f"column {column!r}: {count} row(s) hold values that are not among its categories ({known}); "
            f"sample values: {shown}"
        )
        self.column = column


def model_columns(name: str, kind: Kind, levels: Sequence[str]) -> list[str]:
    """The model columns of a coded feature: its name (ordinal), or ``name=level`` per level (categorical)."""
    return [name] if kind == "ordinal" else [f"{name}={level}" for level in levels]


def _as_text(values: np.ndarray | pd.Series) -> pd.Series:
    import pandas as pd  # here: the config reads this module, and a config error should cost no pandas import

    text = pd.Series(values, dtype="object").astype("string").str.strip()
    return text.mask(text == "")


def level_codes(values: np.ndarray | pd.Series, column: str, levels: Sequence[str]) -> np.ndarray:
    """Each value's position among ``levels`` (int64; -1 where missing).

    Raises
    ------
    UnknownLevelError
        If a value is not missing and not a level.
    """
    import pandas as pd

    text = _as_text(values)
    codes = pd.Categorical(text, categories=list(levels)).codes.astype(np.int64)
    unknown = _unknown(text, codes)
    if unknown.any():
        samples = list(dict.fromkeys(text[unknown].tolist()))[:_SAMPLE_VALUES]
        raise UnknownLevelError(column, int(unknown.sum()), samples, list(levels))
    return codes


def unknown_levels(values: np.ndarray | pd.Series, levels: Sequence[str]) -> np.ndarray:
    """Where a value is present but none of ``levels`` (bool array)."""
    import pandas as pd

    text = _as_text(values)
    return _unknown(text, pd.Categorical(text, categories=list(levels)).codes)


def _unknown(text: pd.Series, codes: np.ndarray) -> np.ndarray:
    return (np.asarray(codes) < 0) & text.notna().to_numpy()


def encode(values: np.ndarray | pd.Series, column: str, kind: Kind, levels: Sequence[str]) -> list[np.ndarray]:
    """The model columns of a coded feature, float64 with NaN where the value is missing.

    Parameters
    ----------
    values : array-like
        The column as read (text; numbers are compared as their text).
    column : str
        Its name, for messages.
    kind : {'ordinal', 'categorical'}
    levels : sequence of str
        Ordinal: lowest first. Categorical: one model column per level, in this order.

    Returns
    -------
    list of ndarray
        One array (ordinal: the level's position) or one per level (categorical: 1 at the row's level, else 0).
    """
    codes = level_codes(values, column, levels)
    missing = codes < 0
    if kind == "ordinal":
        return [np.where(missing, np.nan, codes.astype(np.float64))]
    return [np.where(missing, np.nan, (codes == index).astype(np.float64)) for index in range(len(levels))]


def count_levels(values: np.ndarray | pd.Series) -> Counter[str]:
    """How many times each level (stripped text, missing skipped) occurs: the partial result of :func:`learn_levels`."""
    counts = _as_text(values).value_counts(dropna=True)
    return Counter({str(level): int(count) for level, count in counts.items()})


def learn_levels(counts: Counter[str], column: str, max_levels: int) -> list[str]:
    """The levels of a categorical feature from its added counts: most frequent first, ties by name.

    Raises
    ------
    ValueError
        If there are none, or more than ``max_levels`` (an identifier or free text, not a category).
    """
    if not counts:
        raise ValueError(f"column {column!r} has no values to learn its categories from")
    if len(counts) > max_levels:
        common = ", ".join(repr(level) for level, _ in counts.most_common(5))
        raise ValueError(
            f"column {column!r} has {len(counts)} distinct values (most common: {common}); a categorical feature "
            f"takes at most {max_levels}: list the ones to keep in its 'categories' (other values are then invalid "
            "rows) or leave the column out"
        )
    return [level for level, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]
