"""Evaluation: validity indices against scikit-learn, stability, choice of k."""

import json
import time
import typing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from somseg.assessment import assess_in_memory, sample_positions
from somseg.config import (
    EvaluationConfig,
    SegmentsConfig,
    SomConfig,
    load_config,
)
from somseg.evaluation import (
    bootstrap_stability,
    calinski_harabasz,
    davies_bouldin,
    evaluate_segmentation,
    prediction_strength,
    recommend_k,
    score_k,
    silhouette,
    train_bootstrap_maps,
)
from somseg.metrics import match_units
from somseg.results import KScore
from somseg.segments import cluster_neurons

TINY_SOM = SomConfig(engine="minisom", init="random", rows=3, cols=3, sigma=1.0, learning_rate=0.5, iterations=300, seed=1)


def _blobs(n_per: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three well-separated blobs in 2-D and their true labels."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    labels = np.repeat(np.arange(3), n_per)
    return centres[labels] + rng.normal(scale=0.5, size=(3 * n_per, 2)), labels


@pytest.fixture(scope="module")
def mixed() -> tuple[np.ndarray, np.ndarray]:
    """Overlapping data with arbitrary labels, so every index is far from its bound."""
    rng = np.random.default_rng(7)
    return rng.normal(size=(90, 3)), rng.integers(0, 4, 90)


# ---------------------------------------------------------------- validity indices


def test_unweighted_indices_equal_sklearn(mixed: tuple[np.ndarray, np.ndarray]) -> None:
    X, labels = mixed

    assert silhouette(X, labels) == pytest.approx(skm.silhouette_score(X, labels), abs=1e-12)
    assert davies_bouldin(X, labels) == pytest.approx(skm.davies_bouldin_score(X, labels), rel=1e-12)
    assert calinski_harabasz(X, labels) == pytest.approx(skm.calinski_harabasz_score(X, labels), rel=1e-12)


def test_integer_weights_equal_sklearn_on_repeated_rows(mixed: tuple[np.ndarray, np.ndarray]) -> None:
    X, labels = mixed
    weight = np.random.default_rng(1).integers(0, 4, len(X))
    rows = np.repeat(np.arange(len(X)), weight)

    # sklearn's own distances carry ~1e-8 round-off on repeated rows, ours are exact.
    assert silhouette(X, labels, weight) == pytest.approx(skm.silhouette_score(X[rows], labels[rows]), abs=1e-8)
    assert davies_bouldin(X, labels, weight) == pytest.approx(skm.davies_bouldin_score(X[rows], labels[rows]), rel=1e-10)
    assert calinski_harabasz(X, labels, weight) == pytest.approx(
        skm.calinski_harabasz_score(X[rows], labels[rows]), rel=1e-10
    )


def test_singletons_and_duplicates_follow_sklearn() -> None:
    X = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [5.0, 5.0], [5.0, 5.0], [9.0, 9.0]])
    labels = np.array([0, 0, 0, 1, 1, 2])  # cluster 2 is a singleton; rows repeat exactly

    assert silhouette(X, labels) == pytest.approx(skm.silhouette_score(X, labels), abs=1e-12)
    assert davies_bouldin(X, labels) == pytest.approx(skm.davies_bouldin_score(X, labels), rel=1e-12)


def test_silhouette_sample_is_seeded_and_exact_on_its_rows(mixed: tuple[np.ndarray, np.ndarray]) -> None:
    X, labels = mixed
    rows = np.sort(np.random.default_rng(5).choice(len(X), 40, replace=False))

    sampled = silhouette(X, labels, sample_size=40, random_state=5)

    assert sampled == silhouette(X, labels, sample_size=40, random_state=5)
    assert sampled == pytest.approx(skm.silhouette_score(X[rows], labels[rows]), abs=1e-12)
    assert silhouette(X, labels, sample_size=10_000, random_state=5) == silhouette(X, labels)


def test_indices_are_nan_when_undefined() -> None:
    X = np.arange(10.0).reshape(5, 2)

    for index in (silhouette, davies_bouldin, calinski_harabasz):
        assert np.isnan(index(X, np.zeros(5, dtype=int)))  # one cluster
        assert np.isnan(index(X, np.arange(5)))  # every row alone


