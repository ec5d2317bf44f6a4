"""Prefect tasks of the Dask flows: each wraps one call of :mod:`somseg.distributed`.

Two kinds of task:

* fan-out tasks (``validate-partition``), mapped over the partitions by the
  flow, so that prefect-dask runs one task run per partition on the workers;
* cluster tasks (cleaning, training, assessment, writing), submitted to the
  flow's ``DaskTaskRunner``; inside, the core's ``dask.compute`` calls go to
  the same cluster through :func:`on_cluster`.

Inputs are partitions (file path, row groups, size and mtime), so cache keys
change when a file is rewritten without reading the dataset to hash it.
Every output lands in ``work_dir``, which (like the output folder) must be
on storage the workers share with the flow.
"""

import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from somseg import distributed
from somseg.config import (
    ExecutionConfig,
    FeatureSpec,
    LabelsConfig,
    OutliersConfig,
    SegmentationConfig,
    SegmentsConfig,
    SomConfig,
)
from somseg.distributed import Partition
from somseg.io import (
    read_npy,
    staged_folder,
    write_json,
    write_npy,
)
from somseg.labels import SegmentLabeller
from somseg.model import SegmentationModel
from somseg.segments import cluster_neurons
from tasks.caching import CONTENT_CACHE, stage_dir, writing
from tasks.expectations import expectation_key, failed_expectations, load_suite, report_statistics, run_suite
from tasks.publish import (
    MODEL_DIR,
    PROFILES_FILE,
    SEGMENTS_FILE,
    stage_training_outputs,
)
from tasks.quality import REPORT_FILE, QualityOutcome
from tasks.retries import IO_RETRIES, IO_RETRY_DELAYS, retry_on_io_error
from tasks.scoring import ScoredTable
from tasks.segments import LabelledSegments

_GX_LOCK = threading.Lock()  # GX's ephemeral contexts are not known to be thread-safe; workers may be threads
_PARTIAL_VALUES = 20
_UNIQUE = "expect_column_values_to_be_unique"
_ROW_COUNT = "expect_table_row_count_to_be_between"
_ROW_COUNT_EQUAL = "expect_table_row_count_to_equal"
_SCHEMA = ("expect_column_to_exist", "expect_table_columns_to_match_set", "expect_table_columns_to_match_ordered_list")
_NOT_NULL = "expect_column_values_to_not_be_null"


def dask_task_runner(execution: ExecutionConfig) -> Any:
    """The ``DaskTaskRunner`` of an execution config: an existing scheduler, or a local cluster."""
    from prefect_dask import DaskTaskRunner

    if execution.scheduler_address:
        return DaskTaskRunner(address=execution.scheduler_address)
    spec = execution.local_cluster
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": spec.n_workers,
            "threads_per_worker": spec.threads_per_worker,
            "memory_limit": spec.memory_limit,
            "processes": spec.processes,
        }
    )


@contextmanager
def on_cluster() -> Iterator[None]:
    """Send this task's ``dask.compute`` calls to the cluster it runs on.

    ``worker_client`` secedes from the worker's thread pool while the task
    waits, so the orchestrating task does not hold a thread the partitions
    need. Outside a Dask worker (a task called with ``.fn()``), Dask's
    current scheduler is used.
    """
    from distributed import get_worker, worker_client

    try:
        get_worker()
    except ValueError:
        yield
        return
    with worker_client() as client, dask.config.set(scheduler=client):
        try:
            yield
        finally:
            client.run(trim_memory)


def trim_memory() -> int:
    """Collect garbage and hand freed heap back to the OS (glibc keeps it otherwise).

    Memory freed by GX runs, pyarrow reads and shuffles stays in the
    process as Dask's "unmanaged memory"; a worker whose unmanaged memory
    crosses the pause threshold (80 % of its limit) stops taking tasks, and
    a task already queued on it then waits for ever.
    """
    import ctypes
    import gc

    gc.collect()
    try:
        return int(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):  # not glibc: nothing to trim
        return 0


# --- the dataset and its validation --------------------------------------------------


