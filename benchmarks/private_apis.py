"""What each fenced private API or process setting saves: the whole `segment train` with one trick off at a time.

``tasks/private_apis.py`` keeps a use of another library's private API (or a
process-wide setting) only where this benchmark shows it matters. Each
variant runs ``segment train`` on the same generated table, in a fresh
process with a fresh work folder, Prefect storage and database:

* ``all``: the product as it ships;
* ``no-early-server``: Prefect starts its own temporary server when the flow
  first needs it, instead of ``segment`` launching it before the imports;
* ``no-allocator``: glibc's default allocator behaviour (no ``mallopt``, no ``malloc_trim``);
* ``no-gx-fingerprint``: Great Expectations fingerprints every frame it validates.

It also times the adjusted Rand index the evaluation computes some 80 times
(ours against scikit-learn's ``adjusted_rand_score``), on the evaluation
sample's size::

    python benchmarks/private_apis.py --rows 10000000 --repeat 3

Variants run interleaved (all, no-early-server, ..., all, ...), so slow
periods of a shared machine spread over all of them; the table gives each
variant's median wall time and its difference from ``all``.
"""

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_scale import write_table
from som_engines import machine

HERE = Path(__file__).resolve().parent

# Each variant is the segment command with one trick turned off before anything runs.
_RUNNER = """
import sys
variant = sys.argv[1]
import somseg.tasks.private_apis as fence
if variant == "no-allocator":
    fence.reuse_freed_memory = fence.release_freed_memory = lambda: False
    import somseg.flows.support as support
    import somseg.tasks.expectations as expectations
    support.reuse_freed_memory = fence.reuse_freed_memory
    expectations.release_freed_memory = fence.release_freed_memory
if variant == "no-gx-fingerprint":
    fence.skip_gx_frame_fingerprint = lambda: False
    import somseg.tasks.expectations as expectations
    expectations.skip_gx_frame_fingerprint = fence.skip_gx_frame_fingerprint
if variant == "no-early-server":
    import somseg.flows.server as server
    server.launch_unless_configured = lambda: None
import logging, os
from somseg.flows.cli import main
sys.argv = ["segment", *sys.argv[2:]]
code = main()
if variant == "no-early-server":
    # Prefect started its own temporary server; the exit below skips the hook that would stop it.
    from prefect.server.api.server import SubprocessASGIServer
    SubprocessASGIServer().stop()
logging.shutdown()
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)  # as `segment` itself ends (somseg.flows.cli.run)
"""
VARIANTS = ("all", "no-early-server", "no-allocator", "no-gx-fingerprint")


def run_variant(variant: str, table: Path, base: Path, config: Path = HERE / "batch.yaml") -> float:
    folder = Path(tempfile.mkdtemp(prefix=f"{variant}-", dir=base))
    env = {**os.environ, "PREFECT_HOME": str(folder / "home"), "PREFECT_LOCAL_STORAGE_PATH": str(folder / "storage"),
           "SOMSEG_WORK_DIR": str(folder / "work"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}
    prefect = Path(sys.executable).with_name("prefect")
    subprocess.run([str(prefect), "server", "database", "upgrade", "-y"], env=env, capture_output=True, check=True)
    command = [sys.executable, "-c", _RUNNER, variant, "train", str(table), "--config", str(config),
               "--out", str(folder / "run")]
    log = folder / "segment.log"
    with log.open("w") as out:
        started = time.perf_counter()
        # Its own session, so that anything it leaves running can be stopped with it.
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        returncode = process.wait()
        seconds = time.perf_counter() - started
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    if returncode != 0:
        raise SystemExit(f"{variant} failed:\n{log.read_text()[-4000:]}")
    return seconds


def time_ari(rows: int, calls: int) -> dict[str, float]:
    from sklearn.metrics import adjusted_rand_score

    from somseg.evaluation import adjusted_rand_index

    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, rows)
    b = np.where(rng.random(rows) < 0.9, a, rng.integers(0, 4, rows))
    seconds = {}
    for name, function in (("somseg", adjusted_rand_index), ("scikit-learn", adjusted_rand_score)):
        function(a, b)
        started = time.perf_counter()
        for _ in range(calls):
            function(a, b)
        seconds[name] = time.perf_counter() - started
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--json", help="also write the figures as JSON")
    parser.add_argument("--config", default=str(HERE / "batch.yaml"),
                        help="the config every variant trains with (default: benchmarks/batch.yaml)")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="somseg-private-apis-"))
    table = base / "customers.parquet"
    write_table(table, "sample", args.rows, seed=7, first_id=10_000_000)
    variants = args.variants.split(",")
    walls: dict[str, list[float]] = {variant: [] for variant in variants}
    for _ in range(args.repeat):
        for variant in variants:
            walls[variant].append(run_variant(variant, table, base, Path(args.config)))
            print(f"{variant}: {walls[variant][-1]:.1f} s", flush=True)
    ari = time_ari(200_000, 80)

    print(f"\n{args.rows:,} rows, batch engine, on {json.dumps(machine())}\n")
    baseline = statistics.median(walls["all"]) if "all" in walls else None
    print("| variant | wall s (each run) | median | vs all |")
    print("|---|---|---:|---:|")
    for variant, seconds in walls.items():
        median = statistics.median(seconds)
        delta = "" if baseline is None or variant == "all" else f"{median - baseline:+.1f} s"
        print(f"| {variant} | {', '.join(f'{s:.1f}' for s in seconds)} | {median:.1f} | {delta} |")
    print(f"\nadjusted Rand index, 80 calls on 200,000 rows: somseg {ari['somseg']:.2f} s, "
          f"scikit-learn {ari['scikit-learn']:.2f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"walls": walls, "ari": ari, "machine": machine()}, indent=2))


if __name__ == "__main__":
    main()
