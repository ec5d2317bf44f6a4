"""somseg.cleaning: median imputation and standardisation fitted on training data."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import StandardScaler

from somseg.cleaning import FeatureCleaner
from somseg.errors import DataError

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
    with pytest.raises(DataError, match="no observed values in column\\(s\\) Family_Size$"):
        FeatureCleaner(FEATURES).fit(frame)


def test_empty_frame_is_data_error() -> None:
    with pytest.raises(DataError, match="Age, Family_Size"):
        FeatureCleaner(FEATURES).fit(pd.DataFrame({"Age": [], "Family_Size": []}, dtype=float))


def test_missing_feature_column_is_data_error(train) -> None:
    cleaner = FeatureCleaner(FEATURES).fit(train)
    with pytest.raises(DataError, match="lacks feature column\\(s\\) Family_Size"):
        cleaner.transform(pd.DataFrame({"Age": [1.0]}))
