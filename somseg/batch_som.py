"""Kohonen's batch SOM: a deterministic learner over partitions, and an in-memory estimator.

Each epoch assigns every row to its best-matching unit, sums the rows won by
each unit, and moves every neuron to the neighbourhood-weighted mean of
those sums::

    w_k = sum_j h_kj(sigma) S_j / sum_j h_kj(sigma) N_j

where ``S_j`` and ``N_j`` are the (weighted) sum and count of the rows whose
best unit is ``j``. The per-unit sums of a table are the sums of its blocks'
per-unit sums, so an epoch is partial (:class:`EpochRequest` on each block of
rows), combine (``+``), finish (:func:`weights_from_sums`).
:class:`BatchSomTrainer` is that learner; :class:`BatchSom` drives it over
one array in memory, and the pipeline drives it over the blocks of a
partitioned table. The neighbourhood radius shrinks geometrically from
``sigma`` to ``sigma_end`` over the epochs (:func:`sigma_schedule`).
The neighbourhood ``h`` is SOM Toolbox's 'gaussian' or 'cutgauss' (the same
Gaussian, zero beyond the radius: :func:`neighbourhood_kernel`).

Rows that repeat (integer demographics do) are trained on once, weighted by
their count (:func:`training_block`), which gives the same map for a
fraction of the work.

On a large table an epoch need not see every row: a per-unit mean is as
good from a few hundred rows as from a million. With
``sample_rows_per_neuron`` = ``B``, epoch ``e`` (radius ``sigma_e``) trains on
a random sample of about ::

    n_e = B * n_neurons * min(1, (sigma_end / sigma_e)**2)

rows (:func:`epoch_sample_sizes`), so the sample grows as the radius
shrinks: a neighbourhood of radius ``sigma`` averages the rows of about
``2 pi sigma**2`` neurons, so the noise of every epoch's update is about
that of the last. A table whose training rows (its distinct rows when
deduplicated) are no more than the last epoch's ``B * n_neurons`` is
trained on every row in every epoch, exactly as without sampling. The
sample is drawn row by row, each row kept with probability ``n_e / n_rows``
by a counter-based hash of the seed, the epoch and the row's global
position (:func:`somseg.kernels.keep_by_position`), so it is the same
whatever blocks the table is split into and wherever they are computed;
a weighted (deduplicated) row is thinned, keyed by its values
(:func:`somseg.kernels.thin_weights`). Assignment, QE and TE are then
computed on every row, after training.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np

from somseg import kernels
from somseg.kernels import DedupMode, Precision
from somseg.metrics import UnitMatch, match_units
from somseg.stats import CoMoments, combine

Neighbourhood = Literal["gaussian", "cutgauss"]
NEIGHBOURHOODS: tuple[Neighbourhood, ...] = get_args(Neighbourhood)

_EPOCH_CHUNK_ROWS = 65_536  # rows per partial sum: few partials, several per thread
_SAMPLE_CHUNK_ROWS = 65_536  # rows per sampling task: a column's share stays in cache as it is gathered
# Rows per neuron of the last epoch's sample. A neuron's update at the last radius pools the rows of
# its neighbours too, so a few hundred rows each keep QE and TE near the full-pass map's on real
# tables (docs/configuration.md, benchmarks/epoch_samples.py); training costs grow with it.
SAMPLE_ROWS_PER_NEURON = 200
# Every sampled epoch's rows are gathered in one pass over the table when they take at most this
# much memory (float64), so that the epochs then run where the trainer is, with no pass per epoch.
GATHER_BUDGET_BYTES = 256 * 2**20


@dataclass(frozen=True)
class TrainingBlock:
    """Rows to train on and the weight of each (None: 1 each).

    A deduplicated block holds distinct rows weighted by how many rows each
    stands for.
    """

    rows: np.ndarray
    weight: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        return len(self.rows)


def training_block(X: np.ndarray, dedup: DedupMode = "auto", sample_weight: np.ndarray | None = None) -> TrainingBlock:
    """The rows of ``X`` to train on: its distinct rows weighted by their counts when ``dedup`` says so.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
    dedup : {'auto', 'always', 'never'}
        'auto' deduplicates when at most half the rows are distinct.
    sample_weight : ndarray of shape (n_rows,), optional

    Returns
    -------
    TrainingBlock
    """
    if dedup == "never":
        return TrainingBlock(X, sample_weight)
    if dedup == "auto":
        distinct = kernels.dedup_if_worthwhile(X)
    elif dedup == "always":
        distinct = kernels.distinct_rows(X)
        distinct = distinct if distinct is not None and len(distinct.rows) >= 2 else None
    else:
        raise ValueError(f"dedup must be 'auto', 'always' or 'never', got {dedup!r}")
    if distinct is None:
        return TrainingBlock(X, sample_weight)
    weight = distinct.counts.astype(np.float64) if sample_weight is None else np.bincount(
        distinct.inverse, weights=sample_weight, minlength=len(distinct.rows)
    )
    return TrainingBlock(distinct.rows, weight)


def group_blocks(sizes: Sequence[int], max_rows: int) -> list[list[int]]:
    """Consecutive blocks grouped while a group holds at most ``max_rows`` rows (a larger block stands alone).

    The grouping depends only on the sizes, so it is the same wherever the
    blocks were computed.
    """
    groups: list[list[int]] = []
    total = 0
    for index, size in enumerate(sizes):
        if groups and total + size <= max_rows:
            groups[-1].append(index)
            total += size
        else:
            groups.append([index])
            total = size
    return groups


def join_blocks(blocks: Sequence[TrainingBlock], dedup: DedupMode = "auto") -> TrainingBlock:
    """One block of the rows of ``blocks``, deduplicated again (rows repeat across partitions too)."""
    rows = np.concatenate([block.rows for block in blocks])
    weighted = any(block.weight is not None for block in blocks)
    weight = (
        np.concatenate([block.weight if block.weight is not None else np.ones(block.n_rows) for block in blocks])
        if weighted
        else None
    )
    return training_block(rows, dedup, weight)


def pack_blocks(blocks: Sequence[TrainingBlock], max_rows: int, dedup: DedupMode = "auto") -> list[TrainingBlock]:
    """Join consecutive blocks into blocks of at most ``max_rows`` rows (:func:`group_blocks`, :func:`join_blocks`).

    Partitions of repeated rows hold a few thousand distinct rows each;
    joined, a table's epochs run over one small block instead of one per
    partition.
    """
    groups = group_blocks([block.n_rows for block in blocks], max_rows)
    return [blocks[g[0]] if len(g) == 1 else join_blocks([blocks[i] for i in g], dedup) for g in groups]


# --- one epoch: partial, combine, finish -------------------------------------------------


@dataclass(frozen=True)
class EpochSums:
    """Per-unit weighted sums and counts of the rows each unit won (row-major unit order)."""

    sums: np.ndarray
    counts: np.ndarray

    def __add__(self, other: "EpochSums") -> "EpochSums":
        return EpochSums(self.sums + other.sums, self.counts + other.counts)


@dataclass(frozen=True)
class EpochSample:
    """The rows one epoch trains on: each row of the table with probability ``fraction``.

    ``key`` (:func:`somseg.kernels.sample_key` of the seed and the epoch)
    decides which; a weighted row stands for ``weight * rows_per_weight``
    rows and is thinned (:func:`somseg.kernels.thin_weights`).
    """

    fraction: float
    key: int
    rows_per_weight: float = 1.0

    def of(self, block: TrainingBlock, first_row: int = 0, n_threads: int | None = None) -> TrainingBlock:
        """The rows of ``block`` (whose first row is row ``first_row`` of the table) this sample keeps."""

        # Each chunk gathers its own kept rows, on its thread, while its columns are near in memory.
        def chunk(start: int, stop: int) -> tuple[np.ndarray, np.ndarray | None]:
            rows = block.rows[start:stop]
            if block.weight is None:
                keep = kernels.keep_by_position(first_row + start, stop - start, self.key, self.fraction)
                return take_rows(rows, np.flatnonzero(keep)), None
            thinned = kernels.thin_weights(rows, block.weight[start:stop], self.key, self.fraction, self.rows_per_weight)
            kept = np.flatnonzero(thinned)
            return take_rows(rows, kept), thinned[kept]

        chunks = kernels.map_chunks(chunk, block.n_rows, _SAMPLE_CHUNK_ROWS, n_threads)
        rows = np.concatenate([np.empty((0, block.rows.shape[1]))] + [kept for kept, _ in chunks])
        weight = None if block.weight is None else np.concatenate([np.empty(0)] + [weights for _, weights in chunks])
        return TrainingBlock(rows, weight)


@dataclass(frozen=True)
class EpochRequest:
    """One epoch's partial: the per-unit sums of a block of rows, for the codebook ``weights``.

    With a ``sample``, only the rows it keeps count; it needs the global
    position of the block's first row in the table (``first_row`` of
    :meth:`partial`, as for :class:`PickRequest`).
    """

    weights: np.ndarray
    chunk_rows: int | None = None
    n_threads: int | None = None
    sample: EpochSample | None = None
    precision: Precision = "float64"

    def rows_kept(self, first_row: int, n_rows: int) -> np.ndarray | None:
        """Positions, within an unweighted block of ``n_rows`` rows from row ``first_row``, of the rows this epoch keeps.

        None when the epoch runs over every row. Loading only these rows and
        passing them to :meth:`partial_of_kept` gives the same sums as
        :meth:`partial` of the whole block, without reading the others.
        """
        if self.sample is None:
            return None
        return np.flatnonzero(kernels.keep_by_position(first_row, n_rows, self.sample.key, self.sample.fraction))

    def partial_of_kept(self, rows: np.ndarray) -> EpochSums:
        """The partial of an unweighted block's rows at :meth:`rows_kept`'s positions, in that order."""
        return self._sums(TrainingBlock(np.ascontiguousarray(rows)))

    def partial(self, block: TrainingBlock, first_row: int = 0) -> EpochSums:
        if self.sample is not None:
            block = self.sample.of(block, first_row, self.n_threads)
        return self._sums(block)

    def _sums(self, block: TrainingBlock) -> EpochSums:
        if block.n_rows == 0:  # a small block's sample may keep no row
            n_units = self.weights.shape[0] * self.weights.shape[1]
            return EpochSums(np.zeros((n_units, self.weights.shape[2])), np.zeros(n_units))

        # Partial sums in a fixed chunking, added in chunk order: the result
        # is the same whatever the number of threads.
        def chunk(start: int, stop: int) -> EpochSums:
            weight = None if block.weight is None else block.weight[start:stop]
            return EpochSums(*epoch_partial_sums(block.rows[start:stop], self.weights, weight, chunk_rows=self.chunk_rows,
                                                 precision=self.precision))

        return combine(kernels.map_chunks(chunk, block.n_rows, _EPOCH_CHUNK_ROWS, self.n_threads))


@dataclass(frozen=True)
class PickRequest:
    """The rows at sorted global indices ``picks``, from a partition whose first row is ``first_row``."""

    picks: np.ndarray

    def partial(self, X: np.ndarray, first_row: int = 0) -> "PickedRows":
        picks = np.asarray(self.picks, dtype=np.int64)
        inside = (picks >= first_row) & (picks < first_row + len(X))
        return PickedRows(np.flatnonzero(inside), np.asarray(X)[picks[inside] - first_row])


@dataclass(frozen=True)
class PickedRows:
    """Rows found for some positions of a :class:`PickRequest`."""

    positions: np.ndarray
    rows: np.ndarray

    def __add__(self, other: "PickedRows") -> "PickedRows":
        return PickedRows(np.concatenate([self.positions, other.positions]), np.concatenate([self.rows, other.rows]))


@dataclass(frozen=True)
class GatherRequest:
    """Every sampled epoch's rows of a block, in one pass: the rows any epoch keeps, each with the epochs that keep it.

    The epochs' :class:`EpochSample` keys and fractions, in epoch order
    (at most 64 epochs: one bit each).
    """

    keys: tuple[int, ...]
    fractions: tuple[float, ...]

    def positions(self, first_row: int, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions within an unweighted block of ``n_rows`` rows from row ``first_row`` that some epoch keeps, and
        for each of them a mask with bit ``e`` set when epoch ``e`` keeps it (:meth:`EpochRequest.rows_kept`)."""
        masks = np.zeros(n_rows, dtype=np.uint64)
        for epoch, (key, fraction) in enumerate(zip(self.keys, self.fractions, strict=True)):
            keep = kernels.keep_by_position(first_row, n_rows, key, fraction)
            masks[keep] |= np.uint64(1 << epoch)
        kept = np.flatnonzero(masks)
        return kept, masks[kept]


