"""Macro-segments: clustering the map's neurons, then profiling the segments."""

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans

from somseg.config import SegmentsConfig
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
    model = KMeans(n_clusters=config.k, n_init=config.n_init, random_state=config.random_state)
    weight = np.asarray(hits, dtype=np.float64) if config.weight_by_hits and hits is not None else None
    # Dead neurons weigh 0: they do not pull the centres, yet still take a segment.
    return model.fit(flat, sample_weight=weight).labels_.astype(np.int64)


def profile_segments(
    raw: pd.DataFrame, segment: np.ndarray, features: Sequence[str], k: int
) -> pd.DataFrame:
    """Size, share and per-feature statistics of each segment.

    Means and standard deviations (pandas' sample sd, ddof=1) are over the
    *observed* raw values: missing values are skipped, not imputed, as in the
    reference analysis. ``<feature>_imputed`` counts the skipped ones.

    Parameters
    ----------
    raw : DataFrame
        The unscaled input features, NaN where missing.
    segment : ndarray of shape (n_rows,)
        Segment of each row.
    features : sequence of str
    k : int
        Number of segments; a segment with no rows still gets a row (size 0).

    Returns
    -------
    DataFrame
        One row per segment ``0..k-1``: ``segment``, ``size``, ``share``,
        then ``<f>_mean``, ``<f>_sd``, ``<f>_imputed`` for each feature.
    """
    grouped = raw[list(features)].groupby(np.asarray(segment))
    index = pd.RangeIndex(k, name="segment")
    size = grouped.size().reindex(index, fill_value=0)
    profile = pd.DataFrame({"size": size.astype("int64"), "share": size / max(len(raw), 1)}, index=index)
    means = grouped.mean().reindex(index)
    sds = grouped.std(ddof=1).reindex(index)
    missing = raw[list(features)].isna().groupby(np.asarray(segment)).sum().reindex(index, fill_value=0)
    for name in features:
        profile[f"{name}_mean"] = means[name]
        profile[f"{name}_sd"] = sds[name]
        profile[f"{name}_imputed"] = missing[name].astype("int64")
    return profile.reset_index()


def population_stats(raw: pd.DataFrame, features: Sequence[str]) -> pd.DataFrame:
    """Mean and sample sd of each feature over all observed rows (index: feature)."""
    values = raw[list(features)]
    return pd.DataFrame({"mean": values.mean(), "sd": values.std(ddof=1)})
