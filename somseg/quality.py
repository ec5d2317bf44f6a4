"""Data-quality results over partitions: combining per-partition validation reports, counting duplicates.

Great Expectations validates each partition (in :mod:`somseg.tasks`); this
module only reads and writes its results as JSON-ready dicts, so the core
does not import it. An expectation's verdict on the whole table is:

* per-row expectations (a value range, not null): the unexpected and
  missing counts of all partitions added up, ``mostly`` judged on the totals;
* row counts: judged on the total row count;
* column existence and schema: met when met in every partition;
* uniqueness: counted across partitions by hashing values into buckets
  (:func:`bucket_values`, :func:`count_duplicates`), never per partition;
* anything else (a column mean, a quantile): taken as is from a table of one
  partition, refused for a table of several (it would need the whole column).
"""

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from somseg import kernels
from somseg.config import SegmentationConfig
from somseg.errors import ConfigError

UNIQUE = "expect_column_values_to_be_unique"
PER_ROW_PREFIX = "expect_column_values_to_"
NOT_NULL = "expect_column_values_to_not_be_null"
ROW_COUNT = ("expect_table_row_count_to_be_between", "expect_table_row_count_to_equal")
SCHEMA = ("expect_column_to_exist", "expect_table_columns_to_match_set", "expect_table_columns_to_match_ordered_list")
_SAMPLE_VALUES = 20
_MESSAGE_SAMPLES = 5


# --- suites -------------------------------------------------------------------------------


def unique_columns(suite: dict[str, Any]) -> list[str]:
    """Columns the suite expects to be unique (checked across partitions, not within each)."""
    return list(dict.fromkeys(e["kwargs"]["column"] for e in suite["expectations"] if e.get("type") == UNIQUE))


def is_per_row(expectation: dict[str, Any]) -> bool:
    """Whether an expectation judges each row of a column on its own (a range, not null, a set)."""
    return expectation.get("type", "").startswith(PER_ROW_PREFIX) and expectation.get("type") != UNIQUE


def partition_suite(suite: dict[str, Any], first: bool) -> dict[str, Any]:
    """The suite a partition is validated against.

    Every partition checks the per-row expectations; the first also checks
    the others (the schema, the row count, aggregates), which every
    partition would answer alike or which are judged on the whole table.
    Uniqueness is counted across partitions instead.
    """
    kept = [e for e in suite["expectations"] if e.get("type") != UNIQUE and (first or is_per_row(e))]
    return {**suite, "expectations": kept}


AUTO_SUITE = "auto"


def suite_from_config(config: SegmentationConfig) -> dict[str, Any]:
    """The expectation suite a config implies (``quality.suite: auto``).

    The id column and every feature must exist; the id is never missing and
    unique; a feature stays within the range the config declares and has at
    most ``quality.max_missing_share`` missing values; the table has at
    least ``quality.min_rows`` rows. The checks the ingest makes are the
    same, so both give the same verdict.

    Parameters
    ----------
    config : SegmentationConfig
        With its features resolved (not empty).

    Returns
    -------
    dict
        A suite as Great Expectations reads it (``name``, ``expectations``).
    """
    def expectation(kind: str, **kwargs: Any) -> dict[str, Any]:
        return {"type": kind, "kwargs": kwargs}

    columns = [config.id_column, *config.feature_names]
    expectations = [expectation("expect_column_to_exist", column=name) for name in columns]
    expectations += [
        expectation("expect_table_row_count_to_be_between", min_value=config.quality.min_rows),
        expectation(NOT_NULL, column=config.id_column),
        expectation(UNIQUE, column=config.id_column),
    ]
    for feature in config.features:
        if feature.min is not None or feature.max is not None:
            expectation_kwargs = {"column": feature.name, "min_value": feature.min, "max_value": feature.max}
            expectations.append(expectation("expect_column_values_to_be_between", **expectation_kwargs))
        if config.quality.max_missing_share < 1:
            # A categorical feature's columns are missing together: its first one speaks for it.
            column = feature.columns[0]
            expectations.append(expectation(NOT_NULL, column=column, mostly=1.0 - config.quality.max_missing_share))
    return {
        "name": AUTO_SUITE,
        "meta": {"description": "Derived from the run's config (quality.suite: auto): columns, id, ranges, missing shares, rows."},
        "expectations": expectations,
    }


def scoring_suite(suite: dict[str, Any]) -> dict[str, Any]:
    """The suite new rows are scored against: the training suite without its row count.

    The row count is a fact about the training table (enough rows to learn
    a map); a scoring run may score any number of customers, down to one.
    """
    kept = [e for e in suite["expectations"] if e.get("type") not in ROW_COUNT]
    return {**suite, "expectations": kept}