@dataclass(frozen=True)
class GatheredRows:
    """Rows of blocks that some sampled epoch keeps, with their epoch masks, block by block in table order."""

    blocks: tuple[tuple[np.ndarray, np.ndarray], ...]  # (rows, masks) of each block

    @classmethod
    def of(cls, rows: np.ndarray, masks: np.ndarray) -> "GatheredRows":
        """One block's share (:meth:`GatherRequest.positions` ``masks``, the rows at its positions)."""
        return cls(((np.ascontiguousarray(rows, dtype=np.float64), np.asarray(masks, dtype=np.uint64)),))

    def __add__(self, other: "GatheredRows") -> "GatheredRows":
        return GatheredRows(self.blocks + other.blocks)


@dataclass
class BatchSomTrainer:
    """The batch SOM as a learner: an initial codebook, then one :class:`EpochRequest` per epoch.

    Parameters are those of :class:`BatchSom`. Start it with
    :meth:`start_pca` (from the rows' co-moments) or with :meth:`start_random`
    (from the rows :meth:`random_picks` asks for), then drive it:
    ``request()`` gives the next epoch, ``update(total)`` takes the combined
    :class:`EpochSums` of every block.

    Attributes
    ----------
    weights_ : ndarray of shape (rows, cols, n_features)
        The codebook so far.
    sigmas_ : ndarray of shape (epochs,)
    epoch_ : int
        Epochs done.
    """

    rows: int
    cols: int
    sigma: float
    sigma_end: float
    epochs: int
    chunk_rows: int | None = None
    n_threads: int | None = None
    random_state: int = 42
    sample_rows_per_neuron: int | None = None
    precision: Precision = "float64"
    neighborhood: Neighbourhood = "gaussian"
    epoch_: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        _check_params(self.rows, self.cols, self.sigma, self.sigma_end, self.epochs)
        _check_neighbourhood(self.neighborhood)
        if self.sample_rows_per_neuron is not None and self.sample_rows_per_neuron < 1:
            raise ValueError(f"sample_rows_per_neuron must be at least 1 or None, got {self.sample_rows_per_neuron}")
        self.sigmas_ = sigma_schedule(self.sigma, self.sigma_end, self.epochs)
        self._sizes: tuple[int, int, float] | None = None

    def plan(self, n_rows: int, n_train_rows: int | None = None, total_weight: float | None = None) -> None:
        """Size the epochs' samples for the table trained on (without it, every epoch is a full pass).

        Parameters
        ----------
        n_rows : int
            Rows of the table.
        n_train_rows : int, optional
            Rows the blocks hold (fewer when deduplicated); ``n_rows`` by default.
        total_weight : float, optional
            Sum of the blocks' row weights; ``n_rows`` by default (weights
            that count rows).
        """
        n_train = n_rows if n_train_rows is None else n_train_rows
        weight = float(n_rows if total_weight is None else total_weight)
        if n_rows < 1 or n_train < 1 or not weight > 0:
            raise ValueError(f"a table to plan for has rows and weight, got {n_rows}, {n_train}, {weight}")
        self._sizes = (int(n_rows), int(n_train), weight)

    @property
    def sample_sizes_(self) -> np.ndarray:
        """Rows each epoch samples, ``n_rows`` for a full pass (:func:`epoch_sample_sizes`); full passes unless planned."""
        if self._sizes is None:
            return np.full(self.epochs, -1, dtype=np.int64)
        n_rows, n_train, _ = self._sizes
        sizes = epoch_sample_sizes(self.sigmas_, self.rows * self.cols, self.sample_rows_per_neuron)
        # A table no larger than the last epoch's sample is trained on full passes throughout.
        if (sizes < 0).any() or sizes.max() >= n_train:
            return np.full(self.epochs, n_rows, dtype=np.int64)
        return np.minimum(sizes, n_rows)

    def _sample(self, epoch: int) -> EpochSample | None:
        if self._sizes is None or self.sample_rows_per_neuron is None:
            return None
        n_rows, _, weight = self._sizes
        size = int(self.sample_sizes_[epoch])
        if size >= n_rows:
            return None
        return EpochSample(size / n_rows, kernels.sample_key(self.random_state, epoch), n_rows / weight)

    def random_picks(self, n_rows: int, sample_weight: np.ndarray | None = None) -> PickRequest:
        """The global rows a 'random' initialisation starts the neurons on (seeded, with replacement)."""
        rng = np.random.default_rng(self.random_state)
        p = None if sample_weight is None else sample_weight / sample_weight.sum()
        self._picks = rng.choice(n_rows, size=self.rows * self.cols, replace=True, p=p)
        return PickRequest(np.unique(self._picks))

    def start_random(self, picked: PickedRows) -> None:
        """Start from the rows :meth:`random_picks` asked for."""
        order = np.argsort(picked.positions)
        found = picked.rows[order]
        wanted = np.unique(self._picks)
        self.weights_ = found[np.searchsorted(wanted, self._picks)].reshape(self.rows, self.cols, -1).copy()

    def start_pca(self, moments: CoMoments) -> None:
        """Start on the plane of the first two principal components of the rows (deterministic)."""
        self.weights_ = pca_grid(moments.mean, moments.covariance(), self.rows, self.cols)

    def start_from(self, weights: np.ndarray) -> None:
        """Start from a given codebook (the start another driver computed)."""
        self.weights_ = np.array(weights, dtype=np.float64, copy=True)

    def request(self) -> EpochRequest | None:
        if not hasattr(self, "weights_"):
            raise RuntimeError("start the trainer (start_pca or start_random) before asking for epochs")
        if self.epoch_ >= self.epochs:
            return None
        return EpochRequest(self.weights_, self.chunk_rows, self.n_threads, self._sample(self.epoch_), self.precision)

    def update(self, total: EpochSums) -> None:
        self.weights_ = weights_from_sums(
            total.sums, total.counts, self.weights_, float(self.sigmas_[self.epoch_]), self.neighborhood
        )
        self.epoch_ += 1

    def gather_request(self, n_features: int) -> GatherRequest | None:
        """The one pass that gathers every epoch's sampled rows, or None when the epochs should pass over the blocks.

        Only when every epoch samples (:meth:`plan` sized them), there are at
        most 64 epochs, and the rows sampled, counted once per epoch, fit
        :data:`GATHER_BUDGET_BYTES`. Unweighted blocks only: a deduplicated
        row's thinned weight differs from epoch to epoch.
        """
        samples = [self._sample(epoch) for epoch in range(self.epochs)]
        if self.epochs > 64 or any(sample is None for sample in samples):
            return None
        if int(self.sample_sizes_.sum()) * n_features * 8 > GATHER_BUDGET_BYTES:
            return None
        return GatherRequest(tuple(s.key for s in samples), tuple(s.fraction for s in samples))

    def fit_gathered(self, gathered: GatheredRows, progress: Callable[[float], None] | None = None) -> None:
        """Run the remaining epochs on the rows :meth:`gather_request` gathered.

        Each epoch's sums are those of the blocks' kept rows, block by block
        in the same order and chunks as :class:`EpochRequest` passes over the
        blocks, so the codebook is the same to the last bit.
        """
        while (request := self.request()) is not None:
            bit = np.uint64(1 << self.epoch_)
            self.update(combine([request.partial_of_kept(rows[(masks & bit) != 0]) for rows, masks in gathered.blocks]))
            if progress is not None:
                progress(self.epoch_ / self.epochs)


