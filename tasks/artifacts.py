"""What a run shows on its page in the Prefect UI: summaries, tables, pictures, progress.

The flows call these functions themselves, never a compute task, so a step
served from the cache still shows its figures on the new run's page. The
pictures are PNGs inlined as ``data:`` URLs in markdown artifacts: the UI
shows them with no web server of their own. Outside a flow run (a test
calling a function directly) nothing is published.
"""

import base64
import io
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.context import FlowRunContext

from somseg.config import DriftGateConfig, GateConfig
from somseg.gates import Check, map_checks
from somseg.layout import (
    CONFIG_FILE,
    METRICS_FILE,
    MODEL_DIR,
    PROFILES_FILE,
    REPORT_FILE,
    SEGMENTS_FILE,
    VALIDATION_FILE,
)
from somseg.quality import expectation_rows
from somseg.results import DriftVerdict, Evaluation, MapFigures, ScoringFigures

if TYPE_CHECKING:
    from matplotlib.figure import Figure

OUTPUT_FILES = (SEGMENTS_FILE, PROFILES_FILE, METRICS_FILE, VALIDATION_FILE, CONFIG_FILE, f"{MODEL_DIR}/")


def in_a_run() -> bool:
    """Artifacts belong to a flow run."""
    return FlowRunContext.get() is not None


class Progress:
    """A progress artifact (0 to 100 %), moved by the flow as the map trains."""

    def __init__(self, key: str, description: str) -> None:
        self._id = create_progress_artifact(0.0, key=key, description=description) if in_a_run() else None

    def __call__(self, fraction: float) -> None:
        if self._id is not None:
            update_progress_artifact(self._id, round(100.0 * fraction, 1))


def publish_data_quality(report: dict[str, Any], suite_name: str, stage: Literal["training", "scoring"]) -> None:
    """Each expectation's outcome as a table on the run's page, keyed by the stage (``training-data-quality``)."""
    if not in_a_run():
        return
    rows = [{key: _rounded(value) for key, value in row.items()} for row in expectation_rows(report)]
    statistics = report["statistics"]
    create_table_artifact(
        rows,
        key=f"{stage}-data-quality",
        description=f"Great Expectations suite {suite_name!r}: {statistics['successful_expectations']} of "
        f"{statistics['evaluated_expectations']} expectations met",
    )


def publish_map(weights: np.ndarray, figures: MapFigures, gates: GateConfig) -> None:
    """The map's quality against the gates, its U-matrix and its hit map."""
    if not in_a_run():
        return
    from somseg.plots import plot_hit_map, plot_u_matrix

    rows, cols = weights.shape[:2]
    checks = map_checks(figures, gates)
    markdown = "\n\n".join([
        f"# SOM map quality: {'PASS' if all(c.passed for c in checks) else 'FAIL'}",
        gate_table(checks, figures.topographic_error_4),
        "## U-matrix\n\nMean distance from each neuron to its neighbours: light valleys are groups of similar "
        "customers, dark ridges the borders between them.",
        f"![U-matrix]({png_data_url(figure_png(plot_u_matrix(weights)))})",
        "## Hit map\n\nTraining customers per neuron; a cross marks a neuron no customer is closest to.",
        f"![Hit map]({png_data_url(figure_png(plot_hit_map(figures.hits, (rows, cols))))})",
    ])
    create_markdown_artifact(markdown, key="som-map", description=f"{rows}x{cols} map: U-matrix and hit map")


def publish_profiles(profiles: pd.DataFrame) -> None:
    """The segment profiles (size, share, feature means and sds) as a table."""
    if not in_a_run():
        return
    rows = [{key: _rounded(value) for key, value in row.items()} for row in profiles.to_dict(orient="records")]
    create_table_artifact(rows, key="segment-profiles", description=f"{len(rows)} segments, named by the label rules")


def gate_table(checks: Sequence[Check], topographic_error_4: float | None = None) -> str:
    """Markdown table of checks against their limits."""
    lines = ["| measure | value | limit | result |", "|---|---|---|---|"]
    for check in checks:
        relation = ">=" if check.at_least else "<="
        lines.append(
            f"| {check.name} | {_value(check.value)} | {relation} {check.limit} | {'pass' if check.passed else '**FAIL**'} |"
        )
    if topographic_error_4 is not None:
        lines.append(f"| topographic error (4 neighbours) | {_value(topographic_error_4)} | - | info |")
    return "\n".join(lines)


def training_summary_markdown(
    out_dir: str,
    figures: MapFigures | None,
    validation: dict[str, Any] | None,
    gates: GateConfig,
    durations: dict[str, float],
    source: str,
    error: BaseException | None,
    evaluation: Evaluation | None = None,
) -> str:
    """Data quality, map quality against the gates, the segments' evaluation, the verdict, and where the outputs are."""
    from somseg.layout import FAILURE_DIR

    verdict = "PASSED" if error is None else f"FAILED ({type(error).__name__})"
    lines = [f"# Training run {verdict}", "", "| check | value | limit | result |", "|---|---|---|---|"]
    lines.append(_quality_line(validation))
    if figures is None:
        lines += [
            f"| {check.name} | not measured | {'>=' if check.at_least else '<='} {check.limit} | - |"
            for check in map_checks(None, gates)
        ]
    else:
        lines += gate_table(map_checks(figures, gates)).splitlines()[2:]
    lines.append("")
    if error is None:
        listed = ", ".join(f"`{name}`" for name in OUTPUT_FILES)
        lines.append(f"**Outputs** written to `{out_dir}`: {listed}.")
    else:
        lines += ["**Error:**", "", "```", str(error) or type(error).__name__, "```", "",
                  f"**Outputs:** nothing was replaced in `{out_dir}`; diagnostics in `{out_dir}/{FAILURE_DIR}` "
                  "(when a check had run)."]
    if evaluation is not None:
        lines += ["", *evaluation_lines(evaluation)]
    if error is None:
        lines += ["", f"Report: [{out_dir}/{REPORT_FILE}](file://{out_dir}/{REPORT_FILE})"
                  f" (rebuild it with `segment report {out_dir}`)."]
    rows = "?" if figures is None else f"{figures.n_rows:,}"
    lines += ["", f"Input: `{source}`, {rows} rows."]
    if durations:
        timings = ", ".join(f"{step} {seconds:.2f} s" for step, seconds in durations.items())
        lines += ["", f"Step timings: {timings} (a cached step takes about 0 s)."]
    return "\n".join(lines)


