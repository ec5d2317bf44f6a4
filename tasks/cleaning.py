"""Cleaning: the passes that learn medians, scaling and deciles; the last one also readies each partition to train on."""

from typing import Any

from somseg.cleaning import ImputedPartition, ScalingRequest, TrainingStatistics, impute_partition
from somseg.kernels import DedupMode
from somseg.stats import WindowRequest
from somseg.tasks.catalog import Cleaning, ImputedPart, Store, TablePart, step


@step("cleaning-pass")
def cleaning_pass(request: WindowRequest, part: TablePart, features: list[str]) -> Any:
    """A refinement pass of the exact medians and deciles over one partition's raw features."""
    return request.partial(part.features(features, order="F"))  # column by column: columns contiguous


@step("impute-partition", saves=ImputedPart)
def impute(
    store: Store, request: ScalingRequest, part: TablePart, features: list[str], dedup: DedupMode
) -> tuple[ImputedPartition, TablePart]:
    """The last cleaning pass over one partition, with its imputed rows to train on, deduplicated if worth it."""
    return impute_partition(part.features(features), request, dedup), part


@step("save-cleaning", saves=Cleaning)
def save_cleaning(store: Store, statistics: TrainingStatistics) -> TrainingStatistics:
    """Keep the fitted cleaner and the drift reference."""
    return statistics
