"""Scoring on a Dask cluster: the recipe of ``flows/score.py`` over a partitioned Parquet dataset.

load model -> plan -> validate (per partition, the model's suite, combined) -> score and write -> drift -> publish.
"""

from pathlib import Path

from prefect import flow, unmapped

from flows.support import RunLog
from somseg.config import ExecutionConfig, ScoringConfig
from somseg.io import prepare_run_folder
from tasks import distributed as dask_tasks
from tasks.caching import default_work_dir
from tasks.publish import publish_scores
from tasks.quality import enforce_expectations
from tasks.scoring import check_drift, load_model


@flow(name="score-segments-dask", log_prints=True)
def score_segments_dask_flow(
    input_path: str,
    model_dir: str = "runs/latest/model",
    out_dir: str = "runs/scored",
    config: ScoringConfig = ScoringConfig(),
    partition_rows: int = 1_000_000,
    work_dir: str = default_work_dir(),
) -> str:
    """Assign the customers of a partitioned Parquet dataset to a trained model's segments, on the Dask cluster."""
    bundle = Path(model_dir).resolve()
    run = RunLog(out_dir=prepare_run_folder(out_dir))
    with run.keep_diagnostics_on_failure():
        with run.step("load-model"):
            contract = load_model(bundle)
        with run.step("plan"):
            partitions = dask_tasks.plan_partitions(
                input_path, [contract.id_column, *contract.features], partition_rows
            )
        with run.step("validate"):
            reports = dask_tasks.validate_partition.map(
                partitions, unmapped(contract.suite), unmapped(contract.id_column), unmapped(contract.features)
            )
            # Uniqueness across partitions, after the GX runs so that their memory peaks do not add up.
            duplicates = {
                c: dask_tasks.count_duplicates.submit(partitions, c, wait_for=reports)
                for c in dask_tasks.unique_columns(contract.suite)
            }
            n_rows = sum(p.n_rows for p in partitions)
            quality = dask_tasks.combine_validation(reports, duplicates, n_rows, work_dir)
            run.diagnostics["validation.json"] = quality.report
            enforce_expectations(quality, input_path, contract.suite.stem)
        with run.step("score"):
            scored = dask_tasks.write_segments.submit(partitions, bundle, work_dir).result()
            run.figures = {**scored.figures, "model": str(bundle), "input": input_path}
        with run.step("drift"):
            drifted = check_drift(scored.figures, config.drift)
        metrics = {
            **run.figures,
            "execution": "dask",
            "n_partitions": len(partitions),
            "drift_warnings": drifted,
            "durations_seconds": run.durations,
        }
        publish_scores(run.out_dir, scored.segments, quality.report, metrics)
    return str(run.out_dir)


def run_score_dask(
    input_path: str, model_dir: str, out_dir: str, config: ScoringConfig, execution: ExecutionConfig, work_dir: str
) -> str:
    """Run :func:`score_segments_dask_flow` on the cluster ``execution`` describes."""
    runner = dask_tasks.dask_task_runner(execution)
    return score_segments_dask_flow.with_options(task_runner=runner)(
        input_path=input_path,
        model_dir=model_dir,
        out_dir=out_dir,
        config=config,
        partition_rows=execution.partition_rows,
        work_dir=work_dir,
    )
