"""Acquisition: the procedure of a twin run, which drives an instrument through its protocol.

Each cycle of the protocol, with the rest before it, is one acquisition: the
instrument counts its cycles (a simulated cell fouls per cycle) and every cycle end is
a checkpoint. The instrument publishes the samples once, straight onto
``run/<run>/samples``, through the run's :class:`~actors.instrument.RunStream`: in
*protocol time* (each cycle started at its origin, 0 at the start of the first) with
batch numbers gap-free across the cycles, which is what the twin follows. The
procedure itself hears only the instrument's state events (``instrument/<id>/state``)
and the supervision events, in a thread of its own.

- A deferred pause takes effect at the end of the current cycle (the next cycle is
  not started); an immediate pause stops the instrument at once (cell off). Resuming
  starts the next cycle at its protocol time.
- Suspenders: the instrument link down or its stream stalled suspends the run; the
  instrument actor restarting (its supervisor brought it back) suspends it until it
  runs again. Each clears when the condition does, and the run resumes by itself.
- A safety trip (or an emergency stop) has already turned the cell off: the run is
  aborted, with the trip's reason (also when the trip is found as the next cycle is
  programmed, before the instrument reported it).

Its progress is the protocol time reached, its estimated time to completion the
protocol time left (an instrument runs it in real time).

Nothing here waits on the run actor's thread for long: the current range is computed
(the model simulated, the engine compiled on its first use) and the first cycle begun
in a thread of the procedure's own, so the run answers its commands meanwhile; a stop,
an abort or an immediate pause that comes first is honoured (the cycle is not begun,
or stopped again if it was starting).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pykka

from actors.instrument import InstrumentClient, RunStream
from actors.progress import ProgressMeter
from actors.run import RunContext
from hal.driver import Settings
from hal.errors import HalError, InterlockLatched, SafetyLimitError
from hal.safety import Interlock, SafetyLimits, check_waveform
from physics import PhysicsError, Scenario, simulate_trace
from runtime import topics
from runtime.errors import CallError
from runtime.event_bus import Subscription
from runtime.messages import (
    AcquisitionEnded,
    ActorExited,
    ActorStarted,
    InstrumentLinkDown,
    InstrumentLinkUp,
    SafetyTripped,
    SampleBatch,
    SimulatedTruth,
    StreamResumed,
    StreamStalled,
)
from twins.spec import MeasurementProtocol, protocol_waveform

__all__ = [
    "AcquireProcedure",
    "check_protocol",
    "cycle_origin",
    "distinct_cycles",
    "expected_current",
    "expected_current_range",
    "protocol_waveform",
]

logger = logging.getLogger("galvana.acquire")

# How long closing waits for a batch the instrument is publishing, and for the thread
# that hears the instrument's events.
_CLOSE_S = 2.0

# The model's expected current is computed on at most this many samples of the
# protocol (every m-th sample beyond): enough to resolve a peak, and a spec at a high
# sample rate costs no more to check than one at a low rate.
_ESTIMATE_POINTS = 100_000


def distinct_cycles(protocol: MeasurementProtocol) -> int:
    """How many cycles from the first cover every acquisition the protocol makes: the
    first cycle (no rest before it), then each waveform once with a rest before it;
    later cycles repeat one of these exactly."""
    return min(protocol.cycles, len(protocol.waveforms) + 1)


def expected_current(protocol: MeasurementProtocol, model: Scenario) -> tuple[float, int]:
    """The model's largest current magnitude (A) over ``protocol``'s distinct cycles
    and the (0-based) cycle it comes in; :class:`PhysicsError` when the model cannot run."""
    t_end = float(protocol.cycle_ends()[distinct_cycles(protocol) - 1])
    t, E = _estimate_trace(protocol, t_end)
    # A staircase's samples are followed as the instrument applies and samples them.
    how = protocol.sampling(float(t[0]), t)
    if how is None:
        current = np.abs(simulate_trace(model, t, E).I)
    else:
        current = np.abs(simulate_trace(model, t, E, jump_at=how[0], window=how[1]).I)
    i = int(np.argmax(current))
    cycle = int(np.searchsorted(protocol.cycle_ends(), t[i], side="left"))
    return float(current[i]), min(cycle, protocol.cycles - 1)


def _estimate_trace(
    protocol: MeasurementProtocol, t_end: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The protocol's samples up to ``t_end`` (s), every m-th beyond ``_ESTIMATE_POINTS``
    (all of them with a staircase, whose samples are its steps)."""
    n = math.floor(t_end * protocol.sample_rate + 1e-9) + 1
    if n <= _ESTIMATE_POINTS or protocol.staircases:
        return protocol.trace(t_end)
    step = math.ceil(n / _ESTIMATE_POINTS)
    t = np.arange(0, n, step, dtype=np.float64) / protocol.sample_rate
    return t, protocol.potential_at(t)


