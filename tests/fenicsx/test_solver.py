"""The solver actor supervising a real FEniCSx worker inside a run.

A worker killed mid-run is restarted, the run is suspended meanwhile and resumes,
and the stored currents are exactly those of an uninterrupted run: nothing lost,
nothing repeated. A worker its actor's supervisor abandons is killed.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pykka
import pytest
import zarr

import physics
from actors.run import Run, RunContext
from actors.run_state import RunRecord
from actors.solver import FIELD_PREFIX, SUSPEND_REASON, solver_child
from physics.engines import fenicsx
from runtime.actor import Actor
from runtime.errors import ChildStartError
from runtime.event_bus import EventBus
from runtime.field_store import FieldStore
from runtime.messages import RunStateChanged, SystemNote, utc_now
from runtime.supervisor import ChildSpec, SupervisorSpec, start_supervisor
from tests.fenicsx.conftest import disk_doc, requires_dolfinx

pytestmark = requires_dolfinx

# About two hundred steps on a coarse disk mesh: a few seconds of work, time enough
# to kill the worker halfway.
DOC = disk_doc(kinetics={"model": "butler-volmer", "E0": 0.0, "k0": 1.0e-4})
MESH_REFINE = 0.5


@pytest.fixture(autouse=True)
def _no_actor_left() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all(timeout=20)


class _Recorder(Actor):
    """Stands in for the recorder: a commit is published at once."""

    def __init__(self, bus: EventBus) -> None:
        super().__init__()
        self.bus = bus
        self.seq = 0

    def commit(self, topic: str, msg: object) -> int:
        self.seq += 1
        self.bus.publish(topic, msg)
        return self.seq


class _Procedure:
    """A simulation run's procedure: the solver does the work and reports the end."""

    def __init__(self, context: RunContext) -> None:
        self.calls: list[str] = []

    def start(self) -> None:
        self.calls.append("start")

    def pause(self, immediate: bool) -> None:
        self.calls.append(f"pause({immediate})")

    def resume(self) -> None:
        self.calls.append("resume")

    def stop(self) -> None:
        self.calls.append("stop")

    def abort(self) -> None:
        self.calls.append("abort")

    def close(self) -> None:
        self.calls.append("close")


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_killed_worker_is_restarted_and_the_run_suspended_not_lost(tmp_path: Path) -> None:
    bus = EventBus()
    events = bus.subscribe("run/**", mode="lossless", maxsize=100_000)
    store = FieldStore(tmp_path / "fields")
    recorder = _Recorder.start(bus)
    run_id = "run-2d"
    record = RunRecord(run_id, "idle", utc_now(), {"name": "disk"}, "")
    spec = SupervisorSpec(
        strategy="rest_for_one",
        children=(
            solver_child(
                run_id,
                DOC,
                bus=bus,
                fields=store,
                snapshots=2,
                mesh_refine=MESH_REFINE,
                batch=5,
                backoff_s=0.1,
                report_done=True,
            ),
        ),
    )
    run = Run.start(spec, record=record, procedure=_Procedure, recorder=recorder, bus=bus)
    solver = run.proxy().which_children().get()[0].ref
    assert solver is not None

    seen: list[object] = []

    def states() -> list[tuple[str, str]]:
        seen.extend(msg for _, msg in events.drain())
        return [(m.state, m.reason) for m in seen if isinstance(m, RunStateChanged)]

    status = solver.proxy().status().get()
    first_pid = status["pid"]
    total = status["steps"]
    _wait(lambda: solver.proxy().status().get()["delivered"] >= 20, 120, "the first samples")
    delivered = solver.proxy().status().get()["delivered"]
    assert delivered < total, "the worker finished before it could be killed"
    os.killpg(first_pid, signal.SIGKILL)  # a crash in native code, as far as anyone can tell

    _wait(lambda: ("paused", f"suspended: {SUSPEND_REASON}") in states(), 30, "the suspension")
    _wait(lambda: ("running", f"resumed: {SUSPEND_REASON} cleared") in states(), 120, "resume")
    _wait(lambda: any(s == "completed" for s, _ in states()), 120, "the run's completion")
    assert [s for s, _ in states()] == ["running", "paused", "running", "completed"]

    notes = [m for m in seen if isinstance(m, SystemNote)]
    assert any("worker crashed" in n.text and "SIGKILL" in n.text for n in notes)
    assert sum("worker started" in n.text for n in notes) == 2

    # Nothing lost, nothing repeated: the stored currents are an uninterrupted run's.
    store.flush()
    group = zarr.open_group(store.path_of(run_id), mode="r")
    p = FIELD_PREFIX
    current = np.asarray(group[f"{p}.I"][:])
    reference = fenicsx.simulate_fields(
        physics.load_scenario(DOC), mesh_refine=MESH_REFINE, snapshots=2
    )
    assert current.shape == (total,)
    np.testing.assert_allclose(current, reference.result.I, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(np.asarray(group[f"{p}.t"][:]), reference.result.t)
    # Snapshots with their mesh coordinates, one per requested step.
    r = np.asarray(group[f"{p}.mesh.r"][:])[0]
    c = np.asarray(group[f"{p}.snapshot.c"][:])
    assert r.shape == (reference.mesh.nodes,)
    assert c.shape == (2, 2, reference.mesh.nodes)
    np.testing.assert_allclose(c[-1], reference.snapshots[-1].c, rtol=1e-12)
    assert np.asarray(group[f"{p}.snapshot.step"][:]).tolist() == [0, total - 1]
    assert not _alive(first_pid)
    events.close()


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
    _wait(lambda: not _alive(pid), 10, "the worker to die")


def test_the_solver_refuses_scenarios_that_run_in_process() -> None:
    planar = {**DOC, "engine": "auto", "electrode": {"geometry": "planar", "area": 1e-6}}
    with pytest.raises(ChildStartError, match="accepted by the solver actor: fenicsx"):
        start_supervisor(SupervisorSpec(children=(solver_child("run-x", planar),)))
