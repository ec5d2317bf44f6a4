"""Segments for rows, and the figures of a scored table, partition by partition.

A partition is imputed with the *training* medians, scaled with the
*training* scaler, matched to the map and labelled (:func:`score_frame`), or,
for the training rows, labelled from the matching the assessment already did
(:func:`assign_rows`). Each partition also returns a :class:`ScoreSummary`
of sums; the summaries of all partitions add up to the whole table's, so the
figures (quantization and topographic error, outlier share, segment mix,
feature drift) do not depend on how the table was partitioned.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from somseg import kernels
from somseg.cleaning import feature_matrix
from somseg.dataset import fill_rows
from somseg.drift import population_stability_index
from somseg.metrics import UnitMatch, topographic_errors
from somseg.model import SegmentationModel
from somseg.results import ScoringFigures, SegmentShare

# Rows scored at once, in one buffer refilled block after block: few enough that the buffer is not a
# partition's size, enough that each block's fixed costs (the matching's look for repeated rows) stay small.
_BLOCK_ROWS = 1 << 18


@dataclass(frozen=True)
class ScoreSummary:
    """Sums over scored rows; ``+`` merges two sets of rows."""

    n_rows: int
    distance_sum: float
    topographic_errors_8: int
    topographic_errors_4: int
    outliers: int
    segment_counts: np.ndarray
    feature_counts: dict[str, np.ndarray] = field(default_factory=dict)

    def __add__(self, other: "ScoreSummary") -> "ScoreSummary":
        names = list(dict.fromkeys([*self.feature_counts, *other.feature_counts]))
        return ScoreSummary(
            self.n_rows + other.n_rows,
            self.distance_sum + other.distance_sum,
            self.topographic_errors_8 + other.topographic_errors_8,
            self.topographic_errors_4 + other.topographic_errors_4,
            self.outliers + other.outliers,
            self.segment_counts + other.segment_counts,
            {name: self.feature_counts.get(name, 0) + other.feature_counts.get(name, 0) for name in names},
        )

    def figures(self, model: SegmentationModel) -> ScoringFigures:
        """The scored table's figures, its segment mix and features against the training data's."""
        n = max(self.n_rows, 1)
        shares = self.segment_counts / n
        trained = np.asarray(model.training.segment_shares, dtype=float)
        reference = model.training.feature_reference
        single = model.grid_shape[0] * model.grid_shape[1] == 1
        return ScoringFigures(
            n_rows=self.n_rows,
            quantization_error=self.distance_sum / n,
            topographic_error=float("nan") if single else self.topographic_errors_8 / n,
            topographic_error_4=float("nan") if single else self.topographic_errors_4 / n,
            outlier_share=self.outliers / n,
            outlier_threshold=model.outlier_threshold,
            segments=[
                SegmentShare(
                    segment=s,
                    label=model.labels[s],
                    count=int(self.segment_counts[s]),
                    share=float(shares[s]),
                    training_share=float(trained[s]),
                )
                for s in range(len(shares))
            ],
            segment_psi=population_stability_index(trained, shares),
            feature_psi={
                name: population_stability_index(ref["shares"], np.asarray(self.feature_counts.get(name, 0)) / n)
                for name, ref in reference.items()
            },
        )


def assign_rows(model: SegmentationModel, ids: pd.Series, match: UnitMatch) -> tuple[pd.DataFrame, ScoreSummary]:
    """The per-row output of rows already matched to the model's map, and their sums."""
    scored = model.assign(ids, match.bmu, match.distance)
    cols = model.grid_shape[1]
    summary = ScoreSummary(
        n_rows=len(scored),
        distance_sum=float(match.distance.sum()),
        topographic_errors_8=int(topographic_errors(match, cols, 8).sum()),
        topographic_errors_4=int(topographic_errors(match, cols, 4).sum()),
        outliers=int(scored["is_outlier"].sum()),
        segment_counts=np.bincount(scored["segment"].to_numpy(), minlength=len(model.labels)).astype(np.int64),
    )
    return scored, summary


