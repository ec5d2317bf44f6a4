#!/usr/bin/env python3
"""Benchmark: the distance kernels against the machine's GEMM throughput.

For each feature count, on ``--rows`` random rows and a codebook of
``--neurons`` units, it times:

* numpy's matmul of the same shapes (``X @ W.T``), float64 and float32,
  on the whole table with BLAS on every core, and chunk by chunk
  (:func:`somseg.kernels.default_chunk_rows` rows) on one thread: the
  machine's GEMM throughput in GFLOP/s (``2 * rows * features * neurons``
  flops);
* :func:`somseg.kernels.best_units` (the training epochs' search), float64
  and float32, on every core and on one;
* :func:`somseg.kernels.best_two_units` (assignment, QE, TE: float64,
  ranked as MiniSom ranks), on every core and on one, at several chunk
  sizes.

Each figure is the best of ``--repeat`` runs; kernel rows per second are
printed next to the same work counted in GFLOP/s, so the two compare
directly. On a shared machine run it twice and compare within one run.

Usage::

    python benchmarks/kernels.py --rows 1000000 --features 3,17
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence

import numpy as np


def best_of(step: Callable[[], object], repeat: int) -> float:
    """Fastest wall time of ``repeat`` runs of ``step``."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(rows: int, features: int, neurons: int, repeat: int, chunk_sizes: Sequence[int]) -> list[tuple[str, float]]:
    """(label, seconds) of every variant on one shape."""
    from threadpoolctl import threadpool_limits

    from somseg import kernels

    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, features))
    W = rng.standard_normal((neurons, features))
    chunk = kernels.default_chunk_rows(neurons)
    kernels.best_units(X[:1000], W)  # compile (or load numba's cache) first
    kernels.best_units(X[:1000], W, precision="float32")
    kernels.best_two_units(X[:1000], W, dedup="never")
    results: list[tuple[str, float]] = []
    for dtype in (np.float64, np.float32):
        Xd, Wt = X.astype(dtype), np.ascontiguousarray(W.T.astype(dtype))
        results.append((f"GEMM {dtype.__name__}, whole table, BLAS on every core",
                        best_of(lambda: Xd @ Wt, repeat)))
        with threadpool_limits(1, "blas"):
            results.append((f"GEMM {dtype.__name__}, {chunk}-row chunks, one thread",
                            best_of(lambda: [Xd[s:s + chunk] @ Wt for s in range(0, rows, chunk)], repeat)))
    for precision in ("float64", "float32"):
        results.append((f"best_units {precision}, every core",
                        best_of(lambda: kernels.best_units(X, W, precision=precision), repeat)))
        results.append((f"best_units {precision}, one thread",
                        best_of(lambda: kernels.best_units(X, W, precision=precision, n_threads=1), repeat)))
    for size in chunk_sizes:
        label = f"best_two_units float64, {size}-row chunks" + (" (default)" if size == chunk else "")
        results.append((label + ", every core",
                        best_of(lambda: kernels.best_two_units(X, W, chunk_rows=size, dedup="never"), repeat)))
    results.append(("best_two_units float64, default chunks, one thread",
                    best_of(lambda: kernels.best_two_units(X, W, dedup="never", n_threads=1), repeat)))
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", default="3,17", help="comma-separated feature counts")
    parser.add_argument("--neurons", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunks", default="1024,4096,16384", help="chunk sizes (rows) of best_two_units to try")
    args = parser.parse_args(argv)
    print(f"# kernels on {args.rows:,} rows x {args.neurons} neurons (best of {args.repeat}); "
          f"cpus={len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.2f} at start")
    for features in (int(f) for f in args.features.split(",")):
        flops = 2.0 * args.rows * features * args.neurons
        print(f"\n## {features} features ({flops / 1e9:.2f} GFLOP per pass)\n")
        print("| variant | s | M rows/s | GFLOP/s |")
        print("|---|---|---|---|")
        chunk_sizes = [int(c) for c in args.chunks.split(",")]
        for label, seconds in measure(args.rows, features, args.neurons, args.repeat, chunk_sizes):
            print(f"| {label} | {seconds:.3f} | {args.rows / seconds / 1e6:.1f} | {flops / seconds / 1e9:.1f} |")
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
