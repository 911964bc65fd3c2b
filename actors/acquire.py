"""Acquisition: the procedure of a twin run, which drives an instrument through its protocol.

The protocol (every cycle, and the rests between them) is programmed as one piecewise
waveform, so the instrument runs it without a gap; its samples arrive on
``instrument/<id>/samples`` and are published again on ``run/<run>/samples`` in
*protocol time* (0 at the start of the first cycle) with gap-free batch numbers,
which is what the twin follows.

- Checkpoints are the ends of cycles. A deferred pause stops the instrument (cell
  off) at the next one; an immediate pause stops it at once. Resuming programs what
  is left of the protocol from the next cycle on, at its protocol time.
- Suspenders: the instrument link down or its stream stalled suspends the run; the
  instrument actor restarting (its supervisor brought it back) suspends it until it
  runs again. Each clears when the condition does, and the run resumes by itself.
- A safety trip (or an emergency stop) has already turned the cell off: the run is
  aborted, with the trip's reason.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from actors.instrument import InstrumentClient
from actors.run import RunContext
from hal.driver import Settings
from hal.errors import HalError
from hal.waveform import Piecewise
from physics.waveforms import segments
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
    StreamResumed,
    StreamStalled,
)
from twins.spec import Protocol

__all__ = ["AcquireProcedure", "protocol_waveform"]

logger = logging.getLogger("galvana.acquire")


def protocol_waveform(protocol: Protocol, first_cycle: int = 0) -> Piecewise:
    """The protocol from cycle ``first_cycle`` on as one piecewise waveform starting at 0 s."""
    starts = protocol.cycle_starts()
    t0 = float(starts[first_cycle])
    points: list[tuple[float, float]] = []
    for k in range(first_cycle, protocol.cycles):
        pieces, _, E_initial = segments(protocol.waveform_of(k), start_jump=False)
        t = float(starts[k]) - t0
        if not points:
            points.append((0.0, E_initial))
        elif points[-1][1] != E_initial or points[-1][0] != t:
            # The rest before this cycle holds its first potential.
            if points[-1][1] != E_initial:
                points.append((points[-1][0], E_initial))
            points.append((t, E_initial))
        for piece in pieces:
            if piece.E_from != points[-1][1]:
                points.append((t, piece.E_from))
            t += piece.duration
            points.append((t, piece.E_to))
    return Piecewise(tuple(points))


class AcquireProcedure:
    """Runs a protocol on one instrument for one run (see the module docstring)."""

    def __init__(
        self,
        context: RunContext,
        instrument: InstrumentClient,
        instrument_id: str,
        protocol: Protocol,
        instrument_path: str = "",
    ) -> None:
        self.context = context
        self.instrument = instrument
        self.instrument_id = instrument_id
        self.protocol = protocol
        self.instrument_path = instrument_path or f"root/instruments/{instrument_id}"
        self._ends = protocol.cycle_ends()
        self._starts = protocol.cycle_starts()
        self._lock = threading.Lock()
        self._cycle = 0  # the cycle the samples are in
        self._offset = 0.0  # protocol time of this acquisition's t = 0
        self._seq = 0
        self._acquiring = False
        self._stopping = False  # an end we asked for: not a failure
        self._pause_at_checkpoint = False
        self._finished = False
        self._sub: Subscription | None = None
        self._watch: Subscription | None = None
        self._thread: threading.Thread | None = None

    # --- the run's calls ---------------------------------------------------------------

    def start(self) -> None:
        bus = self.context.bus
        self._sub = bus.subscribe(
            f"instrument/{self.instrument_id}/**", mode="lossless", maxsize=100_000
        )
        self._watch = bus.subscribe("system/actors", mode="lossless", maxsize=10_000)
        self._thread = threading.Thread(
            target=self._pump, name=f"acquire-{self.context.run_id}", daemon=True
        )
        self._thread.start()
        self._begin(0)

    def pause(self, immediate: bool) -> None:
        if immediate:
            self._halt()
        else:
            with self._lock:
                self._pause_at_checkpoint = True

    def resume(self) -> None:
        with self._lock:
            self._pause_at_checkpoint = False
            acquiring = self._acquiring
            next_cycle = self._cycle + 1
        if acquiring:
            return  # a deferred pause withdrawn before it was reached
        if next_cycle >= self.protocol.cycles:
            self.context.report("done", "the protocol had no cycle left after the pause")
            return
        self._begin(next_cycle)

    def stop(self) -> None:
        self._halt()
        self._close()

    def abort(self) -> None:
        with self._lock:
            self._stopping = True
        try:
            self.instrument.emergency_stop(f"run {self.context.run_id} aborted")
        finally:
            self._close()

    # --- driving the instrument ------------------------------------------------------------

    def _begin(self, cycle: int) -> None:
        """Program the protocol from ``cycle`` on and start it."""
        waveform = protocol_waveform(self.protocol, cycle)
        with self._lock:
            self._cycle = cycle
            self._offset = float(self._starts[cycle])
            self._stopping = False
            self._acquiring = True
        try:
            self.instrument.program(waveform, Settings(sample_rate=self.protocol.sample_rate))
            self.instrument.start()
        except (HalError, CallError) as exc:
            with self._lock:
                self._acquiring = False
            self.context.report("failed", f"instrument {self.instrument_id}: {exc}")

    def _halt(self) -> None:
        with self._lock:
            if not self._acquiring:
                return
            self._stopping = True
        try:
            self.instrument.stop()
        except HalError as exc:
            logger.warning("run %s: stopping the instrument: %s", self.context.run_id, exc)

    def _close(self) -> None:
        with self._lock:
            self._finished = True
        for sub in (self._sub, self._watch):
            if sub is not None:
                sub.close()

    # --- what the instrument says -------------------------------------------------------

    def _pump(self) -> None:
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
            if msg is None:
                continue
            try:
                self._handle(msg)
            except Exception as exc:
                logger.exception("run %s: acquisition pump failed", self.context.run_id)
                self.context.report("failed", f"acquisition failed: {type(exc).__name__}: {exc}")
                return

    def _supervision(self, event: object) -> None:
        if isinstance(event, ActorExited) and event.path == self.instrument_path:
            with self._lock:
                self._acquiring = False
            self.context.report("suspend", f"instrument {self.instrument_id} restarting")
        elif isinstance(event, ActorStarted) and event.path == self.instrument_path:
            self.context.report("unsuspend", f"instrument {self.instrument_id} restarting")

    def _handle(self, msg: Any) -> None:
        if isinstance(msg, SampleBatch):
            self._samples(msg)
        elif isinstance(msg, SafetyTripped):
            self._stopping = True
            self.context.report("aborted", f"safety interlock ({msg.limit}): {msg.detail}")
        elif isinstance(msg, AcquisitionEnded):
            self._ended(msg)
        elif isinstance(msg, InstrumentLinkDown):
            self.context.report("suspend", f"instrument {self.instrument_id} link down")
        elif isinstance(msg, InstrumentLinkUp):
            self.context.report("unsuspend", f"instrument {self.instrument_id} link down")
        elif isinstance(msg, StreamStalled):
            self.context.report("suspend", f"instrument {self.instrument_id} stream stalled")
        elif isinstance(msg, StreamResumed):
            self.context.report("unsuspend", f"instrument {self.instrument_id} stream stalled")

    def _samples(self, batch: SampleBatch) -> None:
        if len(batch) == 0:
            return
        t = np.asarray(batch.t) + self._offset
        out = SampleBatch(
            self.context.run_id,
            self._seq,
            t,
            np.asarray(batch.E),
            np.asarray(batch.I),
            np.asarray(batch.flags),
        )
        self._seq += 1
        self.context.bus.publish(f"run/{self.context.run_id}/samples", out, timeout=None)
        # Cycle ends crossed by this batch are checkpoints.
        while self._cycle < self.protocol.cycles - 1 and t[-1] >= self._ends[self._cycle]:
            finished = self._cycle
            with self._lock:
                self._cycle += 1
                pause = self._pause_at_checkpoint
                if pause:
                    self._pause_at_checkpoint = False
                    self._cycle = finished  # resume continues with the cycle after it
            if pause:
                self._halt()
                self.context.report(
                    "checkpoint", f"end of cycle {finished + 1} of {self.protocol.cycles}"
                )
                return

    def _ended(self, msg: AcquisitionEnded) -> None:
        with self._lock:
            self._acquiring = False
            asked = self._stopping
        if msg.reason == "completed":
            self.context.report(
                "done", f"the protocol ran to its end ({self.protocol.cycles} cycles)"
            )
        elif msg.reason in ("failed",) and not asked:
            self.context.report("failed", f"instrument {self.instrument_id}: {msg.detail}")
        # stopped/aborted/tripped: the run already knows (it asked, or a trip was reported)