def score_frame(model: SegmentationModel, frame: pd.DataFrame) -> tuple[pd.DataFrame, ScoreSummary]:
    """Segments of new rows, with the training medians, scaler and map, and their sums.

    Parameters
    ----------
    model : SegmentationModel
    frame : DataFrame
        The model's id column and features (raw units, NaN where missing).

    Returns
    -------
    scored : DataFrame
        The schema of ``segments.parquet``.
    summary : ScoreSummary
        Including each feature's rows per training decile bin (drift).
    """
    return score_values(model, frame[model.id_column], feature_matrix(frame, model.feature_names))


def score_values(model: SegmentationModel, ids: pd.Series, raw: np.ndarray) -> tuple[pd.DataFrame, ScoreSummary]:
    """:func:`score_frame` of rows given as their ids and their raw feature array.

    Parameters
    ----------
    model : SegmentationModel
    ids : Series
        The rows' ids.
    raw : ndarray of shape (n_rows, n_features)
        The model's features in its order, raw units, NaN where missing; left as it is.

    Returns
    -------
    scored : DataFrame
    summary : ScoreSummary
    """
    raw = np.asarray(raw)
    if raw.ndim != 2:
        raise ValueError(f"raw must be 2-D (n_rows, n_features), got shape {raw.shape}")
    return score_columns(model, ids, [raw[:, c] for c in range(raw.shape[1])])


def score_columns(
    model: SegmentationModel, ids: pd.Series, columns: Sequence[np.ndarray]
) -> tuple[pd.DataFrame, ScoreSummary]:
    """:func:`score_frame` of rows given as their ids and one raw array per feature.

    The rows are binned, imputed, standardised and matched a block of
    :data:`_BLOCK_ROWS` at a time (rounded to whole chunks of the matching
    kernel, so that it cuts the rows where it would cut them at once), in
    one buffer: the columns are read where they lie (a partition's mapped
    file), and no array of every row and feature is made.

    Parameters
    ----------
    model : SegmentationModel
    ids : Series
        The rows' ids.
    columns : sequence of ndarray of shape (n_rows,)
        The model's features in its order, raw units, NaN where missing.

    Returns
    -------
    scored : DataFrame
    summary : ScoreSummary
    """
    n_rows, names = len(ids), model.feature_names
    if len(columns) != len(names) or any(len(column) != n_rows for column in columns):
        raise ValueError(f"{len(columns)} feature columns of lengths {sorted({len(c) for c in columns})} for "
                         f"{len(names)} features of {n_rows} rows")
    binned = [c for c, name in enumerate(names) if name in model.training.feature_reference]
    edges = [np.asarray(model.training.feature_reference[names[c]]["edges"], dtype=float) for c in binned]
    counts = [np.zeros(len(e) + 2, dtype=np.int64) for e in edges]
    bmu, second = np.empty(n_rows, dtype=np.int64), np.empty(n_rows, dtype=np.int64)
    distance = np.empty(n_rows)
    chunk = kernels.default_chunk_rows(model.weights.shape[0] * model.weights.shape[1])
    block_rows = chunk * max(1, _BLOCK_ROWS // chunk)
    # The kernel's own bounds: a one-row tail joins the block before it, as it joins the chunk before it.
    bounds = kernels.chunk_bounds(n_rows, block_rows)
    buffer = np.empty((max((stop - start for start, stop in bounds), default=0), len(names)))
    for start, stop in bounds:
        block = fill_rows(buffer[: stop - start], columns, start)
        for total, found in zip(counts, kernels.bin_counts(block if len(binned) == len(names) else block[:, binned],
                                                             edges), strict=True):
            total += found
        match = model.match(model.cleaner.transform_values(block))
        bmu[start:stop], second[start:stop], distance[start:stop] = match.bmu, match.second, match.distance
    scored, summary = assign_rows(model, ids, UnitMatch(bmu=bmu, second=second, distance=distance))
    bins = {names[c]: total.astype(float) for c, total in zip(binned, counts, strict=True)}
    return scored, ScoreSummary(**{**summary.__dict__, "feature_counts": bins})
