"""Self-Organizing Map engines.

Every engine follows scikit-learn's conventions: the constructor only stores
hyperparameters, :meth:`fit` learns ``weights_`` of shape (rows, cols,
n_features) and returns ``self``, and ``random_state`` makes training
repeatable. Assignment and quality measures are functions of the weights
(:mod:`somseg.metrics`), so they are the same for every engine.
"""

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np
from minisom import MiniSom

from somseg.batch_som import BatchSom
from somseg.config import SomConfig
from somseg.metrics import UnitMatch, match_units


@runtime_checkable
class SomEngine(Protocol):
    """What the pipeline needs of a SOM engine."""

    rows: int
    cols: int
    weights_: np.ndarray

    def fit(self, X: np.ndarray, progress: Callable[[float], None] | None = None) -> "SomEngine":
        """Train on ``X``; ``progress`` gets the fraction done as training goes."""
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

    def fit(self, X: np.ndarray, progress: Callable[[float], None] | None = None) -> "MiniSomEngine":
        """Train on standardised data ``X`` of shape (n_rows, n_features); returns self.

        ``progress``, if given, is called with the fraction of iterations done
        (about every 5 %, and 1.0 at the end). The weights are bit-identical
        with or without it.
        """
        X = _check_training_data(X)
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
        elif self.init == "random":
            som.random_weights_init(X)
        else:
            raise ValueError(f"init must be 'random' or 'pca', got {self.init!r}")
        if progress is None:
            som.train_random(X, self.iterations)
        else:
            self._train_random_reporting(som, X, progress)
        self.weights_ = np.array(som.get_weights(), dtype=np.float64)
        self.n_features_in_ = X.shape[1]
        return self

    def match(self, X: np.ndarray) -> UnitMatch:
        """Best and second-best unit of each row of ``X``."""
        _check_fitted(self)
        return match_units(X, self.weights_)

    def _train_random_reporting(self, som: MiniSom, X: np.ndarray, progress: Callable[[float], None]) -> None:
        # MiniSom.train(random_order=True), which train_random is, unrolled so
        # that progress can be reported: the same checks, the same shuffle of
        # the same index array by the som's own generator, the same
        # update(x, winner(x), t, iterations) calls, in the same order.
        # minisom is pinned exactly, so its private helper is stable.
        from minisom import _build_iteration_indexes

        som._check_iteration_number(self.iterations)
        som._check_input_len(X)
        order = _build_iteration_indexes(len(X), self.iterations, False, som._random_generator, False)
        every = max(1, self.iterations // 20)
        for t, row in enumerate(order):
            som.update(X[row], som.winner(X[row]), t, self.iterations)
            if (t + 1) % every == 0 or t + 1 == self.iterations:
                progress((t + 1) / self.iterations)


def build_engine(config: SomConfig) -> SomEngine:
    """The engine the configuration asks for, with its hyperparameters."""
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
        )
    raise ValueError(f"unknown SOM engine {config.engine!r}")


def _check_training_data(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) == 0:
        raise ValueError(f"training data must be a non-empty 2-D array, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("training data contains NaN or infinite values; clean it first")
    return X


def _check_fitted(engine: object) -> None:
    if not hasattr(engine, "weights_"):
        raise RuntimeError(f"{type(engine).__name__} is not fitted yet; call fit() first")
