"""The alerts of alerts.yaml: what they match, the messages they render, and creating them once per name."""

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid4

import pytest
from prefect.events.schemas.events import Event
from prefect.exceptions import ObjectNotFound
from prefect.server.utilities.user_templates import render_user_template_sync

from somseg.errors import ConfigError
from somseg.flows.alerts import (
    Channel,
    apply_automations,
    build_automations,
    load_alerts,
    parse_block_reference,
    resolve_channel,
)
from somseg.flows.cli import main
from somseg.tasks.scoring import DRIFT_EVENT

REPO_ROOT = Path(__file__).resolve().parents[2]
ALERTS = REPO_ROOT / "alerts.yaml"
WEBHOOK = Channel(reference="webhook/somseg-alerts", block_document_id=str(uuid4()), kind="webhook")
SLACK = Channel(reference="slack-webhook/data-team", block_document_id=str(uuid4()), kind="notification")


def _flow_names() -> set[str]:
    # Read from the sources, so that a renamed flow fails here rather than silently never alerting.
    sources = "".join(path.read_text(encoding="utf-8") for path in (REPO_ROOT / "flows").glob("*.py"))
    return set(re.findall(r'@flow\(name="([^"]+)"', sources))


def _automation(name: str, channel: Channel = WEBHOOK) -> Any:
    return {a.name: a for a in build_automations(load_alerts(ALERTS), channel)}[name]


def _render(template: str, event: Event, flow: str = "score-segments") -> str:
    # The server's own renderer, with the objects it looks up for the event.
    context = {
        "event": event, "automation": SimpleNamespace(name="an automation"), "flow": SimpleNamespace(name=flow),
        "flow_run": SimpleNamespace(name="witty-fox", id="1234", parameters={"input_path": "new.csv", "out_dir": "runs/x"}),
        "deployment": SimpleNamespace(name="daily"),
    }
    return render_user_template_sync(template, context)


def _failed_event(state: str, message: str) -> Event:
    return Event(event=f"prefect.flow-run.{state}", resource={
        "prefect.resource.id": "prefect.flow-run.1234", "prefect.state-name": state, "prefect.state-message": message,
    })


def _drift_event() -> Event:
    payload = {
        "action": "warn", "input": "new.csv", "n_rows": 2000, "outlier_share": 0.154, "segment_psi": 0.344,
        "feature_psi": {"Age": 0.676, "Family_Size": 0.01},
        "limits": {"max_outlier_share": 0.15, "max_segment_psi": 0.25, "max_feature_psi": 0.25},
        "crossed": [{"check": "feature Age PSI", "setting": "drift.max_feature_psi", "value": 0.676, "limit": 0.25,
                     "bound": 0.25}],
        "problems": ["feature Age PSI 0.676 > max 0.25 (drift.max_feature_psi)", 'a "quoted" <line>'],
    }
    return Event(event=DRIFT_EVENT, resource={"prefect.resource.id": "prefect.flow-run.1234"}, payload=payload)


def test_failed_crashed_and_timed_out_runs_of_both_flows_trigger_an_alert() -> None:
    trigger = _automation("somseg-run-failed").trigger

    assert trigger.expect == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed", "prefect.flow-run.TimedOut"}
    assert trigger.match.root == {"prefect.resource.id": "prefect.flow-run.*"}
    related = trigger.match_related.root
    assert related["prefect.resource.role"] == "flow"
    assert set(related["prefect.resource.name"]) == _flow_names() == {"train-segments", "score-segments"}
    assert trigger.posture == "Reactive" and trigger.threshold == 1


def test_the_drift_alert_expects_the_event_the_scoring_run_emits() -> None:
    trigger = _automation("somseg-drift").trigger

    assert trigger.expect == {DRIFT_EVENT}
    assert trigger.match.root == {"prefect.resource.id": "prefect.flow-run.*"}


