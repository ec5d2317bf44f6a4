"""Alerts end to end on a real Prefect server: the automations of alerts.yaml call a webhook on a loopback listener.

One fresh server (scripts/real_server_check.py's plumbing) serves every test
of this module: a Webhook block pointing at an HTTP listener in this process,
``segment alerts`` run twice, then three ``segment`` runs against the
server: a training that passes (the model to score with), one that fails
its quality gate, and a scoring of drifted customers under ``drift.action:
warn``, which ends Completed. Deselect with ``-m "not server"``.
"""

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.server

REPO_ROOT = Path(__file__).resolve().parents[2]
BLOCK = "webhook/somseg-test-alerts"
DELIVERY_TIMEOUT_SECONDS = 90
# A small map trains in seconds; the gate is set per run.
CONFIG = {
    "features": [{"name": "Age", "min": 18, "max": 100}, {"name": "Work_Experience", "min": 0, "max": 60},
                 {"name": "Family_Size", "min": 1, "max": 20}],
    "som": {"engine": "batch", "init": "pca", "rows": 4, "cols": 4, "epochs": 5, "sigma": 1.5},
    "segments": {"k": 3},
    "evaluation": {"bootstrap_resamples": 0, "k_max": 5, "silhouette_sample": 1000, "stability_rows": 2000},
}


class Listener:
    """An HTTP server on a free loopback port that keeps every JSON body posted to it."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def __enter__(self) -> "Listener":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, events: set[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if events <= {body.get("event") for body in self.received}:
                return True
            time.sleep(0.5)
        return False


def _server_check() -> Any:
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    try:
        import real_server_check
    finally:
        sys.path.remove(str(REPO_ROOT / "scripts"))
    return real_server_check


@pytest.fixture(scope="module")
def alerts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    scripts = _server_check()
    base = tmp_path_factory.mktemp("alerts")
    check = scripts.ServerCheck(base, base)
    tables = _tables(base)

    def segment(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([check.executable("segment"), *args], cwd=REPO_ROOT, env=check.env,
                              capture_output=True, text=True, timeout=300)

    with Listener() as listener, check.server():
        save_block = ("import sys; from prefect.blocks.webhook import Webhook; "
                      "Webhook(url=sys.argv[1]).save(sys.argv[2].split('/')[1])")
        subprocess.run([sys.executable, "-c", save_block, listener.url, BLOCK], env=check.env, check=True, timeout=120)
        created, again, unknown = segment("alerts", "--block", BLOCK), segment("alerts", "--block", BLOCK), \
            segment("alerts", "--block", "webhook/nothing-here")
        automations = check.post("/automations/filter", {})
        check.lap("block and alerts")

        work = ["--work-dir", str(base / "work")]
        trained = segment("train", str(tables["train"]), "--config", str(tables["config"]), "--out", str(base / "model"), *work)
        gate = segment("train", str(tables["train"]), "--config", str(tables["strict"]), "--out", str(base / "strict"), *work)
        scored = segment("score", str(tables["drifted"]), "--model", str(base / "model" / "model"),
                         "--out", str(base / "scored"), *work)
        check.lap("three runs")
        runs = check.post("/flow_runs/filter", {})
        delivered = listener.wait_for({"prefect.flow-run.Failed", "somseg.drift.detected"}, DELIVERY_TIMEOUT_SECONDS)
        check.lap("notifications")
        yield {
            "commands": {"created": created, "again": again, "unknown": unknown, "trained": trained, "gate": gate,
                         "scored": scored},
            "automations": automations, "runs": runs, "delivered": delivered, "received": list(listener.received),
            "seconds": {**check.seconds, "total": round(time.monotonic() - check.started, 1)},
        }


def _tables(base: Path) -> dict[str, Path]:
    """The first 3,000 sample rows to train on; the others, 30 years older, to score; a config and a strict one."""
    frame = pd.read_csv(REPO_ROOT / "data" / "customers_sample.csv")
    frame.iloc[:3000].to_csv(base / "train.csv", index=False)
    older = frame.iloc[3000:].copy()
    older["Age"] = (older["Age"] + 30).clip(upper=100)
    older.to_csv(base / "drifted.csv", index=False)
    (base / "config.yaml").write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    strict = CONFIG | {"gates": {"max_quantization_error": 0.01}}
    (base / "strict.yaml").write_text(yaml.safe_dump(strict), encoding="utf-8")
    return {"train": base / "train.csv", "drifted": base / "drifted.csv", "config": base / "config.yaml",
            "strict": base / "strict.yaml"}


def _explain(alerts: dict[str, Any]) -> str:
    outputs = "\n".join(f"--- segment {name}: exit {c.returncode}\n{c.stdout[-1500:]}{c.stderr[-3000:]}"
                        for name, c in alerts["commands"].items())
    return f"{outputs}\n--- received: {json.dumps(alerts['received'], indent=1)[:4000]}"


def _received(alerts: dict[str, Any], event: str) -> list[dict[str, Any]]:
    return [body for body in alerts["received"] if body.get("event") == event]


def test_the_command_creates_the_automations_once_and_refuses_an_unknown_block(alerts: dict[str, Any]) -> None:
    created, again, unknown = (alerts["commands"][name] for name in ("created", "again", "unknown"))

    assert created.returncode == 0 and again.returncode == 0, _explain(alerts)
    assert "automation somseg-run-failed: created" in created.stdout
    assert "automation somseg-run-failed: updated" in again.stdout and "created" not in again.stdout
    assert sorted(a["name"] for a in alerts["automations"]) == ["somseg-drift", "somseg-run-failed", "somseg-zombie-runs"]
    assert unknown.returncode == 2 and "block webhook/nothing-here does not exist" in unknown.stderr


def test_a_run_failing_its_gate_is_announced(alerts: dict[str, Any]) -> None:
    commands = alerts["commands"]
    assert (commands["trained"].returncode, commands["gate"].returncode) == (0, 5), _explain(alerts)
    assert alerts["delivered"], _explain(alerts)
    failed = [run["id"] for run in alerts["runs"] if run["state"]["type"] == "FAILED"]

    (notice,) = _received(alerts, "prefect.flow-run.Failed")

    assert len(failed) == 1 and notice["resource"] == f"prefect.flow-run.{failed[0]}"
    assert notice["automation"] == "somseg-run-failed"
    assert notice["subject"].startswith("somseg: train-segments run ") and notice["subject"].endswith(" Failed")
    assert "quality gate failed" in notice["text"] and "last_failure" in notice["text"]


def test_drift_under_warn_completes_the_run_and_is_announced_with_the_figures(
    alerts: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert alerts["commands"]["scored"].returncode == 0, _explain(alerts)
    scored = [run for run in alerts["runs"] if run["state"]["type"] == "COMPLETED" and "score-segments" in run["tags"]]
    assert alerts["delivered"], _explain(alerts)

    (notice,) = _received(alerts, "somseg.drift.detected")

    assert len(scored) == 1 and notice["resource"] == f"prefect.flow-run.{scored[0]['id']}"
    figures = notice["payload"]
    assert figures["action"] == "warn" and figures["n_rows"] == 2000
    assert figures["feature_psi"]["Age"] > figures["limits"]["max_feature_psi"] == 0.25
    assert "feature Age PSI" in [entry["check"] for entry in figures["crossed"]]
    assert notice["subject"].startswith("somseg: drift in score-segments run ")
    assert f"feature Age PSI {figures['feature_psi']['Age']:.5g} > max 0.25" in notice["text"]
    with capsys.disabled():
        print(f"\n  alerts check: {alerts['seconds']}")