def test_zero_weights_drop_rows(mixed: tuple[np.ndarray, np.ndarray]) -> None:
    X, labels = mixed
    weight = (np.arange(len(X)) % 3 != 0).astype(float)
    keep = weight > 0

    for index in (silhouette, davies_bouldin, calinski_harabasz):
        assert index(X, labels, weight) == pytest.approx(index(X[keep], labels[keep]), rel=1e-12)
    with pytest.raises(ValueError, match="sample_weight"):
        silhouette(X, labels, -weight)


# ---------------------------------------------------------------- stability


def _engines() -> list[str]:
    return list(typing.get_args(SomConfig.model_fields["engine"].annotation))


@pytest.mark.parametrize("engine", _engines())
def test_well_separated_blobs_are_perfectly_stable(engine: str) -> None:
    X, _ = _blobs()
    som = TINY_SOM.model_copy(update={"engine": engine})
    segments = SegmentsConfig(k=3, n_init=5)
    from somseg.som import build_engine

    weights = build_engine(som).fit(X).weights_
    segment = cluster_neurons(weights, segments)[match_units(X, weights).bmu]
    maps = train_bootstrap_maps(X, som, 3, seed=0)
    stability = bootstrap_stability(segment, maps, segments)

    assert stability.ari == pytest.approx([1.0, 1.0, 1.0])
    assert stability.mean_ari == stability.min_ari == pytest.approx(1.0)
    assert len(set(stability.seeds)) == 3


def test_bootstrap_maps_are_reproducible() -> None:
    X, _ = _blobs(n_per=15)

    first, second = (train_bootstrap_maps(X, TINY_SOM, 2, seed=3) for _ in range(2))

    assert [m.seed for m in first] == [m.seed for m in second]
    np.testing.assert_array_equal(first[1].weights, second[1].weights)
    assert first[0].hits.sum() == len(X)  # resample hits count every drawn row
    assert first[0].bmu.shape == (len(X),)


# ---------------------------------------------------------------- choice of k


def _score(k: int, sil: float, db: float, ch: float, ps: float | None = None) -> KScore:
    return KScore(k=k, silhouette=sil, davies_bouldin=db, calinski_harabasz=ch, prediction_strength=ps)


def test_recommend_k_by_mean_rank_without_bootstrap_maps() -> None:
    scores = [_score(2, 0.6, 0.5, 100), _score(3, 0.5, 0.4, 300), _score(4, 0.4, 0.6, 200)]

    choice = recommend_k(scores, configured_k=4)

    # Mean ranks: k=2 (1+2+3)/3 = 2.0, k=3 (2+1+1)/3 = 1.33, k=4 (3+3+2)/3 = 2.67.
    assert choice.recommended_k == 3 and choice.configured_k == 4 and choice.reproducible is None
    assert "no prediction strength: every k is a candidate" in choice.reason and "silhouette k=2" in choice.reason


def test_recommend_k_chooses_among_the_reproducible_k_only() -> None:
    scores = [
        _score(2, 0.5, 0.6, 300, ps=0.95),
        _score(3, 0.6, 0.4, 500, ps=0.85),
        _score(4, 0.7, 0.3, 900, ps=0.55),  # the best separation, but a new sample would not give it back
    ]

    choice = recommend_k(scores, configured_k=None, auto=True)

    assert choice.recommended_k == 3 and choice.configured_k == 3 and choice.auto and choice.reproducible
    assert "Reproducible k (prediction strength at least 0.8 on the bootstrap maps): 2, 3" in choice.reason
    assert "reasonable structure" in choice.reason


def test_recommend_k_says_when_no_k_is_reproducible() -> None:
    scores = [_score(2, 0.30, 0.9, 300, ps=0.72), _score(3, 0.28, 1.0, 280, ps=0.45)]

    choice = recommend_k(scores, configured_k=4)

    assert choice.recommended_k == 2 and choice.reproducible is False
    assert "no clear cluster structure" in choice.reason and "silhouette 0.30, weak structure" in choice.reason


def test_recommend_k_breaks_ties_towards_the_finer_reproducible_partition() -> None:
    tied = [_score(3, 0.5, 0.5, 100, ps=0.9), _score(2, 0.5, 0.5, 100, ps=0.9)]

    assert recommend_k(tied, configured_k=3).recommended_k == 3


