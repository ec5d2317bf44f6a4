"""The trained map against every row: one pass over the partitions, then a finish.

Each partition's rows are matched to their best and second-best units
(:meth:`AssessRequest.assess`), and the partition reports sums that add up
over partitions (:class:`MapPartial`): distances, topographic errors, hits,
the moments of the raw features of the rows each neuron won (segment
profiles are merges of these, for any clustering of the neurons), the pairs
of best and second-best units (for the Kaski-Lagus error), a first summary
of the distances (for the exact outlier percentile) and the rows of the
seeded evaluation sample. :func:`finish_assessment` turns the total into
:class:`somseg.results.MapFigures`.
"""

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from somseg.metrics import UnitMatch, match_units, topographic_errors
from somseg.results import MapFigures
from somseg.stats import (
    ColumnSummary,
    CoMoments,
    Moments,
    OrderStatistics,
    Summaries,
    fit_in_memory,
    percentile_from,
    percentile_learner,
    summarise_column,
)
from somseg.ward import grid_edges

_PATH_BLOCK_CELLS = 8_000_000  # path lengths per block of source units: bounds the memory of one block
_COUNTED_PAIRS = 1 << 20  # (best, second) unit pairs up to which a partition counts them in a table


def sample_positions(n_rows: int, size: int, seed: int) -> np.ndarray:
    """Sorted global row indices of the evaluation sample: all rows, or a seeded sample of ``size``."""
    if n_rows <= size:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(seed).choice(n_rows, size, replace=False))


@dataclass(frozen=True)
class EvaluationSample:
    """Rows of the evaluation sample: their global positions, standardised values and best units."""

    positions: np.ndarray
    X: np.ndarray
    bmu: np.ndarray

    def __add__(self, other: "EvaluationSample") -> "EvaluationSample":
        return EvaluationSample(
            np.concatenate([self.positions, other.positions]),
            np.concatenate([self.X, other.X]),
            np.concatenate([self.bmu, other.bmu]),
        )


@dataclass(frozen=True)
class MapPartial:
    """One partition's sums for the map's figures; ``+`` merges partitions."""

    n_rows: int
    distance_sum: float
    squared_distance_sum: float
    norm_sum: float
    topographic_errors_8: int
    topographic_errors_4: int
    hits: np.ndarray
    unit_pairs: tuple[np.ndarray, np.ndarray]
    neuron_moments: Moments
    neuron_missing: np.ndarray
    distances: ColumnSummary
    sample: EvaluationSample

    def __add__(self, other: "MapPartial") -> "MapPartial":
        return MapPartial(
            self.n_rows + other.n_rows,
            self.distance_sum + other.distance_sum,
            self.squared_distance_sum + other.squared_distance_sum,
            self.norm_sum + other.norm_sum,
            self.topographic_errors_8 + other.topographic_errors_8,
            self.topographic_errors_4 + other.topographic_errors_4,
            self.hits + other.hits,
            _merge_pairs(self.unit_pairs, other.unit_pairs),
            self.neuron_moments + other.neuron_moments,
            self.neuron_missing + other.neuron_missing,
            self.distances + other.distances,
            self.sample + other.sample,
        )


