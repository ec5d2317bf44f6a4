"""Kohonen's batch SOM: a deterministic, chunked, multi-threaded engine.

Each epoch assigns every row to its best-matching unit, sums the rows won by
each unit, and moves every neuron to the neighbourhood-weighted mean of
those sums::

    w_k = sum_j h_kj(sigma) S_j / sum_j h_kj(sigma) N_j

where ``S_j`` and ``N_j`` are the (weighted) sum and count of the rows whose
best unit is ``j``. The per-unit sums of a table are the sums of its chunks'
per-unit sums, so an epoch is a map-reduce: :func:`epoch_partial_sums` on
each chunk (anywhere, e.g. on Dask workers), add the results, then
:func:`weights_from_sums`. The neighbourhood radius shrinks geometrically
from ``sigma`` to ``sigma_end`` over the epochs (:func:`sigma_schedule`).

Rows that repeat (integer demographics do) are trained on once, weighted by
their count, which gives the same map for a fraction of the work.
"""

from collections.abc import Callable
from functools import reduce

import numpy as np

from somseg import kernels
from somseg.kernels import DedupMode, DistinctRows
from somseg.metrics import UnitMatch, match_units

_EPOCH_CHUNK_ROWS = 65_536  # rows per partial sum: few partials, several per thread


class BatchSom:
    """Batch-rule Self-Organizing Map on a rectangular grid.

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
    neighborhood : {'gaussian'}
        Neighbourhood function ``exp(-d^2 / (2 sigma^2))`` of the grid
        distance ``d``.
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
        Seed of the 'random' initialisation.

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
    """

    def __init__(
        self,
        rows: int = 8,
        cols: int = 8,
        sigma: float = 3.0,
        sigma_end: float = 0.5,
        epochs: int = 30,
        neighborhood: str = "gaussian",
        init: str = "pca",
        chunk_rows: int | None = None,
        dedup: DedupMode = "auto",
        n_threads: int | None = None,
        random_state: int = 42,
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
        self._check_params()
        X = _check_training_data(X)
        weight = _check_sample_weight(sample_weight, len(X))
        # Random initialisation draws from the rows as given, so the map
        # does not depend on whether the rows are deduplicated below.
        weights = None if self.init == "pca" else random_init(X, self.rows, self.cols, self.random_state, weight)
        X, weight = _maybe_distinct(X, weight, self.dedup)
        if weights is None:
            weights = pca_init(X, self.rows, self.cols, weight)
        self.sigmas_ = sigma_schedule(self.sigma, self.sigma_end, self.epochs)
        for epoch, sigma in enumerate(self.sigmas_, start=1):
            sums, counts = self._epoch_sums(X, weights, weight)
            weights = weights_from_sums(sums, counts, weights, sigma)
            if progress is not None:
                progress(epoch / len(self.sigmas_))
        self.weights_ = weights
        self.n_features_in_ = X.shape[1]
        self.n_train_rows_ = len(X)
        return self

    def match(self, X: np.ndarray) -> UnitMatch:
        """Best and second-best unit of each row of ``X``."""
        _check_fitted(self)
        return match_units(X, self.weights_, self.chunk_rows, n_threads=self.n_threads)

    def _epoch_sums(
        self, X: np.ndarray, weights: np.ndarray, weight: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        # Partial sums in a fixed chunking, added in chunk order: the result
        # is the same whatever the number of threads.
        def partial(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
            chunk_weight = None if weight is None else weight[start:stop]
            return epoch_partial_sums(X[start:stop], weights, chunk_weight, chunk_rows=self.chunk_rows)

        parts = kernels.map_chunks(partial, len(X), _EPOCH_CHUNK_ROWS, self.n_threads)
        return reduce(lambda a, b: (a[0] + b[0], a[1] + b[1]), parts)

    def _check_params(self) -> None:
        if self.rows < 1 or self.cols < 1:
            raise ValueError(f"the grid needs at least one row and column, got {self.rows}x{self.cols}")
        if not (self.sigma > 0 and self.sigma_end > 0):
            raise ValueError(f"sigma and sigma_end must be positive, got {self.sigma}, {self.sigma_end}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.neighborhood != "gaussian":
            raise ValueError(f"the batch engine supports the 'gaussian' neighborhood only, got {self.neighborhood!r}")
        if self.init not in ("pca", "random"):
            raise ValueError(f"init must be 'pca' or 'random', got {self.init!r}")


def epoch_partial_sums(
    X_chunk: np.ndarray,
    weights: np.ndarray,
    sample_weight: np.ndarray | None = None,
    *,
    chunk_rows: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit sums and counts of one chunk's rows, for one batch epoch.

    A pure function: the sums for a whole table are the element-wise sums of
    its chunks' results, in any grouping, so the chunks can be processed
    anywhere and reduced with ``+``.

    Parameters
    ----------
    X_chunk : ndarray of shape (n_rows, n_features)
    weights : ndarray of shape (rows, cols, n_features)
        The codebook at the start of the epoch.
    sample_weight : ndarray of shape (n_rows,), optional
        Weight of each row; 1 each by default.
    chunk_rows : int, optional
        Rows per chunk of the distance kernel.

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
    # One thread per chunk: callers parallelise over chunks (threads, Dask).
    bmu = kernels.best_units(X_chunk, codebook, chunk_rows=chunk_rows, n_threads=1)
    counts = np.bincount(bmu, weights=sample_weight, minlength=n_units).astype(np.float64)
    sums = np.empty((n_units, X_chunk.shape[1]))
    for feature in range(X_chunk.shape[1]):  # a few features, not rows
        column = X_chunk[:, feature] if sample_weight is None else X_chunk[:, feature] * sample_weight
        sums[:, feature] = np.bincount(bmu, weights=column, minlength=n_units)
    return sums, counts


def weights_from_sums(
    sums: np.ndarray, counts: np.ndarray, weights: np.ndarray, sigma: float
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

    Returns
    -------
    ndarray of shape (rows, cols, n_features)
    """
    rows, cols, n_features = weights.shape
    kernel = neighbourhood_kernel(rows, cols, sigma)
    numerator = kernel @ sums
    denominator = kernel @ counts
    reached = denominator > 0
    new = weights.reshape(-1, n_features).copy()
    new[reached] = numerator[reached] / denominator[reached, None]
    return new.reshape(rows, cols, n_features)


def neighbourhood_kernel(rows: int, cols: int, sigma: float) -> np.ndarray:
    """Gaussian neighbourhood ``h[k, j] = exp(-|g_k - g_j|^2 / (2 sigma^2))`` between grid units.

    Returns
    -------
    ndarray of shape (rows * cols, rows * cols)
    """
    grid_r, grid_c = np.divmod(np.arange(rows * cols), cols)
    squared = (grid_r[:, None] - grid_r[None, :]) ** 2 + (grid_c[:, None] - grid_c[None, :]) ** 2
    return np.exp(-squared / (2.0 * sigma**2))


def sigma_schedule(sigma_start: float, sigma_end: float, epochs: int) -> np.ndarray:
    """Radius of each epoch, shrinking geometrically from ``sigma_start`` to ``sigma_end``."""
    return np.geomspace(sigma_start, sigma_end, epochs)


def pca_init(
    X: np.ndarray, rows: int, cols: int, sample_weight: np.ndarray | None = None
) -> np.ndarray:
    """Linear initialisation: a grid on the plane of the first two principal components.

    The grid is centred on the (weighted) mean and spans one standard
    deviation each way along each component, the longer grid side along the
    first. Each component's sign is fixed (largest entry positive), so the
    map does not flip with the eigen-solver's arbitrary signs.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
    rows, cols : int
    sample_weight : ndarray of shape (n_rows,), optional

    Returns
    -------
    ndarray of shape (rows, cols, n_features)
    """
    mean, cov = _weighted_moments(X, sample_weight)
    eigvals, eigvecs = np.linalg.eigh(cov)
    order = np.argsort(eigvals)[::-1]
    axes = np.zeros((2, X.shape[1]))
    for slot, component in enumerate(order[:2]):
        vector = eigvecs[:, component]
        vector = vector if vector[np.argmax(np.abs(vector))] >= 0 else -vector
        axes[slot] = np.sqrt(max(eigvals[component], 0.0)) * vector
    along_rows, along_cols = (axes[0], axes[1]) if rows >= cols else (axes[1], axes[0])
    grid = (
        mean
        + _span(rows)[:, None, None] * along_rows
        + _span(cols)[None, :, None] * along_cols
    )
    return grid


def random_init(
    X: np.ndarray, rows: int, cols: int, random_state: int, sample_weight: np.ndarray | None = None
) -> np.ndarray:
    """Neurons on rows of ``X`` drawn with ``random_state`` (with probability proportional to weight)."""
    rng = np.random.default_rng(random_state)
    p = None if sample_weight is None else sample_weight / sample_weight.sum()
    picks = rng.choice(len(X), size=rows * cols, replace=True, p=p)
    return X[picks].reshape(rows, cols, X.shape[1]).copy()


# --- helpers -----------------------------------------------------------------


def _span(n: int) -> np.ndarray:
    return np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)


def _weighted_moments(X: np.ndarray, weight: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    weight = np.ones(len(X)) if weight is None else weight
    total = weight.sum()
    mean = weight @ X / total
    centred = X - mean
    cov = (centred * weight[:, None]).T @ centred / total
    return mean, cov


def _maybe_distinct(
    X: np.ndarray, weight: np.ndarray | None, dedup: DedupMode
) -> tuple[np.ndarray, np.ndarray | None]:
    if dedup == "never":
        return X, weight
    if dedup == "auto":
        distinct: DistinctRows | None = kernels.dedup_if_worthwhile(X)
    elif dedup == "always":
        distinct = kernels.distinct_rows(X)
    else:
        raise ValueError(f"dedup must be 'auto', 'always' or 'never', got {dedup!r}")
    if distinct is None:
        return X, weight
    if weight is None:
        return distinct.rows, distinct.counts.astype(np.float64)
    return distinct.rows, np.bincount(distinct.inverse, weights=weight, minlength=len(distinct.rows))


def _check_training_data(X: np.ndarray) -> np.ndarray:
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


def _check_fitted(engine: object) -> None:
    if not hasattr(engine, "weights_"):
        raise RuntimeError(f"{type(engine).__name__} is not fitted yet; call fit() first")
