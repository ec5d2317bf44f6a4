"""The batch SOM engine: conventions, determinism, weighted = repeated rows."""

import subprocess
import sys

import numpy as np
import pytest
from pydantic import ValidationError

from somseg import kernels
from somseg.batch_som import (
    NEIGHBOURHOODS,
    SAMPLE_ROWS_PER_NEURON,
    BatchSom,
    BatchSomTrainer,
    GatheredRows,
    TrainingBlock,
    epoch_partial_sums,
    group_blocks,
    join_blocks,
    neighbourhood_kernel,
    pack_blocks,
    pca_init,
    sigma_schedule,
    training_block,
    weights_from_sums,
)
from somseg.config import BATCH_NEIGHBOURHOODS, SomConfig
from somseg.metrics import match_units, quantization_error, topographic_error
from somseg.som import build_engine
from somseg.stats import CoMoments, combine


@pytest.fixture
def X() -> np.ndarray:
    """Three blobs of integer-valued rows (many repeats), standardised."""
    rng = np.random.default_rng(0)
    centres = np.array([[30.0, 1.0, 2.0], [65.0, 1.0, 2.0], [38.0, 8.0, 3.0]])
    raw = np.round(centres[rng.integers(0, 3, 2000)] + rng.normal(scale=[6.0, 1.0, 1.0], size=(2000, 3)))
    return (raw - raw.mean(axis=0)) / raw.std(axis=0)


def small(**params: object) -> BatchSom:
    return BatchSom(rows=4, cols=5, epochs=8, **params)


def test_fit_returns_self_with_learned_attributes(X):
    som = small()
    assert som.fit(X) is som
    assert som.weights_.shape == (4, 5, 3)
    assert som.n_features_in_ == 3
    assert len(som.sigmas_) == 8
    assert som.n_train_rows_ < len(X)  # deduplicated automatically


def test_constructor_only_stores_parameters():
    som = BatchSom(rows=0, sigma=-1.0, init="nonsense")  # validated by fit, not here
    assert som.rows == 0 and som.init == "nonsense"
    with pytest.raises(ValueError):
        som.fit(np.zeros((3, 2)))


def test_unfitted_engine_refuses_to_match(X):
    with pytest.raises(RuntimeError, match="not fitted"):
        small().match(X)


def test_training_is_deterministic_and_thread_independent(X):
    first = small(n_threads=1).fit(X).weights_
    np.testing.assert_array_equal(first, small(n_threads=2).fit(X).weights_)
    np.testing.assert_array_equal(first, small(n_threads=2, chunk_rows=64).fit(X).weights_)


def test_progress_reports_each_epoch_without_changing_the_map(X):
    reported: list[float] = []
    watched = small().fit(X, progress=reported.append).weights_

    assert reported == [epoch / 8 for epoch in range(1, 9)]
    np.testing.assert_array_equal(watched, small().fit(X).weights_)


def test_random_state_drives_random_init(X):
    a = small(init="random", random_state=1).fit(X).weights_
    np.testing.assert_array_equal(a, small(init="random", random_state=1).fit(X).weights_)
    assert not np.array_equal(a, small(init="random", random_state=2).fit(X).weights_)


def test_weighted_distinct_rows_train_the_same_map_as_all_rows(X):
    distinct = kernels.distinct_rows(X)
    full = small(dedup="never").fit(X).weights_
    weighted = small(dedup="never").fit(distinct.rows, sample_weight=distinct.counts).weights_
    np.testing.assert_allclose(weighted, full, atol=1e-10)
    np.testing.assert_allclose(small(dedup="always").fit(X).weights_, full, atol=1e-10)
    # Random init draws from the rows as given, so dedup cannot change it either.
    np.testing.assert_allclose(
        small(init="random", dedup="always").fit(X).weights_, small(init="random", dedup="never").fit(X).weights_, atol=1e-10
    )


