"""Out of core on Dask: train and score a dataset larger than one worker's memory limit.

Generates a seeded, partitioned Parquet dataset of customers: by default
(``--kind sample``) demographics that look like the reference table's
(integer Age 18-89, Work_Experience 0-14 with about 10 % missing,
Family_Size 1-9 with about 4 % missing); with ``--kind money``, the 17
correlated, skewed money features of ``benchmarks/tables.py`` with a text
ID, trained with ``benchmarks/money.yaml``. It starts a local Prefect server (Dask worker *processes* need a
real API, see NOTES) and a local Dask cluster of worker processes with a
memory limit each, runs the training and the scoring flows on it, and
records wall time and each worker's peak resident memory::

    python benchmarks/dask_out_of_core.py --rows 50000000 --workers 2 --memory-limit 2GiB --out /tmp/somseg-ooc
    python benchmarks/dask_out_of_core.py --kind money --rows 50000000 --memory-limit 3GiB --out /tmp/somseg-ooc

Prints a JSON summary and a markdown table for benchmarks/RESULTS.md.
"""

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tables  # noqa: E402 (benchmarks/ is not a package)

BENCHMARKS = Path(__file__).resolve().parent


def generate(folder: Path, rows: int, rows_per_file: int, row_group: int, seed: int, kind: str = "sample") -> Path:
    """Write ``rows`` synthetic customers as ``part-NNNNN.parquet`` files (vectorised, seeded per file)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, start in enumerate(range(0, rows, rows_per_file)):
        n = min(rows_per_file, rows - start)
        if kind != "sample":
            frame = tables.make_table(kind, n, seed=seed * 100_003 + index, first_id=start + 1)
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / f"part-{index:05d}.parquet",
                           row_group_size=row_group)
            continue
        rng = np.random.default_rng([seed, index])
        age = np.clip(np.rint(rng.gamma(4.0, 10.5, n) + 18), 18, 89)
        experience = np.clip(np.rint(rng.exponential(2.5, n) + (age > 35) * rng.integers(0, 4, n)), 0, 14)
        family = np.clip(np.rint(rng.poisson(1.9, n) + 1 + (age < 30) * rng.integers(0, 2, n)), 1, 9)
        experience[rng.random(n) < 0.10] = np.nan
        family[rng.random(n) < 0.04] = np.nan
        table = pa.table(
            {
                "ID": np.arange(start, start + n, dtype=np.int64) + 100_000,
                "Age": age.astype(np.float64),
                "Work_Experience": experience,
                "Family_Size": family,
            }
        )
        pq.write_table(table, folder / f"part-{index:05d}.parquet", row_group_size=row_group)
    return folder


def start_prefect_server(home: Path) -> tuple[subprocess.Popen, str]:
    """A real Prefect server on a free local port; the worker processes report to it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    log = open(home / "server.log", "w")
    prefect = Path(sys.executable).with_name("prefect")
    server = subprocess.Popen(
        [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return server, url
        except OSError:
            time.sleep(1)
    server.kill()
    raise RuntimeError(f"the Prefect server did not start; see {home / 'server.log'}")


class MemorySampler:
    """Peak resident memory (RSS) of each worker process, sampled every 0.2 s."""

    def __init__(self, pids: dict[str, int]) -> None:
        import psutil

        self.processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peaks = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "MemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for name, process in self.processes.items():
                try:
                    self.peaks[name] = max(self.peaks[name], process.memory_info().rss)
                except Exception:  # a worker restarted by its nanny: note it and keep sampling the others
                    self.peaks[name] = -1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("sample", "money"), default="sample",
                        help="the reference's demographics, or 17 skewed money features (benchmarks/tables.py)")
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--rows-per-file", type=int, default=1_000_000)
    parser.add_argument("--row-group", type=int, default=250_000)
    parser.add_argument("--partition-rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="2GiB")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=Path("/tmp/somseg-ooc"))
    parser.add_argument("--keep-data", action="store_true", help="reuse an existing dataset of the same size")
    args = parser.parse_args()

    out = args.out.resolve()
    dataset = out / (f"customers-{args.rows}" if args.kind == "sample" else f"{args.kind}-{args.rows}")
    load_before = os.getloadavg()
    start = time.perf_counter()
    if not (args.keep_data and dataset.is_dir()):
        shutil.rmtree(dataset, ignore_errors=True)
        generate(dataset, args.rows, args.rows_per_file, args.row_group, args.seed, args.kind)
    generated = time.perf_counter() - start
    on_disk = sum(p.stat().st_size for p in dataset.glob("*.parquet"))

    home = out / "prefect-home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    server, url = start_prefect_server(home)
    # Set before Prefect is imported here and before the workers start, so all of them use this server.
    # Every task recomputes (no cache hits between the training and the scoring run), so both are measured.
    os.environ.update(
        PREFECT_API_URL=url,
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_TASKS_REFRESH_CACHE="true",
    )
    try:
        figures = run_flows(args, dataset, out)
    finally:
        server.terminate()
        server.wait(timeout=60)
    summary = {
        "kind": args.kind,
        "rows": args.rows,
        "files": len(list(dataset.glob("*.parquet"))),
        "parquet_bytes": on_disk,
        # The features as float64 (and an int64 id for the sample kind), as the pipeline holds them.
        "in_memory_table_bytes": args.rows * (32 if args.kind == "sample" else 8 * len(tables.MONEY_FEATURES)),
        "workers": args.workers,
        "memory_limit": args.memory_limit,
        "threads_per_worker": 1,
        "generate_seconds": round(generated, 1),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "cpus": os.cpu_count(),
        **figures,
    }
    print(json.dumps(summary, indent=2))
    print(markdown(summary))
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0


def run_flows(args: argparse.Namespace, dataset: Path, out: Path) -> dict:
    from distributed import Client, LocalCluster

    from somseg.config import ExecutionConfig, GateConfig, ScoringConfig, SomConfig, load_config
    from somseg.flows.score import score_segments_flow
    from somseg.flows.train import train_segments_flow

    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=args.memory_limit,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        execution = ExecutionConfig(
            mode="dask", scheduler_address=cluster.scheduler_address, partition_rows=args.partition_rows
        )
        # The reference recipe's features and suite (or the money table's config), so that the work is that
        # of earlier figures; a performance run: the map need not pass the gates on synthetic data.
        recipe = BENCHMARKS.parent / "configs" / "reference.yaml" if args.kind == "sample" else BENCHMARKS / "money.yaml"
        base = load_config(recipe)
        config = base.model_copy(update={
            "som": SomConfig(engine="batch", init="pca", rows=8, cols=8, sigma=2.0),
            "gates": GateConfig(max_quantization_error=10.0, max_relative_quantization_error=None,
                                max_topographic_error=1.0),
            "execution": execution,
        })
        pids = {str(name): pid for name, pid in client.run(os.getpid).items()}
        figures = {}
        for step, call in (
            ("train", lambda: train_segments_flow(str(dataset), str(out / "train"), config, str(work))),
            (
                "score",
                lambda: score_segments_flow(
                    str(dataset), str(out / "train" / "model"), str(out / "score"),
                    ScoringConfig(execution=execution), str(work),
                ),
            ),
        ):
            with MemorySampler(pids) as sampler:
                began = time.perf_counter()
                call()
                seconds = time.perf_counter() - began
            metrics = json.loads((out / step / "metrics.json").read_text(encoding="utf-8"))
            figures[step] = {
                "wall_seconds": round(seconds, 1),
                "peak_rss_per_worker_mib": [round(v / 2**20) for v in sampler.peaks.values()],
                "steps_seconds": metrics["durations_seconds"],
                "quantization_error": metrics["quantization_error"],
                "n_rows": metrics["n_rows"],
            }
            figures[step]["load_after"] = os.getloadavg()
    figures["driver_peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return figures


def markdown(summary: dict) -> str:
    lines = [
        "| step | rows | wall time | peak RSS per worker (limit %s) | load (1 min) after |" % summary["memory_limit"],
        "|---|---|---|---|---|",
    ]
    for step in ("train", "score"):
        figures = summary[step]
        peaks = ", ".join(f"{v} MiB" for v in figures["peak_rss_per_worker_mib"])
        lines.append(
            f"| {step} | {figures['n_rows']:,} | {figures['wall_seconds']} s | {peaks} "
            f"| {figures['load_after'][0]:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
