"""The run's outputs: the model bundle, per-customer segments, and the run folder."""

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from somseg.cleaning import FeatureCleaner
from somseg.config import SegmentationConfig
from somseg.drift import feature_reference
from somseg.io import (
    RUN_MARKER,
    read_frame,
    read_npy,
    staged_folder,
    write_json,
    write_parquet,
)
from somseg.layout import (
    CONFIG_FILE,
    FAILURE_DIR,
    METRICS_FILE,
    MODEL_DIR,
    PROFILES_FILE,
    SEGMENTS_DICTIONARY_COLUMNS,
    SEGMENTS_FILE,
    VALIDATION_FILE,
)
from somseg.model import SegmentationModel
from tasks.caching import CONTENT_CACHE, stage_dir, writing
from tasks.retries import IO_RETRIES, IO_RETRY_DELAYS, retry_on_io_error
from tasks.segments import LabelledSegments
from tasks.som import MapAssessment


@task(name="build-model", cache_policy=CONTENT_CACHE)
def build_model(
    table: Path,
    cleaner: Path,
    weights: Path,
    neuron_segment: Path,
    segments: LabelledSegments,
    assessment: MapAssessment,
    suite_path: Path,
    config: SegmentationConfig,
    work_dir: str,
) -> Path:
    """Bundle all that scoring new customers needs into a model folder."""
    raw = read_frame(table, config.feature_names)
    profiles = pd.read_parquet(segments.profiles)
    model = SegmentationModel(
        id_column=config.id_column,
        features=[feature.model_dump() for feature in config.features],
        cleaner=FeatureCleaner.from_dict(json.loads(cleaner.read_text(encoding="utf-8"))),
        weights=read_npy(weights),
        neuron_segment=read_npy(neuron_segment),
        labels=segments.labels,
        outlier_threshold=assessment.outlier_threshold,
        suite=json.loads(suite_path.read_text(encoding="utf-8")),
        training={
            "n_rows": assessment.n_rows,
            "quantization_error": assessment.quantization_error,
            "topographic_error": assessment.topographic_error,
            "segment_shares": profiles["share"].tolist(),
            "feature_reference": feature_reference(raw, config.feature_names),
        },
        config=config.model_dump(mode="json"),
    )
    folder = stage_dir(
        work_dir, "build-model", table=table, cleaner=cleaner, weights=weights, neuron_segment=neuron_segment,
        segments=segments, assessment=assessment, suite_path=suite_path, config=config,
    )
    with writing(folder) as tmp:
        model.save(tmp / MODEL_DIR)
    return folder / MODEL_DIR


@task(name="assign-segments", cache_policy=CONTENT_CACHE)
def assign_segments(table: Path, assessment: MapAssessment, model_dir: Path, work_dir: str) -> Path:
    """Each customer's best unit, segment, label, distance and outlier flag."""
    model = SegmentationModel.load(model_dir)
    ids = read_frame(table, [model.id_column])[model.id_column]
    assigned = model.assign(ids, read_npy(assessment.bmu), read_npy(assessment.distance))
    folder = stage_dir(work_dir, "assign-segments", table=table, assessment=assessment, model_dir=model_dir)
    with writing(folder) as tmp:
        write_parquet(tmp / SEGMENTS_FILE, assigned, SEGMENTS_DICTIONARY_COLUMNS)
    return folder / SEGMENTS_FILE


def training_metrics(
    assessment: MapAssessment, config: SegmentationConfig, source: Path, outlier_share: float | None = None
) -> dict[str, Any]:
    """The figures of ``metrics.json`` that do not depend on timing."""
    figures: dict[str, Any] = {
        "quantization_error": assessment.quantization_error,
        "topographic_error": assessment.topographic_error,
        "topographic_error_adjacency": "8 neighbours (diagonals adjacent, as MiniSom)",
        "topographic_error_4": assessment.topographic_error_4,
        "thresholds": {
            "max_quantization_error": config.gates.max_quantization_error,
            "max_topographic_error": config.gates.max_topographic_error,
        },
        "gates_passed": assessment.quantization_error <= config.gates.max_quantization_error
        and assessment.topographic_error <= config.gates.max_topographic_error,
        "n_rows": assessment.n_rows,
        "n_features": len(config.features),
        "grid": {"rows": config.som.rows, "cols": config.som.cols},
        "engine": config.som.engine,
        "outlier_threshold": assessment.outlier_threshold,
        "outlier_percentile": config.outliers.percentile,
        "input": str(source),
    }
    if outlier_share is not None:
        figures["outlier_share"] = outlier_share
    return figures


