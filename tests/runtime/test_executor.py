"""The executor seam: the local process pool and in-process executors, batching from a
timed probe, task failures by name, and the settings' validation."""

from __future__ import annotations

import argparse
import math
import os

import pytest

from runtime.errors import ExecutorError, TaskFailed
from runtime.executor import (
    BatchPlan,
    ExecutorSettings,
    InlineExecutor,
    LocalExecutor,
    Task,
    add_arguments,
    executor_for,
    run_batched,
    settings_from,
)


def _squares(items: list[int]) -> list[int]:
    return [i * i for i in items]


def _pid(_: int) -> int:
    return os.getpid()


def _fail(message: str) -> None:
    raise KeyError(message)


def test_the_pool_runs_tasks_in_other_processes_and_keeps_their_order() -> None:
    with LocalExecutor(ExecutorSettings(workers=2)) as pool:
        assert pool.cpus == 2
        assert pool.map(pow, [(2, k) for k in range(10)]) == [2**k for k in range(10)]
        pids = set(pool.map(_pid, [(k,) for k in range(8)]))
        assert os.getpid() not in pids
        assert len(pool.worker_pids()) == 2
        with pytest.raises(TaskFailed, match=r"task 1 failed: 'no such run'") as info:
            list(pool.run([Task(pow, (2, 2)), Task(_fail, ("no such run",))]))
        assert info.value.kind == "KeyError"
        assert pool.map(pow, [(3, 3)]) == [27]


@pytest.mark.parametrize("executor", [InlineExecutor(), LocalExecutor(ExecutorSettings(workers=2))])
def test_batches_are_sized_from_the_probe_and_results_come_back_in_order(
    executor: InlineExecutor | LocalExecutor,
) -> None:
    plan = BatchPlan()
    seen: list[list[int]] = []
    with executor:
        out = run_batched(
            executor, _squares, list(range(50)), plan=plan, on_batch=lambda i, _: seen.append(i)
        )
    assert out == [i * i for i in range(50)]
    assert plan.probe == 3
    assert math.isfinite(plan.seconds_per_item)
    assert plan.seconds_per_item > 0
    # Squaring takes microseconds: the rest fills one batch per CPU.
    assert plan.batch == math.ceil(47 / executor.cpus)
    assert sorted(i for batch in seen for i in batch) == list(range(50))
    assert sum(plan.sizes) == 50


def test_a_fixed_batch_size_is_kept() -> None:
    plan = BatchPlan()
    assert run_batched(InlineExecutor(), _squares, list(range(7)), batch=3, plan=plan) == [
        i * i for i in range(7)
    ]
    assert plan.sizes == [3, 3, 1]


def test_settings_from_the_command_line_and_the_configuration() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert settings_from(parser.parse_args([])) == ExecutorSettings()
    ray = settings_from(parser.parse_args(["--ray-address", "auto"]))
    assert (ray.kind, ray.address) == ("ray", "auto")
    configured = ExecutorSettings.parse({"kind": "ray", "address": "head:6379", "workers": 4})
    assert settings_from(parser.parse_args(["--workers", "2"]), configured).workers == 2
    assert settings_from(parser.parse_args(["--executor", "local"]), configured).kind == "local"
    assert ExecutorSettings.parse("local") == ExecutorSettings()
    assert isinstance(executor_for(ExecutorSettings(workers=1)), LocalExecutor)
    with pytest.raises(ExecutorError, match=r"--workers: executor\.workers: got 0"):
        settings_from(parser.parse_args(["--workers", "0"]))
    for block, says in [
        ({"kind": "dask"}, r"executor\.kind: got 'dask'; accepted: local, ray"),
        ({"kind": "local", "address": "auto"}, r"executor\.address: only with kind: ray"),
        ({"kind": "ray", "workers": True}, r"executor\.workers: got True"),
        ({"kind": "ray", "task_seconds": 0}, r"executor\.task_seconds: got 0"),
        ({"kind": "ray", "nodes": 3}, r"executor\.nodes: unknown key"),
        (["ray"], r"executor: got list"),
    ]:
        with pytest.raises(ExecutorError, match=says):
            ExecutorSettings.parse(block)
