"""The run folder: what a training or scoring run hands the user, assembled beside it and swapped in.

:func:`somseg.io.staged_folder` gives a fresh folder beside the output folder;
the functions here fill it. ``segments.parquet`` is one Parquet file for a
table of one partition and a folder of part files (``part-00000.parquet``,
...) for several: pandas, pyarrow and query engines read either as one
table. Large files are hard-linked from the work folder, not copied.
"""

import json
import shutil
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from pydantic import BaseModel

from somseg.config import SegmentationConfig
from somseg.errors import ConfigError
from somseg.gates import map_checks
from somseg.io import (
    RUN_MARKER,
    atomic_path,
    mapped_arrow_table,
    mark_run_folder,
    named_write_errors,
    staged_folder,
    write_json,
)
from somseg.layout import (
    CONFIG_FILE,
    FAILURE_DIR,
    METRICS_FILE,
    MODEL_DIR,
    PROFILES_FILE,
    REJECTED_FILE,
    SEGMENTS_FILE,
    VALIDATION_FILE,
)
from somseg.model import add_provenance
from somseg.results import (
    Evaluation,
    Grid,
    InvalidRowsRecord,
    MapFigures,
    PromotionRecord,
    Provenance,
    Thresholds,
    TrainingMetrics,
    dump_json,
)


def utc_now() -> str:
    """The current time, ISO 8601 in UTC, to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


DATE_FIELD = "{date}"


def parse_run_date(text: str, what: str = "run_date") -> date:
    """A run date given as ``YYYY-MM-DD``.

    Raises
    ------
    ConfigError
        Naming ``what`` if ``text`` is not such a date.
    """
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{what} {text!r} is not a date written YYYY-MM-DD") from None


def dated(template: str, day: date) -> str:
    """``template`` with every ``{date}`` replaced by ``day`` as ``YYYY-MM-DD``.

    A scheduled scoring run names the day's input and its own output folder
    this way (``/data/customers_{date}.csv``, ``runs/daily/{date}``), so that
    each day reads its own file and keeps its own outputs, and a late run
    still reads and writes its own day's.

    Parameters
    ----------
    template : str
        A path, with or without ``{date}``.
    day : date

    Returns
    -------
    str
    """
    return template.replace(DATE_FIELD, day.isoformat())


def stage_segments(staging: Path, parts: Sequence[Path]) -> Path:
    """``segments.parquet`` in ``staging``: the one part itself, or a folder of the parts in order."""
    target = staging / SEGMENTS_FILE
    if len(parts) == 1:
        return link_or_copy(parts[0], target)
    target.mkdir()
    width = max(5, len(str(len(parts))))
    for index, part in enumerate(parts):
        link_or_copy(part, target / f"part-{index:0{width}d}.parquet")
    return target


def stage_rejected(staging: Path, parts: Sequence[Path]) -> Path:
    """``rejected.parquet`` in ``staging``: every partition's records of invalid values, in order, in one file.

    Written part by part, so no more than one partition's records are in
    memory; an input with no invalid row gives a file with no rows.
    """
    target = staging / REJECTED_FILE
    writer: pq.ParquetWriter | None = None
    try:
        for path in parts:
            with mapped_arrow_table(path) as table:
                if writer is None:
                    writer = pq.ParquetWriter(target, table.schema)
                writer.write_table(table.cast(writer.schema))
        if writer is None:  # no partition at all: still a file, so its absence is never ambiguous
            empty = pa.table({name: pa.array([], type=pa.string()) for name in ("id", "column", "value", "reason")})
            pq.write_table(empty, target)
    finally:
        if writer is not None:
            writer.close()
    return target


def stage_training_run(
    staging: Path,
    segments: Sequence[Path],
    profiles: Path,
    validation: Path,
    model_dir: Path,
    metrics: BaseModel,
    config: SegmentationConfig,
    rejected: Sequence[Path] | None = None,
    provenance: Provenance | None = None,
) -> None:
    """Put a training run's outputs (all but the report) into ``staging``; ``rejected`` when rows were screened to drop.

    ``provenance``, when given, is sealed into the copy of the model bundle
    (the bundle in the work folder stays as the cached step wrote it).
    """
    stage_segments(staging, segments)
    if rejected is not None:
        stage_rejected(staging, rejected)
    shutil.copyfile(profiles, staging / PROFILES_FILE)
    shutil.copyfile(validation, staging / VALIDATION_FILE)
    shutil.copytree(model_dir, staging / MODEL_DIR)
    if provenance is not None:
        add_provenance(staging / MODEL_DIR, provenance)
    (staging / METRICS_FILE).write_text(dump_json(metrics), encoding="utf-8")
    (staging / CONFIG_FILE).write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), encoding="utf-8")


def record_promotion(run_dir: Path, promotion: PromotionRecord) -> None:
    """Write a training run's promotion into the ``metrics.json`` its run folder already holds.

    Promotion comes after the run folder is published (a run that fails
    publishing never promotes), so its record is added afterwards; the file
    is replaced whole, by a rename.
    """
    path = run_dir / METRICS_FILE
    metrics = json.loads(path.read_text(encoding="utf-8"))
    metrics["promotion"] = promotion.model_dump(mode="json")
    with named_write_errors(f"the output folder {run_dir}"), atomic_path(path) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")


def stage_scoring_run(
    staging: Path, segments: Sequence[Path], validation: Path, metrics: BaseModel, rejected: Sequence[Path] | None = None
) -> None:
    """Put a scoring run's outputs into ``staging``; ``rejected`` when rows were screened to drop."""
    stage_segments(staging, segments)
    if rejected is not None:
        stage_rejected(staging, rejected)
    shutil.copyfile(validation, staging / VALIDATION_FILE)
    (staging / METRICS_FILE).write_text(dump_json(metrics), encoding="utf-8")


