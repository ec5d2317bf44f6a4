"""Segments: macro-clusters of the neurons, their profiles and their names."""

import numpy as np
import pandas as pd

from somseg.config import LabelsConfig, SegmentsConfig
from somseg.results import MapFigures
from somseg.segments import cluster_neurons, labelled_profiles
from somseg.tasks.catalog import NeuronSegments, Profiles, Store, Weights, step


@step("cluster-neurons", saves=NeuronSegments)
def cluster_segments(store: Store, weights: Weights, figures: MapFigures, segments: SegmentsConfig) -> np.ndarray:
    """Cluster the neurons' weight vectors into macro-segments (SOM-Ward weights them by hits)."""
    return cluster_neurons(weights.load(), segments, hits=figures.hits)


@step("label-segments", saves=Profiles)
def label_segments(
    store: Store,
    figures: MapFigures,
    neuron_segment: NeuronSegments,
    features: list[str],
    k: int,
    labels: LabelsConfig,
    levels: dict[str, str] | None = None,
) -> tuple[pd.DataFrame, dict[int, str]]:
    """Profile each segment over observed raw values and name it by the rules."""
    return labelled_profiles(figures, neuron_segment.load(), features, k, labels, levels)
