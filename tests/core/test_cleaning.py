"""somseg.cleaning: median imputation and standardisation fitted on training data."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import StandardScaler

from somseg.cleaning import QUANTILE_LEVELS, CleaningFit, FeatureCleaner, feature_matrix
from somseg.drift import DECILES, bin_shares
from somseg.errors import DataError
from somseg.stats import combine, fit_in_memory

FEATURES = ["Age", "Family_Size"]


@pytest.fixture
def train() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ID": [1, 2, 3, 4, 5],
            "Family_Size": [1.0, 2.0, np.nan, 4.0, 7.0],
            "Age": [20.0, 30.0, 40.0, np.nan, 90.0],
        }
    )


def test_medians_and_missing_counts_from_training(train) -> None:
    cleaner = FeatureCleaner(FEATURES).fit(train)
    np.testing.assert_array_equal(cleaner.medians_, [35.0, 3.0])
    np.testing.assert_array_equal(cleaner.n_imputed_, [1, 1])


def test_fit_returns_self(train) -> None:
    cleaner = FeatureCleaner(FEATURES)
    assert cleaner.fit(train) is cleaner


def test_training_output_zero_mean_unit_variance(train) -> None:
    X = FeatureCleaner(FEATURES).fit_transform(train)
    assert X.shape == (5, 2) and X.dtype == np.float64
    np.testing.assert_allclose(X.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(X.std(axis=0, ddof=0), 1.0, rtol=1e-12)


def test_matches_standard_scaler_bit_for_bit(train) -> None:
    X = FeatureCleaner(FEATURES).fit_transform(train)
    imputed = train[FEATURES].fillna({"Age": 35.0, "Family_Size": 3.0}).to_numpy()
    expected = StandardScaler().fit_transform(imputed)
    assert np.array_equal(X, expected)


def test_new_data_uses_training_medians_and_scaling(train) -> None:
    cleaner = FeatureCleaner(FEATURES).fit(train)
    # New data whose own median (70) differs from the training one (35).
    new = pd.DataFrame({"Age": [np.nan, 70.0, 70.0, 80.0], "Family_Size": [3.0, np.nan, 1.0, 1.0]})
    X = cleaner.transform(new)
    expected_age = (35.0 - cleaner.mean_[0]) / cleaner.scale_[0]
    expected_size = (3.0 - cleaner.mean_[1]) / cleaner.scale_[1]
    assert X[0, 0] == expected_age
    assert X[1, 1] == expected_size
    assert X[1, 0] == (70.0 - cleaner.mean_[0]) / cleaner.scale_[0]
    # Transforming does not refit.
    np.testing.assert_array_equal(cleaner.medians_, [35.0, 3.0])


def test_transform_does_not_modify_input(train) -> None:
    before = train.copy()
    FeatureCleaner(FEATURES).fit_transform(train)
    pd.testing.assert_frame_equal(train, before)


def test_constant_feature_gets_scale_one() -> None:
    frame = pd.DataFrame({"Age": [20.0, 30.0, 40.0], "Family_Size": [2.0, np.nan, 2.0]})
    cleaner = FeatureCleaner(FEATURES).fit(frame)
    assert cleaner.scale_[1] == 1.0
    X = cleaner.transform(frame)
    np.testing.assert_array_equal(X[:, 1], [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(cleaner.transform(pd.DataFrame({"Age": [30.0], "Family_Size": [5.0]}))[0], [0.0, 3.0])


def test_inverse_transform_recovers_imputed_values(train) -> None:
    cleaner = FeatureCleaner(FEATURES).fit(train)
    raw = cleaner.inverse_transform(cleaner.transform(train))
    expected = train[FEATURES].fillna({"Age": 35.0, "Family_Size": 3.0}).to_numpy()
    np.testing.assert_allclose(raw, expected, rtol=1e-12)


def test_to_dict_from_dict_round_trip(train) -> None:
    cleaner = FeatureCleaner(FEATURES).fit(train)
    params = json.loads(json.dumps(cleaner.to_dict()))
    assert params["features"] == FEATURES
    rebuilt = FeatureCleaner.from_dict(params)
    new = pd.DataFrame({"Age": [np.nan, 18.0, 77.7], "Family_Size": [5.0, np.nan, 2.0]})
    assert np.array_equal(rebuilt.transform(new), cleaner.transform(new))
    np.testing.assert_array_equal(rebuilt.n_imputed_, cleaner.n_imputed_)
    assert rebuilt.to_dict() == cleaner.to_dict()


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.transform(pd.DataFrame({"Age": [1.0], "Family_Size": [1.0]})),
        lambda c: c.inverse_transform(np.zeros((1, 2))),
        lambda c: c.to_dict(),
    ],
    ids=["transform", "inverse", "to_dict"],
)
def test_unfitted_raises(call) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        call(FeatureCleaner(FEATURES))


def test_all_nan_column_is_data_error() -> None:
    frame = pd.DataFrame({"Age": [20.0, 30.0], "Family_Size": [np.nan, np.nan]})
    with pytest.raises(DataError, match="no observed values in column\\(s\\) Family_Size;"):
        FeatureCleaner(FEATURES).fit(frame)


def test_empty_frame_is_data_error() -> None:
    with pytest.raises(DataError, match="has no rows"):
        FeatureCleaner(FEATURES).fit(pd.DataFrame({"Age": [], "Family_Size": []}, dtype=float))


def test_missing_feature_column_is_data_error(train) -> None:
    cleaner = FeatureCleaner(FEATURES).fit(train)
    with pytest.raises(DataError, match="lacks feature column\\(s\\) Family_Size"):
        cleaner.transform(pd.DataFrame({"Age": [1.0]}))


# --- the learner over partitions -----------------------------------------------------------------


def _fit_over(parts: list[np.ndarray], learner: CleaningFit) -> CleaningFit:
    """What the pipeline does: every request's partial on each partition, added in order."""
    while (request := learner.request()) is not None:
        learner.update(combine([request.partial(part) for part in parts]))
    return learner


