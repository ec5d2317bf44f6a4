"""Correcting a failed run's parameters: checked as the flow checks them, and the old values kept in view."""

import importlib.util
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType

import pytest

from somseg.errors import ConfigError

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "set_run_parameters.py"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("set_run_parameters", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RUN = {"input_path": "data/customers_sample.csv", "out_dir": "runs/weekly", "config": {"segments": {"k": 3}}}


def test_a_setting_is_changed_and_the_rest_kept(script: ModuleType) -> None:
    edited, changes = script.edit_parameters("train-segments", RUN, ["config.gates.max_quantization_error=0.5",
                                                                     "config.segments.k=4"])

    assert edited == {**RUN, "config": {"segments": {"k": 4}, "gates": {"max_quantization_error": 0.5}}}
    assert changes == [("config.gates.max_quantization_error", None, 0.5), ("config.segments.k", 3, 4)]
    assert RUN["config"] == {"segments": {"k": 3}}, "the run's parameters as read are not changed in place"


@pytest.mark.parametrize(("edit", "error", "says"), [
    ("config.gates.max_quantisation_error=0.5", ConfigError, "max_quantisation_error"),
    ("config.segments.k=1", ConfigError, "segments.k"),
    ("outdir=runs/x", ValueError, "'outdir' is not a parameter of train-segments"),
    ("out_dir.x=1", ValueError, "only config has settings"),
    ("config.segments.k", ValueError, "is not KEY=VALUE"),
])
def test_a_typo_or_a_value_the_flow_refuses_changes_nothing(
    script: ModuleType, edit: str, error: type[Exception], says: str
) -> None:
    with pytest.raises(error, match=says):
        script.edit_parameters("train-segments", RUN, [edit])


def test_scoring_runs_are_checked_against_the_scoring_config(script: ModuleType) -> None:
    edited, _ = script.edit_parameters("score-segments", {"input_path": "x.csv", "model_dir": "m"},
                                       ["config.drift.action=fail"])
    assert edited["config"] == {"drift": {"action": "fail"}}
    with pytest.raises(ConfigError, match="segments"):
        script.edit_parameters("score-segments", {}, ["config.segments.k=4"])


def test_the_record_shows_old_and_new_values(script: ModuleType) -> None:
    record = script.change_record([("config.segments.k", 3, 4)], datetime(2026, 11, 30, 12, tzinfo=timezone.utc))
    assert "2026-11-30 12:00:00 UTC" in record and "| `config.segments.k` | `3` | `4` |" in record
