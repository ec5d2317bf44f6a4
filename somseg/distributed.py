"""The batch pipeline on a Dask cluster, over a partitioned Parquet dataset.

The algorithms are the local ones; only the data stays where it is. Every
figure over the table is a sum of per-partition partial results, reduced on
the cluster in a tree, so no step needs the whole table in one memory:

* cleaning: medians and the training deciles are **exact** order
  statistics (:func:`order_statistics`), the imputed means and standard
  deviations are merged per-partition moments; the result is a
  :class:`~somseg.cleaning.FeatureCleaner`, as if it had been fitted locally;
* training: each epoch of Kohonen's batch rule is
  :func:`~somseg.batch_som.epoch_partial_sums` on every partition, added on
  the cluster, then :func:`~somseg.batch_som.weights_from_sums`;
* assessment and profiles: per-partition sums of distances, topographic
  errors, hits and per-neuron moments of the raw features; the profiles and
  names come from the local labeller;
* assignment: each partition is scored with the saved model
  (:func:`~somseg.scoring.score_frame`) and written as one file of a
  partitioned Parquet dataset with the local ``segments.parquet`` schema.

Partitions are whole Parquet row groups, read with pyarrow exactly as the
local flow reads a Parquet file. Work is expressed with ``dask.delayed`` and
run with ``dask.compute``, so it goes to whatever scheduler is current: the
distributed ``Client`` of a cluster, or Dask's threads in a unit test.
"""

import glob
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from functools import reduce
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from somseg import kernels
from somseg.batch_som import epoch_partial_sums, sigma_schedule, weights_from_sums
from somseg.cleaning import FeatureCleaner
from somseg.config import FeatureSpec, SomConfig
from somseg.errors import DataError
from somseg.io import PARQUET_SUFFIXES
from somseg.metrics import match_units, topographic_errors
from somseg.model import SegmentationModel
from somseg.scoring import ScoreSummary, score_frame

try:  # Only Dask mode needs Dask: the rest of the core, and importing this module, do not.
    import dask
    from dask.delayed import Delayed, delayed
except ImportError:  # pragma: no cover - exercised only where dask is absent
    dask = None
    Delayed = Any

    def delayed(*args: Any, **kwargs: Any) -> Any:
        raise ImportError(
            "Dask execution needs dask and distributed: pip install 'dask[dataframe]' distributed prefect-dask"
        )


_SPLIT_EVERY = 8  # partial results combined per node of a reduction tree
_MAX_DISTINCT = 1_000_000  # value counts kept per column before falling back to histograms
_BINS = 1024  # histogram bins per refinement pass of an order statistic
_GATHER_LIMIT = 2_000_000  # values in a window small enough to bring to the driver and sort
_MAX_PASSES = 64  # each pass narrows a window 1024-fold: float64 needs far fewer
_DECILES = np.linspace(0.1, 0.9, 9)  # the training bins of the drift reference (somseg.drift)
_SAMPLE_VALUES = 5


# --- the dataset ---------------------------------------------------------------


@dataclass(frozen=True)
class Partition:
    """Consecutive row groups of one Parquet file: the unit of work.

    ``size`` and ``mtime_ns`` identify the file's version, so a cache keyed
    on a partition misses when the file is rewritten, without reading it.
    """

    path: str
    row_groups: tuple[int, ...]
    n_rows: int
    first_row: int
    size: int
    mtime_ns: int


def dataset_files(source: str | Path) -> list[Path]:
    """The Parquet files of a dataset, in dataset order (sorted paths).

    Parameters
    ----------
    source : str or Path
        A folder (searched recursively for ``.parquet``/``.pq`` files), a
        glob such as ``data/part-*.parquet``, or a single file. Names that
        start with ``.`` or ``_`` (``_SUCCESS``, ``_metadata``, temporary
        files) are skipped.

    Raises
    ------
    DataError
        If no Parquet file is found.
    """
    text = str(source)
    if any(char in text for char in "*?["):
        candidates = [Path(name) for name in glob.glob(text, recursive=True)]
    elif Path(text).is_dir():
        candidates = list(Path(text).rglob("*"))
    else:
        candidates = [Path(text)]
    files = sorted(
        path
        for path in candidates
        if path.is_file() and path.suffix.lower() in PARQUET_SUFFIXES and path.name[0] not in "._"
    )
    if not files:
        raise DataError(f"no Parquet files (.parquet, .pq) found at {source}")
    return files


