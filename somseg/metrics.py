"""Best-matching units and the map-quality measures built on them.

All functions take the data ``X`` of shape (n_rows, n_features) and the
map's weights of shape (rows, cols, n_features). Rows are processed in
chunks, so memory stays bounded by ``chunk_rows`` x neurons, never by the
whole table x neurons.
"""

from dataclasses import dataclass
from typing import Literal

import numpy as np

_CHUNK_BUDGET = 8_000_000  # distance-matrix cells per chunk (~64 MB of float64)

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
    """Rows per chunk that keep one distance matrix near 64 MB."""
    return max(1024, _CHUNK_BUDGET // max(n_neurons, 1))


def match_units(X: np.ndarray, weights: np.ndarray, chunk_rows: int | None = None) -> UnitMatch:
    """Find each row's best and second-best unit.

    Distances are ranked with the expansion ``|x|^2 - 2 x.w + |w|^2``, as
    MiniSom ranks them in ``quantization_error`` and ``topographic_error``,
    so the figures agree with MiniSom's to the last bit; the reported
    distance is then recomputed directly as ``|x - w_bmu|``.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
    weights : ndarray of shape (rows, cols, n_features)
    chunk_rows : int, optional
        Rows per chunk; by default about 64 MB of distances per chunk.

    Returns
    -------
    UnitMatch
    """
    X = np.asarray(X, dtype=np.float64)
    flat = _flat(weights, X.shape[1])
    n_neurons = flat.shape[0]
    chunk_rows = chunk_rows or default_chunk_rows(n_neurons)
    bmu = np.empty(len(X), dtype=np.int64)
    second = np.empty(len(X), dtype=np.int64)
    flat_sq = np.einsum("ij,ij->i", flat, flat)
    for start in range(0, len(X), chunk_rows):
        block = X[start : start + chunk_rows]
        sq = np.einsum("ij,ij->i", block, block)[:, None] - 2.0 * (block @ flat.T) + flat_sq
        np.maximum(sq, 0.0, out=sq)
        best = sq.argmin(axis=1)
        bmu[start : start + len(block)] = best
        if n_neurons > 1:
            sq[np.arange(len(block)), best] = np.inf
            second[start : start + len(block)] = sq.argmin(axis=1)
        else:
            second[start : start + len(block)] = best
    distance = np.sqrt(np.einsum("ij,ij->i", X - flat[bmu], X - flat[bmu])) if len(X) else np.empty(0)
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


def outlier_threshold(distances: np.ndarray, percentile: float) -> float:
    """The distance above which a row is an outlier (linear-interpolated percentile)."""
    return float(np.percentile(distances, percentile))


def _flat(weights: np.ndarray, n_features: int) -> np.ndarray:
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 3 or weights.shape[2] != n_features:
        raise ValueError(
            f"weights must have shape (rows, cols, {n_features}); got {weights.shape}"
        )
    return weights.reshape(-1, n_features)
