"""Data quality: Great Expectations before anything is learned from the data."""

from dataclasses import dataclass
from pathlib import Path

from prefect import get_run_logger, task

from somseg.errors import DataQualityError
from somseg.io import read_frame, write_json
from tasks.artifacts import publish_data_quality
from tasks.caching import CONTENT_CACHE, stage_dir, writing
from tasks.expectations import failed_expectations, load_suite, run_suite
from tasks.retries import IO_RETRIES, IO_RETRY_DELAYS, retry_on_io_error

REPORT_FILE = "validation.json"


@dataclass(frozen=True)
class QualityOutcome:
    """Where the full validation result is, and whether every expectation held."""

    report: Path
    success: bool
    failures: tuple[str, ...]
    evaluated: int


@task(
    name="validate-table",
    cache_policy=CONTENT_CACHE,
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_on_io_error,
)
def validate_table(table: Path, suite_path: Path, work_dir: str) -> QualityOutcome:
    """Run the expectation suite and save its full result as JSON."""
    report = run_suite(read_frame(table), load_suite(suite_path))
    folder = stage_dir(work_dir, "validate-table", table=table, suite_path=suite_path)
    with writing(folder) as tmp:
        write_json(tmp / REPORT_FILE, report)
    statistics = report.get("statistics", {})
    outcome = QualityOutcome(
        report=folder / REPORT_FILE,
        success=bool(report.get("success")),
        failures=tuple(failed_expectations(report)),
        evaluated=int(statistics.get("evaluated_expectations", 0)),
    )
    get_run_logger().info(
        "expectations: %d evaluated, %d failed", outcome.evaluated, len(outcome.failures)
    )
    return outcome


@task(name="enforce-expectations")
def enforce_expectations(outcome: QualityOutcome, source: str, suite_name: str) -> None:
    """Stop the run before training if any expectation failed."""
    publish_data_quality(outcome, suite_name)
    if outcome.success:
        return
    details = "\n".join(f"  - {line}" for line in outcome.failures)
    raise DataQualityError(
        f"data quality check failed for {source}: {len(outcome.failures)} of {outcome.evaluated} "
        f"expectation(s) of suite {suite_name!r} failed:\n{details}"
    )
