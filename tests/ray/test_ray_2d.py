"""2D runs on Ray: a sweep of a 2D scenario runs each point as a FEniCSx run in a Ray
task that reserves its MPI ranks' CPUs, and each point equals ``physics.simulate``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import physics
from physics.sweep import Axis, Design, run_sweep
from runtime.errors import ExecutorError
from runtime.executor import ExecutorSettings, Task
from runtime.ray_executor import RayExecutor
from tests.fenicsx.conftest import disk_doc, requires_dolfinx
from tests.ray.conftest import requires_ray

pytestmark = [requires_ray, requires_dolfinx]


def test_a_2d_sweep_runs_each_point_as_a_ray_task_on_its_ranks(
    ray_cluster: Any, tmp_path: Path
) -> None:
    # A coarse disk mesh and 10 mV steps: a few seconds per run on 2 ranks.
    doc = disk_doc(
        kinetics={"model": "butler-volmer", "E0": 0.0, "k0": 1e-4, "alpha": 0.5},
        numerics={"potential_step": 0.01, "refine": 0.25, "ranks": 2},
    )
    sc = physics.load_scenario(doc)
    design = Design("grid", (Axis.parse("kinetics.k0=1e-6,1e-3"),))
    with RayExecutor(ExecutorSettings(kind="ray")) as ex:
        report = run_sweep(sc, design, tmp_path / "disk.zarr", executor=ex, traces=True)
        # Each run reserves its 2 ranks: a run asking for more than the cluster has is
        # refused at once rather than left waiting.
        with pytest.raises(ExecutorError, match="needs 3 CPUs"):
            list(ex.run([Task(pow, (2, 2), cpus=3)]))
    assert (report.done, report.failed) == (2, 0)
    assert report.plan.batch == 1
    with xr.open_zarr(tmp_path / "disk.zarr") as ds:
        want = physics.simulate(sc.with_values({"kinetics.k0": 1e-3}))
        got = ds["I"].sel({"kinetics.k0": 1e-3}).values[: want.I.size]
        np.testing.assert_allclose(got, want.I, rtol=1e-9, atol=1e-9 * np.abs(want.I).max())
        # Slow kinetics draw less reduction current over the scan than fast ones.
        slow = float(np.nanmin(ds["I"].sel({"kinetics.k0": 1e-6}).values))
        fast = float(np.nanmin(ds["I"].sel({"kinetics.k0": 1e-3}).values))
        assert fast < slow < 0
