"""Scientific evaluation of a run: cluster validity, stability, choice of k.

Two families of figures, all vectorised over rows, computed on the run's
evaluation sample (every row of a table up to ``evaluation.stability_rows``,
a seeded sample of a larger one, gathered by the assessment pass):

* **Separation and compactness** of the macro-segments on the standardised
  customer data (silhouette, Davies–Bouldin, Calinski–Harabasz). The
  functions accept per-row weights, so the same code scores a clustering of
  the neurons weighted by their hits, which equals scoring the customers
  with each one replaced by its best unit. Without weights they agree with
  scikit-learn's.
* **Stability**: the map and the clustering are retrained on bootstrap
  resamples of the sample, each with its own seed, and every sampled row is
  assigned through the resample's map; the adjusted Rand index against the
  main run says how much of the segmentation survives a different sample.

The same bootstrap maps also score each candidate k (its bootstrap ARI and
prediction strength), so recommending k costs clustering runs only, never
more SOM training; :func:`recommend_k` states the rule. Map quality (QE, TE,
explained variance, Kaski–Lagus error, dead neurons) is measured on every
row by the assessment pass (:mod:`somseg.assessment`).
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from somseg import kernels
from somseg.assessment import EvaluationSample
from somseg.config import EvaluationConfig, SegmentsConfig, SomConfig
from somseg.gates import stability_check
from somseg.metrics import match_units
from somseg.results import (
    TE_CONVENTIONS,
    Evaluation,
    KChoice,
    KScore,
    MapFigures,
    MapQuality,
    SegmentsEvaluation,
    SeparationScores,
    Stability,
)
from somseg.segments import cluster_neurons
from somseg.som import build_engine

_CACHE_CELLS = 131_072  # distance cells worked on through every feature at once: sized to stay in one core's cache


# ---------------------------------------------------------------- validity indices


def silhouette(
    X: np.ndarray,
    labels: np.ndarray,
    sample_weight: np.ndarray | None = None,
    sample_size: int | None = None,
    random_state: int | None = None,
) -> float:
    """Mean silhouette coefficient, optionally weighted and on a seeded sample.

    A row weighted ``w`` counts as ``w`` identical rows; with integer weights
    the result equals scikit-learn's ``silhouette_score`` on the rows
    repeated that many times, and without weights it equals it outright.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
    labels : ndarray of shape (n_rows,)
    sample_weight : ndarray of shape (n_rows,), optional
        Non-negative weights (such as hits); zero-weight rows are ignored.
    sample_size : int, optional
        Score a uniform sample of this many rows (without replacement), as
        the exact figure costs O(n_rows^2). No sampling if None or larger
        than the data.
    random_state : int, optional
        Seed of the sample.

    Returns
    -------
    float
        In [-1, 1]; NaN unless there are between 2 and (weighted) n - 1
        clusters.
    """
    if sample_weight is None and sample_size is not None and sample_size < len(X):
        # Sample first: coding the labels and copying rows of the whole table would cost more than the score.
        keep = np.sort(np.random.default_rng(random_state).choice(len(X), sample_size, replace=False))
        X, labels = np.asarray(X)[keep], np.asarray(labels)[keep]
        sample_size = None
    X, codes, weight = _weighted_rows(X, labels, sample_weight)
    if sample_size is not None and sample_size < len(X):
        keep = np.sort(np.random.default_rng(random_state).choice(len(X), sample_size, replace=False))
        X, codes, weight = X[keep], _codes(codes[keep]), weight[keep]
    n_clusters = int(codes.max()) + 1 if len(codes) else 0
    if not 2 <= n_clusters <= weight.sum() - 1:
        return float("nan")
    scores = _silhouette_samples(X, codes, weight, n_clusters)
    return float(np.sum(weight * scores) / weight.sum())


def _silhouette_samples(X: np.ndarray, codes: np.ndarray, weight: np.ndarray, n_clusters: int) -> np.ndarray:
    cluster_weight = np.bincount(codes, weights=weight, minlength=n_clusters)
    # Weighted distance sums from every row to every cluster, without the rows x rows matrix.
    sums = kernels.cluster_distance_sums(X, X, codes, weight, n_clusters)
    rows = np.arange(len(X))
    with np.errstate(divide="ignore", invalid="ignore"):
        a = sums[rows, codes] / (cluster_weight[codes] - 1)
        mean_other = sums / cluster_weight
    mean_other[rows, codes] = np.inf
    b = mean_other.min(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = (b - a) / np.maximum(a, b)
    # As scikit-learn: a row alone in its cluster scores 0, and so does 0/0.
    scores[cluster_weight[codes] <= 1] = 0.0
    return np.nan_to_num(scores)


def _distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Euclidean distances (len(A), len(B)), summed feature by feature.

    Unlike the ``|a|^2 - 2ab + |b|^2`` expansion, identical rows come out
    exactly 0, so the many duplicate customers do not bias the silhouette.
    """
    squared = np.zeros((len(A), len(B)))
    # A few rows of A at a time, every feature's differences in one reused buffer: the
    # block stays in cache through the features, where a fresh block per feature and
    # operation would be paged in and streamed through memory each time.
    rows = max(1, _CACHE_CELLS // max(len(B), 1))
    difference = np.empty((min(rows, len(A)), len(B)))
    for start in range(0, len(A), rows):
        block, part = squared[start : start + rows], difference[: min(rows, len(A) - start)]
        for a, b in zip(A[start : start + rows].T, B.T):
            np.subtract(a[:, None], b[None, :], out=part)
            np.multiply(part, part, out=part)
            block += part
    return np.sqrt(squared, out=squared)


def davies_bouldin(X: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """Davies–Bouldin index (lower is better), optionally weighted.

    Equals scikit-learn's ``davies_bouldin_score`` without weights, and on
    rows repeated by their integer weights.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
    labels : ndarray of shape (n_rows,)
    sample_weight : ndarray of shape (n_rows,), optional

    Returns
    -------
    float
        NaN unless there are between 2 and (weighted) n - 1 clusters.
    """
    return _davies_bouldin(_Dispersion.of(*_weighted_rows(X, labels, sample_weight)))


def _davies_bouldin(d: "_Dispersion") -> float:
    if not 2 <= len(d.cluster_weight) <= d.weight.sum() - 1:
        return float("nan")
    intra = np.bincount(d.codes, weights=d.weight * np.sqrt(d.squared), minlength=len(d.cluster_weight)) / d.cluster_weight
    between = _distances(d.centroids, d.centroids)
    if np.allclose(intra, 0) or np.allclose(between, 0):
        return 0.0
    between[between == 0] = np.inf
    return float(np.mean(np.max((intra[:, None] + intra[None, :]) / between, axis=1)))


def calinski_harabasz(X: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """Calinski–Harabasz index (higher is better), optionally weighted.

    Equals scikit-learn's ``calinski_harabasz_score`` without weights, and
    on rows repeated by their integer weights.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
    labels : ndarray of shape (n_rows,)
    sample_weight : ndarray of shape (n_rows,), optional

    Returns
    -------
    float
        NaN unless there are between 2 and (weighted) n - 1 clusters.
    """
    return _calinski_harabasz(_Dispersion.of(*_weighted_rows(X, labels, sample_weight)))


def _calinski_harabasz(d: "_Dispersion") -> float:
    n, k = d.weight.sum(), len(d.cluster_weight)
    if not 2 <= k <= n - 1:
        return float("nan")
    grand_mean = d.cluster_weight @ d.centroids / n
    between = np.sum(d.cluster_weight * np.sum((d.centroids - grand_mean) ** 2, axis=1))
    within = np.sum(d.weight * d.squared)
    return float(1.0 if within == 0 else between * (n - k) / (within * (k - 1)))


@dataclass(frozen=True)
class _Dispersion:
    """Centroids and each row's squared distance to its own: what DB and CH both need, in one pass."""

    codes: np.ndarray
    weight: np.ndarray
    centroids: np.ndarray
    cluster_weight: np.ndarray
    squared: np.ndarray

    @classmethod
    def of(cls, X: np.ndarray, codes: np.ndarray, weight: np.ndarray) -> "_Dispersion":
        centroids, cluster_weight = _centroids(X, codes, weight)
        squared = np.zeros(len(X))
        for column, centre in zip(X.T, centroids.T):  # a feature at a time: no (n, d) temporaries
            squared += (column - centre[codes]) ** 2
        return cls(codes, weight, centroids, cluster_weight, squared)


def separation_scores(
    X: np.ndarray,
    labels: np.ndarray,
    sample_weight: np.ndarray | None = None,
    sample_size: int | None = None,
    random_state: int | None = None,
) -> SeparationScores:
    """Silhouette (on a seeded sample), Davies–Bouldin and Calinski–Harabasz (on every row).

    Parameters are those of :func:`silhouette`.

    Returns
    -------
    SeparationScores
    """
    rows = int(np.count_nonzero(sample_weight)) if sample_weight is not None else len(X)
    dispersion = _Dispersion.of(*_weighted_rows(X, labels, sample_weight))
    return SeparationScores(
        silhouette=silhouette(X, labels, sample_weight, sample_size, random_state),
        davies_bouldin=_davies_bouldin(dispersion),
        calinski_harabasz=_calinski_harabasz(dispersion),
        silhouette_rows=min(rows, sample_size) if sample_size is not None else rows,
    )


def _weighted_rows(
    X: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float rows, labels coded 0..k-1 and weights, with zero-weight rows dropped."""
    X = np.asarray(X, dtype=np.float64)
    labels = np.asarray(labels)
    if X.ndim != 2 or labels.shape != (len(X),):
        raise ValueError(f"X must be 2-D with one label per row; got {X.shape} and {labels.shape}")
    if sample_weight is None:
        return X, _codes(labels), np.ones(len(X))
    weight = np.asarray(sample_weight, dtype=np.float64)
    if weight.shape != (len(X),) or (weight < 0).any() or not np.isfinite(weight).all():
        raise ValueError("sample_weight must hold one finite non-negative value per row")
    keep = weight > 0
    return X[keep], _codes(labels[keep]), weight[keep]


def _codes(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0..k-1 in sorted order (as ``np.unique``'s inverse)."""
    if labels.dtype.kind in "iu" and len(labels) and labels.min() >= 0:
        # Segment numbers are small integers: a bincount is O(n), a sort is not.
        present = np.bincount(labels) > 0
        return (np.cumsum(present) - 1)[labels].astype(np.int64)
    return np.unique(labels, return_inverse=True)[1].astype(np.int64)


def _centroids(X: np.ndarray, codes: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cluster_weight = np.bincount(codes, weights=weight)
    sums = np.column_stack([np.bincount(codes, weights=weight * column) for column in X.T])
    return sums / cluster_weight[:, None], cluster_weight


# ---------------------------------------------------------------- map quality


def hit_counts(bmu: np.ndarray, n_neurons: int, row_weight: np.ndarray | None = None) -> np.ndarray:
    """Rows (or total row weight) won by each neuron, shape (n_neurons,)."""
    return np.bincount(np.asarray(bmu, dtype=np.int64), weights=row_weight, minlength=n_neurons)


# ---------------------------------------------------------------- stability


@dataclass(frozen=True)
class BootstrapMap:
    """A map retrained on one bootstrap resample.

    Attributes
    ----------
    seed : int
        Seed the map was trained with.
    weights : ndarray of shape (rows, cols, n_features)
    bmu : ndarray of shape (n_rows,)
        Best unit, on this map, of every row of the *original* data.
    hits : ndarray of shape (rows * cols,)
        Rows of the resample won by each neuron (for hit-weighted clustering).
    """

    seed: int
    weights: np.ndarray
    bmu: np.ndarray
    hits: np.ndarray


def train_bootstrap_maps(X: np.ndarray, som: SomConfig, n_resamples: int, seed: int) -> list[BootstrapMap]:
    """Retrain the map on ``n_resamples`` bootstrap resamples, each with its own seed.

    Any engine :func:`somseg.som.build_engine` knows is used as configured;
    only its seed changes, so stability covers both the sample and the
    engine's own randomness.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
        Standardised training data.
    som : SomConfig
    n_resamples : int
    seed : int
        Draws the resamples and the maps' seeds.

    Returns
    -------
    list of BootstrapMap
    """
    X = np.asarray(X, dtype=np.float64)
    rng = np.random.default_rng(seed)
    n_neurons = som.rows * som.cols
    maps = []
    for _ in range(n_resamples):  # one SOM training per resample; rows stay vectorised
        rows = rng.integers(0, len(X), len(X))
        map_seed = int(rng.integers(0, 2**31 - 1))
        engine = build_engine(som.model_copy(update={"seed": map_seed})).fit(X[rows])
        bmu = match_units(X, engine.weights_).bmu
        # Resample hits = original rows' hits weighted by how often each was drawn.
        hits = hit_counts(bmu, n_neurons, np.bincount(rows, minlength=len(X)).astype(np.float64))
        maps.append(BootstrapMap(seed=map_seed, weights=engine.weights_, bmu=bmu, hits=hits))
    return maps


def bootstrap_stability(
    segment: np.ndarray, maps: Sequence[BootstrapMap], segments: SegmentsConfig
) -> Stability:
    """Adjusted Rand index of each bootstrap map's segments against the main run's.

    Parameters
    ----------
    segment : ndarray of shape (n_rows,)
        The main run's segment of every original row.
    maps : sequence of BootstrapMap
        From :func:`train_bootstrap_maps` on the same rows.
    segments : SegmentsConfig
        How each bootstrap map's neurons are clustered (as the main run).

    Returns
    -------
    Stability
    """
    if not maps:
        raise ValueError("bootstrap stability needs at least one resample")
    with _one_thread():
        ari = [adjusted_rand_index(segment, _bootstrap_segments(m, segments)) for m in maps]
    return _stability(ari, maps)


def _stability(ari: Sequence[float], maps: Sequence[BootstrapMap]) -> Stability:
    return Stability(
        ari=[float(v) for v in ari], seeds=[m.seed for m in maps], mean_ari=float(np.mean(ari)), min_ari=float(np.min(ari))
    )


def adjusted_rand_index(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    """Adjusted Rand index of two labellings, as scikit-learn's ``adjusted_rand_score``.

    The same pair counts and the same closing formula in exact integers, so
    the value is scikit-learn's to the last bit; the contingency table is a
    single ``bincount`` instead of a sparse matrix, which matters when the
    bootstrap compares 200,000 rows some 80 times.

    Parameters
    ----------
    labels_true, labels_pred : ndarray of shape (n_rows,)
        Cluster labels (any sortable values; non-negative integers are fastest).

    Returns
    -------
    float
        1.0 for identical partitions (up to renaming), about 0 for independent ones.
    """
    true_codes, pred_codes = _codes(np.asarray(labels_true)), _codes(np.asarray(labels_pred))
    if len(true_codes) != len(pred_codes):
        raise ValueError(f"labellings differ in length: {len(true_codes)} and {len(pred_codes)}")
    n = len(true_codes)
    if n == 0:
        return 1.0
    n_pred = int(pred_codes.max()) + 1
    cells = np.bincount(true_codes * n_pred + pred_codes)
    pairs_same_both = _sum_of_squares(cells)
    # scikit-learn's pair confusion matrix, in Python integers (no overflow).
    tp = pairs_same_both - n
    fp = _sum_of_squares(np.bincount(pred_codes)) - pairs_same_both
    fn = _sum_of_squares(np.bincount(true_codes)) - pairs_same_both
    tn = n * n - fp - fn - pairs_same_both
    if fn == 0 and fp == 0:
        return 1.0
    return 2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))


def prediction_strength(labels: np.ndarray, other: np.ndarray) -> float:
    """How well another clustering of the same rows keeps each cluster of ``labels`` together.

    Tibshirani and Walther's prediction strength: for each cluster of
    ``labels``, the share of its pairs of rows that ``other`` also puts in
    one cluster; the smallest share over the clusters. A clustering whose
    every cluster comes back from a new sample scores near 1; one that cuts
    a continuum scores low on its worst cluster. A cluster of one row
    counts as kept.

    Parameters
    ----------
    labels, other : ndarray of shape (n_rows,)
        Cluster labels (any sortable values).

    Returns
    -------
    float
    """
    codes, other_codes = _codes(np.asarray(labels)), _codes(np.asarray(other))
    if len(codes) == 0:
        return 1.0
    width = int(other_codes.max()) + 1
    cells = np.bincount(codes * width + other_codes, minlength=(int(codes.max()) + 1) * width).reshape(-1, width)
    cells = cells.astype(np.float64)
    size = cells.sum(axis=1)
    together = (cells * (cells - 1)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(size > 1, together / (size * (size - 1)), 1.0)
    return float(share.min())


def _sum_of_squares(counts: np.ndarray) -> int:
    return int(np.dot(counts.astype(np.int64), counts.astype(np.int64)))


def _one_thread() -> threadpool_limits:
    """KMeans on a few dozen neurons gains nothing from OpenMP threads, and on a
    shared machine their spin-waiting made the many small fits several times slower."""
    return threadpool_limits(limits=1, user_api="openmp")


def _bootstrap_segments(bootstrap: BootstrapMap, segments: SegmentsConfig) -> np.ndarray:
    return cluster_neurons(bootstrap.weights, segments, hits=bootstrap.hits)[bootstrap.bmu]


# ---------------------------------------------------------------- choice of k

# The separation criteria and whether a higher value is better.
SEPARATION_CRITERIA = {"silhouette": True, "davies_bouldin": False, "calinski_harabasz": True}
_NAMES = {"silhouette": "silhouette", "davies_bouldin": "Davies–Bouldin", "calinski_harabasz": "Calinski–Harabasz"}


def score_k(
    weights: np.ndarray,
    hits: np.ndarray,
    segments: SegmentsConfig,
    k_values: Iterable[int],
    maps: Sequence[BootstrapMap] = (),
    bmu: np.ndarray | None = None,
) -> list[KScore]:
    """Cluster the neurons into each k and score the clustering.

    Silhouette, Davies–Bouldin and Calinski–Harabasz are computed on the
    neuron weight vectors weighted by their hits. With bootstrap ``maps``
    and the main run's best units ``bmu``, each k also gets the bootstrap
    ARI of the customer assignments (as :func:`bootstrap_stability`) and
    their mean :func:`prediction_strength`, from the same maps: clustering
    runs only, no SOM retraining.

    Parameters
    ----------
    weights : ndarray of shape (rows, cols, n_features)
    hits : ndarray of shape (rows * cols,)
    segments : SegmentsConfig
        Clustering method; its ``k`` is replaced by each candidate.
    k_values : iterable of int
        Candidates above the number of neurons are skipped.
    maps : sequence of BootstrapMap, optional
    bmu : ndarray of shape (n_rows,), optional
        Required with ``maps``.

    Returns
    -------
    list of KScore
    """
    flat = np.reshape(weights, (-1, np.shape(weights)[-1]))
    scores = []
    for k in (k for k in k_values if k <= len(flat)):
        config = segments.with_k(k)
        ari, strength = None, None
        with _one_thread():
            labels = cluster_neurons(weights, config, hits=hits)
            if maps and bmu is not None:
                main = labels[bmu]
                others = [_bootstrap_segments(m, config) for m in maps]
                ari = [adjusted_rand_index(main, other) for other in others]
                strength = float(np.mean([prediction_strength(main, other) for other in others]))
        scores.append(
            KScore(
                k=k,
                silhouette=silhouette(flat, labels, hits),
                davies_bouldin=davies_bouldin(flat, labels, hits),
                calinski_harabasz=calinski_harabasz(flat, labels, hits),
                mean_ari=None if ari is None else float(np.mean(ari)),
                ari_se=None if ari is None else _standard_error(ari),
                prediction_strength=strength,
            )
        )
    return scores


def _standard_error(values: Sequence[float]) -> float:
    return float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def recommend_k(
    scores: Sequence[KScore], configured_k: int | None, min_strength: float = 0.8, auto: bool = False
) -> KChoice:
    """Reproducible first, then the consensus of three validity indices.

    1. A k is *reproducible* when its prediction strength on the bootstrap
       maps (:func:`prediction_strength`, the mean over the maps) is at
       least ``min_strength``: 0.8, as Tibshirani and Walther (2005)
       recommend. Segments that a new sample would not give back are not
       worth naming; on a table with k groups, every k up to the true one
       is reproducible, and splits beyond it are not.
    2. Among the reproducible k, silhouette (higher is better),
       Davies–Bouldin (lower) and Calinski–Harabasz (higher), hit-weighted
       on the neurons, each rank the candidates, ties sharing the average
       rank; the best mean rank wins (a Borda count: no single index is
       trusted alone, as they drift with k in different directions on a
       quantised map). A tie goes to the larger k: the finer partition that
       is still reproducible.
    3. When no k is reproducible, the table shows no clear cluster
       structure: the most reproducible k is recommended, and the reason
       says so, with its silhouette.

    Without bootstrap maps (no prediction strength), every k is a candidate.

    Parameters
    ----------
    scores : sequence of KScore
    configured_k : int or None
        The run's k, or None when it is 'auto' (the recommendation is then used).
    min_strength : float
        The prediction strength that makes a k reproducible.
    auto : bool
        Whether the run uses the recommendation as its k.

    Returns
    -------
    KChoice
    """
    if not scores:
        raise ValueError("no candidate k to choose from")
    table = pd.DataFrame([s.model_dump() for s in scores]).set_index("k").astype(float)
    measured = table["prediction_strength"].notna().any()
    candidates = table.index[table["prediction_strength"] >= min_strength] if measured else table.index
    if len(candidates) == 0:
        best = int(table["prediction_strength"].idxmax())
        reason = (
            f"No k from {int(table.index.min())} to {int(table.index.max())} is reproducible (prediction strength "
            f"on the bootstrap maps at least {min_strength:g}); the most reproducible is k={best} "
            f"({table.loc[best, 'prediction_strength']:.2f}). The table shows no clear cluster structure: segments "
            f"cut a continuum (silhouette {table.loc[best, 'silhouette']:.2f}, {_silhouette_band(table.loc[best, 'silhouette'])})."
        )
    else:
        ranks = _separation_ranks(table.loc[candidates])
        mean_rank = ranks.mean(axis=1)
        best = int(mean_rank[mean_rank == mean_rank.min()].index.max())
        found = (
            f"Reproducible k (prediction strength at least {min_strength:g} on the bootstrap maps): "
            f"{', '.join(str(int(k)) for k in candidates)}. Among them"
            if measured
            else "No bootstrap maps, so no prediction strength: every k is a candidate. Of them"
        )
        winners = ", ".join(f"{_NAMES[name]} k={_best_k(table[name], up)}" for name, up in SEPARATION_CRITERIA.items())
        reason = (
            f"{found} k={best} has the best mean rank ({mean_rank[best]:.2f}) of silhouette "
            f"({table.loc[best, 'silhouette']:.2f}, {_silhouette_band(table.loc[best, 'silhouette'])}), "
            f"Davies–Bouldin ({table.loc[best, 'davies_bouldin']:.2f}) and Calinski–Harabasz "
            f"({table.loc[best, 'calinski_harabasz']:.0f}), hit-weighted on the neurons. Best over all k: {winners}."
        )
    return KChoice(
        scores=list(scores), recommended_k=best, reason=reason, configured_k=best if configured_k is None else configured_k,
        reproducible=bool(len(candidates)) if measured else None, auto=auto,
    )


def _silhouette_band(value: float) -> str:
    """Kaufman and Rousseeuw's reading of an average silhouette."""
    if not np.isfinite(value):
        return "undefined"
    if value > 0.70:
        return "strong structure"
    if value > 0.50:
        return "reasonable structure"
    if value > 0.25:
        return "weak structure"
    return "no substantial structure"


def _separation_ranks(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            name: table[name].rank(ascending=not higher, method="average", na_option="bottom")
            for name, higher in SEPARATION_CRITERIA.items()
        }
    )


def _best_k(values: pd.Series, higher_is_better: bool) -> int | None:
    if values.isna().all():
        return None
    return int(values.idxmax() if higher_is_better else values.idxmin())


# ---------------------------------------------------------------- the whole evaluation


def evaluate_segmentation(
    sample: EvaluationSample,
    weights: np.ndarray,
    neuron_segment: np.ndarray | None,
    figures: MapFigures,
    som: SomConfig,
    segments: SegmentsConfig,
    evaluation: EvaluationConfig,
) -> Evaluation:
    """Validity, map quality, bootstrap stability and the choice of k for one run.

    Parameters
    ----------
    sample : EvaluationSample
        The evaluation sample's standardised rows and their best units.
    weights : ndarray of shape (rows, cols, n_features)
        The run's map.
    neuron_segment : ndarray of shape (rows * cols,), or None
        The run's segment of each neuron; None when ``segments.k`` is
        'auto': the neurons are then clustered into the recommended k.
    figures : MapFigures
        The map measured on every row (quality figures and hits).
    som, segments, evaluation : SomConfig, SegmentsConfig, EvaluationConfig
        How the run was trained and clustered, and how to evaluate it.

    Returns
    -------
    Evaluation
        Its ``segments.k`` is the k the run uses.
    """
    X = np.asarray(sample.X, dtype=np.float64)
    maps = train_bootstrap_maps(X, som, evaluation.bootstrap_resamples, evaluation.seed)
    k_values = range(evaluation.k_min, evaluation.k_max + 1)
    auto = segments.k == "auto"
    choice = recommend_k(
        score_k(weights, figures.hits, segments, k_values, maps, sample.bmu),
        None if auto else int(segments.k),
        evaluation.min_prediction_strength,
        auto=auto,
    )
    if auto:
        segments = segments.with_k(choice.recommended_k)
        with _one_thread():
            neuron_segment = cluster_neurons(weights, segments, hits=figures.hits)
    elif neuron_segment is None:
        raise ValueError("the run's segments are needed unless segments.k is 'auto'")
    segment = np.asarray(neuron_segment)[sample.bmu]
    separation = separation_scores(X, segment, sample_size=evaluation.silhouette_sample, random_state=evaluation.seed)
    stability = None
    if maps:
        measured = bootstrap_stability(segment, maps, segments)
        check = stability_check(measured.mean_ari, evaluation.min_mean_ari)
        stability = measured.model_copy(
            update={"min_mean_ari": evaluation.min_mean_ari, "passed": None if check is None else check.passed}
        )
    return Evaluation(
        segments=SegmentsEvaluation(method=segments.method, k=int(segments.k), **separation.model_dump()),
        map=MapQuality.of(figures),
        stability=stability,
        k_choice=choice,
        notes=NOTES,
    )


NOTES = {
    "segments": "silhouette, Davies–Bouldin and Calinski–Harabasz of the customers' segments, on the standardised "
    "evaluation sample (every row up to evaluation.stability_rows)",
    "topographic_error_8": TE_CONVENTIONS[8],
    "topographic_error_4": TE_CONVENTIONS[4],
    "kaski_lagus_error": "distance to best unit + shortest 8-neighbour grid path to the second-best unit (weight-space length)",
    "stability": "adjusted Rand index of the sampled rows assigned through each bootstrap-trained map and its clustering",
    "k_choice": "validity of the neuron clustering weighted by hits; ARI and prediction strength per k from the same "
    "bootstrap maps; recommended: the reproducible k (prediction strength at least evaluation.min_prediction_strength) "
    "with the best mean rank of the three indices",
}
