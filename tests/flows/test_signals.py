"""The temporary Prefect server ends with the command, however the command ends."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from processes import processes

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and prctl")]


def _children(pid: int) -> list[int]:
    return [process.pid for process in processes() if process.parent == pid]


def _alive(pid: int) -> bool:
    return any(process.pid == pid for process in processes())


def _start(sample_table: Path, tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    command = [sys.executable, "-m", "somseg.flows.cli", "train", str(sample_table), "--out", str(tmp_path / "run"),
               "--work-dir", str(tmp_path / "work")]
    cli = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        servers = _children(cli.pid)
        if servers:
            time.sleep(3)  # well into the start: the server is up and the libraries loading
            return cli, servers[0]
        time.sleep(0.1)
    cli.kill()
    raise AssertionError("the command started no server")


def _gone(pid: int, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_the_server_ends_with_the_command(how: signal.Signals, sample_table: Path, tmp_path: Path) -> None:
    cli, server = _start(sample_table, tmp_path)
    try:
        cli.send_signal(how)
        code = cli.wait(timeout=60)
        assert _gone(server), "the temporary server outlived its command"
    finally:
        if _alive(server):
            os.kill(server, signal.SIGKILL)
    if how == signal.SIGTERM:
        assert code == 143 and b"terminated" in cli.stderr.read()
    assert not (tmp_path / "run" / "segments.parquet").exists()