@task(
    name="plan-partitions",
    cache_policy=NO_CACHE,
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_on_io_error,
)
def plan_partitions(source: str, columns: list[str], partition_rows: int) -> list[Partition]:
    """List the dataset's Parquet files and group their row groups into partitions (footers only)."""
    partitions = distributed.plan_partitions(distributed.dataset_files(source), columns, partition_rows)
    get_run_logger().info("%s: %d rows in %d partitions", source, sum(p.n_rows for p in partitions), len(partitions))
    return partitions


@task(
    name="validate-partition",
    cache_policy=CONTENT_CACHE,
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_on_io_error,
)
def validate_partition(partition: Partition, suite_path: Path, id_column: str, features: list[str]) -> dict[str, Any]:
    """Run the expectation suite on one partition (combined across partitions by ``combine-validation``)."""
    try:
        return _run_suite_locked(distributed.read_partition(partition, id_column, features), suite_path)
    finally:
        trim_memory()


def _run_suite_locked(frame: pd.DataFrame, suite_path: Path) -> dict[str, Any]:
    # A module function, so that the lock is found by reference when Dask
    # pickles the task (a lock itself cannot be pickled).
    with _GX_LOCK:
        return run_suite(frame, load_suite(suite_path))


@task(name="count-duplicates", cache_policy=CONTENT_CACHE)
def count_duplicates(partitions: list[Partition], column: str) -> tuple[int, list[Any]]:
    """Rows whose value of ``column`` is not unique across the whole dataset (hash-partitioned on the cluster)."""
    files = sorted({Path(p.path) for p in partitions})
    with on_cluster():
        return distributed.count_duplicate_ids(files, column)


def unique_columns(suite_path: Path) -> list[str]:
    """Columns the suite expects to be unique: checked across partitions, not within each."""
    suite = load_suite(suite_path)
    return [e["kwargs"]["column"] for e in suite["expectations"] if e.get("type") == _UNIQUE]


@task(name="combine-validation", cache_policy=NO_CACHE)
def combine_validation(
    reports: list[dict[str, Any]], duplicates: dict[str, tuple[int, list[Any]]], n_rows: int, work_dir: str
) -> QualityOutcome:
    """One validation result for the whole dataset from the per-partition ones."""
    report = combine_reports(reports, duplicates, n_rows)
    folder = stage_dir(work_dir, "combine-validation", reports=reports, duplicates=duplicates, n_rows=n_rows)
    with writing(folder) as tmp:
        write_json(tmp / REPORT_FILE, report)
    outcome = QualityOutcome(
        report=folder / REPORT_FILE,
        success=bool(report["success"]),
        failures=tuple(failed_expectations(report)),
        evaluated=int(report["statistics"]["evaluated_expectations"]),
    )
    get_run_logger().info(
        "expectations over %d partitions: %d evaluated, %d failed",
        len(reports),
        outcome.evaluated,
        len(outcome.failures),
    )
    return outcome


def combine_reports(
    reports: list[dict[str, Any]], duplicates: dict[str, tuple[int, list[Any]]], n_rows: int
) -> dict[str, Any]:
    """Merge per-partition GX results into one of the same shape.

    Per-row expectations add their counts and re-evaluate ``mostly`` on the
    totals; row-count expectations are evaluated on the total row count;
    uniqueness comes from ``duplicates`` (counted across partitions); schema
    expectations hold when they hold in every partition.

    Raises
    ------
    ValueError
        For an expectation whose partition results cannot be combined
        exactly (a column mean, say); it needs a dataset-wide metric.
    """
    first = reports[0]
    results = []
    for position, template in enumerate(first["results"]):
        key = _expectation_key(template)
        parts = [_result_for(report, key, position) for report in reports]
        results.append(_combine_result(template, parts, duplicates, n_rows))
    statistics = report_statistics(results)
    meta = {**first.get("meta", {}), "partitions": len(reports), "combined_by": "somseg.tasks.distributed"}
    success = statistics["unsuccessful_expectations"] == 0
    return {**first, "success": success, "statistics": statistics, "results": results, "meta": meta}


def _expectation_key(result: dict[str, Any]) -> str:
    return expectation_key(result["expectation_config"])


