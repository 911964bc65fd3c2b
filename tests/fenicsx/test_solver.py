"""The solver actor supervising a real FEniCSx worker, inside a run of a real daemon.

A worker killed mid-run is restarted, the run is suspended meanwhile and resumes, and
the run's samples are exactly those of an uninterrupted run: nothing lost, nothing
repeated; the fields reach the run's zarr group through the recorder, and the mass
balance is checked. A paused run halts its worker at the next checkpoint and publishes
nothing until it is resumed. A worker its actor's supervisor abandons is killed.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pykka
import pytest
import zarr

from actors.solver import FIELD_PREFIX, SUSPEND_REASON, solver_child
from runtime import topics
from runtime.errors import ChildStartError
from runtime.messages import (
    ConservationChecked,
    FieldMesh,
    FieldSnapshot,
    RunStateChanged,
    SampleBatch,
)
from runtime.run_kinds import simulation_spec
from runtime.supervisor import ChildSpec, SupervisorSpec, start_supervisor
from tests.actors.test_simulation_runs import currents, finished, messages, next_event
from tests.fenicsx.conftest import disk_doc, requires_dolfinx
from tests.runtime._actors import wait_until
from tests.runtime.test_daemon import Daemon

pytestmark = requires_dolfinx

# A coarse disk (the mesh and the steps at half the default resolution): a few seconds
# of work, time enough to kill the worker halfway.
DOC = disk_doc(
    kinetics={"model": "butler-volmer", "E0": 0.0, "k0": 1.0e-4}, numerics={"refine": 0.5}
)
MESH_REFINE = 0.5


@pytest.fixture(autouse=True)
def _no_actor_left() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all(timeout=20)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    with Daemon(tmp_path / "d") as running:
        yield running


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_killed_worker_is_restarted_and_the_run_suspended_not_lost(daemon: Daemon) -> None:
    spec = simulation_spec(DOC, snapshots=2)
    with daemon.client() as client:
        whole = client.call("runs", "start", spec)["id"]
        reference_shown = finished(client, whole, timeout=300)
        assert reference_shown["state"] == "completed", reference_shown["reason"]
        reference = messages(client, whole)

        run_id = client.call("runs", "start", spec)["id"]
        client.subscribe(topics.run_samples(run_id))
        next_event(client, SampleBatch, "the first samples")
        status = client.call(f"runs/{run_id}/solver", "status")
        assert status["delivered"] < status["steps"], "the worker finished before it was killed"
        first_pid = status["pid"]
        os.killpg(first_pid, signal.SIGKILL)  # a crash in native code, as far as anyone can tell
        shown = finished(client, run_id, timeout=300)
        events = messages(client, run_id)
    assert shown["state"] == "completed", shown["reason"]
    transitions = [tuple(t) for t in shown["transitions"]]
    assert ("paused", f"suspended: {SUSPEND_REASON}") in transitions
    assert ("running", f"resumed: {SUSPEND_REASON} cleared") in transitions
    assert not _alive(first_pid)

    # Nothing lost, nothing repeated: the samples are an uninterrupted run's.
    t_ref, i_ref = currents(reference)
    t, current = currents(events)
    np.testing.assert_array_equal(t, t_ref)
    np.testing.assert_allclose(current, i_ref, rtol=1e-12, atol=0)
    # Snapshots with their mesh coordinates, one per requested step, through the recorder.
    group = zarr.open_group(daemon.data / "fields" / f"{run_id}.zarr", mode="r")
    p = FIELD_PREFIX
    r = np.asarray(group[f"{p}.mesh.r"][:])[0]
    c = np.asarray(group[f"{p}.snapshot.c"][:])
    snaps = [m for m in events if isinstance(m, FieldSnapshot)]
    assert len(snaps) == 2
    assert c.shape == (2, 2, r.size)
    np.testing.assert_array_equal(c[-1], snaps[-1].c)
    # The mass balance, reported for the 2D engine too.
    check = next(m for m in events if isinstance(m, ConservationChecked))
    assert check.engine == "fenicsx"
    assert check.passed, check
    assert shown["summary"]["conservation"]["max_relative_error"] == check.max_relative_error
    assert shown["summary"]["stability"]["worker_restarts"] == 1
    assert sum(isinstance(m, FieldMesh) for m in events) == 1  # not again after the restart


def test_a_2d_run_pauses_at_a_checkpoint_and_publishes_nothing_while_paused(
    daemon: Daemon,
) -> None:
    with daemon.client() as client:
        run_id = client.call("runs", "start", simulation_spec(DOC, snapshots=2))["id"]
        client.subscribe(topics.run_events(run_id))
        next_event(client, SampleBatch, "the first samples")
        assert client.call("runs", "pause", run_id)["pause_pending"] is True
        next_event(client, RunStateChanged, "the pause", lambda m: m.state == "paused")
        held = client.call(f"runs/{run_id}/solver", "status")
        assert client.call("runs", "resume", run_id)["state"] == "running"
        shown = finished(client, run_id, timeout=300)
        events = messages(client, run_id)
    assert shown["state"] == "completed", shown["reason"]
    assert held["published"] < held["steps"], "the worker finished before the pause"
    # Between the pause and the resume, no sample reached the run's stream.
    states = [i for i, m in enumerate(events) if isinstance(m, RunStateChanged)]
    paused_at, resumed_at = states[1], states[2]
    assert events[paused_at].state == "paused"
    assert events[resumed_at].state == "running"
    assert not any(isinstance(m, SampleBatch) for m in events[paused_at:resumed_at])
    batches = [m for m in events[:paused_at] if isinstance(m, SampleBatch)]
    assert sum(len(b) for b in batches) == held["published"]


def test_a_solver_abandoned_at_shutdown_has_its_worker_killed() -> None:
    # A shutdown timeout of zero abandons the solver at once: on_kill must kill the
    # worker's process group even though the actor never got to stop it.
    spec: ChildSpec = solver_child(
        "run-kill", DOC, mesh_refine=MESH_REFINE, shutdown_s=0.0, stop_grace_s=30.0
    )
    root = start_supervisor(SupervisorSpec(children=(spec,)))
    solver = root.child_ref("solver")
    pid = solver.proxy().status().get()["pid"]
    assert _alive(pid)
    solver.proxy().pause().get()  # a worker that no longer responds to anything
    root.stop()
    wait_until(lambda: not _alive(pid), timeout=10, what="the worker to die")


def test_the_solver_refuses_scenarios_that_run_in_process() -> None:
    planar = {**DOC, "engine": "auto", "electrode": {"geometry": "planar", "area": 1e-6}}
    with pytest.raises(ChildStartError, match="accepted by the solver actor: fenicsx"):
        start_supervisor(SupervisorSpec(children=(solver_child("run-x", planar),)))
