"""Segments per partition: the training rows from their matching, new rows with a saved model; drift."""

import math
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import FlowRun
from prefect.context import FlowRunContext
from prefect.events import emit_event

from somseg.config import DriftGateConfig
from somseg.errors import DriftError
from somseg.results import DriftVerdict, ScoringFigures
from somseg.scoring import ScoreSummary, assign_rows, score_columns
from somseg.tasks.catalog import MatchPart, ModelArtifact, SegmentsPart, Store, TablePart, step

# The event a scoring run emits when its data has drifted beyond a limit; alerts.yaml's automation expects it.
DRIFT_EVENT = "somseg.drift.detected"


@step("assign-partition", saves=SegmentsPart)
def assign_partition(
    store: Store, part: TablePart, match: MatchPart, model: ModelArtifact
) -> tuple[pd.DataFrame, ScoreSummary]:
    """Each training row's best unit, segment, label, distance and outlier flag."""
    loaded = model.load()
    return assign_rows(loaded, part.load([loaded.id_column])[loaded.id_column], match.load())


@step("score-partition", saves=SegmentsPart, retry_io=True)
def score_partition(
    store: Store, part: TablePart, model: ModelArtifact, metadata: dict[str, str] | None = None
) -> tuple[pd.DataFrame, ScoreSummary, dict[str, str]]:
    """Segment new rows with the training medians, scaler and map; ``metadata`` goes into the Parquet file."""
    loaded = model.load()
    # The features read where the partition's file lies, and the id column alone into pandas.
    ids = part.load([loaded.id_column])[loaded.id_column]
    with part.feature_columns(loaded.feature_names) as columns:
        return (*score_columns(loaded, ids, columns), metadata or {})


@task(name="check-drift", cache_policy=NO_CACHE)
def check_drift(verdict: DriftVerdict, drift: DriftGateConfig, figures: ScoringFigures, source: str) -> None:
    """Warn about drift beyond the limits, or fail the run when ``drift.action`` is 'fail'.

    Either way, drift beyond a limit is also announced as the event
    ``somseg.drift.detected`` (:func:`drift_event_payload`) of the flow run,
    before the run fails, so that an automation can send it on.
    """
    if verdict.problems:
        emit_drift_event(verdict, drift, figures, source)
    if verdict.problems and drift.action == "fail":
        raise DriftError("drift gate failed: " + "; ".join(verdict.problems))
    if not verdict.judged and drift.action != "off":
        get_run_logger().warning("drift: %s", verdict.note)
    for problem in verdict.problems:
        get_run_logger().warning("drift: %s", problem)


def emit_drift_event(verdict: DriftVerdict, drift: DriftGateConfig, figures: ScoringFigures, source: str) -> None:
    """Emit ``somseg.drift.detected`` about the running flow run; outside a flow run, nothing."""
    flow_run = _current_flow_run()
    if flow_run is None:
        return
    # Prefect adds the flow, the deployment and the run's tags as related resources.
    emit_event(
        event=DRIFT_EVENT,
        resource={"prefect.resource.id": f"prefect.flow-run.{flow_run.id}", "prefect.resource.name": flow_run.name},
        payload=drift_event_payload(verdict, drift, figures, source),
    )


def _current_flow_run() -> FlowRun | None:
    context = FlowRunContext.get()
    return None if context is None else context.flow_run


def drift_event_payload(
    verdict: DriftVerdict, drift: DriftGateConfig, figures: ScoringFigures, source: str
) -> dict[str, Any]:
    """The figures of a drift check, as the payload of its event.

    Parameters
    ----------
    verdict : DriftVerdict
        The checks and the lines of those that crossed their limit.
    drift : DriftGateConfig
        The limits and ``action``.
    figures : ScoringFigures
        The scored table's figures.
    source : str
        The scored input.

    Returns
    -------
    dict
        ``action``, ``input``, ``n_rows``; the figures ``outlier_share``,
        ``segment_psi`` and ``feature_psi`` (feature -> PSI); ``limits`` (the
        three settings); ``crossed``, one entry per check beyond its bound
        (``check``, ``setting``, ``value``, ``limit`` and ``bound``, the
        level it was held to: the limit, or what sampling alone reaches on
        a small table); ``problems``, the same as lines of text. A figure
        that could not be measured is null.
    """
    return {
        "action": drift.action,
        "input": source,
        "n_rows": figures.n_rows,
        "outlier_share": _number(figures.outlier_share),
        "segment_psi": _number(figures.segment_psi),
        "feature_psi": {name: _number(value) for name, value in figures.feature_psi.items()},
        "limits": {"max_outlier_share": drift.max_outlier_share, "max_segment_psi": drift.max_segment_psi,
                   "max_feature_psi": drift.max_feature_psi},
        "crossed": [
            {"check": check.name, "setting": check.setting, "value": _number(check.value), "limit": check.limit,
             "bound": check.bound}
            for check in verdict.checks if not check.passed
        ],
        "problems": list(verdict.problems),
    }


def _number(value: float | None) -> float | None:
    # JSON has no NaN: a figure that could not be measured is sent as null.
    return None if value is None or math.isnan(value) else float(value)
