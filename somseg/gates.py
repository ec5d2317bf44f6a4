"""Every pass/fail decision of a run, in one place.

The quality gates (quantization and topographic error), the stability gate
(mean bootstrap ARI) and the drift limits of a scoring run are each a list of
:class:`Check`. The tasks that stop a run, ``metrics.json``'s
``gates_passed``, the run summary in the Prefect UI and the HTML report all
read these, so they cannot disagree.
"""

import math
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from somseg.config import DriftGateConfig, GateConfig


class Check(BaseModel):
    """One measured value against its limit.

    ``passed`` is False for a value that is missing or NaN: a figure that
    could not be measured never passes a gate.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    setting: str
    value: float | None
    limit: float
    at_least: bool = False

    @property
    def passed(self) -> bool:
        if self.value is None or math.isnan(self.value):
            return False
        return self.value >= self.limit if self.at_least else self.value <= self.limit

    def problem(self) -> str:
        """The failure as one line: what, how much, against which setting."""
        shown = "not measured" if self.value is None or math.isnan(self.value) else f"{self.value:.5g}"
        relation = "<" if self.at_least else ">"
        bound = "min" if self.at_least else "max"
        return f"{self.name} {shown} {relation} {bound} {self.limit} ({self.setting})"


def map_checks(quantization_error: float | None, topographic_error: float | None, gates: GateConfig) -> list[Check]:
    """The map's quality gates."""
    return [
        Check(
            name="quantization error",
            setting="gates.max_quantization_error",
            value=quantization_error,
            limit=gates.max_quantization_error,
        ),
        Check(
            name="topographic error",
            setting="gates.max_topographic_error",
            value=topographic_error,
            limit=gates.max_topographic_error,
        ),
    ]


def stability_check(mean_ari: float | None, min_mean_ari: float | None) -> Check | None:
    """The stability gate, or None when it is off (``evaluation.min_mean_ari`` unset)."""
    if min_mean_ari is None:
        return None
    return Check(
        name="mean bootstrap adjusted Rand index",
        setting="evaluation.min_mean_ari",
        value=mean_ari,
        limit=min_mean_ari,
        at_least=True,
    )


def drift_checks(
    outlier_share: float, segment_psi: float, feature_psi: Mapping[str, float], drift: DriftGateConfig
) -> list[Check]:
    """The drift limits of a scoring run, the features with the largest PSI first."""
    checks = [
        Check(name="outlier share", setting="drift.max_outlier_share", value=outlier_share, limit=drift.max_outlier_share),
        Check(name="segment mix PSI", setting="drift.max_segment_psi", value=segment_psi, limit=drift.max_segment_psi),
    ]
    for feature, psi in sorted(feature_psi.items(), key=lambda item: -item[1]):
        checks.append(Check(name=f"feature {feature} PSI", setting="drift.max_feature_psi", value=psi, limit=drift.max_feature_psi))
    return checks


def failed(checks: Sequence[Check | None]) -> list[str]:
    """One line per failed check."""
    return [check.problem() for check in checks if check is not None and not check.passed]


def drift_problems(
    outlier_share: float, segment_psi: float, feature_psi: Mapping[str, float], drift: DriftGateConfig
) -> list[str]:
    """What drifted beyond its limit and by how much; nothing when ``drift.action`` is 'off'."""
    if drift.action == "off":
        return []
    return failed(drift_checks(outlier_share, segment_psi, feature_psi, drift))