# --- duplicates across partitions -------------------------------------------------------------


@dataclass(frozen=True)
class DuplicateCount:
    """Rows of a column, how many are missing, how many share their value with another row, a few such values."""

    n_rows: int
    n_missing: int
    n_duplicated: int
    sample: tuple[Any, ...]

    def __add__(self, other: "DuplicateCount") -> "DuplicateCount":
        return DuplicateCount(
            self.n_rows + other.n_rows,
            self.n_missing + other.n_missing,
            self.n_duplicated + other.n_duplicated,
            (self.sample + other.sample)[:_SAMPLE_VALUES],
        )


@dataclass(frozen=True)
class BucketedValues:
    """A partition's observed values of a column ordered by hash bucket, and where each bucket starts.

    Bucket ``b`` is ``values[offsets[b]:offsets[b + 1]]``; ``hashes`` are the
    values' 64-bit hashes in the same order, which let
    :func:`count_duplicates` compare text by number.
    """

    values: pd.Series
    offsets: np.ndarray
    n_rows: int
    n_missing: int
    hashes: np.ndarray


def bucket_values(values: pd.Series, n_buckets: int) -> BucketedValues:
    """The observed values of a column ordered by hash bucket.

    Equal values always fall in the same bucket, so duplicates across
    partitions meet in one bucket: bucket ``b`` of every partition together
    holds all rows whose value hashes to ``b``, and is counted on its own
    (:func:`count_duplicates`), in memory bounded by a bucket's size.
    """
    if not 1 <= n_buckets <= np.iinfo(np.uint16).max:
        raise ValueError(f"n_buckets must be between 1 and 65535, got {n_buckets}")
    present = values.notna().to_numpy()
    observed = values[present].reset_index(drop=True)
    hashes = value_hashes(observed)
    # Bucket numbers fit 16 bits, which numpy's stable sort orders by radix.
    bucket = (hashes % np.uint64(n_buckets)).astype(np.uint16)
    order = np.argsort(bucket, kind="stable")
    offsets = np.searchsorted(bucket[order], np.arange(n_buckets + 1)).astype(np.int64)
    return BucketedValues(
        observed.iloc[order].reset_index(drop=True), offsets, len(values), int((~present).sum()), hashes[order]
    )


def value_hashes(values: pd.Series) -> np.ndarray:
    """64-bit hashes of a column's values (none missing): equal values, equal hashes.

    Text held by Arrow (pandas' ``str`` dtype) is hashed from its bytes
    (:func:`somseg.kernels.text_hashes`), without making a Python string of
    each value; other columns by pandas. The choice follows the column's
    dtype, which every partition of a table shares, so a value hashes the
    same in all of them.
    """
    if isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow":
        array = pa.array(values.array)
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
            _, offsets, data = array.buffers()
            width = np.int32 if pa.types.is_string(array.type) else np.int64
            offsets = np.frombuffer(offsets, dtype=width)[array.offset : array.offset + len(array) + 1]
            return kernels.text_hashes(offsets, np.frombuffer(data, dtype=np.uint8) if data is not None
                                       else np.empty(0, dtype=np.uint8))
    # Not categorised first: the hashes are the same, and the values of an id column are mostly
    # distinct, which factorising them first only slows down (several-fold for text ids).
    return pd.util.hash_array(values.to_numpy(), categorize=False)


def count_duplicates(values: pa.Array | pa.ChunkedArray, hashes: np.ndarray | None = None) -> DuplicateCount:
    """Duplicated values among ``values`` (every occurrence counts, as Great Expectations counts).

    Numbers are counted by sorting; other values (text IDs) by dictionary
    encoding, of only the values whose hash repeats when their ``hashes``
    (from :func:`bucket_values`) are given: equal values have equal hashes,
    and an ID column's values are mostly distinct, which sorting numbers
    shows far sooner than encoding text. Missing values are not passed here
    (:func:`bucket_values` drops them).
    """
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if pa.types.is_integer(array.type) or pa.types.is_floating(array.type):
        distinct, counts = np.unique(array.to_numpy(zero_copy_only=False), return_counts=True)
        repeated = counts > 1
        sample = distinct[repeated][:_SAMPLE_VALUES].tolist()
    else:
        if hashes is not None:
            if len(hashes) != len(array):
                raise ValueError(f"{len(hashes)} hashes for {len(array)} values")
            ordered = np.sort(hashes)
            candidates = np.isin(hashes, ordered[1:][ordered[1:] == ordered[:-1]])
            array = array.filter(pa.array(candidates))
        encoded = array.dictionary_encode()
        counts = np.bincount(encoded.indices.to_numpy(zero_copy_only=False), minlength=len(encoded.dictionary))
        repeated = counts > 1
        sample = encoded.dictionary.filter(pa.array(repeated)).slice(0, _SAMPLE_VALUES).to_pylist()
    return DuplicateCount(0, 0, int(counts[repeated].sum()), tuple(_plain(v) for v in sample))


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


