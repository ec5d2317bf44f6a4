"""SOM-Ward: hit-weighted Ward clustering of a map's neurons, merging only grid neighbours.

Vesanto & Alhoniemi (2000) cluster a trained map by agglomerating its
neurons with Ward's criterion, allowing only clusters that touch on the grid
to merge, so that every segment is a connected region of the map. Each
neuron stands for the customers it wins, so it is weighted by its hits:
merging clusters A and B costs the rise in within-cluster sum of squares of
the data they quantise,

    cost(A, B) = w_A w_B / (w_A + w_B) * |c_A - c_B|^2,

with ``w`` the hits and ``c`` the hit-weighted centroid of the weight vectors.

scikit-learn's ``AgglomerativeClustering(linkage="ward", connectivity=...)``
does the unweighted version but takes no sample weights, hence this module.
After a merge, the new cluster's costs are recomputed from its centroid and
weight rather than by the Lance–Williams recurrence; for Ward the two are
algebraically identical, and the direct form does not accumulate round-off
over hundreds of merges. Each merge is one vectorised pass over an (n, n)
cost matrix, so the method suits maps of up to a few thousand neurons.
"""

from typing import Literal

import numpy as np

Adjacency = Literal[4, 8]
MAX_NEURONS = 2500  # the dense cost matrix costs n^2 memory and n^3 time


