"""Bookkeeping the flows share: step timings and a failed run's diagnostics."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import get_client, get_run_logger
from prefect.context import FlowRunContext

from tasks.publish import record_failure

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_TABLE = REPO_ROOT / "data" / "customers_sample.csv"


def tag_run(flow_name: str, source: Path) -> None:
    """Tag the running flow run with ``somseg``, the flow's name and ``dataset:<file stem>``.

    The UI filters runs by these tags. Only the flow run is tagged, not its
    task runs: a task run with tags asks the server for tag concurrency slots
    as it starts, a round trip per task that cost 8 s per 10 M-row run here.
    """
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    wanted = {"somseg", flow_name, f"dataset:{source.stem}"}
    with get_client(sync_client=True) as client:
        client.update_flow_run(context.flow_run.id, tags=sorted(set(context.flow_run.tags) | wanted))


@dataclass
class RunLog:
    """What a run has measured so far, and what to keep if it fails."""

    out_dir: Path
    durations: dict[str, float] = field(default_factory=dict)
    diagnostics: dict[str, Path] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time one step and log it at INFO."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.durations[name] = round(time.perf_counter() - start, 4)
            get_run_logger().info("step %s took %.2f s", name, self.durations[name])

    @contextmanager
    def keep_diagnostics_on_failure(self) -> Iterator[None]:
        """On any error, save what is known to ``<out>/last_failure/`` and re-raise."""
        try:
            yield
        except BaseException as error:
            figures = {**self.figures, "durations_seconds": self.durations} if self.figures else {}
            folder = record_failure(self.out_dir, self.diagnostics, figures, error)
            if folder is not None:
                get_run_logger().error("run failed; diagnostics in %s", folder)
            raise
