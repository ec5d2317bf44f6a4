#!/usr/bin/env python3
"""Benchmark: the notebook's MiniSom path against somseg's batch SOM engine.

Both sides run on the same seeded synthetic table of ``--rows`` customers,
drawn like the reference sample by ``benchmarks/tables.py`` (integer Age / Work_Experience /
Family_Size from four life-stage profiles, 10.3 % / 4.2 % of Work_Experience
/ Family_Size missing) and cleaned with :class:`somseg.cleaning.FeatureCleaner`
(median imputation, standardisation).

* notebook: ``MiniSom(8, 8, sigma=2, learning_rate=0.3)``,
  ``random_weights_init``, ``train_random`` 8000, ``winner`` per row,
  ``quantization_error``, ``topographic_error``.
* batch: :class:`somseg.batch_som.BatchSom` (PCA init, sigma 3 -> 0.5 over
  30 epochs), then :func:`somseg.metrics.match_units` (assignment),
  :func:`~somseg.metrics.quantization_error` and
  :func:`~somseg.metrics.topographic_error`, each a full pass of its own.

Each side runs in its own subprocess, so its peak resident memory
(``ru_maxrss``) is its own. Steps timed on a sample (``--winner-sample``,
``--metrics-sample``) are scaled linearly to the full table and marked
``*`` (extrapolated).

Usage::

    python benchmarks/som_engines.py --rows 1000000
    python benchmarks/som_engines.py --rows 10000000 --winner-sample 200000 --metrics-sample 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tables import FEATURES, sample_features  # noqa: E402

SIDES: tuple[str, ...] = ("notebook", "batch", "batch-nodedup")
STEP_NAMES = {"train": "train", "assign": "assign (best unit per row)", "qe": "QE", "te": "TE"}


# --- data ---------------------------------------------------------------------


def standardised_table(n_rows: int, seed: int) -> np.ndarray:
    """The synthetic table, median-imputed and standardised as the pipeline does."""
    from somseg.cleaning import FeatureCleaner

    return FeatureCleaner(FEATURES).fit_transform(sample_features(n_rows, seed))


# --- one side, in its own process ------------------------------------------------


def run_side(side: str, args: argparse.Namespace) -> dict[str, Any]:
    """Generate the table, run one side's steps, return timings and figures."""
    X = standardised_table(args.rows, args.seed)
    gc.collect()
    result: dict[str, Any] = {"side": side, "rows": len(X), "rss_data_mb": _current_rss_mb()}
    with RssSampler() as sampler:
        if side == "notebook":
            result.update(_notebook(X, args))
        else:
            result.update(_batch(X, args, dedup="never" if side == "batch-nodedup" else "auto"))
    result["steps_peak_rss_mb"] = sampler.peak_mb
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


class RssSampler:
    """Peak resident memory while the ``with`` block runs, sampled every ``interval`` s.

    ``ru_maxrss`` cannot be reset, so it also counts making the table; this
    isolates the steps.
    """

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval

    def __enter__(self) -> RssSampler:
        self.peak_mb = _current_rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, _current_rss_mb())

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_mb = max(self.peak_mb, _current_rss_mb())


