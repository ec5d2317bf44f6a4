"""somseg.som: the MiniSom engine and its construction from the config."""

import numpy as np
import pytest
from minisom import MiniSom

from somseg.batch_som import BatchSom
from somseg.config import SomConfig
from somseg.metrics import match_units, quantization_error
from somseg.som import MiniSomEngine, SomEngine, build_engine


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    rng = np.random.default_rng(7)
    centres = np.array([[-2.0, -2.0, 0.0], [2.0, 2.0, 0.0], [0.0, 0.0, 3.0]])
    return np.vstack([c + 0.3 * rng.normal(size=(30, 3)) for c in centres])


def _engine(**kwargs) -> MiniSomEngine:
    params = {"rows": 3, "cols": 4, "iterations": 300, "random_state": 42} | kwargs
    return MiniSomEngine(**params)


def test_fit_returns_self_with_weights(X) -> None:
    engine = _engine()
    assert engine.fit(X) is engine
    assert engine.weights_.shape == (3, 4, 3)
    assert engine.weights_.dtype == np.float64
    assert engine.n_features_in_ == 3
    assert isinstance(engine, SomEngine)


def test_constructor_only_stores_hyperparameters() -> None:
    engine = _engine(sigma=1.5)
    assert not hasattr(engine, "weights_")
    assert (engine.rows, engine.cols, engine.sigma, engine.iterations) == (3, 4, 1.5, 300)


def test_same_seed_same_weights(X) -> None:
    assert np.array_equal(_engine().fit(X).weights_, _engine().fit(X).weights_)


def test_different_seed_different_weights(X) -> None:
    assert not np.allclose(_engine(random_state=1).fit(X).weights_, _engine(random_state=2).fit(X).weights_)


def test_reproduces_minisom_directly(X) -> None:
    som = MiniSom(3, 4, 3, sigma=1.0, learning_rate=0.5, neighborhood_function="gaussian", random_seed=3)
    som.random_weights_init(X)
    som.train_random(X, 200)
    engine = _engine(sigma=1.0, learning_rate=0.5, iterations=200, random_state=3).fit(X)
    assert np.array_equal(engine.weights_, som.get_weights())


@pytest.mark.parametrize("init", ["random", "pca"])
def test_training_lowers_quantization_error(init) -> None:
    X = np.random.default_rng(7).normal(size=(90, 3))
    # learning_rate ~0 and one iteration: the initial codebook, untrained.
    untrained = MiniSomEngine(4, 4, sigma=1.0, learning_rate=1e-12, iterations=1, init=init).fit(X)
    trained = MiniSomEngine(4, 4, sigma=1.0, learning_rate=0.5, iterations=1000, init=init).fit(X)
    qe_before = quantization_error(X, untrained.weights_)
    qe_after = quantization_error(X, trained.weights_)
    assert qe_after < 0.85 * qe_before


def test_unknown_init_rejected(X) -> None:
    with pytest.raises(ValueError, match="init must be 'random' or 'pca'"):
        _engine(init="kmeans").fit(X)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_rejected(X, bad) -> None:
    data = X.copy()
    data[3, 1] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        _engine().fit(data)


@pytest.mark.parametrize("data", [np.zeros((0, 3)), np.zeros(5)], ids=["empty", "1-d"])
def test_bad_shape_rejected(data) -> None:
    with pytest.raises(ValueError, match="non-empty 2-D array"):
        _engine().fit(data)


def test_match_unfitted_raises() -> None:
    with pytest.raises(RuntimeError, match="MiniSomEngine is not fitted"):
        _engine().match(np.zeros((1, 3)))


def test_match_uses_trained_weights(X) -> None:
    engine = _engine().fit(X)
    match = engine.match(X[:10])
    np.testing.assert_array_equal(match.bmu, match_units(X[:10], engine.weights_).bmu)


def test_build_engine_maps_config_fields() -> None:
    config = SomConfig(
        engine="minisom", rows=5, cols=6, sigma=1.25, learning_rate=0.7, neighborhood="bubble", iterations=123,
        init="pca", seed=9,
    )
    engine = build_engine(config)
    assert isinstance(engine, MiniSomEngine)
    assert (engine.rows, engine.cols) == (5, 6)
    assert (engine.sigma, engine.learning_rate) == (1.25, 0.7)
    assert (engine.neighborhood, engine.iterations, engine.init) == ("bubble", 123, "pca")
    assert engine.random_state == 9


def test_the_reference_recipe_builds_the_notebooks_engine() -> None:
    from pathlib import Path

    from somseg.config import load_config

    engine = build_engine(load_config(Path(__file__).resolve().parents[2] / "configs" / "reference.yaml").som)
    assert vars(engine) == {
        "rows": 8, "cols": 8, "sigma": 2.0, "learning_rate": 0.3, "neighborhood": "gaussian",
        "iterations": 8000, "init": "random", "random_state": 42,
    }


def test_an_auto_grid_fits_the_table_and_must_be_made_concrete_first() -> None:
    from somseg.som import MAX_NEURONS, MIN_NEURONS, concrete_som

    auto = SomConfig()
    with pytest.raises(ValueError, match="'auto'"):
        build_engine(auto)
    # 5,000 rows spread four times as widely along the first component as the second: ~354 neurons, sides ~2:1.
    som = concrete_som(auto, 5_000, np.diag([4.0, 1.0, 0.5]))
    assert (som.rows, som.cols, som.sigma) == (27, 13, 27 / 4)
    assert isinstance(build_engine(som), BatchSom)
    assert concrete_som(auto, 200, np.eye(2)).rows * concrete_som(auto, 200, np.eye(2)).cols == 72  # ~5 * sqrt(200)
    tiny, huge = concrete_som(auto, 3, np.eye(3)), concrete_som(auto, 10**9, np.eye(3))
    assert tiny.rows * tiny.cols == MIN_NEURONS and huge.rows * huge.cols == MAX_NEURONS
    fixed = SomConfig(rows=8, cols=8, sigma=2.0)
    assert concrete_som(fixed, 10**6, np.eye(3)) is fixed
    assert concrete_som(SomConfig(rows=12, cols=4), 100, np.eye(3)).sigma == 3.0
