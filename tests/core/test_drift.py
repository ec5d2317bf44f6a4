"""somseg.drift: binned shares, PSI, feature and segment drift (the reference learnt with the cleaner)."""

import numpy as np
import pandas as pd
import pytest

from somseg.cleaning import CleaningFit
from somseg.drift import bin_shares, population_stability_index, segment_shares
from somseg.stats import fit_in_memory


def feature_reference(frame: pd.DataFrame, features: list[str]) -> dict:
    learner = CleaningFit(features)
    fit_in_memory(learner, frame[features].to_numpy(dtype=float, copy=True))
    return learner.result().feature_reference


def feature_drift(frame: pd.DataFrame, reference: dict) -> dict:
    return {
        name: population_stability_index(ref["shares"], bin_shares(frame[name].to_numpy(dtype=float), ref["edges"]))
        for name, ref in reference.items()
    }


def test_bin_shares_edges_are_right_closed_and_count_missing() -> None:
    values = np.array([0.5, 1.0, 1.5, 2.0, 3.0, np.nan, np.nan, -1.0])
    shares = bin_shares(values, [1.0, 2.0])
    # (-inf, 1], (1, 2], (2, inf), missing
    np.testing.assert_array_equal(shares * 8, [3, 2, 1, 2])
    assert shares.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("n_missing", [0, 3])
def test_bin_shares_sum_to_one(n_missing) -> None:
    values = np.append(np.random.default_rng(0).normal(size=50), [np.nan] * n_missing)
    shares = bin_shares(values, np.linspace(-1, 1, 5))
    assert len(shares) == 5 + 2
    assert shares.sum() == pytest.approx(1.0)
    assert shares[-1] == pytest.approx(n_missing / len(values))


def test_bin_shares_without_edges() -> None:
    np.testing.assert_array_equal(bin_shares(np.array([1.0, np.nan]), []), [0.5, 0.5])


def test_psi_zero_for_identical() -> None:
    shares = [0.1, 0.2, 0.3, 0.4, 0.0]
    assert population_stability_index(shares, shares) == 0.0


def test_psi_hand_value_and_symmetry() -> None:
    expected, actual = [0.5, 0.5], [0.25, 0.75]
    psi = population_stability_index(expected, actual)
    hand = (0.25 - 0.5) * np.log(0.25 / 0.5) + (0.75 - 0.5) * np.log(0.75 / 0.5)
    assert psi == pytest.approx(hand, rel=1e-12)
    assert psi > 0
    assert population_stability_index(actual, expected) == pytest.approx(psi, rel=1e-12)


def test_psi_grows_with_shift_and_stays_finite_on_empty_bins() -> None:
    base = [0.25, 0.25, 0.25, 0.25]
    small = population_stability_index(base, [0.3, 0.25, 0.25, 0.2])
    large = population_stability_index(base, [0.7, 0.1, 0.1, 0.1])
    empty = population_stability_index(base, [1.0, 0.0, 0.0, 0.0])
    assert 0 < small < large < empty < np.inf


@pytest.fixture
def train() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    age = rng.normal(40, 10, size=400)
    age[:20] = np.nan
    return pd.DataFrame({"Age": age, "Family_Size": rng.integers(1, 7, size=400).astype(float)})


def test_feature_reference(train) -> None:
    reference = feature_reference(train, ["Age", "Family_Size"])
    assert list(reference) == ["Age", "Family_Size"]
    age = reference["Age"]
    assert len(age["edges"]) == 9
    np.testing.assert_allclose(age["edges"], np.nanquantile(train["Age"], np.linspace(0.1, 0.9, 9)))
    assert len(age["shares"]) == 9 + 2
    assert age["shares"][-1] == pytest.approx(20 / 400)
    np.testing.assert_allclose(age["shares"][:-1], [0.095] * 10, atol=0.0026)
    # Discrete feature: duplicate deciles collapse.
    fs = reference["Family_Size"]
    assert fs["edges"] == sorted(set(fs["edges"])) and len(fs["edges"]) <= 6
    assert sum(fs["shares"]) == pytest.approx(1.0)


def test_feature_drift(train) -> None:
    reference = feature_reference(train, ["Age", "Family_Size"])
    same = feature_drift(train, reference)
    assert same == {"Age": 0.0, "Family_Size": 0.0}
    shifted = train.assign(Age=train["Age"] + 30)
    drift = feature_drift(shifted, reference)
    assert drift["Age"] > 2.0  # far above the 0.25 "major shift" rule of thumb
    assert drift["Family_Size"] == 0.0
    resampled = train.sample(frac=1.0, replace=True, random_state=3)
    assert feature_drift(resampled, reference)["Age"] < 0.1


def test_segment_shares() -> None:
    np.testing.assert_array_equal(segment_shares(np.array([0, 2, 2, 3]), 5), [0.25, 0.0, 0.5, 0.25, 0.0])
    np.testing.assert_array_equal(segment_shares(np.array([], dtype=np.int64), 2), [0.0, 0.0])


def test_bin_counts_of_chunks_add_up() -> None:
    from somseg.drift import bin_counts

    values = np.append(np.random.default_rng(2).normal(size=30), [np.nan, np.nan])
    edges = [-0.5, 0.0, 0.5]
    whole = bin_counts(values, edges)
    parts = bin_counts(values[:11], edges) + bin_counts(values[11:], edges)
    np.testing.assert_array_equal(whole, parts)
    assert whole.sum() == len(values) and whole[-1] == 2
    np.testing.assert_array_equal(bin_shares(values, edges), whole / len(values))
