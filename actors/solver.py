"""The solver actor for the FEniCSx engine: runs a scenario in a supervised worker process.

The 2D engine's numerics run in a separate process (``physics.engines.fenicsx``'s
worker, under the interpreter that has DOLFINx, possibly as MPI ranks), so a crash
in native code takes down the worker, never the daemon. This actor is that
process's supervisor, and the source of its run's data:

- it starts the worker (once the run's procedure says go, :class:`SolverControl`) and
  reads its frames on a pump thread; the currents are published as the run's sample
  batches (the reported samples, in simulated time), the mesh and the field snapshots
  as :class:`~runtime.messages.FieldMesh` and :class:`~runtime.messages.FieldSnapshot`
  on ``run/<id>/fields``: the recorder writes them all (this actor writes no store);
- the run's progress, estimated from the worker's first steps (a probe) and then its
  step rate; when the worker is done, its mass balance
  (:class:`~runtime.messages.ConservationChecked`; a failed one fails the run) and
  its stability figures (:class:`~runtime.messages.SolverSummary`);
- pause, resume and stop through :class:`SolverControl`: a paused worker is halted
  (SIGSTOP) and what it had sent is held back, so nothing is published while the run
  is paused; a deferred pause takes effect at the next batch of steps (a checkpoint);
- each line the worker writes on stderr goes to the run's log (a
  :class:`~runtime.messages.SystemNote` on ``run/<id>/log``, recorded with the run);
- a worker that crashes, is killed or writes garbage is restarted after a backoff.
  Meanwhile the run is *suspended* (its run actor pauses it with the reason
  :data:`SUSPEND_REASON`) and resumed once the new worker has caught up: the
  restarted worker recomputes from the start (the discretization is deterministic)
  and only samples not yet published are, so no sample is lost or repeated;
- more than ``max_worker_restarts`` crashes within ``restart_window_s`` make the actor
  fail, and its supervisor's policy decides; a new incarnation reads what the run's
  stream holds already (after the recorder's flush) and publishes only what follows;
- on shutdown the worker gets SIGTERM and, if still there after ``stop_grace_s``,
  SIGKILL; when the supervisor abandons the actor (shutdown timeout),
  :meth:`Solver.on_kill` kills the worker's whole process group at once.

A run's spec puts it under the run with :func:`solver_child`.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pykka

from actors.progress import ProgressMeter, WorkRate
from actors.run_state import FINAL_STATES
from physics.engines import fenicsx
from physics.errors import PhysicsError, ScenarioError, WorkerCrashed, WorkerError
from physics.scenario import Scenario, load_scenario
from physics.simulation import engine_of
from runtime import topics
from runtime.actor import OPERATE_SCOPE, Actor, exposed
from runtime.codec import decode, peek_tag
from runtime.errors import MessageError
from runtime.event_bus import EventBus
from runtime.event_store import EventStore
from runtime.messages import (
    FieldMesh,
    FieldSnapshot,
    ProcedureReport,
    RunStateChanged,
    SampleBatch,
    SolverSummary,
    SystemNote,
    utc_now,
)
from runtime.supervisor import Backoff, ChildSpec

__all__ = [
    "FIELD_PREFIX",
    "SUSPEND_REASON",
    "WORKER_BACKOFF",
    "Solver",
    "SolverControl",
    "solver_child",
]

logger = logging.getLogger("galvana.solver")

SUSPEND_REASON = "the solver's worker process is restarting"
WORKER_BACKOFF = Backoff(initial_s=0.5, max_s=8.0, factor=2.0, jitter=0.0)
"""Delay before relaunching a crashed worker: 0.5 s, then doubling with each crash
within the restart window."""
"""The suspender a worker crash trips (and its recovery clears) on the run."""

FIELD_PREFIX = "fenicsx"
"""Prefix of the 2D engine's field arrays in the run's zarr group."""

# At most this many stderr lines per worker go to the run's event log (all go to
# the logger): a worker that floods stderr must not flood the log.
_STDERR_NOTES = 500

# The estimate rests on the first steps (a probe) until this fraction is done.
_PROBE_FRACTION = 0.1

# The wire tags of what a new incarnation counts in the run's stream.
_COUNTED_TAGS = ("samples", "fields.mesh", "fields.snapshot", "run.state")


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


class _Wake:
    """The control changed: look at it again."""


_WAKE = _Wake()


class SolverControl:
    """What a run's procedure tells its solver, kept outside the solver so that every
    incarnation of it sees the same: whether to run at all (``go``), whether the run
    is paused, pauses at the next checkpoint, or is halted (stopped or aborted: nothing
    more is published). Thread-safe; each change wakes the solver."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = False
        self.paused = False
        self.pause_pending = False
        self.halted = False
        self.suspended = False  # the solver's own suspension (a worker restarting)
        self.ref: pykka.ActorRef[Any] | None = None

    def _changed(self) -> None:
        ref = self.ref
        if ref is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(_WAKE)

    def go(self) -> None:
        """Start the worker (the run is running)."""
        with self._lock:
            self.started = True
        self._changed()

    def pause(self, immediate: bool) -> None:
        """Halt the worker now, or at the next checkpoint."""
        with self._lock:
            if immediate:
                self.paused, self.pause_pending = True, False
            else:
                self.pause_pending = True
        self._changed()

    def resume(self) -> None:
        """Continue (a pending pause is withdrawn)."""
        with self._lock:
            self.paused = self.pause_pending = False
        self._changed()

    def halt(self) -> None:
        """The run ends: publish nothing more, and stop the worker."""
        with self._lock:
            self.halted = True
        self._changed()

    def take_checkpoint(self) -> bool:
        """A checkpoint is reached: True (and paused from now) when a pause was pending."""
        with self._lock:
            if not self.pause_pending:
                return False
            self.paused, self.pause_pending = True, False
            return True


