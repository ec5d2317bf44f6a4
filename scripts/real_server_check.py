#!/usr/bin/env python
"""Deploy and run the flows on a real Prefect server, the way production runs them.

    python scripts/real_server_check.py [--out DIR] [--ui] [--keep]

In a temporary folder (its own PREFECT_HOME, result storage, outputs), with
a heartbeat every 30 s in every run:

1. starts ``prefect server start`` on 127.0.0.1 on a free port;
2. ``prefect work-pool create somseg-pool --type process`` and
   ``prefect --no-prompt deploy --all`` from the repository root;
3. checks that both schedules produced scheduled runs at the right times
   (training Mondays 02:00 UTC, scoring daily 06:00 UTC);
4. saves a Webhook block pointing at an HTTP listener of its own and runs
   ``segment alerts`` twice with alerts.yaml (the zombie-run window
   shortened to three heartbeats), then once naming a missing block;
5. ``prefect deployment run`` of the training deployment twice: with its
   parameters, and on another table with a tiny
   ``gates.max_quantization_error``; workers (``prefect worker start --pool
   somseg-pool --run-once``) run them one after the other, the deployment's
   concurrency limit holding one in ``AwaitingConcurrencySlot`` until the
   other has ended: the first Completed, the second Failed at the gate; both
   write into one model registry, which then holds the first run's version
   only, promoted;
6. triggers a third training and ``kill -9``s its worker and flow process
   once the run has cleaned its table;
7. meanwhile, three runs of the scoring deployment scheduled for the last
   three days at 06:00 (late, as after an outage), each on its day's file
   (``customers_{date}.csv``), the third drifted: they run one after the
   other into three dated folders, each naming the version promoted before
   the gate failure;
8. waits for the zombie-run automation to mark the killed run Crashed;
   fixes the threshold of the failed run (a retried run keeps its
   parameters, so they are corrected first through the API, with
   ``scripts/set_run_parameters.py <id> config.gates.max_quantization_error=0.5``),
   and ``prefect flow-run retry`` both: the steps each had completed are
   Cached, the rest Completed, and both end Completed;
9. checks that the listener received the webhooks of the gate failure, the
   crash and the drift warning;
10. with ``--ui``, checks the training run's artifacts in headless Chromium
    (scripts/ui_check.py) and saves screenshots in DIR;
11. stops the server by its PID.

Exit status 0 when every check holds, 1 when one fails (with the server and
worker logs), 3 when ``--ui`` was asked and no Chromium is installed.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import ui_check

POOL = "somseg-pool"
TRAIN = "train-segments/weekly"
SCORE = "score-segments/daily"
BLOCK = "webhook/somseg-check-alerts"
# Prefect's shortest heartbeat interval; alerts.yaml's zombie window is shortened to three of them.
HEARTBEAT_SECONDS = 30
ZOMBIE_WITHIN_SECONDS = 3 * HEARTBEAT_SECONDS
DELIVERY_TIMEOUT_SECONDS = 90
DAY_ROWS = 1500  # customers scored on each of three days, from the 5,000 of the sample
FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
BEFORE_CLUSTERING = (
    "ingest-partition", "validate-partition", "count-duplicates", "combine-validation", "impute-partition", "save-cleaning",
    "pack-training-blocks", "train-batch-som", "assess-partition",  # the default engine, on a table of one partition
)
FROM_CLUSTERING = (
    "cluster-neurons", "evaluate-run", "label-segments", "build-model", "assign-partition", "draw-figures", "publish-run",
)


class CheckFailed(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="folder for the summary and screenshots (default: a new temporary folder)")
    parser.add_argument("--ui", action="store_true", help="also check the UI in headless Chromium")
    parser.add_argument("--keep", action="store_true", help="keep the temporary PREFECT_HOME and run outputs")
    args = parser.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="somseg-server-check-"))
    out.mkdir(parents=True, exist_ok=True)
    if args.ui and ui_check.find_chromium() is None:
        print("real server check: --ui needs chromium (apt-get install -y chromium)", file=sys.stderr)
        return ui_check.EXIT_NO_BROWSER
    base = Path(tempfile.mkdtemp(prefix="somseg-server-"))
    check = ServerCheck(base, out)
    try:
        with check.server():
            summary = check.run(ui=args.ui)
    except (CheckFailed, subprocess.TimeoutExpired, httpx.HTTPError) as failure:
        print(f"real server check FAILED: {failure}", file=sys.stderr)
        check.dump_logs()
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(f"real server check passed in {summary['seconds']['total']:.0f} s; summary in {out / 'summary.json'}")
    return 0


class ServerCheck:
    def __init__(self, base: Path, out: Path) -> None:
        self.base, self.out = base, out
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api = httpx.Client(base_url=f"{self.url}/api", timeout=30)
        self.env = _clean_environment() | {
            "PREFECT_HOME": str(base / "prefect-home"),
            "PREFECT_API_URL": f"{self.url}/api",
            "PREFECT_LOCAL_STORAGE_PATH": str(base / "prefect-storage"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
            "PREFECT_CLI_WRAP_LINES": "false",
            "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS),
            # A run queued behind the deployment's concurrency limit asks again sooner than by default.
            "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "5",
        }
        self.logs: list[Path] = []
        self.seconds: dict[str, float] = {}
        self.started = time.monotonic()

    # ------------------------------------------------------------ the steps

    def run(self, ui: bool) -> dict[str, Any]:
        self.prefect("work-pool", "create", POOL, "--type", "process")
        self.prefect("--no-prompt", "deploy", "--all")
        self.lap("deploy")
        schedules = self.check_schedules()
        with Listener() as listener:
            alerts = self.create_alerts(listener.url)
            summary = self.run_flows(listener, alerts)
        if ui:
            labels = ui_check.run_labels(self.base / "weekly")
            summary["ui"] = ui_check.check(self.url, summary["runs"]["training"], self.out,
                                           ui_check.find_chromium(), labels)
            self.lap("ui check")
        summary["schedules"] = schedules
        summary["seconds"] = {**self.seconds, "total": round(time.monotonic() - self.started, 1)}
        return summary

    def run_flows(self, listener: "Listener", alerts: dict[str, Any]) -> dict[str, Any]:
        # Every run names its own registry: the deployment's is relative to the checkout.
        registry = str(self.base / "models")
        work = str(self.base / "work")
        trained = self.trigger(TRAIN, out_dir=str(self.base / "weekly"), work_dir=work, registry=registry)
        strict = {"segments": {"k": 3}, "gates": {"max_quantization_error": 0.01}}
        failing = self.trigger(TRAIN, input_path=str(self.table("customers_2026-11.csv", 0, 4000)),
                               out_dir=str(self.base / "november"), work_dir=work, config=strict, registry=registry)
        # Triggered together, they run one after the other: the deployment's concurrency limit queues the second.
        self.work_until_final([trained, failing])
        self.expect_state(trained, "Completed")
        self.expect_state(failing, "Failed", message="quality gate failed")
        queued = self.one_after_the_other(trained, failing)
        first = self.task_states(failing, attempt=1, expected=BEFORE_CLUSTERING + ("enforce-quality-gates",))
        if first.get("enforce-quality-gates") != "Failed" or set(FROM_CLUSTERING) & set(first):
            raise CheckFailed(f"the failing run should stop at the gate; its task runs: {first}")
        versions = sorted(p.name for p in (self.base / "models" / "versions").iterdir())
        promoted = json.loads((self.base / "models" / "CURRENT").read_text())["version"]
        if len(versions) != 1 or promoted != versions[0]:
            raise CheckFailed(f"the registry should hold the passing run's version only, promoted: {versions}, {promoted}")
        self.lap("training runs (one passes, one fails at the gate)")

        # A run killed with its worker: the zombie-run automation must find it while the days are scored.
        killed = self.trigger(TRAIN, input_path=str(self.table("customers_2026-12.csv", 1000, 6000)),
                              out_dir=str(self.base / "december"), work_dir=work, registry=str(self.base / "models-dec"))
        seen_at_kill = self.kill_worker_mid_run(killed)
        killed_at = time.monotonic()
        self.lap("a training run killed with its worker (kill -9)")

        days = self.score_three_days(registry, work)
        self.lap("three scheduled days of scoring")

        self.expect_state(killed, "Crashed", timeout=ZOMBIE_WITHIN_SECONDS + 120)
        crashed_after = round(time.monotonic() - killed_at, 1)
        self.lap("the killed run marked Crashed")
        self.fix_threshold(failing)
        self.prefect("flow-run", "retry", killed)
        self.prefect("flow-run", "retry", failing)
        self.work_until_final([killed, failing])
        self.expect_state(killed, "Completed")
        self.expect_state(failing, "Completed")
        # What the killed attempt finished: the server may have learnt of a step's end after the kill was decided.
        done_first = sorted(name for name, state in self.task_states(killed, attempt=1, expected=(), timeout=0).items()
                            if state == "Completed" and name in BEFORE_CLUSTERING + FROM_CLUSTERING)
        resumed = self.task_states(killed, attempt=2, expected=BEFORE_CLUSTERING + FROM_CLUSTERING)
        redone = {name: resumed.get(name) for name in BEFORE_CLUSTERING + FROM_CLUSTERING if name not in done_first}
        if not {"ingest-partition", "save-cleaning"} <= set(done_first) or "publish-run" in done_first \
                or {resumed.get(name) for name in done_first} != {"Cached"} \
                or not set(redone.values()) <= {"Cached", "Completed"} or redone.get("publish-run") != "Completed":
            raise CheckFailed(f"the killed run's finished steps {done_first} should be Cached when it resumes, "
                              f"and it should finish the rest; the task runs of the resumed attempt: {resumed}")
        retried = self.task_states(failing, attempt=2, expected=BEFORE_CLUSTERING + FROM_CLUSTERING)
        expected = {name: "Cached" for name in BEFORE_CLUSTERING} | {name: "Completed" for name in FROM_CLUSTERING}
        if {name: retried.get(name) for name in expected} != expected:
            raise CheckFailed(f"retried attempt's task runs: {retried}; expected {expected}")
        self.lap("the crashed run and the failed run retried")

        wanted = {"prefect.flow-run.Failed", "prefect.flow-run.Crashed", "somseg.drift.detected"}
        if not listener.wait_for(wanted, DELIVERY_TIMEOUT_SECONDS):
            got = sorted({body.get("event") for body in listener.received})
            raise CheckFailed(f"webhooks received for {got}; expected {sorted(wanted)}")
        self.lap("webhooks")
        return {
            "runs": {"training": trained, "failed_then_retried": failing, "killed_then_retried": killed},
            "retried_task_states": retried, "first_attempt_task_states": first, "queued_run": queued,
            "killed": {"seen_at_kill": seen_at_kill, "done_before_kill": done_first, "resumed": resumed,
                       "crashed_after_seconds": crashed_after, "zombie_within_seconds": ZOMBIE_WITHIN_SECONDS},
            "registry": {"versions": versions, "promoted": promoted}, "days": days,
            "alerts": alerts, "received": list(listener.received),
        }

    def create_alerts(self, url: str) -> dict[str, Any]:
        """A Webhook block pointing at the listener; ``segment alerts`` twice, and once with a missing block.

        The automations are alerts.yaml's, with the zombie-run window shortened
        to what the check's heartbeat (every 30 s, in every run's environment)
        allows, so that a killed run is found in a minute or two.
        """
        save_block = ("import sys; from prefect.blocks.webhook import Webhook; "
                      "Webhook(url=sys.argv[1]).save(sys.argv[2].split('/')[1])")
        subprocess.run([sys.executable, "-c", save_block, url, BLOCK], env=self.env, check=True, timeout=120)
        spec = yaml.safe_load((REPO / "alerts.yaml").read_text(encoding="utf-8"))
        (zombie,) = [entry for entry in spec["automations"] if entry["name"] == "somseg-zombie-runs"]
        zombie["trigger"]["within"] = ZOMBIE_WITHIN_SECONDS
        (action,) = zombie["actions"]
        action["message"] = action["message"].replace("10 minutes", f"{ZOMBIE_WITHIN_SECONDS} s")
        alerts_file = self.base / "alerts.yaml"
        alerts_file.write_text(yaml.safe_dump(spec), encoding="utf-8")
        results = [self.segment("alerts", "--file", str(alerts_file), "--block", block)
                   for block in (BLOCK, BLOCK, "webhook/nothing-here")]
        self.lap("webhook block and alerts")
        return {
            name: {"returncode": result.returncode, "stdout": result.stdout, "stderr": result.stderr}
            for name, result in zip(("created", "again", "unknown_block"), results)
        } | {"automations": sorted(a["name"] for a in self.post("/automations/filter", {}))}

    def kill_worker_mid_run(self, flow_run_id: str, timeout: float = 180) -> dict[str, str]:
        """Start a worker; once the run has cleaned its table, ``kill -9`` the worker and the run's process.

        The worker starts each flow run in a session of its own, which
        notices its worker's death and ends itself as Crashed: that is not a
        dead machine. So the run's process (the ``infrastructure_pid`` the
        worker recorded) is stopped first, then both are killed: nothing
        reports anything, and only missing heartbeats can tell. Returns the
        run's task states just before the kill.
        """
        log = self.base / f"worker-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("w") as sink:
            worker = subprocess.Popen(
                [self.executable("prefect"), "worker", "start", "--pool", POOL, "--run-once", "--limit", "1"],
                cwd=REPO, env=self.env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        try:
            while True:
                states = self.task_states(flow_run_id, attempt=1, expected=(), timeout=0)
                if states.get("save-cleaning") == "Completed":
                    break
                if worker.poll() is not None or time.monotonic() > deadline:
                    raise CheckFailed(f"the run to kill never got past cleaning; its task runs: {states}")
                time.sleep(0.2)
            pid = int(str(self.get(f"/flow_runs/{flow_run_id}")["infrastructure_pid"]).rsplit(":", 1)[-1])
            group = os.getpgid(pid)
            os.kill(pid, signal.SIGSTOP)
        finally:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        with suppress(ProcessLookupError):  # gone already if it shared the worker's group
            os.killpg(group, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            raise CheckFailed(f"the run's process {pid} outlived kill -9")
        if self.get(f"/flow_runs/{flow_run_id}")["state"]["type"] != "RUNNING":
            raise CheckFailed("the run was not Running when it was killed")
        return states

    def score_three_days(self, registry: str, work: str) -> dict[str, Any]:
        """Three daily runs scheduled for the last three days at 06:00 UTC, all late, on each day's file.

        The third day's customers are 30 years older: a drift warning. Each
        day's folder must name the version that was promoted before the
        gate-failing training.
        """
        today = datetime.now(UTC).date()
        days = [today - timedelta(days=n) for n in (3, 2, 1)]
        incoming = self.base / "incoming"
        incoming.mkdir()
        sample = pd.read_csv(REPO / "data" / "customers_sample.csv")
        for n, day in enumerate(days):
            frame = sample.iloc[n * DAY_ROWS:(n + 1) * DAY_ROWS].copy()
            if n == 2:
                frame["Age"] = (frame["Age"] + 30).clip(upper=100)
            frame.to_csv(incoming / f"customers_{day.isoformat()}.csv", index=False)
        deployment_id = self.get(f"/deployments/name/{SCORE}")["id"]
        parameters = {"input_path": str(incoming / "customers_{date}.csv"), "model_dir": registry,
                      "out_dir": str(self.base / "daily" / "{date}"), "work_dir": work}
        runs = [
            self.post(f"/deployments/{deployment_id}/create_flow_run", {
                "parameters": parameters,
                "state": {"type": "SCHEDULED", "state_details": {"scheduled_time": f"{day.isoformat()}T06:00:00Z"}},
            })["id"]
            for day in days
        ]
        self.work_until_final(runs)
        promoted = json.loads((Path(registry) / "CURRENT").read_text())["version"]
        found: dict[str, Any] = {}
        for run, day in zip(runs, days):
            self.expect_state(run, "Completed")
            metrics = json.loads((self.base / "daily" / day.isoformat() / "metrics.json").read_text())
            found[day.isoformat()] = {"flow_run": run, "model_version": metrics["model_version"],
                                      "run_date": metrics["run_date"], "drift_warnings": metrics["drift_warnings"]}
        if sorted(p.name for p in (self.base / "daily").iterdir()) != [day.isoformat() for day in days]:
            raise CheckFailed(f"dated folders: {sorted((self.base / 'daily').iterdir())}")
        if {day["model_version"] for day in found.values()} != {promoted} or \
                [day["run_date"] for day in found.values()] != [day.isoformat() for day in days]:
            raise CheckFailed(f"each day should be scored with the promoted version {promoted}: {found}")
        return found

    def check_schedules(self, timeout: float = 60) -> dict[str, list[str]]:
        """Each deployment's scheduled runs, checked against its cron."""
        expected = {TRAIN: (0, 2), SCORE: (None, 6)}  # (Monday or any day, hour UTC)
        deadline = time.monotonic() + timeout
        while True:
            found = {name: self.scheduled_times(name) for name in expected}
            if all(found.values()) or time.monotonic() > deadline:
                break
            time.sleep(1)
        for name, (weekday, hour) in expected.items():
            times = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in found[name]]
            if not times:
                raise CheckFailed(f"the schedule of {name} produced no scheduled runs")
            wrong = [t for t in times if t.hour != hour or t.minute or (weekday is not None and t.weekday() != weekday)]
            if wrong:
                raise CheckFailed(f"{name}: scheduled runs at unexpected times {wrong}")
        self.lap("schedules")
        return found

    def scheduled_times(self, deployment: str) -> list[str]:
        deployment_id = self.get(f"/deployments/name/{deployment}")["id"]
        runs = self.post("/flow_runs/filter", {
            "deployments": {"id": {"any_": [deployment_id]}},
            "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
        })
        return sorted(run["expected_start_time"] for run in runs if run["auto_scheduled"])

    def trigger(self, deployment: str, **parameters: Any) -> str:
        """``prefect deployment run``; the new flow run's id."""
        output = self.prefect("deployment", "run", deployment, "--params", json.dumps(parameters))
        match = re.search(r"UUID: ([0-9a-f-]{36})", output)
        if not match:
            raise CheckFailed(f"no flow run id in the output of 'prefect deployment run':\n{output}")
        return match.group(1)

    def worker(self, runs: int, timeout: float = 300) -> None:
        """A process worker that picks up the runs that are due, runs them, and exits."""
        log = self.base / f"worker-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("w") as sink:
            worker = subprocess.Popen(
                [self.executable("prefect"), "worker", "start", "--pool", POOL, "--run-once", "--limit", str(runs)],
                cwd=REPO, env=self.env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
            )
            try:
                worker.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)  # the worker and the flow runs it started
                worker.wait()
                raise CheckFailed(f"the worker did not finish within {timeout:.0f} s")

    def work_until_final(self, flow_run_ids: list[str], timeout: float = 300) -> None:
        """Workers, one after another, until every run has ended: a queued run becomes due only later."""
        deadline = time.monotonic() + timeout
        while True:
            states = {run: self.get(f"/flow_runs/{run}")["state"]["type"] for run in flow_run_ids}
            if all(state in FINAL_STATES for state in states.values()):
                return
            if time.monotonic() > deadline:
                raise CheckFailed(f"runs not ended after {timeout:.0f} s: {states}")
            self.worker(len(flow_run_ids), timeout=max(deadline - time.monotonic(), 1))
            time.sleep(1)

    def one_after_the_other(self, *flow_run_ids: str) -> str:
        """Check that the runs did not overlap and that the later one waited for a slot; its id."""
        runs = sorted((self.get(f"/flow_runs/{run}") for run in flow_run_ids), key=lambda run: run["start_time"])
        for earlier, later in zip(runs, runs[1:]):
            if earlier["end_time"] > later["start_time"]:
                raise CheckFailed(f"runs {earlier['id']} and {later['id']} overlapped")
        history = self.get(f"/flow_run_states/?flow_run_id={runs[-1]['id']}")
        if "AwaitingConcurrencySlot" not in {state["name"] for state in history}:
            raise CheckFailed(f"the later run {runs[-1]['id']} never waited for the deployment's slot: "
                              f"{[state['name'] for state in history]}")
        return str(runs[-1]["id"])

    def expect_state(self, flow_run_id: str, name: str, message: str = "", timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            state = self.get(f"/flow_runs/{flow_run_id}")["state"]
            if state["name"] == name or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if state["name"] != name or message not in (state.get("message") or ""):
            raise CheckFailed(f"flow run {flow_run_id} is {state['name']} ({state.get('message')}); expected {name}")

    def task_states(
        self, flow_run_id: str, attempt: int, expected: tuple[str, ...], timeout: float = 30
    ) -> dict[str, str]:
        """Task name -> state name, for the task runs of one attempt of a flow run.

        The server records task-run states from events, a moment after the
        flow run ends: wait until the ``expected`` tasks are there and every
        task run of the attempt is final.
        """
        final = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
        deadline = time.monotonic() + timeout
        while True:
            runs = [run for run in self.post("/task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}})
                    if run["flow_run_run_count"] == attempt]
            states = {run["name"].rsplit("-", 1)[0]: (run["state"] or {}).get("name") for run in runs}
            settled = all(run["state"] and run["state"]["type"] in final for run in runs)
            if (settled and set(expected) <= set(states)) or time.monotonic() > deadline:
                return states
            time.sleep(0.5)

    def fix_threshold(self, flow_run_id: str) -> None:
        """The documented way: scripts/set_run_parameters.py, then check what the API stored."""
        command = [sys.executable, str(REPO / "scripts" / "set_run_parameters.py"), flow_run_id,
                   "config.gates.max_quantization_error=0.5"]
        result = subprocess.run(command, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise CheckFailed(f"set_run_parameters.py exited {result.returncode}:\n{result.stdout}{result.stderr}")
        stored = self.get(f"/flow_runs/{flow_run_id}")
        config = stored["parameters"]["config"]
        if config != {"segments": {"k": 3}, "gates": {"max_quantization_error": 0.5}}:
            raise CheckFailed(f"the run's config after the fix: {config}")
        if "parameters-edited" not in stored["tags"]:
            raise CheckFailed(f"the corrected run is not tagged parameters-edited: {stored['tags']}")

    def table(self, name: str, start: int, stop: int) -> Path:
        """Another month's customers: rows ``start:stop`` of the sample, so that no step is cached yet."""
        table = self.base / name
        pd.read_csv(REPO / "data" / "customers_sample.csv").iloc[start:stop].to_csv(table, index=False)
        return table

    def segment(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.executable("segment"), *args], cwd=REPO, env=self.env,
                              capture_output=True, text=True, timeout=300)

    # ------------------------------------------------------------ plumbing

    @contextmanager
    def server(self) -> Iterator[None]:
        log = self.base / "server.log"
        self.logs.append(log)
        with log.open("w") as sink:
            server = subprocess.Popen(
                [self.executable("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=self.base, env=self.env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            self.wait_healthy(server)
            self.lap("server start")
            yield
        finally:
            server.terminate()  # by its PID
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            self.api.close()

    def wait_healthy(self, server: subprocess.Popen, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise CheckFailed(f"prefect server exited with status {server.returncode}")
            try:
                if self.api.get("/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise CheckFailed(f"prefect server not healthy on {self.url} after {timeout:.0f} s")

    def prefect(self, *args: str, timeout: float = 180) -> str:
        result = subprocess.run([self.executable("prefect"), *args], cwd=REPO, env=self.env,
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise CheckFailed(f"'prefect {' '.join(args)}' exited {result.returncode}:\n{result.stdout}{result.stderr}")
        return result.stdout

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("POST", path, body)

    def request(self, method: str, path: str, body: dict[str, Any] | None = None, attempts: int = 5) -> Any:
        # A busy server on SQLite answers 503 ("database is locked") now and then; Prefect's own client retries too.
        for attempt in range(attempts):
            response = self.api.request(method, path, json=body)
            if response.status_code not in (502, 503) or attempt == attempts - 1:
                break
            time.sleep(2**attempt)
        response.raise_for_status()
        return response.json()

    @staticmethod
    def executable(name: str) -> str:
        # The CLIs of this interpreter's environment, where the project is installed.
        beside = Path(sys.executable).parent / name
        return str(beside) if beside.exists() else (shutil.which(name) or name)

    def lap(self, name: str) -> None:
        self.seconds[name] = round(time.monotonic() - self.started - sum(self.seconds.values()), 1)
        print(f"  {name}: {self.seconds[name]:.1f} s", flush=True)

    def dump_logs(self, lines: int = 60) -> None:
        for log in self.logs:
            if log.is_file():
                tail = log.read_text(errors="replace").splitlines()[-lines:]
                print(f"--- last {len(tail)} lines of {log.name}:\n" + "\n".join(tail), file=sys.stderr)


class Listener:
    """An HTTP server on a free loopback port that keeps every JSON body posted to it (the webhook's target)."""

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


def _alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie waiting for its parent."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _clean_environment() -> dict[str, str]:
    # Nothing of the caller's Prefect profile or test harness may leak in.
    return {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}


if __name__ == "__main__":
    sys.exit(main())
