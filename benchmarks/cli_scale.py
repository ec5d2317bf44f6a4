"""Time the whole `segment train` and `segment score` commands on a large table.

Generates an N-row Parquet table of one kind of ``benchmarks/tables.py``
(``--kind``: ``sample``, integer demographics like the sample; ``continuous3``,
the same jittered so that no row repeats; ``money``, 17 correlated, skewed
features with a text id), then runs each command once under
``/usr/bin/time -v`` with a fresh work folder and fresh Prefect result
storage, so nothing comes from a cache. Prints a table: wall seconds, peak
resident memory, the targets, and each step's duration from the run's
metrics.json.

    .venv/bin/python benchmarks/cli_scale.py --rows 10000000
    .venv/bin/python benchmarks/cli_scale.py --kind money --rows 10000000 --server http://127.0.0.1:4299/api

The training uses the batch engine (``benchmarks/batch.yaml``, or
``benchmarks/money.yaml`` for ``money``, whose gates are open); the scoring
scores a second table of new customers (another seed, other IDs) with the
trained model, so none of its steps can come from the training's cache.

Without ``--server`` each command starts its own temporary Prefect server,
as a user's first run does; before the timed commands the Prefect database
of the fresh PREFECT_HOME is created (``prefect server database upgrade``),
a one-off cost of a new installation, not of a run. With ``--server URL``
the commands report to that running server instead (``PREFECT_API_URL``),
so the temporary server's start and stop are not in the figures.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from som_engines import machine
from tables import make_table
from tables import write_table as write_frame

HERE = Path(__file__).resolve().parent
SEGMENT = Path(sys.executable).with_name("segment")
# Wall seconds and peak GB at 10 M rows (issue 15): the wide table has targets of its own.
TARGETS = {
    "sample": {"train": (30.0, 3.0), "score": (20.0, 2.0)},
    "continuous3": {"train": (30.0, 3.0), "score": (20.0, 2.0)},
    "money": {"train": (60.0, 4.0), "score": (20.0, 4.0)},
}
CONFIGS = {"sample": "batch.yaml", "continuous3": "batch.yaml", "money": "money.yaml"}


def write_table(path: Path, kind: str, rows: int, seed: int, first_id: int) -> None:
    """The synthetic table of ``kind`` with unique, shuffled IDs from ``first_id``, as Parquet."""
    write_frame(make_table(kind, rows, seed, first_id), path)


def timed(command: list[str], env: dict[str, str]) -> dict[str, float]:
    """Wall seconds and peak RSS (GB) of one command, from GNU time."""
    result = subprocess.run(["/usr/bin/time", "-v", *command], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
        raise SystemExit(f"{' '.join(command)} failed with exit {result.returncode}")
    for sign in ("Traceback (most recent call last)", "Error logging to API"):
        if sign in result.stdout + result.stderr:
            sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
            raise SystemExit(f"{' '.join(command)} succeeded but printed {sign!r}")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", result.stderr)
    hours, minutes, seconds = (float(g) if g else 0.0 for g in wall.groups())
    rss_kb = float(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    return {"wall_s": hours * 3600 + minutes * 60 + seconds, "peak_gb": rss_kb / 1024**2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=tuple(TARGETS), default="sample", help="the kind of table (benchmarks/tables.py)")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--keep", help="folder to keep the tables and runs in, reusing tables already there (default: a temporary one)"
    )
    parser.add_argument(
        "--server", metavar="URL", help="a running Prefect server's API URL to report to (default: each command starts "
        "a temporary one)"
    )
    parser.add_argument("--config", help="the training config (default: benchmarks/batch.yaml, or money.yaml for money)")
    args = parser.parse_args()

    base = Path(args.keep or tempfile.mkdtemp(prefix="somseg-scale-"))
    base.mkdir(parents=True, exist_ok=True)
    table = base / f"{args.kind}_{args.rows}_{args.seed}.parquet"
    new_table = base / f"new_{args.kind}_{args.rows}_{args.seed}.parquet"
    for path, seed, first_id in ((table, args.seed, 10_000_000), (new_table, args.seed + 1000, 10_000_000 + args.rows)):
        if path.is_file():  # kept from an earlier run: the same kind, rows and seed write the same table
            continue
        start = time.perf_counter()
        write_table(path, args.kind, args.rows, seed, first_id)
        print(f"generated {args.rows:,} rows in {time.perf_counter() - start:.1f} s -> {path} "
              f"({path.stat().st_size / 1e6:.0f} MB)")

    # Fresh storage for every invocation, also in a kept folder: nothing may come from an earlier run's cache.
    for name in ("prefect-storage", "prefect-home", "work", "trained", "scored"):
        shutil.rmtree(base / name, ignore_errors=True)
    env = {**os.environ, "PREFECT_LOCAL_STORAGE_PATH": str(base / "prefect-storage"),
           "PREFECT_HOME": str(base / "prefect-home"), "SOMSEG_WORK_DIR": str(base / "work")}
    if args.server:
        env["PREFECT_API_URL"] = args.server
    else:
        env.pop("PREFECT_API_URL", None)
        prefect = Path(sys.executable).with_name("prefect")
        subprocess.run([str(prefect), "server", "database", "upgrade", "-y"], env=env, capture_output=True, check=True)
    config = Path(args.config) if args.config else HERE / CONFIGS[args.kind]
    runs = {
        "train": timed([str(SEGMENT), "train", str(table), "--config", str(config),
                        "--out", str(base / "trained")], env),
        "score": timed([str(SEGMENT), "score", str(new_table), "--model", str(base / "trained" / "model"),
                        "--out", str(base / "scored")], env),
    }
    report(runs, base, args.rows, args.kind, args.server)


def report(runs: dict[str, dict[str, float]], base: Path, rows: int, kind: str, server: str | None) -> None:
    where = f"reporting to {server}" if server else "each with a temporary Prefect server"
    print(f"\n{rows:,} rows of {kind!r}, {where}, on {json.dumps(machine())}\n")
    print("| command | wall s | target s | peak GB | target GB | steps (s) |")
    print("|---|---:|---:|---:|---:|---|")
    for name, folder in (("train", "trained"), ("score", "scored")):
        metrics = json.loads((base / folder / "metrics.json").read_text())
        steps = ", ".join(f"{k} {v:.1f}" for k, v in metrics["durations_seconds"].items())
        wall, peak = TARGETS[kind][name]
        print(f"| segment {name} | {runs[name]['wall_s']:.1f} | {wall:.0f} | {runs[name]['peak_gb']:.2f} | "
              f"{peak:.0f} | {steps} |")
    trained = json.loads((base / "trained" / "metrics.json").read_text())
    print(f"\ntraining QE {trained['quantization_error']:.4f}, TE {trained['topographic_error']:.4f}")


if __name__ == "__main__":
    main()
