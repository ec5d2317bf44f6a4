"""The chunked kernels against brute force, MiniSom, and their numpy twins."""

import numpy as np
import pytest
from minisom import MiniSom

from somseg import kernels
from somseg.metrics import match_units, quantization_error, topographic_error


def brute_force(X: np.ndarray, codebook: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best and second-best unit by direct distances, lowest index first among ties."""
    distances = np.linalg.norm(X[:, None, :] - codebook[None, :, :], axis=2)
    order = np.argsort(distances, axis=1, kind="stable")
    return order[:, 0], order[:, 1], distances[np.arange(len(X)), order[:, 0]]


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(500, 3)), rng.normal(size=(12, 3))


@pytest.fixture
def integer_data() -> np.ndarray:
    """Standardised integer-valued rows with many repeats, like the demographics."""
    rng = np.random.default_rng(1)
    raw = np.column_stack([rng.integers(18, 90, 3000), rng.integers(0, 15, 3000), rng.integers(1, 10, 3000)])
    raw = raw.astype(float)
    return (raw - raw.mean(axis=0)) / raw.std(axis=0)


@pytest.mark.parametrize("chunk_rows", [7, 64, None])
def test_best_two_units_match_brute_force(data, chunk_rows):
    X, codebook = data
    bmu, second, distance = kernels.best_two_units(X, codebook, chunk_rows=chunk_rows)
    want_bmu, want_second, want_distance = brute_force(X, codebook)
    np.testing.assert_array_equal(bmu, want_bmu)
    np.testing.assert_array_equal(second, want_second)
    np.testing.assert_allclose(distance, want_distance, rtol=1e-12)


def test_best_units_match_brute_force(data):
    X, codebook = data
    np.testing.assert_array_equal(kernels.best_units(X, codebook, chunk_rows=50), brute_force(X, codebook)[0])


def test_ties_go_to_the_lowest_index():
    codebook = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [3.0, 3.0], [3.0, 3.0]])
    X = np.array([[0.0, 0.0], [3.0, 3.0], [2.9, 3.1]])
    bmu, second, _ = kernels.best_two_units(X, codebook, dedup="never")
    np.testing.assert_array_equal(bmu, [0, 3, 3])
    np.testing.assert_array_equal(second, [1, 4, 4])
    np.testing.assert_array_equal(kernels.best_units(X, codebook), [0, 3, 3])


def test_one_neuron_map_has_second_equal_to_best(data):
    X, codebook = data
    bmu, second, _ = kernels.best_two_units(X, codebook[:1])
    assert (bmu == 0).all() and (second == 0).all()


@pytest.mark.parametrize("dedup", ["never", "always", "auto"])
def test_dedup_and_threads_do_not_change_results(integer_data, dedup):
    codebook = np.random.default_rng(2).normal(size=(16, 3))
    want = kernels.best_two_units(integer_data, codebook, dedup="never", n_threads=1)
    got = kernels.best_two_units(integer_data, codebook, dedup=dedup, chunk_rows=100, n_threads=2)
    for a, b in zip(want, got):
        np.testing.assert_array_equal(a, b)


def test_match_units_is_bit_identical_to_minisom(integer_data):
    X = integer_data
    som = MiniSom(5, 4, 3, sigma=1.5, learning_rate=0.3, random_seed=3)
    som.random_weights_init(X)
    som.train_random(X, 500)
    weights = som.get_weights()
    match = match_units(X, weights, chunk_rows=128)
    distances = som._distance_from_weights(X)
    np.testing.assert_array_equal(match.bmu, distances.argmin(axis=1))
    np.testing.assert_array_equal(np.sort(np.argsort(distances, axis=1)[:, :2], axis=1),
                                  np.sort(np.column_stack([match.bmu, match.second]), axis=1))
    assert quantization_error(X, weights, match) == som.quantization_error(X)
    assert topographic_error(X, weights, 8, match) == som.topographic_error(X)


def test_numpy_twins_agree_with_compiled_kernels(data):
    X, codebook = data
    X = np.round(X, 1)  # repeats, for the distinct-rows twins
    cross = kernels._cross(X, codebook)
    x_sq, w_sq = kernels._squared_norms(X), kernels._squared_norms(codebook)
    compiled = (np.empty(len(X), np.int64), np.empty(len(X), np.int64))
    twin = (np.empty(len(X), np.int64), np.empty(len(X), np.int64))
    kernels._rank_two(cross, x_sq, w_sq, *compiled)
    kernels._rank_two_numpy(cross, x_sq, w_sq, *twin)
    np.testing.assert_array_equal(compiled[0], twin[0])
    np.testing.assert_array_equal(compiled[1], twin[1])
    bmu, bmu_twin = np.empty(len(X), np.int64), np.empty(len(X), np.int64)
    kernels._nearest(np.ascontiguousarray(X), np.ascontiguousarray(-2 * codebook.T), w_sq, bmu)
    kernels._nearest_numpy(X, -2 * codebook.T, w_sq, bmu_twin)
    np.testing.assert_array_equal(bmu, bmu_twin)
    bits = np.ascontiguousarray(X).view(np.uint64)
    codes, firsts, n = kernels._distinct_codes(bits, len(X))
    codes_twin, firsts_twin, n_twin = kernels._distinct_numpy(bits, len(X))
    assert n == n_twin
    np.testing.assert_array_equal(codes, codes_twin)
    np.testing.assert_array_equal(firsts[:n], firsts_twin)


def test_float32_ranking_changes_only_near_ties():
    rng = np.random.default_rng(5)
    codebook = rng.normal(size=(64, 17))
    # Random rows, and rows a hair off the midpoint of two units: near-ties float32 cannot resolve.
    pairs = rng.integers(0, 64, size=(2_000, 2))
    midpoints = (codebook[pairs[:, 0]] + codebook[pairs[:, 1]]) / 2 + 1e-9 * rng.normal(size=(2_000, 17))
    X = np.vstack([rng.normal(size=(20_000, 17)), midpoints])
    exact = kernels.best_units(X, codebook)
    fast = kernels.best_units(X, codebook, precision="float32")
    distances = np.sqrt(((X[:, None, :] - codebook[None]) ** 2).sum(axis=2))
    np.testing.assert_array_equal(exact, distances.argmin(axis=1))
    differ = exact != fast
    # Where they differ, float32's unit is as near as float64's to float32's resolution of the scores.
    gap = distances[np.arange(len(X)), fast] ** 2 - distances[np.arange(len(X)), exact] ** 2
    scale = (X**2).sum(axis=1) + (codebook**2).sum(axis=1).max()
    assert (gap[differ] <= 1e-5 * scale[differ]).all()
    assert not differ[:20_000].any() and differ[20_000:].any()
    # Ties of exactly equal units still go to the lowest index.
    twins = np.vstack([codebook[:3], codebook[:3]])
    np.testing.assert_array_equal(kernels.best_units(X[:100], twins, precision="float32") < 3, True)


def test_position_sample_depends_on_the_global_row_only():
    key = kernels.sample_key(42, 3)
    whole = kernels.keep_by_position(1_000, 20_000, key, 0.1)
    pieces = [kernels.keep_by_position(1_000 + start, stop - start, key, 0.1)
              for start, stop in [(0, 7), (7, 12_345), (12_345, 20_000)]]
    np.testing.assert_array_equal(np.concatenate(pieces), whole)
    assert abs(whole.mean() - 0.1) < 0.01
    assert not np.array_equal(whole, kernels.keep_by_position(1_000, 20_000, kernels.sample_key(42, 4), 0.1))
    twin = np.empty(20_000, dtype=bool)
    kernels._keep_by_position_numpy(np.uint64(1_000), np.uint64(key), 0.1, twin)
    np.testing.assert_array_equal(twin, whole)


def test_thinning_keeps_the_expected_weight_and_matches_its_twin(integer_data):
    distinct = kernels.distinct_rows(integer_data)
    key = kernels.sample_key(1, 0)
    thinned = kernels.thin_weights(distinct.rows, distinct.counts, key, 0.2)
    twin = np.empty(len(distinct.rows))
    kernels._thin_weights_numpy(distinct.rows.view(np.uint64), distinct.counts.astype(float), np.uint64(key), 0.2, 1.0, twin)
    np.testing.assert_allclose(twin, thinned, rtol=1e-12)
    assert thinned.sum() == pytest.approx(0.2 * len(integer_data), rel=0.1)
    ones = kernels.thin_weights(distinct.rows, np.ones(len(distinct.rows)), key, 0.2)
    assert set(np.unique(ones)) <= {0.0, 1.0}  # a row of weight 1 is kept whole or dropped


def test_distinct_rows_rebuild_the_table_in_first_occurrence_order():
    X = np.array([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0], [5.0, 6.0], [3.0, 4.0], [1.0, 2.0]])
    distinct = kernels.distinct_rows(X)
    np.testing.assert_array_equal(distinct.rows, [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    np.testing.assert_array_equal(distinct.inverse, [0, 1, 0, 2, 1, 0])
    np.testing.assert_array_equal(distinct.counts, [3, 2, 1])
    np.testing.assert_array_equal(distinct.rows[distinct.inverse], X)


def test_distinct_rows_grow_their_table_and_give_up_past_the_ratio():
    X = np.random.default_rng(4).integers(0, 50, size=(20_000, 2)).astype(float)  # ~2500 distinct
    distinct = kernels.distinct_rows(X)
    assert len(distinct.rows) == len(np.unique(X, axis=0))
    np.testing.assert_array_equal(distinct.rows[distinct.inverse], X)
    assert kernels.distinct_rows(X, max_ratio=0.05) is None
    assert kernels.dedup_if_worthwhile(np.random.default_rng(5).normal(size=(1000, 3))) is None


def test_chunk_bounds_cover_all_rows_without_a_one_row_tail():
    assert kernels.chunk_bounds(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert kernels.chunk_bounds(9, 3) == [(0, 3), (3, 6), (6, 9)]
    assert kernels.chunk_bounds(1, 3) == [(0, 1)]
    assert kernels.chunk_bounds(0, 3) == []
    with pytest.raises(ValueError):
        kernels.chunk_bounds(5, 0)


def test_topographic_error_counts_non_adjacent_pairs():
    # 1x3 map: the row sits between units 0 and 2, which are not adjacent.
    weights = np.array([[[0.0], [10.0], [1.0]]])
    X = np.array([[0.4], [9.0]])
    match = match_units(X, weights)
    np.testing.assert_array_equal(match.bmu, [0, 1])
    np.testing.assert_array_equal(match.second, [2, 2])
    assert topographic_error(X, weights, 8, match) == 0.5


def test_shape_errors_are_reported(data):
    X, codebook = data
    with pytest.raises(ValueError):
        kernels.best_two_units(X, codebook[:, :2])
    with pytest.raises(ValueError):
        match_units(X[0], codebook.reshape(3, 4, 3))


def test_group_moments_equal_one_bincount_per_column_and_moment_to_the_last_bit():
    rng = np.random.default_rng(5)
    values = rng.lognormal(3, 2, (5_000, 4))
    values[rng.random(values.shape) < 0.1] = np.nan
    group = rng.integers(0, 7, len(values))  # group 7 of 8 stays empty

    expected = kernels._group_moments_numpy(values, group, 8)
    for layout in (values, np.asfortranarray(values)):
        got = kernels.group_moments(layout, group, 8)
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)
    n, mean, m2 = expected
    assert (n[7] == 0).all() and (mean[7] == 0).all() and (m2[7] == 0).all()
    observed = values[group == 2, 1][~np.isnan(values[group == 2, 1])]
    assert n[2, 1] == len(observed) and mean[2, 1] == pytest.approx(observed.mean())
    assert m2[2, 1] == pytest.approx(((observed - observed.mean()) ** 2).sum())


@pytest.mark.parametrize("n_edges", [0, 1, 9, 16, 17, 40])
def test_bin_counts_match_searchsorted_per_column_in_both_versions(n_edges: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(n_edges)
    table = rng.normal(size=(2000, 4))
    table[rng.random(table.shape) < 0.1] = np.nan
    table[:50, 1] = 0.5  # values on an edge go to the bin it closes
    table[50:60, 2] = np.inf
    edges = [np.sort(rng.normal(size=n_edges)) for _ in range(4)]
    edges[1] = np.sort(np.append(edges[1], [0.5, 0.5]))  # repeated edges, and a column with more of them
    expected = []
    for c, column_edges in enumerate(edges):
        column = table[:, c]
        observed = column[~np.isnan(column)]
        counts = np.bincount(np.searchsorted(column_edges, observed, side="left"), minlength=len(column_edges) + 1)
        expected.append(np.append(counts, np.isnan(column).sum()))
    compiled = kernels.bin_counts(table, edges)
    monkeypatch.setattr(kernels, "_bin_counts", kernels._bin_counts_numpy)
    twin = kernels.bin_counts(table, edges)
    for c, counts in enumerate(compiled):
        np.testing.assert_array_equal(counts, expected[c])
        np.testing.assert_array_equal(twin[c], expected[c])


def test_bin_counts_need_one_edge_array_per_column() -> None:
    with pytest.raises(ValueError, match="one edge array per column"):
        kernels.bin_counts(np.zeros((3, 2)), [np.zeros(1)])


@pytest.mark.parametrize("n_threads", [1, 2])
def test_cluster_distance_sums_match_direct_distances_and_the_numpy_twin(monkeypatch, n_threads: int) -> None:
    rng = np.random.default_rng(11)
    A, B = rng.normal(size=(37, 5)), rng.normal(size=(53, 5))
    B[:4] = A[:4]  # identical rows: exactly 0 apart
    codes, weight = rng.integers(0, 3, 53), rng.uniform(0.5, 2.0, 53)
    distances = np.sqrt(((A[:, None, :] - B[None, :, :]) ** 2).sum(axis=2))
    expected = np.stack([(distances * np.where(codes == k, weight, 0.0)).sum(axis=1) for k in range(3)], axis=1)
    sums = kernels.cluster_distance_sums(A, B, codes, weight, 3, n_threads=n_threads)
    np.testing.assert_allclose(sums, expected, rtol=1e-12)
    own = kernels.cluster_distance_sums(A[:4], A[:4], np.arange(4), np.ones(4), 4, n_threads=n_threads)
    assert np.all(np.diag(own) == 0.0)
    monkeypatch.setattr(kernels, "_cluster_distance_sums", kernels._cluster_distance_sums_numpy)
    np.testing.assert_allclose(kernels.cluster_distance_sums(A, B, codes, weight, 3, n_threads=n_threads), expected, rtol=1e-12)


def test_cluster_distance_sums_need_a_code_and_weight_per_row() -> None:
    with pytest.raises(ValueError, match="a code and weight per row of B"):
        kernels.cluster_distance_sums(np.zeros((2, 3)), np.zeros((4, 3)), np.zeros(3, dtype=np.int64), np.ones(4), 1)


def _text_layout(words: list[str], large: bool) -> tuple[np.ndarray, np.ndarray]:
    encoded = [w.encode() for w in words]
    offsets = np.cumsum([0] + [len(b) for b in encoded]).astype(np.int64 if large else np.int32)
    return offsets, np.frombuffer(b"".join(encoded), dtype=np.uint8)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_text_hashes_depend_on_the_bytes_only_and_the_numpy_twin_agrees(monkeypatch, n_threads: int) -> None:
    monkeypatch.setattr(kernels, "_TEXT_BLOCK_ROWS", 3)  # several blocks, on threads
    words = ["", "a", "a\x00", "abcdefgh", "abcdefghi", "é", "a", "abcdefgh", "x" * 40, "C1", "C10"]
    hashes = kernels.text_hashes(*_text_layout(words, large=False), n_threads=n_threads)
    # Equal strings hash equally wherever they are; these distinct ones do not collide.
    assert hashes[1] == hashes[6] and hashes[3] == hashes[7]
    assert len(set(hashes.tolist())) == len(set(words))
    # Another offset width, another place in the data: the same hashes.
    offsets, data = _text_layout(["zzz", *words], large=True)
    assert (kernels.text_hashes(offsets[1:], data) == hashes).all()
    twin = np.empty(len(words), dtype=np.uint64)
    kernels._text_hashes_numpy(*_text_layout(words, large=False), twin)
    assert (twin == hashes).all()


def test_text_hashes_refuse_offsets_outside_the_data() -> None:
    offsets, data = _text_layout(["ab", "cd"], large=False)
    with pytest.raises(ValueError, match="outside the 3 bytes"):
        kernels.text_hashes(offsets, data[:3])
    with pytest.raises(ValueError, match="int32 or int64"):
        kernels.text_hashes(offsets.astype(np.float64), data)
    assert kernels.text_hashes(np.zeros(1, dtype=np.int64), data).shape == (0,)
