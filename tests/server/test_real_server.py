"""Production-like checks on a real Prefect server: deployments, schedules, alerts, promotion, crash recovery,
dated scoring, retry, UI.

One run of ``scripts/real_server_check.py --ui`` serves every test of this
module (its docstring lists the steps); its summary and the UI screenshots
stay in ``$TMPDIR/somseg-real-server-check-*/``. Deselect with ``-m "not server"``.
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
TIMEOUT_SECONDS = 1200
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


def _received(check: dict, event: str) -> list[dict]:
    return [body for body in check["summary"]["received"] if body.get("event") == event]


def test_the_alerts_command_creates_the_automations_once_and_refuses_an_unknown_block(check: dict) -> None:
    alerts = check["summary"]["alerts"]

    assert alerts["created"]["returncode"] == 0 and alerts["again"]["returncode"] == 0, alerts
    assert "automation somseg-run-failed: created" in alerts["created"]["stdout"]
    assert "automation somseg-run-failed: updated" in alerts["again"]["stdout"]
    assert "created" not in alerts["again"]["stdout"]
    assert alerts["automations"] == ["somseg-drift", "somseg-run-failed", "somseg-zombie-runs"]
    assert alerts["unknown_block"]["returncode"] == 2
    assert "block webhook/nothing-here does not exist" in alerts["unknown_block"]["stderr"]


def test_a_training_failing_its_gate_is_announced_and_not_promoted(check: dict) -> None:
    summary = check["summary"]
    (notice,) = _received(check, "prefect.flow-run.Failed")

    assert notice["resource"] == f"prefect.flow-run.{summary['runs']['failed_then_retried']}"
    assert notice["automation"] == "somseg-run-failed"
    assert notice["subject"].startswith("somseg: train-segments run ") and notice["subject"].endswith(" Failed")
    assert "quality gate failed" in notice["text"] and "last_failure" in notice["text"]
    assert summary["registry"]["versions"] == [summary["registry"]["promoted"]]


def test_three_late_scheduled_days_leave_three_dated_folders_scored_with_the_promoted_version(check: dict) -> None:
    summary = check["summary"]
    days = summary["days"]

    assert len(days) == 3 and len({day["flow_run"] for day in days.values()}) == 3
    assert [day["run_date"] for day in days.values()] == list(days)
    assert {day["model_version"] for day in days.values()} == {summary["registry"]["promoted"]}
    assert [bool(day["drift_warnings"]) for day in days.values()] == [False, False, True]


def test_drift_under_warn_completes_the_run_and_is_announced_with_the_figures(check: dict) -> None:
    drifted = list(check["summary"]["days"].values())[-1]
    (notice,) = _received(check, "somseg.drift.detected")

    assert notice["resource"] == f"prefect.flow-run.{drifted['flow_run']}"
    figures = notice["payload"]
    assert figures["action"] == "warn" and figures["n_rows"] == 1500
    assert figures["feature_psi"]["Age"] > figures["limits"]["max_feature_psi"] == 0.25
    assert "feature Age PSI" in [entry["check"] for entry in figures["crossed"]]
    assert notice["subject"].startswith("somseg: drift in score-segments run ")
    assert f"feature Age PSI {figures['feature_psi']['Age']:.5g} > max 0.25" in notice["text"]


def test_a_run_killed_with_its_worker_is_marked_crashed_announced_and_resumed_from_the_cache(check: dict) -> None:
    summary = check["summary"]
    killed = summary["killed"]
    (notice,) = _received(check, "prefect.flow-run.Crashed")

    assert notice["resource"] == f"prefect.flow-run.{summary['runs']['killed_then_retried']}"
    assert f"No heartbeat for {killed['zombie_within_seconds']} s" in notice["text"]
    assert killed["crashed_after_seconds"] >= killed["zombie_within_seconds"] - 30  # not before a heartbeat was missed
    done = killed["done_before_kill"]
    assert {"ingest-partition", "save-cleaning"} <= set(done) and "publish-run" not in done
    assert {step: killed["resumed"][step] for step in done} == {step: "Cached" for step in done}
    assert killed["resumed"]["publish-run"] == "Completed"


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