def test_prediction_strength_is_the_worst_kept_share_of_pairs() -> None:
    main = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    assert prediction_strength(main, main + 5) == 1.0  # renamed, same clusters
    # Cluster 0 split 2 + 2 keeps 2 of its 6 pairs; cluster 1 keeps all.
    assert prediction_strength(main, np.array([0, 0, 1, 1, 2, 2, 2, 2])) == pytest.approx(2 / 6)
    assert prediction_strength(np.array([0, 1, 1]), np.array([5, 6, 6])) == 1.0  # a cluster of one row is kept


def test_score_k_weights_the_neurons_by_hits() -> None:
    X, _ = _blobs(n_per=20)
    weights = X[:9].reshape(3, 3, 2)  # a codebook made of rows, so every neuron is hit
    hits = np.bincount(match_units(X, weights).bmu, minlength=9)
    segments = SegmentsConfig(k=3, n_init=5)

    scores = score_k(weights, hits, segments, range(2, 12))

    assert [s.k for s in scores] == list(range(2, 10))  # k above the 9 neurons is skipped
    labels = cluster_neurons(weights, segments.model_copy(update={"k": 3}), hits=hits)
    assert scores[1].silhouette == silhouette(weights.reshape(9, 2), labels, hits)
    assert all(s.mean_ari is None for s in scores)


# ---------------------------------------------------------------- the whole evaluation


def _evaluate(X: np.ndarray, weights: np.ndarray, som: SomConfig, segments: SegmentsConfig, config: EvaluationConfig):
    """The evaluation as the pipeline runs it: the assessment pass gathers the sample, then the evaluation."""
    sample = sample_positions(len(X), config.stability_rows, config.seed)
    _, figures, partial = assess_in_memory(X, weights, sample=sample)
    return evaluate_segmentation(partial.sample, weights, cluster_neurons(weights, segments), figures, som, segments, config)


def test_evaluation_is_json_ready_and_reports_every_figure() -> None:
    X, _ = _blobs(n_per=20)
    from somseg.som import build_engine

    weights = build_engine(TINY_SOM).fit(X).weights_
    segments = SegmentsConfig(k=3, n_init=3)
    config = EvaluationConfig(bootstrap_resamples=2, k_min=2, k_max=4, silhouette_sample=100, min_mean_ari=0.5)

    figures = _evaluate(X, weights, TINY_SOM, segments, config).model_dump(mode="json")

    json.dumps(figures, allow_nan=False)
    assert set(figures) == {"segments", "map", "stability", "k_choice", "notes"}
    assert figures["segments"]["silhouette_rows"] == 60
    assert figures["stability"]["passed"] is True and len(figures["stability"]["ari"]) == 2
    assert [s["k"] for s in figures["k_choice"]["scores"]] == [2, 3, 4]
    assert figures["k_choice"]["recommended_k"] in (2, 3, 4)
    assert set(figures["map"]) >= {"explained_variance", "kaski_lagus_error", "dead_neuron_share", "topographic_error_4"}


def test_a_large_table_is_evaluated_on_its_seeded_sample() -> None:
    X, _ = _blobs(n_per=400)
    from somseg.som import build_engine

    weights = build_engine(TINY_SOM).fit(X).weights_
    segments = SegmentsConfig(k=3, n_init=3)
    config = EvaluationConfig(bootstrap_resamples=0, stability_rows=1000, silhouette_sample=500, seed=3)

    evaluation = _evaluate(X, weights, TINY_SOM, segments, config)

    assert evaluation.segments.silhouette_rows == 500
    assert evaluation.stability is None
    assert evaluation == _evaluate(X, weights, TINY_SOM, segments, config)  # the sample is seeded


# ---------------------------------------------------------------- the reference table


