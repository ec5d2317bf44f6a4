"""A catalogue of bad tables, configs, model bundles and output folders, each run through the ``segment`` command.

Every case starts from a good earlier run in the output folder and checks,
after the command: its documented exit code and a one-line ``segment …:
error:`` message that says what is wrong (or a documented success); the
earlier run byte-identical when the command failed; nothing half-written or
temporary left anywhere in the case's folder. Kills, concurrent runs and
full or read-only file systems have their own tests below.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from processes import processes

from somseg.flows.cli import main
from somseg.io import RUN_MARKER
from somseg.layout import FAILURE_DIR, MODEL_DIR
from somseg.tasks.catalog import GC_LOCK

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_harness")]

FAST_CONFIG = """\
id_column: ID
features:
- {name: Age, min: 18, max: 100}
- {name: Work_Experience, min: 0, max: 60}
- {name: Family_Size, min: 1, max: 20}
som: {engine: batch, init: pca, rows: 4, cols: 4, epochs: 5, sigma: 1.5}
gates: {max_quantization_error: 1.0, max_topographic_error: 0.5}
segments: {k: 3}
evaluation: {bootstrap_resamples: 0, k_max: 4, silhouette_sample: 1000, stability_rows: 1000}
"""
HEADER = "ID,Gender,Age,Work_Experience,Family_Size"


def _digests(folder: Path) -> dict[str, str]:
    """Every file's digest, but the diagnostics a failed run adds (documented: ``--out/last_failure/``)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and FAILURE_DIR not in p.relative_to(folder).parts}


@pytest.fixture(scope="module")
def earlier(sample_table: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A good training run and a good scoring run, made once, copied into each case's folder."""
    base = tmp_path_factory.mktemp("catalogue")
    frame = pd.read_csv(sample_table, usecols=HEADER.split(","))
    frame.iloc[:300].to_csv(base / "train.csv", index=False)
    frame.iloc[300:420].to_csv(base / "new.csv", index=False)
    (base / "fast.yaml").write_text(FAST_CONFIG, encoding="utf-8")
    work = str(base / "work")
    assert main(["train", str(base / "train.csv"), "--config", str(base / "fast.yaml"), "--out", str(base / "run"),
                 "--work-dir", work]) == 0
    assert main(["score", str(base / "new.csv"), "--model", str(base / "run" / MODEL_DIR), "--out",
                 str(base / "scored"), "--work-dir", work]) == 0
    return {"base": base, "run": base / "run", "scored": base / "scored", "work": base / "work"}


@dataclass
class Ctx:
    """One case's folder: copies of the earlier runs and the means to write bad inputs beside them."""

    root: Path
    earlier: dict[str, Path]

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def scored(self) -> Path:
        return self.root / "scored"

    @property
    def model(self) -> Path:
        return self.run / MODEL_DIR

    @property
    def config(self) -> Path:
        return self.earlier["base"] / "fast.yaml"

    def good_rows(self, n: int = 300) -> list[str]:
        return (self.earlier["base"] / "train.csv").read_text(encoding="utf-8").splitlines()[1:n + 1]

    def text(self, name: str, content: str | bytes) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    def csv(self, lines: list[str], name: str = "table.csv", header: str = HEADER) -> Path:
        return self.text(name, "\n".join([header, *lines]) + "\n")

    def yaml(self, text: str) -> Path:
        return self.text("config.yaml", text)

    def frame(self) -> pd.DataFrame:
        return pd.read_csv(self.earlier["base"] / "train.csv")

    def parquet(self, table: pd.DataFrame | pa.Table, name: str = "table.parquet") -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table if isinstance(table, pa.Table) else pa.Table.from_pandas(table, preserve_index=False), path)
        return path

    def train(self, table: Path | str, config: Path | None = None, *extra: str) -> list[str]:
        return ["train", str(table), "--config", str(config or self.config), "--out", str(self.run), *extra]

    def score(self, table: Path | str | None = None, model: Path | None = None, *extra: str) -> list[str]:
        return ["score", str(table or self.earlier["base"] / "new.csv"), "--model", str(model or self.model),
                "--out", str(self.scored), *extra]

    def edit_bundle(self, edit: Callable[[Path], None]) -> Path:
        """A copy of the model bundle with ``edit`` applied (outside the run folder, so the run stays checked)."""
        bundle = Path(shutil.copytree(self.model, self.root / "bundle"))
        edit(bundle)
        return bundle


