"""Best-matching units and the map-quality measures built on them.

All functions take the data ``X`` of shape (n_rows, n_features) and the
map's weights of shape (rows, cols, n_features). The work is done by the
chunked, multi-threaded kernels of :mod:`somseg.kernels`, so memory stays
bounded by ``chunk_rows`` x neurons per thread, never by the whole table x
neurons, and repeated rows are matched once.
"""

from dataclasses import dataclass
from typing import Literal

import numpy as np

from somseg import kernels
from somseg.kernels import DedupMode

Adjacency = Literal[8, 4]


@dataclass(frozen=True)
class UnitMatch:
    """Best and second-best units of every row.

    Attributes
    ----------
    bmu : ndarray of int64, shape (n_rows,)
        Row-major index of the best-matching unit.
    second : ndarray of int64, shape (n_rows,)
        Row-major index of the second-best unit (equal to ``bmu`` on a
        one-neuron map).
    distance : ndarray of float64, shape (n_rows,)
        Euclidean distance from the row to its best unit.
    """

    bmu: np.ndarray
    second: np.ndarray
    distance: np.ndarray


def default_chunk_rows(n_neurons: int) -> int:
    """Rows per chunk that keep one chunk's distances in a core's L2 cache (about 2 MB)."""
    return kernels.default_chunk_rows(n_neurons)


def match_units(
    X: np.ndarray,
    weights: np.ndarray,
    chunk_rows: int | None = None,
    *,
    n_threads: int | None = None,
    dedup: DedupMode = "auto",
) -> UnitMatch:
    """Find each row's best and second-best unit.

    Distances are ranked as MiniSom 2.3.6 ranks them in
    ``quantization_error`` and ``topographic_error`` (the expansion
    ``sqrt(max(0, -2 x.w + |x|^2 + |w|^2))`` with the same BLAS product, ties
    to the lowest index), so the figures agree with MiniSom's to the last
    bit; the reported distance is then recomputed directly as
    ``norm(x - w_bmu)``, as MiniSom's ``quantization_error`` does.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
    weights : ndarray of shape (rows, cols, n_features)
    chunk_rows : int, optional
        Rows per chunk; by default :func:`default_chunk_rows`.
    n_threads : int, optional
        Threads; by default every available CPU.
    dedup : {'auto', 'always', 'never'}
        Match each distinct row once and copy the result to its repeats;
        'auto' does so when at most half the rows are distinct. Same result.

    Returns
    -------
    UnitMatch
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_rows, n_features), got shape {X.shape}")
    flat = _flat(weights, X.shape[1])
    if len(X) == 0:
        empty = np.empty(0, dtype=np.int64)
        return UnitMatch(bmu=empty, second=empty.copy(), distance=np.empty(0))
    bmu, second, distance = kernels.best_two_units(
        X, flat, chunk_rows=chunk_rows, n_threads=n_threads, dedup=dedup
    )
    return UnitMatch(bmu=bmu, second=second, distance=distance)


def quantization_error(X: np.ndarray, weights: np.ndarray, match: UnitMatch | None = None) -> float:
    """Mean Euclidean distance from each row to its best-matching unit.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
    weights : ndarray of shape (rows, cols, n_features)
    match : UnitMatch, optional
        Precomputed :func:`match_units` result, to avoid a second pass.

    Returns
    -------
    float
    """
    match = match or match_units(X, weights)
    return float(match.distance.mean())


def topographic_error(
    X: np.ndarray, weights: np.ndarray, adjacency: Adjacency = 8, match: UnitMatch | None = None
) -> float:
    """Share of rows whose best and second-best units are not grid neighbours.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
    weights : ndarray of shape (rows, cols, n_features)
        A rectangular grid.
    adjacency : {8, 4}
        8: diagonal neighbours count as adjacent (MiniSom's convention, the
        reference's); 4: only the four direct neighbours (SOM Toolbox).
    match : UnitMatch, optional
        Precomputed :func:`match_units` result.

    Returns
    -------
    float
        NaN on a one-neuron map, where the measure is undefined.
    """
    rows, cols = weights.shape[:2]
    if rows * cols == 1:
        return float("nan")
    match = match or match_units(X, weights)
    errors = topographic_errors(match, cols, adjacency)
    return float(errors.mean()) if len(errors) else float("nan")


def topographic_errors(match: UnitMatch, cols: int, adjacency: Adjacency = 8) -> np.ndarray:
    """Per-row topographic error flags (True where the two units are not adjacent)."""
    d_row = np.abs(match.bmu // cols - match.second // cols)
    d_col = np.abs(match.bmu % cols - match.second % cols)
    if adjacency == 8:
        return np.maximum(d_row, d_col) > 1
    if adjacency == 4:
        return (d_row + d_col) > 1
    raise ValueError(f"adjacency must be 8 or 4, got {adjacency!r}")


def _flat(weights: np.ndarray, n_features: int) -> np.ndarray:
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 3 or weights.shape[2] != n_features:
        raise ValueError(
            f"weights must have shape (rows, cols, {n_features}); got {weights.shape}"
        )
    return weights.reshape(-1, n_features)