@pytest.mark.reference
def test_reference_figures(reference_table: Path) -> None:
    """Prints the evaluation of the reference recipe (run with -s to see it)."""
    from somseg.cleaning import FeatureCleaner
    from somseg.dataset import read_table
    from somseg.som import build_engine

    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "reference.yaml")
    X = FeatureCleaner(config.feature_names).fit_transform(read_table(reference_table, config.id_column, config.feature_names))
    weights = build_engine(config.som).fit(X).weights_
    start = time.perf_counter()
    figures = _evaluate(X, weights, config.som, config.segments, EvaluationConfig()).model_dump(mode="json")
    elapsed = time.perf_counter() - start

    seg, quality, stability, choice = figures["segments"], figures["map"], figures["stability"], figures["k_choice"]
    print(
        f"\nreference evaluation ({elapsed:.1f} s): silhouette {seg['silhouette']:.4f} on {seg['silhouette_rows']} rows, "
        f"Davies-Bouldin {seg['davies_bouldin']:.4f}, Calinski-Harabasz {seg['calinski_harabasz']:.1f}, "
        f"explained variance {quality['explained_variance']:.4f}, Kaski-Lagus {quality['kaski_lagus_error']:.4f}, "
        f"dead share {quality['dead_neuron_share']:.3f}, TE8 {quality['topographic_error_8']:.5f}, "
        f"TE4 {quality['topographic_error_4']:.5f}, bootstrap ARI mean {stability['mean_ari']:.4f} "
        f"min {stability['min_ari']:.4f}; recommended k={choice['recommended_k']}: {choice['reason']}"
    )
    assert quality["quantization_error"] == pytest.approx(0.40081, abs=5e-6)
    assert quality["topographic_error_8"] == pytest.approx(0.05156, abs=5e-6)
    assert seg["silhouette_rows"] == len(X)  # 8,068 rows < the 10,000 sample: exact
    assert 0.25 < seg["silhouette"] < 0.5 and quality["explained_variance"] > 0.85
    # The online MiniSom recipe is only moderately stable (about 0.7 over 10 resamples).
    assert 0.6 < stability["mean_ari"] < 0.85
    assert choice["recommended_k"] in range(2, 9)


def test_own_adjusted_rand_index_is_scikit_learns_to_the_last_bit() -> None:
    from somseg.evaluation import adjusted_rand_index

    rng = np.random.default_rng(3)
    for n in (2, 17, 5_000):
        a, b = rng.integers(0, 4, n), rng.integers(0, 6, n)
        assert adjusted_rand_index(a, b) == skm.adjusted_rand_score(a, b)
    same = rng.integers(0, 3, 50)
    assert adjusted_rand_index(same, (same + 1) % 3) == 1.0


# ---------------------------------------------------------------- a believable k


def _recommended_k(frame: pd.DataFrame, features: list[str]) -> int:
    """The k the defaults recommend for a table: cleaning, an 'auto' map, its bootstrap maps and the rule."""
    from somseg.assessment import assess_in_memory
    from somseg.cleaning import FeatureCleaner
    from somseg.config import SegmentationConfig
    from somseg.som import build_engine, concrete_som

    config = SegmentationConfig()
    X = FeatureCleaner(features).fit_transform(frame)
    som = concrete_som(config.som, len(X), np.cov(X, rowvar=False))
    weights = build_engine(som).fit(X).weights_
    _, figures, partial = assess_in_memory(X, weights, frame[features].to_numpy(), sample=np.arange(len(X)))
    evaluation = evaluate_segmentation(partial.sample, weights, None, figures, som, config.segments, config.evaluation)
    assert evaluation.segments.k == evaluation.k_choice.recommended_k  # 'auto' uses it
    return evaluation.k_choice.recommended_k


@pytest.mark.slow
@pytest.mark.parametrize(("k", "n_features", "seed"), [(3, 2, 0), (4, 5, 0), (5, 10, 0), (6, 17, 0), (7, 5, 1), (8, 2, 1)])
def test_the_recommended_k_is_the_known_k_of_separate_blobs(k: int, n_features: int, seed: int) -> None:
    from somseg.data.tables import blobs

    frame, _ = blobs(k, n_features, seed=seed)
    assert _recommended_k(frame, [c for c in frame.columns if c != "id"]) == k


@pytest.mark.slow
def test_the_recommended_k_of_a_mall_table_is_its_five_groups() -> None:
    from somseg.data.tables import mall

    assert _recommended_k(mall(seed=1), ["Annual Income (k$)", "Spending Score (1-100)"]) == 5