@dataclass(frozen=True)
class Case:
    name: str
    code: int
    says: tuple[str, ...]
    argv: Callable[[Ctx], list[str]]


def _rows(ctx: Ctx, *bad: str, at: int = 50) -> list[str]:
    rows = ctx.good_rows()
    return rows[:at] + list(bad) + rows[at:]


def _reseal(bundle: Path, name: str, change: Callable[[dict], None]) -> None:
    """Change a JSON file of a bundle and update its checksum, as a tool (not corruption) would."""
    path = bundle / name
    payload = json.loads(path.read_text())
    change(payload)
    path.write_text(json.dumps(payload))
    manifest = json.loads((bundle / "MANIFEST.json").read_text())
    manifest["sha256"][name] = hashlib.sha256(path.read_bytes()).hexdigest()
    (bundle / "MANIFEST.json").write_text(json.dumps(manifest))


def _frame_with(ctx: Ctx, **columns: object) -> pd.DataFrame:
    frame = ctx.frame()
    for name, value in columns.items():
        frame[name] = value
    return frame


TABLES = [
    Case("missing file", 3, ("does not exist", "nope.csv"), lambda c: c.train(c.root / "nope.csv")),
    Case("folder without parquet", 3, ("holds no Parquet",), lambda c: c.train(c.text("in/notes.txt", "x").parent)),
    Case("excel file", 3, ("unsupported extension", ".xlsx"), lambda c: c.train(c.text("t.xlsx", b"PK\x03\x04"))),
    Case("empty file", 3, ("t.csv",), lambda c: c.train(c.text("t.csv", b""))),
    Case("header only", 4, ("t.csv", "observed: 0"), lambda c: c.train(c.text("t.csv", HEADER + "\n"))),
    Case("one field too many", 3, ("line 52", "table.csv"), lambda c: c.train(c.csv(_rows(c, "1,Male,40,3,2,9")))),
    Case("one field too few", 3, ("line 52", "table.csv"), lambda c: c.train(c.csv(_rows(c, "1,Male,40,3")))),
    Case("cut off mid-row", 3, ("table.csv",), lambda c: c.train(c.text("table.csv", "\n".join([HEADER, *c.good_rows()]) + "\n2,Fem"))),
    Case("missing feature column", 3, ("Family_Size", "table.csv"),
         lambda c: c.train(c.csv([r.rsplit(",", 1)[0] for r in c.good_rows()], header=HEADER.rsplit(",", 1)[0]))),
    Case("missing id column", 3, ("ID", "table.csv"),
         lambda c: c.train(c.csv([r.split(",", 1)[1] for r in c.good_rows()], header=HEADER.split(",", 1)[1]))),
    Case("text in a numeric column", 3, ("Age", "abc", "table.csv"), lambda c: c.train(c.csv(_rows(c, "1,Male,abc,3,2")))),
    Case("value out of range", 3, ("Age", "900", "table.csv"), lambda c: c.train(c.csv(_rows(c, "1,Male,900,3,2")))),
    Case("negative experience", 3, ("Work_Experience", "-5"), lambda c: c.train(c.csv(_rows(c, "1,Male,40,-5,2")))),
    Case("infinite value", 3, ("Age", "table.csv"), lambda c: c.train(c.csv(_rows(c, "1,Male,inf,3,2")))),
    Case("infinite value, no range", 3, ("Age", "inf", "not a number"),
         lambda c: c.train(c.csv(_rows(c, "1,Male,-inf,3,2")), None, "--features", "Age,Work_Experience,Family_Size")),
    Case("value too large to standardise, no range", 3, ("Age", "1e+200", "cannot be standardised"),
         lambda c: c.train(c.csv(_rows(c, "1,Male,1e200,3,2")), None, "--features", "Age,Work_Experience,Family_Size")),
    Case("constant feature", 3, ("Family_Size", "one value"),
         lambda c: c.train(c.csv([r.rsplit(",", 1)[0] + ",2" for r in c.good_rows()]))),
    Case("empty feature column", 4, ("table.csv", "Work_Experience", "300 unexpected"),
         lambda c: c.train(c.csv([",".join(r.split(",")[:3] + ["", r.split(",")[4]]) for r in c.good_rows()]))),
    Case("too few rows", 4, ("table.csv", "observed: 20"), lambda c: c.train(c.csv(c.good_rows(20)))),
    Case("binary garbage named csv", 3, ("t.csv",), lambda c: c.train(c.text("t.csv", bytes(range(256)) * 40))),
    Case("latin-1 text", 3, ("t.csv", "not UTF-8", "line 2"),
         lambda c: c.train(c.text("t.csv", ("\n".join([HEADER, *c.good_rows()]) + "\n").replace("Male", "Mâle").encode("latin-1")))),
    Case("semicolons, sniffed", 0, ("segments written",), lambda c: c.score(c.csv([r.replace(",", ";") for r in c.good_rows()],
                                                                           header=HEADER.replace(",", ";")))),
    Case("byte-order mark and CRLF", 0, ("segments written",),
         lambda c: c.score(c.text("t.csv", ("\ufeff" + "\r\n".join([HEADER, *c.good_rows()]) + "\r\n").encode("utf-8")))),
    Case("quoted fields and blank last line", 0, ("segments written",),
         lambda c: c.score(c.text("t.csv", "\n".join([HEADER, *[r.replace("Male", '"Male, Sr"') for r in c.good_rows()]]) + "\n\n"))),
    Case("duplicate header names", 3, ("t.csv", "'Age' more than once"),
         lambda c: c.train(c.text("t.csv", "\n".join([HEADER + ",Age", *[r + ",1" for r in c.good_rows()]]) + "\n"))),
    Case("a folder named like a csv", 3, ("t.csv",), lambda c: c.train(c.text("t.csv/x.txt", "x").parent)),
    Case("corrupt parquet", 3, ("t.parquet",), lambda c: c.train(c.text("t.parquet", b"PAR1garbagePAR1"))),
    Case("parquet without a feature", 3, ("Age", "table.parquet"), lambda c: c.train(c.parquet(c.frame().drop(columns="Age")))),
    Case("parquet with numbers as text", 0, ("segments written",),
         lambda c: c.score(c.parquet(_frame_with(c, Age=c.frame()["Age"].astype(str))))),
    Case("parquet with words in a feature", 3, ("Age", "forty", "table.parquet"),
         lambda c: c.train(c.parquet(_frame_with(c, Age="forty")))),
    Case("parquet parts that disagree", 3, ("Age",),
         lambda c: c.train((c.parquet(c.frame().iloc[:150], "parts/a.parquet"),
                            c.parquet(_frame_with(c, Age="x").iloc[150:], "parts/b.parquet"))[0].parent)),
    Case("partitioned parquet", 0, ("segments written",),
         lambda c: c.score((c.parquet(c.frame().iloc[:150], "parts/a.parquet"),
                            c.parquet(c.frame().iloc[150:], "parts/b.parquet"))[0].parent)),
    Case("duplicate ids", 4, ("ID",), lambda c: c.train(c.csv(_rows(c, c.good_rows()[0])))),
    Case("missing id value", 4, ("ID",), lambda c: c.train(c.csv(_rows(c, ",Male,40,3,2")))),
]