def plan_partitions(files: Sequence[Path], columns: Sequence[str], max_rows: int) -> list[Partition]:
    """Group each file's row groups into partitions of at most ``max_rows`` rows.

    Reads only the files' footers. A row group is never split, so one
    larger than ``max_rows`` is a partition of its own.

    Raises
    ------
    DataError
        If a file is not readable Parquet or lacks one of ``columns``.
    """
    partitions: list[Partition] = []
    first_row = 0
    for path in files:
        for groups, n_rows in _row_group_runs(path, columns, max_rows):
            stat = path.stat()
            partitions.append(Partition(str(path), groups, n_rows, first_row, stat.st_size, stat.st_mtime_ns))
            first_row += n_rows
    if first_row == 0:
        raise DataError(f"the dataset of {len(files)} file(s) has no rows")
    return partitions


def _row_group_runs(path: Path, columns: Sequence[str], max_rows: int) -> list[tuple[tuple[int, ...], int]]:
    try:
        metadata = pq.ParquetFile(path).metadata
    except Exception as exc:  # pyarrow raises several unrelated types here
        raise DataError(f"input file {path} is not a readable Parquet file: {exc}") from exc
    missing = [name for name in columns if name not in metadata.schema.names]
    if missing:
        raise DataError(
            f"input file {path} lacks column(s) {', '.join(missing)}; it has: {', '.join(metadata.schema.names[:20])}"
        )
    runs, current, rows = [], [], 0
    for index in range(metadata.num_row_groups):
        group_rows = metadata.row_group(index).num_rows
        if current and rows + group_rows > max_rows:
            runs.append((tuple(current), rows))
            current, rows = [], 0
        if group_rows:
            current.append(index)
            rows += group_rows
    if current:
        runs.append((tuple(current), rows))
    return runs


def read_partition(partition: Partition, id_column: str, features: Sequence[str]) -> pd.DataFrame:
    """The id column and the features of one partition, as the local reader returns them.

    Features are float64 with NaN for missing; the id column is unchanged.
    """
    table = pq.ParquetFile(partition.path).read_row_groups(list(partition.row_groups), columns=[id_column, *features])
    frame = table.to_pandas()
    for name in features:
        frame[name] = _as_float(frame[name], partition.path, name)
    return frame[[id_column, *features]]


def _as_float(values: pd.Series, path: str, column: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype("float64")
    raise DataError(f"input file {path}, column {column!r}: values of type {values.dtype} are not numbers")


def count_duplicate_ids(files: Sequence[Path], id_column: str, partitions: int | None = None) -> tuple[int, list[Any]]:
    """Rows whose id occurs more than once in the whole dataset, and a few such ids.

    IDs are hash-partitioned (``value_counts(split_out=...)``), so no
    worker holds more than its share of the distinct IDs. The count
    includes every occurrence, as Great Expectations' uniqueness check does.

    Returns
    -------
    n_rows : int
        Rows whose id is not unique.
    sample : list
        Up to 20 of those ids.
    """
    import dask.dataframe as dd

    ids = dd.read_parquet([str(path) for path in files], columns=[id_column])[id_column]
    counts = ids.value_counts(split_out=partitions or max(1, ids.npartitions))
    repeated = counts[counts > 1]
    n_rows, sample = dask.compute(repeated.sum(), repeated.head(20, npartitions=-1, compute=False))
    return int(n_rows), [_plain(value) for value in sample.index.tolist()]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


# --- reductions -------------------------------------------------------------------


def tree_reduce(parts: Sequence[Delayed], combine: Callable[[Any, Any], Any]) -> Delayed:
    """Combine per-partition results pairwise on the cluster, ``_SPLIT_EVERY`` at a node."""
    level = list(parts)
    if not level:
        raise ValueError("nothing to reduce")
    while len(level) > 1:
        level = [
            delayed(_combine_all, pure=False)(combine, *level[start : start + _SPLIT_EVERY])
            for start in range(0, len(level), _SPLIT_EVERY)
        ]
    return level[0]


def _combine_all(combine: Callable[[Any, Any], Any], *results: Any) -> Any:
    return reduce(combine, results)


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, tuple):
        return tuple(_add(x, y) for x, y in zip(a, b))
    return a + b


