"""Distribution drift between training data and new data.

The training distribution of each feature is kept in the model as shares of
rows in decile bins (plus a bin for missing values), learnt with the cleaner
(:class:`somseg.cleaning.CleaningFit`); new data is binned on the same edges
and compared by the population stability index (PSI). The segment mix is
compared the same way. Rule of thumb: PSI below 0.1 is stable, 0.1 to 0.25
a moderate shift, above 0.25 a major shift.
"""

from collections.abc import Sequence

import numpy as np

_EPSILON = 1e-4  # floor for empty bins, so the logarithm stays finite
DECILES = np.linspace(0.1, 0.9, 9)


def bin_shares(values: np.ndarray, edges: np.ndarray | Sequence[float]) -> np.ndarray:
    """Share of ``values`` in each bin ``(-inf, e0], (e0, e1], ..., (e_last, inf)`` and missing."""
    counts = bin_counts(values, edges)
    return counts / max(len(values), 1)


def bin_counts(values: np.ndarray, edges: np.ndarray | Sequence[float]) -> np.ndarray:
    """Counts per bin as in :func:`bin_shares`; counts of partitions add up to the whole table's."""
    values = np.asarray(values, dtype=float)
    edges = np.asarray(edges, dtype=float)
    missing = np.isnan(values)
    bins = np.searchsorted(edges, values[~missing], side="left")
    counts = np.bincount(bins, minlength=len(edges) + 1).astype(float)
    return np.append(counts, missing.sum())


def population_stability_index(expected: Sequence[float], actual: Sequence[float]) -> float:
    """PSI = sum((actual - expected) * ln(actual / expected)) over bins.

    Parameters
    ----------
    expected, actual : sequence of float
        Shares per bin (each summing to 1); empty bins are floored at 1e-4.

    Returns
    -------
    float
        0 for identical distributions, growing with the shift.
    """
    e = np.maximum(np.asarray(expected, dtype=float), _EPSILON)
    a = np.maximum(np.asarray(actual, dtype=float), _EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def segment_shares(segment: np.ndarray, k: int) -> np.ndarray:
    """Share of rows in each of the ``k`` segments."""
    counts = np.bincount(np.asarray(segment, dtype=np.int64), minlength=k).astype(float)
    return counts / max(len(segment), 1)
