"""somseg.gates: every pass/fail decision, with messages that name the setting."""

import math
from types import SimpleNamespace

import pytest

from somseg.config import DriftGateConfig, GateConfig
from somseg.gates import Check, drift_checks, failed, judge_drift, map_checks, stability_check
from somseg.results import ScoringFigures, TrainingRecord


def _map(qe: float | None, te: float | None, relative: float | None = 0.3, ev: float | None = 0.8) -> SimpleNamespace:
    return SimpleNamespace(quantization_error=qe, topographic_error=te, relative_quantization_error=relative,
                           explained_variance=ev)


def test_map_gates_pass_at_their_limits_and_name_the_setting() -> None:
    gates = GateConfig(max_quantization_error=0.5, max_relative_quantization_error=None, max_topographic_error=0.1)
    assert [check.name for check in map_checks(_map(0.5, 0.1), gates)] == ["quantization error", "topographic error"]
    assert all(check.passed for check in map_checks(_map(0.5, 0.1), gates))
    assert failed(map_checks(_map(0.61, 0.05), gates)) == [
        "quantization error 0.61 > max 0.5 (gates.max_quantization_error)"
    ]


def test_the_default_qe_gate_is_relative_and_explained_variance_can_be_a_minimum() -> None:
    gates = GateConfig(min_explained_variance=0.5)
    assert [check.setting for check in map_checks(_map(1.85, 0.05), gates)] == [
        "gates.max_relative_quantization_error", "gates.max_topographic_error", "gates.min_explained_variance"
    ]
    # 17 features: an absolute QE of 1.85 is a good map when a one-neuron map's is four times as large.
    assert failed(map_checks(_map(1.85, 0.05, relative=0.46), gates)) == []
    assert failed(map_checks(_map(3.9, 0.05, relative=0.95, ev=0.1), gates)) == [
        "quantization error relative to one neuron 0.95 > max 0.8 (gates.max_relative_quantization_error)",
        "explained variance 0.1 < min 0.5 (gates.min_explained_variance)",
    ]
    assert [check.value for check in map_checks(None, gates)] == [None, None, None]


def test_the_dead_neuron_share_is_a_gate_only_when_set() -> None:
    figures = SimpleNamespace(quantization_error=0.3, relative_quantization_error=0.3, topographic_error=0.05,
                              explained_variance=0.9, dead_neuron_share=0.6)
    assert "gates.max_dead_neuron_share" not in [c.setting for c in map_checks(figures, GateConfig())]
    assert failed(map_checks(figures, GateConfig(max_dead_neuron_share=0.5))) == [
        "dead neuron share 0.6 > max 0.5 (gates.max_dead_neuron_share)"
    ]


@pytest.mark.parametrize("value", [None, math.nan])
def test_a_figure_that_was_not_measured_never_passes(value) -> None:
    (check,) = [c for c in map_checks(_map(0.3, value), GateConfig()) if c.name == "topographic error"]
    assert not check.passed and "not measured" in check.problem()


def test_the_stability_gate_is_a_minimum_and_off_without_a_setting() -> None:
    assert stability_check(0.9, None) is None
    check = stability_check(0.7, 0.85)
    assert isinstance(check, Check) and not check.passed
    assert check.problem() == "mean bootstrap adjusted Rand index 0.7 < min 0.85 (evaluation.min_mean_ari)"
    assert stability_check(0.85, 0.85).passed


def _scored(n_rows: int, outlier_share: float, segment_psi: float, feature_psi: dict[str, float]) -> ScoringFigures:
    return ScoringFigures(
        n_rows=n_rows, quantization_error=0.4, topographic_error=0.05, topographic_error_4=0.1,
        outlier_share=outlier_share, outlier_threshold=1.0, segments=[], segment_psi=segment_psi, feature_psi=feature_psi,
    )


def _training(features: list[str], n_rows: int = 100_000) -> TrainingRecord:
    deciles = {"edges": list(range(1, 10)), "shares": [0.1] * 10 + [0.0]}
    return TrainingRecord(n_rows=n_rows, quantization_error=0.4, topographic_error=0.05,
                          segment_shares=[0.25] * 4, feature_reference={name: deciles for name in features})


def _problems(scored: ScoringFigures, drift: DriftGateConfig) -> list[str]:
    return judge_drift(scored, _training(list(scored.feature_psi)), 0.05, drift).problems


def test_drift_names_each_limit_crossed_largest_feature_first() -> None:
    drift = DriftGateConfig(max_outlier_share=0.15, max_segment_psi=0.25, max_feature_psi=0.25)
    problems = _problems(_scored(100_000, 0.2, 0.1, {"Age": 0.3, "Family_Size": 0.9, "X": 0.2}), drift)
    assert problems == [
        "outlier share 0.2 > max 0.15 (drift.max_outlier_share)",
        "feature Family_Size PSI 0.9 > max 0.25 (drift.max_feature_psi)",
        "feature Age PSI 0.3 > max 0.25 (drift.max_feature_psi)",
    ]
    checks = drift_checks(_scored(100_000, 0.2, 0.1, {"A": 0.1, "B": 0.2}), _training(["A", "B"]), 0.05, drift)
    assert [c.name for c in checks][2:] == ["feature B PSI", "feature A PSI"]
    assert _problems(_scored(100_000, 0.15, 0.25, {"Age": 0.25}), drift) == []  # limits are inclusive
    off = judge_drift(_scored(100_000, 0.9, 0.9, {"Age": 0.9}), _training(["Age"]), 0.05,
                      drift.model_copy(update={"action": "off"}))
    assert off.problems == [] and not off.judged and "drift.action is off" in off.note


