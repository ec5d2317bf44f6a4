"""What a run shows on its page in the Prefect UI: summaries, tables, pictures, progress.

Every artifact task here is ``NO_CACHE``: the steps it reports on may come
from the cache, but each run's page must still show its own figures. The
pictures are PNGs inlined as ``data:`` URLs in a markdown artifact, so they
need no web server of their own and the UI shows them on the run's page.
"""

import base64
import io
import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext, TaskRunContext

from somseg.config import DriftGateConfig, GateConfig
from somseg.io import read_npy

if TYPE_CHECKING:  # tasks.quality, .som and .scoring import this module: types only, no cycle
    from matplotlib.figure import Figure

    from tasks.quality import QualityOutcome
    from tasks.segments import LabelledSegments
    from tasks.som import MapAssessment

OUTPUT_FILES = ("segments.parquet", "profiles.parquet", "metrics.json", "validation.json", "config.yaml", "model/")


def in_a_run() -> bool:
    """Artifacts belong to a run; a task called through ``.fn()`` publishes none."""
    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


@contextmanager
def training_progress(description: str) -> Iterator[Callable[[float], None]]:
    """A progress artifact, and the callback (fraction done, 0..1) that moves it."""
    if not in_a_run():
        yield lambda fraction: None
        return
    artifact_id = create_progress_artifact(0.0, key="som-training", description=description)

    def report(fraction: float) -> None:
        update_progress_artifact(artifact_id, round(100.0 * fraction, 1))

    yield report


def publish_data_quality(quality: "QualityOutcome", suite_name: str) -> None:
    """Show each expectation's outcome as a table on the run's page."""
    if not in_a_run():
        return
    report = json.loads(quality.report.read_text(encoding="utf-8"))
    create_table_artifact(
        expectation_rows(report),
        key="data-quality",
        description=f"Great Expectations suite {suite_name!r}: {quality.evaluated - len(quality.failures)} of "
        f"{quality.evaluated} expectations met",
    )


def expectation_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per expectation of a GX validation result (JSON form)."""
    rows = []
    for result in report.get("results", []):
        config = result.get("expectation_config", {})
        outcome = result.get("result", {})
        kwargs = config.get("kwargs", {})
        rows.append({
            "expectation": config.get("type", "?"),
            "column": kwargs.get("column", "(table)"),
            "success": bool(result.get("success")),
            "unexpected_count": outcome.get("unexpected_count"),
            "unexpected_percent": _rounded(outcome.get("unexpected_percent")),
            "observed_value": _short(outcome.get("observed_value")),
        })
    return rows


@task(name="report-map", cache_policy=NO_CACHE)
def report_map(weights: Path, assessment: "MapAssessment", gates: GateConfig) -> None:
    """Show the map's quality against the gates, its U-matrix and its hit map."""
    from somseg.plots import plot_hit_map, plot_u_matrix

    codebook = read_npy(weights)
    rows, cols = codebook.shape[:2]
    hits = np.bincount(read_npy(assessment.bmu), minlength=rows * cols)
    markdown = "\n\n".join([
        f"# SOM map quality: {'PASS' if gates_passed(assessment, gates) else 'FAIL'}",
        gate_table(assessment, gates),
        "## U-matrix\n\nMean distance from each neuron to its neighbours: light valleys are groups of similar "
        "customers, dark ridges the borders between them.",
        f"![U-matrix]({png_data_url(figure_png(plot_u_matrix(codebook)))})",
        "## Hit map\n\nTraining customers per neuron; a cross marks a neuron no customer is closest to.",
        f"![Hit map]({png_data_url(figure_png(plot_hit_map(hits, (rows, cols))))})",
    ])
    create_markdown_artifact(markdown, key="som-map", description=f"{rows}x{cols} map: U-matrix and hit map")


@task(name="report-segments", cache_policy=NO_CACHE)
def report_segments(labelled: "LabelledSegments") -> None:
    """Show the segment profiles (size, share, feature means and sds) as a table."""
    profiles = pd.read_parquet(labelled.profiles)
    rows = [{key: _rounded(value) for key, value in row.items()} for row in profiles.to_dict(orient="records")]
    create_table_artifact(rows, key="segment-profiles", description=f"{len(rows)} segments, named by the label rules")


class _RunRecord(Protocol):
    out_dir: Path
    durations: dict[str, float]
    diagnostics: dict[str, Path]
    figures: dict[str, Any]


@contextmanager
def training_summary(run: _RunRecord, gates: GateConfig) -> Iterator[None]:
    """On leaving, pass or fail, publish the run's summary as a markdown artifact."""
    try:
        yield
    except Exception as error:
        _publish_summary(run, gates, error)
        raise
    _publish_summary(run, gates, None)


def _publish_summary(run: _RunRecord, gates: GateConfig, error: Exception | None) -> None:
    if not in_a_run():
        return
    try:
        create_markdown_artifact(summary_markdown(run, gates, error), key="training-summary",
                                 description=f"Training run summary: {'passed' if error is None else 'FAILED'}")
    except Exception as problem:  # never hide the run's own error behind a reporting one
        if error is None:
            raise
        get_run_logger().warning("could not publish the run summary: %s", problem)


