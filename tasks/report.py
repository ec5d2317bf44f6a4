"""Evaluation and figures: validity, stability, choice of k, and the pictures of the report."""

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task

from somseg.config import EvaluationConfig, SegmentsConfig, SomConfig
from somseg.errors import QualityGateError
from somseg.evaluation import evaluate_segmentation, stability_problem
from somseg.io import read_npy, write_json
from somseg.plots import draw_figures as draw_map_figures
from somseg.plots import load_map_view
from tasks.caching import CONTENT_CACHE, stage_dir, writing
from tasks.som import MapAssessment, load_match

EVALUATION_FILE = "evaluation.json"
EVALUATION_TIMEOUT_SECONDS = 3600


@task(name="evaluate-run", cache_policy=CONTENT_CACHE, timeout_seconds=EVALUATION_TIMEOUT_SECONDS)
def evaluate_run(
    matrix: Path,
    weights: Path,
    neuron_segment: Path,
    som: SomConfig,
    segments: SegmentsConfig,
    evaluation: EvaluationConfig,
    work_dir: str,
    assessment: MapAssessment | None = None,
) -> dict[str, Any]:
    """Cluster validity, map quality, bootstrap stability and the recommended k (metrics.json's 'evaluation').

    With the gate's ``assessment``, its best and second-best units are reused
    rather than matched again.
    """
    match = None if assessment is None else load_match(assessment)
    result = evaluate_segmentation(
        read_npy(matrix), read_npy(weights), read_npy(neuron_segment), som, segments, evaluation, match=match
    )
    figures = result.to_dict()
    folder = stage_dir(
        work_dir, "evaluate-run", matrix=matrix, weights=weights, neuron_segment=neuron_segment,
        som=som, segments=segments, evaluation=evaluation, assessment=assessment,
    )
    with writing(folder) as tmp:
        write_json(tmp / EVALUATION_FILE, figures)
    _log_evaluation(figures)
    return figures


def _log_evaluation(figures: dict[str, Any]) -> None:
    logger = get_run_logger()
    segments, quality, choice = figures["segments"], figures["map"], figures["k_choice"]
    values = (segments["silhouette"], segments["davies_bouldin"], segments["calinski_harabasz"], quality["explained_variance"])
    logger.info(
        "silhouette %s, Davies-Bouldin %s, Calinski-Harabasz %s, explained variance %s", *(_short(v) for v in values)
    )
    if figures["stability"]:
        logger.info("bootstrap ARI mean %.3f, min %.3f", figures["stability"]["mean_ari"], figures["stability"]["min_ari"])
    logger.info("recommended k=%d (configured %d): %s", choice["recommended_k"], choice["configured_k"], choice["reason"])


def _short(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


@task(name="enforce-stability-gate")
def enforce_stability(figures: dict[str, Any], evaluation: EvaluationConfig) -> None:
    """Fail the run when the mean bootstrap ARI is below the configured minimum (if any)."""
    stability = figures.get("stability")
    problem = stability_problem(None if stability is None else stability["mean_ari"], evaluation.min_mean_ari)
    if problem:
        raise QualityGateError(f"stability gate failed: {problem}")


@task(name="draw-figures", cache_policy=CONTENT_CACHE)
def draw_figures(model_dir: Path, segments: Path, profiles: Path, work_dir: str) -> Path:
    """Draw the U-matrix, hit map, component planes, segment map and profile chart as PNG."""
    folder = stage_dir(work_dir, "draw-figures", model_dir=model_dir, segments=segments, profiles=profiles)
    with writing(folder) as tmp:
        draw_map_figures(load_map_view(model_dir, segments, profiles), tmp)
    return folder