def _result_for(report: dict[str, Any], key: str, position: int) -> dict[str, Any]:
    # GX keeps the suite's order, so the same position is nearly always the same expectation.
    results = report["results"]
    if position < len(results) and _expectation_key(results[position]) == key:
        return results[position]
    return next(r for r in results if _expectation_key(r) == key)


def _combine_result(
    template: dict[str, Any], parts: list[dict[str, Any]], duplicates: dict[str, tuple[int, list[Any]]], n_rows: int
) -> dict[str, Any]:
    config = template["expectation_config"]
    kind, kwargs = config["type"], config.get("kwargs", {})
    if kind in _SCHEMA:
        return {**template, "success": all(p["success"] for p in parts)}
    if kind in (_ROW_COUNT, _ROW_COUNT_EQUAL):
        low, high = (
            (kwargs.get("value"),) * 2
            if kind == _ROW_COUNT_EQUAL
            else (kwargs.get("min_value"), kwargs.get("max_value"))
        )
        success = (low is None or n_rows >= low) and (high is None or n_rows <= high)
        return {**template, "success": success, "result": {"observed_value": n_rows}}
    if all("unexpected_count" in p.get("result", {}) and "element_count" in p.get("result", {}) for p in parts):
        result = _combine_counts([p["result"] for p in parts], kind)
        if kind == _UNIQUE:
            result = _uniqueness(result, *duplicates[kwargs["column"]])
        return {**template, "success": _mostly_met(result, kind, kwargs.get("mostly", 1.0)), "result": result}
    raise ValueError(
        f"expectation {kind} on {kwargs.get('column', 'the table')} cannot be combined across partitions; "
        "the Dask flows support per-row expectations, row counts, uniqueness and column existence"
    )


