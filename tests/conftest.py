"""Shared fixtures: the Prefect test harness, isolated storage, the reference table."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_TABLE = REPO_ROOT.parent / "shared" / "data" / "customers_train.csv"
SAMPLE_TABLE = REPO_ROOT / "data" / "customers_sample.csv"


@pytest.fixture(scope="session", autouse=True)
def _isolated_prefect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # The harness does not isolate result storage: without this, cached
    # results of earlier runs (or of a developer's own runs) would be hit.
    home = tmp_path_factory.mktemp("prefect-home")
    os.environ["PREFECT_LOCAL_STORAGE_PATH"] = str(home / "storage")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
    yield


@pytest.fixture(scope="session")
def prefect_harness(_isolated_prefect: None) -> Iterator[None]:
    """A temporary Prefect API for flow tests (about 7 s to start, once)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def reference_table() -> Path:
    if not REFERENCE_TABLE.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"reference table missing at {REFERENCE_TABLE}; CI must provide ../shared/data")
        pytest.skip(f"reference table not found at {REFERENCE_TABLE}")
    return REFERENCE_TABLE


@pytest.fixture(scope="session")
def sample_table() -> Path:
    return SAMPLE_TABLE


@pytest.fixture(scope="session")
def reference_run(prefect_harness: None, reference_table: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One training run on the reference table, shared by the tests that read it."""
    from flows.train import train_segments_flow

    base = tmp_path_factory.mktemp("reference")
    return Path(train_segments_flow(str(reference_table), str(base / "run"), work_dir=str(base / "work")))
