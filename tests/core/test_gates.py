"""somseg.gates: every pass/fail decision, with messages that name the setting."""

import math

import pytest

from somseg.config import DriftGateConfig, GateConfig
from somseg.gates import Check, drift_checks, drift_problems, failed, map_checks, stability_check


def test_map_gates_pass_at_their_limits_and_name_the_setting() -> None:
    gates = GateConfig(max_quantization_error=0.5, max_topographic_error=0.1)
    assert all(check.passed for check in map_checks(0.5, 0.1, gates))
    assert failed(map_checks(0.61, 0.05, gates)) == [
        "quantization error 0.61 > max 0.5 (gates.max_quantization_error)"
    ]


@pytest.mark.parametrize("value", [None, math.nan])
def test_a_figure_that_was_not_measured_never_passes(value) -> None:
    (check,) = [c for c in map_checks(0.3, value, GateConfig()) if c.name == "topographic error"]
    assert not check.passed and "not measured" in check.problem()


def test_the_stability_gate_is_a_minimum_and_off_without_a_setting() -> None:
    assert stability_check(0.9, None) is None
    check = stability_check(0.7, 0.85)
    assert isinstance(check, Check) and not check.passed
    assert check.problem() == "mean bootstrap adjusted Rand index 0.7 < min 0.85 (evaluation.min_mean_ari)"
    assert stability_check(0.85, 0.85).passed


def test_drift_names_each_limit_crossed_largest_feature_first() -> None:
    drift = DriftGateConfig(max_outlier_share=0.15, max_segment_psi=0.25, max_feature_psi=0.25)
    problems = drift_problems(0.2, 0.1, {"Age": 0.3, "Family_Size": 0.9, "X": 0.2}, drift)
    assert problems == [
        "outlier share 0.2 > max 0.15 (drift.max_outlier_share)",
        "feature Family_Size PSI 0.9 > max 0.25 (drift.max_feature_psi)",
        "feature Age PSI 0.3 > max 0.25 (drift.max_feature_psi)",
    ]
    assert [c.name for c in drift_checks(0.2, 0.1, {"A": 0.1, "B": 0.2}, drift)][2:] == ["feature B PSI", "feature A PSI"]
    assert drift_problems(0.15, 0.25, {"Age": 0.25}, drift) == []  # limits are inclusive
    assert drift_problems(0.9, 0.9, {"Age": 0.9}, drift.model_copy(update={"action": "off"})) == []
