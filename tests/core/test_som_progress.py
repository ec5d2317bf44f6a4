"""MiniSomEngine's progress callback reports training without changing it."""

import numpy as np
import pytest

from somseg.som import MiniSomEngine


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    rng = np.random.default_rng(11)
    centres = np.array([[-2.0, -2.0, 0.0], [2.0, 2.0, 0.0], [0.0, 0.0, 3.0]])
    return np.vstack([c + 0.4 * rng.normal(size=(40, 3)) for c in centres])


@pytest.mark.parametrize(
    "params",
    [
        {"iterations": 1000},
        {"iterations": 257, "init": "pca", "neighborhood": "bubble", "random_state": 3},
        {"iterations": 7},  # fewer iterations than rows, fewer than 20 reports
        {"iterations": 500, "rows": 1, "cols": 5, "sigma": 0.8},  # more iterations than rows: indexes wrap
    ],
)
def test_weights_are_bit_identical_with_and_without_progress(X: np.ndarray, params: dict) -> None:
    plain = MiniSomEngine(**{"rows": 4, "cols": 5, **params}).fit(X)
    reported: list[float] = []
    watched = MiniSomEngine(**{"rows": 4, "cols": 5, **params}).fit(X, progress=reported.append)

    assert np.array_equal(plain.weights_, watched.weights_)
    assert reported, "the callback was never called"
    assert reported[-1] == 1.0


def test_progress_moves_forward_about_every_five_percent(X: np.ndarray) -> None:
    reported: list[float] = []
    MiniSomEngine(3, 3, iterations=2000).fit(X, progress=reported.append)

    assert reported == sorted(reported)
    assert len(reported) == 20
    assert reported[0] == pytest.approx(0.05)
    assert np.diff(reported) == pytest.approx(np.full(19, 0.05))


def test_progress_does_not_change_a_reference_sized_run() -> None:
    # The reference recipe's shape: 8x8 grid, 8,000 iterations, sigma 2, lr 0.3, seed 42.
    X = np.random.default_rng(42).normal(size=(3000, 3))
    engine = dict(rows=8, cols=8, sigma=2.0, learning_rate=0.3, iterations=8000, random_state=42)

    assert np.array_equal(
        MiniSomEngine(**engine).fit(X).weights_, MiniSomEngine(**engine).fit(X, progress=lambda _: None).weights_
    )
