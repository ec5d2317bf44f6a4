"""Naming segments by declarative rules over their profiles.

Names follow the profiles, never the cluster numbering: a retrain that
permutes KMeans' indices gives every customer the same name.
"""

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from somseg.config import Condition, LabelRule

TYPICAL = "Typical Customers"
UNPOPULATED = "Unpopulated Segment"
_FALLBACK_FEATURES = 2


class SegmentLabeller:
    """Give each segment a unique human name.

    Rules are tried in order and each names at most one segment. Among the
    still-unnamed segments that meet every condition of a rule, the one with
    the widest margin (the smallest margin over its conditions, in
    population standard deviations) takes the name; ties go to the larger
    segment. Segments no rule names are described by the features on which
    they differ most from the population, e.g. "High Age, Low Family Size";
    a level of a categorical feature enters only when the segment has more
    of it than the population ("Gender: Female"), since fewer of one level
    is more of the others.

    Parameters
    ----------
    rules : sequence of LabelRule
    fallback_min_z : float
        How far (in population sds) a segment mean must be from the
        population mean for the feature to enter a fallback name.
    levels : mapping of str to str, optional
        The one-hot columns of categorical features and how a name shows
        each (``{"Gender=Female": "Gender: Female"}``).

    Attributes
    ----------
    labels_ : dict of int to str
        Name of each segment.
    rule_of_ : dict of int to (str or None)
        The rule that named each segment; None for fallback names.
    """

    def __init__(
        self, rules: Sequence[LabelRule], fallback_min_z: float = 0.5, levels: Mapping[str, str] | None = None
    ) -> None:
        self.rules = rules
        self.fallback_min_z = fallback_min_z
        self.levels = levels

    def fit(self, profiles: pd.DataFrame, population: pd.DataFrame) -> "SegmentLabeller":
        """Name the segments of ``profiles`` given the population statistics.

        Parameters
        ----------
        profiles : DataFrame
            From :func:`somseg.segments.profile_segments`: ``segment``,
            ``size`` and ``<feature>_mean`` columns.
        population : DataFrame
            From :func:`somseg.segments.population_stats`: ``mean`` and ``sd``
            indexed by feature.

        Returns
        -------
        self
        """
        z = _standardised_means(profiles, population)
        segments = profiles["segment"].to_numpy()
        sizes = profiles["size"].to_numpy()
        labels: dict[int, str] = {}
        rule_of: dict[int, str | None] = {}
        for rule in self.rules:
            margin = _rule_margin(rule, z, population)
            eligible = ~np.isin(segments, list(labels)) & (sizes > 0) & (margin >= 0)
            if not eligible.any():
                continue
            order = np.lexsort((-sizes, -np.where(eligible, margin, -np.inf)))
            chosen = int(segments[order[0]])
            labels[chosen] = rule.label
            rule_of[chosen] = rule.label
        for position, segment in enumerate(segments):
            if int(segment) not in labels:
                name = self._fallback(z.iloc[position], sizes[position])
                labels[int(segment)] = _unique(name, set(labels.values()))
                rule_of[int(segment)] = None
        self.labels_ = {int(s): labels[int(s)] for s in segments}
        self.rule_of_ = {int(s): rule_of[int(s)] for s in segments}
        return self

    def _fallback(self, z_row: pd.Series, size: int) -> str:
        if size == 0:
            return UNPOPULATED
        levels = self.levels or {}
        distinct = z_row[(z_row.abs() >= self.fallback_min_z) & ~(z_row.index.isin(list(levels)) & (z_row < 0))]
        if distinct.empty:
            return TYPICAL
        strongest = distinct.abs().sort_values(ascending=False).index[:_FALLBACK_FEATURES]
        return ", ".join(
            levels[name] if name in levels else f"{'High' if z_row[name] > 0 else 'Low'} {name}" for name in strongest
        )


def _standardised_means(profiles: pd.DataFrame, population: pd.DataFrame) -> pd.DataFrame:
    columns = {}
    for feature, stats in population.iterrows():
        sd = stats["sd"] if stats["sd"] > 0 else 1.0
        columns[feature] = (profiles[f"{feature}_mean"] - stats["mean"]) / sd
    return pd.DataFrame(columns)


def _rule_margin(rule: LabelRule, z: pd.DataFrame, population: pd.DataFrame) -> np.ndarray:
    """Smallest margin (in sds) by which each segment meets the rule; < 0 if it fails."""
    margins = [_condition_margin(condition, z, population) for condition in rule.when]
    return np.min(np.vstack(margins), axis=0)


def _condition_margin(condition: Condition, z: pd.DataFrame, population: pd.DataFrame) -> np.ndarray:
    stats = population.loc[condition.feature]
    if not stats["sd"] > 0:
        # A feature with no spread describes no segment: "mean + 0 sd" would hold for every one.
        return np.full(len(z), -np.inf)
    sd = stats["sd"]
    threshold = condition.z if condition.z is not None else (condition.value - stats["mean"]) / sd
    observed = z[condition.feature].to_numpy(dtype=float)
    margin = observed - threshold if condition.op in (">", ">=") else threshold - observed
    if condition.op in (">", "<"):
        # A strict comparison that holds with equality is a failure.
        margin = np.where(margin == 0, -np.inf, margin)
    return np.nan_to_num(margin, nan=-np.inf)


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    suffix = 2
    while f"{name} ({suffix})" in taken:
        suffix += 1
    return f"{name} ({suffix})"