def link_or_copy(source: Path, target: Path) -> Path:
    """Hard-link a file (no second copy of a large output); copy it across file systems."""
    try:
        target.hardlink_to(source)
    except OSError:
        shutil.copy2(source, target)
    return target


def record_failure(
    out_dir: Path,
    files: dict[str, Path],
    figures: dict | None,
    error: BaseException,
    report: Callable[[Path, BaseException], Any] | None = None,
) -> Path | None:
    """Keep a failed run's diagnostics in ``<out>/last_failure/``, touching nothing else.

    A failure before anything was measured (bad input, bad model bundle)
    has no diagnostics, and then nothing at all is written. ``report``, when
    given, writes more into the folder (a report of what was measured); if
    it fails in turn, that is noted in ``report-error.txt`` and the run's own
    error stands.
    """
    files = {name: path for name, path in files.items() if path.is_file()}
    if not files and not figures:
        return None
    folder = out_dir / FAILURE_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    if not (out_dir / RUN_MARKER).exists():
        mark_run_folder(out_dir, files=[])  # a new folder: it holds only the diagnostics
    with staged_folder(folder) as staging:
        for name, path in files.items():
            shutil.copyfile(path, staging / name)
        if figures:
            write_json(staging / METRICS_FILE, figures)
        (staging / "error.txt").write_text(f"{type(error).__name__}: {error}\n", encoding="utf-8")
        if report is not None:
            try:
                report(staging, error)
            except Exception as failure:  # the run's own error is what the user must see
                (staging / "report-error.txt").write_text(f"{type(failure).__name__}: {failure}\n", encoding="utf-8")
    return folder


def training_metrics(
    figures: MapFigures,
    config: Any,
    *,
    source: str,
    n_partitions: int,
    execution: str,
    outlier_share: float | None = None,
    invalid_rows: InvalidRowsRecord | None = None,
    evaluation: Evaluation | None = None,
    durations: dict[str, float] | None = None,
    finished_at: str | None = None,
) -> TrainingMetrics:
    """``metrics.json`` of a training run from the map's figures and the run's config (a SegmentationConfig)."""
    checks = map_checks(figures, config.gates)
    return TrainingMetrics(
        quantization_error=figures.quantization_error,
        topographic_error=figures.topographic_error,
        topographic_error_4=figures.topographic_error_4,
        relative_quantization_error=figures.relative_quantization_error,
        explained_variance=figures.explained_variance,
        dead_neuron_share=figures.dead_neuron_share,
        thresholds=Thresholds(**config.gates.model_dump()),
        gates_passed=all(check.passed for check in checks),
        n_rows=figures.n_rows,
        n_features=len(config.feature_names),
        n_partitions=n_partitions,
        execution=execution,
        grid=Grid(rows=config.som.rows, cols=config.som.cols),
        engine=config.som.engine,
        outlier_threshold=figures.outlier_threshold,
        outlier_percentile=figures.outlier_percentile,
        outlier_share=outlier_share,
        input=source,
        invalid_rows=invalid_rows,
        evaluation=evaluation,
        durations_seconds=durations or {},
        finished_at=finished_at,
    )
