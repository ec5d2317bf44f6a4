"""Scoring flow: segment new customers with a saved model, without retraining.

load model -> ingest -> validate (the model's own suite) -> score -> drift -> write.
"""

from pathlib import Path

from prefect import flow

from flows.memory import reuse_freed_memory
from flows.support import SAMPLE_TABLE, RunLog, tag_run
from somseg.config import ScoringConfig
from somseg.io import prepare_run_folder
from tasks.caching import default_work_dir
from tasks.ingest import ingest_table
from tasks.publish import publish_scores
from tasks.quality import enforce_expectations, validate_table
from tasks.scoring import check_drift, load_model, score_new_table


@flow(name="score-segments", log_prints=True)
def score_segments_flow(
    input_path: str = str(SAMPLE_TABLE),
    model_dir: str = "runs/latest/model",
    out_dir: str = "runs/scored",
    config: ScoringConfig = ScoringConfig(),
    work_dir: str = default_work_dir(),
) -> str:
    """Assign new customers to the segments of a trained model and measure drift."""
    reuse_freed_memory()
    tag_run("score-segments", Path(input_path))
    if config.execution.mode == "dask":
        from flows.score_dask import run_score_dask

        return run_score_dask(input_path, model_dir, out_dir, config, config.execution, work_dir)
    source, bundle = Path(input_path), Path(model_dir).resolve()
    run = RunLog(out_dir=prepare_run_folder(out_dir))
    with run.keep_diagnostics_on_failure():
        with run.step("load-model"):
            contract = load_model(bundle)
        with run.step("ingest"):
            table = ingest_table(source, contract.id_column, contract.features, work_dir)
        with run.step("validate"):
            quality = validate_table(table, contract.suite, work_dir)
            run.diagnostics["validation.json"] = quality.report
            enforce_expectations(quality, str(source), contract.suite.stem)
        with run.step("score"):
            scored = score_new_table(table, bundle, config.chunk_rows, work_dir)
            run.figures = {**scored.figures, "model": str(bundle), "input": str(source)}
        with run.step("drift"):
            drifted = check_drift(scored.figures, config.drift)
        metrics = {**run.figures, "drift_warnings": drifted, "durations_seconds": run.durations}
        publish_scores(run.out_dir, scored.segments, quality.report, metrics)
    return str(run.out_dir)
