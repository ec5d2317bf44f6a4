"""Scoring: load and verify a saved model, segment new rows, check drift."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task

from somseg.config import DriftGateConfig
from somseg.drift import drift_problems
from somseg.errors import DriftError
from somseg.model import SUITE_FILE, SegmentationModel
from somseg.scoring import score_table
from tasks.artifacts import publish_drift_summary
from tasks.caching import CONTENT_CACHE, stage_dir, writing
from tasks.retries import IO_RETRIES, IO_RETRY_DELAYS, retry_on_io_error

SEGMENTS_FILE = "segments.parquet"
SCORE_TIMEOUT_SECONDS = 3600


@dataclass(frozen=True)
class ModelContract:
    """What a new table must provide for the model, and the suite it must pass."""

    id_column: str
    features: list[str]
    suite: Path


@task(
    name="load-model",
    cache_policy=CONTENT_CACHE,
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_on_io_error,
)
def load_model(model_dir: Path) -> ModelContract:
    """Verify the bundle (checksums, format version) and report library versions."""
    model = SegmentationModel.load(model_dir)
    for name, (trained, installed) in model.library_mismatches().items():
        get_run_logger().warning("model trained with %s %s; %s is installed", name, trained, installed)
    return ModelContract(id_column=model.id_column, features=model.feature_names, suite=model_dir / SUITE_FILE)


@dataclass(frozen=True)
class ScoredTable:
    """The scored rows, and the figures of the whole table."""

    segments: Path
    figures: dict[str, Any]


@task(
    name="score-table",
    cache_policy=CONTENT_CACHE,
    timeout_seconds=SCORE_TIMEOUT_SECONDS,
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_on_io_error,
)
def score_new_table(table: Path, model_dir: Path, chunk_rows: int, work_dir: str) -> ScoredTable:
    """Segment every row with the training medians, scaler and map, chunk by chunk."""
    model = SegmentationModel.load(model_dir)
    folder = stage_dir(work_dir, "score-table", table=table, model_dir=model_dir, chunk_rows=chunk_rows)
    with writing(folder) as tmp:
        summary = score_table(model, table, tmp / SEGMENTS_FILE, chunk_rows)
    figures = summary.figures(model)
    get_run_logger().info(
        "scored %d rows: quantization error %.5f, outlier share %.3f, segment PSI %.3f",
        figures["n_rows"], figures["quantization_error"], figures["outlier_share"], figures["segment_psi"],
    )
    return ScoredTable(segments=folder / SEGMENTS_FILE, figures=figures)


@task(name="check-drift")
def check_drift(figures: dict[str, Any], drift: DriftGateConfig) -> list[str]:
    """Warn or fail, as configured, when outliers or PSI cross their limits; show the figures."""
    problems = [] if drift.action == "off" else drift_problems(
        figures, drift.max_outlier_share, drift.max_segment_psi, drift.max_feature_psi
    )
    publish_drift_summary(figures, drift, problems)
    if problems and drift.action == "fail":
        raise DriftError("drift gate failed: " + "; ".join(problems))
    for problem in problems:
        get_run_logger().warning("drift: %s", problem)
    return problems
