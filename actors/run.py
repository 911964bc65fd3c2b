"""The run actor: a run's state machine, and the supervisor of its solver, twin and calibrator.

A run executes a *procedure* (acquire from an instrument, replay a recorded log) that
the run drives through :class:`Procedure` and that reports back with
:class:`~runtime.messages.ProcedureReport` messages. Commands:

- ``pause(immediate=False)``: a deferred pause takes effect at the procedure's next
  checkpoint (the end of a cycle); an immediate pause halts the procedure now.
- ``resume()``: continue a paused run.
- ``stop()``: a clean finish (the procedure ends, the cell is turned off), marked ``stopped``.
- ``abort()``: the cell off at once, marked ``aborted``.

Suspenders pause a running run when a condition trips (the instrument link is down,
the stream stalled) and resume it when every tripped condition has cleared, unless a
person paused it meanwhile. Every transition is published on ``run/<id>/state`` and
made durable by the recorder before the command returns.

The run actor never waits for slow work, so a command is always answered promptly:
the procedure works in threads of its own, and when it is done the run asks its
children, without waiting (:meth:`runtime.actor.Actor.ask_later`), first to take in
what they received (``take_in``, in start order: the twin cuts the last calibration
segments), then to settle (in reverse start order: the calibrator's last posterior
before the twin's last prediction), completing once they have; a stop or an abort
meanwhile ends the run at once.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

import pykka

from actors.run_state import FINAL_STATES, RunRecord, check_transition
from runtime import topics
from runtime.actor import OPERATE_SCOPE, exposed
from runtime.errors import CallError
from runtime.event_bus import EventBus
from runtime.messages import ApiCall, ProcedureReport, RunState, RunStateChanged, utc_now
from runtime.supervisor import ChildInfo, Supervisor, SupervisorSpec

__all__ = ["Procedure", "ProcedureFactory", "Run", "RunContext"]

logger = logging.getLogger("galvana.run")

SETTLE_S = 120.0
"""How long each child may take to catch up with the samples when the procedure is done."""


class RunContext(Protocol):
    """What a procedure may use of its run."""

    run_id: str
    bus: EventBus

    def report(self, kind: str, reason: str) -> None:
        """Tell the run about a checkpoint, the end, a failure or a suspender."""


class Procedure(Protocol):
    """What a run does. Calls come from the run actor's thread and must not block long."""

    def start(self) -> None:
        """Begin (the run is now ``running``)."""

    def pause(self, immediate: bool) -> None:
        """Pause now (``immediate``) or at the next checkpoint, then report ``checkpoint``."""

    def resume(self) -> None:
        """Continue after a pause."""

    def stop(self) -> None:
        """Finish cleanly and turn the cell off."""

    def abort(self) -> None:
        """Turn the cell off at once and end."""

    def close(self) -> None:
        """Release everything the procedure holds (its subscriptions, its threads, a log it
        opened): the run has ended, however it ended (completed, stopped, aborted, failed,
        interrupted, or its actor crashed). Idempotent; called before the run records
        its final state, so nothing of the procedure reaches a finished run's stream."""


ProcedureFactory = Callable[[RunContext], Procedure]


class _Context:
    def __init__(self, run_id: str, bus: EventBus, ref: pykka.ActorRef[Any]) -> None:
        self.run_id = run_id
        self.bus = bus
        self._ref = ref

    def report(self, kind: str, reason: str) -> None:
        try:
            self._ref.tell(ProcedureReport(self.run_id, kind, reason))  # type: ignore[arg-type]
        except pykka.ActorDeadError:
            logger.info("run %s ended before hearing %s: %s", self.run_id, kind, reason)


