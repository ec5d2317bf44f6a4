"""Statistics that are computed on partitions and combined: the building blocks of every learner.

A table is a sequence of partitions. Each statistic here has a partial
result per partition that adds (``+``) to the partial result of the next,
in any grouping, and a finish that turns the total into the figure wanted:

* :class:`Moments`: count, mean and squared deviations of columns (Chan,
  Golub and LeVeque's parallel merge), optionally per group (a neuron, a
  segment);
* :class:`CoMoments`: the same with the full scatter matrix, for a
  covariance (PCA initialisation);
* :class:`OrderStatistics`: exact k-th smallest values of columns (medians,
  deciles, percentiles), in one pass for columns of few distinct values and
  a few more for continuous ones.

Nothing here knows where partitions live or what runs the partial
functions: a driver asks a learner for a request, applies the request's
``partial`` to every partition (in this process, on threads, on a cluster),
adds the results and hands the total back with ``update``.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import reduce
from typing import Any, Protocol, TypeVar

import numpy as np

from somseg.kernels import group_moments, one_blas_thread

P = TypeVar("P")

# Distinct values of a column a partition reports before it reports only a window summary.
MAX_DISTINCT = 65_536
_BINS = 1024  # histogram bins per refinement pass of an order statistic
# Every this-many-th observed value of a partition goes into its column's sample; the merged sample is halved
# while above the limit, and guides the first windows of columns with more than a gatherable count of values.
_SAMPLE_STRIDE = 256
_SAMPLE_LIMIT = 1 << 18
_SAMPLE_MIN = 1024
_SAMPLE_MARGIN = 6.0  # binomial standard deviations of a first window's half-width
_SCATTER_BLOCK_ROWS = 16_384  # rows centred at once for a scatter matrix: a block of a few features stays in cache
_GATHER_LIMIT = 1_000_000  # values of a window few enough to collect and sort
# Values all the gathered windows of one pass may hold together, over every partition: what a pass's
# partial results carry (and a task runner stores) stays small, whatever the number of columns and ranks.
_GATHER_BUDGET = 1 << 20
_SORT_ABOVE = 8  # pending ranks of a column above which a refinement pass sorts it once
_MAX_PASSES = 64  # each pass narrows a window 1024-fold: float64 needs far fewer


class Request(Protocol[P]):
    """What every partition computes in one pass of a learner."""

    def partial(self, values: Any) -> P:
        """The partial result of one partition."""
        ...


class Learner(Protocol):
    """A statistic learnt in passes over partitions: request, partial everywhere, combine, update."""

    def request(self) -> Request | None:
        """The next pass, or None when the learner is finished."""
        ...

    def update(self, total: Any) -> None:
        """Take the combined partial results of the pass just requested."""
        ...


def combine(parts: Sequence[P]) -> P:
    """The sum of partial results, in the order given (so a fixed order gives fixed rounding)."""
    if not parts:
        raise ValueError("nothing to combine: no partitions")
    return reduce(lambda a, b: a + b, parts)


def fit_in_memory(learner: Learner, values: Any) -> None:
    """Drive ``learner`` over one partition held in memory (the single-partition case of any driver)."""
    while (request := learner.request()) is not None:
        learner.update(request.partial(values))


# --- moments ------------------------------------------------------------------------


@dataclass(frozen=True)
class Moments:
    """Count, mean and sum of squared deviations of each column, per group.

    Arrays have shape (n_groups, n_columns). Missing values (NaN) are
    skipped. Adding two :class:`Moments` merges them exactly as if computed
    on the union of their rows (up to rounding).
    """

    n: np.ndarray
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray, group: np.ndarray | None = None, n_groups: int = 1) -> "Moments":
        """Moments of the observed values of each column of ``values`` (n_rows, n_columns), per group."""
        values = np.asarray(values, dtype=np.float64)
        group = np.zeros(len(values), dtype=np.int64) if group is None else np.asarray(group, dtype=np.int64)
        # Deviations from the partition's own mean: no cancellation, unlike raw second moments.
        n, mean, m2 = group_moments(values, group, n_groups)
        return cls(n=n, mean=mean, m2=m2)

    @classmethod
    def of_complete(cls, values: np.ndarray) -> "Moments":
        """Moments of a column block with no missing value, in scikit-learn's ``StandardScaler`` arithmetic.

        The mean is the column sum over the count, the squared deviations
        the corrected two-pass sum (Chan, Golub and LeVeque), each operation
        as ``sklearn.utils.extmath._incremental_mean_and_var`` performs it on
        a first fit, so a table of one partition is scaled to the last bit
        as ``StandardScaler().fit`` scales it.
        """
        values = np.asarray(values, dtype=np.float64)
        count = np.full(values.shape[1], float(len(values)))
        total = values.sum(axis=0)
        mean = total / count
        deviation = values - mean
        correction = deviation.sum(axis=0)
        deviation **= 2
        m2 = deviation.sum(axis=0)
        m2 -= correction**2 / count
        return cls(n=count[None, :], mean=mean[None, :], m2=m2[None, :])

    def __add__(self, other: "Moments") -> "Moments":
        n = self.n + other.n
        delta = other.mean - self.mean
        share = np.divide(other.n, n, out=np.zeros_like(n, dtype=float), where=n > 0)
        mean = self.mean + delta * share
        m2 = self.m2 + other.m2 + delta**2 * self.n * share
        # An empty side contributes nothing, exactly.
        mean = np.where(self.n == 0, other.mean, np.where(other.n == 0, self.mean, mean))
        m2 = np.where(self.n == 0, other.m2, np.where(other.n == 0, self.m2, m2))
        return Moments(n=n, mean=mean, m2=m2)

    def grouped(self, group: np.ndarray, n_groups: int) -> "Moments":
        """Merge rows of these moments (e.g. neurons) into ``n_groups`` groups (e.g. segments)."""
        group = np.asarray(group, dtype=np.int64)
        n = _group_sum(group, self.n, n_groups)
        mean = np.divide(_group_sum(group, self.n * self.mean, n_groups), n, out=np.zeros_like(n), where=n > 0)
        m2 = _group_sum(group, self.m2 + self.n * (self.mean - mean[group]) ** 2, n_groups)
        return Moments(n=n, mean=mean, m2=m2)

    def variance(self) -> np.ndarray:
        """Population variance (ddof=0) of each group and column; NaN where a group is empty."""
        return np.divide(self.m2, self.n, out=np.full(self.m2.shape, np.nan), where=self.n > 0)

    def sample_sd(self) -> np.ndarray:
        """Sample standard deviation (ddof=1); NaN with fewer than two values."""
        return np.sqrt(np.divide(self.m2, self.n - 1, out=np.full(self.m2.shape, np.nan), where=self.n > 1))


def _group_sum(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    # float64 even for no rows, where bincount answers with integers.
    sums = [np.bincount(group, values[:, c], n_groups) for c in range(values.shape[1])]
    return np.stack(sums, axis=1).astype(np.float64, copy=False)


@dataclass(frozen=True)
class CoMoments:
    """Total weight, weighted mean and weighted scatter matrix of rows (for a covariance).

    Adding two merges them as Chan et al.'s update does for one column.
    """

    weight: float
    mean: np.ndarray
    scatter: np.ndarray

    @classmethod
    def of(cls, X: np.ndarray, sample_weight: np.ndarray | None = None) -> "CoMoments":
        """Co-moments of the rows of ``X`` (n_rows, n_features), each weighted by ``sample_weight``."""
        X = np.asarray(X, dtype=np.float64)
        weight = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        total = float(weight.sum())
        if total <= 0:
            return cls(0.0, np.zeros(X.shape[1]), np.zeros((X.shape[1], X.shape[1])))
        scatter = np.zeros((X.shape[1], X.shape[1]))
        with one_blas_thread():
            mean = weight @ X / total
            # Block by block: each block's centred copy stays in cache instead of the whole
            # table's being written to memory and read back; a table of one block is unchanged.
            for start in range(0, len(X), _SCATTER_BLOCK_ROWS):
                block = slice(start, start + _SCATTER_BLOCK_ROWS)
                centred = X[block] - mean
                scatter += (centred * weight[block, None]).T @ centred
        return cls(total, mean, scatter)

    def __add__(self, other: "CoMoments") -> "CoMoments":
        if self.weight == 0:
            return other
        if other.weight == 0:
            return self
        weight = self.weight + other.weight
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.weight / weight)
        scatter = self.scatter + other.scatter + np.outer(delta, delta) * (self.weight * other.weight / weight)
        return CoMoments(weight, mean, scatter)

    def covariance(self) -> np.ndarray:
        """Weighted population covariance (ddof=0)."""
        return self.scatter / self.weight

    def scaled(self, shift: np.ndarray, scale: np.ndarray) -> "CoMoments":
        """The co-moments of the rows ``(X - shift) / scale``, from those of ``X``."""
        return CoMoments(self.weight, (self.mean - shift) / scale, self.scatter / np.outer(scale, scale))


# --- exact order statistics ------------------------------------------------------------


@dataclass(frozen=True)
class ColumnSummary:
    """What one pass over a column tells: its count, range, its distinct values if they are few, and a sample.

    ``sample`` holds every :data:`_SAMPLE_STRIDE`-th observed value of each
    partition (halved while above :data:`_SAMPLE_LIMIT` values), from which
    :class:`OrderStatistics` guesses where each wanted rank lies.
    """

    n: int
    low: float
    high: float
    counts: tuple[np.ndarray, np.ndarray] | None
    sample: np.ndarray | None = None

    def __add__(self, other: "ColumnSummary") -> "ColumnSummary":
        sample = None
        if self.sample is not None and other.sample is not None:
            sample = np.concatenate([self.sample, other.sample])
            while len(sample) > _SAMPLE_LIMIT:
                sample = sample[::2]
        return ColumnSummary(
            self.n + other.n, min(self.low, other.low), max(self.high, other.high),
            _merge_counts(self.counts, other.counts), sample,
        )


def summarise_column(column: np.ndarray, max_distinct: int | None = None) -> ColumnSummary:
    """Count, range and (when at most ``max_distinct``, by default :data:`MAX_DISTINCT`) value counts of a column's observed values."""
    max_distinct = MAX_DISTINCT if max_distinct is None else max_distinct
    column = np.asarray(column, dtype=np.float64)
    observed = column[~np.isnan(column)]
    if len(observed) == 0:
        return ColumnSummary(0, np.inf, -np.inf, (np.empty(0), np.empty(0, dtype=np.int64)), np.empty(0))
    low, high = float(observed.min()), float(observed.max())
    sample = observed[::_SAMPLE_STRIDE].copy()
    # A continuous column shows more distinct values than the limit in a spread-out subset
    # already, which settles it without sorting the whole column.
    subset = observed[:: max(1, len(observed) // (4 * max_distinct + 1))]
    if len(subset) < len(observed) and len(np.unique(subset)) > max_distinct:
        return ColumnSummary(len(observed), low, high, None, sample)
    unique, counts = np.unique(observed, return_counts=True)
    kept = (unique, counts.astype(np.int64)) if len(unique) <= max_distinct else None
    return ColumnSummary(len(observed), low, high, kept, sample)


def _merge_counts(
    a: tuple[np.ndarray, np.ndarray] | None, b: tuple[np.ndarray, np.ndarray] | None
) -> tuple[np.ndarray, np.ndarray] | None:
    if a is None or b is None:
        return None
    unique, inverse = np.unique(np.concatenate([a[0], b[0]]), return_inverse=True)
    if len(unique) > MAX_DISTINCT:
        return None
    return unique, np.bincount(inverse, weights=np.concatenate([a[1], b[1]]), minlength=len(unique)).astype(np.int64)


@dataclass(frozen=True)
class Window:
    """Observed values ``low <= x < high`` (``<= high`` when closed) of one column, seen from every partition.

    ``histogram`` counts them in equal bins; ``lowest`` and ``highest`` are
    the smallest and largest value in each bin (inf and -inf where empty),
    so that the next window can start and end at values that exist.
    """

    below: int
    histogram: np.ndarray
    lowest: np.ndarray
    highest: np.ndarray
    values: np.ndarray | None

    def __add__(self, other: "Window") -> "Window":
        values = None
        if self.values is not None and other.values is not None and len(self.values) + len(other.values) <= _GATHER_LIMIT:
            values = np.concatenate([self.values, other.values])
        return Window(self.below + other.below, self.histogram + other.histogram, np.minimum(self.lowest, other.lowest),
                      np.maximum(self.highest, other.highest), values)


@dataclass(frozen=True)
class Windows:
    """A partition's :class:`Window` of every pending (column, rank)."""

    windows: tuple[Window, ...]

    def __add__(self, other: "Windows") -> "Windows":
        # Ranks that shared a window share its sum too.
        added: dict[tuple[int, int], Window] = {}
        for a, b in zip(self.windows, other.windows, strict=True):
            if (id(a), id(b)) not in added:
                added[(id(a), id(b))] = a + b
        return Windows(tuple(added[(id(a), id(b))] for a, b in zip(self.windows, other.windows, strict=True)))


@dataclass(frozen=True)
class Summaries:
    """A partition's :class:`ColumnSummary` of every column."""

    columns: tuple[ColumnSummary, ...]

    def __add__(self, other: "Summaries") -> "Summaries":
        return Summaries(tuple(a + b for a, b in zip(self.columns, other.columns, strict=True)))


@dataclass(frozen=True)
class SummaryRequest:
    """First pass of :class:`OrderStatistics`: summarise every column."""

    def partial(self, values: np.ndarray) -> Summaries:
        values = np.asarray(values, dtype=np.float64)
        return Summaries(tuple(summarise_column(values[:, c]) for c in range(values.shape[1])))


@dataclass(frozen=True)
class WindowRequest:
    """Refinement pass of :class:`OrderStatistics`: histogram each pending window.

    ``gather`` says whether a partition also returns the window's values: only
    when the window holds few enough values over every partition to be
    sorted at once, since otherwise they would be dropped when the partitions
    are added.
    """

    bounds: tuple[tuple[int, float, float, bool, bool], ...]  # (column, low, high, closed, gather)

    def partial(self, values: np.ndarray) -> Windows:
        values = np.asarray(values, dtype=np.float64)
        # A column with many pending ranks (fine quantiles) is sorted once, so that each
        # of its windows costs two binary searches instead of a pass over the column.
        pending = np.bincount([c for c, *_ in self.bounds], minlength=values.shape[1])
        sorted_columns = {
            c: np.sort(values[:, c][~np.isnan(values[:, c])]) for c in np.flatnonzero(pending > _SORT_ABOVE)
        }
        # Ranks next to each other (a median's two, a quantile's lower and upper) often share a
        # window: it is counted once, and the one object stands for both in the result.
        found: dict[tuple[int, float, float, bool, bool], Window] = {}
        for bound in self.bounds:
            if bound not in found:
                c, lo, hi, closed, gather = bound
                found[bound] = (
                    _sorted_window(sorted_columns[c], lo, hi, closed, gather) if c in sorted_columns
                    else _window(values[:, c], lo, hi, closed, gather)
                )
        return Windows(tuple(found[bound] for bound in self.bounds))


def _window(column: np.ndarray, low: float, high: float, closed: bool, gather: bool) -> Window:
    x = column[~np.isnan(column)]
    inside = (x >= low) & ((x <= high) if closed else (x < high))
    return _histogram(np.sort(x[inside]), int((x < low).sum()), low, high, gather)


def _sorted_window(x: np.ndarray, low: float, high: float, closed: bool, gather: bool) -> Window:
    start = int(np.searchsorted(x, low, side="left"))
    stop = int(np.searchsorted(x, high, side="right" if closed else "left"))
    return _histogram(x[start:stop], start, low, high, gather)


def _histogram(chosen: np.ndarray, below: int, low: float, high: float, gather: bool) -> Window:
    """The window's bins from its values ``chosen``, sorted: bin ``b`` holds ``edges[b] <= x < edges[b + 1]``."""
    edges = np.linspace(low, high, _BINS + 1)
    cuts = np.searchsorted(chosen, edges[1:-1], side="left")
    starts, stops = np.concatenate([[0], cuts]), np.concatenate([cuts, [len(chosen)]])
    histogram = (stops - starts).astype(np.int64)
    filled = histogram > 0
    lowest, highest = np.full(_BINS, np.inf), np.full(_BINS, -np.inf)
    lowest[filled], highest[filled] = chosen[starts[filled]], chosen[stops[filled] - 1]
    values = chosen.copy() if gather and len(chosen) <= _GATHER_LIMIT else None
    return Window(below, histogram, lowest, highest, values)


@dataclass
class OrderStatistics:
    """Exact order statistics of columns spread over partitions, NaN skipped.

    The first pass summarises each column per partition; merged value
    counts give every wanted rank at once when a column has at most
    :data:`MAX_DISTINCT` distinct values (integer demographics, the
    distances of repeated rows). A column with more is resolved by
    refinement: each further pass counts, in 1024 equal bins, the values of
    the window that holds a wanted rank and narrows the window to the values
    of that bin (its lowest to its highest), until they are few enough to
    gather and sort (or all equal). On a column with more values than can be
    gathered, the first window of each rank is placed by the first pass's
    sample (see :func:`_first_window`), so that one or two passes usually
    settle it; the pass's counts check the guess, and a window that missed
    is replaced by the values below or above it. The windows one pass
    gathers hold at most :data:`_GATHER_BUDGET` values together; the
    others are binned first.
    Either way the result is the exact k-th smallest value.

    Parameters
    ----------
    ranks_of : callable
        Given the number of observed values of each column (from the first
        pass), the 0-based ranks wanted in each column.

    Attributes
    ----------
    n_observed_ : ndarray of int64
        Observed values of each column (after the first pass).
    summaries_ : tuple of ColumnSummary
        The first pass's summary of each column.
    values_ : list of ndarray
        The value at each wanted rank of each column (when finished).
    """

    ranks_of: Callable[[np.ndarray], Sequence[np.ndarray]]
    # (column, slot) -> (low, high, closed, values in the window over every partition)
    _pending: dict[tuple[int, int], tuple[float, float, bool, int]] = field(default_factory=dict, init=False)
    _started: bool = field(default=False, init=False)

    def request(self) -> SummaryRequest | WindowRequest | None:
        if not self._started:
            return SummaryRequest()
        if not self._pending:
            return None
        if self._passes >= _MAX_PASSES:
            raise RuntimeError(f"order statistics not resolved in {_MAX_PASSES} passes")
        gathered = _within_budget(self._pending)
        return WindowRequest(tuple(
            (c, low, high, closed, (c, low, high, closed) in gathered)
            for (c, _), (low, high, closed, _) in self._pending.items()
        ))

    def update(self, total: Summaries | Windows) -> None:
        if not self._started:
            self._first(total)
        else:
            self._refine(total)

    def _first(self, total: Summaries) -> None:
        self._started, self._passes = True, 0
        self.summaries_ = total.columns
        self.n_observed_ = np.array([summary.n for summary in total.columns], dtype=np.int64)
        wanted = [np.asarray(ranks, dtype=np.int64) for ranks in self.ranks_of(self.n_observed_)]
        self._ranks = wanted
        self.values_ = [np.empty(len(ranks)) for ranks in wanted]
        for column, (summary, ranks) in enumerate(zip(total.columns, wanted, strict=True)):
            if summary.counts is not None:
                values, counts = summary.counts
                self.values_[column][:] = values[np.searchsorted(np.cumsum(counts), ranks, side="right")]
            else:
                # One sort of the column's sample serves all its ranks.
                sample = None if summary.sample is None else np.sort(summary.sample)
                for slot, rank in enumerate(ranks):
                    self._pending[(column, slot)] = _first_window(summary, sample, int(rank))

    def _refine(self, total: Windows) -> None:
        self._passes += 1
        for (column, slot), window in zip(list(self._pending), total.windows, strict=True):
            low, high, closed, _ = self._pending[(column, slot)]
            local = int(self._ranks[column][slot]) - window.below
            inside = int(window.histogram.sum())
            if not 0 <= local < inside:
                # Only a first window guessed from the sample can miss its rank: the rank then lies in
                # the values below the window or in those above it, each a window of known count.
                summary = self.summaries_[column]
                self._pending[(column, slot)] = (
                    (summary.low, low, False, window.below) if local < 0
                    else (float(np.nextafter(high, np.inf)), summary.high, True, int(summary.n) - window.below - inside)
                )
                continue
            if window.values is not None or low == high:
                self.values_[column][slot] = low if low == high else np.sort(window.values)[local]
                del self._pending[(column, slot)]
                continue
            b = int(np.searchsorted(np.cumsum(window.histogram), local, side="right"))
            # The next window spans the values the bin holds, not the bin: no value lies between
            # the bin's edge and its lowest value, so the count below stays the same, and a bin of
            # one repeated value (a column's many zeros) settles at once.
            lowest, highest = float(window.lowest[b]), float(window.highest[b])
            if lowest == highest:
                self.values_[column][slot] = lowest
                del self._pending[(column, slot)]
                continue
            self._pending[(column, slot)] = (lowest, highest, True, int(window.histogram[b]))

    def result(self) -> list[np.ndarray]:
        """The values at the wanted ranks of each column."""
        return self.values_


def _within_budget(pending: dict[tuple[int, int], tuple[float, float, bool, int]]) -> set[tuple[int, float, float, bool]]:
    """The windows to gather in the next pass: the smallest first, while all together hold at most
    :data:`_GATHER_BUDGET` values (each at most :data:`_GATHER_LIMIT`).

    The others are counted in bins, and their ranks gathered a pass later from a bin's few values.
    Ranks that share a window share its gathering.
    """
    windows: dict[tuple[int, float, float, bool], int] = {}
    for (c, _), (low, high, closed, count) in pending.items():
        windows.setdefault((c, low, high, closed), count)
    gathered, total = set(), 0
    for window, count in sorted(windows.items(), key=lambda item: item[1]):  # stable: ties keep their order
        if count > _GATHER_LIMIT or total + count > _GATHER_BUDGET:
            break
        gathered.add(window)
        total += count
    return gathered


def _first_window(summary: ColumnSummary, sample: np.ndarray | None, rank: int) -> tuple[float, float, bool, int]:
    """The first window of ``rank``: the whole column, or where the column's sample puts the rank.

    ``sample`` is ``summary.sample`` sorted (or None).

    The window spans the sampled values within :data:`_SAMPLE_MARGIN` binomial
    standard deviations of the rank's share of the sample, so that it is
    gathered in one pass (or binned, then gathered, when the pass's
    windows together hold more than :data:`_GATHER_BUDGET` values) and
    misses its rank only by the rarest chance; a miss costs a pass more
    (see ``OrderStatistics._refine``), never a wrong value.

    Returns (low, high, closed, the count the window is expected to hold).
    """
    whole = (summary.low, summary.high, True, summary.n)
    if summary.n <= _GATHER_LIMIT or sample is None or len(sample) < _SAMPLE_MIN:
        return whole
    m, share = len(sample), (rank + 0.5) / summary.n
    margin = _SAMPLE_MARGIN * np.sqrt(m * share * (1.0 - share)) + 1.0
    first, last = int(np.floor(share * m - margin)), int(np.ceil(share * m + margin))
    low = float(sample[first]) if first >= 0 else summary.low
    high = float(sample[last]) if last < m else summary.high
    expected = int(np.ceil((min(last, m - 1) - max(first, 0) + 1) / m * summary.n))
    return low, high, True, expected


def median_ranks(n: int) -> np.ndarray:
    """The one or two 0-based ranks whose mean is the median of ``n`` values (as ``np.median``)."""
    if n < 1:
        raise ValueError("the median of no values is undefined")
    return np.array([(n - 1) // 2, n // 2], dtype=np.int64)


def median_from(values_at_ranks: np.ndarray) -> float:
    """``np.median``'s value from the values at :func:`median_ranks` (the mean of the middle ones)."""
    return float(np.mean(np.asarray(values_at_ranks, dtype=np.float64)))


def quantile_ranks(n: int, quantiles: np.ndarray | Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ranks and weights of ``np.quantile(x, quantiles)`` (method 'linear') over ``n`` values.

    Returns the lower and upper 0-based ranks and the interpolation weight,
    computed with numpy's own formulas so that :func:`quantile_from` gives
    ``np.quantile``'s result to the last bit.
    """
    virtual = (n - 1) * np.asarray(quantiles, dtype=np.float64)
    lower = np.floor(virtual)
    gamma = virtual - lower
    lower = lower.astype(np.int64)
    upper = lower + 1
    top = virtual >= n - 1
    lower[top], upper[top] = n - 1, n - 1
    return lower, upper, gamma


def quantile_from(lower_values: np.ndarray, upper_values: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """numpy's linear interpolation between two order statistics, operation for operation."""
    a, b, t = (np.asarray(v, dtype=np.float64) for v in (lower_values, upper_values, gamma))
    difference = b - a
    result = np.add(a, difference * t)
    np.subtract(b, difference * (1 - t), out=result, where=t >= 0.5)
    return result


def percentile_learner(percentile: float) -> OrderStatistics:
    """:class:`OrderStatistics` of one column's ``np.percentile(x, percentile)`` (its lower and upper ranks)."""

    def ranks_of(n_observed: np.ndarray) -> list[np.ndarray]:
        if n_observed[0] == 0:
            raise ValueError("a percentile of no values is undefined")
        lower, upper, _ = quantile_ranks(int(n_observed[0]), [percentile / 100])
        return [np.concatenate([lower, upper])]

    return OrderStatistics(ranks_of)


def percentile_from(learner: OrderStatistics, percentile: float) -> float:
    """The percentile a finished :func:`percentile_learner` found, as ``np.percentile`` gives it."""
    found = learner.result()[0]
    gamma = quantile_ranks(int(learner.n_observed_[0]), [percentile / 100])[2]
    return float(quantile_from(found[:1], found[1:], gamma)[0])
