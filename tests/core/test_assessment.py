"""somseg.assessment: the map against every row, partition by partition, against brute force."""

import numpy as np
import pytest

from somseg import assessment
from somseg.assessment import (
    AssessRequest,
    assess_in_memory,
    finish_assessment,
    outlier_learner,
    sample_positions,
)
from somseg.metrics import match_units
from somseg.stats import CoMoments, combine


@pytest.fixture(scope="module")
def small_map() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    return rng.normal(size=(50, 2)), rng.normal(size=(3, 3, 2))


def _floyd_warshall(flat: np.ndarray, cols: int) -> np.ndarray:
    """All-pairs shortest 8-neighbour paths, the slow obvious way (tiny maps only)."""
    n = len(flat)
    r, c = np.divmod(np.arange(n), cols)
    touching = np.maximum(np.abs(r[:, None] - r), np.abs(c[:, None] - c)) == 1
    dist = np.where(touching, np.linalg.norm(flat[:, None] - flat[None], axis=2), np.inf)
    np.fill_diagonal(dist, 0.0)
    for k in range(n):
        dist = np.minimum(dist, dist[:, [k]] + dist[[k], :])
    return dist


def test_kaski_lagus_equals_brute_force(small_map) -> None:
    X, weights = small_map
    flat = weights.reshape(-1, 2)
    sq = ((X[:, None, :] - flat[None]) ** 2).sum(axis=2)
    order = np.argsort(sq, axis=1, kind="stable")
    paths = _floyd_warshall(flat, 3)[order[:, 0], order[:, 1]]
    expected = np.mean(np.sqrt(sq[np.arange(len(X)), order[:, 0]]) + paths)

    assert assess_in_memory(X, weights)[1].kaski_lagus_error == pytest.approx(expected, rel=1e-12)


def test_explained_variance_equals_brute_force(small_map) -> None:
    X, weights = small_map
    nearest = ((X[:, None, :] - weights.reshape(1, -1, 2)) ** 2).sum(axis=2).min(axis=1)
    expected = 1 - nearest.mean() / X.var(axis=0).sum()

    assert assess_in_memory(X, weights)[1].explained_variance == pytest.approx(expected, rel=1e-12)
    assert assess_in_memory(X, X.reshape(5, 10, 2))[1].explained_variance == pytest.approx(1.0)


def test_figures_count_dead_neurons_and_both_te_conventions(small_map) -> None:
    X, weights = small_map
    weights = weights.copy()
    weights[0, 0] = [100.0, 100.0]  # far from every row: no hits
    match, figures, _ = assess_in_memory(X, weights)

    assert figures.dead_neurons >= 1 and figures.dead_neurons == 9 - len(np.unique(match.bmu))
    assert figures.topographic_error <= figures.topographic_error_4
    assert figures.quantization_error == pytest.approx(match_units(X, weights).distance.mean())
    assert figures.kaski_lagus_error >= figures.quantization_error
    assert figures.outlier_threshold == np.percentile(match.distance, 95)


def test_partitions_add_up_to_the_whole_table() -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(3_000, 3))
    raw = X * 10 + 40
    raw[rng.random(len(raw)) < 0.1, 1] = np.nan
    weights = rng.normal(size=(4, 5, 3))
    sample = sample_positions(len(X), 500, seed=2)
    match, whole, whole_partial = assess_in_memory(X, weights, raw, sample=sample)

    request, firsts, partials = AssessRequest(weights, sample), [0, 1000, 1700], []
    for first, last in zip(firsts, firsts[1:] + [len(X)]):
        partials.append(request.assess(X[first:last], raw[first:last], first)[1])
    total = combine(partials)
    learner = outlier_learner(total, 95.0)
    parted = finish_assessment(total, weights, learner, 95.0, combine([CoMoments.of(X[a:b]) for a, b in ((0, 1000), (1000, 1700), (1700, 3000))]))

    assert parted.n_rows == whole.n_rows == 3_000
    for name in ("quantization_error", "topographic_error", "topographic_error_4", "kaski_lagus_error", "explained_variance"):
        assert getattr(parted, name) == pytest.approx(getattr(whole, name), rel=1e-12), name
    assert parted.outlier_threshold == whole.outlier_threshold == np.percentile(match.distance, 95)
    np.testing.assert_array_equal(parted.hits, whole.hits)
    np.testing.assert_allclose(parted.neuron_moments.mean, whole.neuron_moments.mean, rtol=1e-12)
    np.testing.assert_array_equal(parted.neuron_missing, whole.neuron_missing)
    missing = np.stack([np.bincount(match.bmu, np.isnan(raw[:, c]), 20) for c in range(3)], axis=1)
    np.testing.assert_array_equal(parted.neuron_missing, missing)
    # The evaluation sample: the same rows in the same order.
    np.testing.assert_array_equal(total.sample.positions, sample)
    np.testing.assert_array_equal(total.sample.X, X[sample])
    np.testing.assert_array_equal(total.sample.bmu, match.bmu[sample])
    np.testing.assert_array_equal(whole_partial.sample.X, X[sample])


def test_the_sample_is_every_row_of_a_small_table_and_seeded_for_a_large_one() -> None:
    np.testing.assert_array_equal(sample_positions(10, 200, 1), np.arange(10))
    a = sample_positions(100_000, 200, 1)
    assert len(a) == 200 and (np.diff(a) > 0).all()
    np.testing.assert_array_equal(a, sample_positions(100_000, 200, 1))


@pytest.mark.parametrize("n_features", [3, 17])
def test_a_one_neuron_map_at_the_mean_is_the_yardstick_of_the_relative_quantization_error(n_features: int) -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(400, n_features))
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    one = assess_in_memory(X, np.zeros((1, 1, n_features)))[1]
    assert one.one_neuron_quantization_error == pytest.approx(np.linalg.norm(X, axis=1).mean(), rel=1e-12)
    assert one.relative_quantization_error == pytest.approx(1.0, rel=1e-12)
    # A map whose units are rows of the table is better than one neuron: its relative QE is below 1.
    many = assess_in_memory(X, X[:64].reshape(8, 8, n_features))[1]
    assert many.one_neuron_quantization_error == one.one_neuron_quantization_error
    assert 0 < many.relative_quantization_error < 1


def test_unit_pairs_are_counted_alike_in_a_table_and_by_sorting(monkeypatch) -> None:
    rng = np.random.default_rng(8)
    X, weights = rng.normal(size=(2_000, 3)), rng.normal(size=(4, 5, 3))
    request = AssessRequest(weights, np.arange(10))
    counted = request.assess(X, X)[1].unit_pairs
    monkeypatch.setattr(assessment, "_COUNTED_PAIRS", 0)
    sorted_ = request.assess(X, X)[1].unit_pairs
    match = match_units(X, weights)
    codes, counts = np.unique(match.bmu * 20 + match.second, return_counts=True)
    for found in (counted, sorted_):
        np.testing.assert_array_equal(found[0], codes)
        np.testing.assert_array_equal(found[1], counts)