CONFIGS = [
    Case("config file missing", 2, ("nope.yaml",), lambda c: c.train(c.earlier["base"] / "train.csv", c.root / "nope.yaml")),
    Case("yaml syntax error", 2, ("config.yaml",), lambda c: c.train(c.earlier["base"] / "train.csv", c.yaml("som: {rows: [\n"))),
    Case("config is a list", 2, ("config.yaml",), lambda c: c.train(c.earlier["base"] / "train.csv", c.yaml("- 1\n- 2\n"))),
    Case("unknown key", 2, ("segmnts",), lambda c: c.train(c.earlier["base"] / "train.csv", c.yaml(FAST_CONFIG + "segmnts: {k: 3}\n"))),
    Case("unknown nested key", 2, ("rowz",), lambda c: c.train(c.earlier["base"] / "train.csv",
                                                           c.yaml(FAST_CONFIG.replace("rows: 4", "rowz: 4")))),
    Case("wrong type", 2, ("epochs",), lambda c: c.train(c.earlier["base"] / "train.csv",
                                                      c.yaml(FAST_CONFIG.replace("epochs: 5", "epochs: many")))),
    Case("k of one", 2, ("segments.k",), lambda c: c.train(c.earlier["base"] / "train.csv",
                                                          c.yaml(FAST_CONFIG.replace("k: 3", "k: 1")))),
    Case("zero rows grid", 2, ("rows",), lambda c: c.train(c.earlier["base"] / "train.csv",
                                                       c.yaml(FAST_CONFIG.replace("rows: 4", "rows: 0")))),
    Case("min above max", 2, ("Age",), lambda c: c.train(c.earlier["base"] / "train.csv",
                                                      c.yaml(FAST_CONFIG.replace("min: 18, max: 100", "min: 100, max: 18")))),
    Case("feature twice", 2, ("Age",), lambda c: c.train(c.earlier["base"] / "train.csv",
                                                      c.yaml(FAST_CONFIG.replace("- {name: Family_Size", "- {name: Age")))),
    Case("id column is a feature", 2, ("id column 'Age'",), lambda c: c.train(c.earlier["base"] / "train.csv",
                                                               c.yaml(FAST_CONFIG.replace("id_column: ID", "id_column: Age")))),
    Case("bad expression", 2, ("expr",), lambda c: c.train(c.earlier["base"] / "train.csv",
                                                        c.yaml(FAST_CONFIG.replace("{name: Age,", "{name: Age, expr: 'Age +',")))),
    Case("expression on a missing column", 3, ("Salary",),
         lambda c: c.train(c.earlier["base"] / "train.csv", c.yaml(FAST_CONFIG.replace("{name: Age,", "{name: Age, expr: 'Salary * 2',")))),
    Case("config not utf-8", 2, ("config.yaml",), lambda c: c.train(c.earlier["base"] / "train.csv",
                                                                  c.text("config.yaml", b"som: {rows: \xff}\n"))),
    Case("config is a folder", 2, ("conf",), lambda c: c.train(c.earlier["base"] / "train.csv", c.text("conf/x", "").parent)),
    Case("suite missing", 2, ("suite",), lambda c: c.train(c.earlier["base"] / "train.csv",
                                                        c.yaml(FAST_CONFIG + "quality: {suite: nowhere/suite.json}\n"))),
    Case("empty --features", 2, ("--features",), lambda c: c.train(c.earlier["base"] / "train.csv", None, "--features", " , ")),
    Case("--features names a missing column", 3, ("Income",),
         lambda c: c.train(c.earlier["base"] / "train.csv", None, "--features", "Age,Income")),
    Case("empty config means the defaults", 0, ("segments written",),
         lambda c: c.train(c.earlier["base"] / "train.csv", c.yaml(""), "--features", "Age,Work_Experience,Family_Size")),
]