# --- combining reports ----------------------------------------------------------------------


def combine_reports(
    suite: dict[str, Any], reports: Sequence[dict[str, Any]], duplicates: dict[str, DuplicateCount], n_rows: int
) -> dict[str, Any]:
    """One validation result for the whole table, in the suite's order, from the partitions' results.

    Parameters
    ----------
    suite : dict
        The expectation suite (JSON form).
    reports : sequence of dict
        Each partition's result against its :func:`partition_suite`, results
        in that suite's order (the first partition's suite first).
    duplicates : dict of str to DuplicateCount
        The whole table's count for each column of :func:`unique_columns`.
    n_rows : int
        Rows of the whole table.

    Raises
    ------
    ConfigError
        For an expectation whose partition results cannot be combined
        exactly (a column mean, say) on a table of several partitions.
    """
    results = []
    positions = [0] * len(reports)
    for expectation in suite["expectations"]:
        if expectation.get("type") == UNIQUE:
            results.append(uniqueness_result(expectation, duplicates[expectation["kwargs"]["column"]]))
            continue
        checked = range(len(reports)) if is_per_row(expectation) else range(1)
        parts = [reports[i]["results"][positions[i]] for i in checked]
        for i in checked:
            positions[i] += 1
        results.append(parts[0] if len(reports) == 1 else _combine_result(parts, n_rows, len(reports)))
    statistics = report_statistics(results)
    first = reports[0] if reports else {}
    meta = {**first.get("meta", {}), "partitions": len(reports)}
    return {
        **{k: v for k, v in first.items() if k not in ("results", "statistics", "meta", "success")},
        "suite_name": suite.get("name", "suite"),
        "success": statistics["unsuccessful_expectations"] == 0,
        "statistics": statistics,
        "results": results,
        "meta": meta,
    }


def uniqueness_result(expectation: dict[str, Any], counts: DuplicateCount) -> dict[str, Any]:
    """A uniqueness expectation's result, in Great Expectations' shape, from the table-wide count."""
    kwargs = dict(expectation.get("kwargs", {}))
    considered = counts.n_rows - counts.n_missing
    mostly = float(kwargs.get("mostly", 1.0))
    success = considered == 0 or (considered - counts.n_duplicated) / considered >= mostly
    sample = list(counts.sample)
    return {
        "success": success,
        "expectation_config": {"type": UNIQUE, "kwargs": kwargs, "meta": expectation.get("meta", {})},
        "result": {
            "element_count": counts.n_rows,
            "missing_count": counts.n_missing,
            "missing_percent": _percent(counts.n_missing, counts.n_rows),
            "unexpected_count": counts.n_duplicated,
            "unexpected_percent": _percent(counts.n_duplicated, considered),
            "unexpected_percent_total": _percent(counts.n_duplicated, counts.n_rows),
            "unexpected_percent_nonmissing": _percent(counts.n_duplicated, considered),
            "partial_unexpected_list": sample,
            "partial_unexpected_counts": _value_counts(sample),
            "partial_unexpected_index_list": [],
        },
        "meta": {"counted_by": "somseg.quality.count_duplicates, across all partitions"},
        "exception_info": {"raised_exception": False, "exception_message": None, "exception_traceback": None},
    }


def _combine_result(parts: list[dict[str, Any]], n_rows: int, n_partitions: int) -> dict[str, Any]:
    template = parts[0]
    config = template["expectation_config"]
    kind, kwargs = config["type"], config.get("kwargs", {})
    if kind in SCHEMA:
        # Every partition of the ingested table has the same columns.
        return {**template, "success": all(p["success"] for p in parts)}
    if kind in ROW_COUNT:
        low, high = (kwargs.get("value"),) * 2 if kind == ROW_COUNT[1] else (kwargs.get("min_value"), kwargs.get("max_value"))
        success = (low is None or n_rows >= low) and (high is None or n_rows <= high)
        return {**template, "success": success, "result": {"observed_value": n_rows}}
    if all("unexpected_count" in p.get("result", {}) and "element_count" in p.get("result", {}) for p in parts):
        result = _combine_counts([p["result"] for p in parts], kind)
        return {**template, "success": _mostly_met(result, kind, kwargs.get("mostly", 1.0)), "result": result}
    raise ConfigError(
        f"expectation {kind} on {kwargs.get('column', 'the table')} cannot be judged on a table of "
        f"{n_partitions} partitions (it needs the whole column at once); the suite may hold per-row expectations, "
        "row counts, uniqueness and column existence, or raise execution.partition_rows above the table's rows"
    )


