"""The solver actor for the FEniCSx engine: runs a scenario in a supervised worker process.

The 2D engine's numerics run in a separate process (``physics.engines.fenicsx``'s
worker, under the interpreter that has DOLFINx, possibly as MPI ranks), so a crash
in native code takes down the worker, never the daemon. This actor is that
process's supervisor:

- it starts the worker and reads its frames on a pump thread; currents and field
  snapshots (with the mesh coordinates) go to the run's zarr group, under
  ``fenicsx.*`` arrays;
- each line the worker writes on stderr goes to the run's log (a
  :class:`~runtime.messages.SystemNote` on ``run/<id>/log``, recorded with the run);
- a worker that crashes, is killed or writes garbage is restarted after a backoff.
  Meanwhile the run is *suspended* (its run actor pauses it with the reason
  :data:`SUSPEND_REASON`) and resumed once the new worker has caught up: the
  restarted worker recomputes from the start (the discretization is deterministic)
  and only steps not yet delivered are kept, so no sample is lost or repeated;
- more than ``max_worker_restarts`` crashes within ``restart_window_s`` make the actor
  fail, and its supervisor's policy decides; a new incarnation resumes after the
  rows already in the zarr group;
- on shutdown the worker gets SIGTERM and, if still there after ``stop_grace_s``,
  SIGKILL; when the supervisor abandons the actor (shutdown timeout),
  :meth:`Solver.on_kill` kills the worker's whole process group at once.

A run's spec puts it under the run with :func:`solver_child`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pykka

from physics.engines import fenicsx
from physics.errors import PhysicsError, ScenarioError, WorkerCrashed, WorkerError
from physics.scenario import Scenario, load_scenario
from physics.simulation import engine_of
from runtime import topics
from runtime.actor import OPERATE_SCOPE, Actor, exposed
from runtime.event_bus import EventBus
from runtime.field_store import FieldStore, RunFields
from runtime.messages import ProcedureReport, SystemNote, utc_now
from runtime.supervisor import ChildSpec

__all__ = ["FIELD_PREFIX", "SUSPEND_REASON", "Solver", "solver_child"]

logger = logging.getLogger("galvana.solver")

SUSPEND_REASON = "the solver's worker process is restarting"
"""The suspender a worker crash trips (and its recovery clears) on the run."""

FIELD_PREFIX = "fenicsx"
"""Prefix of the solver's arrays in the run's zarr group."""

# At most this many stderr lines per worker go to the run's event log (all go to
# the logger): a worker that floods stderr must not flood the log.
_STDERR_NOTES = 500


@dataclass(frozen=True, slots=True)
class _Frame:
    generation: int
    frame: fenicsx.Frame


@dataclass(frozen=True, slots=True)
class _Ended:
    generation: int
    error: WorkerError | None


@dataclass(frozen=True, slots=True)
class _Relaunch:
    generation: int


class Solver(Actor):
    """Runs ``scenario`` (engine fenicsx) for run ``run_id`` in a supervised worker.

    ``fields`` is the daemon's field store (``None``: results are kept in memory
    only). ``snapshots`` field snapshots are taken, evenly spaced. ``ranks`` and
    ``mesh_refine`` override the scenario's ``numerics``. ``batch`` is the number of
    steps per sample frame. A worker silent for ``stall_timeout_s`` (not paused) is
    killed and restarted like a crashed one. ``report_done`` tells the run it is
    complete when the worker finishes (a run whose procedure is the simulation itself).
    """

    def __init__(
        self,
        run_id: str,
        scenario: Scenario | Mapping[str, Any] | str,
        *,
        bus: EventBus | None = None,
        fields: FieldStore | None = None,
        snapshots: int = 0,
        ranks: int | None = None,
        mesh_refine: float | None = None,
        batch: int = 100,
        max_worker_restarts: int = 3,
        restart_window_s: float = 60.0,
        backoff_s: float = 0.5,
        stop_grace_s: float = 2.0,
        stall_timeout_s: float | None = 600.0,
        report_done: bool = False,
    ) -> None:
        super().__init__()
        self.run_id = run_id
        self._scenario_source = scenario
        self.bus = bus
        self.fields_store = fields
        self.snapshots = snapshots
        self.ranks = ranks
        self.mesh_refine = mesh_refine
        self.batch = batch
        self.max_worker_restarts = max_worker_restarts
        self.restart_window_s = restart_window_s
        self.backoff_s = backoff_s
        self.stop_grace_s = stop_grace_s
        self.stall_timeout_s = stall_timeout_s
        self.report_done = report_done
        self.state = "starting"  # running, restarting, finished, failed, stopped
        self._generation = 0
        self._worker: fenicsx.WorkerProcess | None = None
        self._worker_lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._crashes: deque[float] = deque()
        self.restarts = 0
        self._suspended = False
        self._notes = 0
        self.delivered = 0  # steps whose currents are stored
        self._snapshot_steps: set[int] = set()
        self._mesh: fenicsx.MeshFrame | None = None
        self._run_fields: RunFields | None = None
        self._I = np.zeros(0)
        self.last_error = ""
        self.hello: fenicsx.Hello | None = None
        self.done: fenicsx.Done | None = None

    # --- lifecycle -------------------------------------------------------------------

    def on_start(self) -> None:
        sc = load_scenario(self._scenario_source)
        if engine_of(sc) != "fenicsx":
            raise ScenarioError(
                "engine",
                f"got {sc.engine!r} with electrode.geometry {sc.electrode.geometry!r}, which "
                "runs in process; accepted by the solver actor: fenicsx, or auto with a 2D "
                "geometry",
            )
        self.scenario = sc
        self.job = fenicsx.prepare_job(
            sc,
            snapshots=self.snapshots,
            ranks=self.ranks,
            mesh_refine=self.mesh_refine,
            batch=self.batch,
        )
        self.info = fenicsx.find_worker()
        self._steps = self.job.steps.count
        self._I = np.full(self._steps, np.nan)
        if self.fields_store is not None:
            self._run_fields = self.fields_store.run(self.run_id)
            self._resume_from_fields(self._run_fields)
        if self.delivered:
            # An earlier incarnation stored these steps: the run stays suspended
            # until this one has caught up.
            self._suspended = True
        self._launch()

    def on_stop(self) -> None:
        self._cancel_timer()
        worker = self._take_worker()
        if worker is not None:
            worker.terminate()
            deadline = time.monotonic() + self.stop_grace_s
            while worker.returncode is None and time.monotonic() < deadline:
                time.sleep(0.02)
            worker.close()  # SIGKILL to the group if it is still there
        if self.state not in ("finished", "failed"):
            self.state = "stopped"
        if self._run_fields is not None:
            self._run_fields.flush()

    def on_failure(self, *exc_info: object) -> None:
        self._cancel_timer()
        worker = self._take_worker()
        if worker is not None:
            worker.close()
        self.state = "failed"

    def on_kill(self) -> None:
        # The supervisor's thread, after the shutdown timeout: no waiting here.
        self._cancel_timer()
        with self._worker_lock:
            worker = self._worker
        if worker is not None:
            worker.kill()

    # --- the worker ------------------------------------------------------------------

    def _launch(self) -> None:
        self._generation += 1
        generation = self._generation
        worker = fenicsx.WorkerProcess(
            self.info,
            self.job.frame,
            ranks=self.job.ranks,
            on_stderr=lambda line: self._stderr(generation, line),
            stall_s=self.stall_timeout_s,
        )
        with self._worker_lock:
            self._worker = worker
        self.state = "running"
        self._notes = 0
        self._note("info", f"worker started (pid {worker.pid}, {self.job.ranks} rank(s))")
        ref = self.actor_ref
        threading.Thread(
            target=_pump, args=(worker, generation, ref), name=f"solver-{self.run_id}", daemon=True
        ).start()

    def _take_worker(self) -> fenicsx.WorkerProcess | None:
        with self._worker_lock:
            worker, self._worker = self._worker, None
        return worker

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _stderr(self, generation: int, line: str) -> None:
        logger.info("run %s solver worker %d: %s", self.run_id, generation, line)
        if self._notes < _STDERR_NOTES:
            self._notes += 1
            self._note("warning", line, {"stream": "stderr", "worker": generation})
        elif self._notes == _STDERR_NOTES:
            self._notes += 1
            self._note("warning", "further worker stderr only in the daemon log")

    def _note(self, level: str, text: str, data: Any = None) -> None:
        if self.bus is None:
            return
        note = SystemNote(level, "solver", text, data, utc_now())  # type: ignore[arg-type]
        with contextlib.suppress(Exception):  # a log line must never take the solver down
            self.bus.publish(topics.run_log(self.run_id), note)

    def _report(self, kind: str, reason: str) -> None:
        link = self.link
        if link is None or link.supervisor is None:
            return
        with contextlib.suppress(pykka.ActorDeadError):
            link.supervisor.tell(ProcedureReport(self.run_id, kind, reason))  # type: ignore[arg-type]

    # --- messages --------------------------------------------------------------------

    def on_receive(self, message: object) -> object:
        # Messages of an earlier worker (its generation) arrive late and are ignored.
        current = getattr(message, "generation", None) == self._generation
        if isinstance(message, _Frame) and current:
            self._frame(message.frame)
        elif isinstance(message, _Ended) and current:
            self._ended(message.error)
        elif isinstance(message, _Relaunch) and current and self.state == "restarting":
            self._launch()
        return None

    def _frame(self, frame: fenicsx.Frame) -> None:
        if isinstance(frame, fenicsx.Hello):
            self.hello = frame
        elif isinstance(frame, fenicsx.MeshFrame):
            self._store_mesh(frame)
        elif isinstance(frame, fenicsx.Samples):
            self._store_samples(frame)
        elif isinstance(frame, fenicsx.Snapshot):
            self._store_snapshot(frame)
        elif isinstance(frame, fenicsx.Done):
            self.done = frame
            self.state = "finished"
            self._unsuspend()
            if self._run_fields is not None:
                self._run_fields.update_attrs(
                    {f"{FIELD_PREFIX}.finished": True, f"{FIELD_PREFIX}.steps": frame.steps}
                )
                self._run_fields.flush()
            self._note("info", f"worker finished {frame.steps} steps", _timings(frame))
            if self.report_done:
                self._report("done", f"the simulation finished ({frame.steps} steps)")

    def _ended(self, error: WorkerError | None) -> None:
        worker = self._take_worker()
        if worker is not None:
            worker.close()
        if error is None:
            return  # finished: Done came first
        self.last_error = str(error)
        if not isinstance(error, WorkerCrashed):
            # The worker itself reported a failure: running it again gives the same.
            self.state = "failed"
            self._note("error", str(error))
            self._report("failed", f"the solver failed: {error}")
            self.stop()
            return
        now = time.monotonic()
        self._crashes.append(now)
        while self._crashes and self._crashes[0] < now - self.restart_window_s:
            self._crashes.popleft()
        self._note("error", f"worker crashed: {error}", {"status": error.status})
        if len(self._crashes) > self.max_worker_restarts:
            self.state = "failed"
            raise WorkerCrashed(
                f"the worker crashed {len(self._crashes)} times within "
                f"{self.restart_window_s:g} s; giving up: {error}",
                status=error.status,
                stderr=error.stderr,
            )
        self._suspend()
        self.state = "restarting"
        self.restarts += 1
        delay = self.backoff_s * 2 ** (len(self._crashes) - 1)
        ref, generation = self.actor_ref, self._generation
        self._timer = threading.Timer(delay, _tell, args=(ref, _Relaunch(generation)))
        self._timer.daemon = True
        self._timer.start()

    def _suspend(self) -> None:
        if not self._suspended:
            self._suspended = True
            self._report("suspend", SUSPEND_REASON)

    def _unsuspend(self) -> None:
        if self._suspended:
            self._suspended = False
            self._report("unsuspend", SUSPEND_REASON)

    # --- results into the run's zarr group ------------------------------------------

    def _resume_from_fields(self, run: RunFields) -> None:
        name = f"{FIELD_PREFIX}.I"
        if name not in run.arrays():
            return
        stored = run.read(name)
        self.delivered = min(int(stored.size), self._steps)
        self._I[: self.delivered] = stored[: self.delivered]
        snap = f"{FIELD_PREFIX}.snapshot.step"
        if snap in run.arrays():
            self._snapshot_steps = {int(s) for s in run.read(snap)}

    def _store_mesh(self, mesh: fenicsx.MeshFrame) -> None:
        if self._mesh is not None:
            if not (np.array_equal(mesh.x, self._mesh.x) and np.array_equal(mesh.y, self._mesh.y)):
                raise WorkerError(
                    "the restarted worker built a different mesh; its snapshots cannot "
                    "continue the stored ones (was the ranks count changed?)"
                )
            return
        self._mesh = mesh
        run = self._run_fields
        if run is None:
            return
        p = FIELD_PREFIX
        nodes, cells = mesh.nodes, int(mesh.triangles.shape[0])
        node_dims = (f"{p}.mesh", f"{p}.node")
        for axis, values in zip(mesh.axes, (mesh.x, mesh.y), strict=True):
            name = f"{p}.mesh.{axis}"
            if name not in run.arrays():
                run.create(
                    name,
                    dtype=np.float64,
                    units="m",
                    tail_shape=(nodes,),
                    long_name=f"mesh node coordinate {axis}",
                    dims=node_dims,
                )
                run.append(name, values[None, :])
        name = f"{p}.mesh.triangles"
        if name not in run.arrays():
            run.create(
                name,
                dtype=np.int64,
                units="1",
                tail_shape=(cells, 3),
                long_name="mesh triangles (node indices)",
                dims=(f"{p}.mesh", f"{p}.cell", f"{p}.vertex"),
            )
            run.append(name, mesh.triangles[None, :, :])
        run.update_attrs(
            {
                f"{p}.axes": list(mesh.axes),
                f"{p}.far_radius_m": mesh.far,
                f"{p}.dofs": mesh.dofs,
                f"{p}.axisymmetric": mesh.axes[0] == "r",
            }
        )
        for key, units, long_name in (
            ("t", "s", "time"),
            ("E", "V", "applied potential"),
            ("I", "A", "simulated current (anodic positive)"),
        ):
            run.create(
                f"{p}.{key}",
                dtype=np.float64,
                units=units,
                long_name=long_name,
                dims=(f"{p}.step",),
            )

    def _store_samples(self, frame: fenicsx.Samples) -> None:
        end = frame.first + frame.t.size
        if end > self._steps:
            raise WorkerError(f"the worker reported step {end - 1} of a {self._steps}-step job")
        if end <= self.delivered:
            return  # a restarted worker recomputing what is stored already
        skip = max(0, self.delivered - frame.first)
        self._I[self.delivered : end] = frame.I[skip:]
        if self._run_fields is not None:
            p = FIELD_PREFIX
            self._run_fields.append(f"{p}.t", frame.t[skip:])
            self._run_fields.append(f"{p}.E", frame.E[skip:])
            self._run_fields.append(f"{p}.I", frame.I[skip:])
        self.delivered = end
        self._unsuspend()

    def _store_snapshot(self, snap: fenicsx.Snapshot) -> None:
        if snap.step in self._snapshot_steps:
            return
        self._snapshot_steps.add(snap.step)
        run = self._run_fields
        if run is None or self._mesh is None:
            return
        p = FIELD_PREFIX
        if f"{p}.snapshot.c" not in run.arrays():
            dims = (f"{p}.snapshot",)
            run.create(f"{p}.snapshot.t", dtype=np.float64, units="s", dims=dims)
            run.create(f"{p}.snapshot.step", dtype=np.int64, units="1", dims=dims)
            run.create(
                f"{p}.snapshot.c",
                dtype=np.float64,
                units="mol/m^3",
                tail_shape=snap.c.shape,
                long_name="concentrations at the mesh nodes",
                dims=(*dims, f"{p}.species", f"{p}.node"),
                attrs={"species": list(snap.species)},
            )
        run.append(f"{p}.snapshot.t", np.array([snap.t]))
        run.append(f"{p}.snapshot.step", np.array([snap.step], dtype=np.int64))
        run.append(f"{p}.snapshot.c", snap.c[None, :, :])

    # --- the API -----------------------------------------------------------------------

    @exposed
    def status(self) -> dict[str, Any]:
        """Where the solver stands: state, worker pid, steps delivered, restarts."""
        with self._worker_lock:
            worker = self._worker
        return {
            "state": self.state,
            "pid": worker.pid if worker is not None else None,
            "steps": self._steps,
            "delivered": self.delivered,
            "restarts": self.restarts,
            "ranks": self.job.ranks,
            "dofs": self._mesh.dofs if self._mesh is not None else None,
            "last_error": self.last_error,
        }

    @exposed(scope=OPERATE_SCOPE)
    def pause(self) -> None:
        """Halt the worker where it is (SIGSTOP to its process group)."""
        with self._worker_lock:
            if self._worker is not None:
                self._worker.pause()

    @exposed(scope=OPERATE_SCOPE)
    def resume(self) -> None:
        """Continue a halted worker (SIGCONT)."""
        with self._worker_lock:
            if self._worker is not None:
                self._worker.resume()

    def currents(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """``(t, I)`` of the steps delivered so far (s, A)."""
        n = self.delivered
        return self.job.steps.t[:n].copy(), self._I[:n].copy()


def _pump(worker: fenicsx.WorkerProcess, generation: int, ref: pykka.ActorRef[Any]) -> None:
    """Read the worker's frames into the actor's mailbox, then say how it ended."""
    error: WorkerError | None = None
    try:
        for frame in worker.frames():
            if not _tell(ref, _Frame(generation, frame)):
                worker.kill()
                return
    except WorkerError as exc:
        error = exc
    except PhysicsError as exc:  # pragma: no cover - defensive: frames() raises WorkerError
        error = WorkerCrashed(str(exc))
    _tell(ref, _Ended(generation, error))


def _tell(ref: pykka.ActorRef[Any], message: object) -> bool:
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        return False
    return True


def _timings(done: fenicsx.Done) -> dict[str, float]:
    return {
        "setup_s": done.setup_s,
        "stepping_s": done.stepping_s,
        "assemble_s": done.assemble_s,
        "solve_s": done.solve_s,
    }


def solver_child(
    run_id: str,
    scenario: Scenario | Mapping[str, Any] | str,
    *,
    bus: EventBus | None = None,
    fields: FieldStore | None = None,
    shutdown_s: float = 10.0,
    **options: Any,
) -> ChildSpec:
    """The child spec of a run's solver (``transient``: restarted only after a failure)."""
    return ChildSpec(
        "solver",
        Solver,
        (run_id, scenario),
        {"bus": bus, "fields": fields, **options},
        restart="transient",
        shutdown_s=shutdown_s,
        start_timeout_s=180.0,
    )
