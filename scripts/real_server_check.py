#!/usr/bin/env python
"""Deploy and run the flows on a real Prefect server, the way production runs them.

    python scripts/real_server_check.py [--out DIR] [--ui] [--keep]

In a temporary folder (its own PREFECT_HOME, result storage, outputs):

1. starts ``prefect server start`` on 127.0.0.1 on a free port;
2. ``prefect work-pool create somseg-pool --type process`` and
   ``prefect --no-prompt deploy --all`` from the repository root;
3. checks that both schedules produced scheduled runs at the right times
   (training Mondays 02:00 UTC, scoring daily 06:00 UTC);
4. ``prefect deployment run`` of the training deployment twice: with its
   parameters, and on another table with a tiny
   ``gates.max_quantization_error``; workers (``prefect worker start --pool
   somseg-pool --run-once``) run them one after the other, the deployment's
   concurrency limit holding one in ``AwaitingConcurrencySlot`` until the
   other has ended: the first Completed, the second Failed at the gate; both
   write into one model registry, which then holds the first run's version
   only, promoted;
5. fixes the threshold of the failed run (a retried run keeps its
   parameters, so they are corrected first through the API, with
   ``scripts/set_run_parameters.py <id> config.gates.max_quantization_error=0.5``),
   ``prefect flow-run retry <id>``, and triggers the scoring deployment on
   the registry (its promoted model); a worker runs both: the retried attempt's steps
   up to the map are Cached, the rest Completed, and both end Completed;
6. with ``--ui``, checks the training run's artifacts in headless Chromium
   (scripts/ui_check.py) and saves screenshots in DIR;
7. stops the server by its PID.

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
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import ui_check

POOL = "somseg-pool"
TRAIN = "train-segments/weekly"
SCORE = "score-segments/daily"
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
    except (CheckFailed, subprocess.TimeoutExpired) as failure:
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

        # Every run names its own registry: the deployment's is relative to the checkout.
        registry = str(self.base / "models")
        trained = self.trigger(TRAIN, out_dir=str(self.base / "weekly"), work_dir=str(self.base / "work"),
                               registry=registry)
        strict = {"segments": {"k": 3}, "gates": {"max_quantization_error": 0.01}}
        failing = self.trigger(TRAIN, input_path=str(self.other_table()), out_dir=str(self.base / "november"),
                               work_dir=str(self.base / "work"), config=strict, registry=registry)
        # Triggered together, they run one after the other: the deployment's concurrency limit queues the second.
        self.work_until_final([trained, failing])
        self.expect_state(trained, "Completed")
        self.expect_state(failing, "Failed", message="quality gate failed")
        queued = self.one_after_the_other(trained, failing)
        first = self.task_states(failing, attempt=1, expected=BEFORE_CLUSTERING + ("enforce-quality-gates",))
        if first.get("enforce-quality-gates") != "Failed" or set(FROM_CLUSTERING) & set(first):
            raise CheckFailed(f"the failing run should stop at the gate; its task runs: {first}")
        versions = sorted(p.name for p in (self.base / "models" / "versions").iterdir())
        current = json.loads((self.base / "models" / "CURRENT").read_text())["version"]
        if len(versions) != 1 or current != versions[0]:
            raise CheckFailed(f"the registry should hold the passing run's version only, promoted: {versions}, {current}")
        self.lap("training runs (one passes, one fails at the gate)")

        self.fix_threshold(failing)
        self.prefect("flow-run", "retry", failing)
        scored = self.trigger(SCORE, model_dir=registry,
                              out_dir=str(self.base / "daily"), work_dir=str(self.base / "work"))
        self.worker(2)
        self.expect_state(failing, "Completed")
        self.expect_state(scored, "Completed")
        retried = self.task_states(failing, attempt=2, expected=BEFORE_CLUSTERING + FROM_CLUSTERING)
        expected = {name: "Cached" for name in BEFORE_CLUSTERING} | {name: "Completed" for name in FROM_CLUSTERING}
        if {name: retried.get(name) for name in expected} != expected:
            raise CheckFailed(f"retried attempt's task runs: {retried}; expected {expected}")
        self.lap("retry and scoring run")

        summary: dict[str, Any] = {
            "server": self.url, "schedules": schedules,
            "runs": {"training": trained, "scoring": scored, "failed_then_retried": failing},
            "retried_task_states": retried, "first_attempt_task_states": first, "queued_run": queued,
        }
        if ui:
            labels = ui_check.run_labels(self.base / "weekly")
            summary["ui"] = ui_check.check(self.url, trained, self.out, ui_check.find_chromium(), labels)
            self.lap("ui check")
        summary["seconds"] = {**self.seconds, "total": round(time.monotonic() - self.started, 1)}
        return summary

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

    def other_table(self) -> Path:
        """Another month's customers: 4,000 rows of the sample, so no step is cached yet."""
        table = self.base / "customers_2026-11.csv"
        pd.read_csv(REPO / "data" / "customers_sample.csv").iloc[:4000].to_csv(table, index=False)
        return table

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
        response = self.api.get(path)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        response = self.api.post(path, json=body)
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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _clean_environment() -> dict[str, str]:
    # Nothing of the caller's Prefect profile or test harness may leak in.
    return {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}


if __name__ == "__main__":
    sys.exit(main())
