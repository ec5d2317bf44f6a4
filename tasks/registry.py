"""The model registry's steps: compare the new labels with the promoted model's, then register and promote."""

import time
from datetime import datetime
from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from somseg.config import ModelWaitConfig, PromotionConfig
from somseg.errors import ModelBundleError
from somseg.registry import Comparison, LabelAgreement, compare_labels, register_and_promote, stale_model
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


@task(name="wait-for-model", cache_policy=NO_CACHE)
def wait_for_model(registry: str, not_before: datetime, wait: ModelWaitConfig) -> str | None:
    """Wait until the registry's promoted version was trained at or after ``not_before``, at most the timeout.

    A daily scoring scheduled after the weekly training thus scores with
    that day's model. Returns None when one came; otherwise, under
    ``on_timeout: use_promoted``, why the promoted version is used all the
    same (logged as a warning), and under ``fail`` it raises.

    Raises
    ------
    ModelBundleError
        Under ``on_timeout: fail``, when no fresh enough version was promoted in time.
    """
    logger = get_run_logger()
    deadline = time.monotonic() + wait.timeout_minutes * 60
    while (why := stale_model(registry, not_before)) is not None:
        left = deadline - time.monotonic()
        if left <= 0:
            message = (f"model registry {registry}: {why}; waited {wait.timeout_minutes:g} minute(s) for a version "
                       f"trained since {not_before.isoformat(timespec='seconds')} (config.model_wait.max_age_hours "
                       f"{wait.max_age_hours:g})")
            if wait.on_timeout == "fail":
                raise ModelBundleError(f"{message}. Check the training run, or promote a version with 'segment promote'")
            logger.warning("%s; scoring with the promoted version (config.model_wait.on_timeout: use_promoted)", message)
            return message
        logger.info("waiting for a fresh model in %s: %s", registry, why)
        time.sleep(min(wait.poll_seconds, left))
    return None