def test_epoch_partial_sums_add_up_over_chunks(X):
    weights = pca_init(X, 3, 3)
    sums, counts = epoch_partial_sums(X, weights)
    halves = [epoch_partial_sums(part, weights) for part in (X[:777], X[777:])]
    np.testing.assert_allclose(halves[0][0] + halves[1][0], sums, atol=1e-9)
    np.testing.assert_array_equal(halves[0][1] + halves[1][1], counts)
    bmu = match_units(X, weights).bmu
    for unit in range(9):
        np.testing.assert_allclose(sums[unit], X[bmu == unit].sum(axis=0), atol=1e-9)
        assert counts[unit] == (bmu == unit).sum()


def test_weights_from_sums_with_a_tiny_radius_is_the_per_unit_mean():
    weights = np.arange(12, dtype=float).reshape(2, 2, 3)
    sums = np.array([[2.0, 4.0, 6.0], [0.0, 0.0, 0.0], [9.0, 9.0, 9.0], [0.0, 0.0, 0.0]])
    counts = np.array([2.0, 0.0, 3.0, 0.0])
    new = weights_from_sums(sums, counts, weights, sigma=0.01)
    np.testing.assert_allclose(new.reshape(4, 3)[[0, 2]], [[1.0, 2.0, 3.0], [3.0, 3.0, 3.0]])


def test_neighbourhood_kernel_and_schedule():
    kernel = neighbourhood_kernel(2, 3, 1.0)
    assert kernel.shape == (6, 6) and np.allclose(np.diag(kernel), 1.0)
    assert kernel[0, 1] == pytest.approx(np.exp(-0.5)) and kernel[0, 4] == pytest.approx(np.exp(-1.0))
    schedule = sigma_schedule(3.0, 0.5, 5)
    assert schedule[0] == 3.0 and schedule[-1] == pytest.approx(0.5) and (np.diff(schedule) < 0).all()


def test_cut_gaussian_is_the_gaussian_within_the_radius_and_zero_beyond():
    gaussian, cut = neighbourhood_kernel(3, 3, 1.2), neighbourhood_kernel(3, 3, 1.2, "cutgauss")
    # Unit 4 is the centre: its four direct neighbours lie at distance 1, the corners at sqrt(2) > 1.2.
    np.testing.assert_array_equal(np.flatnonzero(cut[4]), [1, 3, 4, 5, 7])
    np.testing.assert_array_equal(cut[cut > 0], gaussian[cut > 0])
    assert (gaussian > 0).all()
    with pytest.raises(ValueError, match="cutgauss"):
        neighbourhood_kernel(3, 3, 1.0, "bubble")


def test_the_cut_gaussian_trains_a_closer_fit_and_the_gaussian_a_smoother_map(X):
    gaussian = BatchSom(rows=6, cols=6, sigma=3.0, sigma_end=1.0, epochs=20).fit(X)
    cut = BatchSom(rows=6, cols=6, sigma=3.0, sigma_end=1.0, epochs=20, neighborhood="cutgauss").fit(X)
    assert quantization_error(X, cut.weights_) < quantization_error(X, gaussian.weights_)
    assert topographic_error(X, cut.weights_) >= topographic_error(X, gaussian.weights_)
    # The learner the pipeline drives over partitions carries the neighbourhood too.
    trainer = cut.trainer()
    trainer.start_pca(CoMoments.of(X))
    np.testing.assert_array_equal(_drive_over_blocks(trainer, [training_block(X)]), cut.weights_)
    with pytest.raises(ValueError, match="neighborhood"):
        BatchSom(neighborhood="bubble").fit(X)  # type: ignore[arg-type]


