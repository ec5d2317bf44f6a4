"""The core package imports neither Prefect nor Great Expectations."""

import json
import subprocess
import sys
import textwrap

import pytest

FORBIDDEN = ("prefect", "great_expectations")

_SCRIPT = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys
    import somseg
    names = sorted(m.name for m in pkgutil.walk_packages(somseg.__path__, "somseg."))
    failed = {}
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # reported, not hidden
            failed[name] = f"{type(exc).__name__}: {exc}"
    forbidden = set(sys.argv[1:])
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in forbidden)
    print(json.dumps({"modules": names, "failed": failed, "forbidden": loaded}))
    """
)


@pytest.fixture(scope="module")
def report() -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, *FORBIDDEN], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_core_modules_found(report) -> None:
    expected = {"config", "io", "cleaning", "metrics", "som", "segments", "labels", "model", "drift", "errors"}
    assert {f"somseg.{name}" for name in expected} <= set(report["modules"])


def test_every_core_module_imports(report) -> None:
    assert report["failed"] == {}


def test_core_imports_no_orchestration(report) -> None:
    assert report["forbidden"] == []