def expected_current_range(
    protocol: MeasurementProtocol, model: Scenario, headroom: float = 3.0
) -> float:
    """A current range (A) for measuring ``protocol`` on a cell like ``model``: the model's
    peak current times ``headroom`` (drift, a prior far from the truth). A range chosen
    this way keeps the range-proportional noise of the instrument near its floor.

    The model is simulated from rest over the protocol's distinct cycles only
    (:func:`distinct_cycles`): the cost of a cycle per waveform, whatever the number of
    cycles."""
    peak, _ = expected_current(protocol, model)
    return max(peak * headroom, 1e-9)


def check_protocol(
    protocol: MeasurementProtocol, model: Scenario, limits: SafetyLimits, instrument_id: str
) -> None:
    """Check the whole protocol against an instrument's compliance limits before the cell
    is ever on: every cycle's acquisition (the rest before it included) for the potential
    window and the scan rate, and the model's expected current against ``I_max``.

    Raises :class:`CallError` ``refused`` naming the cycle, the quantity, its value and
    the limit, or ``bad_request`` when the model cannot predict the current.
    """
    total = protocol.cycles
    for k in range(distinct_cycles(protocol)):
        key = _waveform_key(protocol, k)
        try:
            check_waveform(limits, protocol_waveform(protocol, k, 1), Settings())
            # The cycle's own waveform too: a staircase or a square wave advances at a
            # nominal scan rate that its piecewise form (jumps and holds) does not show.
            check_waveform(limits, protocol.waveform_of(k), Settings())
        except SafetyLimitError as exc:
            if exc.limit == "scan_rate":
                what = (
                    f"scan rate {exc.value:g} V/s is above instrument {instrument_id}'s "
                    f"scan_rate_max {limits.scan_rate_max:g} V/s"
                )
            elif exc.limit == "potential_window":
                what = (
                    f"potential {exc.value:g} V is outside instrument {instrument_id}'s "
                    f"window E_min {limits.E_min:g} V .. E_max {limits.E_max:g} V"
                )
            else:
                what = f"{exc.limit} {exc.value:g} is beyond instrument {instrument_id}'s "
                what += f"limit ({exc.accepted})"
            raise CallError(
                "refused", f"cycle {k + 1} of {total} ({key}): {what}; the cell was not turned on"
            ) from None
    try:
        peak, cycle = expected_current(protocol, model)
    except PhysicsError as exc:
        raise CallError("bad_request", f"model: cannot predict the current: {exc}") from None
    if peak > limits.I_max:
        raise CallError(
            "refused",
            f"cycle {cycle + 1} of {total} ({_waveform_key(protocol, cycle)}): the model "
            f"expects a current of {peak:.3g} A, above instrument {instrument_id}'s I_max "
            f"{limits.I_max:g} A; the cell was not turned on",
        )


def _waveform_key(protocol: MeasurementProtocol, cycle: int) -> str:
    if len(protocol.waveforms) == 1:
        return "protocol.waveform"
    return f"protocol.waveform[{cycle % len(protocol.waveforms)}]"