def test_a_webhook_block_is_called_with_json_holding_the_message_and_the_event_payload() -> None:
    failure = _automation("somseg-run-failed").actions
    drift = _automation("somseg-drift").actions

    assert [a.type for a in failure + drift] == ["call-webhook", "call-webhook"]
    assert {str(a.block_document_id) for a in failure + drift} == {WEBHOOK.block_document_id}
    message = 'Flow run encountered an exception: QualityGateError: quality gate failed: "QE" 0.9 > 0.01'
    sent = json.loads(_render(failure[0].payload, _failed_event("Failed", message), flow="train-segments"))
    assert sent["subject"] == "somseg: train-segments run witty-fox Failed"
    assert message in sent["text"] and "input_path: new.csv" in sent["text"] and "last_failure" in sent["text"]
    assert sent["event"] == "prefect.flow-run.Failed" and sent["resource"] == "prefect.flow-run.1234"
    crashed = json.loads(_render(failure[0].payload, _failed_event("Crashed", "killed"), flow="train-segments"))
    assert crashed["subject"].endswith("Crashed") and "last_failure" not in crashed["text"]

    sent = json.loads(_render(drift[0].payload, _drift_event()))
    assert sent["subject"] == "somseg: drift in score-segments run witty-fox (1 limit(s) crossed)"
    assert "feature Age PSI 0.676 > max 0.25 (drift.max_feature_psi)" in sent["text"]
    assert 'a "quoted" <line>' in sent["text"]
    assert "deployment: score-segments/daily" in sent["text"]
    assert sent["payload"]["feature_psi"]["Age"] == 0.676 and sent["payload"]["action"] == "warn"


def test_a_notification_block_gets_the_subject_and_the_body() -> None:
    (action,) = _automation("somseg-drift", SLACK).actions

    assert action.type == "send-notification" and str(action.block_document_id) == SLACK.block_document_id
    assert _render(action.subject, _drift_event()).startswith("somseg: drift in score-segments run witty-fox")
    assert "feature Age PSI 0.676" in _render(action.body, _drift_event())


class FakeAutomations:
    """The server's automations, as Prefect's client reads and writes them (most recently updated first)."""

    def __init__(self) -> None:
        self.stored: dict[UUID, Any] = {}
        self.calls: list[str] = []

    def read_automations_by_name(self, name: str) -> list[Any]:
        return [SimpleNamespace(id=key, name=a.name) for key, a in reversed(self.stored.items()) if a.name == name]

    def create_automation(self, automation: Any) -> UUID:
        key = uuid4()
        self.stored[key] = automation
        self.calls.append(f"create {automation.name}")
        return key

    def update_automation(self, automation_id: UUID, automation: Any) -> None:
        self.stored[automation_id] = automation
        self.calls.append(f"update {automation.name}")

    def delete_automation(self, automation_id: UUID) -> None:
        del self.stored[automation_id]
        self.calls.append("delete")


def test_creating_the_alerts_twice_leaves_one_automation_of_each_name() -> None:
    client = FakeAutomations()
    automations = build_automations(load_alerts(ALERTS), WEBHOOK)

    first = apply_automations(client, automations)
    ids = set(client.stored)
    second = apply_automations(client, build_automations(load_alerts(ALERTS), SLACK))

    assert first == [("somseg-run-failed", "created"), ("somseg-drift", "created"), ("somseg-zombie-runs", "created")]
    assert second == [("somseg-run-failed", "updated"), ("somseg-drift", "updated"), ("somseg-zombie-runs", "updated")]
    assert set(client.stored) == ids
    assert {a.actions[-1].type for a in client.stored.values()} == {"send-notification", "change-flow-run-state"}


def test_duplicates_made_by_hand_are_folded_into_one() -> None:
    client = FakeAutomations()
    automations = build_automations(load_alerts(ALERTS), WEBHOOK)
    for _ in range(3):
        client.create_automation(automations[0])

    done = apply_automations(client, automations[:1])

    assert done == [("somseg-run-failed", "updated, 2 duplicate(s) deleted")]
    assert [a.name for a in client.stored.values()] == ["somseg-run-failed"]


@pytest.mark.parametrize(("text", "message"), [
    ("automations: []\n", "non-empty list 'automations'"),
    ("automations:\n  - name: a\n    trigger: {type: event}\n", "missing notify or actions"),
    ("automations:\n  - {name: a, trigger: {}, notify: {subject: s, body: b}, action: []}\n", "unknown action"),
    ("automations:\n  - {name: a, trigger: {}, actions: [{state: CRASHED}]}\n", "each with a type"),
    ("automations:\n  - {name: a, trigger: {}, notify: {subject: s}}\n", "exactly a subject and a body"),
    ("automations:\n  - {name: a, trigger: {}, notify: {subject: '{{ oops', body: b}}\n", "notify.subject is not a valid template"),
    ("automations:\n  - {name: a, trigger: {}, notify: {subject: s, body: b}}\n"
     "  - {name: a, trigger: {}, notify: {subject: s, body: b}}\n", "repeated: a"),
])
def test_mistakes_in_the_alerts_file_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(ConfigError, match=re.escape(message)):
        load_alerts(path)