class BatchSom:
    """Batch-rule Self-Organizing Map on a rectangular grid, trained in memory.

    Parameters
    ----------
    rows, cols : int
        Grid shape.
    sigma : float
        Neighbourhood radius (grid units) of the first epoch.
    sigma_end : float
        Neighbourhood radius of the last epoch.
    epochs : int
        Passes over the data.
    neighborhood : {'gaussian', 'cutgauss'}
        Neighbourhood function of the grid distance ``d``: 'gaussian'
        ``exp(-d^2 / (2 sigma^2))``; 'cutgauss' the same, zero where
        ``d > sigma`` (SOM Toolbox's names). 'cutgauss' fits the rows more
        closely (lower QE) and orders the map less (higher TE).
    init : {'pca', 'random'}
        'pca': the grid spans the plane of the first two principal
        components, one standard deviation each way (deterministic);
        'random': neurons start on rows drawn with ``random_state``.
    chunk_rows : int, optional
        Rows per chunk of the distance kernels; by default about 2 MB of
        distances per chunk.
    dedup : {'auto', 'always', 'never'}
        Train on the distinct rows weighted by their counts: 'auto' does so
        when at most half the rows are distinct.
    n_threads : int, optional
        Threads; by default every available CPU. The map does not depend on it.
    random_state : int
        Seed of the 'random' initialisation and of the epochs' samples.
    sample_rows_per_neuron : int or None
        Epoch ``e`` trains on a seeded sample of about
        ``sample_rows_per_neuron * rows * cols * (sigma_end / sigma_e)**2``
        rows; a table of at most ``sample_rows_per_neuron * rows * cols``
        training rows is trained on every row in every epoch (see the module
        docstring). None: every epoch is a full pass.
    precision : {'float64', 'float32'}
        Arithmetic of the epochs' best-unit search
        (:func:`somseg.kernels.best_units`): float32 may move rows whose two
        best units are within its resolution, which the neighbourhood means
        do not notice. Assignment, QE and TE (:meth:`match`) are float64.

    Attributes
    ----------
    weights_ : ndarray of shape (rows, cols, n_features)
        The trained codebook.
    n_features_in_ : int
        Number of features seen by :meth:`fit`.
    sigmas_ : ndarray of shape (epochs,)
        The radius used in each epoch.
    n_train_rows_ : int
        Rows the epochs ran over (the distinct rows when deduplicated).
    sample_sizes_ : ndarray of shape (epochs,)
        Rows of the table each epoch sampled (``n_rows`` for a full pass).
    """

    def __init__(
        self,
        rows: int = 8,
        cols: int = 8,
        sigma: float = 3.0,
        sigma_end: float = 0.5,
        epochs: int = 30,
        neighborhood: Neighbourhood = "gaussian",
        init: str = "pca",
        chunk_rows: int | None = None,
        dedup: DedupMode = "auto",
        n_threads: int | None = None,
        random_state: int = 42,
        sample_rows_per_neuron: int | None = SAMPLE_ROWS_PER_NEURON,
        precision: Precision = "float64",
    ) -> None:
        self.rows = rows
        self.cols = cols
        self.sigma = sigma
        self.sigma_end = sigma_end
        self.epochs = epochs
        self.neighborhood = neighborhood
        self.init = init
        self.chunk_rows = chunk_rows
        self.dedup = dedup
        self.n_threads = n_threads
        self.random_state = random_state
        self.sample_rows_per_neuron = sample_rows_per_neuron
        self.precision = precision

    def trainer(self) -> BatchSomTrainer:
        """The learner these hyperparameters describe (what :meth:`fit` drives)."""
        if self.init not in ("pca", "random"):
            raise ValueError(f"init must be 'pca' or 'random', got {self.init!r}")
        return BatchSomTrainer(
            self.rows, self.cols, self.sigma, self.sigma_end, self.epochs, self.chunk_rows, self.n_threads,
            self.random_state, self.sample_rows_per_neuron, self.precision, self.neighborhood,
        )

    def fit(
        self,
        X: np.ndarray,
        sample_weight: np.ndarray | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> "BatchSom":
        """Train on standardised data.

        Parameters
        ----------
        X : ndarray of shape (n_rows, n_features)
        sample_weight : ndarray of shape (n_rows,), optional
            Non-negative weight of each row (e.g. how many customers a
            distinct row stands for); by default 1 each.
        progress : callable, optional
            Called with the fraction of epochs done after each epoch (1.0
            after the last); the weights do not depend on it.

        Returns
        -------
        self
        """
        trainer = self.trainer()
        X = check_training_data(X)
        weight = _check_sample_weight(sample_weight, len(X))
        # Random initialisation draws from the rows as given, so the map
        # does not depend on whether the rows are deduplicated below.
        if self.init == "random":
            trainer.start_random(trainer.random_picks(len(X), weight).partial(X))
        else:
            trainer.start_pca(CoMoments.of(X, weight))
        block = training_block(X, self.dedup, weight)
        trainer.plan(len(X), block.n_rows, None if weight is None else float(weight.sum()))
        while (request := trainer.request()) is not None:
            trainer.update(request.partial(block))
            if progress is not None:
                progress(trainer.epoch_ / self.epochs)
        self.weights_ = trainer.weights_
        self.sigmas_ = trainer.sigmas_
        self.n_features_in_ = X.shape[1]
        self.n_train_rows_ = block.n_rows
        self.sample_sizes_ = trainer.sample_sizes_
        return self

    def match(self, X: np.ndarray) -> UnitMatch:
        """Best and second-best unit of each row of ``X``."""
        check_fitted(self)
        return match_units(X, self.weights_, self.chunk_rows, n_threads=self.n_threads)


def epoch_partial_sums(
    X_chunk: np.ndarray,
    weights: np.ndarray,
    sample_weight: np.ndarray | None = None,
    *,
    chunk_rows: int | None = None,
    precision: Precision = "float64",
) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit sums and counts of one chunk's rows, for one batch epoch.

    A pure function: the sums for a whole table are the element-wise sums of
    its chunks' results, in any grouping.

    Parameters
    ----------
    X_chunk : ndarray of shape (n_rows, n_features)
    weights : ndarray of shape (rows, cols, n_features)
        The codebook at the start of the epoch.
    sample_weight : ndarray of shape (n_rows,), optional
        Weight of each row; 1 each by default.
    chunk_rows : int, optional
        Rows per chunk of the distance kernel.
    precision : {'float64', 'float32'}
        Arithmetic of the best-unit search (:func:`somseg.kernels.best_units`).

    Returns
    -------
    sums : ndarray of shape (rows * cols, n_features)
        Weighted sum of the rows won by each unit (row-major unit order).
    counts : ndarray of shape (rows * cols,)
        Total weight of the rows won by each unit.
    """
    X_chunk = np.asarray(X_chunk, dtype=np.float64)
    codebook = np.asarray(weights, dtype=np.float64).reshape(-1, X_chunk.shape[1])
    n_units = len(codebook)
    # One thread per chunk: callers parallelise over chunks.
    bmu = kernels.best_units(X_chunk, codebook, chunk_rows=chunk_rows, n_threads=1, precision=precision)
    counts = np.bincount(bmu, weights=sample_weight, minlength=n_units).astype(np.float64)
    sums = np.empty((n_units, X_chunk.shape[1]))
    for feature in range(X_chunk.shape[1]):  # a few features, not rows
        column = X_chunk[:, feature] if sample_weight is None else X_chunk[:, feature] * sample_weight
        sums[:, feature] = np.bincount(bmu, weights=column, minlength=n_units)
    return sums, counts


def weights_from_sums(
    sums: np.ndarray, counts: np.ndarray, weights: np.ndarray, sigma: float, neighborhood: Neighbourhood = "gaussian"
) -> np.ndarray:
    """The codebook after one batch epoch, from the table's per-unit sums.

    Parameters
    ----------
    sums : ndarray of shape (rows * cols, n_features)
    counts : ndarray of shape (rows * cols,)
        Reduced :func:`epoch_partial_sums` results.
    weights : ndarray of shape (rows, cols, n_features)
        The codebook at the start of the epoch; a neuron no row reaches
        through the neighbourhood keeps its weights.
    sigma : float
        Neighbourhood radius of this epoch.
    neighborhood : {'gaussian', 'cutgauss'}
        Neighbourhood function (:func:`neighbourhood_kernel`).

    Returns
    -------
    ndarray of shape (rows, cols, n_features)
    """
    rows, cols, n_features = weights.shape
    kernel = neighbourhood_kernel(rows, cols, sigma, neighborhood)
    numerator = kernel @ sums
    denominator = kernel @ counts
    reached = denominator > 0
    new = weights.reshape(-1, n_features).copy()
    new[reached] = numerator[reached] / denominator[reached, None]
    return new.reshape(rows, cols, n_features)


def neighbourhood_kernel(rows: int, cols: int, sigma: float, neighborhood: Neighbourhood = "gaussian") -> np.ndarray:
    """Neighbourhood weights ``h[k, j]`` between grid units ``k`` and ``j``, as SOM Toolbox defines them.

    Parameters
    ----------
    rows, cols : int
        Grid shape (units in row-major order).
    sigma : float
        Radius, in grid units.
    neighborhood : {'gaussian', 'cutgauss'}
        'gaussian': ``exp(-d^2 / (2 sigma^2))`` of the grid distance
        ``d = |g_k - g_j|``; 'cutgauss': the same where ``d <= sigma``, 0
        beyond. Without the Gaussian's tails, far units do not pull a neuron
        towards the middle of the data, so the map spreads over the rows
        more (lower QE) and is less smooth (higher TE).

    Returns
    -------
    ndarray of shape (rows * cols, rows * cols)
    """
    _check_neighbourhood(neighborhood)
    grid_r, grid_c = np.divmod(np.arange(rows * cols), cols)
    squared = (grid_r[:, None] - grid_r[None, :]) ** 2 + (grid_c[:, None] - grid_c[None, :]) ** 2
    kernel = np.exp(-squared / (2.0 * sigma**2))
    if neighborhood == "cutgauss":
        kernel[squared > sigma**2] = 0.0
    return kernel


def epoch_sample_sizes(sigmas: np.ndarray, n_neurons: int, rows_per_neuron: int | None) -> np.ndarray:
    """Rows each epoch samples: ``rows_per_neuron * n_neurons * min(1, (sigma_end / sigma_e)**2)``.

    A neighbourhood of radius ``sigma`` pools the rows of about
    ``2 pi sigma**2`` neurons, so an epoch's update is about as noisy as the
    last one's from a sample that much smaller.

    Parameters
    ----------
    sigmas : ndarray of shape (epochs,)
        The radius schedule (:func:`sigma_schedule`); its last radius is ``sigma_end``.
    n_neurons : int
    rows_per_neuron : int or None
        Rows per neuron of the last epoch's sample; None: no sampling.

    Returns
    -------
    ndarray of int64, shape (epochs,)
        -1 (every row) for every epoch when ``rows_per_neuron`` is None.
    """
    sigmas = np.asarray(sigmas, dtype=np.float64)
    if rows_per_neuron is None:
        return np.full(len(sigmas), -1, dtype=np.int64)
    shrink = np.minimum(1.0, (sigmas[-1] / sigmas) ** 2)
    return np.ceil(rows_per_neuron * n_neurons * shrink).astype(np.int64)


def sigma_schedule(sigma_start: float, sigma_end: float, epochs: int) -> np.ndarray:
    """Radius of each epoch, shrinking geometrically from ``sigma_start`` to ``sigma_end``."""
    return np.geomspace(sigma_start, sigma_end, epochs)


def pca_grid(mean: np.ndarray, cov: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Linear initialisation: a grid on the plane of the first two principal components.

    The grid is centred on ``mean`` and spans one standard deviation each
    way along each component, the longer grid side along the first. Each
    component's sign is fixed (largest entry positive), so the map does not
    flip with the eigen-solver's arbitrary signs.

    Parameters
    ----------
    mean : ndarray of shape (n_features,)
    cov : ndarray of shape (n_features, n_features)
        The rows' covariance.
    rows, cols : int

    Returns
    -------
    ndarray of shape (rows, cols, n_features)
    """
    eigvals, eigvecs = np.linalg.eigh(cov)
    order = np.argsort(eigvals)[::-1]
    axes = np.zeros((2, len(mean)))
    for slot, component in enumerate(order[:2]):
        vector = eigvecs[:, component]
        vector = vector if vector[np.argmax(np.abs(vector))] >= 0 else -vector
        axes[slot] = np.sqrt(max(eigvals[component], 0.0)) * vector
    along_rows, along_cols = (axes[0], axes[1]) if rows >= cols else (axes[1], axes[0])
    return mean + _span(rows)[:, None, None] * along_rows + _span(cols)[None, :, None] * along_cols


def pca_init(X: np.ndarray, rows: int, cols: int, sample_weight: np.ndarray | None = None) -> np.ndarray:
    """:func:`pca_grid` of the (weighted) rows of ``X``."""
    moments = CoMoments.of(X, sample_weight)
    return pca_grid(moments.mean, moments.covariance(), rows, cols)


# --- helpers -----------------------------------------------------------------


def take_rows(X: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``X[rows]`` as a C-ordered array, gathered a column at a time from a column-ordered ``X`` (or a slice of one).

    Cleaned tables are column-ordered; gathering their rows one row at a
    time would touch every column's memory for every row.
    """
    if X.strides[0] < X.strides[1]:
        out = np.empty((len(rows), X.shape[1]), dtype=X.dtype)
        for column in range(X.shape[1]):  # a few features, not rows
            np.take(X[:, column], rows, out=out[:, column])
        return out
    return X[rows]


def _span(n: int) -> np.ndarray:
    return np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)


def _check_params(rows: int, cols: int, sigma: float, sigma_end: float, epochs: int) -> None:
    if rows < 1 or cols < 1:
        raise ValueError(f"the grid needs at least one row and column, got {rows}x{cols}")
    if not (sigma > 0 and sigma_end > 0):
        raise ValueError(f"sigma and sigma_end must be positive, got {sigma}, {sigma_end}")
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")


def _check_neighbourhood(neighborhood: str) -> None:
    if neighborhood not in NEIGHBOURHOODS:
        raise ValueError(f"the batch engine's neighborhood is one of {', '.join(map(repr, NEIGHBOURHOODS))}, got {neighborhood!r}")


def check_training_data(X: np.ndarray) -> np.ndarray:
    """``X`` as a float64 2-D array with at least one row and no NaN or infinity."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) == 0:
        raise ValueError(f"training data must be a non-empty 2-D array, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("training data contains NaN or infinite values; clean it first")
    return X


def _check_sample_weight(sample_weight: np.ndarray | None, n_rows: int) -> np.ndarray | None:
    if sample_weight is None:
        return None
    weight = np.asarray(sample_weight, dtype=np.float64)
    if weight.shape != (n_rows,):
        raise ValueError(f"sample_weight must have shape ({n_rows},), got {weight.shape}")
    if not np.isfinite(weight).all() or (weight < 0).any() or weight.sum() <= 0:
        raise ValueError("sample_weight must be finite, non-negative and not all zero")
    return weight


def check_fitted(engine: object) -> None:
    """Raise unless ``engine`` has learnt ``weights_``."""
    if not hasattr(engine, "weights_"):
        raise RuntimeError(f"{type(engine).__name__} is not fitted yet; call fit() first")
