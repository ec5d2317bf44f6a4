"""somseg.stats: moments, co-moments and exact order statistics, partition by partition."""

import numpy as np
import pytest

import somseg.stats as stats
from somseg.stats import (
    CoMoments,
    Moments,
    OrderStatistics,
    combine,
    fit_in_memory,
    median_from,
    median_ranks,
    percentile_from,
    percentile_learner,
    quantile_from,
    quantile_ranks,
)


def _drive(learner, parts):
    while (request := learner.request()) is not None:
        learner.update(combine([request.partial(part) for part in parts]))
    return learner


@pytest.fixture(scope="module")
def values() -> np.ndarray:
    rng = np.random.default_rng(7)
    columns = np.column_stack([rng.normal(size=3_001), rng.integers(0, 9, size=3_001).astype(float)])
    columns[rng.random(3_001) < 0.1, 0] = np.nan
    return columns


@pytest.mark.parametrize("distinct_limit", [1_000_000, 50])
def test_order_statistics_are_numpys_exact_quantiles(values, monkeypatch, distinct_limit) -> None:
    # 50 distinct values per column forces the refinement passes, 40 gathered values their last one.
    monkeypatch.setattr(stats, "MAX_DISTINCT", distinct_limit)
    monkeypatch.setattr(stats, "_GATHER_LIMIT", 40)
    quantiles = np.array([0.05, 0.1, 0.5, 0.95, 0.999])

    def ranks_of(n_observed: np.ndarray) -> list[np.ndarray]:
        return [np.concatenate([median_ranks(int(n)), *quantile_ranks(int(n), quantiles)[:2]]) for n in n_observed]

    learner = _drive(OrderStatistics(ranks_of), np.array_split(values, 7))
    for column in range(2):
        observed = values[:, column][~np.isnan(values[:, column])]
        found = learner.result()[column]
        assert learner.n_observed_[column] == len(observed)
        assert median_from(found[:2]) == np.median(observed)
        gamma = quantile_ranks(len(observed), quantiles)[2]
        np.testing.assert_array_equal(quantile_from(found[2:7], found[7:], gamma), np.quantile(observed, quantiles))


def test_partitions_return_a_windows_values_only_when_every_partition_together_has_few_enough(values, monkeypatch) -> None:
    # Each of 7 partitions holds under 40 values of a window that holds 2,700 over all of them: gathering
    # them would only be dropped when the partitions are added (and cost memory on a wide table).
    monkeypatch.setattr(stats, "MAX_DISTINCT", 50)
    monkeypatch.setattr(stats, "_GATHER_LIMIT", 500)
    parts = np.array_split(values[:, :1], 100)
    learner = OrderStatistics(lambda n: [median_ranks(int(n[0]))])
    learner.update(combine([learner.request().partial(part) for part in parts]))
    gathered = []
    while (request := learner.request()) is not None:
        windows = [request.partial(part) for part in parts]
        gathered.append(all(window.values is not None for part in windows for window in part.windows))
        assert [gather for *_, gather in request.bounds] == [gathered[-1]] * 2
        learner.update(combine(windows))
    assert gathered[0] is False and gathered[-1] is True
    assert median_from(learner.result()[0]) == np.nanmedian(values[:, 0])


