"""The model registry's steps: compare the new labels with the promoted model's, then register and promote."""

from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from somseg.config import PromotionConfig
from somseg.registry import Comparison, LabelAgreement, compare_labels, register_and_promote
from somseg.results import PromotionRecord
from somseg.runs import utc_now
from somseg.scoring import score_frame
from somseg.tasks.catalog import ModelArtifact, SegmentsPart, TablePart, step
from somseg.tasks.retries import IO_RETRIES, IO_RETRY_DELAYS, retry_on_io_error


@step("compare-labels", retry_io=True)
def compare_partition(part: TablePart, segments: SegmentsPart, model: ModelArtifact) -> LabelAgreement:
    """A partition's training rows: how many keep their segment label under ``model`` (the promoted version)."""
    promoted = model.load()
    before, _ = score_frame(promoted, part.load())
    after = pd.read_parquet(segments.path, columns=["segment_label"])["segment_label"]
    return compare_labels(before["segment_label"].to_numpy(dtype=object), after.to_numpy(dtype=object))


@task(name="promote-model", cache_policy=NO_CACHE, retries=IO_RETRIES, retry_delay_seconds=IO_RETRY_DELAYS,
      retry_condition_fn=retry_on_io_error)
def promote_model(
    registry: str,
    bundle: Path,
    promotion: PromotionConfig,
    gates_passed: bool,
    comparison: Comparison | None,
) -> PromotionRecord:
    """Register the published run's model as a new version, and promote it unless the rules say otherwise.

    Never cached: it changes the registry. A retry finds the version already
    registered (and promoted, if it was) and does not add it twice. A
    refused promotion is not an error: it is logged as a warning and recorded.
    """
    record = register_and_promote(registry, bundle, promotion, gates_passed, comparison, utc_now())
    logger = get_run_logger()
    if record.promoted:
        logger.info("model version %s registered and promoted in %s (%s)", record.version, record.registry, record.reason)
    else:
        logger.warning("model version %s registered in %s but not promoted: %s; scoring keeps using %s",
                       record.version, record.registry, record.reason, record.current or "no version")
    return record
