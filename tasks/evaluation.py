"""Evaluation: cluster validity, bootstrap stability and the choice of k, and the stability gate."""

from prefect import task
from prefect.cache_policies import NO_CACHE

from somseg.assessment import EvaluationSample
from somseg.config import EvaluationConfig, SegmentsConfig, SomConfig
from somseg.errors import QualityGateError
from somseg.evaluation import evaluate_segmentation
from somseg.gates import failed, stability_check
from somseg.results import Evaluation, MapFigures
from somseg.tasks.catalog import JsonDocument, NeuronSegments, Store, Weights, step


@step("evaluate-run", saves=JsonDocument)
def evaluate_run(
    store: Store,
    sample: EvaluationSample,
    weights: Weights,
    neuron_segment: NeuronSegments | None,
    figures: MapFigures,
    som: SomConfig,
    segments: SegmentsConfig,
    evaluation: EvaluationConfig,
) -> Evaluation:
    """Validity, stability and the recommended k (``metrics.json``'s ``evaluation``); chooses k when it is 'auto'."""
    segment = None if neuron_segment is None else neuron_segment.load()
    return evaluate_segmentation(sample, weights.load(), segment, figures, som, segments, evaluation)


@task(name="enforce-stability-gate", cache_policy=NO_CACHE)
def enforce_stability(evaluation: Evaluation, settings: EvaluationConfig) -> None:
    """Fail the run when the mean bootstrap ARI is below ``evaluation.min_mean_ari`` (if set)."""
    mean_ari = None if evaluation.stability is None else evaluation.stability.mean_ari
    problems = failed([stability_check(mean_ari, settings.min_mean_ari)])
    if problems:
        raise QualityGateError("stability gate failed: " + "; ".join(problems))