def test_a_trigger_prefect_does_not_accept_is_named(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text("automations:\n  - {name: a, trigger: {type: event, posture: Sideways}, "
                    "notify: {subject: s, body: b}}\n", encoding="utf-8")

    with pytest.raises(ConfigError, match="automation a: not a valid Prefect automation: .*posture"):
        build_automations(load_alerts(path), WEBHOOK)


def test_a_run_that_stopped_beating_is_marked_crashed_well_after_the_default_heartbeat() -> None:
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY

    zombie = _automation("somseg-zombie-runs")
    trigger = zombie.trigger

    assert trigger.posture == "Proactive" and trigger.after == {"prefect.flow-run.heartbeat"}
    assert {"prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Failed"} <= trigger.expect
    # Fewer than three missed heartbeats at Prefect's default frequency would crash live runs.
    assert trigger.within.total_seconds() >= 3 * PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value()
    assert [(action.type, action.state.value) for action in zombie.actions] == [("change-flow-run-state", "CRASHED")]


def test_a_block_is_named_by_type_and_name() -> None:
    assert parse_block_reference("webhook/somseg-alerts") == ("webhook", "somseg-alerts")
    for wrong in ("somseg-alerts", "webhook/", "/x", "a/b/c"):
        with pytest.raises(ConfigError, match="TYPE/NAME"):
            parse_block_reference(wrong)


class FakeBlocks:
    def __init__(self, documents: dict[tuple[str, str], list[str]]) -> None:
        self.documents = documents

    def read_block_document_by_name(self, name: str, block_type_slug: str) -> Any:
        if (block_type_slug, name) not in self.documents:
            raise ObjectNotFound(http_exc=Exception("404"))
        return SimpleNamespace(id=uuid4(), block_schema=SimpleNamespace(
            capabilities=self.documents[(block_type_slug, name)]))


def test_the_block_decides_the_action_and_a_missing_or_mute_block_is_refused() -> None:
    blocks = FakeBlocks({("webhook", "hook"): [], ("slack-webhook", "team"): ["notify"], ("secret", "key"): []})
    url = "http://127.0.0.1:4200/api"

    assert resolve_channel(blocks, "webhook/hook", url).kind == "webhook"
    assert resolve_channel(blocks, "slack-webhook/team", url).kind == "notification"
    with pytest.raises(ConfigError, match="block webhook/nope does not exist on the server at http://127.0.0.1:4200/api"):
        resolve_channel(blocks, "webhook/nope", url)
    with pytest.raises(ConfigError, match="can neither be called as a webhook nor send notifications"):
        resolve_channel(blocks, "secret/key", url)


def test_a_missing_alerts_file_is_reported_before_prefect_is_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["alerts", "--file", str(tmp_path / "alerts.yaml")]) == 2
    assert "does not exist; run from the repository root or give --file" in capsys.readouterr().err


def _segment_alerts(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # A process of its own: Prefect reads its settings (and the profile under PREFECT_HOME) once, at import.
    clean = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    clean |= {"PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **env}
    command = [sys.executable, "-m", "somseg.flows.cli", "alerts", "--file", str(ALERTS)]
    return subprocess.run(command, env=clean, capture_output=True, text=True, timeout=120)


def test_without_a_prefect_api_or_with_one_that_does_not_answer_the_command_says_so(tmp_path: Path) -> None:
    nothing = _segment_alerts(tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free, so nothing answers there
    silent = _segment_alerts(tmp_path, PREFECT_API_URL=f"http://127.0.0.1:{port}/api")

    assert nothing.returncode == 2, nothing.stderr
    assert "no Prefect API is configured" in nothing.stderr and "PREFECT_API_URL" in nothing.stderr
    assert silent.returncode == 3, silent.stderr
    assert f"the Prefect API at http://127.0.0.1:{port}/api does not answer" in silent.stderr