def summary_markdown(run: _RunRecord, gates: GateConfig, error: BaseException | None) -> str:
    """Data quality, map quality against the gates, the verdict, and where the outputs are."""
    from tasks.publish import FAILURE_DIR

    figures = run.figures
    verdict = "PASSED" if error is None else f"FAILED ({type(error).__name__})"
    lines = [f"# Training run {verdict}", "", "| check | value | limit | result |", "|---|---|---|---|"]
    lines.append(_quality_line(run.diagnostics.get("validation.json")))
    for label, name, limit in (
        ("quantization error", "quantization_error", gates.max_quantization_error),
        ("topographic error (8 neighbours)", "topographic_error", gates.max_topographic_error),
    ):
        value = figures.get(name)
        if value is None:
            lines.append(f"| {label} | not measured | <= {limit} | - |")
        else:
            lines.append(f"| {label} | {value:.5f} | <= {limit} | {'pass' if value <= limit else '**FAIL**'} |")
    lines.append("")
    if error is None:
        listed = ", ".join(f"`{name}`" for name in OUTPUT_FILES)
        lines.append(f"**Outputs** written to `{run.out_dir}`: {listed}.")
    else:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        lines += [f"**Error:** {first_line}", "",
                  f"**Outputs:** nothing was replaced in `{run.out_dir}`; diagnostics in "
                  f"`{run.out_dir / FAILURE_DIR}` (when a check had run)."]
    if figures.get("input"):
        lines += ["", f"Input: `{figures['input']}`, {figures.get('n_rows', '?')} rows."]
    if run.durations:
        timings = ", ".join(f"{step} {seconds:.2f} s" for step, seconds in run.durations.items())
        lines += ["", f"Step timings: {timings} (a cached step takes about 0 s)."]
    return "\n".join(lines)


def _quality_line(report_path: Path | None) -> str:
    if report_path is None or not report_path.is_file():
        return "| data quality | not checked | all expectations | - |"
    report = json.loads(report_path.read_text(encoding="utf-8"))
    stats = report.get("statistics", {})
    met, evaluated = stats.get("successful_expectations", 0), stats.get("evaluated_expectations", 0)
    result = "pass" if report.get("success") else "**FAIL**"
    return f"| data quality | {met} of {evaluated} expectations met | all | {result} |"


def gates_passed(assessment: "MapAssessment", gates: GateConfig) -> bool:
    return (assessment.quantization_error <= gates.max_quantization_error
            and assessment.topographic_error <= gates.max_topographic_error)


def gate_table(assessment: "MapAssessment", gates: GateConfig) -> str:
    lines = ["| measure | value | limit | result |", "|---|---|---|---|"]
    for label, value, limit in (
        ("quantization error", assessment.quantization_error, gates.max_quantization_error),
        ("topographic error (8 neighbours)", assessment.topographic_error, gates.max_topographic_error),
    ):
        lines.append(f"| {label} | {value:.5f} | <= {limit} | {'pass' if value <= limit else '**FAIL**'} |")
    lines.append(f"| topographic error (4 neighbours) | {assessment.topographic_error_4:.5f} | - | info |")
    return "\n".join(lines)


def drift_markdown(figures: dict[str, Any], drift: DriftGateConfig, problems: list[str]) -> str:
    """A scoring run's drift figures against the configured limits."""
    verdict = "not checked (drift.action = off)" if drift.action == "off" else (
        "no drift beyond the limits" if not problems else f"{len(problems)} limit(s) crossed (action: {drift.action})"
    )
    lines = [f"# Drift: {verdict}", "", f"{figures.get('n_rows', '?')} rows scored.", "",
             "| measure | value | limit |", "|---|---|---|",
             f"| outlier share | {figures['outlier_share']:.3f} | {drift.max_outlier_share} |",
             f"| segment mix PSI | {figures['segment_psi']:.3f} | {drift.max_segment_psi} |"]
    for name, psi in figures.get("feature_psi", {}).items():
        lines.append(f"| feature {name} PSI | {psi:.3f} | {drift.max_feature_psi} |")
    lines += ["", "| segment | label | share | training share |", "|---|---|---|---|"]
    for segment in figures.get("segments", []):
        lines.append(f"| {segment['segment']} | {segment['label']} | {segment['share']:.3f} | "
                     f"{segment['training_share']:.3f} |")
    if problems:
        lines += [""] + [f"- {problem}" for problem in problems]
    return "\n".join(lines)


def publish_drift_summary(figures: dict[str, Any], drift: DriftGateConfig, problems: list[str]) -> None:
    if not in_a_run():
        return
    create_markdown_artifact(drift_markdown(figures, drift, problems), key="drift-summary",
                             description="Scoring run: drift against the training data")


def figure_png(figure: "Figure", dpi: int = 80) -> bytes:
    """A matplotlib figure of somseg.plots as PNG bytes (Agg canvas, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.1)
    return buffer.getvalue()


def png_data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _rounded(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else round(float(value), 4)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _short(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        text = json.dumps(value)
        return text if len(text) <= 80 else text[:77] + "..."
    return _rounded(value)