@pytest.fixture(scope="module")
def continuous() -> np.ndarray:
    """Skewed money-like columns, every value distinct, some missing."""
    rng = np.random.default_rng(3)
    values = np.column_stack([rng.lognormal(8, 1.2, 30_001), rng.gamma(2.0, 50.0, 30_001)])
    values[rng.random(30_001) < 0.07, 0] = np.nan
    return values


@pytest.mark.parametrize("distinct_limit", [None, 50])
def test_partitions_give_exact_medians_and_deciles(continuous, monkeypatch, distinct_limit) -> None:
    import somseg.stats

    if distinct_limit is not None:  # force the refinement passes, and small windows to gather
        monkeypatch.setattr(somseg.stats, "MAX_DISTINCT", distinct_limit)
        monkeypatch.setattr(somseg.stats, "_GATHER_LIMIT", 40)
    learner = _fit_over(np.array_split(continuous, 7), CleaningFit(["a", "b"]))
    result = learner.result()
    np.testing.assert_array_equal(result.cleaner.medians_, np.nanmedian(continuous, axis=0))
    for c, name in enumerate(["a", "b"]):
        observed = continuous[:, c][~np.isnan(continuous[:, c])]
        np.testing.assert_array_equal(result.feature_reference[name]["edges"], np.unique(np.quantile(observed, DECILES)))
        np.testing.assert_allclose(
            result.feature_reference[name]["shares"], bin_shares(continuous[:, c], np.quantile(observed, DECILES)), atol=1e-15
        )
    np.testing.assert_array_equal(result.cleaner.n_imputed_, np.isnan(continuous).sum(axis=0))


def test_partitions_scale_as_one_table_up_to_rounding(continuous) -> None:
    whole = CleaningFit(["a", "b"])
    fit_in_memory(whole, continuous.copy())
    parts = _fit_over(np.array_split(continuous, 5), CleaningFit(["a", "b"])).result().cleaner
    np.testing.assert_allclose(parts.mean_, whole.result().cleaner.mean_, rtol=1e-13)
    np.testing.assert_allclose(parts.scale_, whole.result().cleaner.scale_, rtol=1e-13)


def test_one_partition_scales_as_standard_scaler_to_the_last_bit(continuous) -> None:
    frame = pd.DataFrame(continuous, columns=["a", "b"])
    cleaner = FeatureCleaner(["a", "b"]).fit(frame)
    imputed = feature_matrix(frame, ["a", "b"])
    np.copyto(imputed, cleaner.medians_, where=np.isnan(imputed))
    scaler = StandardScaler().fit(imputed)
    assert np.array_equal(cleaner.mean_, scaler.mean_) and np.array_equal(cleaner.scale_, scaler.scale_)


def test_a_value_out_of_range_names_the_source_the_column_the_count_and_samples() -> None:
    parts = [np.array([[20.0], [150.0]]), np.array([[30.0], [160.0], [-1.0]])]
    learner = CleaningFit(["Age"], [(18.0, 100.0)], source="input data/customers.csv")
    with pytest.raises(DataError) as failure:
        _fit_over(parts, learner)
    assert str(failure.value) == (
        "input data/customers.csv: column 'Age': 3 row(s) outside the valid range [18.0, 100.0]; "
        "sample values: 150, 160, -1"
    )