def grid_edges(rows: int, cols: int, adjacency: Adjacency = 4) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of adjacent neurons of a rectangular grid, each pair once.

    Parameters
    ----------
    rows, cols : int
        Grid shape; neurons are numbered row-major.
    adjacency : {4, 8}
        4: the direct neighbours (SOM Toolbox's convention); 8: diagonals too
        (MiniSom's).

    Returns
    -------
    (ndarray, ndarray) of int64
        Indices ``i`` and ``j`` of each adjacent pair, ``i < j``.
    """
    offsets = {4: [(0, 1), (1, 0)], 8: [(0, 1), (1, 0), (1, 1), (1, -1)]}
    if adjacency not in offsets:
        raise ValueError(f"adjacency must be 4 or 8, got {adjacency!r}")
    r, c = np.divmod(np.arange(rows * cols), cols)
    starts, ends = [], []
    for dr, dc in offsets[adjacency]:
        keep = (r + dr < rows) & (c + dc >= 0) & (c + dc < cols)
        starts.append(np.flatnonzero(keep))
        ends.append((r[keep] + dr) * cols + c[keep] + dc)
    i, j = np.concatenate(starts), np.concatenate(ends)
    return np.minimum(i, j).astype(np.int64), np.maximum(i, j).astype(np.int64)


def grid_adjacency(rows: int, cols: int, adjacency: Adjacency = 4) -> np.ndarray:
    """Dense symmetric boolean adjacency matrix (n, n) of a rectangular grid."""
    i, j = grid_edges(rows, cols, adjacency)
    matrix = np.zeros((rows * cols, rows * cols), dtype=bool)
    matrix[i, j] = matrix[j, i] = True
    return matrix


class SomWard:
    """Hit-weighted Ward clustering of a SOM's neurons, restricted to grid neighbours.

    Parameters
    ----------
    n_clusters : int
        Number of segments.
    adjacency : {4, 8}
        Which neurons count as touching. 4 (default, as scikit-learn's
        ``grid_to_graph``) makes every segment 4-connected, so two segments
        never cross at a corner on the segment map.
    dead_weight : float
        Weight of a neuron with no hits, as a fraction of the mean positive
        weight. Such neurons still need a segment (new customers may land on
        them); a tiny weight makes them join, at almost no cost, the
        touching cluster nearest in weight space, without moving its centroid.

    Attributes
    ----------
    labels_ : ndarray of int64, shape (rows * cols,)
        Segment of each neuron (row-major), numbered by first appearance.
    merge_costs_ : ndarray of float64, shape (rows * cols - n_clusters,)
        Ward cost of each merge, in order; a jump marks a natural k.
    n_neurons_ : int
        Number of neurons seen by :meth:`fit`.
    """

    def __init__(self, n_clusters: int = 4, adjacency: Adjacency = 4, dead_weight: float = 1e-6) -> None:
        self.n_clusters = n_clusters
        self.adjacency = adjacency
        self.dead_weight = dead_weight

    def fit(self, weights: np.ndarray, sample_weight: np.ndarray | None = None) -> "SomWard":
        """Cluster the neurons of ``weights`` (rows, cols, n_features); returns self.

        Parameters
        ----------
        weights : ndarray of shape (rows, cols, n_features)
            The map's codebook.
        sample_weight : ndarray of shape (rows * cols,), optional
            Hits of each neuron (row-major); all neurons weigh the same if
            omitted.

        Returns
        -------
        self
        """
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim != 3:
            raise ValueError(f"weights must have shape (rows, cols, n_features); got {weights.shape}")
        rows, cols, n_features = weights.shape
        n = rows * cols
        if not 1 <= self.n_clusters <= n:
            raise ValueError(f"n_clusters={self.n_clusters} must be between 1 and the {n} neurons")
        if n > MAX_NEURONS:
            raise ValueError(f"SOM-Ward handles up to {MAX_NEURONS} neurons; this map has {n}: use kmeans")
        mass = _neuron_weights(sample_weight, n, self.dead_weight)
        owner, costs = _agglomerate(
            weights.reshape(n, n_features), mass, grid_adjacency(rows, cols, self.adjacency), self.n_clusters
        )
        self.labels_ = _first_appearance_labels(owner)
        self.merge_costs_ = costs
        self.n_neurons_ = n
        return self

    def fit_predict(self, weights: np.ndarray, sample_weight: np.ndarray | None = None) -> np.ndarray:
        """Fit and return :attr:`labels_`."""
        return self.fit(weights, sample_weight).labels_


def _neuron_weights(sample_weight: np.ndarray | None, n: int, dead_weight: float) -> np.ndarray:
    if sample_weight is None:
        return np.ones(n)
    mass = np.asarray(sample_weight, dtype=np.float64).ravel()
    if mass.shape != (n,) or not np.isfinite(mass).all() or (mass < 0).any():
        raise ValueError(f"sample_weight must hold {n} finite non-negative values (one per neuron)")
    positive = mass > 0
    if not positive.any():
        return np.ones(n)
    return np.where(positive, mass, dead_weight * mass[positive].mean())


def _agglomerate(
    centroid: np.ndarray, mass: np.ndarray, touching: np.ndarray, n_clusters: int
) -> tuple[np.ndarray, np.ndarray]:
    """Merge the cheapest touching pair until ``n_clusters`` remain.

    Cluster ids are the index of a surviving neuron; row ``a`` of the state
    describes cluster ``a`` while it is alive.
    """
    n = len(mass)
    centroid, mass, touching = centroid.copy(), mass.copy(), touching.copy()
    cost = np.where(touching, _ward_costs(centroid, mass, np.arange(n)), np.inf)
    owner = np.arange(n)
    costs = np.empty(n - n_clusters)
    for step in range(n - n_clusters):
        a, b = divmod(int(np.argmin(cost)), n)  # the matrix is symmetric, so a < b
        if not np.isfinite(cost[a, b]):
            raise ValueError("the grid is not connected; cannot merge further")
        costs[step] = cost[a, b]
        _merge(a, b, centroid, mass, touching, owner)
        cost[b, :] = cost[:, b] = np.inf
        cost[a, :] = cost[:, a] = np.where(touching[a], _ward_costs(centroid, mass, a), np.inf)
    return owner, costs


def _merge(a: int, b: int, centroid: np.ndarray, mass: np.ndarray, touching: np.ndarray, owner: np.ndarray) -> None:
    total = mass[a] + mass[b]
    centroid[a] = (mass[a] * centroid[a] + mass[b] * centroid[b]) / total
    mass[a], mass[b] = total, 0.0
    touching[a] |= touching[b]
    touching[a, [a, b]] = False
    touching[:, a] = touching[a]
    touching[b, :] = touching[:, b] = False
    owner[owner == b] = a


def _ward_costs(centroid: np.ndarray, mass: np.ndarray, which: int | np.ndarray) -> np.ndarray:
    """Ward merge cost between cluster(s) ``which`` and every cluster."""
    diff = centroid[which, ..., None, :] - centroid
    squared = np.einsum("...k,...k->...", diff, diff)
    with np.errstate(invalid="ignore", divide="ignore"):
        return mass[which, ..., None] * mass / (mass[which, ..., None] + mass) * squared


def _first_appearance_labels(owner: np.ndarray) -> np.ndarray:
    # Number segments by their first neuron in row-major order, so the
    # labels do not depend on which neuron happened to survive each merge.
    _, first, inverse = np.unique(owner, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))
    return rank[inverse].astype(np.int64)
