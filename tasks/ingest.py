"""Ingest: the input planned as source parts, each read into partitions of the id and the features."""

from prefect import task
from prefect.cache_policies import NO_CACHE

from somseg.config import QualityConfig
from somseg.dataset import Encodings, Partition, SourcePart, plan_input, read_partitions
from somseg.gates import judge_invalid_rows
from somseg.results import InvalidRowsRecord
from somseg.stats import Request
from somseg.tasks.catalog import Store, TablePart, step
from somseg.validity import InvalidRows, RowScreen


@step("plan-input", cache=False, retry_io=True)
def plan(source: str, columns: list[str], partition_rows: int) -> list[SourcePart]:
    """List the input's files and row groups, and fingerprint each file's content."""
    return plan_input(source, columns, partition_rows)


@step("ingest-partition", saves=TablePart, retry_io=True)
def ingest_partition(
    store: Store,
    part: SourcePart,
    id_column: str,
    features: list[str],
    partition_rows: int,
    first_pass: Request | None,
    expressions: dict[str, str] | None = None,
    encodings: Encodings | None = None,
    screen: RowScreen | None = None,
) -> list[Partition]:
    """Read one source part (the id unchanged, the features as float64, derived and coded ones computed), screen out invalid rows, and run a learner's first pass on it."""
    return read_partitions(part, id_column, features, partition_rows, first_pass, expressions, encodings, screen)


@task(name="enforce-valid-rows", cache_policy=NO_CACHE)
def enforce_valid_rows(total: InvalidRows, quality: QualityConfig, source: str) -> InvalidRowsRecord:
    """Stop the run, before anything is validated or learnt, on invalid rows that quality.invalid_rows does not allow."""
    return judge_invalid_rows(total, quality, source)
