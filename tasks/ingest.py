"""Ingest: the input planned as source parts, each read into partitions of the id and the features."""

from somseg.dataset import Encodings, Partition, SourcePart, plan_input, read_partitions
from somseg.stats import Request
from somseg.tasks.catalog import Store, TablePart, step


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
) -> list[Partition]:
    """Read one source part (the id unchanged, the features as float64, derived and coded ones computed), and a learner's first pass on it."""
    return read_partitions(part, id_column, features, partition_rows, first_pass, expressions, encodings)
