"""The drift check announces drift beyond a limit as an event with the figures, under 'warn' and 'fail' alike."""

import json
from types import SimpleNamespace
from typing import Any

import pytest
from prefect.events.schemas.events import Event
from prefect.logging import disable_run_logger

from somseg.config import DriftGateConfig
from somseg.errors import DriftError
from somseg.gates import failed
from somseg.results import Check, DriftVerdict, ScoringFigures
from somseg.tasks import scoring
from somseg.tasks.scoring import DRIFT_EVENT, check_drift, drift_event_payload

FLOW_RUN_ID = "0b7c4f2e-3f0a-4a4e-9d43-0f6b8a1c2d3e"
# The figures of the scoring run that ended green with three limits crossed.
FIGURES = ScoringFigures(
    n_rows=2000, quantization_error=0.5, topographic_error=0.05, topographic_error_4=0.07, outlier_share=0.154,
    outlier_threshold=1.2, segments=[], segment_psi=0.344,
    feature_psi={"Age": 0.676, "Family_Size": 0.012, "Work_Experience": float("nan")},
)


def _verdict(figures: ScoringFigures = FIGURES, drift: DriftGateConfig = DriftGateConfig()) -> DriftVerdict:
    checks = [
        Check(name="outlier share", setting="drift.max_outlier_share", value=figures.outlier_share,
              limit=drift.max_outlier_share, sampling_level=0.1, sampling_rows=figures.n_rows),
        Check(name="segment mix PSI", setting="drift.max_segment_psi", value=figures.segment_psi,
              limit=drift.max_segment_psi, sampling_level=0.3, sampling_rows=figures.n_rows),
        *[Check(name=f"feature {name} PSI", setting="drift.max_feature_psi", value=psi, limit=drift.max_feature_psi)
          for name, psi in figures.feature_psi.items()],
    ]
    return DriftVerdict(judged=True, checks=checks, problems=failed(checks))


@pytest.fixture
def emitted(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The events the check emits, as it would be inside the flow run ``FLOW_RUN_ID``."""
    events: list[dict[str, Any]] = []
    monkeypatch.setattr(scoring, "_current_flow_run", lambda: SimpleNamespace(id=FLOW_RUN_ID, name="witty-fox"))
    monkeypatch.setattr(scoring, "emit_event", lambda **event: events.append(event))
    return events


def test_the_payload_holds_the_figures_the_limits_and_what_was_crossed() -> None:
    payload = drift_event_payload(_verdict(), DriftGateConfig(), FIGURES, "customers_2026-11.csv")

    assert payload["action"] == "warn" and payload["input"] == "customers_2026-11.csv" and payload["n_rows"] == 2000
    assert payload["outlier_share"] == 0.154 and payload["segment_psi"] == 0.344
    assert payload["feature_psi"] == {"Age": 0.676, "Family_Size": 0.012, "Work_Experience": None}
    assert payload["limits"] == {"max_outlier_share": 0.15, "max_segment_psi": 0.25, "max_feature_psi": 0.25}
    crossed = {entry["check"]: entry for entry in payload["crossed"]}
    assert list(crossed) == ["outlier share", "segment mix PSI", "feature Age PSI", "feature Work_Experience PSI"]
    # The segment mix is held to what sampling alone reaches, above its setting.
    assert crossed["segment mix PSI"] | {} == {"check": "segment mix PSI", "setting": "drift.max_segment_psi",
                                               "value": 0.344, "limit": 0.25, "bound": 0.3}
    assert crossed["feature Work_Experience PSI"]["value"] is None
    assert payload["problems"][2] == "feature Age PSI 0.676 > max 0.25 (drift.max_feature_psi)"
    json.dumps(payload, allow_nan=False)  # plain JSON, no NaN


def test_a_warning_emits_the_event_of_the_flow_run(emitted: list[dict[str, Any]]) -> None:
    with disable_run_logger():
        check_drift.fn(_verdict(), DriftGateConfig(action="warn"), FIGURES, "new.csv")

    (event,) = emitted
    assert event["event"] == DRIFT_EVENT == "somseg.drift.detected"
    assert event["resource"] == {"prefect.resource.id": f"prefect.flow-run.{FLOW_RUN_ID}", "prefect.resource.name": "witty-fox"}
    assert event["payload"]["action"] == "warn" and event["payload"]["feature_psi"]["Age"] == 0.676
    Event(**event)  # a valid Prefect event


def test_a_failing_gate_emits_the_event_before_the_run_fails(emitted: list[dict[str, Any]]) -> None:
    with disable_run_logger(), pytest.raises(DriftError, match="feature Age PSI"):
        check_drift.fn(_verdict(), DriftGateConfig(action="fail"), FIGURES, "new.csv")

    assert [event["payload"]["action"] for event in emitted] == ["fail"]


def test_no_event_without_drift_or_without_a_judgement(emitted: list[dict[str, Any]]) -> None:
    calm = FIGURES.model_copy(update={"outlier_share": 0.05, "segment_psi": 0.01, "feature_psi": {"Age": 0.02}})
    too_few = DriftVerdict(judged=False, note="too few rows to judge drift", checks=_verdict().checks)

    with disable_run_logger():
        check_drift.fn(_verdict(calm), DriftGateConfig(), calm, "new.csv")
        check_drift.fn(too_few, DriftGateConfig(), FIGURES, "new.csv")

    assert emitted == []


def test_outside_a_flow_run_nothing_is_emitted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scoring, "emit_event", lambda **event: pytest.fail("emitted outside a flow run"))

    scoring.emit_drift_event(_verdict(), DriftGateConfig(), FIGURES, "new.csv")