@dataclass
class Moments:
    """Count, mean and sum of squared deviations of each column (Chan et al.'s parallel merge)."""

    n: np.ndarray
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray, group: np.ndarray | None = None, n_groups: int = 1) -> "Moments":
        """Moments of the non-missing values of each column of ``values`` (n_rows, n_cols), per group."""
        group = np.zeros(len(values), dtype=np.int64) if group is None else group
        observed = ~np.isnan(values)
        n = _group_sum(group, observed.astype(np.float64), n_groups)
        total = _group_sum(group, np.where(observed, values, 0.0), n_groups)
        mean = np.divide(total, n, out=np.zeros_like(total), where=n > 0)
        # Deviations from the partition's own mean: no cancellation, unlike raw second moments.
        m2 = _group_sum(group, np.where(observed, values - mean[group], 0.0) ** 2, n_groups)
        return cls(n=n, mean=mean, m2=m2)

    def __add__(self, other: "Moments") -> "Moments":
        n = self.n + other.n
        delta = other.mean - self.mean
        share = np.divide(other.n, n, out=np.zeros_like(n, dtype=float), where=n > 0)
        mean = self.mean + delta * share
        m2 = self.m2 + other.m2 + delta**2 * self.n * share
        return Moments(n=n, mean=mean, m2=m2)

    def grouped(self, group: np.ndarray, n_groups: int) -> "Moments":
        """Merge rows of these moments (e.g. neurons) into ``n_groups`` groups (e.g. segments)."""
        n = _group_sum(group, self.n, n_groups)
        mean = np.divide(_group_sum(group, self.n * self.mean, n_groups), n, out=np.zeros_like(n), where=n > 0)
        m2 = _group_sum(group, self.m2 + self.n * (self.mean - mean[group]) ** 2, n_groups)
        return Moments(n=n, mean=mean, m2=m2)


