#!/usr/bin/env python3
"""Benchmark: the notebook's MiniSom path against somseg's SOM engines, on three kinds of table.

Every side runs on the same seeded synthetic table of ``--rows`` customers
from ``benchmarks/tables.py`` (``--kind``), cleaned with
:class:`somseg.cleaning.FeatureCleaner` (median imputation, a transform per
feature, standardisation):

* ``sample``: integer demographics like the reference sample (Age,
  Work_Experience, Family_Size; few distinct rows);
* ``continuous3``: the same with continuous jitter (every row distinct);
* ``money``: 17 correlated, skewed, zero-inflated credit-card features with
  missing values; amounts and counts are cleaned with ``log1p``, as a
  config declares for skewed columns (:data:`MONEY_TRANSFORMS`).

Sides (``--sides``, the first is the baseline of the ratios):

* ``notebook``: ``MiniSom(8, 8, sigma=2, learning_rate=0.3)``,
  ``random_weights_init``, ``train_random`` 8000, ``winner`` per row,
  ``quantization_error``, ``topographic_error``.
* ``minisom``: the product's MiniSom engine (:class:`somseg.som.MiniSomEngine`,
  the same training), with somseg's kernels for assignment, QE and TE.
* ``batch``: the product's batch engine with its defaults on an 8x8 grid
  (:func:`somseg.som.build_engine`: PCA init, radius 2 -> 1 over 30 epochs,
  epochs on a growing sample), then :func:`somseg.metrics.match_units`
  (assignment: best and second-best unit of every row, one pass), and
  :func:`~somseg.metrics.quantization_error` and
  :func:`~somseg.metrics.topographic_error` from that match, as the
  pipeline's assessment computes them.
* ``batch-full``: the same, every epoch over every row
  (``sample_rows_per_neuron: null``).
* ``batch-nodedup``: ``batch`` with ``dedup: never`` everywhere.
* ``batch-cutgauss``: ``batch`` with ``som.neighborhood: cutgauss`` (the
  Gaussian cut to zero beyond the radius: a closer fit, a higher TE).
* ``batch-auto``: ``batch`` on the grid the product sizes for the table
  (``som.rows: auto``, its default: about ``5 * sqrt(rows)`` neurons, at most
  400) and its radius, the grid sized inside the timed training.
* ``somoclu``: somoclu's batch SOM (an optional peer: skipped when not
  installed), the same grid, radius schedule, epochs and PCA start; its own
  best units; QE and TE by somseg's metrics.

Each side runs in its own subprocess, so its peak resident memory
(``ru_maxrss``) is its own. Steps timed on a sample (``--winner-sample``,
``--metrics-sample``) are scaled linearly to the full table and marked
``*`` (extrapolated).

Usage::

    python benchmarks/som_engines.py --kind money --rows 1000000
    python benchmarks/som_engines.py --kind continuous3 --sides notebook,minisom,batch,batch-full,somoclu
    python benchmarks/som_engines.py --rows 10000000 --winner-sample 200000 --metrics-sample 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib.util
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
from typing import Any, Literal

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tables import FEATURES, KINDS, MONEY_FEATURES, make_table, sample_features  # noqa: E402

SIDES: tuple[str, ...] = (
    "notebook", "minisom", "batch", "batch-full", "batch-nodedup", "batch-cutgauss", "batch-auto", "somoclu",
)
STEP_NAMES = {"train": "train", "assign": "assign (best unit per row)", "qe": "QE", "te": "TE"}
GRID = 8  # rows and columns of every side's map, the notebook's
Grid = tuple[int, int] | Literal["auto"]  # (rows, cols), or the grid the product sizes for a table

# Amounts and counts are skewed: log1p, as a config declares them; shares in [0, 1] and tenure as they are.
_LOG1P = {"BALANCE", "PURCHASES", "ONEOFF_PURCHASES", "INSTALLMENTS_PURCHASES", "CASH_ADVANCE", "CASH_ADVANCE_TRX",
          "PURCHASES_TRX", "CREDIT_LIMIT", "PAYMENTS", "MINIMUM_PAYMENTS"}
MONEY_TRANSFORMS: list[str] = ["log1p" if name in _LOG1P else "none" for name in MONEY_FEATURES]


# --- data ---------------------------------------------------------------------


def standardised_table(n_rows: int, seed: int, kind: str = "sample") -> np.ndarray:
    """The synthetic table of ``kind``, cleaned as the pipeline cleans it: imputed, transformed, standardised."""
    from somseg.cleaning import FeatureCleaner

    if kind == "money":
        return FeatureCleaner(MONEY_FEATURES, transforms=MONEY_TRANSFORMS).fit_transform(make_table(kind, n_rows, seed))
    if kind == "continuous3":
        return FeatureCleaner(FEATURES).fit_transform(make_table(kind, n_rows, seed))
    return FeatureCleaner(FEATURES).fit_transform(sample_features(n_rows, seed))


def somoclu_available() -> bool:
    """Whether the optional peer is installed (``pip install --no-build-isolation somoclu``)."""
    return importlib.util.find_spec("somoclu") is not None


# --- one side, in its own process ------------------------------------------------


def run_side(side: str, args: argparse.Namespace) -> dict[str, Any]:
    """Generate the table, run one side's steps, return timings and figures."""
    X = standardised_table(args.rows, args.seed, args.kind)
    gc.collect()
    result: dict[str, Any] = {"side": side, "rows": len(X), "features": X.shape[1], "rss_data_mb": _current_rss_mb()}
    with RssSampler() as sampler:
        if side == "notebook":
            result.update(_notebook(X, args))
        elif side == "minisom":
            result.update(_minisom(X, args))
        elif side == "somoclu":
            result.update(_somoclu(X, args))
        else:
            result.update(_batch(X, args, dedup="never" if side == "batch-nodedup" else "auto",
                                 sampled=side != "batch-full",
                                 neighborhood="cutgauss" if side == "batch-cutgauss" else "gaussian",
                                 auto_grid=side == "batch-auto"))
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


