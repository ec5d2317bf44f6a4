"""A tiny run of benchmarks/private_apis.py: the shipped ``segment train`` ends, ends clean, and is timed."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "private_apis.py"


def test_the_shipped_command_trains_and_the_index_is_timed_on_both_sides(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PREFECT_", "SOMSEG_"))}
    env["TMPDIR"] = str(tmp_path)  # the script's table and run folders
    figures = tmp_path / "figures.json"
    # The benchmark's config without the evaluation's bootstrap maps: the variants differ in process settings only.
    config = tmp_path / "smoke.yaml"
    config.write_text((SCRIPT.parent / "batch.yaml").read_text() + "evaluation: {bootstrap_resamples: 0}\n")
    done = subprocess.run(
        # The product as it ships; every other variant switches one process setting off before the same
        # command, and tests/tasks/test_private_apis.py checks each setting's own fence.
        [sys.executable, str(SCRIPT), "--rows", "20000", "--repeat", "1", "--json", str(figures), "--config", str(config),
         "--variants", "all"],
        capture_output=True, text=True, check=False, timeout=900, env=env,
    )

    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(figures.read_text())
    assert set(result["walls"]) == {"all"}
    assert all(len(walls) == 1 and walls[0] > 0 for walls in result["walls"].values())
    assert set(result["ari"]) == {"somseg", "scikit-learn"}
    runs = sorted(tmp_path.glob("somseg-private-apis-*/*/run"))
    assert len(runs) == 1
    assert all(json.loads((run / "metrics.json").read_text())["n_rows"] == 20_000 for run in runs)