class Solver(Actor):
    """Runs ``scenario`` (engine fenicsx) for run ``run_id`` in a supervised worker.

    ``bus`` carries what it publishes (None: results are kept in memory only).
    ``snapshots`` field snapshots are taken, evenly spaced. ``ranks`` and
    ``mesh_refine`` override the scenario's ``numerics``. ``batch`` is the number of
    steps per sample frame. A worker silent for ``stall_timeout_s`` (not paused) is
    killed and restarted like a crashed one. ``report_done`` tells the run it is
    complete when the worker finishes (a run whose procedure is the simulation itself),
    or failed when its mass balance is off by more than ``tolerance`` (relative).
    ``control``: what the run's procedure says (None: start at once, never paused).
    ``store`` and ``recorder``: where a restarted incarnation finds what was published.
    """

    def __init__(
        self,
        run_id: str,
        scenario: Scenario | Mapping[str, Any] | str,
        *,
        bus: EventBus | None = None,
        snapshots: int = 0,
        ranks: int | None = None,
        mesh_refine: float | None = None,
        batch: int = 100,
        max_worker_restarts: int = 3,
        restart_window_s: float = 60.0,
        backoff: Backoff = WORKER_BACKOFF,
        stop_grace_s: float = 2.0,
        stall_timeout_s: float | None = 600.0,
        report_done: bool = False,
        tolerance: float = 1e-6,
        control: SolverControl | None = None,
        store: EventStore | None = None,
        recorder: pykka.ActorRef[Any] | None = None,
    ) -> None:
        super().__init__()
        self.run_id = run_id
        self._scenario_source = scenario
        self.bus = bus
        self.snapshots = snapshots
        self.ranks = ranks
        self.mesh_refine = mesh_refine
        self.batch = batch
        self.max_worker_restarts = max_worker_restarts
        self.restart_window_s = restart_window_s
        self.backoff = backoff
        self._rng = random.Random()
        self.stop_grace_s = stop_grace_s
        self.stall_timeout_s = stall_timeout_s
        self.report_done = report_done
        self.tolerance = tolerance
        self.control = control or SolverControl()
        if control is None:
            self.control.started = True
        self._store = store
        self._recorder = recorder
        self.state = "starting"  # waiting, running, restarting, finished, failed, stopped
        self._generation = 0
        self._worker: fenicsx.WorkerProcess | None = None
        self._worker_lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._crashes: deque[float] = deque()
        self.restarts = 0
        self._suspended = False
        self._notes = 0
        self.delivered = 0  # steps whose currents are known to this incarnation
        self._published = 0  # reported samples published (by every incarnation)
        self._seq = 0  # the next sample batch's number
        self._snapshot_steps: set[int] = set()
        self._mesh_published = False
        self._mesh: fenicsx.MeshFrame | None = None
        self._I = np.zeros(0)
        self._held: list[fenicsx.Frame] = []  # frames that came while the run was paused
        self._halted_worker = False
        self._rate = WorkRate()
        self._probe_started = False
        self.last_error = ""
        self.hello: fenicsx.HelloFrame | None = None
        self.done: fenicsx.Done | None = None
        self.balance_passed: bool | None = None

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
        self._progress = ProgressMeter(self.bus, self.run_id) if self.bus is not None else None
        self._count_published()
        if self._published:
            # An earlier incarnation published these samples: the run stays suspended
            # until this one has caught up.
            self._suspend()
        self.control.ref = self.actor_ref
        if self.control.started and not self.control.halted:
            self._launch()
        else:
            self.state = "waiting"

    def on_stop(self) -> None:
        self._cancel_timer()
        worker = self._take_worker()
        if worker is not None:
            worker.resume()  # a halted worker cannot act on SIGTERM
            worker.terminate()
            deadline = time.monotonic() + self.stop_grace_s
            while worker.returncode is None and time.monotonic() < deadline:
                time.sleep(0.02)
            worker.close()  # SIGKILL to the group if it is still there
        if self.state not in ("finished", "failed"):
            self.state = "stopped"

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

    def _count_published(self) -> None:
        """What earlier incarnations of this solver published for the run, read from the
        run's stream once the recorder has written everything published so far."""
        if self._store is None or self.link is None or self.link.incarnation <= 1:
            return
        if self._recorder is not None:
            self._recorder.proxy().flush().get(timeout=60)
        for _, data in self._store.read(topics.run_stream(self.run_id)):
            try:
                if peek_tag(data) not in _COUNTED_TAGS:
                    continue
                event = decode(data)
            except MessageError:
                continue
            if isinstance(event, SampleBatch):
                self._published += len(event)
                self._seq = event.seq + 1
            elif isinstance(event, FieldSnapshot):
                self._snapshot_steps.add(event.step)
            elif isinstance(event, FieldMesh):
                self._mesh_published = True
            elif isinstance(event, RunStateChanged) and event.state in FINAL_STATES:
                break

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
        self._halted_worker = False
        self._note("info", f"worker started (pid {worker.pid}, {self.job.ranks} rank(s))")
        ref = self.actor_ref
        threading.Thread(
            target=_pump, args=(worker, generation, ref), name=f"solver-{self.run_id}", daemon=True
        ).start()
        if self.control.paused and not self.control.suspended:
            self._halt_worker()

    def _take_worker(self) -> fenicsx.WorkerProcess | None:
        with self._worker_lock:
            worker, self._worker = self._worker, None
        return worker

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _halt_worker(self) -> None:
        with self._worker_lock:
            if self._worker is not None and not self._halted_worker:
                self._worker.pause()
                self._halted_worker = True
        self._rate.paused()

    def _continue_worker(self) -> None:
        with self._worker_lock:
            if self._worker is not None and self._halted_worker:
                self._worker.resume()
                self._halted_worker = False
        if self._probe_started:
            self._rate.running()

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

    def _publish(self, topic: str, msg: object) -> None:
        if self.bus is not None:
            self.bus.publish(topic, msg, timeout=None)

    def _report(self, kind: str, reason: str) -> None:
        link = self.link
        if link is None or link.supervisor is None:
            return
        with contextlib.suppress(pykka.ActorDeadError):
            link.supervisor.tell(ProcedureReport(self.run_id, kind, reason))  # type: ignore[arg-type]

    # --- messages --------------------------------------------------------------------

    def on_receive(self, message: object) -> object:
        if message is _WAKE:
            self._controlled()
            return None
        # Messages of an earlier worker (its generation) arrive late and are ignored.
        current = getattr(message, "generation", None) == self._generation
        if isinstance(message, _Frame) and current:
            if self.control.halted:
                return None
            if self.control.paused and not self._suspended:
                self._held.append(message.frame)  # nothing is published while paused
            else:
                self._frame(message.frame)
        elif isinstance(message, _Ended) and current:
            self._ended(message.error)
        elif isinstance(message, _Relaunch) and current and self.state == "restarting":
            self._launch()
        return None

    def _controlled(self) -> None:
        """Act on what the control says now."""
        control = self.control
        if control.halted:
            self._held.clear()
            self._halt_worker()
            return
        if self.state == "waiting" and control.started:
            self._launch()
            return
        if control.paused and not self._suspended:
            self._halt_worker()
            return
        self._continue_worker()
        held, self._held = self._held, []
        for frame in held:
            if self.control.paused:
                self._held.append(frame)  # a checkpoint among them paused again
            else:
                self._frame(frame)

    def _frame(self, frame: fenicsx.Frame) -> None:
        if isinstance(frame, fenicsx.HelloFrame):
            self.hello = frame
        elif isinstance(frame, fenicsx.MeshFrame):
            self._take_mesh(frame)
        elif isinstance(frame, fenicsx.SamplesFrame):
            self._take_samples(frame)
        elif isinstance(frame, fenicsx.SnapshotFrame):
            self._take_snapshot(frame)
        elif isinstance(frame, fenicsx.Done):
            self._finished(frame)

    def _ended(self, error: WorkerError | None) -> None:
        worker = self._take_worker()
        if worker is not None:
            worker.close()
        if error is None or self.control.halted:
            return  # finished (Done came first), or stopped on purpose
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
        self._held.clear()  # the new worker sends them again
        self.delivered = 0
        self.state = "restarting"
        self.restarts += 1
        delay = self.backoff.delay(len(self._crashes), self._rng)
        ref, generation = self.actor_ref, self._generation
        self._timer = threading.Timer(delay, _tell, args=(ref, _Relaunch(generation)))
        self._timer.daemon = True
        self._timer.start()

    def _suspend(self) -> None:
        if not self._suspended:
            self._suspended = True
            self.control.suspended = True
            self._report("suspend", SUSPEND_REASON)

    def _unsuspend(self) -> None:
        if self._suspended:
            self._suspended = False
            self.control.suspended = False
            self._report("unsuspend", SUSPEND_REASON)
            if self.control.paused:
                self._halt_worker()  # a person paused the run meanwhile

    # --- results, published ------------------------------------------------------------

    def _take_mesh(self, mesh: fenicsx.MeshFrame) -> None:
        if self._mesh is not None:
            if not (np.array_equal(mesh.x, self._mesh.x) and np.array_equal(mesh.y, self._mesh.y)):
                raise WorkerError(
                    "the restarted worker built a different mesh; its snapshots cannot "
                    "continue the published ones (was the ranks count changed?)"
                )
            return
        self._mesh = mesh
        if self._mesh_published:
            return
        self._mesh_published = True
        attrs: dict[str, object] = {
            "far_radius_m": mesh.far,
            "dofs": mesh.dofs,
            "axisymmetric": mesh.axes[0] == "r",
        }
        self._publish(
            topics.run_fields(self.run_id),
            FieldMesh(
                self.run_id,
                FIELD_PREFIX,
                mesh.axes,
                np.stack([mesh.x, mesh.y]),
                np.ascontiguousarray(mesh.triangles, dtype=np.int64),
                attrs,
            ),
        )

    def _take_samples(self, frame: fenicsx.SamplesFrame) -> None:
        end = frame.first + frame.t.size
        if end > self._steps:
            raise WorkerError(f"the worker reported step {end - 1} of a {self._steps}-step job")
        if not self._probe_started:
            self._probe_started = True
            self._rate.running()
        self._I[frame.first : end] = frame.I
        self._rate.add(max(0, end - max(frame.first, self.delivered)))
        self.delivered = max(self.delivered, end)
        steps = self.job.steps
        ready = int(np.searchsorted(steps.output, self.delivered, side="left"))
        if ready > self._published:
            part, lo = steps.window(self._published, ready)
            current = part.sampled(self._I[lo : lo + part.count])
            picked = steps.output[self._published : ready]
            batch = SampleBatch(
                self.run_id,
                self._seq,
                steps.t[picked],
                steps.E[picked],
                current,
                np.zeros(picked.size, dtype=np.uint8),
            )
            self._seq += 1
            self._published = ready
            self._publish(topics.run_samples(self.run_id), batch)
            self._unsuspend()
            if self.control.take_checkpoint():
                self._halt_worker()
                self._report("checkpoint", f"step {self.delivered} of {self._steps}")
        self._progress_update()

    def _progress_update(self) -> None:
        if self._progress is None or self._suspended:
            return
        fraction = self.delivered / self._steps
        basis = "probe" if fraction < _PROBE_FRACTION else "step rate"
        self._progress.update(fraction, self._rate.eta_s(self._steps - self.delivered), basis)

    def _take_snapshot(self, snap: fenicsx.SnapshotFrame) -> None:
        if snap.step in self._snapshot_steps or self._mesh is None:
            return
        self._snapshot_steps.add(snap.step)
        self._publish(
            topics.run_fields(self.run_id),
            FieldSnapshot(self.run_id, FIELD_PREFIX, snap.step, snap.t, snap.species, snap.c),
        )

    def _finished(self, done: fenicsx.Done) -> None:
        from actors.simulation import balance_failure, conservation_checked  # noqa: PLC0415

        self.done = done
        self.state = "finished"
        self._unsuspend()
        self._note("info", f"worker finished {done.steps} steps", _timings(done))
        failure = ""
        if done.balance is not None:
            check = conservation_checked(self.run_id, "fenicsx", done.balance, self.tolerance)
            self.balance_passed = check.passed
            self._publish(topics.run_checks(self.run_id), check)
            failure = "" if check.passed else balance_failure(check)
        else:
            self._note("warning", "the worker sent no mass balance; the run is not checked")
        stability = {
            "steps": done.steps,
            "rejected_steps": 0,
            "newton": "none: the discretized problem is linear, one LU solve per step",
            "bdf_order_max": 2,
            "worker_restarts": self.restarts,
            "dofs": self._mesh.dofs if self._mesh is not None else 0,
            "ranks": self.job.ranks,
            "conservation": "checked" if done.balance is not None else "not available",
        }
        self._publish(
            topics.run_checks(self.run_id),
            SolverSummary(self.run_id, "fenicsx", stability, _timings(done)),
        )
        if self._progress is not None:
            self._progress.update(1.0, 0.0, "step rate", force=True)
        if not self.report_done:
            return
        if failure:
            self._report("failed", failure)
        else:
            self._report("done", f"the simulation ran its {done.steps} time steps")

    # --- the API -----------------------------------------------------------------------

    @exposed
    def status(self) -> dict[str, Any]:
        """Where the solver stands: state, worker pid, steps delivered, samples published,
        restarts."""
        with self._worker_lock:
            worker = self._worker
        return {
            "state": self.state,
            "pid": worker.pid if worker is not None else None,
            "steps": self._steps,
            "delivered": self.delivered,
            "published": self._published,
            "restarts": self.restarts,
            "ranks": self.job.ranks,
            "dofs": self._mesh.dofs if self._mesh is not None else None,
            "last_error": self.last_error,
        }

    @exposed(scope=OPERATE_SCOPE)
    def pause(self) -> None:
        """Halt the worker where it is (SIGSTOP to its process group)."""
        self._halt_worker()

    @exposed(scope=OPERATE_SCOPE)
    def resume(self) -> None:
        """Continue a halted worker (SIGCONT)."""
        self._continue_worker()

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
    shutdown_s: float = 10.0,
    **options: Any,
) -> ChildSpec:
    """The child spec of a run's solver (``transient``: restarted only after a failure)."""
    return ChildSpec(
        "solver",
        Solver,
        (run_id, scenario),
        {"bus": bus, **options},
        restart="transient",
        shutdown_s=shutdown_s,
        start_timeout_s=180.0,
    )
