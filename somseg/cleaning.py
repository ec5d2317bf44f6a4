"""Imputation, a declared transform, and standardisation fitted on the training data only.

Fitting is a learner over partitions (:class:`CleaningFit`): a first pass
summarises each feature (count, range, values out of their valid range,
distinct values when few); refinement passes find exact medians and deciles
(and the quartiles or percentiles a ``robust`` or ``quantile`` transform
needs) where a feature has many distinct values; a last pass sums the
imputed features' moments and the rows in each decile bin. :class:`FeatureCleaner`
drives the same learner over one table in memory, so a table of one
partition is cleaned to the last bit as scikit-learn's ``StandardScaler``
cleans it.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from somseg import kernels
from somseg.batch_som import TrainingBlock, training_block
from somseg.drift import DECILES
from somseg.errors import DataError
from somseg.kernels import DedupMode
from somseg.stats import (
    CoMoments,
    Moments,
    OrderStatistics,
    Summaries,
    SummaryRequest,
    WindowRequest,
    Windows,
    fit_in_memory,
    median_from,
    median_ranks,
    quantile_from,
    quantile_ranks,
)

Bounds = tuple[float | None, float | None]
Transform = Literal["none", "log1p", "signed_log1p", "robust", "quantile"]
TRANSFORMS: tuple[Transform, ...] = ("none", "log1p", "signed_log1p", "robust", "quantile")
_SAMPLE_VALUES = 5
# Sums of squares of up to 10^8 rows stay finite below this magnitude (float64 overflows near 1.8e308).
_LARGEST = 1e150
# The quantile transform's reference: the exact percentiles 0, 1, ..., 100 of the training values.
QUANTILE_LEVELS = np.linspace(0.0, 1.0, 101)
QUARTILES = np.array([0.25, 0.75])
# A normal deviate's largest size after the quantile transform, as scikit-learn's QuantileTransformer
# bounds it: the training extremes map to about ±5.2 standard deviations, not to infinity.
_TAIL = 1e-7
# The interquartile range of a normal distribution in standard deviations: a robust scale so
# measured is comparable with the standard deviations the other features are divided by.
_IQR_PER_SD = 1.3489795003921634


def _signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def _signed_expm1(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.expm1(np.abs(x))


# Each transform and its inverse; "none" is absent.
_FUNCTIONS = {"log1p": (np.log1p, np.expm1), "signed_log1p": (_signed_log1p, _signed_expm1)}


def apply_transforms(
    values: np.ndarray,
    transforms: Sequence[Transform],
    inverse: bool = False,
    quantiles: Sequence[np.ndarray | None] | None = None,
) -> np.ndarray:
    """Each column of ``values`` (imputed, raw units) through its transform, in place.

    ``log1p`` is ``log(1 + x)``, for values above -1 (counts, amounts of
    money); ``signed_log1p`` is ``sign(x) * log(1 + |x|)``, for values of
    either sign (balances); ``quantile`` maps a value to the standard
    normal deviate of its rank among the training values (``quantiles``:
    the training values at :data:`QUANTILE_LEVELS`, linear in between).
    All three are monotone, so a median imputed before the transform is the
    transformed values' median. ``robust`` and ``none`` change nothing here:
    ``robust`` centres and scales by the median and interquartile range,
    which is the cleaner's standardisation. ``inverse`` maps transformed
    values back to raw units.

    Parameters
    ----------
    values : ndarray of shape (n_rows, n_features)
    transforms : sequence of str
        One of :data:`TRANSFORMS` per column.
    inverse : bool
    quantiles : sequence of ndarray or None, optional
        Per column, the reference percentiles of a ``quantile`` column.

    Returns
    -------
    ndarray
        ``values``, transformed.
    """
    for c, transform in enumerate(transforms):
        if transform in _FUNCTIONS:
            values[:, c] = _FUNCTIONS[transform][int(inverse)](values[:, c])
        elif transform == "quantile":
            if quantiles is None or quantiles[c] is None:
                raise ValueError(f"column {c}: the quantile transform needs its reference percentiles")
            reference = np.asarray(quantiles[c], dtype=np.float64)
            values[:, c] = _from_normal(values[:, c], reference) if inverse else _to_normal(values[:, c], reference)
    return values


def _to_normal(x: np.ndarray, reference: np.ndarray) -> np.ndarray:
    # Interpolating forwards and backwards and averaging gives a value that repeats in the
    # reference (a spike of zeros, say) the middle of its levels, as scikit-learn does.
    up = np.interp(x, reference, QUANTILE_LEVELS)
    down = -np.interp(-x, -reference[::-1], -QUANTILE_LEVELS[::-1])
    return ndtri(np.clip(0.5 * (up + down), _TAIL, 1.0 - _TAIL))


def _from_normal(z: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return np.interp(ndtr(z), QUANTILE_LEVELS, reference)


def feature_matrix(frame: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    """The features of ``frame`` as a new float64 array (n_rows, n_features), NaN where missing.

    Raises
    ------
    DataError
        If a feature column is absent.
    """
    missing = [name for name in features if name not in frame.columns]
    if missing:
        raise DataError(f"the table lacks feature column(s) {', '.join(missing)}")
    return frame[list(features)].to_numpy(dtype=np.float64, copy=True)


# --- the learner ---------------------------------------------------------------------


@dataclass(frozen=True)
class ValueProfile:
    """First-pass partial result: column summaries, missing values and values out of range."""

    summaries: Summaries
    n_rows: int
    missing: np.ndarray
    outside: np.ndarray
    samples: tuple[tuple[float, ...], ...]

    def __add__(self, other: "ValueProfile") -> "ValueProfile":
        samples = tuple((a + b)[:_SAMPLE_VALUES] for a, b in zip(self.samples, other.samples, strict=True))
        return ValueProfile(
            self.summaries + other.summaries,
            self.n_rows + other.n_rows,
            self.missing + other.missing,
            self.outside + other.outside,
            samples,
        )


@dataclass(frozen=True)
class ProfileRequest:
    """First pass: summarise each feature and count its values outside ``bounds``."""

    bounds: tuple[Bounds, ...]

    def partial(self, values: np.ndarray) -> ValueProfile:
        outside = []
        samples = []
        for column, (low, high) in zip(np.asarray(values, dtype=np.float64).T, self.bounds, strict=True):
            bad = np.zeros(len(column), dtype=bool)
            if low is not None:
                bad |= column < low
            if high is not None:
                bad |= column > high
            outside.append(int(bad.sum()))
            samples.append(tuple(float(v) for v in column[bad][:_SAMPLE_VALUES]))
        return ValueProfile(
            SummaryRequest().partial(values),
            len(values),
            np.isnan(values).sum(axis=0).astype(np.int64),
            np.array(outside, dtype=np.int64),
            tuple(samples),
        )


@dataclass(frozen=True)
class ScalingPartial:
    """Last-pass partial result: moments of the imputed features, rows per decile bin."""

    moments: Moments
    bins: tuple[np.ndarray, ...]

    def __add__(self, other: "ScalingPartial") -> "ScalingPartial":
        return ScalingPartial(self.moments + other.moments, tuple(a + b for a, b in zip(self.bins, other.bins, strict=True)))


@dataclass(frozen=True)
class ScalingRequest:
    """Last pass: impute with the medians, transform, take moments (as ``StandardScaler``), count rows per decile bin."""

    medians: np.ndarray
    edges: tuple[np.ndarray, ...]
    transforms: tuple[Transform, ...] = ()
    quantiles: tuple[np.ndarray | None, ...] | None = None

    def impute(self, values: np.ndarray) -> np.ndarray:
        """A copy of ``values`` with each missing value replaced by its feature's median, then transformed."""
        imputed = np.array(values, dtype=np.float64, copy=True)
        np.copyto(imputed, self.medians, where=np.isnan(imputed))
        return apply_transforms(imputed, self.transforms, quantiles=self.quantiles)

    def partial(self, values: np.ndarray) -> ScalingPartial:
        return self.summarise(values, self.impute(values))

    def summarise(self, values: np.ndarray, imputed: np.ndarray) -> ScalingPartial:
        """The pass's partial result from the raw ``values`` and the same rows imputed."""
        bins = tuple(counts.astype(float) for counts in kernels.bin_counts(values, self.edges))
        return ScalingPartial(Moments.of_complete(imputed), bins)


