"""The shipped presets deliver what their comments promise on the reference table."""

from pathlib import Path

import numpy as np
import pytest

from somseg.assessment import assess_in_memory
from somseg.cleaning import FeatureCleaner
from somseg.config import load_config
from somseg.dataset import read_table
from somseg.evaluation import evaluate_segmentation
from somseg.segments import cluster_neurons, labelled_profiles
from somseg.som import build_engine

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
REFERENCE_LABELS = {"Early Career Adults", "Senior / Retired", "Established Professionals", "Family-Oriented"}


@pytest.mark.reference
def test_stable_preset_is_stable_accurate_and_keeps_the_reference_labels(reference_table: Path) -> None:
    config = load_config(CONFIGS / "stable.yaml")
    raw = read_table(reference_table, config.id_column, config.feature_names)
    X = FeatureCleaner(config.feature_names).fit_transform(raw)
    weights = build_engine(config.som).fit(X).weights_
    _, figures, partial = assess_in_memory(X, weights, raw[config.feature_names].to_numpy(), sample=np.arange(len(X)))
    neuron_segment = cluster_neurons(weights, config.segments, hits=figures.hits)

    evaluation = evaluate_segmentation(
        partial.sample, weights, neuron_segment, figures, config.som, config.segments, config.evaluation
    ).model_dump(mode="json")
    _, labels = labelled_profiles(figures, neuron_segment, config.feature_names, config.segments.k, config.labels)

    print("stable preset:", {k: evaluation["map"][k] for k in ("quantization_error", "topographic_error_8")},
          "ARI", evaluation["stability"]["mean_ari"], evaluation["stability"]["min_ari"])
    assert evaluation["stability"]["mean_ari"] >= 0.9
    assert evaluation["map"]["quantization_error"] <= 0.40
    assert evaluation["map"]["topographic_error_8"] <= 0.05
    assert set(labels.values()) == REFERENCE_LABELS
