"""Scoring flow: segment new customers with a saved model, without retraining.

load model (a bundle, or a registry's promoted version) -> ingest (invalid rows screened) -> validate (the
model's own suite) -> score -> drift -> write.
The same on threads or on a Dask cluster: ``config.execution`` chooses
Prefect's task runner, nothing else.
"""

from datetime import timedelta

from prefect import flow

from somseg.config import ScoringConfig, derived_features, encodings
from somseg.flows.support import RunLog, run_moment
from somseg.gates import judge_drift
from somseg.layout import SAMPLE_TABLE, default_work_dir
from somseg.model import bundle_version, scoring_metadata
from somseg.quality import scoring_suite
from somseg.registry import is_registry, resolve_model
from somseg.results import ScoringMetrics
from somseg.runs import dated
from somseg.tasks import stages
from somseg.tasks.artifacts import publish_data_quality, publish_drift_summary
from somseg.tasks.executor import Executor
from somseg.tasks.publish import publish_scores
from somseg.tasks.quality import enforce_expectations
from somseg.tasks.registry import wait_for_model
from somseg.tasks.scoring import check_drift


@flow(name="score-segments", log_prints=True)
def score_segments_flow(
    input_path: str = SAMPLE_TABLE,
    model_dir: str = "runs/latest/model",
    out_dir: str = "runs/scored",
    config: ScoringConfig = ScoringConfig(),
    work_dir: str = default_work_dir(),
    run_date: str | None = None,
) -> str:
    """Assign new customers to the segments of a trained model and measure drift.

    ``model_dir`` is a model bundle folder (a training run's ``model/``) or a
    model registry, whose promoted version is then used. ``{date}`` in
    ``input_path`` and ``out_dir`` is the run's date: ``run_date``
    (``YYYY-MM-DD``) or the day it was scheduled for.
    """
    day, moment = run_moment(run_date)
    input_path, out_dir = dated(input_path, day), dated(out_dir, day)
    run = RunLog.start("score-segments", input_path, out_dir, work_dir, config.execution, model_dir=model_dir)
    store = run.store
    with run.keep_diagnostics_on_failure(), Executor(config.execution) as ex:
        with run.step("load-model"):
            wait, stale = config.model_wait, None
            if wait.max_age_hours is not None and is_registry(model_dir):
                stale = wait_for_model(model_dir, moment - timedelta(hours=wait.max_age_hours), wait)
            # Read once, here: a promotion during the run does not change the model it scores with.
            resolved = resolve_model(model_dir)
            model = stages.load_bundle(ex, store, str(resolved.bundle))
            contract = model.load()
            version = resolved.version or bundle_version(resolved.bundle)
            if resolved.registry is not None:
                print(f"model: version {version} of registry {resolved.registry}")
        with run.step("ingest"):
            # The invalid-row rule is the model's training config's, unless the scoring config sets it.
            quality = config.quality.resolve(contract.config)
            expressions = derived_features(contract.features)
            screen = stages.invalid_row_screen(contract.features, expressions, quality.invalid_rows)
            table = stages.ingest(ex, store, input_path, contract.id_column, contract.feature_names,
                                  config.execution.partition_rows, expressions=expressions,
                                  encodings=encodings(contract.features), screen=screen)
            invalid_rows = stages.check_invalid_rows(table, quality)
        with run.step("validate"):
            validation = stages.validate(ex, store, table, scoring_suite(contract.suite))
            run.diagnostics["validation.json"] = validation.path
            report = validation.load()
            publish_data_quality(report, contract.suite.get("name", "model suite"), "scoring")
            enforce_expectations(report, input_path, contract.suite.get("name", "model suite"))
        with run.step("score"):
            segments, figures = stages.score(ex, store, table, model, scoring_metadata(version, contract.provenance))
            run.figures = figures.model_dump(mode="json")
        with run.step("drift"):
            verdict = judge_drift(figures, contract.training, contract.training_outlier_share, config.drift)
            publish_drift_summary(figures, config.drift, verdict)
            check_drift(verdict, config.drift, figures, input_path)
        metrics = ScoringMetrics(
            **figures.model_dump(), model=str(resolved.bundle), model_version=version,
            model_registry=None if resolved.registry is None else str(resolved.registry),
            model_provenance=contract.provenance, input=input_path, run_date=day.isoformat(), n_partitions=len(table.parts),
            execution=config.execution.mode, invalid_rows=invalid_rows, drift_warnings=verdict.problems, stale_model=stale, drift=verdict, durations_seconds=run.durations,
        )
        publish_scores(run.out_dir, segments, validation, metrics, table.rejected if screen.policy == "drop" else None)
    return str(run.out_dir)
