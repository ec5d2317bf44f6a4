"""Where tasks run: Prefect's task runner, chosen from the config, and the drivers of learners.

``execution.mode: local`` runs tasks on Prefect's thread-pool task runner in
the flow's process; ``execution.mode: dask`` on prefect-dask's task runner,
on an existing cluster or on a local one it starts. Nothing else differs:
the flows submit the same tasks over the same partitions either way.

:func:`learn` drives a learner of :mod:`somseg.stats` over partitions: it
asks the learner for a request, maps a step over the partitions with it,
adds the partial results in partition order (so the rounding is the same on
any executor) and hands the total back, until the learner is finished.
"""

from collections.abc import Callable, Sequence
from typing import Any

from prefect import unmapped
from prefect.futures import PrefectFuture
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from somseg.config import ExecutionConfig
from somseg.errors import ConfigError
from somseg.kernels import default_threads
from somseg.stats import Learner, combine


def task_runner(execution: ExecutionConfig) -> TaskRunner:
    """The task runner ``execution`` asks for (not yet started)."""
    if execution.mode == "local":
        return ThreadPoolTaskRunner(max_workers=execution.threads or default_threads())
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as exc:
        raise ConfigError(
            "execution.mode 'dask' needs the dask extra: pip install 'somseg[dask]' (dask, distributed, prefect-dask)"
        ) from exc
    if execution.scheduler_address:
        return DaskTaskRunner(address=execution.scheduler_address)
    spec = execution.local_cluster
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": spec.n_workers,
            "threads_per_worker": spec.threads_per_worker,
            "memory_limit": spec.memory_limit,
            "processes": spec.processes,
            "dashboard_address": None,
        }
    )


class Executor:
    """A started task runner: run one task, or map a task over partitions, and wait for the results.

    Parameters
    ----------
    execution : ExecutionConfig
    """

    def __init__(self, execution: ExecutionConfig) -> None:
        self.mode = execution.mode
        self._runner = task_runner(execution)

    def __enter__(self) -> "Executor":
        self._runner.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._runner.__exit__(*exc)

    def run(self, step: Any, **parameters: Any) -> Any:
        """Run ``step`` once on the runner and return its result (raising its error)."""
        return self.start(step, **parameters).result()

    def start(self, step: Any, **parameters: Any) -> PrefectFuture[Any]:
        """Submit ``step`` once and return at once: its future's ``result()`` waits for it (raising its error).

        For a step that can run alongside the ones submitted after it.
        """
        return self._runner.submit(step, parameters)

    def map(self, step: Any, over: dict[str, Sequence[Any]], **shared: Any) -> list[Any]:
        """Run ``step`` once per item of the sequences in ``over`` (zipped), with ``shared`` parameters.

        Every run finishes before this returns; the results come back in
        the order of the items, and the error of the first item that failed
        (in that order) is raised.
        """
        lengths = {len(values) for values in over.values()}
        if len(lengths) != 1:
            raise ValueError(f"mapped parameters differ in length: { {k: len(v) for k, v in over.items()} }")
        if lengths == {0}:
            return []
        parameters = {**{k: list(v) for k, v in over.items()}, **{k: unmapped(v) for k, v in shared.items()}}
        futures: list[PrefectFuture[Any]] = list(self._runner.map(step, parameters))
        for future in futures:
            future.wait()
        return [future.result() for future in futures]


def learn(
    executor: Executor,
    learner: Learner,
    step: Any,
    over: dict[str, Sequence[Any]],
    progress: Callable[[], None] | None = None,
    **shared: Any,
) -> Learner:
    """Drive ``learner`` until it is finished, each pass mapping ``step(request=..., **over, **shared)``.

    Returns the learner, finished.
    """
    while (request := learner.request()) is not None:
        learner.update(combine(executor.map(step, over, request=request, **shared)))
        if progress is not None:
            progress()
    return learner
