"""somseg.metrics: best units, quantization and topographic error."""

import numpy as np
import pytest
from minisom import MiniSom

from somseg.metrics import (
    UnitMatch,
    match_units,
    quantization_error,
    topographic_error,
    topographic_errors,
)


def _random_case(seed: int, n: int = 40, rows: int = 3, cols: int = 4, f: int = 3):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, f)), rng.normal(size=(rows, cols, f))


def _brute_force(X: np.ndarray, W: np.ndarray):
    d = np.linalg.norm(X[:, None, :] - W.reshape(-1, W.shape[-1])[None, :, :], axis=2)
    order = np.argsort(d, axis=1)
    return order[:, 0], order[:, 1], d[np.arange(len(X)), order[:, 0]]


def _minisom(W: np.ndarray) -> MiniSom:
    som = MiniSom(W.shape[0], W.shape[1], W.shape[2], random_seed=0)
    som._weights = W.copy()
    return som


@pytest.mark.parametrize("chunk_rows", [None, 1, 7, 40, 1000])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_match_units_equals_brute_force(seed, chunk_rows) -> None:
    X, W = _random_case(seed)
    bmu, second, dist = _brute_force(X, W)
    match = match_units(X, W, chunk_rows=chunk_rows)
    assert match.bmu.dtype == np.int64 and match.second.dtype == np.int64
    np.testing.assert_array_equal(match.bmu, bmu)
    np.testing.assert_array_equal(match.second, second)
    np.testing.assert_allclose(match.distance, dist, rtol=1e-13, atol=0)
    assert (match.bmu != match.second).all()


def test_match_units_exact_neuron_has_zero_distance() -> None:
    W = np.array([[[0.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [5.0, 5.0]]])
    X = np.array([[5.0, 5.0], [0.9, 0.1], [0.0, 0.0]])
    match = match_units(X, W)
    np.testing.assert_array_equal(match.bmu, [3, 1, 0])
    np.testing.assert_array_equal(match.second, [1, 0, 1])
    np.testing.assert_allclose(match.distance, [0.0, np.hypot(0.1, 0.1), 0.0], atol=1e-15)


def test_match_units_rejects_wrong_weight_shape() -> None:
    with pytest.raises(ValueError, match=r"shape \(rows, cols, 3\)"):
        match_units(np.zeros((2, 3)), np.zeros((4, 3)))


# Seeds 131, 139, 150 and 192 are cases where a distance computed with a
# different summation order than MiniSom's differs in the last bit.
@pytest.mark.parametrize("seed", [0, 1, 131, 139, 150, 192])
def test_quantization_error_equals_minisom_bit_for_bit(seed) -> None:
    X, W = _random_case(seed, n=60)
    som = _minisom(W)
    np.testing.assert_array_equal(match_units(X, W).distance, np.linalg.norm(X - som.quantization(X), axis=1))
    assert quantization_error(X, W) == som.quantization_error(X)
    assert quantization_error(X, W) == pytest.approx(_brute_force(X, W)[2].mean(), rel=1e-14)


@pytest.mark.parametrize("dedup", ["auto", "always", "never"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_repeated_rows_match_like_distinct_rows(dedup, n_threads) -> None:
    X, W = _random_case(4, n=10)
    X = X[np.random.default_rng(0).integers(0, 10, size=50)]  # 50 rows, at most 10 distinct
    bmu, second, dist = _brute_force(X, W)
    match = match_units(X, W, chunk_rows=7, n_threads=n_threads, dedup=dedup)
    np.testing.assert_array_equal(match.bmu, bmu)
    np.testing.assert_array_equal(match.second, second)
    np.testing.assert_allclose(match.distance, dist, rtol=1e-13, atol=0)


def test_match_units_rejects_1d_input() -> None:
    with pytest.raises(ValueError, match="must be 2-D"):
        match_units(np.zeros(3), np.zeros((2, 2, 3)))


def test_match_units_empty_input() -> None:
    match = match_units(np.zeros((0, 3)), np.zeros((2, 2, 3)))
    assert match.bmu.shape == match.second.shape == match.distance.shape == (0,)
    assert match.bmu.dtype == np.int64


@pytest.mark.parametrize("shape", [(3, 4), (5, 5), (1, 6), (6, 1)])
@pytest.mark.parametrize("seed", [0, 1])
def test_topographic_error_equals_minisom(seed, shape) -> None:
    X, W = _random_case(seed, n=80, rows=shape[0], cols=shape[1])
    assert topographic_error(X, W) == _minisom(W).topographic_error(X)


def test_precomputed_match_gives_same_figures() -> None:
    X, W = _random_case(5)
    match = match_units(X, W)
    assert quantization_error(X, W, match=match) == quantization_error(X, W)
    assert topographic_error(X, W, match=match) == topographic_error(X, W)


def _diagonal_case():
    # 2x2 map: neuron 0 at (0,0) is best, neuron 3 at (1,1) (diagonal) second.
    W = np.array([[[0.0, 0.0], [10.0, -10.0]], [[-10.0, 10.0], [1.0, 1.0]]])
    X = np.array([[0.1, 0.1]])
    return X, W


def test_diagonal_second_unit_is_error_only_under_4_adjacency() -> None:
    X, W = _diagonal_case()
    match = match_units(X, W)
    assert (match.bmu[0], match.second[0]) == (0, 3)
    assert topographic_error(X, W, adjacency=8) == 0.0
    assert topographic_error(X, W, adjacency=4) == 1.0


@pytest.mark.parametrize(
    "bmu, second, cols, err8, err4",
    [
        ([0], [1], 3, False, False),  # right
        ([0], [3], 3, False, False),  # below
        ([0], [4], 3, False, True),  # diagonal
        ([0], [2], 3, True, True),  # two columns away
        ([2], [3], 3, True, True),  # row-major neighbours, but wraps to next row
        ([4], [0], 3, False, True),  # diagonal, other direction
    ],
)
def test_topographic_errors_flags(bmu, second, cols, err8, err4) -> None:
    match = UnitMatch(bmu=np.array(bmu), second=np.array(second), distance=np.zeros(1))
    assert topographic_errors(match, cols, 8).tolist() == [err8]
    assert topographic_errors(match, cols, 4).tolist() == [err4]


def test_topographic_errors_rejects_other_adjacency() -> None:
    match = UnitMatch(bmu=np.array([0]), second=np.array([1]), distance=np.zeros(1))
    with pytest.raises(ValueError, match="adjacency must be 8 or 4"):
        topographic_errors(match, 2, 6)


def test_one_neuron_map() -> None:
    X = np.array([[0.0, 1.0], [3.0, 4.0]])
    W = np.zeros((1, 1, 2))
    assert np.isnan(topographic_error(X, W))
    match = match_units(X, W)
    np.testing.assert_array_equal(match.bmu, [0, 0])
    np.testing.assert_array_equal(match.second, [0, 0])
    assert quantization_error(X, W) == 3.0  # (1 + 5) / 2


def test_equidistant_units_tie_to_lowest_index() -> None:
    W = np.array([[[0.0, 10.0], [-1.0, 0.0], [1.0, 0.0]]])  # 1x3 map
    match = match_units(np.array([[0.0, 0.0]]), W)
    assert (match.bmu[0], match.second[0]) == (1, 2)
    assert match.distance[0] == 1.0