def test_on_few_rows_a_limit_rises_to_what_sampling_alone_reaches() -> None:
    drift = DriftGateConfig()
    # PSI 0.4 on 60 rows is what ten bins of six rows each show with no drift at all; on 60,000 rows it is drift.
    assert _problems(_scored(60, 0.05, 0.1, {"Age": 0.4}), drift) == []
    assert _problems(_scored(60_000, 0.05, 0.1, {"Age": 0.4}), drift) == [
        "feature Age PSI 0.4 > max 0.25 (drift.max_feature_psi)"
    ]
    (problem,) = _problems(_scored(60, 0.05, 0.1, {"Age": 3.0}), drift)
    assert problem.startswith("feature Age PSI 3 > max 0.25 (drift.max_feature_psi), and > ")
    assert problem.endswith("the level sampling alone reaches on 60 rows")
    # Twelve outliers in sixty rows, where one in twenty is expected, is more than chance.
    (problem,) = _problems(_scored(60, 0.2, 0.1, {"Age": 0.1}), drift)
    assert problem.startswith("outlier share 0.2 > max 0.15")


def test_too_few_rows_are_reported_not_judged() -> None:
    verdict = judge_drift(_scored(20, 0.5, 5.0, {"Age": 5.0}), _training(["Age"]), 0.05, DriftGateConfig(min_rows=30))
    assert not verdict.judged and verdict.problems == []
    assert verdict.note.startswith("too few rows to judge drift: 20 scored, drift.min_rows is 30")
    assert [check.value for check in verdict.checks] == [0.5, 5.0, 5.0]


def test_sampling_levels_are_the_same_run_after_run() -> None:
    scored, training = _scored(500, 0.05, 0.1, {"Age": 0.1, "Income": 0.2}), _training(["Age", "Income"])
    first = drift_checks(scored, training, 0.05, DriftGateConfig())
    assert first == drift_checks(scored, training, 0.05, DriftGateConfig())
    assert all(check.sampling_level is not None and check.sampling_level > 0 for check in first)


def _invalid(n_rows: int, above: int, not_numbers: int = 0, files: tuple[str, ...] = ("in.csv",)):
    import numpy as np

    from somseg.validity import InvalidRows

    counts = np.array([[not_numbers, 0, above], [0, 0, 0]], dtype=np.int64)
    samples = (("abc",) * min(not_numbers, 1) + ("150",) * min(above, 1), ())
    return InvalidRows(("Age", "Income"), ((18.0, 100.0), (0.0, None)), n_rows, above + not_numbers, counts, samples,
                       files if above + not_numbers else ())


def test_under_fail_one_invalid_row_stops_the_run_naming_the_column_count_samples_and_setting() -> None:
    from somseg.config import QualityConfig
    from somseg.errors import DataError
    from somseg.gates import judge_invalid_rows

    with pytest.raises(DataError) as failure:
        judge_invalid_rows(_invalid(1000, 1), QualityConfig(), "in.csv")

    message = str(failure.value)
    assert message.startswith("input in.csv: 1 row(s) have a value that does not parse (as a number, date or category) or is outside its declared range")
    assert "column 'Age': 1 row(s) (1 above max 100); sample values: 150" in message
    assert "quality.invalid_rows: drop" in message
    assert "Income" not in message


def test_under_fail_a_clean_table_is_recorded_with_nothing_rejected() -> None:
    from somseg.config import QualityConfig
    from somseg.gates import judge_invalid_rows

    record = judge_invalid_rows(_invalid(1000, 0), QualityConfig(), "in.csv")

    assert (record.policy, record.rejected_rows, record.input_rows, record.share, record.by_column) == ("fail", 0, 1000, 0, {})


def test_under_drop_rows_up_to_the_share_are_dropped_and_recorded() -> None:
    from somseg.config import QualityConfig
    from somseg.gates import judge_invalid_rows

    record = judge_invalid_rows(_invalid(1000, 6, 4), QualityConfig(invalid_rows="drop"), "in.csv")

    assert (record.policy, record.rejected_rows, record.share, record.max_share) == ("drop", 10, 0.01, 0.01)
    assert record.by_column == {"Age": 10}


def test_under_drop_a_share_above_the_limit_fails_naming_the_setting_to_raise() -> None:
    from somseg.config import QualityConfig
    from somseg.errors import DataError
    from somseg.gates import judge_invalid_rows

    with pytest.raises(DataError) as failure:
        judge_invalid_rows(_invalid(1000, 7, 4, files=("a.parquet", "b.parquet")), QualityConfig(invalid_rows="drop"),
                           "data/")

    message = str(failure.value)
    assert message.startswith("input data/ (a.parquet, b.parquet): 11 of 1,000 row(s) (1.10%) are invalid, above "
                              "quality.max_invalid_share 0.01")
    assert "column 'Age': 11 row(s) (4 not a number, 7 above max 100); sample values: abc, 150" in message
    assert "raise quality.max_invalid_share" in message
