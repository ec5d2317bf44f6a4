"""Data quality: Great Expectations on every partition, uniqueness across partitions, one verdict."""

from typing import Any

import numpy as np
import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from somseg.errors import DataQualityError
from somseg.quality import (
    BucketedValues,
    DuplicateCount,
    bucket_values,
    combine_reports,
    count_duplicates,
    failed_expectations,
)
from somseg.tasks.catalog import JsonDocument, Store, TablePart, ValidatedPart, step
from somseg.tasks.expectations import run_suite


@step("validate-partition", saves=ValidatedPart, retry_io=True)
def validate_partition(
    store: Store, part: TablePart, suite: dict[str, Any], unique: list[str], n_buckets: int
) -> tuple[dict[str, Any], dict[str, BucketedValues]]:
    """Run the expectation suite (uniqueness aside) on one partition; bucket its values of the unique columns."""
    frame = part.load()
    buckets = {column: bucket_values(frame[column], n_buckets) for column in unique}
    return run_suite(frame, suite), buckets


@step("count-duplicates")
def count_bucket(parts: list[ValidatedPart], column: str, index: int) -> DuplicateCount:
    """Duplicated values of ``column`` in one bucket of every partition."""
    values, hashes = zip(*(part.bucket(column, index) for part in parts), strict=True)
    return count_duplicates(pa.chunked_array(values), np.concatenate(hashes))


@step("combine-validation", saves=JsonDocument)
def combine_validation(
    store: Store,
    suite: dict[str, Any],
    parts: list[ValidatedPart],
    duplicates: dict[str, DuplicateCount],
    n_rows: int,
) -> dict[str, Any]:
    """One validation result for the whole table, in the suite's order."""
    return combine_reports(suite, [part.report() for part in parts], duplicates, n_rows)


@task(name="enforce-expectations", cache_policy=NO_CACHE)
def enforce_expectations(report: dict[str, Any], source: str, suite_name: str) -> None:
    """Stop the run before anything is learnt if any expectation failed."""
    if report["success"]:
        return
    details = "\n".join(f"  - {line}" for line in failed_expectations(report))
    statistics = report["statistics"]
    raise DataQualityError(
        f"data quality check failed for {source}: {statistics['unsuccessful_expectations']} of "
        f"{statistics['evaluated_expectations']} expectation(s) of suite {suite_name!r} failed "
        f"(quality.suite):\n{details}"
    )
