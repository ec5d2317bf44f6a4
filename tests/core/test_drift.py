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


# --- false alarms: no drift at all, small samples ---------------------------------------------


def _integer_demographics(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame({
        "Age": rng.integers(18, 90, n).astype(float),
        "Work_Experience": np.where(rng.random(n) < 0.1, np.nan, rng.poisson(3, n).astype(float)),
        "Family_Size": rng.integers(1, 9, n).astype(float),
    })


def _skewed_money(rng: np.random.Generator, n: int) -> pd.DataFrame:
    latent = rng.normal(size=(n, 1))
    columns = {}
    for j in range(8):
        values = np.exp(1.5 * (0.6 * latent[:, 0] + 0.8 * rng.normal(size=n)) + j)
        values[rng.random(n) < 0.05] = np.nan
        columns[f"money_{j}"] = values
    return pd.DataFrame(columns)


def _a_scorer(train: pd.DataFrame) -> tuple:
    """The training record, segments and outliers of a table, as a model would give them (KMeans, k = 4)."""
    from sklearn.cluster import KMeans

    from somseg.results import TrainingRecord

    features = list(train.columns)
    filled = train.fillna(train.median())
    z = ((filled - filled.mean()) / filled.std()).to_numpy()
    km = KMeans(4, n_init=3, random_state=0).fit(z)
    distance = np.linalg.norm(z - km.cluster_centers_[km.labels_], axis=1)
    outlier = distance > np.percentile(distance, 95)
    reference = feature_reference(train, features)
    record = TrainingRecord(n_rows=len(train), quantization_error=0.0, topographic_error=0.0,
                            segment_shares=segment_shares(km.labels_, 4).tolist(), feature_reference=reference)
    return record, km.labels_, outlier


def _scored(train: pd.DataFrame, rows: np.ndarray, record, labels: np.ndarray, outlier: np.ndarray):
    from somseg.results import ScoringFigures

    sample = train.iloc[rows]
    return ScoringFigures(
        n_rows=len(rows), quantization_error=0.0, topographic_error=0.0, topographic_error_4=0.0,
        outlier_share=float(outlier[rows].mean()), outlier_threshold=0.0, segments=[],
        segment_psi=population_stability_index(record.segment_shares, segment_shares(labels[rows], 4)),
        feature_psi=feature_drift(sample, record.feature_reference),
    )


@pytest.mark.parametrize("kind", [_integer_demographics, _skewed_money])
def test_resamples_of_the_training_table_raise_almost_no_false_alarms(kind) -> None:
    from somseg.config import DriftGateConfig
    from somseg.gates import judge_drift

    rng = np.random.default_rng(3)
    train = kind(rng, 20_000)
    record, labels, outlier = _a_scorer(train)
    drift = DriftGateConfig()
    for n_rows in (50, 500, 5_000):
        alarms = sum(
            bool(judge_drift(_scored(train, rng.integers(0, len(train), n_rows), record, labels, outlier),
                             record, 0.05, drift).problems)
            for _ in range(200)
        )
        # Without the sampling levels, 50-row resamples alarm in most runs (a feature PSI above 0.25).
        assert alarms / 200 < 0.05, (kind.__name__, n_rows, alarms)


def test_a_real_shift_is_still_found_in_a_few_hundred_rows() -> None:
    from somseg.config import DriftGateConfig
    from somseg.gates import judge_drift

    rng = np.random.default_rng(4)
    train = _skewed_money(rng, 20_000)
    record, labels, outlier = _a_scorer(train)
    rows = rng.integers(0, len(train), 500)
    shifted = train.copy()
    shifted["money_3"] = shifted["money_3"] * 4  # every customer spends four times as much on one thing
    verdict = judge_drift(_scored(shifted, rows, record, labels, outlier), record, 0.05, DriftGateConfig())
    assert verdict.judged and any(problem.startswith("feature money_3 PSI") for problem in verdict.problems)
