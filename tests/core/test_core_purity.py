"""The core package imports neither Prefect, Great Expectations nor Dask; the flows need no Dask unless asked."""

import json
import subprocess
import sys
import textwrap

import pytest

ORCHESTRATION = ("prefect", "great_expectations")
DASK = ("dask", "distributed", "prefect_dask")

_CORE = textwrap.dedent(
    """
    import importlib, json, pathlib, pkgutil, sys
    import somseg
    # The core is the somseg/ folder: somseg.tasks, somseg.flows and the
    # package data install under the same name from other folders.
    folder = pathlib.Path(somseg.__file__).parent
    names = sorted(f"somseg.{m.name}" for m in pkgutil.iter_modules([str(folder)]) if not m.ispkg)
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

_FLOWS = textwrap.dedent(
    """
    import json, sys
    import somseg.flows.train, somseg.flows.score, somseg.flows.cli
    print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in set(sys.argv[1:]))))
    """
)


def _run(script: str, *forbidden: str) -> object:
    result = subprocess.run([sys.executable, "-c", script, *forbidden], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def report() -> dict:
    return _run(_CORE, *ORCHESTRATION, *DASK)


def test_core_modules_found(report) -> None:
    expected = {"config", "io", "dataset", "stats", "cleaning", "metrics", "som", "batch_som", "assessment",
                "segments", "labels", "model", "drift", "scoring", "quality", "results", "gates", "errors"}
    assert {f"somseg.{name}" for name in expected} <= set(report["modules"])


def test_every_core_module_imports(report) -> None:
    assert report["failed"] == {}


def test_core_imports_no_orchestration_and_no_dask(report) -> None:
    assert report["forbidden"] == []


def test_the_flows_load_dask_only_when_a_run_asks_for_it() -> None:
    assert _run(_FLOWS, *DASK) == []
