"""A tiny run of benchmarks/cli_scale.py: the installed ``segment`` command, end to end.

This is also the one test of the command as users run it: a fresh process
with no ``PREFECT_API_URL``, so ``segment`` starts its own temporary Prefect
server (flows/server.py), delivers its logs before stopping it, and ends
through the fast exit of ``somseg.flows.cli.run``.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "cli_scale.py"


def test_cli_benchmark_trains_and_scores_a_generated_table(tmp_path: Path) -> None:
    # The wide kind: 17 skewed features and a text id, the table that stretches the command most.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--kind", "money", "--rows", "5000", "--keep", str(tmp_path)],
        capture_output=True, text=True, check=False, timeout=600, env=env,
    )

    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "| segment train |" in done.stdout and "| segment score |" in done.stdout
    assert "5,000 rows of 'money', each with a temporary Prefect server" in done.stdout
    trained = json.loads((tmp_path / "trained" / "metrics.json").read_text())
    scored = json.loads((tmp_path / "scored" / "metrics.json").read_text())
    assert trained["n_rows"] == scored["n_rows"] == 5_000
    assert set(trained["durations_seconds"]) >= {"ingest", "validate", "clean", "train", "write"}
    segments = pd.read_parquet(tmp_path / "scored" / "segments.parquet")
    assert segments["CUST_ID"].str.fullmatch(r"C\d{7,}").all() and segments["CUST_ID"].is_unique