def test_pca_init_spans_the_principal_plane(X):
    grid = pca_init(X, 4, 5)
    np.testing.assert_allclose(grid.mean(axis=(0, 1)), X.mean(axis=0), atol=1e-12)
    # The sign convention is fixed: the last neuron of the longer side lies on the side of the first
    # component whose largest entry is positive, whatever sign the eigen-solver returns.
    first = np.linalg.eigh(np.cov(X, rowvar=False, ddof=0))[1][:, -1]
    first = first if first[np.argmax(np.abs(first))] > 0 else -first
    assert (grid[0, -1] - grid[0, 0]) @ first > 0
    # The longer side (5 columns) lies along the first component: +-1 sd of it.
    eigvals = np.sort(np.linalg.eigvalsh(np.cov(X, rowvar=False, ddof=0)))[::-1]
    assert np.linalg.norm(grid[0, -1] - grid[0, 0]) == pytest.approx(2 * np.sqrt(eigvals[0]))
    assert np.linalg.norm(grid[-1, 0] - grid[0, 0]) == pytest.approx(2 * np.sqrt(eigvals[1]))


def test_training_improves_the_map(X):
    som = BatchSom(rows=6, cols=6, sigma=3.0, sigma_end=0.5, epochs=20).fit(X)
    start = pca_init(X, 6, 6)
    assert quantization_error(X, som.weights_) < 0.8 * quantization_error(X, start)
    assert topographic_error(X, som.weights_) <= 0.1


def test_sample_weight_is_validated(X):
    with pytest.raises(ValueError):
        small().fit(X, sample_weight=np.ones(3))
    with pytest.raises(ValueError):
        small().fit(X, sample_weight=-np.ones(len(X)))
    with pytest.raises(ValueError, match="NaN"):
        small().fit(np.full((4, 3), np.nan))


def test_config_selects_the_batch_engine():
    engine = build_engine(SomConfig(engine="batch", init="pca", rows=8, cols=8, sigma=3.0, epochs=12, sigma_end=0.7,
                                    chunk_rows=512))
    assert isinstance(engine, BatchSom)
    assert (engine.sigma, engine.sigma_end, engine.epochs, engine.chunk_rows, engine.init) == (3.0, 0.7, 12, 512, "pca")
    assert SomConfig().engine == "batch"
    with pytest.raises(ValidationError, match="'gaussian', 'cutgauss'"):
        SomConfig(engine="batch", neighborhood="bubble")
    with pytest.raises(ValidationError, match="MiniSom has no 'cutgauss'"):
        SomConfig(engine="minisom", neighborhood="cutgauss")
    assert build_engine(SomConfig(rows=4, cols=4, sigma=1.5, neighborhood="cutgauss")).neighborhood == "cutgauss"
    # The config names the engine's choices without importing it; the two lists stay one.
    assert BATCH_NEIGHBOURHOODS == NEIGHBOURHOODS