def cycle_origin(protocol: MeasurementProtocol, cycle: int) -> float:
    """Protocol time (s) at which cycle ``cycle``'s acquisition starts: the start of the
    rest before it (0 for the first)."""
    return 0.0 if cycle == 0 else float(protocol.cycle_ends()[cycle - 1])


class AcquireProcedure:
    """Runs a protocol on one instrument for one run (see the module docstring)."""

    def __init__(
        self,
        context: RunContext,
        *,
        instrument: Callable[[], InstrumentClient],
        instrument_id: str,
        protocol: MeasurementProtocol,
        interlock: Interlock,
        current_range: float | Callable[[], float] | None = None,
        truth: Callable[[], dict[str, float] | None] | None = None,
        instrument_path: str = "",
    ) -> None:
        self.context = context
        # Looked up at every use: after a restart the instrument is a new actor.
        self._client = instrument
        # Straight to the interlock: works while the instrument actor is stuck or restarting.
        self._interlock = interlock
        self.instrument_id = instrument_id
        self.protocol = protocol
        # A callable is worked out as the run starts, in the procedure's own thread.
        self._current_range = current_range
        self.current_range: float | None = None if callable(current_range) else current_range
        self._truth = truth
        self._truth_start: dict[str, float] | None = None
        self.instrument_path = instrument_path or f"root/instruments/{instrument_id}"
        self._lock = threading.Lock()
        self._cycle = 0  # the cycle the samples are in
        # Where the instrument publishes the run's samples, for every cycle.
        self._stream = RunStream(context.run_id, on_published=self._published)
        self._acquiring = False
        self._stopping = False  # an end we asked for: not a failure
        self._pause_at_checkpoint = False
        self._finished = False
        self._preparing = False  # the current range is being worked out; cycle 0 follows
        self._held = False  # paused at once: no cycle begins until resumed
        self._due: int | None = None  # a cycle held back by a pause: resuming begins it
        self._resume_at_end = False  # resumed before the paused cycle's end was heard
        # An instrument restart: it went down; since then, it started and its link came up.
        self._down = False
        self._restarted = False
        self._link_back = False
        self._sub: Subscription | None = None
        self._watch: Subscription | None = None
        self._thread: threading.Thread | None = None
        self._progress = ProgressMeter(context.bus, context.run_id)

    # --- the run's calls ---------------------------------------------------------------

    def start(self) -> None:
        bus = self.context.bus
        self._sub = bus.subscribe(
            topics.instrument_state(self.instrument_id), mode="lossless", maxsize=10_000
        )
        self._watch = bus.subscribe(topics.SYSTEM_ACTORS, mode="lossless", maxsize=10_000)
        self._thread = threading.Thread(
            target=self._listen, name=f"acquire-{self.context.run_id}", daemon=True
        )
        self._thread.start()
        self._preparing = True
        threading.Thread(
            target=self._prepare, name=f"acquire-{self.context.run_id}-start", daemon=True
        ).start()

    def _prepare(self) -> None:
        """Work out the current range (it may take long), then begin the first cycle."""
        if callable(self._current_range):
            try:
                self.current_range = self._current_range()
            except Exception as exc:
                logger.exception("run %s: the expected current failed", self.context.run_id)
                with self._lock:
                    self._preparing = False
                    quiet = self._finished
                if not quiet:
                    self.context.report(
                        "failed", f"the expected current range: {type(exc).__name__}: {exc}"
                    )
                return
        with self._lock:
            self._preparing = False
        self._begin(0)

    def pause(self, immediate: bool) -> None:
        if immediate:
            with self._lock:
                self._held = True
            self._halt()
        else:
            with self._lock:
                self._pause_at_checkpoint = True

    def resume(self) -> None:
        with self._lock:
            self._pause_at_checkpoint = False
            self._held = False
            if self._preparing:
                return  # the first cycle is still to begin
            if self._acquiring:
                # A deferred pause withdrawn; or the cycle an immediate pause stopped has
                # not ended yet, and the next one follows its end.
                self._resume_at_end = self._stopping
                return
            next_cycle = self._due if self._due is not None else self._cycle + 1
            self._due = None
        self._next(next_cycle, "the protocol had no cycle left after the pause")

    def _next(self, cycle: int, why_done: str) -> None:
        if cycle >= self.protocol.cycles:
            self.context.report("done", why_done)
        else:
            self._begin(cycle)

    def stop(self) -> None:
        self._halt()
        self._close()

    def abort(self) -> None:
        with self._lock:
            self._stopping = True
        try:
            self._interlock.emergency_stop(f"run {self.context.run_id} aborted")
        finally:
            self._close()

    def close(self) -> None:
        """The run has ended: stop the instrument if it still acquires for it, end the
        run's samples (a batch being published is finished first, none follows) and the
        subscriptions, and wait (briefly) for the thread that hears the instrument."""
        with self._lock:
            halt = self._acquiring and not self._stopping  # stop() or abort() did already
        if halt:
            self._halt()
        self._close()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(_CLOSE_S)
            if thread.is_alive():
                logger.warning(
                    "run %s: the acquisition's event thread did not finish within %s s",
                    self.context.run_id,
                    _CLOSE_S,
                )

    # --- driving the instrument ------------------------------------------------------------

    def _begin(self, cycle: int) -> None:
        """Program cycle ``cycle`` (with the rest before it) and start it; not when the run
        was stopped or aborted meanwhile, nor while it is paused at once (then resuming
        begins it). Called from the procedure's threads, never the run actor's."""
        waveform = protocol_waveform(self.protocol, cycle, 1)
        with self._lock:
            if self._finished:
                return
            if self._held:
                self._due = cycle
                return
            self._cycle = cycle
            self._stopping = False
            self._acquiring = True
        try:
            client = self._client()
            settings = Settings(
                sample_rate=self.protocol.sample_rate, current_range=self.current_range
            )
            client.program(waveform, settings)
            self._truth_start = self._truth() if self._truth is not None else None
            client.start(self._stream, cycle_origin(self.protocol, cycle))
        except (HalError, CallError, pykka.ActorDeadError, pykka.Timeout) as exc:
            with self._lock:
                self._acquiring = False
                quiet = self._finished or self._stopping
            trip = self._interlock.trip_record
            if isinstance(exc, InterlockLatched) and trip is not None:
                # Tripped before the instrument said so (an emergency stop between two
                # cycles): the run is aborted for the trip, as when the instrument reports it.
                self.context.report("aborted", f"safety interlock ({trip.limit}): {trip.detail}")
            elif not quiet:
                self.context.report("failed", f"instrument {self.instrument_id}: {exc}")
            return
        with self._lock:
            # A stop, an abort or an immediate pause that came while the cycle started
            # found nothing acquiring yet, or asked the instrument before it started.
            again = self._finished or self._stopping or self._held
        if again:
            self._stop_instrument()

    def _publish_truth(self, cycle: int) -> None:
        """A simulated cell's hidden parameters over cycle ``cycle``, for people to compare
        with the estimates: the mean of their values as it started and as it ended (a
        drifting cell changes while it is measured, and the estimate is of the cycle)."""
        start, self._truth_start = self._truth_start, None
        end = self._truth() if self._truth is not None else None
        if not start or not end:
            return
        names = tuple(sorted(set(start) & set(end)))
        first = np.array([start[n] for n in names], dtype=float)
        last = np.array([end[n] for n in names], dtype=float)
        truth = SimulatedTruth(self.context.run_id, cycle, names, 0.5 * (first + last), first, last)
        self.context.bus.publish(topics.run_truth(self.context.run_id), truth)

    def _halt(self) -> None:
        with self._lock:
            if not self._acquiring:
                return
            self._stopping = True
        self._stop_instrument()

    def _stop_instrument(self) -> None:
        try:
            self._client().stop()
        except (HalError, CallError, pykka.ActorDeadError, pykka.Timeout) as exc:
            logger.warning("run %s: stopping the instrument: %r", self.context.run_id, exc)

    def _close(self) -> None:
        with self._lock:
            self._finished = True
        if not self._stream.close(_CLOSE_S):
            logger.warning(
                "run %s: a batch held up by backpressure for %s s may still reach its stream",
                self.context.run_id,
                _CLOSE_S,
            )
        for sub in (self._sub, self._watch):
            if sub is not None:
                sub.close()

    # --- what the instrument says -------------------------------------------------------

    def _listen(self) -> None:
        sub, watch = self._sub, self._watch
        if sub is None or watch is None:
            return
        while not self._finished:
            try:
                _, msg = sub.receive(timeout=0.1)
            except TimeoutError:
                msg = None
            except Exception:
                return  # closed
            for _, event in watch.drain():
                self._supervision(event)
            if msg is None or self._finished:
                continue
            try:
                self._handle(msg)
            except Exception as exc:
                logger.exception("run %s: acquisition failed", self.context.run_id)
                self.context.report("failed", f"acquisition failed: {type(exc).__name__}: {exc}")
                return

    def _supervision(self, event: object) -> None:
        if isinstance(event, ActorExited) and event.path == self.instrument_path:
            with self._lock:
                self._acquiring = False
                self._down, self._restarted, self._link_back = True, False, False
            self.context.report("suspend", f"instrument {self.instrument_id} restarting")
        elif isinstance(event, ActorStarted) and event.path == self.instrument_path:
            with self._lock:
                self._restarted = True
            self._maybe_back()

    def _maybe_back(self) -> None:
        """The restarted instrument is usable once it runs *and* its link is up; the two
        events come from different threads, in either order."""
        with self._lock:
            back = self._down and self._restarted and self._link_back
            if back:
                self._down = False
        if back:
            self.context.report("unsuspend", f"instrument {self.instrument_id} restarting")

    def _handle(self, msg: Any) -> None:
        if isinstance(msg, SafetyTripped):
            self._stopping = True
            self.context.report("aborted", f"safety interlock ({msg.limit}): {msg.detail}")
        elif isinstance(msg, AcquisitionEnded):
            self._ended(msg)
        elif isinstance(msg, InstrumentLinkDown):
            self.context.report("suspend", f"instrument {self.instrument_id} link down")
        elif isinstance(msg, InstrumentLinkUp):
            self.context.report("unsuspend", f"instrument {self.instrument_id} link down")
            with self._lock:
                self._link_back = self._down
            self._maybe_back()
        elif isinstance(msg, StreamStalled):
            self.context.report("suspend", f"instrument {self.instrument_id} stream stalled")
        elif isinstance(msg, StreamResumed):
            self.context.report("unsuspend", f"instrument {self.instrument_id} stream stalled")

    def _published(self, batch: SampleBatch) -> None:
        """A batch the instrument published on the run's stream (in its thread): an
        instrument runs the protocol in real time, so what is left of it is the estimate."""
        if len(batch) == 0:
            return
        duration = self.protocol.duration
        t_now = float(batch.t[-1])
        self._progress.update(t_now / duration, duration - t_now, "protocol")

    def _ended(self, msg: AcquisitionEnded) -> None:
        with self._lock:
            self._acquiring = False
            asked = self._stopping
            cycle = self._cycle
            pause = self._pause_at_checkpoint
            self._pause_at_checkpoint = False
            resume = self._resume_at_end and not self._finished
            self._resume_at_end = False
        self._publish_truth(cycle)
        total = self.protocol.cycles
        if msg.reason == "completed":
            if pause and cycle + 1 < total:
                self.context.report("checkpoint", f"end of cycle {cycle + 1} of {total}")
            else:
                self._next(cycle + 1, f"the protocol ran to its end ({total} cycles)")
        elif resume and msg.reason == "stopped":
            self._next(cycle + 1, "the protocol had no cycle left after the pause")
        elif msg.reason == "failed" and not asked:
            self.context.report("failed", f"instrument {self.instrument_id}: {msg.detail}")
        # stopped/aborted/tripped: the run already knows (it asked, or a trip was reported)