def test_a_rank_among_many_equal_values_settles_in_a_pass_or_two(monkeypatch) -> None:
    # A zero-inflated, skewed column (purchases): its median is one of 20,000 zeros, too many to gather,
    # and a window halved 1024-fold per pass would take hundreds of passes to shrink onto it.
    monkeypatch.setattr(stats, "MAX_DISTINCT", 50)
    monkeypatch.setattr(stats, "_GATHER_LIMIT", 1000)
    rng = np.random.default_rng(5)
    values = np.where(rng.random(30_000) < 0.7, 0.0, rng.lognormal(6, 2, 30_000))[:, None]
    learner = _drive(OrderStatistics(lambda n: [np.concatenate([median_ranks(int(n[0])), [int(n[0]) * 9 // 10]])]),
                     np.array_split(values, 10))
    assert learner._passes <= 3
    assert median_from(learner.result()[0][:2]) == np.median(values) == 0.0
    assert learner.result()[0][2] == np.sort(values[:, 0])[27_000]


def test_ranks_in_one_window_share_its_count() -> None:
    request = stats.WindowRequest(((0, 0.0, 1.0, True, True), (0, 0.0, 1.0, True, True), (0, 0.0, 0.5, False, True)))
    windows = request.partial(np.linspace(0, 1, 11)[:, None]).windows
    assert windows[0] is windows[1] and windows[2] is not windows[0]
    assert len(windows[0].values) == 11 and len(windows[2].values) == 5
    total = stats.Windows(windows) + stats.Windows(windows)
    assert total.windows[0] is total.windows[1] and total.windows[0].histogram.sum() == 22


@pytest.mark.parametrize("percentile", [50.0, 90.0, 95.0, 99.5])
def test_the_percentile_learner_is_numpys_percentile(percentile) -> None:
    distances = np.random.default_rng(0).gamma(2.0, size=(37, 1))
    learner = percentile_learner(percentile)
    fit_in_memory(learner, distances)
    assert percentile_from(learner, percentile) == np.percentile(distances, percentile)
    parted = _drive(percentile_learner(percentile), np.array_split(distances, 4))
    assert percentile_from(parted, percentile) == np.percentile(distances, percentile)


def test_a_constant_column_is_resolved_without_refining(monkeypatch) -> None:
    monkeypatch.setattr(stats, "MAX_DISTINCT", 0)
    learner = _drive(percentile_learner(95.0), [np.full((10, 1), 3.5), np.full((5, 1), 3.5)])
    assert percentile_from(learner, 95.0) == 3.5


def test_moments_of_partitions_merge_to_the_whole(values) -> None:
    whole = Moments.of(values)
    merged = combine([Moments.of(part) for part in np.array_split(values, 6)])
    np.testing.assert_allclose(merged.mean, whole.mean, rtol=1e-13)
    np.testing.assert_allclose(merged.m2, whole.m2, rtol=1e-12)
    np.testing.assert_array_equal(merged.n, whole.n)
    observed = values[:, 0][~np.isnan(values[:, 0])]
    assert merged.sample_sd()[0, 0] == pytest.approx(observed.std(ddof=1), rel=1e-12)


def test_grouped_moments_are_the_moments_of_each_group(values) -> None:
    group = np.random.default_rng(1).integers(0, 5, len(values))
    per_group = Moments.of(values, group, 5)
    to_two = per_group.grouped(np.array([0, 0, 1, 1, 1]), 2)
    for target, members in ((0, [0, 1]), (1, [2, 3, 4])):
        rows = values[np.isin(group, members)]
        np.testing.assert_allclose(to_two.mean[target], np.nanmean(rows, axis=0), rtol=1e-12)
        np.testing.assert_allclose(to_two.variance()[target], np.nanvar(rows, axis=0), rtol=1e-11)


def test_an_empty_partition_changes_nothing(values) -> None:
    whole = Moments.of(values[:, 1:])
    empty = Moments.of(np.empty((0, 1)))
    for merged in (whole + empty, empty + whole):
        np.testing.assert_array_equal(merged.mean, whole.mean)
        np.testing.assert_array_equal(merged.m2, whole.m2)


def test_moments_of_a_complete_block_follow_standard_scaler() -> None:
    from sklearn.preprocessing import StandardScaler

    X = np.random.default_rng(2).lognormal(size=(501, 3)) * 1e4
    moments = Moments.of_complete(X)
    scaler = StandardScaler().fit(X)
    assert np.array_equal(moments.mean[0], scaler.mean_)
    assert np.array_equal(moments.m2[0] / moments.n[0], scaler.var_)


def test_co_moments_merge_to_the_weighted_covariance() -> None:
    rng = np.random.default_rng(4)
    X, weight = rng.normal(size=(400, 3)) @ rng.normal(size=(3, 3)), rng.integers(1, 5, 400).astype(float)
    merged = combine([CoMoments.of(X[s], weight[s]) for s in np.array_split(np.arange(400), 3)])
    np.testing.assert_allclose(merged.covariance(), np.cov(X, rowvar=False, aweights=weight, ddof=0), rtol=1e-12)
    np.testing.assert_allclose(merged.mean, np.average(X, axis=0, weights=weight), rtol=1e-12)


def test_nothing_to_combine_is_an_error() -> None:
    with pytest.raises(ValueError, match="no partitions"):
        combine([])


def test_co_moments_of_scaled_rows_follow_from_those_of_the_rows() -> None:
    rng = np.random.default_rng(5)
    X = rng.normal([3.0, -2.0, 50.0], [1.0, 4.0, 20.0], (500, 3))
    shift, scale = np.array([1.0, 2.0, 3.0]), np.array([2.0, 0.5, 10.0])
    derived = CoMoments.of(X).scaled(shift, scale)
    direct = CoMoments.of((X - shift) / scale)
    np.testing.assert_allclose(derived.mean, direct.mean, rtol=1e-12)
    np.testing.assert_allclose(derived.scatter, direct.scatter, rtol=1e-10)
    assert derived.weight == direct.weight


@pytest.mark.parametrize("distinct", [30, 50, 51, 5_000])
def test_a_column_keeps_its_value_counts_exactly_when_it_has_few_distinct_values(monkeypatch, distinct) -> None:
    monkeypatch.setattr(stats, "MAX_DISTINCT", 50)
    rng = np.random.default_rng(1)
    column = rng.integers(0, distinct, 10_000).astype(float)
    column[rng.random(10_000) < 0.1] = np.nan
    summary = stats.summarise_column(column)
    observed = column[~np.isnan(column)]
    assert (summary.n, summary.low, summary.high) == (len(observed), observed.min(), observed.max())
    if distinct <= 50:
        values, counts = np.unique(observed, return_counts=True)
        np.testing.assert_array_equal(summary.counts[0], values)
        np.testing.assert_array_equal(summary.counts[1], counts)
    else:
        assert summary.counts is None


@pytest.mark.parametrize("weighted", [False, True])
def test_co_moments_taken_block_by_block_are_those_of_one_product(monkeypatch, weighted: bool) -> None:
    rng = np.random.default_rng(4)
    X = np.asfortranarray(rng.lognormal(size=(50, 4)))
    weight = rng.uniform(0.5, 3.0, 50) if weighted else np.ones(50)
    mean = weight @ X / weight.sum()
    expected = ((X - mean) * weight[:, None]).T @ (X - mean)
    whole = CoMoments.of(X, weight if weighted else None)
    np.testing.assert_array_equal(whole.scatter, expected)  # one block: the one product, to the last bit
    monkeypatch.setattr(stats, "_SCATTER_BLOCK_ROWS", 7)
    blocked = CoMoments.of(X, weight if weighted else None)
    assert blocked.weight == whole.weight
    np.testing.assert_array_equal(blocked.mean, whole.mean)
    np.testing.assert_allclose(blocked.scatter, expected, rtol=1e-12)


def _sampled_quantiles(monkeypatch, values: np.ndarray, parts: int, margin: float = 6.0) -> OrderStatistics:
    # A small table that stands for a large one: a window of more than 5,000 values cannot be gathered,
    # and every 4th value of a partition goes into the sample that places the first windows.
    monkeypatch.setattr(stats, "MAX_DISTINCT", 50)
    monkeypatch.setattr(stats, "_GATHER_LIMIT", 5_000)
    monkeypatch.setattr(stats, "_SAMPLE_STRIDE", 4)
    monkeypatch.setattr(stats, "_SAMPLE_MIN", 100)
    monkeypatch.setattr(stats, "_SAMPLE_MARGIN", margin)
    quantiles = np.array([0.01, 0.1, 0.5, 0.9, 0.999])

    def ranks_of(n_observed: np.ndarray) -> list[np.ndarray]:
        return [np.concatenate([median_ranks(int(n)), *quantile_ranks(int(n), quantiles)[:2]]) for n in n_observed]

    learner = _drive(OrderStatistics(ranks_of), np.array_split(values, parts))
    observed = values[:, 0][~np.isnan(values[:, 0])]
    found = learner.result()[0]
    assert median_from(found[:2]) == np.median(observed)
    gamma = quantile_ranks(len(observed), quantiles)[2]
    np.testing.assert_array_equal(quantile_from(found[2:7], found[7:], gamma), np.quantile(observed, quantiles))
    return learner


def test_the_sample_places_each_rank_in_a_window_gathered_in_one_pass(monkeypatch) -> None:
    rng = np.random.default_rng(3)
    values = rng.lognormal(3, 2, size=(60_000, 1))
    values[rng.random(60_000) < 0.05] = np.nan
    learner = _sampled_quantiles(monkeypatch, values, parts=6)
    assert learner._passes == 1


def test_a_pass_gathers_no_more_values_than_its_budget_and_bins_the_other_windows(monkeypatch) -> None:
    rng = np.random.default_rng(5)
    values = rng.lognormal(3, 2, size=(60_000, 1))
    monkeypatch.setattr(stats, "_GATHER_BUDGET", 3_000)
    gathered: list[int] = []
    real = stats.OrderStatistics.update

    def update(self, total):
        if isinstance(total, stats.Windows):  # each window object once: ranks that share one share its values
            distinct = {id(w): w for w in total.windows}.values()
            gathered.append(sum(len(w.values) for w in distinct if w.values is not None))
        real(self, total)

    monkeypatch.setattr(stats.OrderStatistics, "update", update)
    learner = _sampled_quantiles(monkeypatch, values, parts=6)  # exact, as every test of it checks
    assert learner._passes == 2 and len(gathered) == 2
    assert 0 < gathered[0] <= 3_000  # the smallest windows are gathered at once, the others binned
    assert gathered[1] > 0


@pytest.mark.parametrize("period", [[1e6, 1.0, 2.0, 3.0], [0.0, 1e6, 2e6, 3e6]])
def test_a_first_window_that_misses_its_rank_costs_a_pass_not_the_value(monkeypatch, period) -> None:
    # The sample sees only every 4th row, all large (or all small): its windows lie above (or below) most
    # ranks, which are then found in the values below (or above) the window.
    values = np.tile(period, 15_000)[:, None] + np.random.default_rng(4).random((60_000, 1))
    learner = _sampled_quantiles(monkeypatch, values, parts=5, margin=0.0)
    assert learner._passes >= 2