def test_the_fused_last_pass_gives_the_same_cleaner_and_the_imputed_training_rows(continuous) -> None:
    from somseg.cleaning import ScalingRequest, impute_partition
    from somseg.stats import CoMoments

    parts = np.array_split(continuous, 4)
    plain = _fit_over(parts, CleaningFit(["a", "b"]))
    fused = CleaningFit(["a", "b"])
    while not isinstance(request := fused.request(), ScalingRequest):
        fused.update(combine([request.partial(part) for part in parts]))
    imputed = [impute_partition(part, request, dedup="never") for part in parts]
    fused.update(combine([partition.partial for partition in imputed]))

    cleaner = fused.result().cleaner
    assert np.array_equal(cleaner.mean_, plain.result().cleaner.mean_)
    assert np.array_equal(cleaner.scale_, plain.result().cleaner.scale_)
    for part, partition in zip(parts, imputed, strict=True):
        # Standardising the kept rows later is the cleaner's transform, to the bit.
        assert np.array_equal(cleaner.standardise_values(partition.block.rows.copy()), cleaner.transform_values(part.copy()))
    moments = combine([partition.moments for partition in imputed]).scaled(cleaner.mean_, cleaner.scale_)
    X = cleaner.transform_values(continuous.copy())
    np.testing.assert_allclose(moments.mean, X.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(moments.covariance(), np.cov(X, rowvar=False, ddof=0), rtol=1e-10)
    assert moments.weight == len(continuous) and isinstance(moments, CoMoments)


def test_the_fused_last_pass_deduplicates_repeated_rows_with_their_counts() -> None:
    from somseg.cleaning import ScalingRequest, impute_partition

    values = np.array([[1.0, 2.0], [1.0, np.nan], [1.0, 2.0], [3.0, 4.0]] * 5)
    request = ScalingRequest(np.array([1.0, 2.0]), (np.array([1.0, 3.0]), np.array([2.0, 4.0])))
    partition = impute_partition(values, request, dedup="always")
    assert partition.block.rows.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert partition.block.weight.tolist() == [15.0, 5.0]
    assert partition.moments.weight == 20


# --- declared transforms ----------------------------------------------------------------


def test_a_log1p_feature_is_imputed_in_raw_units_then_transformed_then_scaled() -> None:
    rng = np.random.default_rng(8)
    money = rng.lognormal(5, 1.5, 400)
    money[::10] = np.nan
    raw = np.column_stack([money, rng.normal(size=400)])
    cleaner = FeatureCleaner(["spend", "z"], transforms=["log1p", "none"]).fit(pd.DataFrame(raw, columns=["spend", "z"]))

    imputed = np.where(np.isnan(raw), np.nanmedian(raw, axis=0), raw)
    expected = np.column_stack([np.log1p(imputed[:, 0]), imputed[:, 1]])
    np.testing.assert_allclose(cleaner.mean_, expected.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(cleaner.scale_, expected.std(axis=0), rtol=1e-12)
    X = cleaner.transform_values(raw.copy())
    np.testing.assert_allclose(X, (expected - expected.mean(axis=0)) / expected.std(axis=0), rtol=1e-10, atol=1e-12)
    # Back to raw units, for a grid of neuron weights as for rows.
    np.testing.assert_allclose(cleaner.inverse_transform(X.reshape(20, 20, 2)).reshape(-1, 2), imputed, rtol=1e-9)
    assert FeatureCleaner.from_dict(cleaner.to_dict()).transforms_in_use == ("log1p", "none")


def test_partitions_give_the_transformed_scaling_of_the_whole_table() -> None:
    rng = np.random.default_rng(9)
    raw = np.column_stack([rng.normal(0, 1e4, 3000), rng.exponential(50, 3000)])
    raw[rng.random(3000) < 0.05, 1] = np.nan
    whole = FeatureCleaner(["balance", "count"], transforms=["signed_log1p", "log1p"])
    whole.fit(pd.DataFrame(raw, columns=["balance", "count"]))
    learner = CleaningFit(["balance", "count"], transforms=["signed_log1p", "log1p"])
    while (request := learner.request()) is not None:
        learner.update(combine([request.partial(chunk) for chunk in np.array_split(raw, 7)]))
    parted = learner.result().cleaner
    np.testing.assert_allclose(parted.mean_, whole.mean_, rtol=1e-12)
    np.testing.assert_allclose(parted.scale_, whole.scale_, rtol=1e-12)
    assert np.all(np.isfinite(whole.transform_values(raw.copy())))


def test_log1p_refuses_values_it_cannot_take_and_names_the_column() -> None:
    frame = pd.DataFrame({"balance": [10.0, -3.0, 5.0, 2.0]})
    with pytest.raises(DataError, match=r"column 'balance': transform log1p needs values above -1, the lowest is -3 "
                                        r"\(signed_log1p takes values of either sign\)"):
        FeatureCleaner(["balance"], transforms=["log1p"]).fit(frame)


def test_a_robust_feature_is_centred_on_its_median_and_scaled_by_its_interquartile_range() -> None:
    rng = np.random.default_rng(10)
    income = rng.normal(50.0, 10.0, 1000)
    income[:5] = 1e7  # a few absurd rows: a standard deviation would squeeze everyone else together
    frame = pd.DataFrame({"income": income, "z": rng.normal(size=1000)})
    cleaner = FeatureCleaner(["income", "z"], transforms=["robust", "none"]).fit(frame)

    q1, median, q3 = np.percentile(income, [25, 50, 75])
    assert cleaner.mean_[0] == median
    np.testing.assert_allclose(cleaner.scale_[0], (q3 - q1) / 1.3489795003921634, rtol=1e-12)
    np.testing.assert_allclose(cleaner.scale_[1], frame["z"].std(ddof=0), rtol=1e-12)  # the others as before
    X = cleaner.transform(frame)
    assert 0.9 < np.std(X[5:, 0]) < 1.1  # the ordinary rows keep a unit spread
    np.testing.assert_allclose(cleaner.inverse_transform(X), frame.to_numpy(), rtol=1e-9)
    rebuilt = FeatureCleaner.from_dict(cleaner.to_dict())
    assert np.array_equal(rebuilt.transform(frame), X)


def test_a_robust_feature_whose_middle_half_is_one_value_keeps_its_standard_deviation() -> None:
    values = np.r_[np.zeros(90), np.arange(1.0, 11.0)]
    cleaner = FeatureCleaner(["spend"], transforms=["robust"]).fit(pd.DataFrame({"spend": values}))
    assert cleaner.mean_[0] == values.mean()
    np.testing.assert_allclose(cleaner.scale_[0], values.std(), rtol=1e-12)


def test_a_quantile_feature_becomes_normal_deviates_of_its_training_ranks() -> None:
    rng = np.random.default_rng(11)
    spend = rng.lognormal(3, 2, 5000)
    cleaner = FeatureCleaner(["spend"], transforms=["quantile"]).fit(pd.DataFrame({"spend": spend}))
    np.testing.assert_array_equal(cleaner.quantiles_[0], np.quantile(spend, QUANTILE_LEVELS))
    X = cleaner.transform(pd.DataFrame({"spend": spend}))[:, 0]
    assert abs(np.mean(X)) < 0.01 and abs(np.std(X) - 1) < 0.01
    assert abs(np.mean(X**3)) < 0.1  # the skew is gone (a log-normal with sigma 2 has a skewness in the hundreds)
    # Monotone, and the median maps to 0 before scaling.
    order = np.argsort(spend)
    assert np.all(np.diff(X[order]) >= 0)
    middle = FeatureCleaner(["spend"], transforms=["quantile"]).fit(pd.DataFrame({"spend": spend}))
    z = middle.impute_values(np.array([[np.median(spend)]]))
    assert abs(z[0, 0]) < 1e-9
    # Back to raw units within the training range; beyond it, the transform saturates.
    # (the normal's far tails lose a few digits: the extremes come back to 1e-4)
    np.testing.assert_allclose(cleaner.inverse_transform(X[:, None])[:, 0], spend, rtol=1e-4)
    far = cleaner.transform(pd.DataFrame({"spend": [spend.max() * 100, -1.0]}))[:, 0]
    assert np.all(np.isfinite(far)) and far[0] > 5 and far[1] < -5


def test_a_quantile_feature_with_a_spike_of_zeros_puts_the_zeros_in_the_middle_of_their_levels() -> None:
    values = np.r_[np.zeros(400), np.arange(1.0, 601.0)]
    cleaner = FeatureCleaner(["spend"], transforms=["quantile"]).fit(pd.DataFrame({"spend": values}))
    z = cleaner.impute_values(np.array([[0.0]]))[0, 0]
    np.testing.assert_allclose(z, scipy_norm_ppf(0.2), atol=0.02)  # the zeros hold levels 0 to 0.4


def scipy_norm_ppf(p: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(p))


def test_robust_and_quantile_partitions_give_the_whole_table_fit() -> None:
    rng = np.random.default_rng(12)
    raw = np.column_stack([rng.normal(0, 1e4, 5000), rng.exponential(50, 5000)])
    raw[rng.random(5000) < 0.05, 1] = np.nan
    names, transforms = ["balance", "count"], ["robust", "quantile"]
    whole = FeatureCleaner(names, transforms=transforms).fit(pd.DataFrame(raw, columns=names))
    learner = CleaningFit(names, transforms=transforms)
    while (request := learner.request()) is not None:
        learner.update(combine([request.partial(chunk) for chunk in np.array_split(raw, 7)]))
    parted = learner.result().cleaner
    assert parted.mean_[0] == whole.mean_[0] == np.median(raw[:, 0])  # order statistics are exact
    np.testing.assert_array_equal(parted.scale_[0], whole.scale_[0])
    np.testing.assert_array_equal(parted.quantiles_[1], whole.quantiles_[1])
    np.testing.assert_allclose(parted.mean_[1], whole.mean_[1], rtol=1e-12)  # sums added in another order
    np.testing.assert_allclose(parted.transform_values(raw.copy()), whole.transform_values(raw.copy()), rtol=1e-10, atol=1e-12)


def test_a_categorical_block_counts_as_one_feature_and_a_missing_level_is_neutral() -> None:
    rng = np.random.default_rng(13)
    level = rng.choice(3, size=3000, p=[0.6, 0.3, 0.1])
    onehot = np.eye(3)[level]
    onehot[:30] = np.nan  # missing together
    raw = np.column_stack([rng.normal(size=3000), onehot])
    names = ["z", "P=a", "P=b", "P=c"]
    cleaner = FeatureCleaner(names, blocks=[[1, 2, 3]]).fit(pd.DataFrame(raw, columns=names))

    shares = np.nanmean(onehot, axis=0)
    np.testing.assert_allclose(cleaner.medians_[1:], shares, rtol=1e-12)  # imputed with the shares
    np.testing.assert_allclose(cleaner.scale_[1:], np.sqrt(1 - np.sum(shares**2)), rtol=1e-9)
    X = cleaner.transform_values(raw.copy())
    np.testing.assert_allclose(X[:30, 1:], 0.0, atol=1e-12)  # a missing level pulls towards none
    # Two random customers differ as much on the block as on a standardised feature, on average.
    pairs = rng.integers(0, 3000, size=(20_000, 2))
    block = np.sum((X[pairs[:, 0], 1:] - X[pairs[:, 1], 1:]) ** 2, axis=1).mean()
    single = np.mean((X[pairs[:, 0], 0] - X[pairs[:, 1], 0]) ** 2)
    assert abs(block - single) / single < 0.1
    rebuilt = FeatureCleaner.from_dict(cleaner.to_dict())
    assert rebuilt.blocks == [[1, 2, 3]]
    np.testing.assert_array_equal(rebuilt.transform_values(raw.copy()), X)


def test_the_pipelines_cleaning_refuses_a_constant_feature_and_names_it() -> None:
    values = np.column_stack([np.full(50, 40.0), np.arange(50.0)])
    values[3, 0] = np.nan  # missing values do not make it vary
    learner = CleaningFit(["Age", "Income"], source="input c.csv", refuse_constant=True)
    with pytest.raises(DataError, match=r"input c.csv: column 'Age' has one value \(40\) in all 49 rows with a value: "
                                        r"it cannot tell customers apart; leave it out of the features"):
        fit_in_memory(learner, values)
    # A level column of a categorical block may be constant (a declared level nobody has): not refused.
    block = np.column_stack([np.ones(50), np.zeros(50), np.arange(50.0)])
    fit_in_memory(CleaningFit(["P=a", "P=b", "x"], blocks=[[0, 1]], refuse_constant=True), block)


def test_values_too_large_to_standardise_are_refused_unless_a_transform_tames_them() -> None:
    values = np.column_stack([np.arange(50.0), np.arange(50.0)])
    values[7, 1] = 1e200
    with pytest.raises(DataError, match=r"column 'Income': values as large as 1e\+200 cannot be standardised "
                                        r"\(their squares overflow\); give the feature a max, or transform"):
        fit_in_memory(CleaningFit(["Age", "Income"], source="input c.csv"), values)
    tamed = CleaningFit(["Age", "Income"], transforms=["none", "log1p"])
    fit_in_memory(tamed, values)
    assert np.isfinite(tamed.result().cleaner.scale_).all()