def _notebook(X: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    from minisom import MiniSom

    steps: dict[str, dict[str, Any]] = {}
    fitted: dict[str, MiniSom] = {}

    def train() -> None:
        som = MiniSom(8, 8, X.shape[1], sigma=2.0, learning_rate=0.3, random_seed=args.seed)
        som.random_weights_init(X)
        som.train_random(X, 8000)
        fitted["som"] = som

    steps["train"] = _timed(train, args.repeat)
    som = fitted["som"]
    winner_rows = _sample(X, args.winner_sample, args.seed)
    steps["assign"] = _timed(lambda: [som.winner(x) for x in winner_rows], args.repeat, len(winner_rows), len(X))
    metric_rows = _sample(X, args.metrics_sample, args.seed)
    qe: list[float] = []
    te: list[float] = []
    steps["qe"] = _timed(lambda: qe.append(float(som.quantization_error(metric_rows))), args.repeat, len(metric_rows), len(X))
    steps["te"] = _timed(lambda: te.append(float(som.topographic_error(metric_rows))), args.repeat, len(metric_rows), len(X))
    return {"steps": steps, "qe": qe[0], "te": te[0], "metrics_rows": len(metric_rows)}


def _batch(X: np.ndarray, args: argparse.Namespace, dedup: str) -> dict[str, Any]:
    from somseg import kernels
    from somseg.batch_som import BatchSom
    from somseg.metrics import match_units, quantization_error, topographic_error

    # Compile (or load from numba's cache) before timing; reported apart.
    warm = np.random.default_rng(0).normal(size=(64, X.shape[1]))
    warmup = _timed(lambda: (kernels.best_two_units(warm, warm[:4], dedup="always"), kernels.best_units(warm, warm[:4])), 1)
    steps: dict[str, dict[str, Any]] = {}
    engine = BatchSom(rows=8, cols=8, sigma=3.0, sigma_end=0.5, epochs=30, init="pca", dedup=dedup, random_state=args.seed)
    steps["train"] = _timed(lambda: engine.fit(X), args.repeat)
    weights = engine.weights_
    steps["assign"] = _timed(lambda: match_units(X, weights, dedup=dedup), args.repeat)
    qe: list[float] = []
    te: list[float] = []
    steps["qe"] = _timed(lambda: qe.append(quantization_error(X, weights, match_units(X, weights, dedup=dedup))), args.repeat)
    steps["te"] = _timed(lambda: te.append(topographic_error(X, weights, 8, match_units(X, weights, dedup=dedup))), args.repeat)
    return {
        "steps": steps,
        "qe": qe[0],
        "te": te[0],
        "metrics_rows": len(X),
        "train_rows": engine.n_train_rows_,
        "jit_warmup_s": warmup["seconds"],
    }


def _timed(
    step: Callable[[], object], repeat: int, measured_rows: int | None = None, total_rows: int | None = None
) -> dict[str, Any]:
    """Best wall and CPU time (all threads) of ``repeat`` runs, scaled to ``total_rows`` when measured on fewer."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        step()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    extrapolated = measured_rows is not None and total_rows is not None and measured_rows < total_rows
    scale = total_rows / measured_rows if extrapolated else 1.0
    return {
        "seconds": min(walls) * scale,
        "cpu_seconds": min(cpus) * scale,
        "extrapolated": extrapolated,
        "measured_rows": measured_rows,
        "runs": walls,
    }


def _sample(X: np.ndarray, rows: int | None, seed: int) -> np.ndarray:
    if rows is None or rows >= len(X):
        return X
    picks = np.sort(np.random.default_rng(seed + 1).choice(len(X), size=rows, replace=False))
    return X[picks]


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# --- the comparison -------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import numpy

    info: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cpus": len(os.sched_getaffinity(0)),
        "ram_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
    }
    for package in ("minisom", "numba"):
        try:
            from importlib.metadata import version

            info[package] = version(package)
        except Exception:
            info[package] = "absent"
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_in_subprocess(side: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one side in a fresh interpreter and return its JSON result."""
    command = [
        sys.executable, str(Path(__file__).resolve()), "--side", side,
        "--rows", str(args.rows), "--seed", str(args.seed), "--repeat", str(args.repeat),
    ]
    for flag, value in (("--winner-sample", args.winner_sample), ("--metrics-sample", args.metrics_sample)):
        if value is not None:
            command += [flag, str(value)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"side {side!r} failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def format_table(results: Sequence[dict[str, Any]]) -> str:
    """Markdown table: seconds per step and speed-up over the first side, QE, TE, memory."""
    base = results[0]
    others = results[1:]
    columns = [r["side"] for r in results] + [f"{base['side']} / {r['side']}" for r in others]
    lines = ["| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for step in ("train", "assign", "qe", "te"):
        seconds = [_seconds(r["steps"][step]) for r in results]
        ratios = [f"{base['steps'][step]['seconds'] / r['steps'][step]['seconds']:.0f}x" for r in others]
        lines.append(f"| {STEP_NAMES[step]} (s) | " + " | ".join(seconds + ratios) + " |")
    totals = [sum(step["seconds"] for step in r["steps"].values()) for r in results]
    marks = ["*" if any(step["extrapolated"] for step in r["steps"].values()) else "" for r in results]
    lines.append(
        "| **total (s)** | "
        + " | ".join([f"**{t:.2f}{m}**" for t, m in zip(totals, marks)] + [f"**{totals[0] / t:.0f}x**" for t in totals[1:]])
        + " |"
    )
    cpu = [sum(step["cpu_seconds"] for step in r["steps"].values()) for r in results]
    lines.append(
        "| total CPU time, all threads (s) | "
        + " | ".join([f"{c:.2f}{m}" for c, m in zip(cpu, marks)] + [f"{cpu[0] / c:.0f}x" for c in cpu[1:]])
        + " |"
    )
    qe_ratios = [f"QE {r['qe'] / base['qe']:.3f} of {base['side']}'s" for r in others]
    lines.append("| QE | " + " | ".join([_figure(r, "qe") for r in results] + qe_ratios) + " |")
    blanks = [""] * len(others)
    lines.append("| TE (8 neighbours) | " + " | ".join([_figure(r, "te") for r in results] + blanks) + " |")
    lines.append("| peak RSS during the steps (MB, sampled every 10 ms) | " + " | ".join([f"{r['steps_peak_rss_mb']:.0f}" for r in results] + blanks) + " |")
    lines.append("| peak RSS of the process, table making included (MB) | " + " | ".join([f"{r['peak_rss_mb']:.0f}" for r in results] + blanks) + " |")
    lines.append("| RSS with the table loaded (MB) | " + " | ".join([f"{r['rss_data_mb']:.0f}" for r in results] + blanks) + " |")
    return "\n".join(lines)


def _seconds(step: dict[str, Any]) -> str:
    return f"{step['seconds']:.3f}" + ("*" if step["extrapolated"] else "")


def _figure(result: dict[str, Any], key: str) -> str:
    sampled = result["metrics_rows"] < result["rows"]
    return f"{result[key]:.4f}" + (f" (on {result['metrics_rows']:,} rows)" if sampled else "")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the synthetic table")
    parser.add_argument("--seed", type=int, default=42, help="seed of the table and both engines")
    parser.add_argument("--winner-sample", type=int, default=None, help="time MiniSom's per-row winner() on this many rows and extrapolate")
    parser.add_argument("--metrics-sample", type=int, default=None, help="run MiniSom's QE/TE on this many rows and extrapolate (they hold rows x neurons in memory)")
    parser.add_argument("--repeat", type=int, default=1, help="run each step this many times and keep the fastest (a shared machine's noise only adds time)")
    parser.add_argument("--sides", default="notebook,batch", help=f"comma-separated, from {', '.join(SIDES)}; the first is the baseline")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--side", choices=SIDES, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rows < 100:
        parser.error("--rows must be at least 100")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.side is not None:  # child process: one side, JSON on the last line
        print(json.dumps(run_side(args.side, args)))
        return
    sides = [side.strip() for side in args.sides.split(",") if side.strip()]
    unknown = sorted(set(sides) - set(SIDES))
    if unknown or len(sides) < 2:
        raise SystemExit(f"--sides needs two or more of {SIDES}, got {args.sides!r}")
    info = machine()
    results = [run_in_subprocess(side, args) for side in sides]
    info["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(f"# SOM engines on {args.rows:,} rows (seed {args.seed}; best of {args.repeat} run(s) per step)")
    print("machine: " + ", ".join(f"{key}={value}" for key, value in info.items()))
    for result in results:
        if "train_rows" in result:
            print(f"{result['side']}: trained on {result['train_rows']:,} rows; JIT warm-up {result['jit_warmup_s']:.2f} s (one-off, not in the table)")
    print()
    print(format_table(results))
    if any(step["extrapolated"] for r in results for step in r["steps"].values()):
        print("\n* extrapolated linearly from a sample (rows measured: "
              + ", ".join(f"{r['side']} {k} {s['measured_rows']:,}" for r in results for k, s in r["steps"].items() if s["extrapolated"])
              + ")")
    if args.json is not None:
        args.json.write_text(json.dumps({"machine": info, "args": vars(args) | {"json": str(args.json)}, "results": results}, indent=2))


if __name__ == "__main__":
    main()
