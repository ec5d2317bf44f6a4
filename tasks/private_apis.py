"""Every use of another library's private API, or of a process-wide setting, fenced in one module.

Each is kept only because a benchmark shows it matters (the figures are in
``benchmarks/RESULTS.md``, "Private APIs: what each one saves"), and
``tests/tasks/test_private_apis.py`` fails loudly when an upgrade breaks one:

* :func:`skip_gx_frame_fingerprint`: Great Expectations fingerprints every
  in-memory frame it validates (an MD5 over a per-row hash) only to put it in
  the batch markers; the pipeline already keys everything on content.
* :func:`temporary_server_command` and :data:`TEMPORARY_SERVER_ENV`: the
  command and environment Prefect's own ``SubprocessASGIServer`` starts its
  temporary server with, so ``segment`` can start it before importing the
  pipeline (the two then overlap on two cores).
* :func:`deliver_queued_logs_and_events`: Prefect's log and event workers
  drain at interpreter exit, after a temporary server has stopped.
* :func:`reuse_freed_memory`: glibc's allocator keeps freed memory for reuse
  instead of returning each large array to the kernel, which zeroes the pages
  of the next one. For the flow's own process in local mode only.
* :func:`release_freed_memory`: the opposite, for every other process (a Dask
  worker): glibc's ``malloc_trim`` hands back the free pages a validation
  leaves scattered over the heap, so that the worker's memory monitor, which
  pauses a worker above 80 % of its limit, sees what is really in use. One
  process follows one of the two, never both.

Nothing here imports Prefect or Great Expectations at module level: the
``segment`` command reads the server settings before anything heavy loads.
"""

import ctypes
import gc
import importlib.util
import sys
from pathlib import Path

# The environment Prefect's SubprocessASGIServer gives its temporary server: no UI, ephemeral mode.
TEMPORARY_SERVER_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
TEMPORARY_SERVER_APP = "prefect.server.api.server:create_app"
_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_MAX = -4
_KEEP_FREE_BYTES = 2**31 - 1  # free memory kept at the top of the heap (mallopt takes an int)
_keeping_freed_memory = False


def skip_gx_frame_fingerprint() -> bool:
    """Turn off Great Expectations' per-frame fingerprint; False when this GX release has no such setting."""
    from great_expectations.execution_engine import pandas_execution_engine

    if not hasattr(pandas_execution_engine, "HASH_THRESHOLD"):
        return False
    pandas_execution_engine.HASH_THRESHOLD = 0
    return True


def temporary_server_command(port: int) -> list[str]:
    """The command Prefect runs for its own temporary server (``SubprocessASGIServer``)."""
    return [sys.executable, "-m", "uvicorn", "--app-dir", str(_prefect_parent()), "--factory", TEMPORARY_SERVER_APP,
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "error", "--lifespan", "on"]


def _prefect_parent() -> Path:
    spec = importlib.util.find_spec("prefect")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("prefect is not installed")
    return Path(next(iter(spec.submodule_search_locations))).parent


def deliver_queued_logs_and_events(timeout: float) -> None:
    """Send the logs and events Prefect still holds, while the server that should receive them runs."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=timeout)


def reuse_freed_memory() -> bool:
    """Make glibc serve large allocations from its heap and keep what is freed (for this process).

    Returns
    -------
    bool
        True when the allocator was tuned; False where it is not glibc's
        (macOS, Windows, musl), which are left as they are.
    """
    global _keeping_freed_memory
    libc = _glibc()
    if libc is None:
        return False
    _keeping_freed_memory = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_FREE_BYTES))
    return _keeping_freed_memory


def release_freed_memory() -> bool:
    """Free the objects in reference cycles, and return the heap's free pages to the kernel (glibc's ``malloc_trim``) unless this process keeps them.

    Returns
    -------
    bool
        True when memory was trimmed; False in a process that
        :func:`reuse_freed_memory` tuned, or where the allocator is not glibc's.
    """
    # Objects in reference cycles (GX holds many, with the validated frame) are freed only by the
    # collector: also in a process that keeps its freed memory, so that the next partition reuses
    # it rather than growing the heap.
    gc.collect()
    libc = None if _keeping_freed_memory else _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return libc
