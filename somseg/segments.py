"""Macro-segments: clustering the map's neurons, then profiling the segments."""

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from somseg.config import LabelsConfig, SegmentsConfig
from somseg.labels import SegmentLabeller
from somseg.results import MapFigures
from somseg.ward import SomWard


def cluster_neurons(weights: np.ndarray, config: SegmentsConfig, hits: np.ndarray | None = None) -> np.ndarray:
    """Group the neurons' weight vectors into ``config.k`` segments.

    Parameters
    ----------
    weights : ndarray of shape (rows, cols, n_features)
    config : SegmentsConfig
    hits : ndarray of shape (rows * cols,), optional
        Training rows won by each neuron (row-major). ``'ward'`` always uses
        them as neuron weights, KMeans when ``config.weight_by_hits``;
        without them every neuron weighs the same.

    Returns
    -------
    ndarray of int64, shape (rows * cols,)
        Segment of each neuron, in row-major neuron order.
    """
    if config.method == "ward":
        return SomWard(n_clusters=config.k).fit(weights, sample_weight=hits).labels_
    flat = np.asarray(weights, dtype=np.float64).reshape(-1, weights.shape[-1])
    if config.method != "kmeans":
        raise ValueError(f"unknown clustering method {config.method!r}")
    # Imported here: scoring loads this module but never clusters.
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters=config.k, n_init=config.n_init, random_state=config.random_state)
    weight = np.asarray(hits, dtype=np.float64) if config.weight_by_hits and hits is not None else None
    # Dead neurons weigh 0: they do not pull the centres, yet still take a segment.
    return model.fit(flat, sample_weight=weight).labels_.astype(np.int64)


def profile_segments(figures: MapFigures, neuron_segment: np.ndarray, features: Sequence[str], k: int) -> pd.DataFrame:
    """Size, share and per-feature statistics of each segment, from the per-neuron statistics.

    Means and standard deviations (sample sd, ddof=1) are over the
    *observed* raw values: missing values are skipped, not imputed, as in
    the reference analysis. ``<feature>_imputed`` counts the skipped ones.
    Each segment's statistics merge those of its neurons, so profiles cost
    nothing more than the assessment pass, for any clustering.

    Parameters
    ----------
    figures : MapFigures
        Hits, and moments and missing counts of the raw features per neuron.
    neuron_segment : ndarray of shape (rows * cols,)
        Segment of each neuron.
    features : sequence of str
    k : int
        Number of segments; a segment with no rows still gets a row (size 0).

    Returns
    -------
    DataFrame
        One row per segment ``0..k-1``: ``segment``, ``size``, ``share``,
        then ``<f>_mean``, ``<f>_sd``, ``<f>_imputed`` for each feature.
    """
    segment_of = np.asarray(neuron_segment, dtype=np.int64)
    size = np.bincount(segment_of, weights=figures.hits, minlength=k).astype(np.int64)
    moments = figures.neuron_moments.grouped(segment_of, k)
    sd = moments.sample_sd()
    missing = np.stack([np.bincount(segment_of, figures.neuron_missing[:, c], k) for c in range(len(features))], axis=1)
    profile = pd.DataFrame(
        {"segment": np.arange(k, dtype=np.int64), "size": size, "share": size / max(figures.n_rows, 1)}
    )
    for c, name in enumerate(features):
        profile[f"{name}_mean"] = np.where(moments.n[:, c] > 0, moments.mean[:, c], np.nan)
        profile[f"{name}_sd"] = sd[:, c]
        profile[f"{name}_imputed"] = missing[:, c].astype(np.int64)
    return profile


def population_stats(figures: MapFigures, features: Sequence[str]) -> pd.DataFrame:
    """Mean and sample sd of each feature over all observed rows (index: feature)."""
    whole = figures.neuron_moments.grouped(np.zeros(len(figures.hits), dtype=np.int64), 1)
    mean = np.where(whole.n[0] > 0, whole.mean[0], np.nan)
    return pd.DataFrame({"mean": mean, "sd": whole.sample_sd()[0]}, index=list(features))


def labelled_profiles(
    figures: MapFigures,
    neuron_segment: np.ndarray,
    features: Sequence[str],
    k: int,
    labels: LabelsConfig,
    levels: Mapping[str, str] | None = None,
) -> tuple[pd.DataFrame, dict[int, str]]:
    """The segment profiles, each named by the label rules (``label`` and ``named_by_rule`` columns).

    ``levels`` names the one-hot columns of categorical features (see
    :class:`somseg.labels.SegmentLabeller`).

    Returns
    -------
    profiles : DataFrame
        :func:`profile_segments` with ``label`` and ``named_by_rule`` after ``segment``.
    labels : dict of int to str
        The name of each segment.
    """
    profiles = profile_segments(figures, neuron_segment, features, k)
    labeller = SegmentLabeller(labels.rules, labels.fallback_min_z, levels).fit(profiles, population_stats(figures, features))
    profiles.insert(1, "label", profiles["segment"].map(labeller.labels_))
    profiles.insert(2, "named_by_rule", profiles["segment"].map(lambda s: labeller.rule_of_[s] is not None))
    return profiles, labeller.labels_
