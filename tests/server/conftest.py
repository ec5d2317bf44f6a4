"""Markers of the real-server checks (also listed in pyproject.toml's pytest markers)."""

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "server: starts a real Prefect server, deploys and runs the flows on a worker")
    config.addinivalue_line("markers", "browser: drives headless Chromium against the Prefect UI")
