"""somseg.runs: what a failed run leaves behind."""

from pathlib import Path

import pytest

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


def test_rejected_rows_of_every_partition_are_one_file_and_none_is_still_a_file(tmp_path: Path) -> None:
    import pandas as pd
    import pyarrow as pa

    from somseg.io import write_arrow_table
    from somseg.runs import stage_rejected

    def part(name: str, ids: list[int], values: list[str]) -> Path:
        table = pa.table({"id": pa.array(ids, pa.int64()), "column": ["Age"] * len(ids), "value": values,
                          "reason": ["above max 100"] * len(ids)})
        return write_arrow_table(tmp_path / name, table)

    parts = [part("a.arrow", [4, 9], ["150", "160"]), part("b.arrow", [], []), part("c.arrow", [12], ["170"])]
    (tmp_path / "run").mkdir()

    rejected = pd.read_parquet(stage_rejected(tmp_path / "run", parts))

    assert rejected["id"].tolist() == [4, 9, 12] and rejected["value"].tolist() == ["150", "160", "170"]
    assert list(rejected.columns) == ["id", "column", "value", "reason"]
    (tmp_path / "empty").mkdir()
    assert len(pd.read_parquet(stage_rejected(tmp_path / "empty", parts[1:2]))) == 0


def test_date_in_a_path_is_the_runs_day() -> None:
    from datetime import date

    from somseg.errors import ConfigError
    from somseg.runs import dated, parse_run_date

    day = parse_run_date("2026-11-30")
    assert day == date(2026, 11, 30)
    assert dated("/data/customers_{date}.csv", day) == "/data/customers_2026-11-30.csv"
    assert dated("runs/{date}/x{date}", day) == "runs/2026-11-30/x2026-11-30"
    assert dated("runs/daily", day) == "runs/daily"
    with pytest.raises(ConfigError, match=r"run_date '30\.11\.2026' is not a date written YYYY-MM-DD"):
        parse_run_date("30.11.2026")
