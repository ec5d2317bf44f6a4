"""The model bundle: built from a training run's artifacts, or loaded, verified and kept for scoring."""

from typing import Any

from prefect import get_run_logger

from somseg.config import SegmentationConfig
from somseg.model import BundleSource, SegmentationModel
from somseg.results import MapFigures
from somseg.tasks.catalog import Cleaning, ModelArtifact, NeuronSegments, Profiles, Store, Weights, step


@step("build-model", saves=ModelArtifact)
def build_model(
    store: Store,
    cleaning: Cleaning,
    weights: Weights,
    neuron_segment: NeuronSegments,
    profiles: Profiles,
    figures: MapFigures,
    suite: dict[str, Any],
    config: SegmentationConfig,
) -> SegmentationModel:
    """Bundle all that scoring new customers needs."""
    shares: list[float] = profiles.load()["share"].tolist()
    return SegmentationModel.from_training(
        config, cleaning.load(), weights.load(), neuron_segment.load(), profiles.labels, shares, figures, suite
    )


@step("load-model", saves=ModelArtifact, retry_io=True)
def load_model(store: Store, bundle: BundleSource) -> SegmentationModel:
    """Verify a bundle (checksums, format version) and keep a copy in the work folder."""
    model = SegmentationModel.load(bundle.path)
    for name, (trained, installed) in model.library_mismatches().items():
        get_run_logger().warning("model trained with %s %s; %s is installed", name, trained, installed)
    return model