BUNDLES = [
    Case("model folder missing", 6, ("does not exist",), lambda c: c.score(model=c.root / "nomodel")),
    Case("a training run folder given as the model", 6, ("is a training run folder", "--model"),
         lambda c: c.score(model=c.run)),
    Case("model is a file", 6, ("model",), lambda c: c.score(model=c.text("model.json", "{}"))),
    Case("empty model folder", 6, ("MANIFEST",), lambda c: c.score(model=c.text("empty/x", "").parent)),
    Case("manifest missing", 6, ("MANIFEST",), lambda c: c.score(model=c.edit_bundle(lambda b: (b / "MANIFEST.json").unlink()))),
    Case("manifest corrupt", 6, ("MANIFEST",),
         lambda c: c.score(model=c.edit_bundle(lambda b: (b / "MANIFEST.json").write_text("{")))),
    Case("weights truncated", 6, ("weights.npy", "checksum"),
         lambda c: c.score(model=c.edit_bundle(lambda b: (b / "weights.npy").write_bytes((b / "weights.npy").read_bytes()[:80])))),
    Case("model.json edited", 6, ("model.json", "checksum"),
         lambda c: c.score(model=c.edit_bundle(lambda b: (b / "model.json").write_text((b / "model.json").read_text() + " ")))),
    Case("file missing from the bundle", 6, ("weights.npy",), lambda c: c.score(model=c.edit_bundle(lambda b: (b / "weights.npy").unlink()))),
    Case("manifest from a future release", 6, ("format version 99",),
         lambda c: c.score(model=c.edit_bundle(lambda b: (b / "MANIFEST.json").write_text(
             json.dumps({**json.loads((b / "MANIFEST.json").read_text()), "format_version": 99}))))),
    Case("model.json from a future release", 6, ("model.json", "format version 99"),
         lambda c: c.score(model=c.edit_bundle(lambda b: _reseal(b, "model.json", lambda m: m.update(format_version=99))))),
    Case("model.json resealed with nonsense", 6, ("model.json",),
         lambda c: c.score(model=c.edit_bundle(lambda b: _reseal(b, "model.json", lambda m: m.update(features="x"))))),
    Case("new table lacks a feature", 3, ("Age", "t.csv"),
         lambda c: c.score(c.csv([",".join(r.split(",")[:2] + r.split(",")[3:]) for r in c.good_rows(100)], "t.csv",
                                 "ID,Gender,Work_Experience,Family_Size"))),
    Case("new table with text in a feature", 3, ("Age", "abc"), lambda c: c.score(c.csv(_rows(c, "1,Male,abc,3,2")[:100]))),
    Case("new table out of range", 3, ("Age", "900"), lambda c: c.score(c.csv(_rows(c, "1,Male,900,3,2")[:100]))),
    Case("new table with columns reordered and extra", 0, ("segments written",),
         lambda c: c.score(c.parquet(_frame_with(c, Extra=1.0)[["Extra", "Family_Size", "Age", "ID", "Work_Experience"]]))),
    Case("score into the training run", 3, ("contains the model",),
         lambda c: ["score", str(c.earlier["base"] / "new.csv"), "--model", str(c.model), "--out", str(c.run)]),
    Case("score into the model folder", 3, ("the model",),
         lambda c: ["score", str(c.earlier["base"] / "new.csv"), "--model", str(c.model), "--out", str(c.model)]),
    Case("score into a folder inside the model", 3, ("the model",),
         lambda c: ["score", str(c.earlier["base"] / "new.csv"), "--model", str(c.model), "--out", str(c.model / "x")]),
]