@dataclass(frozen=True)
class ImputedPartition:
    """One partition through the last cleaning pass: its partial result, and its rows ready to train on.

    Attributes
    ----------
    partial : ScalingPartial
        The partition's share of the last pass of :class:`CleaningFit`.
    moments : CoMoments
        Co-moments of the partition's imputed rows (every row, weight 1).
    block : TrainingBlock
        The imputed rows to train on, deduplicated when the ``dedup`` mode
        says so. Standardising them needs the means and scales the whole
        pass learns, so it happens when they are used.
    """

    partial: ScalingPartial
    moments: CoMoments
    block: TrainingBlock


def impute_partition(values: np.ndarray, request: ScalingRequest, dedup: DedupMode = "auto") -> ImputedPartition:
    """Run the last cleaning pass on one partition and keep what training needs from it.

    Fusing the two spares reading every partition once more: a pass of its
    own would only impute the same values again.

    Parameters
    ----------
    values : ndarray of shape (n_rows, n_features)
        The partition's raw features, NaN where missing.
    request : ScalingRequest
        The last request of :class:`CleaningFit`.
    dedup : {'auto', 'always', 'never'}
        As for :func:`somseg.batch_som.training_block`.

    Returns
    -------
    ImputedPartition
    """
    imputed = request.impute(values)
    return ImputedPartition(request.summarise(values, imputed), CoMoments.of(imputed), training_block(imputed, dedup))


