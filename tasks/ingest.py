"""Ingest: the input table, reduced to the id and the features, as Parquet."""

from pathlib import Path

from prefect import get_run_logger, task

from somseg.io import copy_table
from tasks.caching import CONTENT_CACHE, stage_dir, writing
from tasks.retries import IO_RETRIES, IO_RETRY_DELAYS, retry_on_io_error

RAW_FILE = "raw.arrow"


@task(
    name="ingest-table",
    cache_policy=CONTENT_CACHE,
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_on_io_error,
)
def ingest_table(source: Path, id_column: str, features: list[str], work_dir: str) -> Path:
    """Read a CSV or Parquet table, keeping only the id and feature columns (as an Arrow IPC file)."""
    folder = stage_dir(work_dir, "ingest-table", source=source, id_column=id_column, features=features)
    with writing(folder) as tmp:
        rows = copy_table(source, id_column, features, tmp / RAW_FILE)
    get_run_logger().info("read %d rows and %d features from %s", rows, len(features), source)
    return folder / RAW_FILE