FOLDERS = [
    Case("out holds the input", 3, ("contains the input",),
         lambda c: ["train", str(c.csv(c.good_rows(), "run/extra/t.csv")), "--config", str(c.config), "--out", str(c.run)]),
    Case("out is the input's folder", 3, ("input",),
         lambda c: ["train", str(c.csv(c.good_rows(), "data/t.csv")), "--config", str(c.config), "--out", str(c.root / "data")]),
    Case("out is the input file", 3, ("input",),
         lambda c: ["train", str(c.csv(c.good_rows(), "t.csv")), "--config", str(c.config), "--out", str(c.root / "t.csv")]),
    Case("out holds the work folder", 3, ("work folder",),
         lambda c: c.train(c.earlier["base"] / "train.csv", None, "--work-dir", str(c.run / "cache"))),
    Case("out inside the work folder", 3, ("work folder",),
         lambda c: ["train", str(c.earlier["base"] / "train.csv"), "--config", str(c.config), "--out",
                    str(c.root / "w" / "out"), "--work-dir", str(c.root / "w")]),
    Case("out is a file", 3, ("is a file",), lambda c: ["train", str(c.earlier["base"] / "train.csv"), "--config", str(c.config),
                                                         "--out", str(c.text("out.txt", "notes"))]),
    Case("out under a file", 3, ("is a file",), lambda c: ["train", str(c.earlier["base"] / "train.csv"), "--config",
                                                            str(c.config), "--out", str(c.text("out.txt", "notes") / "run")]),
    Case("out holds a user's notes", 3, ("notes.txt", "no run wrote"),
         lambda c: (c.text("run/notes.txt", "mine"), c.train(c.earlier["base"] / "train.csv"))[1]),
    Case("out is a user's folder", 3, ("not written by a segmentation run",),
         lambda c: ["train", str(c.earlier["base"] / "train.csv"), "--config", str(c.config), "--out",
                    str(c.text("mine/a.txt", "mine").parent)]),
    Case("work folder under a file", 3, ("work",),
         lambda c: c.train(c.earlier["base"] / "train.csv", None, "--work-dir", str(c.text("w.txt", "x") / "work"))),
    Case("rerun into the earlier run replaces it", 0, ("segments written",), lambda c: c.train(c.earlier["base"] / "train.csv")),
    Case("a killed run's staging folder is cleared", 0, ("segments written",),
         lambda c: (c.text(".run.staging-0123456789ab/segments.parquet", b"half"), c.train(c.earlier["base"] / "train.csv"))[1]),
]