@dataclass(frozen=True)
class TrainingStatistics:
    """What the whole training table teaches: the fitted cleaner and the drift reference.

    Attributes
    ----------
    cleaner : FeatureCleaner
    feature_reference : dict
        ``{feature: {"edges": [...], "shares": [...]}}``: the training
        deciles and the share of rows in each bin (last share: missing).
    n_rows : int
    """

    cleaner: "FeatureCleaner"
    feature_reference: dict[str, dict[str, list[float]]]
    n_rows: int


@dataclass
class CleaningFit:
    """Learns medians, scaling and the drift reference of features spread over partitions.

    Parameters
    ----------
    features : sequence of str
        Feature names, in the order of the value arrays the partitions give.
    bounds : sequence of (float or None, float or None), optional
        Valid range of each feature; a value outside stops the fit.
    source : str
        How error messages name the data (for example the input file).
    transforms : sequence of {'none', 'log1p', 'signed_log1p', 'robust', 'quantile'}, optional
        Applied to each feature after imputation, before scaling.
    blocks : sequence of sequence of int, optional
        The columns of each categorical feature's one-hot block (see :class:`FeatureCleaner`).
    refuse_constant : bool
        Stop the fit on a feature with one observed value: it cannot tell
        customers apart, and a label rule on it would hold for every
        segment (``StandardScaler`` keeps it, at scale 1).
    """

    features: Sequence[str]
    bounds: Sequence[Bounds] | None = None
    source: str = "the table"
    transforms: Sequence[Transform] | None = None
    blocks: Sequence[Sequence[int]] | None = None
    refuse_constant: bool = False
    _order: OrderStatistics | None = field(default=None, init=False)
    _profile: ValueProfile | None = field(default=None, init=False)
    _scaling: ScalingRequest | None = field(default=None, init=False)
    _result: TrainingStatistics | None = field(default=None, init=False)
    _quartiles: list[np.ndarray | None] = field(default_factory=list, init=False)

    def request(self) -> ProfileRequest | WindowRequest | ScalingRequest | None:
        if self._profile is None:
            bounds = tuple(self.bounds) if self.bounds is not None else tuple((None, None) for _ in self.features)
            return ProfileRequest(bounds)
        if self._result is not None:
            return None
        assert self._order is not None
        pending = self._order.request()
        if pending is not None:
            return pending
        if self._scaling is None:
            self._scaling = self._scaling_request()
        return self._scaling

    def update(self, total: Any) -> None:
        if self._profile is None:
            self._start(total)
        elif isinstance(total, Windows):
            assert self._order is not None
            self._order.update(total)
        else:
            self._finish(total)

    def result(self) -> TrainingStatistics:
        if self._result is None:
            raise RuntimeError("CleaningFit is not finished; drive it until request() is None")
        return self._result

    def _start(self, profile: ValueProfile) -> None:
        self._check(profile)
        self._profile = profile
        self._order = OrderStatistics(self._ranks_of)
        self._order.update(profile.summaries)

    def _check(self, profile: ValueProfile) -> None:
        if profile.n_rows == 0:
            raise DataError(f"{self.source} has no rows")
        empty = [name for name, summary in zip(self.features, profile.summaries.columns) if summary.n == 0]
        if empty:
            raise DataError(f"{self.source}: no observed values in column(s) {', '.join(empty)}; cannot fit cleaning")
        bounds = self.bounds or [(None, None)] * len(self.features)
        problems = [
            f"column {name!r}: {int(count)} row(s) outside the valid range [{low}, {high}]; "
            f"sample values: {', '.join(f'{v:g}' for v in samples)}"
            for name, (low, high), count, samples in zip(self.features, bounds, profile.outside, profile.samples)
            if count
        ]
        below = [
            f"column {name!r}: transform log1p needs values above -1, the lowest is {summary.low:g} "
            "(signed_log1p takes values of either sign)"
            for name, transform, summary in zip(self.features, self._transforms(), profile.summaries.columns)
            if transform == "log1p" and summary.n and summary.low <= -1
        ]
        problems += below
        problems += [
            f"column {name!r}: values as large as {max(abs(summary.low), abs(summary.high)):g} cannot be standardised "
            "(their squares overflow); give the feature a max, or transform: log1p, signed_log1p or quantile"
            for name, transform, summary in zip(self.features, self._transforms(), profile.summaries.columns)
            if transform in ("none", "robust") and summary.n and max(abs(summary.low), abs(summary.high)) > _LARGEST
        ]
        if self.refuse_constant:
            in_blocks = set(self._block_columns())
            problems += [
                f"column {name!r} has one value ({summary.low:g}) in all {summary.n:,} rows with a value: it cannot "
                "tell customers apart; leave it out of the features (the config's 'features' or --features)"
                for c, (name, summary) in enumerate(zip(self.features, profile.summaries.columns, strict=True))
                if c not in in_blocks and summary.n and summary.low == summary.high
            ]
        if problems:
            raise DataError(f"{self.source}: " + "; ".join(problems))

    def _transforms(self) -> tuple[Transform, ...]:
        return tuple(self.transforms) if self.transforms is not None else tuple("none" for _ in self.features)

    def _block_columns(self) -> list[int]:
        return [int(column) for block in self.blocks or () for column in block]

    def _levels(self) -> list[np.ndarray]:
        """The quantiles each feature needs besides its median: deciles, and its transform's."""
        extra = {"robust": QUARTILES, "quantile": QUANTILE_LEVELS}
        return [np.concatenate([DECILES, extra.get(transform, [])]) for transform in self._transforms()]

    def _ranks_of(self, n_observed: np.ndarray) -> list[np.ndarray]:
        return [
            np.concatenate([median_ranks(int(n)), *quantile_ranks(int(n), levels)[:2]])
            for n, levels in zip(n_observed, self._levels(), strict=True)
        ]

    def _scaling_request(self) -> ScalingRequest:
        assert self._order is not None
        found = self._order.result()
        medians = np.array([median_from(values[:2]) for values in found])
        for column in self._block_columns():
            # A missing category is imputed with the block's shares, which standardise to 0:
            # it pulls the row towards no level rather than towards the commonest.
            summary = self._order.summaries_[column]
            assert summary.counts is not None  # a 0/1 column has two distinct values
            values, counts = summary.counts
            medians[column] = float(np.dot(values, counts) / summary.n)
        edges, quartiles, quantiles = [], [], []
        for n, values, levels, transform in zip(
            self._order.n_observed_, found, self._levels(), self._transforms(), strict=True
        ):
            lower, upper = values[2 : 2 + len(levels)], values[2 + len(levels) :]
            at = quantile_from(lower, upper, quantile_ranks(int(n), levels)[2])
            edges.append(np.unique(at[: len(DECILES)]))
            quartiles.append(at[len(DECILES) :] if transform == "robust" else None)
            quantiles.append(at[len(DECILES) :] if transform == "quantile" else None)
        self._quartiles = quartiles
        return ScalingRequest(medians, tuple(edges), self._transforms(), tuple(quantiles))

    def _finish(self, total: ScalingPartial) -> None:
        assert self._profile is not None and self._scaling is not None
        n_rows = self._profile.n_rows
        cleaner = FeatureCleaner(list(self.features), self.bounds, self._transforms(), self.blocks)
        cleaner.medians_ = self._scaling.medians
        cleaner.mean_ = total.moments.mean[0].copy()
        cleaner.scale_ = standard_scale(total.moments.m2[0] / total.moments.n[0], cleaner.mean_, total.moments.n[0])
        for c, quartiles in enumerate(self._quartiles):
            # A feature whose middle half is one value (mostly zeros, say) has no robust
            # scale: it keeps its standard deviation rather than be divided by zero.
            if quartiles is not None and quartiles[1] > quartiles[0]:
                cleaner.mean_[c] = self._scaling.medians[c]
                cleaner.scale_[c] = (quartiles[1] - quartiles[0]) / _IQR_PER_SD
        for block in self.blocks or ():
            # Two rows at different levels differ by 2 / scale**2 in squared distance; at this
            # scale they do so as often, on average, as two rows differ on a standardised feature.
            shares = cleaner.mean_[list(block)]
            spread = 1.0 - float(np.sum(shares**2))
            cleaner.scale_[list(block)] = np.sqrt(spread) if spread > 0 else 1.0
        cleaner.quantiles_ = list(self._scaling.quantiles or [None] * len(self.features))
        cleaner.n_imputed_ = self._profile.missing.astype(np.int64)
        reference = {
            name: {"edges": edges.tolist(), "shares": (counts / n_rows).tolist()}
            for name, edges, counts in zip(self.features, self._scaling.edges, total.bins)
        }
        self._result = TrainingStatistics(cleaner, reference, n_rows)


