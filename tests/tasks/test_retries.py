"""Retries on transient I/O errors, none on data errors."""

import errno
import time
from pathlib import Path

import pytest
from prefect import get_client
from prefect.exceptions import ObjectNotFound
from prefect.settings import (
    PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW,
    temporary_settings,
)
from prefect.states import Completed, Failed

from somseg.config import load_config
from somseg.dataset import plan_input
from somseg.errors import DataError, DataQualityError, QualityGateError
from somseg.tasks import ingest
from somseg.tasks.catalog import Store
from somseg.tasks.ingest import ingest_partition, plan
from somseg.tasks.model import load_model
from somseg.tasks.publish import publish_run, publish_scores
from somseg.tasks.quality import validate_partition
from somseg.tasks.retries import IO_RETRIES, retry_on_io_error
from somseg.tasks.scoring import score_partition

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_harness")]

CONFIG = load_config(Path(__file__).resolve().parents[2] / "configs" / "reference.yaml")  # the reference recipe


@pytest.fixture(autouse=True)
def _quiet_task_logs():
    # These tasks run on their own, outside a flow run, so their logs have no run to go to.
    with temporary_settings({PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW: "ignore"}):
        yield


class FlakyReader:
    """``read_partitions`` that raises ``error`` for the first ``failures`` calls, then reads."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error, self.calls = failures, error, 0
        self.real = ingest.read_partitions

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return self.real(*args, **kwargs)


def _ingest(sample_table: Path, work: Path, step=None):
    (part,) = plan_input(sample_table, [CONFIG.id_column, *CONFIG.feature_names], 1_000_000)
    step = step or ingest_partition.with_options(retry_delay_seconds=0)
    return step(Store.at(work), part, CONFIG.id_column, CONFIG.feature_names, 1_000_000, None, return_state=True)


def _run_count(state, timeout: float = 30) -> int:
    """How many times the API saw the task run (it records the run and its states from events, a moment later)."""
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            try:
                task_run = client.read_task_run(state.state_details.task_run_id)
            except ObjectNotFound:  # its first event not recorded yet
                if time.monotonic() > deadline:
                    raise
            else:
                if task_run.state_type == state.type or time.monotonic() > deadline:
                    return task_run.run_count
            time.sleep(0.2)


def test_ingest_retries_a_transient_os_error(
    sample_table: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = FlakyReader(2, OSError(5, "Input/output error (share briefly unreachable)"))
    monkeypatch.setattr(ingest, "read_partitions", reader)

    state = _ingest(sample_table, tmp_path)

    assert state.name == "Completed", state
    assert reader.calls == 3
    assert _run_count(state) == 3
    assert state.result()[0].path.is_file()


def test_ingest_gives_up_after_its_retries(sample_table: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reader = FlakyReader(99, OSError(5, "Input/output error"))
    monkeypatch.setattr(ingest, "read_partitions", reader)

    state = _ingest(sample_table, tmp_path)

    assert state.is_failed()
    assert reader.calls == 1 + IO_RETRIES
    with pytest.raises(OSError):
        state.result()


def test_a_data_error_is_not_retried(sample_table: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reader = FlakyReader(99, DataError("input file customers.csv lacks column(s) Age"))
    monkeypatch.setattr(ingest, "read_partitions", reader)

    started = time.perf_counter()
    state = _ingest(sample_table, tmp_path, step=ingest_partition)

    # The real delays (1, 4, 10 s) are kept here: no retry means no wait.
    assert time.perf_counter() - started < 1.0
    assert state.is_failed()
    assert reader.calls == 1
    assert _run_count(state) == 1
    with pytest.raises(DataError):
        state.result()


def _failed_with(error: BaseException):
    return Failed(data=error)


@pytest.mark.parametrize(
    ("state", "retry"),
    [
        (_failed_with(OSError("stale NFS handle")), True),
        (_failed_with(FileNotFoundError("file being replaced")), True),
        (_failed_with(OSError(errno.EROFS, "Read-only file system", "/data/out")), False),
        (_failed_with(OSError(errno.ENOSPC, "No space left on device", "/data/work")), False),
        (_failed_with(NotADirectoryError(errno.ENOTDIR, "Not a directory", "/data/file/out")), False),
        (_failed_with(DataError("column missing")), False),
        (_failed_with(DataQualityError("3 expectations failed")), False),
        (_failed_with(QualityGateError("quantization error too high")), False),
        (_failed_with(ValueError("a bug")), False),
        (Completed(), False),
    ],
)
def test_retry_condition_retries_io_errors_only(state, retry: bool) -> None:
    assert retry_on_io_error(None, None, state) is retry


IO_STEPS = [plan, ingest_partition, validate_partition, load_model, score_partition, publish_run, publish_scores]


def _steps_that_write() -> list:
    import importlib
    import pkgutil

    import somseg.tasks

    found = []
    for info in pkgutil.iter_modules(somseg.tasks.__path__):
        module = importlib.import_module(f"somseg.tasks.{info.name}")
        found += [value for value in vars(module).values()
                  if getattr(value, "cache_policy", None) is not None and getattr(getattr(value, "cache_policy"), "saves", False)]
    return found


def test_every_step_that_writes_files_retries_io_errors() -> None:
    writers = _steps_that_write()
    assert len(writers) > 10
    assert [step.name for step in writers if step.retries != IO_RETRIES or step.retry_condition_fn is not retry_on_io_error] == []


@pytest.mark.parametrize("step", IO_STEPS)
def test_io_steps_retry_with_backoff_on_io_errors_only(step) -> None:
    assert step.retries == IO_RETRIES
    delays = step.retry_delay_seconds
    assert list(delays) == sorted(delays) and delays[0] < delays[-1], "delays must grow (backoff)"
    assert step.retry_condition_fn is retry_on_io_error