def _combine_counts(results: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    element = sum(r["element_count"] for r in results)
    unexpected = sum(r["unexpected_count"] for r in results)
    sample = [v for r in results for v in r.get("partial_unexpected_list", [])][:_SAMPLE_VALUES]
    combined: dict[str, Any] = {
        "element_count": element,
        "unexpected_count": unexpected,
        "partial_unexpected_list": sample,
        "partial_unexpected_counts": _value_counts(sample),
        # Row indices are local to each partition; listing them would mislead.
        "partial_unexpected_index_list": [],
    }
    if kind == NOT_NULL or not all("missing_count" in r for r in results):
        combined["unexpected_percent"] = _percent(unexpected, element)
        return combined
    missing = sum(r["missing_count"] for r in results)
    combined.update(
        {
            "missing_count": missing,
            "missing_percent": _percent(missing, element),
            "unexpected_percent": _percent(unexpected, element - missing),
            "unexpected_percent_total": _percent(unexpected, element),
            "unexpected_percent_nonmissing": _percent(unexpected, element - missing),
        }
    )
    return combined


def _mostly_met(result: dict[str, Any], kind: str, mostly: float) -> bool:
    # Great Expectations' rule: the share of expected values among those
    # considered (all rows for not-null, the non-missing ones otherwise) is at least 'mostly'.
    considered = result["element_count"] - (0 if kind == NOT_NULL else result.get("missing_count", 0))
    if considered == 0:
        return True
    return (considered - result["unexpected_count"]) / considered >= mostly


def _percent(part: int, whole: int) -> float | None:
    return 100.0 * part / whole if whole else None


def _value_counts(values: list[Any]) -> list[dict[str, Any]]:
    counts = Counter(json.dumps(v, default=str) for v in values)
    return [{"value": json.loads(k), "count": n} for k, n in counts.most_common()]


def report_statistics(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Great Expectations' ``statistics`` block for a list of expectation results."""
    met = sum(bool(r["success"]) for r in results)
    return {
        "evaluated_expectations": len(results),
        "successful_expectations": met,
        "unsuccessful_expectations": len(results) - met,
        "success_percent": 100.0 * met / len(results) if results else 100.0,
    }


# --- messages -----------------------------------------------------------------------------------


def failed_expectations(report: dict[str, Any]) -> list[str]:
    """One line per failed expectation: type, column, unexpected count, sample values."""
    lines = []
    for result in report.get("results", []):
        if result.get("success"):
            continue
        config = result.get("expectation_config", {})
        kwargs = {k: v for k, v in config.get("kwargs", {}).items() if k != "batch_id"}
        column = kwargs.pop("column", None)
        lines.append(_describe_failure(config.get("type", "?"), column, kwargs, result.get("result", {})))
    return lines


def _describe_failure(kind: str, column: str | None, kwargs: dict[str, Any], outcome: dict[str, Any]) -> str:
    where = f"column {column!r}" if column else "table"
    settings = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    parts = [f"{kind} on {where}" + (f" ({settings})" if settings else "")]
    if "unexpected_count" in outcome:
        percent = outcome.get("unexpected_percent") or 0.0
        parts.append(f"{outcome['unexpected_count']} unexpected row(s) ({percent:.2f}%)")
    if outcome.get("partial_unexpected_list"):
        samples = ", ".join(repr(v) for v in outcome["partial_unexpected_list"][:_MESSAGE_SAMPLES])
        parts.append(f"sample values: {samples}")
    if "observed_value" in outcome:
        parts.append(f"observed: {outcome['observed_value']}")
    return "; ".join(parts)


def expectation_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per expectation of a validation result: type, column, verdict, counts."""
    rows = []
    for result in report.get("results", []):
        config = result.get("expectation_config", {})
        outcome = result.get("result", {})
        rows.append(
            {
                "expectation": config.get("type", "?"),
                "column": config.get("kwargs", {}).get("column", "(table)"),
                "success": bool(result.get("success")),
                "unexpected_count": outcome.get("unexpected_count"),
                "unexpected_percent": outcome.get("unexpected_percent"),
                "observed_value": outcome.get("observed_value"),
            }
        )
    return rows