def _merge_pairs(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    codes, inverse = np.unique(np.concatenate([a[0], b[0]]), return_inverse=True)
    return codes, np.bincount(inverse, weights=np.concatenate([a[1], b[1]]), minlength=len(codes)).astype(np.int64)


@dataclass(frozen=True)
class AssessRequest:
    """Match a partition to the map ``weights`` and take its sums.

    ``sample`` holds the sorted global row indices of the evaluation sample.
    """

    weights: np.ndarray
    sample: np.ndarray
    chunk_rows: int | None = None
    n_threads: int | None = None

    def assess(self, X: np.ndarray, raw: np.ndarray, first_row: int = 0) -> tuple[UnitMatch, MapPartial]:
        """Best units of the rows of ``X`` and the partition's :class:`MapPartial`.

        Parameters
        ----------
        X : ndarray of shape (n_rows, n_features)
            The partition, standardised.
        raw : ndarray of shape (n_rows, n_features)
            The same rows in raw units, NaN where missing (for the profiles).
        first_row : int
            Global index of the partition's first row.
        """
        rows, cols, _ = self.weights.shape
        n_units = rows * cols
        match = match_units(X, self.weights, self.chunk_rows, n_threads=self.n_threads)
        local = self.sample[(self.sample >= first_row) & (self.sample < first_row + len(X))] - first_row
        hits = np.bincount(match.bmu, minlength=n_units).astype(np.int64)
        moments = Moments.of(raw, match.bmu, n_units)
        partial = MapPartial(
            n_rows=len(X),
            distance_sum=float(match.distance.sum()),
            squared_distance_sum=float(np.dot(match.distance, match.distance)),
            # Standardised rows have mean 0: a one-neuron map's unit sits there, at this distance from each row.
            norm_sum=_norm_sum(np.asarray(X, dtype=np.float64)),
            topographic_errors_8=int(topographic_errors(match, cols, 8).sum()),
            topographic_errors_4=int(topographic_errors(match, cols, 4).sum()),
            hits=hits,
            unit_pairs=_pair_counts(match, n_units),
            neuron_moments=moments,
            # The moments count each neuron's observed values: the rest of its rows are missing.
            neuron_missing=hits[:, None] - moments.n.astype(np.int64),
            distances=summarise_column(match.distance),
            sample=EvaluationSample(local + first_row, np.asarray(X)[local], match.bmu[local]),
        )
        return match, partial


def _norm_sum(X: np.ndarray) -> float:
    # einsum reduces each short row in one loop, where norm() squares the whole partition into a temporary first.
    return float(np.sqrt(np.einsum("ij,ij->i", X, X)).sum())


def _pair_counts(match: UnitMatch, n_units: int) -> tuple[np.ndarray, np.ndarray]:
    pairs = match.bmu.astype(np.int64) * n_units + match.second
    if n_units * n_units <= _COUNTED_PAIRS:
        # A table of every pair is small next to the rows: counting beats sorting them.
        counts = np.bincount(pairs, minlength=n_units * n_units)
        codes = np.flatnonzero(counts)
        return codes.astype(np.int64), counts[codes].astype(np.int64)
    codes, counts = np.unique(pairs, return_counts=True)
    return codes.astype(np.int64), counts.astype(np.int64)


def outlier_learner(total: MapPartial, percentile: float) -> OrderStatistics:
    """The exact ``percentile`` of every row's distance, started from the assessment pass's summary.

    When the summary does not settle it (many distinct distances), drive
    the learner further over the partitions' distances.
    """
    learner = percentile_learner(percentile)
    learner.update(Summaries((total.distances,)))
    return learner


def finish_assessment(
    total: MapPartial, weights: np.ndarray, outliers: OrderStatistics, percentile: float, moments: CoMoments
) -> MapFigures:
    """The map's figures over every row.

    Parameters
    ----------
    total : MapPartial
        The sum of every partition's :class:`MapPartial`.
    weights : ndarray of shape (rows, cols, n_features)
    outliers : OrderStatistics
        The finished :func:`outlier_learner`.
    percentile : float
    moments : CoMoments
        Co-moments of the standardised rows (their total variance is the
        denominator of the explained variance).
    """
    rows, cols, n_features = weights.shape
    n = max(total.n_rows, 1)
    one = rows * cols == 1
    total_variance = float(np.trace(moments.covariance()))
    return MapFigures(
        n_rows=total.n_rows,
        quantization_error=total.distance_sum / n,
        one_neuron_quantization_error=total.norm_sum / n,
        topographic_error=float("nan") if one else total.topographic_errors_8 / n,
        topographic_error_4=float("nan") if one else total.topographic_errors_4 / n,
        explained_variance=1.0 - (total.squared_distance_sum / n) / total_variance if total_variance > 0 else float("nan"),
        kaski_lagus_error=float("nan") if one else (total.distance_sum + _path_sum(weights, total.unit_pairs)) / n,
        outlier_threshold=percentile_from(outliers, percentile),
        outlier_percentile=percentile,
        hits=total.hits,
        neuron_moments=total.neuron_moments,
        neuron_missing=total.neuron_missing,
    )


def _path_sum(weights: np.ndarray, pairs: tuple[np.ndarray, np.ndarray]) -> float:
    """Sum over rows of the shortest 8-neighbour grid path from the best to the second unit.

    Each step is as long as the distance between the two units' weight
    vectors (Kaski and Lagus, 1996).
    """
    rows, cols, n_features = weights.shape
    n_units = rows * cols
    flat = np.reshape(weights, (n_units, n_features))
    i, j = grid_edges(rows, cols, 8)
    # Distinct units can share a weight vector; a zero-length edge would
    # vanish from the sparse graph, so it is floored at a negligible length.
    length = np.maximum(np.linalg.norm(flat[i] - flat[j], axis=1), 1e-300)
    graph = coo_matrix((length, (i, j)), shape=(n_units, n_units)).tocsr()
    codes, counts = pairs
    source, target = np.divmod(codes, n_units)
    sources = np.unique(source)
    block = max(1, _PATH_BLOCK_CELLS // n_units)
    total = 0.0
    for start in range(0, len(sources), block):
        units = sources[start : start + block]
        paths = dijkstra(graph, directed=False, indices=units)
        inside = np.isin(source, units)
        total += float(np.dot(paths[np.searchsorted(units, source[inside]), target[inside]], counts[inside]))
    return total


def assess_in_memory(
    X: np.ndarray,
    weights: np.ndarray,
    raw: np.ndarray | None = None,
    percentile: float = 95.0,
    sample: np.ndarray | None = None,
) -> tuple[UnitMatch, MapFigures, MapPartial]:
    """The assessment of one table held in memory: the same pass and finish as over partitions.

    ``raw`` defaults to ``X`` (profiles then in standardised units).
    """
    X = np.asarray(X, dtype=np.float64)
    request = AssessRequest(np.asarray(weights, dtype=np.float64), np.arange(0) if sample is None else sample)
    match, partial = request.assess(X, X if raw is None else raw)
    outliers = outlier_learner(partial, percentile)
    fit_in_memory(outliers, match.distance[:, None])
    return match, finish_assessment(partial, weights, outliers, percentile, CoMoments.of(X)), partial
