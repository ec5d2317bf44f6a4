"""SOM-Ward: scikit-learn's structured Ward when unweighted, Ward on repeated neurons when weighted."""

import numpy as np
import pytest
from scipy import ndimage
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import adjusted_rand_score

from somseg.config import SegmentsConfig
from somseg.segments import cluster_neurons
from somseg.ward import SomWard, grid_adjacency, grid_edges


def _brute_adjacency(rows: int, cols: int, adjacency: int) -> np.ndarray:
    r, c = np.divmod(np.arange(rows * cols), cols)
    dr, dc = np.abs(r[:, None] - r[None, :]), np.abs(c[:, None] - c[None, :])
    touching = (dr + dc == 1) if adjacency == 4 else (np.maximum(dr, dc) == 1)
    return touching


@pytest.mark.parametrize("adjacency", [4, 8])
@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (3, 4), (4, 3)])
def test_grid_adjacency_matches_coordinates(shape: tuple[int, int], adjacency: int) -> None:
    i, j = grid_edges(*shape, adjacency)

    assert (i < j).all()
    assert len(set(zip(i.tolist(), j.tolist()))) == len(i)
    np.testing.assert_array_equal(grid_adjacency(*shape, adjacency), _brute_adjacency(*shape, adjacency))


def test_grid_edges_refuses_other_adjacencies() -> None:
    with pytest.raises(ValueError, match="4 or 8"):
        grid_edges(3, 3, 6)


@pytest.mark.parametrize(("rows", "cols", "k"), [(5, 6, 2), (5, 6, 4), (4, 7, 7)])
def test_unweighted_equals_sklearn_structured_ward(rows: int, cols: int, k: int) -> None:
    weights = np.random.default_rng(rows * cols + k).normal(size=(rows, cols, 3))
    connectivity = grid_adjacency(rows, cols, 4).astype(int)

    ours = SomWard(n_clusters=k).fit(weights).labels_
    theirs = AgglomerativeClustering(n_clusters=k, linkage="ward", connectivity=connectivity).fit_predict(
        weights.reshape(-1, 3)
    )

    assert adjusted_rand_score(ours, theirs) == 1.0


@pytest.mark.parametrize("seed", [0, 1])
def test_integer_hits_equal_ward_on_repeated_neurons(seed: int) -> None:
    rows, cols, k = 4, 5, 3
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(rows, cols, 2))
    hits = rng.integers(1, 5, rows * cols)
    copies = np.repeat(np.arange(rows * cols), hits)
    # Copies of one neuron touch each other and every copy of its grid neighbours.
    touching = grid_adjacency(rows, cols, 4)[np.ix_(copies, copies)] | (copies[:, None] == copies[None, :])

    ours = SomWard(n_clusters=k).fit(weights, sample_weight=hits).labels_
    theirs = AgglomerativeClustering(n_clusters=k, linkage="ward", connectivity=touching.astype(int)).fit_predict(
        weights.reshape(-1, 2)[copies]
    )

    assert adjusted_rand_score(ours[copies], theirs) == 1.0


LINE = np.array([[[0.0], [0.9], [2.0], [3.2]]])  # a 1 x 4 map on a line


def test_hits_change_the_clustering() -> None:
    # Unweighted, the two close pairs merge. A heavy neuron 0 resists merging
    # (moving its centroid would cost its 100 customers), so it stays alone.
    plain = SomWard(n_clusters=2).fit(LINE, sample_weight=np.array([1, 1, 1, 1])).labels_
    heavy = SomWard(n_clusters=2).fit(LINE, sample_weight=np.array([100, 1, 1, 1])).labels_

    assert plain.tolist() == [0, 0, 1, 1]
    assert heavy.tolist() == [0, 1, 1, 1]


def test_segments_are_connected_regions_numbered_by_first_neuron() -> None:
    rng = np.random.default_rng(3)
    weights = rng.normal(size=(6, 6, 3))
    hits = rng.integers(0, 20, 36)

    model = SomWard(n_clusters=5).fit(weights, sample_weight=hits)
    grid = model.labels_.reshape(6, 6)

    assert sorted(set(model.labels_.tolist())) == list(range(5))
    assert model.labels_[0] == 0
    first_neuron = [int(np.flatnonzero(model.labels_ == s)[0]) for s in range(5)]
    assert first_neuron == sorted(first_neuron)
    for segment in range(5):
        _, n_regions = ndimage.label(grid == segment)  # 4-connectivity
        assert n_regions == 1
    assert len(model.merge_costs_) == 36 - 5 and (model.merge_costs_ >= 0).all()


def test_dead_neurons_join_a_touching_segment_without_moving_it() -> None:
    # Two groups at 0 and 10; a dead neuron between them at 9 goes to the near group.
    weights = np.array([[[0.0], [0.1], [9.0], [10.0], [10.1]]])
    hits = np.array([5, 5, 0, 5, 5])

    labels = SomWard(n_clusters=2).fit(weights, sample_weight=hits).labels_

    assert labels.tolist() == [0, 0, 1, 1, 1]


def test_fit_is_deterministic_and_validates_its_input() -> None:
    weights = np.random.default_rng(0).normal(size=(3, 3, 2))

    assert (SomWard(3).fit(weights).labels_ == SomWard(3).fit(weights).labels_).all()
    with pytest.raises(ValueError, match="n_clusters"):
        SomWard(10).fit(weights)
    with pytest.raises(ValueError, match="sample_weight"):
        SomWard(2).fit(weights, sample_weight=np.ones(4))
    with pytest.raises(ValueError, match="sample_weight"):
        SomWard(2).fit(weights, sample_weight=-np.ones(9))
    with pytest.raises(ValueError, match="shape"):
        SomWard(2).fit(weights.reshape(9, 2))


def test_cluster_neurons_ward_uses_the_hits() -> None:
    config = SegmentsConfig(method="ward", k=2)

    assert cluster_neurons(LINE, config).tolist() == [0, 0, 1, 1]
    assert cluster_neurons(LINE, config, hits=np.array([100, 1, 1, 1])).tolist() == [0, 1, 1, 1]
