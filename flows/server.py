"""A temporary Prefect API server for one ``segment`` command, started early.

Without ``PREFECT_API_URL``, Prefect starts a temporary server the first time
a flow needs the API: it first imports the server application in the calling
process, then starts a second Python process that imports it again, and
waits for it, while nothing else happens (what that costs a command is in
``benchmarks/RESULTS.md``, "Private APIs: what each one saves").

``segment`` instead launches the same server process (Prefect's own
application, with the settings Prefect uses for its temporary server) before
it imports anything heavy, and loads the pipeline's libraries while the
server starts on the other core. The flow then runs against it as against
any server, and the process is stopped when the command ends. When an API
URL is configured (env, profile or ``prefect.toml``), nothing is launched.
"""

import atexit
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from somseg.tasks.private_apis import (
    TEMPORARY_SERVER_ENV,
    deliver_queued_logs_and_events,
    temporary_server_command,
)

_PORT_IN_USE_EXIT = 3  # uvicorn's exit status when it cannot bind its port
_PR_SET_PDEATHSIG = 1  # prctl option: the signal a process gets when its parent dies (linux/prctl.h)
_POLL_SECONDS = 0.1
_DEFAULT_STARTUP_TIMEOUT = 120.0
_DRAIN_TIMEOUT_SECONDS = 10.0
_SETTLE_TIMEOUT_SECONDS = 10.0
_SETTLE_POLL_SECONDS = 0.2
_UNFINISHED_STATES = ["SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING"]
# A run has a task run per partition and step: the server records their events
# in batches rather than one database transaction each (Prefect's default),
# so it keeps up with the run. Settings already in the environment win.
_RECORDER_SETTINGS = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
}


def _die_with(parent: int) -> Any:
    """A hook for the server's process, run between fork and exec: ask Linux to end it with its parent.

    However the command ends (SIGKILL included, where no handler of its own
    runs), the kernel then sends the server SIGTERM. A parent that died
    before the request was made is caught by comparing the parent's id.
    """

    def hook() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os._exit(1)

    return hook


class TemporaryServer:
    """One Prefect API server subprocess on a free local port."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def launch(self) -> "TemporaryServer":
        """Start the server process and return at once; :meth:`wait_ready` waits for it."""
        env = {**_RECORDER_SETTINGS, **os.environ, **TEMPORARY_SERVER_ENV}
        # Launched before the command starts any thread, so a hook between fork and exec is safe.
        hook = _die_with(os.getpid()) if sys.platform.startswith("linux") else None
        self.process = subprocess.Popen(temporary_server_command(self.port), env=env, preexec_fn=hook)  # noqa: PLW1509
        atexit.register(self.stop)
        return self

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the API answers its health check; on a port clash, relaunch on another port."""
        limit = timeout or float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS",
                                                _DEFAULT_STARTUP_TIMEOUT))
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            assert self.process is not None, "launch() first"
            status = self.process.poll()
            if status == _PORT_IN_USE_EXIT:
                self.port = _free_port()
                self.launch()
            elif status is not None:
                raise RuntimeError(f"the temporary Prefect server exited with status {status} before it was ready")
            elif _healthy(self.api_url):
                return
            time.sleep(_POLL_SECONDS)
        self.stop()
        raise RuntimeError(f"the temporary Prefect server did not answer within {limit:.0f} s; "
                           "raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS or set PREFECT_API_URL")

    def settle(self, flow_run_id: str, timeout: float | None = None) -> bool:
        """Wait until the server has recorded every task run of ``flow_run_id`` in a final state.

        The server records task runs from the events it receives, a moment
        after they are sent; stopping it before would leave the last ones
        unrecorded. Returns False when ``timeout`` passes first.
        """
        deadline = time.monotonic() + (_SETTLE_TIMEOUT_SECONDS if timeout is None else timeout)
        previous = -1
        while time.monotonic() < deadline:
            total = self._count_task_runs(flow_run_id)
            pending = self._count_task_runs(flow_run_id, _UNFINISHED_STATES)
            if pending == 0 and total == previous:
                return True
            previous = total
            time.sleep(_SETTLE_POLL_SECONDS)
        return False

    def _count_task_runs(self, flow_run_id: str, state_types: list[str] | None = None) -> int:
        body: dict[str, Any] = {"flow_runs": {"id": {"any_": [flow_run_id]}}}
        if state_types is not None:
            body["task_runs"] = {"state": {"type": {"any_": state_types}}}
        request = urllib.request.Request(
            f"{self.api_url}/task_runs/count", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return int(json.loads(response.read()))
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            return -1

    def stop(self) -> None:
        """Terminate the server, killing it if it does not stop within 5 s."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def launch_unless_configured() -> TemporaryServer | None:
    """Launch a temporary server unless the environment names an API or forbids one.

    Only the environment is read here, so that the server starts before
    Prefect is imported; :func:`prefect_api` then checks Prefect's own
    settings (profiles, ``prefect.toml``) and drops the server when they
    name an API.
    """
    if os.environ.get("PREFECT_API_URL") or _env_false("PREFECT_SERVER_EPHEMERAL_ENABLED"):
        return None
    if "prefect.settings" in sys.modules and _configured_api_url():
        # Prefect is already loaded (a test harness, a notebook): its settings decide.
        return None
    return TemporaryServer().launch()


@dataclass
class ApiSession:
    """What the block run by :func:`prefect_api` tells it: the flow run to wait for before stopping."""

    flow_run_id: Any = None


@contextmanager
def prefect_api(server: TemporaryServer | None) -> Iterator[ApiSession]:
    """Run the enclosed flow against ``server``, if it is still needed, then stop it.

    ``server`` is dropped at once when Prefect's settings already name an
    API; the logs and events still queued are then delivered to that API
    when the block ends. Otherwise the block runs with ``PREFECT_API_URL`` pointing at it;
    afterwards the logs and events still queued are delivered, and the
    server is given the time to record every task run of the session's
    flow run, so the run is complete in its database before it stops.
    """
    session = ApiSession()
    if server is not None and _configured_api_url():
        server.stop()
        server = None
    if server is None:
        try:
            yield session
        finally:
            # cli.run ends the process at once afterwards, skipping the exit hooks where Prefect would send them.
            deliver_queued_logs_and_events(_DRAIN_TIMEOUT_SECONDS)
        return
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server.wait_ready()
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            try:
                yield session
            finally:
                deliver_queued_logs_and_events(_DRAIN_TIMEOUT_SECONDS)
                if session.flow_run_id is not None:
                    server.settle(str(session.flow_run_id))
    finally:
        server.stop()


def _configured_api_url() -> str | None:
    from prefect.settings import get_current_settings

    return get_current_settings().api.url


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _env_false(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"0", "false", "no", "off"}
