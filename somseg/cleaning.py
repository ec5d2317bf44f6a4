"""Imputation and standardisation fitted on the training data only."""

from collections.abc import Sequence

import numpy as np
import pandas as pd

from somseg.errors import DataError


class FeatureCleaner:
    """Median imputation, then standardisation to zero mean and unit variance.

    Both are learned by :meth:`fit` on training data and applied unchanged by
    :meth:`transform`: new data is imputed with the *training* medians and
    scaled with the *training* means and standard deviations.

    Parameters
    ----------
    features : sequence of str
        Columns to use, in the order of the output matrix.

    Attributes
    ----------
    medians_ : ndarray of shape (n_features,)
        Median of each feature over its observed training values.
    mean_ : ndarray of shape (n_features,)
        Mean of each imputed training feature.
    scale_ : ndarray of shape (n_features,)
        Population standard deviation (ddof=0) of each imputed training
        feature; 1 where it is 0, so a constant feature maps to 0.
    n_imputed_ : ndarray of shape (n_features,)
        How many training values of each feature were missing.
    """

    def __init__(self, features: Sequence[str]) -> None:
        self.features = features

    def fit(self, frame: pd.DataFrame) -> "FeatureCleaner":
        """Learn medians and scaling from ``frame``; returns self."""
        self._fit_imputed(self._values(frame))
        return self

    def _fit_imputed(self, values: np.ndarray) -> np.ndarray:
        """Fit on raw ``values`` and return them imputed (the scaler's input)."""
        missing = np.isnan(values)
        all_missing = missing.all(axis=0)
        if len(values) == 0 or all_missing.any():
            empty = [name for name, flag in zip(self.features, all_missing) if flag] or list(self.features)
            raise DataError(f"cannot fit cleaning: no observed values in column(s) {', '.join(empty)}")
        self.medians_ = np.nanmedian(values, axis=0)
        self.n_imputed_ = missing.sum(axis=0)
        # Imported here: scoring only transforms, and need not load scikit-learn (0.5 s).
        from sklearn.preprocessing import StandardScaler

        # In place, with the mask already at hand: no second table-sized array.
        np.copyto(values, self.medians_, where=missing)
        imputed = values
        # StandardScaler itself, so the reference figures are reproduced bit for bit.
        scaler = StandardScaler().fit(imputed)
        self.mean_ = scaler.mean_
        self.scale_ = scaler.scale_
        return imputed

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Impute with the training medians and standardise.

        Returns
        -------
        ndarray of shape (n_rows, n_features), float64
        """
        self._check_fitted()
        return self._standardise(self._impute(self._values(frame)))

    def fit_transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Fit on ``frame`` and return it cleaned, as ``fit(frame).transform(frame)`` in one pass."""
        return self._standardise(self._fit_imputed(self._values(frame)))

    def _standardise(self, imputed: np.ndarray) -> np.ndarray:
        imputed -= self.mean_
        imputed /= self.scale_
        return imputed

    def inverse_transform(self, standardised: np.ndarray) -> np.ndarray:
        """Map standardised values (such as neuron weights) back to raw units."""
        self._check_fitted()
        return np.asarray(standardised) * self.scale_ + self.mean_

    def to_dict(self) -> dict[str, list[float] | list[str] | list[int]]:
        """The fitted parameters as plain lists (JSON-ready, exact floats)."""
        self._check_fitted()
        return {
            "features": list(self.features),
            "medians": self.medians_.tolist(),
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
            "n_imputed": self.n_imputed_.tolist(),
        }

    @classmethod
    def from_dict(cls, params: dict) -> "FeatureCleaner":
        """Rebuild a fitted cleaner from :meth:`to_dict` output."""
        cleaner = cls(list(params["features"]))
        cleaner.medians_ = np.asarray(params["medians"], dtype=float)
        cleaner.mean_ = np.asarray(params["mean"], dtype=float)
        cleaner.scale_ = np.asarray(params["scale"], dtype=float)
        cleaner.n_imputed_ = np.asarray(params.get("n_imputed", [0] * len(cleaner.features)), dtype=int)
        return cleaner

    def _values(self, frame: pd.DataFrame) -> np.ndarray:
        missing = [name for name in self.features if name not in frame.columns]
        if missing:
            raise DataError(f"the table lacks feature column(s) {', '.join(missing)}")
        return frame[list(self.features)].to_numpy(dtype=np.float64, copy=True)

    def _impute(self, values: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(values), self.medians_, values)

    def _check_fitted(self) -> None:
        if not hasattr(self, "medians_"):
            raise RuntimeError("FeatureCleaner is not fitted yet; call fit() first")