def evaluation_lines(evaluation: Evaluation) -> list[str]:
    """The segments' k (and the k the run recommends, with why), separation and stability, as Markdown lines."""
    choice, segments = evaluation.k_choice, evaluation.segments
    used = "chosen by the run" if choice.auto else "configured"
    lines = [f"**Segments:** k = {choice.configured_k} ({used}); recommended k = {choice.recommended_k}: {choice.reason}",
             "", f"Silhouette {_value(segments.silhouette)}, Davies-Bouldin {_value(segments.davies_bouldin)}, "
             f"Calinski-Harabasz {_value(segments.calinski_harabasz)}."]
    if evaluation.stability is not None:
        stability = evaluation.stability
        gate = "" if stability.passed is None else f" (gate {stability.min_mean_ari}: {'pass' if stability.passed else 'FAIL'})"
        lines.append(f"Stability over {len(stability.ari)} bootstrap maps: mean ARI {_value(stability.mean_ari)}, "
                     f"lowest {_value(stability.min_ari)}{gate}.")
    return lines


class TrainingSummary:
    """The run's summary artifact (:func:`training_summary_markdown`), published as the run ends, passed or failed.

    The flow fills in ``validation`` and ``figures`` as it learns them.
    """

    def __init__(self, out_dir: str, source: str, gates: GateConfig, durations: dict[str, float]) -> None:
        self.out_dir, self.source, self.gates, self.durations = out_dir, source, gates, durations
        self.validation: dict[str, Any] | None = None
        self.figures: MapFigures | None = None
        self.evaluation: Evaluation | None = None

    @contextmanager
    def published(self) -> Iterator[None]:
        try:
            yield
        except BaseException as error:
            self._publish(error)
            raise
        self._publish(None)

    def _publish(self, error: BaseException | None) -> None:
        if not in_a_run():
            return
        markdown = training_summary_markdown(
            self.out_dir, self.figures, self.validation, self.gates, self.durations, self.source, error, self.evaluation
        )
        try:
            create_markdown_artifact(
                markdown, key="training-summary",
                description=f"Training run summary: {'passed' if error is None else 'FAILED'}",
            )
            if error is None:
                report = Path(self.out_dir) / REPORT_FILE
                create_link_artifact(report.as_uri(), link_text=str(report), key="training-report",
                                     description="The run's report: map, segments, evaluation, data quality")
        except Exception:  # never hide the run's own error behind a reporting one
            if error is None:
                raise


def _quality_line(report: dict[str, Any] | None) -> str:
    if report is None:
        return "| data quality | not checked | all expectations | - |"
    stats = report.get("statistics", {})
    met, evaluated = stats.get("successful_expectations", 0), stats.get("evaluated_expectations", 0)
    result = "pass" if report.get("success") else "**FAIL**"
    return f"| data quality | {met} of {evaluated} expectations met | all | {result} |"


def drift_markdown(figures: ScoringFigures, drift: DriftGateConfig, verdict: DriftVerdict) -> str:
    """A scoring run's drift figures against their limits."""
    if not verdict.judged:
        headline = verdict.note
    elif verdict.problems:
        headline = f"{len(verdict.problems)} limit(s) crossed (action: {drift.action})"
    else:
        headline = "no drift beyond the limits"
    lines = [f"# Drift: {headline}", "", f"{figures.n_rows:,} rows scored.", "",
             "| measure | value | limit | sampling alone reaches |", "|---|---|---|---|"]
    lines += [f"| {check.name} | {_value(check.value, 3)} | {check.limit} | {_value(check.sampling_level, 3)} |"
              for check in verdict.checks]
    lines += ["", "| segment | label | share | training share |", "|---|---|---|---|"]
    for share in figures.segments:
        lines.append(f"| {share.segment} | {share.label} | {_value(share.share, 3)} | {_value(share.training_share, 3)} |")
    if verdict.problems:
        lines += [""] + [f"- {problem}" for problem in verdict.problems]
    return "\n".join(lines)


def publish_drift_summary(figures: ScoringFigures, drift: DriftGateConfig, verdict: DriftVerdict) -> None:
    if in_a_run():
        create_markdown_artifact(
            drift_markdown(figures, drift, verdict), key="drift-summary",
            description="Scoring run: drift against the training data",
        )


def figure_png(figure: "Figure", dpi: int = 80) -> bytes:
    """A matplotlib figure of somseg.plots as PNG bytes (Agg canvas, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.1)
    return buffer.getvalue()


def png_data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _value(value: float | None, digits: int = 5) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "not measured"
    return f"{value:.{digits}f}"


def _rounded(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else round(float(value), 4)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (dict, list)):
        import json

        text = json.dumps(value, default=str)
        return text if len(text) <= 80 else text[:77] + "..."
    return value
