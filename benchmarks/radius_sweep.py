#!/usr/bin/env python3
"""Benchmark: the batch engine's last radius against the notebook path's map, QE against TE.

The notebook path (MiniSom ``train_random`` 8,000 with ``sigma=2``, as in
``som_engines.py``) ends near radius 0.67; the batch engine ends at
``som.sigma_end`` (default 1). A smaller last radius lowers the map's
quantization error and raises its topographic error. This script trains the
batch engine (the product's defaults otherwise, 8x8) with each last radius
of ``--sigma-ends`` on one table of ``benchmarks/tables.py`` and prints QE,
its ratio to the notebook path's, and TE, all on every row, so that the
trade-off behind the default is measured rather than asserted::

    .venv/bin/python benchmarks/radius_sweep.py --kind money --rows 1000000
    .venv/bin/python benchmarks/radius_sweep.py --kind money --neighborhood cutgauss --sigma-ends 1.0

(``public_tables.py`` measures the two neighbourhoods on real tables.)
"""

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from som_engines import Grid, machine, product_som, standardised_table

from somseg.config import BATCH_NEIGHBOURHOODS


def qe_te(X: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """QE and TE (8 neighbours) of ``weights`` on every row of ``X``, from one match."""
    from somseg.metrics import match_units, quantization_error, topographic_error

    match = match_units(X, weights)
    return quantization_error(X, weights, match), topographic_error(X, weights, 8, match)


def notebook_weights(X: np.ndarray, seed: int) -> np.ndarray:
    """The notebook path's map: ``MiniSom(8, 8, sigma=2, learning_rate=0.3)``, random start, 8,000 online steps."""
    from minisom import MiniSom

    som = MiniSom(8, 8, X.shape[1], sigma=2.0, learning_rate=0.3, random_seed=seed)
    som.random_weights_init(X)
    som.train_random(X, 8000)
    return som.get_weights()


def batch_som(X: np.ndarray, seed: int, grid: Grid = (8, 8), **settings: Any) -> Any:
    """The product's batch engine fitted to ``X``, its defaults but ``settings`` (``som.*``).

    On a ``grid`` map (8x8); ``grid="auto"``: on the grid the product sizes for ``X``.
    """
    from somseg.som import build_engine

    return build_engine(product_som(seed, grid, X, engine="batch", init="pca", **settings)).fit(X)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("sample", "continuous3", "money"), default="money")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42, help="seed of the table and both engines")
    parser.add_argument("--sigma-ends", default="1.0,0.9,0.8,0.7,0.6", help="comma-separated last radii")
    parser.add_argument("--neighborhood", choices=BATCH_NEIGHBOURHOODS, default="gaussian",
                        help="the batch engine's neighbourhood (som.neighborhood)")
    args = parser.parse_args(argv)

    X = standardised_table(args.rows, args.seed, args.kind)
    print(f"{args.rows:,} rows of {args.kind!r}, {X.shape[1]} features, on {machine()}\n")
    base_qe, base_te = qe_te(X, notebook_weights(X, args.seed))
    print("| map | QE | QE / notebook's | TE (8 neighbours) | train s |")
    print("|---|---:|---:|---:|---:|")
    print(f"| notebook path (ends near radius 0.67) | {base_qe:.4f} | 1.000 | {base_te:.4f} | |")
    for sigma_end in (float(s) for s in args.sigma_ends.split(",")):
        start = time.perf_counter()
        weights = batch_som(X, args.seed, sigma_end=sigma_end, neighborhood=args.neighborhood).weights_
        seconds = time.perf_counter() - start
        qe, te = qe_te(X, weights)
        print(f"| batch {args.neighborhood}, last radius {sigma_end:g} | {qe:.4f} | {qe / base_qe:.3f} | {te:.4f} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
