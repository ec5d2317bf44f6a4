"""The map: training, its quality on the training data, and the quality gate."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from prefect import get_run_logger, task

from somseg.config import GateConfig, OutliersConfig, SomConfig
from somseg.errors import QualityGateError
from somseg.io import read_npy, write_npy
from somseg.metrics import UnitMatch, match_units, outlier_threshold, topographic_errors
from somseg.som import build_engine
from tasks.artifacts import training_progress
from tasks.caching import CONTENT_CACHE, stage_dir, writing

WEIGHTS_FILE = "weights.npy"
TRAIN_TIMEOUT_SECONDS = 3600


@task(name="train-som", cache_policy=CONTENT_CACHE, timeout_seconds=TRAIN_TIMEOUT_SECONDS)
def train_som(matrix: Path, som: SomConfig, work_dir: str) -> Path:
    """Fit the Self-Organizing Map on the standardised data."""
    with training_progress(f"Training the {som.rows}x{som.cols} map ({som.engine})") as progress:
        engine = build_engine(som).fit(read_npy(matrix), progress=progress)
    folder = stage_dir(work_dir, "train-som", matrix=matrix, som=som)
    with writing(folder) as tmp:
        write_npy(tmp / WEIGHTS_FILE, engine.weights_)
    get_run_logger().info("trained a %dx%d map with the %s engine", som.rows, som.cols, som.engine)
    return folder / WEIGHTS_FILE


@dataclass(frozen=True)
class MapAssessment:
    """Every row's best and second-best unit, and the map's quality figures.

    ``second`` (the second-best units) lets later steps reuse the matching
    instead of repeating it over the whole table; ``outlier_share`` is the
    share of rows whose distance is above ``outlier_threshold``.
    """

    bmu: Path
    distance: Path
    quantization_error: float
    topographic_error: float
    topographic_error_4: float
    outlier_threshold: float
    n_rows: int
    second: Path | None = None
    outlier_share: float = float("nan")


def load_match(assessment: MapAssessment) -> UnitMatch | None:
    """The matching ``assess_map`` saved, or None when it saved no second-best units."""
    if assessment.second is None:
        return None
    return UnitMatch(read_npy(assessment.bmu), read_npy(assessment.second), read_npy(assessment.distance))


@task(name="assess-map", cache_policy=CONTENT_CACHE, timeout_seconds=TRAIN_TIMEOUT_SECONDS)
def assess_map(matrix: Path, weights: Path, outliers: OutliersConfig, work_dir: str) -> MapAssessment:
    """Best units, quantization and topographic error, and the outlier threshold."""
    codebook = read_npy(weights)
    match = match_units(read_npy(matrix), codebook)
    cols = codebook.shape[1]
    folder = stage_dir(work_dir, "assess-map", matrix=matrix, weights=weights, outliers=outliers)
    with writing(folder) as tmp:
        write_npy(tmp / "bmu.npy", match.bmu)
        write_npy(tmp / "distance.npy", match.distance)
        write_npy(tmp / "second.npy", match.second)
    single_neuron = codebook.shape[0] * codebook.shape[1] == 1
    threshold = outlier_threshold(match.distance, outliers.percentile)
    assessment = MapAssessment(
        bmu=folder / "bmu.npy",
        distance=folder / "distance.npy",
        quantization_error=float(match.distance.mean()),
        topographic_error=float("nan") if single_neuron else float(topographic_errors(match, cols, 8).mean()),
        topographic_error_4=float("nan") if single_neuron else float(topographic_errors(match, cols, 4).mean()),
        outlier_threshold=threshold,
        n_rows=len(match.bmu),
        second=folder / "second.npy",
        # As assign_segments flags them: distance strictly above the threshold.
        outlier_share=float(np.mean(match.distance > threshold)) if len(match.distance) else 0.0,
    )
    get_run_logger().info(
        "quantization error %.5f, topographic error %.5f", assessment.quantization_error, assessment.topographic_error
    )
    return assessment


@task(name="enforce-quality-gates")
def enforce_gates(assessment: MapAssessment, gates: GateConfig) -> None:
    """Fail the run when the map's quantization or topographic error is too high."""
    problems = []
    if not assessment.quantization_error <= gates.max_quantization_error:
        problems.append(
            f"quantization error {assessment.quantization_error:.5f} > max {gates.max_quantization_error}"
        )
    if not assessment.topographic_error <= gates.max_topographic_error:
        problems.append(f"topographic error {assessment.topographic_error:.5f} > max {gates.max_topographic_error}")
    if problems:
        raise QualityGateError("quality gate failed: " + "; ".join(problems))
