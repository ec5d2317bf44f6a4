"""Distribution drift between training data and new data.

The training distribution of each feature is kept in the model as shares of
rows in decile bins (plus a bin for missing values), learnt with the cleaner
(:class:`somseg.cleaning.CleaningFit`); new data is binned on the same edges
and compared by the population stability index (PSI). The segment mix is
compared the same way. Rule of thumb: PSI below 0.1 is stable, 0.1 to 0.25
a moderate shift, above 0.25 a major shift.

That rule of thumb assumes thousands of rows. A few dozen rows cannot fill
ten bins evenly, so their PSI is large with no drift at all;
:func:`sampling_psi` and :func:`sampling_share` give the level that
sampling alone reaches, and the drift checks (:mod:`somseg.gates`) only
raise an alarm above both.
"""

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from scipy.stats import binom

from somseg import kernels

_EPSILON = 1e-4  # floor for empty bins, so the logarithm stays finite
DECILES = np.linspace(0.1, 0.9, 9)
_DRAWS = 4000  # Monte Carlo samples per level: its 99.9th percentile rests on four of them


def bin_shares(values: np.ndarray, edges: np.ndarray | Sequence[float]) -> np.ndarray:
    """Share of ``values`` in each bin ``(-inf, e0], (e0, e1], ..., (e_last, inf)`` and missing."""
    counts = bin_counts(values, edges)
    return counts / max(len(values), 1)


def bin_counts(values: np.ndarray, edges: np.ndarray | Sequence[float]) -> np.ndarray:
    """Counts per bin as in :func:`bin_shares`; counts of partitions add up to the whole table's."""
    values = np.asarray(values, dtype=float).reshape(-1, 1)
    return kernels.bin_counts(values, [np.asarray(edges, dtype=float)])[0].astype(float)


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


def psi_rows(expected: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """:func:`population_stability_index` of every row of ``actual`` (shares per bin) against ``expected``."""
    e = np.maximum(np.asarray(expected, dtype=float), _EPSILON)
    a = np.maximum(np.asarray(actual, dtype=float), _EPSILON)
    return np.sum((a - e) * np.log(a / e), axis=-1)


def sampling_psi(
    shares: Sequence[float],
    n_rows: int,
    quantile: float,
    *,
    reference_rows: int | None = None,
    draws: int = _DRAWS,
    seed: int = 0,
) -> float:
    """The PSI that sampling alone exceeds with probability ``1 - quantile``.

    Draws ``draws`` seeded samples of ``n_rows`` rows from the bins'
    ``shares`` (and, when ``reference_rows`` is given, the reference shares
    from a sample of that size too, as the training table was one) and
    takes the quantile of their PSI. A sample drawn from the very
    distribution the reference describes, with no drift at all, stays below
    this level with probability ``quantile``; on small samples it is far
    above the rule-of-thumb limits, because a few rows cannot fill ten bins
    evenly.

    Parameters
    ----------
    shares : sequence of float
        The reference share of each bin (summing to 1).
    n_rows : int
        Rows of the compared sample.
    quantile : float
        In (0, 1), for example ``1 - 0.01 / n_checks``.
    reference_rows : int, optional
        Rows the reference shares were measured on.
    draws : int
        Monte Carlo samples; the result is deterministic for a ``seed``.
    seed : int

    Returns
    -------
    float
        0 when there are no rows to compare.
    """
    return _sampling_psi(tuple(float(share) for share in shares), n_rows, quantile, reference_rows, draws, seed)


@lru_cache(maxsize=256)
def _sampling_psi(
    shares: tuple[float, ...], n_rows: int, quantile: float, reference_rows: int | None, draws: int, seed: int
) -> float:
    # Cached: the level depends only on these, and checking many batches of one size asks for it again and again.
    p = np.clip(np.asarray(shares, dtype=float), 0, None)
    if n_rows <= 0 or p.sum() <= 0:
        return 0.0
    p = p / p.sum()
    rng = np.random.default_rng(seed)
    actual = rng.multinomial(n_rows, p, size=draws) / n_rows
    expected = p if not reference_rows else rng.multinomial(reference_rows, p, size=draws) / reference_rows
    return float(np.quantile(psi_rows(expected, actual), quantile))


def sampling_share(share: float, n_rows: int, quantile: float) -> float:
    """The share of ``n_rows`` rows that sampling alone exceeds with probability ``1 - quantile``.

    The binomial quantile of ``n_rows`` draws that each fall in the counted
    group (an outlier, say) with probability ``share``, as a share of
    ``n_rows``.
    """
    if n_rows <= 0:
        return 0.0
    return float(binom.ppf(quantile, n_rows, min(max(share, 0.0), 1.0)) / n_rows)