def test_engine_core_stays_free_of_orchestration():
    code = (
        "import sys, somseg.batch_som, somseg.kernels, somseg.som; "
        "sys.exit(any(m in sys.modules for m in ('prefect', 'great_expectations')))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --- the learner over partitions ---------------------------------------------------------------


def _drive_over_blocks(trainer, blocks: list[TrainingBlock]) -> np.ndarray:
    """What the pipeline does: each epoch's partial on every block, added in block order, then the update."""
    while (request := trainer.request()) is not None:
        trainer.update(combine([request.partial(block) for block in blocks]))
    return trainer.weights_


def test_the_learner_on_one_block_is_the_estimator(X):
    som = small()
    trainer = som.trainer()
    trainer.start_pca(CoMoments.of(X))
    weights = _drive_over_blocks(trainer, [training_block(X)])
    np.testing.assert_array_equal(weights, som.fit(X).weights_)


def test_the_learner_over_partitions_matches_one_table_up_to_rounding(X):
    parts = np.array_split(X, 4)
    trainer = small().trainer()
    trainer.start_pca(combine([CoMoments.of(part) for part in parts]))
    weights = _drive_over_blocks(trainer, [training_block(part) for part in parts])
    np.testing.assert_allclose(weights, small().fit(X).weights_, atol=1e-9)


def test_random_start_gathered_from_partitions_is_the_in_memory_one(X):
    parts, firsts = np.array_split(X, 3), [0]
    for part in parts[:-1]:
        firsts.append(firsts[-1] + len(part))
    trainer = small(init="random", random_state=5).trainer()
    request = trainer.random_picks(len(X))
    trainer.start_random(combine([request.partial(part, first) for part, first in zip(parts, firsts)]))
    in_memory = small(init="random", random_state=5).trainer()
    in_memory.start_random(in_memory.random_picks(len(X)).partial(X))
    np.testing.assert_array_equal(trainer.weights_, in_memory.weights_)


def test_blocks_are_grouped_by_size_only():
    assert group_blocks([400, 300, 500, 900, 100, 100], 1000) == [[0, 1], [2], [3, 4], [5]]
    assert group_blocks([2000, 10], 1000) == [[0], [1]]
    assert group_blocks([], 1000) == []


def test_joined_blocks_are_deduplicated_again_with_summed_weights(X):
    a, b = training_block(X[:1000], "always"), training_block(X[1000:], "always")
    joined = join_blocks([a, b], "always")
    whole = training_block(X, "always")
    assert joined.n_rows == whole.n_rows and joined.weight.sum() == len(X)
    order_joined, order_whole = np.lexsort(joined.rows.T), np.lexsort(whole.rows.T)
    np.testing.assert_array_equal(joined.rows[order_joined], whole.rows[order_whole])
    np.testing.assert_array_equal(joined.weight[order_joined], whole.weight[order_whole])
    assert [block.n_rows for block in pack_blocks([a, b], max_rows=10)] == [a.n_rows, b.n_rows]


# --- sampled epochs ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def continuous() -> np.ndarray:
    """Rows that never repeat: three blobs, correlated and log-transformed skewed features, standardised."""
    rng = np.random.default_rng(7)
    n = 40_000
    blob = rng.integers(0, 3, n)
    factor = rng.standard_normal((n, 2))
    raw = np.column_stack([
        rng.normal(30 + 15 * blob, 6), rng.normal(2 + 4 * blob, 2), np.log1p(rng.lognormal(5, 1, n)),
        factor[:, 0] + 0.5 * rng.standard_normal(n), 0.7 * factor[:, 0] + factor[:, 1],
        np.log1p(rng.lognormal(3 + blob, 0.8)),
    ])
    return (raw - raw.mean(axis=0)) / raw.std(axis=0)


def sampled(**params: object) -> BatchSom:
    return BatchSom(rows=5, cols=5, sigma=2.5, sigma_end=1.0, epochs=20, **params)


def test_small_tables_train_on_every_row_in_every_epoch(X):
    som = small(sample_rows_per_neuron=100).fit(X)  # 20 neurons x 100 >= 2000 rows
    assert (som.sample_sizes_ == len(X)).all()
    np.testing.assert_array_equal(som.weights_, small(sample_rows_per_neuron=None).fit(X).weights_)


def test_epoch_samples_grow_as_the_radius_shrinks(continuous):
    som = sampled(sample_rows_per_neuron=200).fit(continuous)
    sizes = som.sample_sizes_
    assert sizes[-1] == 200 * 25 and sizes[0] == np.ceil(200 * 25 * (1.0 / 2.5) ** 2)
    assert (np.diff(sizes) >= 0).all() and sizes.sum() < 3 * len(continuous)
    assert (sampled(sample_rows_per_neuron=None).fit(continuous[:1000]).sample_sizes_ == 1000).all()


def test_sampled_training_is_deterministic_for_a_seed_whatever_the_blocks_and_threads(continuous):
    first = sampled(n_threads=1).fit(continuous).weights_
    np.testing.assert_array_equal(first, sampled(n_threads=2).fit(continuous).weights_)
    assert not np.allclose(first, sampled(random_state=1).fit(continuous).weights_, atol=1e-6)
    # Blocks of any size, driven as the pipeline drives them: the same rows are sampled.
    sizes = [7_000, 13_001, 19_998, 1]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    trainer = sampled().trainer()
    trainer.start_pca(CoMoments.of(continuous))
    trainer.plan(len(continuous))
    while (request := trainer.request()) is not None:
        assert request.sample is not None
        trainer.update(combine([
            request.partial(TrainingBlock(continuous[start:start + size]), int(start)) for start, size in zip(starts, sizes)
        ]))
    np.testing.assert_allclose(trainer.weights_, first, atol=1e-9)


def test_sampled_map_matches_the_full_pass_map_on_the_whole_table(continuous):
    # The default budget (25 neurons x 200 rows < 40,000 rows: sampled). A budget of
    # a few rows per neuron fails both checks (QE up to 4 % higher, TE up to 0.026).
    full = sampled(sample_rows_per_neuron=None).fit(continuous).weights_
    som = sampled().fit(continuous)
    assert som.sample_sizes_.sum() < 0.3 * 20 * len(continuous)  # a fraction of the full passes' work
    match_full, match_sampled = match_units(continuous, full), match_units(continuous, som.weights_)
    qe_full = quantization_error(continuous, full, match_full)
    te_full = topographic_error(continuous, full, 8, match_full)
    assert quantization_error(continuous, som.weights_, match_sampled) == pytest.approx(qe_full, rel=0.01)
    assert topographic_error(continuous, som.weights_, 8, match_sampled) == pytest.approx(te_full, abs=0.002)


def test_deduplicated_rows_are_thinned_like_the_rows_they_stand_for(continuous):
    # Rounded, so rows repeat: the weighted (deduplicated) table samples like the full one.
    rounded = np.round(continuous[:, :3] * 4) / 4
    dedup, plain = sampled(sample_rows_per_neuron=60, dedup="always").fit(rounded), sampled(
        sample_rows_per_neuron=60, dedup="never").fit(rounded)
    assert dedup.n_train_rows_ < len(rounded) // 4 and (dedup.sample_sizes_ < dedup.n_train_rows_).all()
    assert quantization_error(rounded, dedup.weights_) == pytest.approx(quantization_error(rounded, plain.weights_), rel=0.02)
    # A distinct row is kept or dropped by its values, wherever it sits in the block.
    distinct = kernels.distinct_rows(rounded)
    key = kernels.sample_key(3, 0)
    thinned = kernels.thin_weights(distinct.rows, distinct.counts, key, 0.05)
    order = np.random.default_rng(0).permutation(len(distinct.rows))
    np.testing.assert_array_equal(kernels.thin_weights(distinct.rows[order], distinct.counts[order], key, 0.05),
                                  thinned[order])
    assert thinned.sum() == pytest.approx(0.05 * len(rounded), rel=0.05)
    heavy = distinct.counts >= 200
    assert (thinned[heavy] > 0).all()  # a row standing for many is (nearly) always kept


def test_config_carries_the_sampling_budget():
    # The config names the default apart so that reading a config does not import the compiled kernels.
    assert SomConfig().sample_rows_per_neuron == SAMPLE_ROWS_PER_NEURON == BatchSom().sample_rows_per_neuron
    engine = build_engine(SomConfig(rows=4, cols=4, sigma=1.0, sample_rows_per_neuron=None))
    assert engine.sample_rows_per_neuron is None
    with pytest.raises(ValidationError):
        SomConfig(sample_rows_per_neuron=0)


def test_loading_only_the_kept_rows_gives_the_sums_of_the_whole_block(continuous):
    trainer = sampled().trainer()
    trainer.start_pca(CoMoments.of(continuous))
    trainer.plan(len(continuous))
    request = trainer.request()
    block = continuous[10_000:30_000]

    kept = request.rows_kept(10_000, len(block))

    assert 0 < len(kept) < len(block) // 4 and (np.diff(kept) > 0).all()
    whole = request.partial(TrainingBlock(block), 10_000)
    for rows in (block[kept], np.asfortranarray(block[kept])):  # as a loader may give them
        only = request.partial_of_kept(rows)
        np.testing.assert_array_equal(only.sums, whole.sums)
        np.testing.assert_array_equal(only.counts, whole.counts)
    unplanned = sampled().trainer()  # full passes
    unplanned.start_pca(CoMoments.of(continuous))
    assert unplanned.request().rows_kept(0, 10) is None


def test_a_block_whose_sample_keeps_no_row_adds_nothing(continuous):
    trainer = sampled().trainer()
    trainer.start_pca(CoMoments.of(continuous))
    trainer.plan(len(continuous))
    request = trainer.request()
    empty = request.partial(TrainingBlock(continuous[:0]))
    assert empty.counts.shape == (25,) and not empty.counts.any() and not empty.sums.any()


def test_float32_epochs_train_the_same_map_up_to_near_ties(continuous):
    exact = sampled(sample_rows_per_neuron=None).fit(continuous).weights_
    fast = sampled(sample_rows_per_neuron=None, precision="float32").fit(continuous).weights_
    np.testing.assert_allclose(fast, exact, atol=1e-3)
    assert quantization_error(continuous, fast) == pytest.approx(quantization_error(continuous, exact), rel=1e-4)
    assert build_engine(SomConfig(rows=2, cols=2, sigma=1.0, epoch_precision="float32")).precision == "float32"


def test_epochs_on_rows_gathered_in_one_pass_give_the_map_of_a_pass_per_epoch(continuous):
    sizes = [7_000, 13_001, 19_999]
    starts = [int(s) for s in np.concatenate([[0], np.cumsum(sizes)[:-1]])]
    blocks = [continuous[start:start + size] for start, size in zip(starts, sizes)]

    def started() -> BatchSomTrainer:
        trainer = sampled().trainer()
        trainer.start_pca(CoMoments.of(continuous))
        trainer.plan(len(continuous))
        return trainer

    passes = started()
    while (request := passes.request()) is not None:  # as the som-epoch step reads a block's kept rows
        passes.update(combine([
            request.partial_of_kept(block[request.rows_kept(start, len(block))]) for start, block in zip(starts, blocks)
        ]))
    gathered = started()
    gather = gathered.gather_request(continuous.shape[1])
    assert gather is not None and len(gather.keys) == 20
    shares = []
    for start, block in zip(starts, blocks):
        positions, masks = gather.positions(start, len(block))
        assert (masks != 0).all() and (np.diff(positions) > 0).all()
        shares.append(GatheredRows.of(block[positions], masks))
    together = combine(shares)
    assert sum(len(rows) for rows, _ in together.blocks) < gathered.sample_sizes_.sum()  # a row kept twice is read once
    done: list[float] = []
    gathered.fit_gathered(together, done.append)
    np.testing.assert_array_equal(gathered.weights_, passes.weights_)
    assert done[-1] == 1.0 and len(done) == 20


def test_rows_are_gathered_only_when_every_epoch_samples_and_they_fit_the_budget(continuous, monkeypatch):
    trainer = sampled().trainer()
    assert trainer.gather_request(4) is None  # not planned: full passes
    trainer.plan(1_000)  # no larger than the last epoch's sample: full passes
    assert trainer.gather_request(4) is None
    trainer.plan(len(continuous))
    assert trainer.gather_request(4) is not None
    monkeypatch.setattr("somseg.batch_som.GATHER_BUDGET_BYTES", int(trainer.sample_sizes_.sum()) * 4 * 8 - 1)
    assert trainer.gather_request(4) is None
    long = BatchSom(rows=5, cols=5, sigma=2.5, sigma_end=1.0, epochs=65).trainer()
    long.plan(10**7)
    assert long.gather_request(4) is None  # one bit per epoch in a 64-bit mask