def standard_scale(variance: np.ndarray, mean: np.ndarray, n_samples: np.ndarray) -> np.ndarray:
    """``StandardScaler``'s scale: the population sd, 1 for (near-)constant features.

    A feature is constant when its variance is within the error bound of the
    two-pass algorithm (Chan, Golub and LeVeque), as scikit-learn decides.
    """
    eps = np.finfo(np.float64).eps
    constant = variance <= n_samples * eps * variance + (n_samples * mean * eps) ** 2
    scale = np.sqrt(variance)
    scale[constant] = 1.0
    return scale


# --- the estimator -----------------------------------------------------------------


class FeatureCleaner:
    """Median imputation, a declared transform per feature, then standardisation.

    Standardisation is to zero mean and unit variance, but for a ``robust``
    feature: to zero median and an interquartile range of 1.349 (a normal
    distribution's, in standard deviations), so that a few absurd values do
    not squeeze the rest; and for the 0/1 columns of a categorical feature
    (a *block*): each column minus its share ``p``, divided by
    ``sqrt(1 - sum(p**2))``, so that the block adds as much to the expected
    squared distance between two customers as one standardised feature. A
    missing category is imputed with the shares.

    Both are learned by :meth:`fit` on training data and applied unchanged by
    :meth:`transform`: new data is imputed with the *training* medians and
    scaled with the *training* means and standard deviations.

    Parameters
    ----------
    features : sequence of str
        Columns to use, in the order of the output matrix.
    bounds : sequence of (float or None, float or None), optional
        Valid range of each feature; :meth:`fit` refuses values outside.
    transforms : sequence of {'none', 'log1p', 'signed_log1p', 'robust', 'quantile'}, optional
        Applied to each imputed feature before scaling (:func:`apply_transforms`).
    blocks : sequence of sequence of int, optional
        The column indices of each categorical feature's 0/1 columns.

    Attributes
    ----------
    medians_ : ndarray of shape (n_features,)
        Median of each feature over its observed training values.
    mean_ : ndarray of shape (n_features,)
        Mean of each imputed, transformed training feature (the median for
        a ``robust`` one): the value standardised to 0.
    scale_ : ndarray of shape (n_features,)
        Population standard deviation (ddof=0) of each imputed, transformed
        training feature, 1 where it is 0, so a constant feature maps to 0;
        for a ``robust`` feature its interquartile range / 1.349 when that
        is above 0.
    quantiles_ : list of ndarray or None
        For a ``quantile`` feature, its training values at
        :data:`QUANTILE_LEVELS`; None for the others.
    n_imputed_ : ndarray of shape (n_features,)
        How many training values of each feature were missing.
    """

    def __init__(
        self,
        features: Sequence[str],
        bounds: Sequence[Bounds] | None = None,
        transforms: Sequence[Transform] | None = None,
        blocks: Sequence[Sequence[int]] | None = None,
    ) -> None:
        self.features = features
        self.bounds = bounds
        self.transforms = transforms
        self.blocks = blocks

    @property
    def transforms_in_use(self) -> tuple[Transform, ...]:
        return tuple(self.transforms) if self.transforms is not None else tuple("none" for _ in self.features)

    def fit(self, frame: pd.DataFrame) -> "FeatureCleaner":
        """Learn medians and scaling from ``frame``; returns self."""
        learner = CleaningFit(list(self.features), self.bounds, transforms=self.transforms, blocks=self.blocks)
        fit_in_memory(learner, feature_matrix(frame, self.features))
        fitted = learner.result().cleaner
        self.medians_, self.mean_, self.scale_, self.n_imputed_, self.quantiles_ = (
            fitted.medians_,
            fitted.mean_,
            fitted.scale_,
            fitted.n_imputed_,
            fitted.quantiles_,
        )
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Impute with the training medians and standardise.

        Returns
        -------
        ndarray of shape (n_rows, n_features), float64
        """
        return self.transform_values(feature_matrix(frame, self.features))

    def transform_values(self, values: np.ndarray) -> np.ndarray:
        """:meth:`transform` of a raw feature array (n_rows, n_features), in place."""
        return self.standardise_values(self.impute_values(values))

    def impute_values(self, values: np.ndarray) -> np.ndarray:
        """Replace the missing values of a raw feature array with the training medians and transform it, in place."""
        self._check_fitted()
        np.copyto(values, self.medians_, where=np.isnan(values))
        return apply_transforms(values, self.transforms_in_use, quantiles=self.quantiles_)

    def standardise_values(self, imputed: np.ndarray) -> np.ndarray:
        """Standardise an imputed feature array with the training means and scales, in place."""
        self._check_fitted()
        imputed -= self.mean_
        imputed /= self.scale_
        return imputed

    def fit_transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Fit on ``frame`` and return it cleaned."""
        return self.fit(frame).transform(frame)

    def inverse_transform(self, standardised: np.ndarray) -> np.ndarray:
        """Map standardised values (such as neuron weights) back to raw units."""
        self._check_fitted()
        scaled = np.asarray(standardised, dtype=np.float64) * self.scale_ + self.mean_
        rows = scaled.reshape(-1, scaled.shape[-1])  # any leading shape (a grid of neurons, say)
        return apply_transforms(rows, self.transforms_in_use, inverse=True, quantiles=self.quantiles_).reshape(scaled.shape)

    def to_dict(self) -> dict[str, Any]:
        """The fitted parameters as plain lists (JSON-ready, exact floats)."""
        self._check_fitted()
        return {
            "features": list(self.features),
            "medians": self.medians_.tolist(),
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
            "n_imputed": self.n_imputed_.tolist(),
            "transforms": list(self.transforms_in_use),
            "quantiles": [None if q is None else np.asarray(q).tolist() for q in self.quantiles_],
            "blocks": [[int(c) for c in block] for block in self.blocks or ()],
        }

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> "FeatureCleaner":
        """Rebuild a fitted cleaner from :meth:`to_dict` output."""
        cleaner = cls(list(params["features"]), transforms=params.get("transforms"), blocks=params.get("blocks") or None)
        cleaner.medians_ = np.asarray(params["medians"], dtype=float)
        cleaner.mean_ = np.asarray(params["mean"], dtype=float)
        cleaner.scale_ = np.asarray(params["scale"], dtype=float)
        cleaner.n_imputed_ = np.asarray(params.get("n_imputed", [0] * len(cleaner.features)), dtype=int)
        quantiles = params.get("quantiles") or [None] * len(cleaner.features)
        cleaner.quantiles_ = [None if q is None else np.asarray(q, dtype=float) for q in quantiles]
        return cleaner

    def _check_fitted(self) -> None:
        if not hasattr(self, "medians_"):
            raise RuntimeError("FeatureCleaner is not fitted yet; call fit() first")
