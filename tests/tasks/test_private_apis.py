"""The fence around other libraries' private APIs: each use fails here, loudly, when an upgrade breaks it."""

import inspect
import sys

import pytest

from somseg.tasks import private_apis


def test_great_expectations_still_fingerprints_frames_under_the_setting_we_turn_off() -> None:
    from great_expectations.execution_engine import pandas_execution_engine

    assert hasattr(pandas_execution_engine, "HASH_THRESHOLD"), "GX renamed HASH_THRESHOLD: revisit skip_gx_frame_fingerprint"
    assert "HASH_THRESHOLD" in inspect.getsource(pandas_execution_engine), "GX no longer reads HASH_THRESHOLD"
    assert private_apis.skip_gx_frame_fingerprint() is True
    assert pandas_execution_engine.HASH_THRESHOLD == 0


def test_prefects_temporary_server_is_still_started_the_way_we_start_it() -> None:
    import prefect
    from prefect.server.api.server import SubprocessASGIServer

    source = inspect.getsource(SubprocessASGIServer._run_uvicorn_command)
    for name, value in private_apis.TEMPORARY_SERVER_ENV.items():
        assert f'"{name}": "{value}"' in source, f"Prefect no longer sets {name}={value} for its temporary server"
    assert private_apis.TEMPORARY_SERVER_APP in source
    command = private_apis.temporary_server_command(4321)
    assert command[command.index("--app-dir") + 1] == str(prefect.__module_path__.parent)
    for flag in ("--factory", "--lifespan", "--log-level"):
        assert f'"{flag}"' in source and flag in command


def test_prefects_log_and_event_workers_can_still_be_drained() -> None:
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        assert "timeout" in inspect.signature(worker.drain_all).parameters
    private_apis.deliver_queued_logs_and_events(timeout=0.1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator only")
def test_glibc_takes_the_allocator_settings() -> None:
    assert private_apis.reuse_freed_memory() is True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator only")
def test_glibc_trims_unless_the_process_keeps_freed_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(private_apis, "_keeping_freed_memory", False)
    assert private_apis.release_freed_memory() is True
    monkeypatch.setattr(private_apis, "_keeping_freed_memory", True)
    assert private_apis.release_freed_memory() is False
