"""The map against every row: matching and sums per partition, the exact outlier threshold, the gates."""

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from somseg.assessment import AssessRequest, MapPartial
from somseg.config import GateConfig
from somseg.errors import QualityGateError
from somseg.gates import failed, map_checks
from somseg.metrics import UnitMatch
from somseg.results import MapFigures
from somseg.stats import WindowRequest, Windows
from somseg.tasks.catalog import Cleaning, ImputedPart, MatchPart, Store, Weights, step


@step("assess-partition", saves=MatchPart)
def assess_partition(
    store: Store, part: ImputedPart, cleaning: Cleaning, weights: Weights, sample: np.ndarray, first_row: int
) -> tuple[UnitMatch, MapPartial]:
    """Best and second-best units of one partition's rows, and its sums for the map's figures."""
    cleaner = cleaning.load().cleaner
    raw = part.table.features(cleaner.features)
    request = AssessRequest(weights.load(), sample + first_row)
    return request.assess(cleaner.transform_values(raw.copy()), raw, first_row)


@step("distance-pass")
def distance_pass(request: WindowRequest, match: MatchPart) -> Windows:
    """A refinement pass of the exact outlier percentile over one partition's distances."""
    return request.partial(match.distances()[:, None])


@task(name="enforce-quality-gates", cache_policy=NO_CACHE)
def enforce_gates(figures: MapFigures, gates: GateConfig) -> None:
    """Fail the run when a figure of the map crosses its gate (``gates``)."""
    problems = failed(map_checks(figures, gates))
    if problems:
        raise QualityGateError("quality gate failed: " + "; ".join(problems))
