"""Self-Organizing Map engines.

Every engine follows scikit-learn's conventions: the constructor only stores
hyperparameters, :meth:`fit` learns ``weights_`` of shape (rows, cols,
n_features) and returns ``self``, and ``random_state`` makes training
repeatable. Assignment and quality measures are functions of the weights
(:mod:`somseg.metrics`), so they are the same for every engine.

MiniSom's online rule updates the map one row at a time, in a random order
over the whole table, so it trains on one partition: the table gathered in
memory. The batch engine (:mod:`somseg.batch_som`) trains over partitions.
"""

from typing import Protocol, runtime_checkable

import numpy as np
from minisom import MiniSom

from somseg.batch_som import BatchSom, check_fitted, check_training_data
from somseg.config import SomConfig
from somseg.metrics import UnitMatch, match_units


@runtime_checkable
class SomEngine(Protocol):
    """What the pipeline needs of a SOM engine."""

    rows: int
    cols: int
    weights_: np.ndarray

    def fit(self, X: np.ndarray) -> "SomEngine":
        """Train on ``X`` (n_rows, n_features); returns self."""
        ...


class MiniSomEngine:
    """MiniSom's online training, as the reference notebook ran it.

    Parameters
    ----------
    rows, cols : int
        Grid shape (rectangular topology).
    sigma : float
        Initial neighbourhood radius.
    learning_rate : float
        Initial learning rate (MiniSom's asymptotic decay).
    neighborhood : str
        'gaussian', 'mexican_hat', 'bubble' or 'triangle'.
    iterations : int
        Number of single-sample updates (``train_random``).
    init : {'random', 'pca'}
        ``random_weights_init`` (samples of the data) or ``pca_weights_init``.
    random_state : int
        MiniSom's ``random_seed``: drives initialisation and sample order.

    Attributes
    ----------
    weights_ : ndarray of shape (rows, cols, n_features)
        The trained codebook.
    n_features_in_ : int
        Number of features seen by :meth:`fit`.
    """

    def __init__(
        self,
        rows: int = 8,
        cols: int = 8,
        sigma: float = 2.0,
        learning_rate: float = 0.3,
        neighborhood: str = "gaussian",
        iterations: int = 8000,
        init: str = "random",
        random_state: int = 42,
    ) -> None:
        self.rows = rows
        self.cols = cols
        self.sigma = sigma
        self.learning_rate = learning_rate
        self.neighborhood = neighborhood
        self.iterations = iterations
        self.init = init
        self.random_state = random_state

    def fit(self, X: np.ndarray) -> "MiniSomEngine":
        """Train on standardised data ``X`` of shape (n_rows, n_features); returns self."""
        X = check_training_data(X)
        if self.init not in ("random", "pca"):
            raise ValueError(f"init must be 'random' or 'pca', got {self.init!r}")
        som = MiniSom(
            self.rows,
            self.cols,
            X.shape[1],
            sigma=self.sigma,
            learning_rate=self.learning_rate,
            neighborhood_function=self.neighborhood,
            random_seed=self.random_state,
        )
        if self.init == "pca":
            som.pca_weights_init(X)
        else:
            som.random_weights_init(X)
        som.train_random(X, self.iterations)
        self.weights_ = np.array(som.get_weights(), dtype=np.float64)
        self.n_features_in_ = X.shape[1]
        return self

    def match(self, X: np.ndarray) -> UnitMatch:
        """Best and second-best unit of each row of ``X``."""
        check_fitted(self)
        return match_units(X, self.weights_)


MIN_NEURONS = 16
MAX_NEURONS = 400


def concrete_som(config: SomConfig, n_rows: int, covariance: np.ndarray) -> SomConfig:
    """``config`` with an 'auto' grid and radius made concrete for a table.

    The grid has about ``5 * sqrt(n_rows)`` neurons, kept between
    :data:`MIN_NEURONS` and :data:`MAX_NEURONS`, its sides in the ratio of
    the data's spread along its first two principal components (the square
    root of the ratio of their eigenvalues), the longer side along the first,
    as SOM Toolbox's ``som_topol_struct`` sizes a map. An 'auto' radius
    starts at a quarter of the longer side (at least 1), so the
    neighbourhood covers the same share of any grid.

    Parameters
    ----------
    config : SomConfig
    n_rows : int
        Rows of the training table.
    covariance : ndarray of shape (n_features, n_features)
        Of the standardised training rows.

    Returns
    -------
    SomConfig
        ``config`` itself when nothing in it is 'auto'.
    """
    updates: dict[str, float | int] = {}
    rows, cols = config.rows, config.cols
    if config.grid_is_auto:
        neurons = int(np.clip(round(5 * np.sqrt(max(n_rows, 1))), MIN_NEURONS, MAX_NEURONS))
        eigenvalues = np.sort(np.linalg.eigvalsh(np.atleast_2d(covariance)))[::-1]
        ratio = float(np.sqrt(eigenvalues[0] / eigenvalues[1])) if len(eigenvalues) > 1 and eigenvalues[1] > 0 else 1.0
        cols = max(2, int(round(np.sqrt(neurons / ratio))))
        rows = max(cols, int(round(neurons / cols)))
        updates.update(rows=rows, cols=cols)
    if config.sigma == "auto":
        updates["sigma"] = max(1.0, max(int(rows), int(cols)) / 4)
    if not updates:
        return config
    return SomConfig.model_validate({**config.model_dump(), **updates})


def build_engine(config: SomConfig) -> SomEngine:
    """The engine the configuration asks for, with its hyperparameters.

    Raises
    ------
    ValueError
        If the grid or the radius is still 'auto' (see :func:`concrete_som`).
    """
    if config.grid_is_auto or config.sigma == "auto":
        raise ValueError("the map's grid and radius are 'auto': make them concrete for the table first (concrete_som)")
    if config.engine == "minisom":
        return MiniSomEngine(
            rows=config.rows,
            cols=config.cols,
            sigma=config.sigma,
            learning_rate=config.learning_rate,
            neighborhood=config.neighborhood,
            iterations=config.iterations,
            init=config.init,
            random_state=config.seed,
        )
    if config.engine == "batch":
        return BatchSom(
            rows=config.rows,
            cols=config.cols,
            sigma=config.sigma,
            sigma_end=config.sigma_end,
            epochs=config.epochs,
            neighborhood=config.neighborhood,
            init=config.init,
            chunk_rows=config.chunk_rows,
            dedup=config.dedup,
            random_state=config.seed,
            sample_rows_per_neuron=config.sample_rows_per_neuron,
            precision=config.epoch_precision,
        )
    raise ValueError(f"unknown SOM engine {config.engine!r}")
