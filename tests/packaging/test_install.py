"""A normal (not editable) install in a fresh venv: the package data travels, nothing generic lands in site-packages.

``pip install .`` from the checkout into a new virtual environment, then
``segment train`` and ``segment score`` from another directory, where no
``expectations/`` or ``data/`` folder is in reach: the shipped suite and the
sample must come from the installed package.
"""

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    fresh = tmp_path_factory.mktemp("fresh")
    # A copy of the sources: setuptools builds in the source folder, and a build/ left there from an
    # earlier install would carry modules deleted since into the wheel.
    source = fresh / "source"
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".somseg", "runs"))
    env_dir = fresh / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # The dependencies come from this environment (installed as the README says), behind the new one's
    # own site-packages: installing them again would test pip, not this package. A path added this way
    # is not a site folder, so this environment's editable install of the checkout is not seen.
    (_site_packages(env_dir) / "dependencies.pth").write_text(
        "\n".join(path for path in sys.path if path.endswith("site-packages")) + "\n", encoding="utf-8")
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile", "--no-deps",
         str(source)],
        capture_output=True, text=True, timeout=1_200, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return env_dir


def _site_packages(env_dir: Path) -> Path:
    (site,) = (env_dir / "lib").glob("python3*/site-packages")
    return site


def test_nothing_generic_is_installed_and_the_data_travels(installed: Path) -> None:
    site = _site_packages(installed)
    assert not (site / "tasks").exists() and not (site / "flows").exists()
    assert (site / "somseg" / "tasks" / "catalog.py").is_file() and (site / "somseg" / "flows" / "train.py").is_file()
    assert (site / "somseg" / "expectations" / "customers.json").is_file()
    assert (site / "somseg" / "data" / "customers_sample.csv").is_file()


def test_the_core_and_the_flows_import_without_the_dask_extra(installed: Path, tmp_path: Path) -> None:
    # Away from the checkout, whose somseg/ would otherwise shadow the installed package. Dask is
    # importable here (this environment's), so: the flows must not import it, and only the extra requires it.
    code = (
        "import somseg.flows.train, somseg.flows.score, importlib.metadata, sys\n"
        "assert somseg.flows.train.__file__.startswith(sys.prefix), somseg.flows.train.__file__\n"
        "needs = [r for r in importlib.metadata.requires('somseg') if r.split()[0].startswith(('dask', 'distributed'))]\n"
        "assert needs and all('extra == \"dask\"' in r for r in needs), needs\n"
        "sys.exit(3 if 'distributed' in sys.modules or 'dask' in sys.modules else 0)"
    )
    done = subprocess.run([str(installed / "bin" / "python"), "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def test_train_and_score_the_shipped_sample_from_another_directory(installed: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SOMSEG_"))}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    segment = str(installed / "bin" / "segment")
    (elsewhere / "fast.yaml").write_text(
        "som: {engine: batch, init: pca, rows: 4, cols: 4, epochs: 5}\nevaluation: {bootstrap_resamples: 0}\n"
        "gates: {max_quantization_error: 1.0}\n",  # a 16-neuron map is coarser than the default gate expects
        encoding="utf-8",
    )

    train = subprocess.run([segment, "train", "--config", "fast.yaml", "--out", "run"], cwd=elsewhere, env=env,
                           capture_output=True, text=True, timeout=600, check=False)
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    sample = _site_packages(installed) / "somseg" / "data" / "customers_sample.csv"
    score = subprocess.run([segment, "score", str(sample), "--model", "run/model", "--out", "scored"], cwd=elsewhere,
                           env=env, capture_output=True, text=True, timeout=600, check=False)
    assert score.returncode == 0, score.stdout[-3000:] + score.stderr[-3000:]

    metrics = json.loads((elsewhere / "run" / "metrics.json").read_text())
    assert metrics["n_rows"] == 5_000 and metrics["input"].endswith("customers_sample.csv")
    validation = json.loads((elsewhere / "run" / "validation.json").read_text())
    assert validation["success"] and validation["suite_name"] == "auto"
    assert json.loads((elsewhere / "scored" / "metrics.json").read_text())["segment_psi"] < 1e-9
    assert sys.executable != str(installed / "bin" / "python")
