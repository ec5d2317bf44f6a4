"""A temporary Prefect API server for one ``segment`` command, started early.

Without ``PREFECT_API_URL``, Prefect starts a temporary server the first time
a flow needs the API: it first imports the server application in the calling
process (about 4 s here), then starts a second Python process that imports it
again, and waits for it. That is 10 s of a 45 s budget, spent while nothing
else happens.

``segment`` instead launches the same server process (Prefect's own
application, with the settings Prefect uses for its temporary server) before
it imports anything heavy, and loads the pipeline's libraries while the
server starts on the other core. The flow then runs against it as against
any server, and the process is stopped when the command ends. When an API
URL is configured (env, profile or ``prefect.toml``), nothing is launched.
"""

import atexit
import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_PORT_IN_USE_EXIT = 3  # uvicorn's exit status when it cannot bind its port
_POLL_SECONDS = 0.1
_DEFAULT_STARTUP_TIMEOUT = 120.0
_DRAIN_TIMEOUT_SECONDS = 10.0


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
        self.process = subprocess.Popen(_uvicorn_command(self.port), env=_server_env())
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


@contextmanager
def prefect_api(server: TemporaryServer | None) -> Iterator[None]:
    """Run the enclosed flow against ``server``, if it is still needed, then stop it.

    ``server`` is dropped at once when Prefect's settings already name an
    API. Otherwise the block runs with ``PREFECT_API_URL`` pointing at it,
    and the logs and events still queued are delivered before it stops.
    """
    if server is None:
        yield
        return
    if _configured_api_url():
        server.stop()
        yield
        return
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server.wait_ready()
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            try:
                yield
            finally:
                _deliver_queued_logs_and_events()
    finally:
        server.stop()


def _deliver_queued_logs_and_events() -> None:
    # Prefect sends logs and events from background workers that drain at
    # interpreter exit, which is too late: the server is gone by then.
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=_DRAIN_TIMEOUT_SECONDS)


def _configured_api_url() -> str | None:
    from prefect.settings import get_current_settings

    return get_current_settings().api.url


def _uvicorn_command(port: int) -> list[str]:
    # The command Prefect runs for its own temporary server (SubprocessASGIServer).
    return [sys.executable, "-m", "uvicorn", "--app-dir", str(_site_packages()),
            "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "error", "--lifespan", "on"]


def _server_env() -> dict[str, str]:
    # The environment Prefect gives its temporary server: no UI, ephemeral mode.
    return {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1"}


def _site_packages() -> Path:
    spec = importlib.util.find_spec("prefect")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("prefect is not installed")
    return Path(next(iter(spec.submodule_search_locations))).parent


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
