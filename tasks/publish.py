"""Publishing: a run's outputs swapped into its folder in one step, or its diagnostics kept on failure."""

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from somseg.config import SegmentationConfig
from somseg.io import named_write_errors, staged_folder
from somseg.results import Provenance, ScoringMetrics, TrainingMetrics
from somseg.runs import stage_scoring_run, stage_training_run, utc_now
from somseg.tasks.catalog import FiguresArtifact, JsonDocument, ModelArtifact, Profiles, SegmentsPart
from somseg.tasks.retries import IO_RETRIES, IO_RETRY_DELAYS, retry_on_io_error

_IO = {"retries": IO_RETRIES, "retry_delay_seconds": IO_RETRY_DELAYS, "retry_condition_fn": retry_on_io_error}


@task(name="publish-run", cache_policy=NO_CACHE, **_IO)
def publish_run(
    out_dir: Path,
    segments: list[SegmentsPart],
    profiles: Profiles,
    validation: JsonDocument,
    model: ModelArtifact,
    metrics: TrainingMetrics,
    config: SegmentationConfig,
    figures: FiguresArtifact,
    rejected: list[Path] | None = None,
    provenance: Provenance | None = None,
) -> Path:
    """Assemble every output and the report beside the run folder, then swap it into place.

    Never cached: the run folder is the product, rewritten even when every
    step before it came from the cache. ``provenance``, when given, goes
    into the run's model bundle, its ``trained_at`` the run's ``finished_at``.
    """
    from somseg.report import build_report  # training only: scoring need not load matplotlib

    finished = utc_now()
    if provenance is not None:
        provenance = provenance.model_copy(update={"trained_at": finished})
    with named_write_errors(f"the output folder {out_dir}"), staged_folder(out_dir) as staging:
        stage_training_run(
            staging, [part.path for part in segments], profiles.path, validation.path, model.path,
            metrics.model_copy(update={"finished_at": finished}), config, rejected, provenance,
        )
        build_report(staging, figures.folder, published_as=out_dir)
    get_run_logger().info("wrote the run's outputs to %s", out_dir)
    return out_dir


@task(name="publish-scores", cache_policy=NO_CACHE, **_IO)
def publish_scores(
    out_dir: Path,
    segments: list[SegmentsPart],
    validation: JsonDocument,
    metrics: ScoringMetrics,
    rejected: list[Path] | None = None,
) -> Path:
    """Swap the scored rows, the validation result, the metrics and the rejected rows (if screened to drop) into the output folder."""
    with named_write_errors(f"the output folder {out_dir}"), staged_folder(out_dir) as staging:
        stage_scoring_run(
            staging, [part.path for part in segments], validation.path, metrics.model_copy(update={"finished_at": utc_now()}),
            rejected,
        )
    get_run_logger().info("wrote the scored segments to %s", out_dir)
    return out_dir
