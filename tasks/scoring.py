"""Segments per partition: the training rows from their matching, new rows with a saved model; drift."""

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from somseg.config import DriftGateConfig
from somseg.errors import DriftError
from somseg.results import DriftVerdict
from somseg.scoring import ScoreSummary, assign_rows, score_frame
from somseg.tasks.catalog import MatchPart, ModelArtifact, SegmentsPart, Store, TablePart, step


@step("assign-partition", saves=SegmentsPart)
def assign_partition(
    store: Store, part: TablePart, match: MatchPart, model: ModelArtifact
) -> tuple[pd.DataFrame, ScoreSummary]:
    """Each training row's best unit, segment, label, distance and outlier flag."""
    loaded = model.load()
    return assign_rows(loaded, part.load([loaded.id_column])[loaded.id_column], match.load())


@step("score-partition", saves=SegmentsPart, retry_io=True)
def score_partition(store: Store, part: TablePart, model: ModelArtifact) -> tuple[pd.DataFrame, ScoreSummary]:
    """Segment new rows with the training medians, scaler and map."""
    return score_frame(model.load(), part.load())


@task(name="check-drift", cache_policy=NO_CACHE)
def check_drift(verdict: DriftVerdict, drift: DriftGateConfig) -> None:
    """Warn about drift beyond the limits, or fail the run when ``drift.action`` is 'fail'."""
    if verdict.problems and drift.action == "fail":
        raise DriftError("drift gate failed: " + "; ".join(verdict.problems))
    if not verdict.judged and drift.action != "off":
        get_run_logger().warning("drift: %s", verdict.note)
    for problem in verdict.problems:
        get_run_logger().warning("drift: %s", problem)
