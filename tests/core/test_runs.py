"""somseg.runs: what a failed run leaves behind."""

from pathlib import Path

from somseg.runs import record_failure


def test_a_failure_report_that_fails_in_turn_leaves_the_runs_own_error(tmp_path: Path) -> None:
    def broken_report(folder: Path, error: BaseException) -> None:
        (folder / "half-written.html").write_text("<html>", encoding="utf-8")
        raise RuntimeError("no space left for the figures")

    folder = record_failure(tmp_path / "run", {}, {"quantization_error": 0.9}, ValueError("gate failed"), broken_report)

    assert folder == tmp_path / "run" / "last_failure"
    assert (folder / "error.txt").read_text() == "ValueError: gate failed\n"
    assert (folder / "report-error.txt").read_text() == "RuntimeError: no space left for the figures\n"
    assert (folder / "metrics.json").is_file()


def test_the_report_writes_into_the_diagnostics_folder(tmp_path: Path) -> None:
    seen: list[str] = []

    def report(folder: Path, error: BaseException) -> None:
        seen.append(str(error))
        (folder / "report.html").write_text("<html></html>", encoding="utf-8")

    folder = record_failure(tmp_path / "run", {}, {"n_rows": 3}, ValueError("gate failed"), report)

    assert seen == ["gate failed"] and (folder / "report.html").is_file()
    assert not (folder / "report-error.txt").exists()
    assert not list((tmp_path / "run").glob(".*staging*")), "nothing half-made is left beside it"
