"""Mistakes a command can see without a server are reported before one starts."""

from pathlib import Path

import pytest

from somseg.flows import server
from somseg.flows.cli import main


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> None:
        raise AssertionError("a server was started before the mistake was reported")

    monkeypatch.setattr(server, "launch_unless_configured", refuse)


@pytest.mark.usefixtures("no_server")
def test_a_bad_config_input_output_or_model_stops_before_any_server(
    tmp_path: Path, sample_table: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("segments: {k: 1}\n", encoding="utf-8")
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    registry = tmp_path / "models"
    (registry / "versions").mkdir(parents=True)
    cases = [
        (["train", str(sample_table), "--config", str(bad)], 2, "segments.k"),
        (["train", str(tmp_path / "missing.csv")], 3, "does not exist"),
        (["train", str(sample_table), "--out", str(sample_table.parent)], 3, "contains the input file"),
        (["score", str(sample_table), "--model", str(tmp_path / "nothing")], 6, "does not exist"),
        (["score", str(sample_table), "--model", str(run / "model"), "--out", str(run)], 3, "contains the model"),
        (["score", str(sample_table), "--model", str(registry)], 6, "has no promoted version yet"),
        (["train", str(sample_table), "--registry", str(tmp_path)], 3, "holds files but is no model registry"),
        (["train", str(sample_table), "--registry", str(registry), "--out", str(registry / "run")], 3,
         "is inside the model registry"),
    ]
    for argv, code, message in cases:
        assert main([*argv, "--work-dir", str(tmp_path / "work")]) == code, argv
        assert message in capsys.readouterr().err
