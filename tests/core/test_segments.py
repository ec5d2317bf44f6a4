"""somseg.segments: clustering neurons and profiling segments."""

import numpy as np
import pandas as pd
import pytest

from somseg.config import SegmentsConfig
from somseg.results import MapFigures
from somseg.segments import cluster_neurons, population_stats
from somseg.segments import profile_segments as profile_from_neurons
from somseg.stats import Moments


def _figures(raw: pd.DataFrame, neuron: np.ndarray, n_units: int) -> MapFigures:
    """What the assessment pass gathers, for rows whose best unit is ``neuron``."""
    values = raw[FEATURES].to_numpy(dtype=float)
    missing = np.stack([np.bincount(neuron, np.isnan(values[:, c]), n_units) for c in range(len(FEATURES))], axis=1)
    nan = float("nan")
    return MapFigures(
        n_rows=len(raw), quantization_error=nan, topographic_error=nan, topographic_error_4=nan,
        explained_variance=nan, kaski_lagus_error=nan, outlier_threshold=nan, outlier_percentile=95.0,
        hits=np.bincount(neuron, minlength=n_units), neuron_moments=Moments.of(values, neuron, n_units),
        neuron_missing=missing.astype(np.int64),
    )


def profile_segments(raw: pd.DataFrame, segment: np.ndarray, features: list[str], k: int) -> pd.DataFrame:
    """Profiles of rows whose segment is ``segment``: one neuron per segment."""
    return profile_from_neurons(_figures(raw, segment, k), np.arange(k), features, k)

FEATURES = ["Age", "Family_Size"]


@pytest.fixture
def weights() -> np.ndarray:
    # A 4x4 map whose neurons form 4 well separated groups (one per quadrant).
    rng = np.random.default_rng(0)
    W = np.empty((4, 4, 2))
    for r in range(4):
        for c in range(4):
            W[r, c] = [10.0 * (r // 2), 10.0 * (c // 2)] + 0.1 * rng.normal(size=2)
    return W


def test_cluster_neurons_shape_and_values(weights) -> None:
    labels = cluster_neurons(weights, SegmentsConfig(k=4, n_init=5))
    assert labels.shape == (16,) and labels.dtype == np.int64
    assert set(labels.tolist()) == {0, 1, 2, 3}
    quadrant = np.array([2 * (r // 2) + (c // 2) for r in range(4) for c in range(4)])
    # Same partition as the quadrants, whatever the numbering.
    for q in range(4):
        assert len(set(labels[quadrant == q].tolist())) == 1
    assert len({labels[quadrant == q][0] for q in range(4)}) == 4


def test_cluster_neurons_deterministic(weights) -> None:
    config = SegmentsConfig(k=3, n_init=5, random_state=1)
    first = cluster_neurons(weights, config)
    np.testing.assert_array_equal(first, cluster_neurons(weights, config))
    assert first.min() >= 0 and first.max() <= 2


@pytest.fixture
def raw() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Age": [20.0, 30.0, np.nan, 60.0, 70.0, 65.0, 40.0],
            "Family_Size": [1.0, 3.0, 2.0, np.nan, np.nan, 2.0, 5.0],
            "Other": list("abcdefg"),
        },
        index=[10, 11, 12, 13, 14, 15, 16],
    )


SEGMENT = np.array([0, 0, 0, 2, 2, 2, 3])  # segment 1 is empty


def test_profile_segments_matches_pandas_groupby(raw) -> None:
    profile = profile_segments(raw, SEGMENT, FEATURES, k=4)
    expected_cols = ["segment", "size", "share"] + [
        f"{f}_{s}" for f in FEATURES for s in ("mean", "sd", "imputed")
    ]
    assert list(profile.columns) == expected_cols
    assert profile["segment"].tolist() == [0, 1, 2, 3]
    assert profile["size"].tolist() == [3, 0, 3, 1]
    assert profile["size"].dtype == np.int64
    np.testing.assert_allclose(profile["share"], [3 / 7, 0.0, 3 / 7, 1 / 7])

    frame = raw[FEATURES].reset_index(drop=True).assign(seg=SEGMENT)
    grouped = frame.groupby("seg")
    for feature in FEATURES:
        means = grouped[feature].mean().reindex(range(4))
        sds = grouped[feature].std(ddof=1).reindex(range(4))
        nas = grouped[feature].apply(lambda s: int(s.isna().sum())).reindex(range(4), fill_value=0)
        np.testing.assert_allclose(profile[f"{feature}_mean"], means.to_numpy(), equal_nan=True)
        np.testing.assert_allclose(profile[f"{feature}_sd"], sds.to_numpy(), equal_nan=True)
        assert profile[f"{feature}_imputed"].tolist() == nas.tolist()
        assert profile[f"{feature}_imputed"].dtype == np.int64


def test_profile_segments_hand_values(raw) -> None:
    profile = profile_segments(raw, SEGMENT, FEATURES, k=4).set_index("segment")
    # Observed values only: the NaN is skipped, not imputed.
    assert profile.loc[0, "Age_mean"] == 25.0
    assert profile.loc[0, "Age_sd"] == pytest.approx(np.std([20.0, 30.0], ddof=1))
    assert profile.loc[0, "Age_imputed"] == 1
    assert profile.loc[2, "Family_Size_mean"] == 2.0
    assert profile.loc[2, "Family_Size_imputed"] == 2
    assert np.isnan(profile.loc[2, "Family_Size_sd"])  # one observed value
    assert np.isnan(profile.loc[3, "Age_sd"])  # one row


def test_empty_segment_row(raw) -> None:
    row = profile_segments(raw, SEGMENT, FEATURES, k=5).set_index("segment").loc[1]
    assert row["size"] == 0 and row["share"] == 0.0
    assert np.isnan(row["Age_mean"]) and np.isnan(row["Age_sd"])
    assert row["Age_imputed"] == 0 and row["Family_Size_imputed"] == 0


def test_profile_has_k_rows_even_when_trailing_segments_empty(raw) -> None:
    profile = profile_segments(raw, SEGMENT, FEATURES, k=6)
    assert profile["segment"].tolist() == list(range(6))
    assert profile["size"].sum() == len(raw)
    assert profile["share"].sum() == pytest.approx(1.0)


def test_neurons_merge_into_their_segments(raw) -> None:
    neuron = np.array([0, 1, 1, 2, 3, 3, 4])  # five neurons, two per segment but the last
    merged = profile_from_neurons(_figures(raw, neuron, 5), np.array([0, 0, 2, 2, 3]), FEATURES, 4)
    pd.testing.assert_frame_equal(merged, profile_segments(raw, SEGMENT, FEATURES, k=4), rtol=1e-12)


def test_population_stats(raw) -> None:
    stats = population_stats(_figures(raw, SEGMENT, 4), FEATURES)
    assert list(stats.index) == FEATURES
    assert list(stats.columns) == ["mean", "sd"]
    observed_age = [20.0, 30.0, 60.0, 70.0, 65.0, 40.0]
    assert stats.loc["Age", "mean"] == pytest.approx(np.mean(observed_age))
    assert stats.loc["Age", "sd"] == pytest.approx(np.std(observed_age, ddof=1))
    assert stats.loc["Family_Size", "mean"] == pytest.approx(13.0 / 5)