# The work folder is warm with the earlier run's steps: a verdict may not come from the cache.
VERDICTS = [
    Case("cached bytes named .xlsx", 3, ("unsupported extension", ".xlsx"),
         lambda c: c.train(c.text("t.xlsx", (c.earlier["base"] / "train.csv").read_bytes()))),
    Case("a stricter gate on a cached map", 5, ("quantization error",),
         lambda c: c.train(c.earlier["base"] / "train.csv",
                           c.yaml(FAST_CONFIG.replace("max_quantization_error: 1.0", "max_quantization_error: 0.01")))),
    Case("a stricter expectation on a cached table", 4, ("min_value=1000", "observed: 300"),
         lambda c: c.train(c.earlier["base"] / "train.csv", c.yaml(FAST_CONFIG + "quality: {min_rows: 1000}\n"))),
    Case("drift under action fail", 7, ("drift",),
         lambda c: c.score(c.csv([r.rsplit(",", 1)[0] + ",15" for r in c.good_rows(200)], "drifted.csv"), None,
                           "--config", str(c.yaml("drift: {action: fail}\n")))),
]

REPORTS = [
    Case("report on a missing folder", 3, ("no such folder",), lambda c: ["report", str(c.root / "nothing")]),
    Case("report on a folder no run wrote", 3, ("not a run folder",), lambda c: ["report", str(c.text("x/a.txt", "").parent)]),
    Case("report with corrupt metrics", 3, ("metrics.json",), lambda c: (c.text("run/metrics.json", "{bad"), ["report", str(c.run)])[1]),
    Case("report with truncated profiles", 3, ("profiles.parquet",),
         lambda c: (c.text("run/profiles.parquet", (c.run / "profiles.parquet").read_bytes()[:200]), ["report", str(c.run)])[1]),
    Case("report with truncated segments", 3, ("segments.parquet",),
         lambda c: (c.text("run/segments.parquet", (c.run / "segments.parquet").read_bytes()[:200]), ["report", str(c.run)])[1]),
    Case("report with a broken config.yaml", 3, ("config.yaml",), lambda c: (c.text("run/config.yaml", "a: [\n"), ["report", str(c.run)])[1]),
    Case("report with a damaged model", 6, ("checksum",),
         lambda c: (c.text("run/model/weights.npy", b"\x93NUMPY"), ["report", str(c.run)])[1]),
    Case("report on a good run", 0, ("report written",), lambda c: ["report", str(c.run)]),
]

