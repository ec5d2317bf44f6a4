"""Training flow: from a raw customer table to labelled segments and a saved model.

The recipe of the reference analysis (REFERENCE.md), one task per step:
ingest -> validate -> clean -> train -> gate -> cluster -> evaluate -> label -> write
(model, segments, figures, report).
"""

from pathlib import Path

from prefect import flow

from flows.memory import reuse_freed_memory
from flows.support import SAMPLE_TABLE, RunLog, tag_run
from somseg.config import SegmentationConfig
from somseg.io import prepare_run_folder
from tasks.artifacts import report_map, report_segments, training_summary
from tasks.caching import default_work_dir
from tasks.expectations import resolve_suite
from tasks.ingest import ingest_table
from tasks.preprocess import clean_features
from tasks.publish import assign_segments, build_model, publish_run, training_metrics
from tasks.quality import enforce_expectations, validate_table
from tasks.report import draw_figures, enforce_stability, evaluate_run
from tasks.segments import cluster_segments, label_segments
from tasks.som import assess_map, enforce_gates, train_som


@flow(name="train-segments", log_prints=True)
def train_segments_flow(
    input_path: str = str(SAMPLE_TABLE),
    out_dir: str = "runs/latest",
    config: SegmentationConfig = SegmentationConfig(),
    work_dir: str = default_work_dir(),
) -> str:
    """Train a segmentation on a customer table and write segments, profiles, metrics and model."""
    reuse_freed_memory()
    tag_run("train-segments", Path(input_path))
    if config.execution.mode == "dask":
        from flows.train_dask import run_train_dask

        return run_train_dask(input_path, out_dir, config, config.execution, work_dir)
    source, suite = Path(input_path), resolve_suite(config.quality.suite)
    run = RunLog(out_dir=prepare_run_folder(out_dir))
    with training_summary(run, config.gates), run.keep_diagnostics_on_failure():
        with run.step("ingest"):
            table = ingest_table(source, config.id_column, config.feature_names, work_dir)
        with run.step("validate"):
            quality = validate_table(table, suite, work_dir)
            run.diagnostics["validation.json"] = quality.report
            enforce_expectations(quality, str(source), suite.stem)
        with run.step("clean"):
            cleaned = clean_features(table, config.features, work_dir)
        with run.step("train"):
            weights = train_som(cleaned.matrix, config.som, work_dir)
        with run.step("gate"):
            assessment = assess_map(cleaned.matrix, weights, config.outliers, work_dir)
            run.figures = training_metrics(assessment, config, source, assessment.outlier_share)
            report_map(weights, assessment, config.gates)
            enforce_gates(assessment, config.gates)
        with run.step("cluster"):
            neuron_segment = cluster_segments(weights, assessment.bmu, config.segments, work_dir)
        with run.step("evaluate"):
            run.figures["evaluation"] = evaluate_run(
                cleaned.matrix, weights, neuron_segment, config.som, config.segments, config.evaluation, work_dir,
                assessment,
            )
            enforce_stability(run.figures["evaluation"], config.evaluation)
        with run.step("label"):
            labelled = label_segments(
                table, assessment.bmu, neuron_segment, config.feature_names, config.segments.k, config.labels, work_dir
            )
            report_segments(labelled)
        with run.step("write"):
            model_dir = build_model(
                table, cleaned.cleaner, weights, neuron_segment, labelled, assessment, suite, config, work_dir
            )
            segments = assign_segments(table, assessment, model_dir, work_dir)
            figures = draw_figures(model_dir, segments, labelled.profiles, work_dir)
        metrics = {**run.figures, "durations_seconds": run.durations}
        publish_run(run.out_dir, segments, labelled, quality.report, model_dir, metrics, config, figures)
    return str(run.out_dir)
