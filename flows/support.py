"""What every run of the flows shares: its tags, its step timings, its diagnostics on failure."""

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from prefect import get_client, get_run_logger
from prefect.context import FlowRunContext

from somseg.config import ExecutionConfig
from somseg.dataset import protected_paths
from somseg.io import prepare_run_folder, recover_run_folder, run_folder_lock
from somseg.runs import parse_run_date, record_failure
from somseg.tasks.catalog import Store
from somseg.tasks.private_apis import reuse_freed_memory


def tag_run(flow_name: str, source: str) -> None:
    """Tag the running flow run with ``somseg``, the flow's name and ``dataset:<input name>``.

    The UI filters runs by these tags. Only the flow run is tagged, not its
    task runs: a task run with tags asks the server for tag concurrency
    slots as it starts, a round trip per task.
    """
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    wanted = {"somseg", flow_name, f"dataset:{Path(source.rstrip('/')).stem}"}
    with get_client(sync_client=True) as client:
        client.update_flow_run(context.flow_run.id, tags=sorted(set(context.flow_run.tags) | wanted))


def flow_run_id() -> str | None:
    """The id of the running flow run; None outside one."""
    context = FlowRunContext.get()
    return None if context is None or context.flow_run is None else str(context.flow_run.id)


def run_moment(run_date: str | None) -> tuple[date, datetime]:
    """The day a run is for, and the time a model's freshness is measured from.

    The time is the flow run's scheduled start (a deployment's schedule),
    or when it was created (any other run); the day is ``run_date``
    (``YYYY-MM-DD``, for a backfill) or that time's date in UTC.
    """
    from datetime import UTC

    from prefect.runtime import flow_run

    scheduled = flow_run.scheduled_start_time
    moment = datetime.now(UTC) if scheduled is None else datetime.fromtimestamp(scheduled.timestamp(), UTC)
    return (parse_run_date(run_date) if run_date else moment.date()), moment


@dataclass
class RunLog:
    """A run's output folder, catalogue, step timings, and what to keep if it fails."""

    out_dir: Path
    store: Store
    durations: dict[str, float] = field(default_factory=dict)
    diagnostics: dict[str, Path] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    failure_report: Callable[[Path, BaseException], Any] | None = None
    held: ExitStack = field(default_factory=ExitStack)

    @classmethod
    def start(
        cls,
        flow_name: str,
        source: str,
        out_dir: str,
        work_dir: str,
        execution: ExecutionConfig,
        model_dir: str | None = None,
        registry: str | None = None,
    ) -> "RunLog":
        """Check the input and the output folder before any work, tag the run, set up the process.

        The output folder may not be, hold or lie inside the input, the model
        being used, the model registry or the work folder: a run replaces its
        whole output folder.

        Raises
        ------
        DataError
            If the input does not exist or is of an unsupported kind, or the
            output folder may not be written.
        """
        protected = protected_paths(source, work_dir, model_dir, registry)
        target = Path(out_dir).resolve()
        held = ExitStack()
        try:
            # One run at a time on a folder; under the lock, what a killed run left is its own to clear.
            held.enter_context(run_folder_lock(target))
            for line in recover_run_folder(target):
                get_run_logger().warning("output folder %s: %s", target, line)
            store = Store.at(work_dir)
            held.enter_context(store.in_use())  # 'segment gc' removes nothing while a run reads the cache
            run = cls(out_dir=prepare_run_folder(target, protected), store=store, held=held)
        except BaseException:
            held.close()
            raise
        tag_run(flow_name, source)
        if execution.mode == "local":
            # The flow's own process does the work: let it reuse the memory it frees.
            reuse_freed_memory()
        return run

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
        """On any error, save what is known to ``<out>/last_failure/`` and re-raise; then release the output folder."""
        try:
            yield
        except BaseException as error:
            figures = {**self.figures, "durations_seconds": self.durations} if self.figures else {}
            try:
                folder = record_failure(self.out_dir, self.diagnostics, figures, error, self.failure_report)
            except OSError as unwritable:
                # The run's own error is what the user must see; this one only says why nothing is kept.
                get_run_logger().error("run failed; its diagnostics could not be written: %s", unwritable)
                raise error from None
            if folder is not None:
                get_run_logger().error("run failed; diagnostics in %s", folder)
            raise
        finally:
            self.held.close()