CATALOGUE = TABLES + CONFIGS + BUNDLES + FOLDERS + VERDICTS + REPORTS


def _leftovers(root: Path) -> list[str]:
    # The work folder's own lock file (.gc.lock) stays with it, as the cache does; an output folder's lock goes.
    return [str(p.relative_to(root)) for p in root.rglob("*")
            if any(mark in p.name for mark in (".staging-", ".previous-", ".tmp-"))
            or (p.name.endswith(".lock") and p.name != GC_LOCK)]


@pytest.mark.parametrize("case", CATALOGUE, ids=[case.name for case in CATALOGUE])
def test_catalogue(case: Case, earlier: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ctx = Ctx(tmp_path, earlier)
    shutil.copytree(earlier["run"], ctx.run)
    shutil.copytree(earlier["scored"], ctx.scored)
    argv = case.argv(ctx)
    before = {folder: _digests(folder) for folder in (ctx.run, ctx.scored)}
    command = argv[0]

    code = main([*argv, "--work-dir", str(earlier["work"])] if "--work-dir" not in argv and command != "report" else argv)

    out, err = capsys.readouterr()
    if case.code == 0:
        assert code == 0, err[-2000:]
        assert any(fragment in out for fragment in case.says), out[-2000:]
    else:
        lines = [line for line in err.splitlines() if line.startswith(f"segment {command}: ")]
        assert lines, f"no 'segment {command}:' line in {err[-2000:]!r}"
        message = err[err.index(lines[-1]):]
        assert code == case.code, message
        assert lines[-1].startswith(f"segment {command}: error: "), message
        assert "Traceback" not in err
        for fragment in case.says:
            assert fragment in message, f"{fragment!r} not in {message!r}"
        for folder, digests in before.items():
            assert _digests(folder) == digests, f"{folder.name} changed"
    assert _leftovers(tmp_path) == []
    written = (ctx.scored if command == "score" else ctx.run)
    if code == 0 and command != "report":
        assert (written / "segments.parquet").exists() and (written / RUN_MARKER).is_file()


# --- kills, concurrent runs, full and read-only file systems ----------------------------------------


def _api_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a ``segment`` subprocess: the harness's API, so that it starts no server of its own."""
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ, PREFECT_API_URL=str(PREFECT_API_URL.value()), PREFECT_HOME=str(tmp_path / "home"))
    env.pop("PREFECT_API_KEY", None)
    return env


def _segment(argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "somseg.flows.cli", *argv], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def _session_processes(session: int) -> list[int]:
    return [process.pid for process in processes() if process.session == session]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
@pytest.mark.parametrize(("moment", "how"), [
    # (A kill as the command starts, with its temporary server: tests/flows/test_signals.py.)
    ("Task run 'build-model", "SIGKILL"),
    ("step clean took", "SIGTERM"),
])
def test_a_killed_run_changes_nothing_and_the_next_run_clears_up(
    moment: str, how: str, earlier: dict[str, Path], tmp_path: Path
) -> None:
    import signal

    run = Path(shutil.copytree(earlier["run"], tmp_path / "run"))
    before = _digests(run)
    argv = ["train", str(earlier["base"] / "train.csv"), "--config", str(earlier["base"] / "fast.yaml"),
            "--out", str(run), "--work-dir", str(tmp_path / "work")]
    env = _api_env(tmp_path)
    cli = _segment(argv, env)
    assert cli.stdout is not None
    seen = []
    for line in cli.stdout:
        seen.append(line)
        if moment in line:
            os.killpg(cli.pid, getattr(signal, how))
            break
    else:
        pytest.fail(f"the run ended before {moment!r}: {''.join(seen)[-2000:]}")
    code = cli.wait(timeout=60)
    rest = cli.stdout.read()

    assert code == (143 if how == "SIGTERM" else -9), rest
    assert _session_processes(cli.pid) == [], "a process of the killed command outlived it"
    assert _digests(run) == before, "the earlier run changed"
    again = _segment(argv, env)
    output = again.communicate(timeout=300)[0]
    assert again.returncode == 0, output[-3000:]
    assert _leftovers(tmp_path) == [], output[-3000:]
    assert (run / "segments.parquet").is_file()


