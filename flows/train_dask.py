"""Training on a Dask cluster: the recipe of ``flows/train.py`` over a partitioned Parquet dataset.

plan -> validate (per partition, combined) -> clean -> train -> gate -> cluster -> label -> write.
Validation fans out as one task run per partition; the other heavy steps
are single tasks that spread their work over the cluster.
"""

from pathlib import Path

from prefect import flow, unmapped

from flows.support import RunLog
from somseg.config import ExecutionConfig, SegmentationConfig
from somseg.io import prepare_run_folder
from tasks import distributed as dask_tasks
from tasks.artifacts import report_segments, training_summary
from tasks.caching import default_work_dir
from tasks.expectations import resolve_suite
from tasks.publish import training_metrics
from tasks.quality import enforce_expectations
from tasks.som import enforce_gates


@flow(name="train-segments-dask", log_prints=True)
def train_segments_dask_flow(
    input_path: str,
    out_dir: str = "runs/latest",
    config: SegmentationConfig = SegmentationConfig(),
    partition_rows: int = 1_000_000,
    work_dir: str = default_work_dir(),
) -> str:
    """Train a segmentation on a partitioned Parquet dataset, on the flow's Dask cluster."""
    suite = resolve_suite(config.quality.suite)
    run = RunLog(out_dir=prepare_run_folder(out_dir))
    id_column, names = config.id_column, config.feature_names
    with training_summary(run, config.gates), run.keep_diagnostics_on_failure():
        with run.step("plan"):
            partitions = dask_tasks.plan_partitions(input_path, [id_column, *names], partition_rows)
        with run.step("validate"):
            reports = dask_tasks.validate_partition.map(
                partitions, unmapped(suite), unmapped(id_column), unmapped(names)
            )
            # Uniqueness across partitions, after the GX runs so that their memory peaks do not add up.
            duplicates = {
                c: dask_tasks.count_duplicates.submit(partitions, c, wait_for=reports)
                for c in dask_tasks.unique_columns(suite)
            }
            n_rows = sum(p.n_rows for p in partitions)
            quality = dask_tasks.combine_validation(reports, duplicates, n_rows, work_dir)
            run.diagnostics["validation.json"] = quality.report
            enforce_expectations(quality, input_path, suite.stem)
        with run.step("clean"):
            cleaning = dask_tasks.fit_cleaning.submit(partitions, id_column, config.features, work_dir).result()
        with run.step("train"):
            weights = dask_tasks.train_som.submit(
                partitions, id_column, cleaning.cleaner, config.som, work_dir
            ).result()
        with run.step("gate"):
            assessment = dask_tasks.assess_map.submit(
                partitions, id_column, cleaning.cleaner, weights, config.outliers, work_dir
            ).result()
            run.figures = training_metrics(assessment, config, Path(input_path))
            enforce_gates(assessment, config.gates)
        with run.step("cluster"):
            neuron_segment = dask_tasks.cluster_segments(weights, assessment, config.segments, work_dir)
        with run.step("label"):
            labelled = dask_tasks.label_segments(
                assessment, neuron_segment, names, config.segments.k, config.labels, work_dir
            )
            report_segments(labelled)
        with run.step("write"):
            model_dir = dask_tasks.build_model(
                cleaning, weights, neuron_segment, labelled, assessment, suite, config, work_dir
            )
            scored = dask_tasks.write_segments.submit(partitions, model_dir, work_dir).result()
        run.figures["outlier_share"] = scored.figures["outlier_share"]
        metrics = {
            **run.figures,
            "execution": "dask",
            "n_partitions": len(partitions),
            "durations_seconds": run.durations,
        }
        dask_tasks.publish_run(run.out_dir, scored.segments, labelled, quality.report, model_dir, metrics, config)
    return str(run.out_dir)


def run_train_dask(
    input_path: str, out_dir: str, config: SegmentationConfig, execution: ExecutionConfig, work_dir: str
) -> str:
    """Run :func:`train_segments_dask_flow` on the cluster ``execution`` describes."""
    runner = dask_tasks.dask_task_runner(execution)
    return train_segments_dask_flow.with_options(task_runner=runner)(
        input_path=input_path,
        out_dir=out_dir,
        config=config,
        partition_rows=execution.partition_rows,
        work_dir=work_dir,
    )