@task(
    name="publish-run",
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
    figures: Path,
) -> Path:
    """Assemble every output and the report beside the run folder, then swap it into place.

    Never cached: the run folder is the product, and it must be rewritten
    even when every step before it came from the cache.
    """
    # Imported here: the report draws with matplotlib, which scoring never loads.
    from somseg.report import build_report

    with staged_folder(out_dir) as staging:
        stage_training_outputs(staging, segments, labelled, validation, model_dir, metrics, config)
        build_report(staging, figures)
    get_run_logger().info("wrote the run's outputs to %s", out_dir)
    return out_dir


@task(
    name="publish-scores",
    cache_policy=NO_CACHE,
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_on_io_error,
)
def publish_scores(out_dir: Path, segments: Path, validation: Path, metrics: dict[str, Any]) -> Path:
    """Swap the scored rows (a file, or a folder of part files), the validation result and the metrics into place."""
    with staged_folder(out_dir) as staging:
        link_or_copy(segments, staging / SEGMENTS_FILE)
        shutil.copyfile(validation, staging / VALIDATION_FILE)
        write_json(staging / METRICS_FILE, {**metrics, "finished_at": utc_now()})
    get_run_logger().info("wrote the scored segments to %s", out_dir)
    return out_dir


def stage_training_outputs(
    staging: Path,
    segments: Path,
    labelled: LabelledSegments,
    validation: Path,
    model_dir: Path,
    metrics: dict[str, Any],
    config: SegmentationConfig,
) -> None:
    """Put a training run's outputs (all but the report) into ``staging``; local and Dask runs share it."""
    link_or_copy(segments, staging / SEGMENTS_FILE)
    shutil.copyfile(labelled.profiles, staging / PROFILES_FILE)
    shutil.copyfile(validation, staging / VALIDATION_FILE)
    shutil.copytree(model_dir, staging / MODEL_DIR)
    write_json(staging / METRICS_FILE, {**metrics, "finished_at": utc_now()})
    (staging / CONFIG_FILE).write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), encoding="utf-8")


def link_or_copy(source: Path, target: Path) -> Path:
    """Hard-link a file or a folder's files (no second copy of a large output); copy across filesystems."""

    def link(src: str, dst: str) -> None:
        try:
            Path(dst).hardlink_to(src)
        except OSError:
            shutil.copy2(src, dst)

    if source.is_dir():
        shutil.copytree(source, target, copy_function=link)
    else:
        link(str(source), str(target))
    return target


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def record_failure(out_dir: Path, files: dict[str, Path], figures: dict[str, Any], error: BaseException) -> Path | None:
    """Keep a failed run's diagnostics in ``<out>/last_failure/``, touching nothing else.

    A failure before anything was measured (bad input, bad model bundle)
    has no diagnostics, and then nothing at all is written.
    """
    files = {name: path for name, path in files.items() if path.is_file()}
    if not files and not figures:
        return None
    folder = out_dir / FAILURE_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    marker = out_dir / RUN_MARKER
    if not marker.exists():
        marker.write_text("written by somseg\n", encoding="utf-8")
    with staged_folder(folder) as staging:
        for name, path in files.items():
            shutil.copyfile(path, staging / name)
        if figures:
            write_json(staging / METRICS_FILE, figures)
        (staging / "error.txt").write_text(f"{type(error).__name__}: {error}\n", encoding="utf-8")
    return folder
