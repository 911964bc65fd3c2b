"""Sweeps on Ray: the same numbers as locally, a worker killed mid-sweep, a lost cluster.

A real Ray (2 CPUs, no dashboard) runs in this process for the module; the executor's
driver process joins it. The lost-cluster test runs ``galvana sweep`` in a process of
its own with a Ray of its own, and kills that Ray's head.
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import physics
from physics.sweep import Axis, Design, run_sweep
from physics.sweep_store import SweepStore
from runtime.errors import ExecutorError, TaskFailed
from runtime.executor import ExecutorSettings, LocalExecutor, Task
from runtime.ray_executor import RayExecutor
from tests.physics.test_sweep import _arrays, _scenario
from tests.ray.conftest import requires_ray
from tests.runtime._actors import wait_until

pytestmark = requires_ray

DESIGN = Design(
    "grid",
    (Axis.parse("kinetics.k0=1e-6:1e-2:log:6"), Axis.parse("waveform.scan_rate=0.05,0.5")),
)


def _raise(message: str) -> None:
    raise ValueError(message)


def test_tasks_run_on_ray_and_their_errors_come_back_by_name(ray_cluster: Any) -> None:
    with RayExecutor(ExecutorSettings(kind="ray")) as ex:
        assert ex.cpus == 2
        assert ex.map(pow, [(2, 10), (3, 2)]) == [1024, 9]
        with pytest.raises(TaskFailed, match="task 1 failed: no such point") as info:
            list(ex.run([Task(pow, (2, 2)), Task(_raise, ("no such point",))]))
        assert info.value.kind == "ValueError"
        # The executor carries on after a failed task.
        assert ex.map(pow, [(5, 2)]) == [25]


def test_a_sweep_on_ray_equals_the_local_sweep(ray_cluster: Any, tmp_path: Path) -> None:
    sc = physics.load_scenario(_scenario())
    with RayExecutor(ExecutorSettings(kind="ray")) as ex:
        report = run_sweep(sc, DESIGN, tmp_path / "ray.zarr", executor=ex, traces=True)
    assert (report.done, report.failed) == (12, 0)
    assert report.executor.startswith("ray")
    with LocalExecutor(ExecutorSettings(workers=2)) as pool:
        run_sweep(sc, DESIGN, tmp_path / "local.zarr", executor=pool, traces=True, batch=5)
    local = _arrays(tmp_path / "local.zarr")
    for name, values in _arrays(tmp_path / "ray.zarr").items():
        np.testing.assert_array_equal(values, local[name], err_msg=name)


def _running_tasks() -> list[int]:
    """Process ids of this test's Ray workers running a task now (their title is
    ``ray::invoke``): descendants of this process, whose ``ray.init`` started the Ray."""
    return [pid for pid in _descendants(os.getpid()) if _cmdline(pid).startswith(b"ray::invoke")]


def test_a_ray_worker_killed_mid_sweep_has_its_task_retried(
    ray_cluster: Any, tmp_path: Path
) -> None:
    """A worker killed while it runs a point: Ray runs the task again, and every point is
    recorded once, equal to the sweep in this process. The first four points are one
    cycle each, the last four ten (seconds each), so once the first is recorded a
    worker is still busy, whatever the machine's load."""
    sc = physics.load_scenario(_scenario(numerics={"potential_step": 1e-5}))
    design = Design(
        "grid",
        (Axis.parse("waveform.cycles=1,10"), Axis.parse("kinetics.k0=1e-6:1e-2:log:4")),
    )
    killed: list[int] = []

    def progress(done: int, total: int) -> None:
        if done == 0 or killed or done == total:
            return
        wait_until(lambda: bool(_running_tasks()), timeout=120, what="a Ray worker busy")
        busy = _running_tasks()[0]
        os.kill(busy, signal.SIGKILL)
        killed.append(busy)

    with RayExecutor(ExecutorSettings(kind="ray")) as ex:
        report = run_sweep(sc, design, tmp_path / "k.zarr", executor=ex, batch=1, progress=progress)
    assert killed
    assert (report.done, report.failed, report.computed) == (8, 0, 8)
    store = SweepStore.open(tmp_path / "k.zarr")
    assert np.asarray(store.group["invocation"][...]).ravel().tolist() == [1] * 8
    run_sweep(sc, design, tmp_path / "ref.zarr", batch=8)
    ref = _arrays(tmp_path / "ref.zarr")
    for name, values in _arrays(tmp_path / "k.zarr").items():
        np.testing.assert_array_equal(values, ref[name], err_msg=name)


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for path in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(path) as f:
                stat = f.read()
        except OSError:
            continue
        pid = int(stat.split()[0])
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(pid)
    out, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            out.append(child)
            stack.append(child)
    return out


def test_a_lost_cluster_fails_the_sweep_in_one_line_and_keeps_what_finished(
    tmp_path: Path,
) -> None:
    """The head of the sweep's own Ray killed mid-sweep (its GCS and raylet): exit 2,
    one line, the finished points kept; the same command on the local pool completes.

    The first four points are one cycle each, the last four ten (seconds each): the head
    is killed once the first are recorded, while the slow ones cannot all have run, so
    the cluster is lost mid-sweep whatever the machine's load."""
    scenario = tmp_path / "cv.yaml"
    scenario.write_text(yaml.safe_dump(_scenario(numerics={"potential_step": 1e-5})))
    out = tmp_path / "lost.zarr"
    argv = [
        sys.executable, "-m", "galvana.cli", "sweep", str(scenario), "--out", str(out),
        "--vary", "waveform.cycles=1,10", "--vary", "kinetics.k0=1e-6:1e-2:log:4",
        "--batch", "1", "--executor", "ray", "--workers", "2",
    ]  # fmt: skip
    with subprocess.Popen(argv, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith("sweep: ") and not line.startswith("sweep: 0/"):
                break
        head = [
            pid
            for pid in _descendants(proc.pid)
            if any(name in _cmdline(pid) for name in (b"gcs_server", b"raylet/raylet"))
        ]
        assert len(head) == 2
        for pid in head:
            os.kill(pid, signal.SIGKILL)
        rest = proc.stderr.read()
        proc.wait(timeout=120)
    assert proc.returncode == 2
    errors = [line for line in rest.splitlines() if not line.startswith("sweep: ")]
    assert len(errors) == 1, rest
    assert errors[0].startswith("galvana sweep: lost the Ray cluster at this machine")
    kept = SweepStore.open(out).status()
    assert 0 < int((kept == 1).sum()) < 8
    again = subprocess.run(
        [*argv[:-4], "--executor", "local", "--workers", "2"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    store = SweepStore.open(out)
    assert store.status().tolist() == [1] * 8
    invocation = np.asarray(store.group["invocation"][...]).ravel()
    assert np.array_equal(invocation == 1, kept == 1)


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def test_bad_ray_settings_are_refused_by_name() -> None:
    with pytest.raises(ExecutorError, match=r"executor\.kind: got 'dask'"):
        ExecutorSettings.parse({"kind": "dask"})
    with pytest.raises(ExecutorError, match=r"executor\.address: only with kind: ray"):
        ExecutorSettings.parse({"kind": "local", "address": "auto"})
    with pytest.raises(ExecutorError, match=r"executor\.workers"):
        ExecutorSettings.parse({"kind": "ray", "workers": 0})