def parse_grid(text: str) -> Grid:
    """A grid given as ``"RxC"`` (rows, cols) or ``"auto"``; an ``argparse`` type."""
    if text == "auto":
        return "auto"
    try:
        rows, cols = (int(side) for side in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a grid is 'auto' or RxC (such as 8x8), got {text!r}") from None
    return rows, cols


def product_som(seed: int, grid: Grid = (GRID, GRID), table: np.ndarray | None = None, **settings: Any) -> Any:
    """The product's SOM settings (its defaults otherwise), made concrete as a run makes them.

    On a ``grid`` map (8x8); ``grid="auto"``: on the grid and radius the
    product sizes for ``table`` (standardised rows; ``som.rows: auto``, its
    default).
    """
    from somseg.config import SomConfig
    from somseg.som import concrete_som

    if grid == "auto":
        if table is None:
            raise ValueError("an 'auto' grid is sized for a table: pass its rows")
        return concrete_som(SomConfig(seed=seed, **settings), len(table), np.cov(table, rowvar=False))
    return concrete_som(SomConfig(rows=grid[0], cols=grid[1], seed=seed, **settings), 0, np.eye(2))


def _warm_kernels(n_features: int) -> dict[str, Any]:
    """Compile (or load from numba's cache) the kernels before timing; reported apart."""
    from somseg import kernels
    from somseg.batch_som import BatchSom

    warm = np.random.default_rng(0).normal(size=(4096, n_features))
    return _timed(lambda: (kernels.best_two_units(warm, warm[:4], dedup="always"), kernels.best_units(warm, warm[:4]),
                           BatchSom(2, 2, epochs=2, sample_rows_per_neuron=100).fit(warm)), 1)


def _metrics_steps(X: np.ndarray, weights: np.ndarray, args: argparse.Namespace, dedup: str = "auto") -> dict[str, Any]:
    """Assignment, QE and TE by somseg's kernels, as the pipeline's assessment computes them.

    One pass finds every row's best and second-best units (the assignment);
    QE and TE are then reductions of that match, not passes of their own.
    """
    from somseg.metrics import match_units, quantization_error, topographic_error

    matches: list[Any] = []
    steps = {"assign": _timed(lambda: matches.append(match_units(X, weights, dedup=dedup)), args.repeat)}
    qe: list[float] = []
    te: list[float] = []
    steps["qe"] = _timed(lambda: qe.append(quantization_error(X, weights, matches[0])), args.repeat)
    steps["te"] = _timed(lambda: te.append(topographic_error(X, weights, 8, matches[0])), args.repeat)
    return {"steps": steps, "qe": qe[0], "te": te[0], "metrics_rows": len(X)}


def _batch(
    X: np.ndarray,
    args: argparse.Namespace,
    dedup: str,
    sampled: bool = True,
    neighborhood: str = "gaussian",
    auto_grid: bool = False,
) -> dict[str, Any]:
    from somseg.som import build_engine

    warmup = _warm_kernels(X.shape[1])
    settings: dict[str, Any] = {"engine": "batch", "init": "pca", "dedup": dedup, "neighborhood": neighborhood}
    if not sampled:
        settings["sample_rows_per_neuron"] = None
    fitted: dict[str, Any] = {}

    def train() -> None:
        # The 'auto' grid is sized from the table's covariance, as a run sizes it: part of training.
        config = product_som(args.seed, "auto" if auto_grid else (GRID, GRID), X, **settings)
        fitted["config"], fitted["engine"] = config, build_engine(config).fit(X)

    train_step = _timed(train, args.repeat)
    config, engine = fitted["config"], fitted["engine"]
    result = _metrics_steps(X, engine.weights_, args, dedup)
    result["steps"] = {"train": train_step, **result["steps"]}
    return result | {
        "train_rows": engine.n_train_rows_,
        "epoch_rows": int(engine.sample_sizes_.sum()),
        "schedule": f"{config.rows}x{config.cols} grid, {config.neighborhood}, sigma {config.sigma:g} -> "
                    f"{config.sigma_end:g}, {config.epochs} epochs",
        "jit_warmup_s": warmup["seconds"],
    }


def _minisom(X: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    from somseg.som import build_engine

    warmup = _warm_kernels(X.shape[1])
    config = product_som(args.seed, engine="minisom", sigma=2.0, init="random")
    engine = build_engine(config)
    train = _timed(lambda: engine.fit(X), args.repeat)
    result = _metrics_steps(X, engine.weights_, args)
    result["steps"] = {"train": train, **result["steps"]}
    return result | {"jit_warmup_s": warmup["seconds"]}


def _somoclu(X: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    import somoclu

    from somseg.kernels import best_two_units
    from somseg.metrics import UnitMatch, quantization_error, topographic_error

    config = product_som(args.seed, engine="batch")
    data = np.ascontiguousarray(X, dtype=np.float32)  # somoclu trains on float32
    fitted: dict[str, Any] = {}

    def train() -> None:
        som = somoclu.Somoclu(GRID, GRID, kerneltype=0, maptype="planar", gridtype="rectangular",
                              initialization="pca", compactsupport=False, neighborhood="gaussian")
        som.train(data, epochs=config.epochs, radius0=config.sigma, radiusN=config.sigma_end,
                  radiuscooling="exponential")
        fitted["som"] = som

    steps = {"train": _timed(train, args.repeat)}
    som = fitted["som"]
    weights = np.asarray(som.codebook, dtype=np.float64).reshape(GRID, GRID, -1)
    # somoclu's own best units: of the last epoch's pass over every row (its bmus are (column, row)).
    steps["assign"] = _timed(lambda: som.bmus[:, 1] * GRID + som.bmus[:, 0], 1)
    qe: list[float] = []
    te: list[float] = []

    def match() -> UnitMatch:
        bmu, second, distance = best_two_units(X, weights.reshape(-1, X.shape[1]))
        return UnitMatch(bmu=bmu, second=second, distance=distance)

    steps["qe"] = _timed(lambda: qe.append(quantization_error(X, weights, match())), args.repeat)
    steps["te"] = _timed(lambda: te.append(topographic_error(X, weights, 8, match())), args.repeat)
    return {"steps": steps, "qe": qe[0], "te": te[0], "metrics_rows": len(X)}


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
    for package in ("minisom", "numba", "somoclu"):
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
        sys.executable, str(Path(__file__).resolve()), "--side", side, "--kind", args.kind,
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
        ratios = [_ratio(base["steps"][step]["seconds"], r["steps"][step]["seconds"]) for r in others]
        lines.append(f"| {STEP_NAMES[step]} (s) | " + " | ".join(seconds + ratios) + " |")
    totals = [sum(step["seconds"] for step in r["steps"].values()) for r in results]
    marks = ["*" if any(step["extrapolated"] for step in r["steps"].values()) else "" for r in results]
    lines.append(
        "| **total (s)** | "
        + " | ".join([f"**{t:.2f}{m}**" for t, m in zip(totals, marks)] + [f"**{_ratio(totals[0], t)}**" for t in totals[1:]])
        + " |"
    )
    cpu = [sum(step["cpu_seconds"] for step in r["steps"].values()) for r in results]
    lines.append(
        "| total CPU time, all threads (s) | "
        + " | ".join([f"{c:.2f}{m}" for c, m in zip(cpu, marks)] + [_ratio(cpu[0], c) for c in cpu[1:]])
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


def _ratio(base: float, other: float) -> str:
    """How many times faster ``other`` is than ``base``, with a decimal below 10 (a slower side shows 0.5x, not 0x)."""
    ratio = base / other if other > 0 else float("inf")
    return f"{ratio:.0f}x" if ratio >= 10 else f"{ratio:.2g}x"


def _seconds(step: dict[str, Any]) -> str:
    return f"{step['seconds']:.3f}" + ("*" if step["extrapolated"] else "")


def _figure(result: dict[str, Any], key: str) -> str:
    sampled = result["metrics_rows"] < result["rows"]
    return f"{result[key]:.4f}" + (f" (on {result['metrics_rows']:,} rows)" if sampled else "")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=KINDS, default="sample",
                        help="the table: integer demographics like the sample, continuous3 (every row distinct), "
                        "money (17 skewed features)")
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
    if "somoclu" in sides and not somoclu_available():
        print("somoclu is not installed: its side is skipped (CUDAHOME=/nonexistent pip install --no-build-isolation somoclu)")
        sides.remove("somoclu")
    info = machine()
    results = [run_in_subprocess(side, args) for side in sides]
    info["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(f"# SOM engines on {args.rows:,} rows of '{args.kind}' ({results[0]['features']} features; seed {args.seed}; "
          f"best of {args.repeat} run(s) per step)")
    print("machine: " + ", ".join(f"{key}={value}" for key, value in info.items()))
    for result in results:
        if "train_rows" in result:
            print(f"{result['side']}: {result['schedule']}; {result['train_rows']:,} training rows; the epochs "
                  f"sampled {result['epoch_rows'] / result['rows']:.2f} tables' worth of rows in all")
        if "jit_warmup_s" in result:
            print(f"{result['side']}: JIT warm-up {result['jit_warmup_s']:.2f} s (one-off, not in the table)")
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