@pytest.mark.slow
def test_a_run_on_a_folder_another_run_holds_is_refused(
    earlier: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from somseg.io import run_folder_lock

    run = Path(shutil.copytree(earlier["run"], tmp_path / "run"))
    before = _digests(run)
    argv = ["train", str(earlier["base"] / "train.csv"), "--config", str(earlier["base"] / "fast.yaml"),
            "--out", str(run), "--work-dir", str(earlier["work"])]
    with run_folder_lock(run):  # as a run in another process holds it
        refused = _segment(argv, _api_env(tmp_path))
        output = refused.communicate(timeout=300)[0]
        assert refused.returncode == 3, output[-2000:]
        assert f"segment train: error: output folder {run} is being written by another run (process {os.getpid()})" in output
        assert _digests(run) == before
    assert main(argv) == 0, capsys.readouterr().err[-2000:]
    assert _leftovers(tmp_path) == []


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs at ``tmp_path/fs``, when this process may mount one (root on Linux)."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root on Linux")
    mount = tmp_path / "fs"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("mount -t tmpfs is not permitted here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> None:
    """Fill the file system of ``folder`` to the last block."""
    descriptor = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 16, 1):
            try:
                while os.write(descriptor, b"\0" * size):
                    pass
            except OSError:
                pass
    finally:
        os.close(descriptor)


@pytest.mark.parametrize(("where", "left"), [("out", 0), ("out", 300 << 10), ("work", 0)],
                         ids=["out, full", "out, room for the lock only", "work"])
def test_a_full_file_system_is_named_and_changes_nothing(
    where: str, left: int, small_tmpfs: Path, earlier: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    run = Path(shutil.copytree(earlier["run"], small_tmpfs / "run")) if where == "out" else small_tmpfs.parent / "run"
    work = small_tmpfs / "work" if where == "work" else small_tmpfs.parent / "work"
    if where == "out":
        before = _digests(run)
    _fill(small_tmpfs)
    os.truncate(small_tmpfs / "filler", (small_tmpfs / "filler").stat().st_size - left)

    code = main(["train", str(earlier["base"] / "train.csv"), "--config", str(earlier["base"] / "fast.yaml"),
                 "--out", str(run), "--work-dir", str(work)])

    err = capsys.readouterr().err
    message = err[err.rindex("segment train: "):]
    assert code == 3 and message.startswith("segment train: error: "), message
    assert "No space left" in message and str(small_tmpfs) in message, message
    if where == "out":
        assert _digests(run) == before
    (small_tmpfs / "filler").unlink()
    assert _leftovers(small_tmpfs.parent) == []


def test_a_read_only_file_system_is_refused_before_the_run(
    small_tmpfs: Path, earlier: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    run = Path(shutil.copytree(earlier["run"], small_tmpfs / "run"))
    before = _digests(run)
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)

    code = main(["train", str(earlier["base"] / "train.csv"), "--config", str(earlier["base"] / "fast.yaml"),
                 "--out", str(run), "--work-dir", str(earlier["work"])])

    assert code == 3
    assert "read-only file system" in capsys.readouterr().err
    assert _digests(run) == before