def _group_sum(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    return np.stack([np.bincount(group, values[:, c], n_groups) for c in range(values.shape[1])], axis=1)


# --- exact order statistics --------------------------------------------------------


def order_statistics(
    columns: Sequence[Delayed], ranks_of: Callable[[np.ndarray], Sequence[np.ndarray]]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Exact order statistics of each column over all partitions, NaN skipped.

    One pass counts each column's distinct values per partition and merges
    the counts: enough, and exact, for columns of few distinct values
    (integer demographics, distances of repeated rows). A column with more
    than ``_MAX_DISTINCT`` distinct values is found by refinement instead:
    each further pass counts the values in 1024 equal bins of the window
    that holds the wanted rank and narrows the window to that bin, until
    the window's values are few enough to gather and sort (or all equal).
    Either way the result is the exact k-th smallest value, never an
    approximation.

    Parameters
    ----------
    columns : sequence of Delayed
        One per partition: an ndarray of shape (n_rows, n_columns).
    ranks_of : callable
        Given each column's number of non-missing values (the first pass
        counts them), the 0-based ranks wanted in each column.

    Returns
    -------
    n_observed : ndarray of int64, shape (n_columns,)
        Non-missing values of each column.
    values : list of ndarray
        For each column, the values at its ranks.
    """
    first = tree_reduce([delayed(_column_counts)(part) for part in columns], _merge_column_counts).compute()
    n_observed = np.array([summary.n for summary in first], dtype=np.int64)
    results = []
    for column, (summary, wanted) in enumerate(zip(first, ranks_of(n_observed))):
        wanted = np.asarray(wanted, dtype=np.int64)
        if summary.counts is not None:
            values, counts = summary.counts
            results.append(values[np.searchsorted(np.cumsum(counts), wanted, side="right")])
        else:
            results.append(_refine(columns, column, wanted, summary.low, summary.high))
    return n_observed, results


@dataclass
class _ColumnCounts:
    n: int
    low: float
    high: float
    counts: tuple[np.ndarray, np.ndarray] | None


def _column_counts(values: np.ndarray) -> list[_ColumnCounts]:
    summaries = []
    for column in np.asarray(values, dtype=np.float64).T:
        observed = column[~np.isnan(column)]
        unique, counts = np.unique(observed, return_counts=True)
        kept = (unique, counts.astype(np.int64)) if len(unique) <= _MAX_DISTINCT else None
        low, high = (float(unique[0]), float(unique[-1])) if len(unique) else (np.inf, -np.inf)
        summaries.append(_ColumnCounts(len(observed), low, high, kept))
    return summaries


def _merge_column_counts(a: list[_ColumnCounts], b: list[_ColumnCounts]) -> list[_ColumnCounts]:
    return [
        _ColumnCounts(x.n + y.n, min(x.low, y.low), max(x.high, y.high), _merge_counts(x.counts, y.counts))
        for x, y in zip(a, b)
    ]


def _merge_counts(
    a: tuple[np.ndarray, np.ndarray] | None, b: tuple[np.ndarray, np.ndarray] | None
) -> tuple[np.ndarray, np.ndarray] | None:
    if a is None or b is None:
        return None
    unique, inverse = np.unique(np.concatenate([a[0], b[0]]), return_inverse=True)
    if len(unique) > _MAX_DISTINCT:
        return None
    counts = np.zeros(len(unique), dtype=np.int64)
    np.add.at(counts, inverse, np.concatenate([a[1], b[1]]))
    return unique, counts


@dataclass
class _Window:
    """Values ``low <= x < high`` (``<= high`` when ``closed``) of one column, seen from all partitions."""

    below: int
    histogram: np.ndarray
    values: np.ndarray | None


def _refine(columns: Sequence[Delayed], column: int, ranks: np.ndarray, low: float, high: float) -> np.ndarray:
    # One window per rank; every pass narrows each unresolved window to the
    # bin holding its rank. Windows are a handful, so this loop is per rank.
    found = np.empty(len(ranks))
    windows = [(low, high, True)] * len(ranks)
    for _ in range(_MAX_PASSES):
        pending = [i for i in range(len(ranks)) if windows[i] is not None]
        if not pending:
            return found
        bounds = [windows[i] for i in pending]
        parts = [delayed(_window_summaries)(part, column, bounds) for part in columns]
        summaries = tree_reduce(parts, _merge_windows).compute()
        for i, (lo, hi, closed), window in zip(pending, bounds, summaries):
            local = int(ranks[i]) - window.below
            if window.values is not None or lo == hi:
                found[i] = lo if lo == hi else np.sort(window.values)[local]
                windows[i] = None
                continue
            edges = np.linspace(lo, hi, _BINS + 1)
            b = int(np.searchsorted(np.cumsum(window.histogram), local, side="right"))
            last = b == _BINS - 1
            windows[i] = (edges[b], hi if last else edges[b + 1], closed if last else False)
    raise RuntimeError(f"order statistic of column {column} not resolved in {_MAX_PASSES} passes")


def _window_summaries(values: np.ndarray, column: int, bounds: list[tuple[float, float, bool]]) -> list[_Window]:
    x = np.asarray(values, dtype=np.float64)[:, column]
    x = x[~np.isnan(x)]
    summaries = []
    for lo, hi, closed in bounds:
        inside = (x >= lo) & ((x <= hi) if closed else (x < hi))
        chosen = x[inside]
        edges = np.linspace(lo, hi, _BINS + 1)
        bins = np.clip(np.searchsorted(edges, chosen, side="right") - 1, 0, _BINS - 1)
        histogram = np.bincount(bins, minlength=_BINS).astype(np.int64)
        summaries.append(_Window(int((x < lo).sum()), histogram, chosen if len(chosen) <= _GATHER_LIMIT else None))
    return summaries


def _merge_windows(a: list[_Window], b: list[_Window]) -> list[_Window]:
    merged = []
    for x, y in zip(a, b):
        values = None
        if x.values is not None and y.values is not None and len(x.values) + len(y.values) <= _GATHER_LIMIT:
            values = np.concatenate([x.values, y.values])
        merged.append(_Window(x.below + y.below, x.histogram + y.histogram, values))
    return merged


def median_ranks(n: int) -> np.ndarray:
    """The one or two 0-based ranks whose mean is the median of ``n`` values (as ``np.median``)."""
    if n < 1:
        raise ValueError("the median of no values is undefined")
    return np.array([(n - 1) // 2, n // 2], dtype=np.int64)


def median_from(values_at_ranks: np.ndarray) -> float:
    """``np.median``'s value from the values at :func:`median_ranks` (the mean of the middle ones)."""
    return float(np.mean(np.asarray(values_at_ranks, dtype=np.float64)))


def quantile_ranks(n: int, quantiles: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    """numpy's linear interpolation (``numpy.lib._function_base_impl._lerp``), operation for operation."""
    a, b, t = (np.asarray(v, dtype=np.float64) for v in (lower_values, upper_values, gamma))
    difference = b - a
    result = np.add(a, difference * t)
    np.subtract(b, difference * (1 - t), out=result, where=t >= 0.5)
    return result


# --- cleaning and the drift reference ------------------------------------------------


@dataclass(frozen=True)
class TrainingStatistics:
    """What the whole training table teaches the cleaner and the drift reference."""

    cleaner: FeatureCleaner
    feature_reference: dict[str, dict[str, list[float]]]
    n_rows: int


def fit_statistics(
    partitions: Sequence[Partition], id_column: str, features: Sequence[FeatureSpec]
) -> TrainingStatistics:
    """Fit the cleaner and the drift reference over all partitions.

    Equal to ``FeatureCleaner(features).fit(table)`` and
    ``somseg.drift.feature_reference(table, features)`` on the whole table:
    medians and deciles are exact order statistics; the means and
    population standard deviations of the imputed features are merged
    per-partition moments, equal to StandardScaler's up to rounding
    (about 1e-15 relative).

    Raises
    ------
    DataError
        If a feature is out of its valid range or has no observed value.
    """
    names = [feature.name for feature in features]
    values = [delayed(_feature_values)(part, id_column, names) for part in partitions]
    medians, edges = _medians_and_deciles(values, names)
    bounds = [(f.min, f.max) for f in features]
    summary = tree_reduce([delayed(_cleaning_summary)(v, medians, bounds, edges) for v in values], _add).compute()
    n_rows, n_missing, outside, moments, bin_counts = summary
    _check_ranges(names, bounds, outside)
    cleaner = FeatureCleaner.from_dict(
        {
            "features": names,
            "medians": medians.tolist(),
            "mean": moments.mean[0].tolist(),
            "scale": _scale(moments, n_rows).tolist(),
            "n_imputed": n_missing.astype(int).tolist(),
        }
    )
    reference = {
        name: {"edges": edges[c].tolist(), "shares": (bin_counts[c] / max(n_rows, 1)).tolist()}
        for c, name in enumerate(names)
    }
    return TrainingStatistics(cleaner=cleaner, feature_reference=reference, n_rows=int(n_rows))


def _feature_values(partition: Partition, id_column: str, features: list[str]) -> np.ndarray:
    return read_partition(partition, id_column, features)[features].to_numpy(dtype=np.float64)


def _medians_and_deciles(values: Sequence[Delayed], names: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
    # Ranks of the median (np.nanmedian) and of the deciles (np.quantile) of each column.
    def ranks_of(n_observed: np.ndarray) -> list[np.ndarray]:
        empty = [name for name, n in zip(names, n_observed) if n == 0]
        if empty:
            raise DataError(f"cannot fit cleaning: no observed values in column(s) {', '.join(empty)}")
        return [np.concatenate([median_ranks(int(n)), *quantile_ranks(int(n), _DECILES)[:2]]) for n in n_observed]

    n_observed, found = order_statistics(values, ranks_of)
    medians = np.array([median_from(f[:2]) for f in found])
    edges = []
    for n, f in zip(n_observed, found):
        lower, upper = f[2 : 2 + len(_DECILES)], f[2 + len(_DECILES) :]
        edges.append(np.unique(quantile_from(lower, upper, quantile_ranks(int(n), _DECILES)[2])))
    return medians, edges


def _cleaning_summary(
    values: np.ndarray, medians: np.ndarray, bounds: list[tuple[float | None, float | None]], edges: list[np.ndarray]
) -> tuple[int, np.ndarray, np.ndarray, Moments, tuple[np.ndarray, ...]]:
    from somseg.drift import bin_counts

    missing = np.isnan(values)
    imputed = np.where(missing, medians, values)
    outside = np.array(
        [
            int(
                (
                    (values[:, c] < (lo if lo is not None else -np.inf))
                    | (values[:, c] > (hi if hi is not None else np.inf))
                ).sum()
            )
            for c, (lo, hi) in enumerate(bounds)
        ]
    )
    counts = tuple(bin_counts(values[:, c], edges[c]) for c in range(values.shape[1]))
    return len(values), missing.sum(axis=0), outside, Moments.of(imputed), counts


def _check_ranges(names: list[str], bounds: list[tuple[float | None, float | None]], outside: np.ndarray) -> None:
    problems = [
        f"column {name!r}: {int(n)} row(s) outside [{lo}, {hi}]"
        for name, (lo, hi), n in zip(names, bounds, outside)
        if n
    ]
    if problems:
        raise DataError("the dataset has values outside their valid range: " + "; ".join(problems))


def _scale(moments: Moments, n_rows: int) -> np.ndarray:
    # StandardScaler's rule: population sd, 1 for (near-)constant features.
    var = moments.m2[0] / n_rows
    mean = moments.mean[0]
    eps = np.finfo(np.float64).eps
    constant = var <= n_rows * eps * var + (n_rows * mean * eps) ** 2
    scale = np.sqrt(var)
    scale[constant | (scale < 10 * eps)] = 1.0
    return scale


# --- training -------------------------------------------------------------------------


def train_batch_som(
    partitions: Sequence[Partition], id_column: str, cleaner: FeatureCleaner, som: SomConfig
) -> np.ndarray:
    """Kohonen's batch SOM over all partitions: ``BatchSom(...).fit(cleaned table)``, distributed.

    Each partition is cleaned once and kept on the cluster (as its distinct
    rows and their counts when that is worth it, per ``som.dedup``; Dask
    spills it to disk under memory pressure); each epoch then sums the
    per-partition :func:`~somseg.batch_som.epoch_partial_sums` in a tree on
    the cluster and updates the codebook with
    :func:`~somseg.batch_som.weights_from_sums` on the driver.

    Returns
    -------
    ndarray of shape (rows, cols, n_features)
        The trained codebook; equal to the local engine's up to rounding
        (sums are added in another order).
    """
    if som.engine != "batch":
        raise ValueError(f"Dask execution trains with the batch engine; set som.engine: batch (got {som.engine!r})")
    params = cleaner.to_dict()
    blocks = [delayed(_training_block)(part, id_column, params, som.dedup) for part in partitions]
    blocks = list(dask.persist(*blocks))
    weights = _initial_weights(partitions, id_column, params, blocks, som)
    for sigma in sigma_schedule(som.sigma, som.sigma_end, som.epochs):
        partials = [delayed(_block_partial_sums)(block, weights, som.chunk_rows) for block in blocks]
        sums, counts = tree_reduce(partials, _add).compute()
        weights = weights_from_sums(sums, counts, weights, sigma)
    return weights


def _cleaned(partition: Partition, id_column: str, params: dict) -> np.ndarray:
    cleaner = FeatureCleaner.from_dict(params)
    return cleaner.transform(read_partition(partition, id_column, list(cleaner.features)))


def _training_block(
    partition: Partition, id_column: str, params: dict, dedup: str
) -> tuple[np.ndarray, np.ndarray | None]:
    # The rule of BatchSom's own deduplication, applied to one partition.
    X = _cleaned(partition, id_column, params)
    if dedup == "never":
        return X, None
    distinct = kernels.dedup_if_worthwhile(X) if dedup == "auto" else kernels.distinct_rows(X)
    if distinct is None or len(distinct.rows) < 2:
        return X, None
    return distinct.rows, distinct.counts.astype(np.float64)


def _block_partial_sums(
    block: tuple[np.ndarray, np.ndarray | None], weights: np.ndarray, chunk_rows: int | None
) -> tuple[np.ndarray, np.ndarray]:
    X, weight = block
    return epoch_partial_sums(X, weights, weight, chunk_rows=chunk_rows)


def _initial_weights(
    partitions: Sequence[Partition], id_column: str, params: dict, blocks: list[Delayed], som: SomConfig
) -> np.ndarray:
    if som.init == "random":
        return _random_init(partitions, id_column, params, som)
    if som.init == "pca":
        mean, cov = _weighted_moments(blocks)
        return pca_grid(mean, cov, som.rows, som.cols)
    raise ValueError(f"init must be 'pca' or 'random', got {som.init!r}")


def _random_init(partitions: Sequence[Partition], id_column: str, params: dict, som: SomConfig) -> np.ndarray:
    # The rows batch_som.random_init draws from the whole table, found by
    # their global index in the partitions that hold them.
    n_rows = sum(part.n_rows for part in partitions)
    picks = np.random.default_rng(som.seed).choice(n_rows, size=som.rows * som.cols, replace=True)
    starts = np.array([part.first_row for part in partitions])
    owner = np.searchsorted(starts, picks, side="right") - 1
    wanted = sorted(set(owner.tolist()))
    found = dask.compute(
        *[delayed(_rows_at)(partitions[o], id_column, params, picks[owner == o] - starts[o]) for o in wanted]
    )
    rows = np.empty((len(picks), len(params["features"])))
    for o, values in zip(wanted, found):
        rows[owner == o] = values
    return rows.reshape(som.rows, som.cols, -1)


def _rows_at(partition: Partition, id_column: str, params: dict, local: np.ndarray) -> np.ndarray:
    return _cleaned(partition, id_column, params)[local]


def _weighted_moments(blocks: list[Delayed]) -> tuple[np.ndarray, np.ndarray]:
    # Two passes, as batch_som's _weighted_moments: the mean, then the
    # covariance of the centred rows (no cancellation from raw second moments).
    total, weighted_sum = tree_reduce([delayed(_block_sums)(b) for b in blocks], _add).compute()
    mean = weighted_sum / total
    cov = tree_reduce([delayed(_block_scatter)(b, mean) for b in blocks], _add).compute() / total
    return mean, cov


def _block_sums(block: tuple[np.ndarray, np.ndarray | None]) -> tuple[float, np.ndarray]:
    X, weight = block
    weight = np.ones(len(X)) if weight is None else weight
    return float(weight.sum()), weight @ X


def _block_scatter(block: tuple[np.ndarray, np.ndarray | None], mean: np.ndarray) -> np.ndarray:
    X, weight = block
    weight = np.ones(len(X)) if weight is None else weight
    centred = X - mean
    return (centred * weight[:, None]).T @ centred


def pca_grid(mean: np.ndarray, cov: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """:func:`somseg.batch_som.pca_init` from the table's mean and covariance instead of its rows.

    The same construction (a grid on the plane of the first two principal
    components, one sd each way, signs fixed); a test holds the two equal.
    """
    eigvals, eigvecs = np.linalg.eigh(cov)
    order = np.argsort(eigvals)[::-1]
    axes = np.zeros((2, len(mean)))
    for slot, component in enumerate(order[:2]):
        vector = eigvecs[:, component]
        vector = vector if vector[np.argmax(np.abs(vector))] >= 0 else -vector
        axes[slot] = np.sqrt(max(eigvals[component], 0.0)) * vector
    along_rows, along_cols = (axes[0], axes[1]) if rows >= cols else (axes[1], axes[0])
    span = lambda n: np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)  # noqa: E731 - batch_som._span
    return mean + span(rows)[:, None, None] * along_rows + span(cols)[None, :, None] * along_cols


# --- assessment and profiles ----------------------------------------------------------------


@dataclass(frozen=True)
class MapFigures:
    """The map's quality on the whole table, and per-neuron statistics of the raw features.

    ``neuron_moments`` holds, per neuron (row-major) and feature, the count,
    mean and squared deviations of the observed raw values of the rows it
    won; ``neuron_missing`` the missing values among them. Segment profiles
    and population statistics are merges of these.
    """

    n_rows: int
    quantization_error: float
    topographic_error: float
    topographic_error_4: float
    outlier_threshold: float
    hits: np.ndarray
    neuron_moments: Moments
    neuron_missing: np.ndarray


def assess_map(
    partitions: Sequence[Partition], id_column: str, cleaner: FeatureCleaner, weights: np.ndarray, percentile: float
) -> MapFigures:
    """Quantization and topographic errors, outlier threshold and per-neuron statistics, over all partitions.

    Best units are found per partition by :func:`somseg.metrics.match_units`,
    so they are the local ones row for row; the errors are sums over
    partitions; the outlier threshold is the exact ``np.percentile`` of all
    distances (:func:`order_statistics`).
    """
    params = cleaner.to_dict()
    parts = [delayed(_assess_partition)(part, id_column, params, weights) for part in partitions]
    n, distance_sum, te8, te4, hits, moments, missing = tree_reduce(parts, _add).compute()
    single = weights.shape[0] * weights.shape[1] == 1
    distances = [delayed(_distances)(part, id_column, params, weights) for part in partitions]
    lower, upper, gamma = quantile_ranks(int(n), np.true_divide([percentile], 100))
    found = order_statistics(distances, lambda _: [np.concatenate([lower, upper])])[1][0]
    return MapFigures(
        n_rows=int(n),
        quantization_error=float(distance_sum / n),
        topographic_error=float("nan") if single else float(te8 / n),
        topographic_error_4=float("nan") if single else float(te4 / n),
        outlier_threshold=float(quantile_from(found[:1], found[1:], gamma)[0]),
        hits=hits,
        neuron_moments=moments,
        neuron_missing=missing,
    )


def _assess_partition(partition: Partition, id_column: str, params: dict, weights: np.ndarray) -> tuple:
    cleaner = FeatureCleaner.from_dict(params)
    frame = read_partition(partition, id_column, list(cleaner.features))
    raw = frame[list(cleaner.features)].to_numpy(dtype=np.float64)
    match = match_units(cleaner.transform(frame), weights, n_threads=1)
    cols, n_units = weights.shape[1], weights.shape[0] * weights.shape[1]
    missing = np.stack([np.bincount(match.bmu, np.isnan(raw[:, c]), n_units) for c in range(raw.shape[1])], axis=1)
    return (
        len(raw),
        float(match.distance.sum()),
        int(topographic_errors(match, cols, 8).sum()),
        int(topographic_errors(match, cols, 4).sum()),
        np.bincount(match.bmu, minlength=n_units).astype(np.int64),
        Moments.of(raw, match.bmu, n_units),
        missing.astype(np.int64),
    )


def _distances(partition: Partition, id_column: str, params: dict, weights: np.ndarray) -> np.ndarray:
    X = _cleaned(partition, id_column, params)
    return match_units(X, weights, n_threads=1).distance[:, None]


def profile_segments(figures: MapFigures, neuron_segment: np.ndarray, features: Sequence[str], k: int) -> pd.DataFrame:
    """:func:`somseg.segments.profile_segments` of the whole table, from the per-neuron statistics.

    Returns the same columns and dtypes: ``segment``, ``size``, ``share``,
    then ``<f>_mean``, ``<f>_sd`` (ddof=1, observed values) and ``<f>_imputed``.
    """
    segment_of = np.asarray(neuron_segment, dtype=np.int64)
    size = np.bincount(segment_of, weights=figures.hits, minlength=k).astype(np.int64)
    moments = figures.neuron_moments.grouped(segment_of, k)
    missing = np.stack([np.bincount(segment_of, figures.neuron_missing[:, c], k) for c in range(len(features))], axis=1)
    profile = pd.DataFrame(
        {"segment": np.arange(k, dtype=np.int64), "size": size, "share": size / max(figures.n_rows, 1)}
    )
    for c, name in enumerate(features):
        profile[f"{name}_mean"] = np.where(moments.n[:, c] > 0, moments.mean[:, c], np.nan)
        profile[f"{name}_sd"] = _sample_sd(moments.m2[:, c], moments.n[:, c])
        profile[f"{name}_imputed"] = missing[:, c].astype(np.int64)
    return profile


def population_stats(figures: MapFigures, features: Sequence[str]) -> pd.DataFrame:
    """:func:`somseg.segments.population_stats` of the whole table (mean, sample sd per feature)."""
    whole = figures.neuron_moments.grouped(np.zeros(len(figures.hits), dtype=np.int64), 1)
    return pd.DataFrame({"mean": whole.mean[0], "sd": _sample_sd(whole.m2[0], whole.n[0])}, index=list(features))


def _sample_sd(m2: np.ndarray, n: np.ndarray) -> np.ndarray:
    return np.sqrt(np.divide(m2, n - 1, out=np.full(np.shape(m2), np.nan), where=np.asarray(n) > 1))


def save_map_figures(path: Path, figures: MapFigures) -> Path:
    """Write :class:`MapFigures` as a NumPy ``.npz`` (no pickle)."""
    scalars = np.array(
        [
            figures.n_rows,
            figures.quantization_error,
            figures.topographic_error,
            figures.topographic_error_4,
            figures.outlier_threshold,
        ]
    )
    moments = figures.neuron_moments
    with open(path, "wb") as handle:
        np.savez(
            handle,
            scalars=scalars,
            hits=figures.hits,
            n=moments.n,
            mean=moments.mean,
            m2=moments.m2,
            missing=figures.neuron_missing,
        )
    return path


def load_map_figures(path: Path) -> MapFigures:
    """Read what :func:`save_map_figures` wrote."""
    with np.load(path, allow_pickle=False) as data:
        n_rows, qe, te, te4, threshold = data["scalars"].tolist()
        return MapFigures(
            int(n_rows),
            qe,
            te,
            te4,
            threshold,
            data["hits"],
            Moments(data["n"], data["mean"], data["m2"]),
            data["missing"],
        )


# --- assignment -------------------------------------------------------------------------


def write_segments(partitions: Sequence[Partition], model: SegmentationModel, folder: Path) -> ScoreSummary:
    """Score every partition with ``model`` and write it as ``folder/part-NNNNN.parquet``.

    Each file has the schema of the local ``segments.parquet``; read the
    folder as one table with ``pandas.read_parquet(folder)``. ``folder``
    must be on storage that every worker can write to.

    Returns
    -------
    ScoreSummary
        The totals of all partitions (as :func:`somseg.scoring.score_table`
        returns them), for the run's figures and drift checks.
    """
    folder.mkdir(parents=True, exist_ok=True)
    width = max(5, len(str(len(partitions))))
    parts = [
        delayed(_score_partition)(part, model, str(folder / f"part-{index:0{width}d}.parquet"))
        for index, part in enumerate(partitions)
    ]
    return tree_reduce(parts, merge_summaries).compute()


def _score_partition(partition: Partition, model: SegmentationModel, destination: str) -> ScoreSummary:
    frame = read_partition(partition, model.id_column, model.feature_names)
    scored, te8, te4 = score_frame(model, frame)
    summary = ScoreSummary(k=len(model.labels))
    summary.add(scored, te8, te4)
    summary.add_features(frame, model.training.get("feature_reference", {}))
    tmp = f"{destination}.tmp-{os.getpid()}"
    pq.write_table(pa.Table.from_pandas(scored, preserve_index=False), tmp)
    os.replace(tmp, destination)  # a retried task never leaves a half-written file
    return summary


def merge_summaries(a: ScoreSummary, b: ScoreSummary) -> ScoreSummary:
    """The totals of two sets of scored rows (every field of a summary is a sum)."""
    merged = ScoreSummary(k=a.k)
    for spec in fields(ScoreSummary):
        if spec.name == "k":
            continue
        left, right = getattr(a, spec.name), getattr(b, spec.name)
        if isinstance(left, dict):
            value = {key: left.get(key, 0) + right.get(key, 0) for key in {*left, *right}}
        else:
            value = left + right
        setattr(merged, spec.name, value)
    return merged
