"""Production-like checks on a real Prefect server: deployments, schedules, worker, retry, UI.

One run of ``scripts/real_server_check.py --ui`` (about 100 s on an idle
2-core machine) serves every test of this module; its summary and the UI
screenshots stay in ``$TMPDIR/somseg-real-server-check-*/``. Deselect with ``-m "not server"``.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.server

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "real_server_check.py"
TIMEOUT_SECONDS = 480
EARLY_STEPS = (
    "ingest-partition", "validate-partition", "count-duplicates", "combine-validation", "impute-partition", "save-cleaning",
    "pack-training-blocks", "train-batch-som", "assess-partition",  # the default engine, on one partition
)
LATE_STEPS = (
    "cluster-neurons", "evaluate-run", "label-segments", "build-model", "assign-partition", "draw-figures", "publish-run",
)


def _chromium_available() -> bool:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import ui_check
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return ui_check.find_chromium() is not None


@pytest.fixture(scope="module")
def check() -> dict:
    # Not pytest's tmp_path: pytest prunes old ones, and the screenshots should outlive the session.
    out = Path(tempfile.mkdtemp(prefix="somseg-real-server-check-"))
    with_ui = _chromium_available()
    command = [sys.executable, str(SCRIPT), "--out", str(out), *(["--ui"] if with_ui else [])]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)  # the script, its server and its workers
        output, _ = process.communicate()
        pytest.fail(f"real server check still running after {TIMEOUT_SECONDS} s:\n{output[-6000:]}")
    assert process.returncode == 0, f"real server check failed:\n{output[-8000:]}"
    return {"out": out, "with_ui": with_ui, "summary": json.loads((out / "summary.json").read_text())}


def test_schedules_produce_scheduled_runs(check: dict) -> None:
    schedules = check["summary"]["schedules"]

    assert schedules["train-segments/weekly"] and schedules["score-segments/daily"]
    assert all(t.endswith("T02:00:00Z") for t in schedules["train-segments/weekly"])
    assert all(t.endswith("T06:00:00Z") for t in schedules["score-segments/daily"])


def test_failed_deployment_run_retried_skips_the_completed_steps(check: dict) -> None:
    first, retried = check["summary"]["first_attempt_task_states"], check["summary"]["retried_task_states"]

    assert first["enforce-quality-gates"] == "Failed"
    assert {step: first[step] for step in EARLY_STEPS} == {step: "Completed" for step in EARLY_STEPS}
    assert {step: retried[step] for step in EARLY_STEPS} == {step: "Cached" for step in EARLY_STEPS}
    assert {step: retried[step] for step in LATE_STEPS} == {step: "Completed" for step in LATE_STEPS}


@pytest.mark.browser
def test_ui_shows_the_profile_table_and_the_pictures(check: dict, capsys: pytest.CaptureFixture[str]) -> None:
    if not check["with_ui"]:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing; CI must install it (.ci/run)")
        pytest.skip("chromium not installed: apt-get install -y chromium")
    ui = check["summary"]["ui"]

    assert sorted(picture["alt"] for picture in ui["pictures"]) == ["Hit map", "U-matrix"]
    assert all(picture["width"] > 100 and picture["height"] > 100 for picture in ui["pictures"])
    for page in ("run_page", "map_page", "profiles_page"):
        assert Path(ui[page]).stat().st_size > 10_000, page
    with capsys.disabled():
        print(f"\n  UI screenshots: {ui['map_page']}, {ui['profiles_page']}, {ui['run_page']}")