def _combine_counts(results: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    element = sum(r["element_count"] for r in results)
    unexpected = sum(r["unexpected_count"] for r in results)
    sample = [v for r in results for v in r.get("partial_unexpected_list", [])][:_PARTIAL_VALUES]
    combined: dict[str, Any] = {
        "element_count": element,
        "unexpected_count": unexpected,
        "partial_unexpected_list": sample,
        "partial_unexpected_counts": _value_counts(sample),
        # Row indices are local to each partition; listing them would mislead.
        "partial_unexpected_index_list": [],
    }
    if kind == _NOT_NULL or not all("missing_count" in r for r in results):
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


def _uniqueness(result: dict[str, Any], n_duplicated: int, sample: list[Any]) -> dict[str, Any]:
    considered = result["element_count"] - result.get("missing_count", 0)
    return {
        **result,
        "unexpected_count": n_duplicated,
        "unexpected_percent": _percent(n_duplicated, considered),
        "unexpected_percent_total": _percent(n_duplicated, result["element_count"]),
        "unexpected_percent_nonmissing": _percent(n_duplicated, considered),
        "partial_unexpected_list": sample[:_PARTIAL_VALUES],
        "partial_unexpected_counts": _value_counts(sample[:_PARTIAL_VALUES]),
    }


def _mostly_met(result: dict[str, Any], kind: str, mostly: float) -> bool:
    # GX's rule: the share of expected values among those considered (all
    # rows for not-null, the non-missing ones otherwise) is at least 'mostly'.
    considered = result["element_count"] - (0 if kind == _NOT_NULL else result.get("missing_count", 0))
    if considered == 0:
        return True
    return (considered - result["unexpected_count"]) / considered >= mostly


def _percent(part: int, whole: int) -> float | None:
    return 100.0 * part / whole if whole else None


def _value_counts(values: list[Any]) -> list[dict[str, Any]]:
    counts = Counter(json.dumps(v, default=str) for v in values)
    return [{"value": json.loads(k), "count": n} for k, n in counts.most_common()]


# --- learning over the cluster -------------------------------------------------------------


@dataclass(frozen=True)
class CleaningFit:
    """The fitted cleaner (``cleaner.json``) and the drift reference (``reference.json``)."""

    cleaner: Path
    reference: Path
    n_rows: int


@task(name="fit-cleaning", cache_policy=CONTENT_CACHE)
def fit_cleaning(
    partitions: list[Partition], id_column: str, features: list[FeatureSpec], work_dir: str
) -> CleaningFit:
    """Exact medians and deciles, imputed means and sds, over every partition."""
    with on_cluster():
        statistics = distributed.fit_statistics(partitions, id_column, features)
    folder = stage_dir(work_dir, "fit-cleaning", partitions=partitions, id_column=id_column, features=features)
    with writing(folder) as tmp:
        write_json(tmp / "cleaner.json", statistics.cleaner.to_dict())
        write_json(tmp / "reference.json", statistics.feature_reference)
    return CleaningFit(folder / "cleaner.json", folder / "reference.json", statistics.n_rows)


@task(name="train-som-dask", cache_policy=CONTENT_CACHE)
def train_som(partitions: list[Partition], id_column: str, cleaner: Path, som: SomConfig, work_dir: str) -> Path:
    """Batch SOM: each epoch's per-partition partial sums, reduced on the cluster."""
    with on_cluster():
        weights = distributed.train_batch_som(partitions, id_column, _cleaner(cleaner), som)
    folder = stage_dir(work_dir, "train-som-dask", partitions=partitions, id_column=id_column, cleaner=cleaner, som=som)
    with writing(folder) as tmp:
        write_npy(tmp / "weights.npy", weights)
    get_run_logger().info("trained a %dx%d map over %d partitions", som.rows, som.cols, len(partitions))
    return folder / "weights.npy"


@dataclass(frozen=True)
class DistributedAssessment:
    """The map's figures over the whole dataset (the scalar fields of ``tasks.som.MapAssessment``).

    ``figures`` holds the hits and per-neuron statistics the profiles are
    built from; no per-row array exists in Dask mode.
    """

    figures: Path
    quantization_error: float
    topographic_error: float
    topographic_error_4: float
    outlier_threshold: float
    n_rows: int


@task(name="assess-map-dask", cache_policy=CONTENT_CACHE)
def assess_map(
    partitions: list[Partition], id_column: str, cleaner: Path, weights: Path, outliers: OutliersConfig, work_dir: str
) -> DistributedAssessment:
    """Quantization and topographic errors, outlier threshold and per-neuron statistics."""
    with on_cluster():
        figures = distributed.assess_map(
            partitions, id_column, _cleaner(cleaner), read_npy(weights), outliers.percentile
        )
    folder = stage_dir(
        work_dir,
        "assess-map-dask",
        partitions=partitions,
        id_column=id_column,
        cleaner=cleaner,
        weights=weights,
        outliers=outliers,
    )
    with writing(folder) as tmp:
        distributed.save_map_figures(tmp / "figures.npz", figures)
    get_run_logger().info(
        "quantization error %.5f, topographic error %.5f", figures.quantization_error, figures.topographic_error
    )
    return DistributedAssessment(
        folder / "figures.npz",
        figures.quantization_error,
        figures.topographic_error,
        figures.topographic_error_4,
        figures.outlier_threshold,
        figures.n_rows,
    )


@task(name="cluster-neurons-dask", cache_policy=CONTENT_CACHE)
def cluster_segments(weights: Path, assessment: DistributedAssessment, segments: SegmentsConfig, work_dir: str) -> Path:
    """Cluster the neurons' weight vectors into macro-segments (weighted by their hits where configured)."""
    hits = distributed.load_map_figures(assessment.figures).hits
    neuron_segment = cluster_neurons(read_npy(weights), segments, hits=hits)
    folder = stage_dir(work_dir, "cluster-neurons-dask", weights=weights, assessment=assessment, segments=segments)
    with writing(folder) as tmp:
        write_npy(tmp / "neuron_segment.npy", neuron_segment)
    return folder / "neuron_segment.npy"


@task(name="label-segments-dask", cache_policy=CONTENT_CACHE)
def label_segments(
    assessment: DistributedAssessment,
    neuron_segment: Path,
    features: list[str],
    k: int,
    labels: LabelsConfig,
    work_dir: str,
) -> LabelledSegments:
    """Profile each segment from the per-neuron statistics and name it by the rules."""
    figures = distributed.load_map_figures(assessment.figures)
    profiles = distributed.profile_segments(figures, read_npy(neuron_segment), features, k)
    labeller = SegmentLabeller(labels.rules, labels.fallback_min_z).fit(
        profiles, distributed.population_stats(figures, features)
    )
    profiles.insert(1, "label", profiles["segment"].map(labeller.labels_))
    profiles.insert(2, "named_by_rule", profiles["segment"].map(lambda s: labeller.rule_of_[s] is not None))
    folder = stage_dir(
        work_dir,
        "label-segments-dask",
        assessment=assessment,
        neuron_segment=neuron_segment,
        features=features,
        k=k,
        labels=labels,
    )
    with writing(folder) as tmp:
        profiles.to_parquet(tmp / PROFILES_FILE, index=False)
    return LabelledSegments(profiles=folder / PROFILES_FILE, labels=labeller.labels_)


@task(name="build-model-dask", cache_policy=CONTENT_CACHE)
def build_model(
    cleaning: CleaningFit,
    weights: Path,
    neuron_segment: Path,
    segments: LabelledSegments,
    assessment: DistributedAssessment,
    suite_path: Path,
    config: SegmentationConfig,
    work_dir: str,
) -> Path:
    """The model bundle, as the local flow builds it, from the dataset-wide figures."""
    model = SegmentationModel(
        id_column=config.id_column,
        features=[feature.model_dump() for feature in config.features],
        cleaner=_cleaner(cleaning.cleaner),
        weights=read_npy(weights),
        neuron_segment=read_npy(neuron_segment),
        labels=segments.labels,
        outlier_threshold=assessment.outlier_threshold,
        suite=json.loads(suite_path.read_text(encoding="utf-8")),
        training={
            "n_rows": assessment.n_rows,
            "quantization_error": assessment.quantization_error,
            "topographic_error": assessment.topographic_error,
            "segment_shares": pd.read_parquet(segments.profiles)["share"].tolist(),
            "feature_reference": json.loads(cleaning.reference.read_text(encoding="utf-8")),
        },
        config=config.model_dump(mode="json"),
    )
    folder = stage_dir(
        work_dir,
        "build-model-dask",
        cleaning=cleaning,
        weights=weights,
        neuron_segment=neuron_segment,
        segments=segments,
        assessment=assessment,
        suite_path=suite_path,
        config=config,
    )
    with writing(folder) as tmp:
        model.save(tmp / MODEL_DIR)
    return folder / MODEL_DIR


@task(
    name="write-segments-dask",
    cache_policy=CONTENT_CACHE,
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_on_io_error,
)
def write_segments(partitions: list[Partition], model_dir: Path, work_dir: str) -> ScoredTable:
    """Score every partition with the model and write one Parquet file per partition."""
    model = SegmentationModel.load(model_dir)
    folder = stage_dir(work_dir, "write-segments-dask", partitions=partitions, model_dir=model_dir)
    with writing(folder) as tmp, on_cluster():
        summary = distributed.write_segments(partitions, model, tmp / SEGMENTS_FILE)
    figures = summary.figures(model)
    get_run_logger().info(
        "wrote %d rows in %d files: quantization error %.5f, outlier share %.3f",
        figures["n_rows"],
        len(partitions),
        figures["quantization_error"],
        figures["outlier_share"],
    )
    return ScoredTable(segments=folder / SEGMENTS_FILE, figures=figures)


def _cleaner(path: Path) -> Any:
    from somseg.cleaning import FeatureCleaner

    return FeatureCleaner.from_dict(json.loads(path.read_text(encoding="utf-8")))


# --- publishing -----------------------------------------------------------------------------


@task(
    name="publish-run-dask",
    cache_policy=NO_CACHE,
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_on_io_error,
)
def publish_run(
    out_dir: Path,
    segments: Path,
    labelled: LabelledSegments,
    validation: Path,
    model_dir: Path,
    metrics: dict[str, Any],
    config: SegmentationConfig,
) -> Path:
    """Assemble the run folder beside ``out_dir`` and swap it in; ``segments.parquet`` is a folder of part files."""
    with staged_folder(out_dir) as staging:
        stage_training_outputs(staging, segments, labelled, validation, model_dir, metrics, config)
    get_run_logger().info("wrote the run's outputs to %s", out_dir)
    return out_dir


