"""Training flow: from a customer table to labelled segments and a saved model.

The recipe of the reference analysis (REFERENCE.md), one stage per line:
ingest (invalid rows screened) -> validate -> clean -> train -> gate -> [choose k, when 'auto'] -> cluster
-> evaluate -> label -> write (model, segments, figures, report) -> [register and promote the model, with a
registry]. The same on threads or on a Dask cluster:
``config.execution`` chooses Prefect's task runner, nothing else.
"""

from prefect import flow

from somseg.config import SegmentationConfig
from somseg.flows.support import RunLog, flow_run_id
from somseg.layout import MODEL_DIR, SAMPLE_TABLE, default_work_dir
from somseg.model import config_sha256
from somseg.registry import check_registry_folder
from somseg.report import failure_report
from somseg.results import Provenance
from somseg.runs import record_promotion, training_metrics, utc_now
from somseg.tasks import stages
from somseg.tasks.artifacts import (
    Progress,
    TrainingSummary,
    publish_data_quality,
    publish_map,
    publish_profiles,
)
from somseg.tasks.assessment import enforce_gates
from somseg.tasks.evaluation import enforce_stability
from somseg.tasks.executor import Executor
from somseg.tasks.expectations import training_suite
from somseg.tasks.publish import publish_run
from somseg.tasks.quality import enforce_expectations
from somseg.tasks.registry import promote_model


@flow(name="train-segments", log_prints=True)
def train_segments_flow(
    input_path: str = SAMPLE_TABLE,
    out_dir: str = "runs/latest",
    config: SegmentationConfig = SegmentationConfig(),
    work_dir: str = default_work_dir(),
    registry: str | None = None,
) -> str:
    """Train a segmentation on a customer table and write segments, profiles, metrics, model and report.

    With ``registry`` (a model registry folder), the published model is also
    registered there as a new version and, by ``config.promotion``'s rules,
    promoted for scoring.
    """
    config = stages.resolve_features(config, input_path)
    suite = training_suite(config)
    if registry is not None:
        check_registry_folder(registry)  # a registry that cannot take the model is named before any work
    run = RunLog.start("train-segments", input_path, out_dir, work_dir, config.execution, registry=registry)
    store, names = run.store, config.feature_names
    summary = TrainingSummary(str(run.out_dir), input_path, config.gates, run.durations)
    with summary.published(), run.keep_diagnostics_on_failure(), Executor(config.execution) as ex:
        with run.step("ingest"):
            cleaning = stages.cleaning_learner(config.features, input_path)
            screen = stages.invalid_row_screen(config.features, config.expressions, config.quality.invalid_rows)
            table = stages.ingest(ex, store, input_path, config.id_column, names, config.execution.partition_rows,
                                  first_pass=cleaning.request(), expressions=config.expressions,
                                  encodings=config.encodings, screen=screen)
            invalid_rows = stages.check_invalid_rows(table, config.quality)
        with run.step("validate"):
            validation = stages.validate(ex, store, table, suite)
            run.diagnostics["validation.json"] = validation.path
            summary.validation = validation.load()
            publish_data_quality(summary.validation, suite.get("name", config.quality.suite), "training")
            enforce_expectations(summary.validation, input_path, config.quality.suite)
        with run.step("clean"):
            cleaned = stages.clean(ex, store, table, cleaning, config.som)
            config = stages.fit_grid(config, cleaned, table.n_rows)
        with run.step("train"):
            progress = Progress("som-training", f"Training the {config.som.rows}x{config.som.cols} map ({config.som.engine})")
            weights = stages.train_map(ex, store, cleaned, table.first_rows, config.som,
                                       config.execution.partition_rows, progress)
        with run.step("gate"):
            assessment = stages.assess(ex, store, table, cleaned, weights, config.outliers.percentile,
                                       config.evaluation)
            summary.figures = assessment.figures
            metrics = training_metrics(assessment.figures, config, source=input_path, n_partitions=len(table.parts),
                                       execution=config.execution.mode, invalid_rows=invalid_rows)
            run.figures = metrics.model_dump(mode="json")
            publish_map(weights.load(), assessment.figures, config.gates)
            run.failure_report = failure_report(weights.load(), assessment.figures.hits, metrics, summary.validation,
                                                config, run.out_dir)
            enforce_gates(assessment.figures, config.gates)
            run.failure_report = None  # what follows fails for other reasons than the map
        evaluation = None
        if config.segments.k == "auto":
            with run.step("choose-k"):  # the evaluation's bootstrap maps score every k before clustering
                evaluation = stages.evaluate(ex, store, assessment, weights, None, config)
                config = stages.use_recommended_k(config, evaluation)
        with run.step("cluster"):
            neuron_segment = stages.cluster(ex, store, weights, assessment.figures, config)
        with run.step("evaluate"):
            if evaluation is None:
                evaluation = stages.evaluate(ex, store, assessment, weights, neuron_segment, config)
            run.figures["evaluation"] = evaluation.model_dump(mode="json")
            summary.evaluation = evaluation
            enforce_stability(evaluation, config.evaluation)
        with run.step("label"):
            profiles = stages.label(ex, store, assessment.figures, neuron_segment, config)
            publish_profiles(profiles.load())
        with run.step("write"):
            outputs = stages.write(ex, store, table, assessment, cleaned.cleaning, weights, neuron_segment, profiles, suite,
                                   config)
        comparison = None
        if registry is not None:
            with run.step("compare"):  # before publishing: a failure here leaves the last good run in place
                comparison = stages.compare_with_promoted(ex, store, registry, table, outputs.segments, config)
        metrics = metrics.model_copy(update={"evaluation": evaluation, "outlier_share": outputs.outlier_share,
                                             "durations_seconds": run.durations})
        provenance = Provenance(trained_at=utc_now(), training_run_id=flow_run_id(), run_dir=str(run.out_dir),
                                input=input_path, input_sha256=table.digest,
                                config_sha256=config_sha256(config.model_dump(mode="json")))
        publish_run(run.out_dir, outputs.segments, profiles, validation, outputs.model, metrics, config,
                    outputs.figures, table.rejected if screen.policy == "drop" else None, provenance)
        if registry is not None:
            # After publishing: a run that fails before its outputs are in place never registers or promotes.
            with run.step("promote"):
                promotion = promote_model(registry, run.out_dir / MODEL_DIR, config.promotion, metrics.gates_passed,
                                          comparison)
                record_promotion(run.out_dir, promotion)
    return str(run.out_dir)