class Run(Supervisor):
    """One run: its state machine, its procedure, and its supervised children."""

    def __init__(
        self,
        spec: SupervisorSpec,
        *,
        record: RunRecord,
        procedure: ProcedureFactory,
        recorder: pykka.ActorRef[Any],
        bus: EventBus,
    ) -> None:
        super().__init__(spec)
        self.record = record
        self.run_id = record.id
        self._bus = bus
        self._recorder = recorder
        self._make_procedure = procedure
        self._procedure: Procedure | None = None
        self._suspenders: set[str] = set()
        self._paused_by: str | None = None  # "user" or "suspender"
        self._pause_pending = False
        self._finishing = False  # the procedure is done; the children are settling

    # --- lifecycle -------------------------------------------------------------------

    def on_start(self) -> None:
        super().on_start()
        self._procedure = self._make_procedure(_Context(self.run_id, self._bus, self.actor_ref))
        self._to("running", "started")
        self._procedure.start()

    def on_stop(self) -> None:
        if self.record.state not in FINAL_STATES:
            if self._procedure is not None:
                self._procedure.abort()
            self._to("interrupted", "the daemon shut down while the run was live")
        self._close_procedure()
        super().on_stop()

    def on_failure(self, *exc_info: object) -> None:
        if self._procedure is not None:
            try:
                self._procedure.abort()
            except Exception:
                logger.exception(
                    "run %s: aborting the procedure after a failure raised", self.run_id
                )
        self._close_procedure()
        if self.record.state not in FINAL_STATES:
            exc = exc_info[1] if len(exc_info) > 1 else None
            try:
                self._to("failed", f"the run crashed: {type(exc).__name__}: {exc}")
            except Exception:
                logger.exception("run %s: could not record its failure", self.run_id)
        super().on_failure(*exc_info)

    def _close_procedure(self) -> None:
        if self._procedure is None:
            return
        try:
            self._procedure.close()
        except Exception:
            logger.exception("run %s: closing its procedure raised", self.run_id)

    def _to(self, state: RunState, reason: str) -> None:
        """Make a transition durable, then publish it."""
        check_transition(self.run_id, self.record.state, state)
        event = RunStateChanged(self.run_id, state, self.record.state, reason, utc_now())
        if state in FINAL_STATES:
            # Nothing of the procedure may follow the final state into the stream.
            self._close_procedure()
        # Durable before anyone is told it happened.
        self._recorder.proxy().commit(topics.run_state(self.run_id), event).get()
        self.record = self.record.apply(event)
        logger.info("run %s: %s -> %s (%s)", self.run_id, event.previous, state, reason)
        if state in FINAL_STATES:
            # A transient child that finished: its supervisor forgets it. (Not when the
            # run ends because it is being stopped already: on_stop, on_failure.)
            with contextlib.suppress(pykka.ActorDeadError):
                self.stop()

    # --- the procedure reports ----------------------------------------------------------

    def on_receive(self, message: object) -> object:
        if isinstance(message, ProcedureReport):
            self._procedure_report(message)
            return None
        return super().on_receive(message)

    def _procedure_report(self, report: ProcedureReport) -> None:
        state = self.record.state
        if state in FINAL_STATES:
            return
        if report.kind == "done":
            if not self._finishing:
                self._finishing = True
                children = [c for c in self.which_children() if c.ref is not None]
                steps = [(c, "take_in") for c in children]
                steps += [(c, "settle") for c in reversed(children)]
                self._settle(steps, report.reason or "the procedure finished")
        elif report.kind == "failed":
            self._to("failed", report.reason)
        elif report.kind == "aborted":
            self._to("aborted", report.reason)
        elif report.kind == "checkpoint":
            if self._pause_pending and state == "running":
                self._pause_pending = False
                self._paused_by = "user"
                self._to("paused", f"paused at a checkpoint: {report.reason}")
        elif report.kind == "suspend":
            self._suspend(report.reason)
        elif report.kind == "unsuspend":
            self._unsuspend(report.reason)

    def _settle(self, steps: list[tuple[ChildInfo, str]], reason: str) -> None:
        """Let the children catch up with what the procedure produced, one step after
        the other (a child and what it is asked: ``take_in``, ``settle``), then complete.
        Nothing here waits: each child answers later, and a command in between is
        handled at once (a stop or an abort ends the run)."""
        if self.record.state in FINAL_STATES:
            return
        if not steps:
            self._to("completed", reason)
            return
        (child, method), rest = steps[0], steps[1:]
        assert child.ref is not None

        def settled(outcome: object) -> None:
            quiet = isinstance(outcome, CallError) and outcome.code == "not_found"
            if isinstance(outcome, BaseException) and not quiet:  # not_found: nothing to do
                logger.warning(
                    "run %s: %s did not %s: %r", self.run_id, child.path, method, outcome
                )
            self._settle(rest, reason)

        self.ask_later(child.ref, ApiCall(method, (), {}), settled, timeout=SETTLE_S)

    # --- commands ----------------------------------------------------------------------

    def _procedure_or_fail(self) -> Procedure:
        if self._procedure is None:
            raise CallError("conflict", f"run {self.run_id} has no procedure running")
        return self._procedure

    @exposed
    def status(self) -> dict[str, Any]:
        """The run's record, with suspenders and a pending pause."""
        return {
            **self.record.as_plain(),
            "suspended_by": sorted(self._suspenders),
            "pause_pending": self._pause_pending,
        }

    @exposed(scope=OPERATE_SCOPE)
    def pause(self, immediate: bool = False) -> dict[str, Any]:
        """Pause at the next checkpoint, or now when ``immediate``."""
        check_transition(self.run_id, self.record.state, "paused")
        if self._finishing:
            raise CallError(
                "conflict",
                f"run {self.run_id} has run its whole procedure; it completes once its twin "
                "and calibrator have caught up",
            )
        if immediate:
            self._procedure_or_fail().pause(True)
            self._paused_by = "user"
            self._pause_pending = False
            self._to("paused", "paused at once on request")
        else:
            self._pause_pending = True
            self._procedure_or_fail().pause(False)
        return self.status()

    @exposed(scope=OPERATE_SCOPE)
    def resume(self) -> dict[str, Any]:
        """Continue a paused run (refused while a suspender is still tripped)."""
        if self._pause_pending and self.record.state == "running":
            self._pause_pending = False  # a deferred pause not yet reached is withdrawn
            self._procedure_or_fail().resume()
            return self.status()
        check_transition(self.run_id, self.record.state, "running")
        if self._suspenders:
            raise CallError(
                "conflict",
                f"run {self.run_id} is suspended by {', '.join(sorted(self._suspenders))}; "
                "it resumes by itself when that clears",
            )
        self._paused_by = None
        self._procedure_or_fail().resume()
        self._to("running", "resumed on request")
        return self.status()

    @exposed(name="stop", scope=OPERATE_SCOPE)
    def stop_run(self, reason: str = "stopped on request") -> dict[str, Any]:
        """Finish the run cleanly (cell off); it ends ``stopped``."""
        check_transition(self.run_id, self.record.state, "stopped")
        self._procedure_or_fail().stop()
        self._to("stopped", reason)
        return self.record.as_plain()

    @exposed(scope=OPERATE_SCOPE)
    def abort(self, reason: str = "aborted on request") -> dict[str, Any]:
        """Turn the cell off at once; the run ends ``aborted``. Idempotent: the trip of an
        abort's cell-off may have aborted the run just before."""
        if self.record.state == "aborted":
            return self.record.as_plain()
        check_transition(self.run_id, self.record.state, "aborted")
        self._procedure_or_fail().abort()
        self._to("aborted", reason)
        return self.record.as_plain()

    # --- suspenders ----------------------------------------------------------------------

    def _suspend(self, reason: str) -> None:
        first = not self._suspenders
        self._suspenders.add(reason)
        if first and self.record.state == "running":
            self._procedure_or_fail().pause(True)
            self._paused_by = "suspender"
            self._to("paused", f"suspended: {reason}")

    def _unsuspend(self, reason: str) -> None:
        self._suspenders.discard(reason)
        if (
            not self._suspenders
            and self.record.state == "paused"
            and self._paused_by == "suspender"
        ):
            self._paused_by = None
            self._procedure_or_fail().resume()
            self._to("running", f"resumed: {reason} cleared")
