#!/usr/bin/env python3
"""Benchmark: which batch-engine settings beat the notebook path on speed, QE and TE at once, on one table.

Issue 15's target for a table of a million rows: train + assign + QE + TE at
least ``--speedup`` (20) times faster than the notebook path in the same run,
with QE no higher than the notebook path's and TE at most ``--te-max``
(0.1). The trade-off is the map's: a smaller last radius (``som.sigma_end``),
the cut neighbourhood (``cutgauss``) or more neurons fit the rows more
closely and order the map less, and more neurons cost more. This script runs
the notebook path once (``som_engines.py``'s ``notebook`` side, every row),
then the batch engine for every combination of ``--grids``,
``--neighborhoods`` and ``--sigma-ends``, each with every seed of ``--seeds``
(the epochs' samples; the PCA start has no seed), the product's defaults
otherwise, and prints each combination's QE ratio, TE and speed-up over its
seeds, and whether it meets all three on every seed::

    .venv/bin/python benchmarks/frontier.py --kind money --rows 1000000
    .venv/bin/python benchmarks/frontier.py --kind continuous3 --rows 1000000

The table is generated and cleaned as in ``som_engines.py`` (``--seed``).
Each batch map's time is one run of training, assignment (best and
second-best unit of every row), QE and TE, as ``som_engines.py`` times its
``batch`` side, with the numba kernels compiled beforehand.
"""

import argparse
import itertools
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from radius_sweep import batch_som, qe_te
from som_engines import Grid, _notebook, _warm_kernels, machine, parse_grid, standardised_table

from somseg.config import BATCH_NEIGHBOURHOODS


def batch_map(X: np.ndarray, seed: int, grid: Grid, neighborhood: str, sigma_end: float) -> dict[str, float]:
    """One batch map of ``X``: QE, TE (8 neighbours) and the seconds of training, assignment, QE and TE."""
    start = time.perf_counter()
    qe, te = qe_te(X, batch_som(X, seed, grid, neighborhood=neighborhood, sigma_end=sigma_end).weights_)
    return {"qe": qe, "te": te, "seconds": time.perf_counter() - start}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("sample", "continuous3", "money"), default="money")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42, help="seed of the table and of the notebook path's map")
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds of the batch maps")
    parser.add_argument("--grids", default="8x8,9x9,10x10,12x12", help="comma-separated RxC grids")
    parser.add_argument("--neighborhoods", default=",".join(BATCH_NEIGHBOURHOODS))
    parser.add_argument("--sigma-ends", default="0.6,0.7,0.8,0.9,1.0,1.2,1.4", help="comma-separated last radii")
    parser.add_argument("--speedup", type=float, default=20.0, help="the speed-up the target asks for")
    parser.add_argument("--te-max", type=float, default=0.1, help="the largest TE the target allows")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    try:
        grids = {text: parse_grid(text) for text in args.grids.split(",")}
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))

    X = standardised_table(args.rows, args.seed, args.kind)
    print(f"{args.rows:,} rows of {args.kind!r}, {X.shape[1]} features, on {machine()}\n")
    _warm_kernels(X.shape[1])
    notebook = _notebook(X, argparse.Namespace(seed=args.seed, repeat=1, winner_sample=None, metrics_sample=None))
    notebook_s = sum(step["seconds"] for step in notebook["steps"].values())
    print(f"notebook path: {notebook_s:.2f} s, QE {notebook['qe']:.4f}, TE {notebook['te']:.4f}\n")
    print(f"| grid | neighbourhood | last radius | QE / notebook's | TE | × notebook's speed | meets all on "
          f"{len(seeds)} seeds |")
    print("|---|---|---:|---:|---:|---:|---|")
    meeting = []
    for grid, neighborhood, sigma_end in itertools.product(
            grids, args.neighborhoods.split(","), (float(s) for s in args.sigma_ends.split(","))):
        runs = [batch_map(X, seed, grids[grid], neighborhood, sigma_end) for seed in seeds]
        ratio = np.array([run["qe"] / notebook["qe"] for run in runs])
        te = np.array([run["te"] for run in runs])
        speed = np.array([notebook_s / run["seconds"] for run in runs])
        meets = bool((ratio <= 1).all() and (te <= args.te_max).all() and (speed >= args.speedup).all())
        if meets:
            meeting.append(f"{grid} {neighborhood} {sigma_end:g}")
        print(f"| {grid} | {neighborhood} | {sigma_end:g} | {ratio.min():.3f}–{ratio.max():.3f} "
              f"| {te.min():.4f}–{te.max():.4f} | {speed.min():.1f}–{speed.max():.1f} | {'yes' if meets else 'no'} |",
              flush=True)
    print(f"\nSettings meeting QE ≤ the notebook's, TE ≤ {args.te_max:g} and ≥ {args.speedup:g}× on every seed: "
          + (", ".join(meeting) if meeting else "none"))


if __name__ == "__main__":
    main()
