"""The executor: Prefect's task runner chosen from the config, results in partition order, learners driven."""

import pytest
from prefect import task
from prefect.task_runners import ThreadPoolTaskRunner

from somseg.config import ExecutionConfig, LocalClusterSpec
from somseg.errors import ConfigError, DataError
from somseg.stats import percentile_from, percentile_learner
from somseg.tasks.executor import Executor, learn, task_runner

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_harness")]


@task
def square(value: int, offset: int = 0) -> int:
    return value * value + offset


@task
def refuse_odd(value: int) -> int:
    if value % 2:
        raise DataError(f"odd value {value}")
    return value


@task
def partial(request, part):
    return request.partial(part)


def test_local_mode_is_prefects_thread_pool_with_one_thread_per_cpu_or_as_set() -> None:
    from somseg.kernels import default_threads

    runner = task_runner(ExecutionConfig())
    assert isinstance(runner, ThreadPoolTaskRunner) and runner._max_workers == default_threads()
    assert task_runner(ExecutionConfig(threads=3))._max_workers == 3


def test_dask_mode_is_prefect_dasks_runner_on_a_given_or_a_local_cluster() -> None:
    pytest.importorskip("prefect_dask")
    from prefect_dask import DaskTaskRunner

    remote = task_runner(ExecutionConfig(mode="dask", scheduler_address="tcp://10.0.0.5:8786"))
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://10.0.0.5:8786"
    local = task_runner(ExecutionConfig(mode="dask", local_cluster=LocalClusterSpec(n_workers=3, memory_limit="1GiB")))
    assert local.cluster_kwargs["n_workers"] == 3 and local.cluster_kwargs["memory_limit"] == "1GiB"


def test_dask_mode_without_the_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_dask(name, *args, **kwargs):
        if name.startswith("prefect_dask"):
            raise ImportError("No module named 'prefect_dask'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dask)
    with pytest.raises(ConfigError, match=r"pip install 'somseg\[dask\]'"):
        task_runner(ExecutionConfig(mode="dask"))


def test_map_returns_results_in_the_order_of_the_items() -> None:
    with Executor(ExecutionConfig(threads=2)) as ex:
        assert ex.map(square, {"value": list(range(8))}, offset=1) == [v * v + 1 for v in range(8)]
        assert ex.map(square, {"value": []}) == []
        assert ex.run(square, value=3) == 9


def test_map_raises_the_error_of_the_first_item_that_failed() -> None:
    with Executor(ExecutionConfig(threads=2)) as ex:
        with pytest.raises(DataError, match="odd value 1"):
            ex.map(refuse_odd, {"value": [0, 1, 2, 3]})


def test_learn_drives_a_learner_over_the_partitions_until_it_is_finished() -> None:
    import numpy as np

    parts = [np.array([[v]], dtype=float) for v in (5.0, 1.0, 4.0, 2.0, 3.0)]
    with Executor(ExecutionConfig(threads=2)) as ex:
        learner = learn(ex, percentile_learner(50.0), partial, {"part": parts})
    assert percentile_from(learner, 50.0) == 3.0
