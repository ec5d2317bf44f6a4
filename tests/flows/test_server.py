"""The temporary server the ``segment`` command starts."""

from pathlib import Path

import pytest

from somseg.flows.server import TemporaryServer, launch_unless_configured, prefect_api


def test_no_server_is_launched_when_the_environment_names_an_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert launch_unless_configured() is None


def test_no_server_is_launched_when_temporary_servers_are_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_ENABLED", "false")
    assert launch_unless_configured() is None


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_harness")
def test_prefect_settings_with_an_api_win_over_a_launched_server(monkeypatch: pytest.MonkeyPatch) -> None:
    # Under the test harness Prefect's settings name the harness's server.
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert launch_unless_configured() is None
    with prefect_api(None):
        pass


@pytest.mark.server
def test_a_launched_server_answers_then_stops(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))  # its own database, not the developer's
    server = TemporaryServer().launch()
    try:
        server.wait_ready(timeout=120)
        assert server.process is not None and server.process.poll() is None
    finally:
        server.stop()
    assert server.process is None


def test_a_server_that_never_answers_is_reported_with_the_way_out(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    server = TemporaryServer().launch()
    with pytest.raises(RuntimeError, match="PREFECT_API_URL"):
        server.wait_ready(timeout=0.01)
    assert server.process is None


def test_a_launched_server_records_batches_of_task_run_events(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import somseg.flows.server as server_module

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    seen: dict = {}
    monkeypatch.setattr(server_module.subprocess, "Popen", lambda command, env, **options: seen.update(env) or _Stopped())
    server_module.TemporaryServer().launch()
    assert seen["PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE"] == "200"
    monkeypatch.setenv("PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE", "7")
    server_module.TemporaryServer().launch()
    assert seen["PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE"] == "7"  # the user's setting wins


class _Stopped:
    def poll(self) -> int:
        return 0

    def terminate(self) -> None:
        pass

    def wait(self, timeout: float | None = None) -> int:
        return 0
