"""The instrument actor: owns one driver, streams its samples onto the event bus.

Topics (``<id>`` is the instrument id, ``<run>`` the run an acquisition is bound to):

``run/<run>/samples``
    :class:`~runtime.messages.SampleBatch` of an acquisition bound to a run, published
    once, straight onto the run's stream, through the run's :class:`RunStream`: in the
    run's time (the acquisition's ``origin_s`` added) and numbered without gaps across
    every acquisition of the run; ``lost`` says how many samples the instrument or its
    link lost before each batch.
``instrument/<id>/samples``
    the same for an acquisition bound to no run (``run_id`` ""), ``seq`` from 0 per
    acquisition.
``instrument/<id>/state``
    :class:`~runtime.messages.InstrumentLinkDown` / ``InstrumentLinkUp`` (a bound
    run is suspended while the link is down, not failed),
    :class:`~runtime.messages.StreamStalled` / ``StreamResumed`` (the watchdog),
    :class:`~runtime.messages.SafetyTripped` (the cell is off; abort the run),
    :class:`~runtime.messages.AcquisitionStarted` / ``AcquisitionEnded``,
    :class:`~runtime.messages.ReplyDropped` (garbage from the instrument, with its bytes).

Threads: the actor's own thread takes commands (program, start, stop, status); a
link thread connects (with backoff), streams batches through the safety interlock
onto the bus and reconnects when the link drops; a watchdog thread reports a stream
that stalls. The emergency stop bypasses all three: :meth:`InstrumentClient.emergency_stop`
calls the interlock from the caller's thread, which works even while the actor or
the link thread is stuck inside a driver call.

Command handlers return an error instead of raising it (an exception would end
the actor, OTP-style, and a refused command is no crash); :class:`InstrumentClient`
raises it in the caller's thread.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pykka

from hal.driver import Driver, Samples, Settings
from hal.errors import HalError, InterlockLatched, LinkError
from hal.safety import Interlock, Trip
from runtime import topics
from runtime.actor import Actor
from runtime.errors import BusError
from runtime.event_bus import EventBus
from runtime.messages import (
    AcquisitionEnded,
    AcquisitionStarted,
    InstrumentEndReason,
    InstrumentLinkDown,
    InstrumentLinkUp,
    ReplyDropped,
    SafetyTripped,
    SampleBatch,
    StreamResumed,
    StreamStalled,
    utc_now,
)
from runtime.supervisor import Backoff
from runtime.waveforms import Waveform, duration

__all__ = [
    "RECONNECT_BACKOFF",
    "InstrumentActor",
    "InstrumentClient",
    "InstrumentConfig",
    "InstrumentStatus",
    "RunStream",
    "start_instrument",
]

logger = logging.getLogger("galvana.actors.instrument")

_ID = re.compile(r"^[A-Za-z0-9_.-]+$")


RECONNECT_BACKOFF = Backoff(initial_s=0.05, max_s=2.0, factor=2.0, jitter=0.2)
"""Delay before reconnect attempt ``n``, jittered so that a lab full of instruments
does not reconnect in lockstep."""


@dataclass(frozen=True, slots=True)
class InstrumentConfig:
    """One instrument: its id (topic-safe), the interlock guarding its driver, the
    watchdog's ``stall_timeout_s`` (s) and the reconnect policy.

    The interlock (and through it the driver) outlives actor restarts, so whoever
    holds it can always reach the emergency stop.
    """

    instrument_id: str
    interlock: Interlock
    stall_timeout_s: float = 2.0
    reconnect: Backoff = RECONNECT_BACKOFF
    idle_check_s: float = 2.0

    def __post_init__(self) -> None:
        if not _ID.match(self.instrument_id):
            raise HalError(
                f"instrument_id {self.instrument_id!r} is not accepted; expected letters, "
                "digits, '_', '.' or '-' (it becomes a bus topic segment)"
            )
        if not self.stall_timeout_s > 0:
            raise HalError(
                f"stall_timeout_s {self.stall_timeout_s!r} is not accepted; expected > 0 s"
            )

    @property
    def driver(self) -> Driver:
        """The driver the interlock guards."""
        return self.interlock.driver


class RunStream:
    """Where the acquisitions of one run publish their samples: ``run/<run_id>/samples``.

    A run may be several acquisitions (a protocol's cycles, each its own waveform): they
    share one RunStream, so the run's batches are numbered from 0 without gaps across
    all of them, whichever instrument actor (a restarted one too) published them. Each
    acquisition says where its ``t = 0`` lies in the run's time (``origin_s``).

    :meth:`close` ends publishing for the run: a batch being published is finished
    first and none follows, so nothing reaches the stream of a run that has ended.
    """

    def __init__(
        self, run_id: str, on_published: Callable[[SampleBatch], None] | None = None
    ) -> None:
        if not _ID.match(run_id):
            raise HalError(
                f"run_id {run_id!r} is not accepted; expected letters, digits, '_', '.' or '-'"
            )
        self.run_id = run_id
        self.topic = topics.run_samples(run_id)
        self.on_published = on_published  # told of each batch (the run's progress)
        self._lock = threading.Lock()
        self._seq = 0
        self._closed = False

    @property
    def batches(self) -> int:
        """Batches published so far."""
        return self._seq

    @property
    def closed(self) -> bool:
        """Whether the run has stopped taking samples."""
        return self._closed

    def publish(self, bus: EventBus, samples: Samples, origin_s: float) -> SampleBatch | None:
        """Publish ``samples`` as the run's next batch, ``origin_s`` (s) added to their
        times; None once closed. Waits while a lossless subscriber (the recorder, the
        twin) is full: what the instrument measures meanwhile waits in its own buffer,
        and what overflows it is counted there and arrives as ``lost``."""
        with self._lock:
            if self._closed:
                return None
            batch = SampleBatch(
                self.run_id,
                self._seq,
                np.asarray(samples.t, dtype=np.float64) + origin_s,
                np.ascontiguousarray(samples.E, dtype=np.float64),
                np.ascontiguousarray(samples.I, dtype=np.float64),
                np.ascontiguousarray(samples.flags, dtype=np.uint8),
                samples.lost,
            )
            self._seq += 1
            bus.publish(self.topic, batch, timeout=None)
        if self.on_published is not None:
            self.on_published(batch)
        return batch

    def close(self, timeout: float = 2.0) -> bool:
        """Take no more samples; waits up to ``timeout`` s for a batch being published
        (False when it is still held up by backpressure: it may land after all)."""
        finished = self._lock.acquire(timeout=timeout)
        self._closed = True
        if finished:
            self._lock.release()
        return finished


InstrumentState = Literal["disconnected", "idle", "armed", "acquiring", "tripped"]


@dataclass(frozen=True, slots=True)
class InstrumentStatus:
    """A snapshot of the instrument actor (what ``galvana instruments`` would show)."""

    instrument_id: str
    state: InstrumentState
    link_up: bool
    stalled: bool
    run_id: str
    identity: str
    samples: int
    lost: int
    dropped_replies: int
    trip: Trip | None


class InstrumentActor(Actor):
    """Owns one driver through its interlock (see the module docstring).

    ``bus`` defaults to the supervision tree's bus (the link's).
    """

    def __init__(self, config: InstrumentConfig, *, bus: EventBus | None = None) -> None:
        super().__init__()
        self.config = config
        self.id = config.instrument_id
        self.interlock = config.interlock
        self.driver = config.interlock.driver
        link_bus = self.link.bus if self.link is not None else None
        chosen = bus if bus is not None else link_bus
        if chosen is None:
            raise HalError(f"instrument {self.id!r} needs an event bus; none was given")
        self.bus: EventBus = chosen
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._wake = threading.Event()
        self._rng = random.Random()
        self._link_up = False
        self._identity = ""
        self._armed: tuple[Waveform, Settings] | None = None
        self._acquiring = False
        self._run_id = ""
        self._stream_to: RunStream | None = None
        self._origin_s = 0.0
        self._seq = 0
        self._samples = 0
        self._lost = 0
        self._end_reason: InstrumentEndReason | None = None
        self._end_detail = ""
        self._last_progress = time.monotonic()
        self._stalled = False
        self._stall_began = 0.0
        self._link_thread = threading.Thread(
            target=self._link_loop, name=f"instrument-{self.id}-link", daemon=True
        )
        self._watchdog = threading.Thread(
            target=self._watch, name=f"instrument-{self.id}-watchdog", daemon=True
        )

    # --- lifecycle ---------------------------------------------------------------

    def on_start(self) -> None:
        self.driver.on_drop = self._on_drop
        self.interlock.on_trip = self._on_trip
        self._link_thread.start()
        self._watchdog.start()

    def on_stop(self) -> None:
        self._shutdown("the instrument actor stopped")

    def on_failure(self, *exc_info: Any) -> None:
        self._shutdown("the instrument actor failed")

    def on_kill(self) -> None:
        # Abandoned by its supervisor: stop the threads; cut the cell without blocking.
        self._halt.set()
        self._wake.set()
        threading.Thread(target=self._cut_quietly, daemon=True).start()

    def _shutdown(self, why: str) -> None:
        with self._lock:
            acquiring = self._acquiring
            if acquiring:
                self._end_reason, self._end_detail = "stopped", why
        if acquiring:
            try:
                self.driver.stop()
            except HalError:
                self._cut_quietly()
        self._halt.set()
        self._wake.set()
        for thread in (self._link_thread, self._watchdog):
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout=5.0)
        with contextlib.suppress(HalError):
            self.driver.close()

    def _cut_quietly(self) -> None:
        try:
            self.driver.cell_off()
        except HalError:
            logger.exception("instrument %s: could not turn the cell off", self.id)

    # --- commands (ask handlers: they return an error, never raise it) --------------

    def program(self, waveform: Waveform, settings: Settings | None = None) -> HalError | None:
        """Check against the interlock, then program; the cell stays as it is."""
        with self._lock:
            if self._acquiring:
                return HalError(f"instrument {self.id!r} is acquiring; stop it before programming")
        try:
            effective = self.interlock.program(waveform, settings)
        except HalError as exc:
            return exc
        with self._lock:
            self._armed = (waveform, effective)
        return None

    def start_acquisition(
        self, run: str | RunStream = "", origin_s: float = 0.0
    ) -> HalError | None:
        """Start the programmed waveform. Bound to a run (its id, or the
        :class:`RunStream` its acquisitions share), the samples go to
        ``run/<run>/samples`` with ``origin_s`` (s) added to their times; else to
        ``instrument/<id>/samples``."""
        if isinstance(run, str):
            try:
                stream = RunStream(run) if run else None
            except HalError as exc:
                return exc
        else:
            stream = run
        run_id = stream.run_id if stream is not None else ""
        with self._lock:
            armed = self._armed
            if self._acquiring:
                return HalError(f"instrument {self.id!r} is already acquiring")
            if armed is None:
                return HalError(f"instrument {self.id!r} has no waveform programmed")
            if not self._link_up:
                return LinkError(f"instrument {self.id!r} is not connected")
        try:
            self.interlock.start()
        except HalError as exc:
            return exc
        waveform, settings = armed
        with self._lock:
            self._acquiring = True
            self._run_id = run_id
            self._stream_to, self._origin_s = stream, float(origin_s)
            self._seq = self._samples = self._lost = 0
            self._end_reason, self._end_detail = None, ""
            self._last_progress = time.monotonic()
            self._stalled = False
        self._publish_state(
            AcquisitionStarted(
                self.id, run_id, waveform.type, duration(waveform), settings.sample_rate, utc_now()
            )
        )
        self._wake.set()
        return None

    def stop_acquisition(self) -> HalError | None:
        """End the acquisition cleanly: the waveform stops and the cell turns off."""
        with self._lock:
            if self._acquiring:
                self._end_reason, self._end_detail = "stopped", "stop requested"
        try:
            self.driver.stop()
        except HalError as exc:
            return exc
        return None

    def emergency_stop(self, reason: str = "emergency stop") -> Trip:
        """Cut the cell off and latch the interlock (prefer InstrumentClient's, which
        does not wait for this actor's mailbox)."""
        return self.interlock.emergency_stop(reason)

    def reset_interlock(self) -> HalError | None:
        """Unlatch the interlock after a trip has been dealt with."""
        try:
            self.interlock.reset()
        except InterlockLatched as exc:
            return exc
        return None

    def status(self) -> InstrumentStatus:
        """A snapshot of this instrument."""
        with self._lock:
            if self.interlock.latched:
                state: InstrumentState = "tripped"
            elif not self._link_up:
                state = "disconnected"
            elif self._acquiring:
                state = "acquiring"
            elif self._armed is not None:
                state = "armed"
            else:
                state = "idle"
            return InstrumentStatus(
                self.id,
                state,
                self._link_up,
                self._stalled,
                self._run_id,
                self._identity,
                self._samples,
                self._lost,
                self.driver.dropped_replies,
                self.interlock.trip_record,
            )

    # --- the link thread ------------------------------------------------------------

    def _link_loop(self) -> None:
        attempts = 0
        reported_down = False
        last_check = time.monotonic()
        while not self._halt.is_set():
            if not self._link_up:
                attempts += 1
                try:
                    self.driver.connect()
                    identity = str(self.driver.identify())
                except HalError as exc:
                    if not reported_down:
                        self._link_down(f"connecting failed: {exc}")
                        reported_down = True
                    self._halt.wait(self.config.reconnect.delay(attempts, self._rng))
                    continue
                with self._lock:
                    self._link_up = True
                    self._identity = identity
                    self._last_progress = time.monotonic()
                run_id = self._run_id if self._acquiring else ""
                self._publish_state(
                    InstrumentLinkUp(self.id, run_id, identity, attempts, utc_now())
                )
                attempts, reported_down = 0, False
                self._confirm_cell_off()
            if self._acquiring:
                self._stream()
                continue
            if self._wake.wait(0.1):
                self._wake.clear()
                continue
            if time.monotonic() - last_check > self.config.idle_check_s:
                last_check = time.monotonic()
                try:
                    self.driver.identify()
                except HalError as exc:
                    self._link_down(f"idle check failed: {exc}")
                    reported_down = True

    def _confirm_cell_off(self) -> None:
        """After a reconnect: a trip whose cell-off could not reach the instrument is
        retried first, and its confirmation published (SafetyTripped, cell_off True)."""
        trip = self.interlock.trip_record
        if trip is None or self.interlock.cell_off_confirmed:
            return
        if not self.interlock.retry_cell_off():
            logger.error("instrument %s: the cell-off is still unconfirmed", self.id)
            return
        with self._lock:
            run_id = self._run_id if self._acquiring else ""
        self._publish_state(
            SafetyTripped(
                self.id,
                run_id,
                trip.limit,
                trip.value,
                trip.accepted,
                f"{trip.detail}; cell-off confirmed after reconnecting",
                True,
                utc_now(),
            )
        )

    def _stream(self) -> None:
        try:
            for samples in self.driver.stream():
                if len(samples) or samples.lost:
                    self._deliver(samples)
                if self._halt.is_set() or not self._acquiring:
                    break
        except LinkError as exc:
            self._link_down(str(exc))
            if self._end_reason is None:
                return  # the instrument may still be measuring: resume after reconnect
        except HalError as exc:
            logger.exception("instrument %s: the stream failed", self.id)
            self._cut_quietly()
            self._end("failed", str(exc))
            return
        with self._lock:
            reason = self._end_reason or ("tripped" if self.interlock.latched else "completed")
            detail = self._end_detail
        if reason in ("completed", "stopped") and self._link_up:
            # A finished waveform leaves the cell at its last potential, and a stop
            # requested while the link was down has not reached the instrument yet.
            try:
                self.driver.stop()
            except HalError as exc:
                self._link_down(f"turning the cell off after the waveform: {exc}")
                return  # retried after reconnect, with the same reason
        self._end(reason, detail)

    def _deliver(self, samples: Samples) -> None:
        # A breach cuts the cell and ends the acquisition (through _on_trip); the
        # batch holding it is still delivered, so the run sees what happened.
        self.interlock.check(samples)
        with self._lock:
            seq = self._seq
            self._seq += 1
            self._samples += len(samples)
            self._lost += samples.lost
            run_id = self._run_id
            stream, origin_s = self._stream_to, self._origin_s
            if len(samples):
                self._last_progress = time.monotonic()
            stalled_for = time.monotonic() - self._stall_began if self._stalled else 0.0
            was_stalled = self._stalled and len(samples) > 0
            if was_stalled:
                self._stalled = False
        if was_stalled:
            self._publish_state(StreamResumed(self.id, run_id, stalled_for, utc_now()))
        try:
            if stream is not None:
                stream.publish(self.bus, samples, origin_s)
                return
            batch = SampleBatch(
                "",
                seq,
                np.ascontiguousarray(samples.t, dtype=np.float64),
                np.ascontiguousarray(samples.E, dtype=np.float64),
                np.ascontiguousarray(samples.I, dtype=np.float64),
                np.ascontiguousarray(samples.flags, dtype=np.uint8),
                samples.lost,
            )
            self.bus.publish(topics.instrument_samples(self.id), batch)
        except BusError:
            logger.exception("instrument %s: publishing batch %d failed", self.id, seq)

    def _end(self, reason: InstrumentEndReason, detail: str) -> None:
        with self._lock:
            if not self._acquiring:
                return
            self._acquiring = False
            self._stalled = False
            self._armed = None
            run_id, samples, lost = self._run_id, self._samples, self._lost
        self._publish_state(
            AcquisitionEnded(self.id, run_id, reason, samples, lost, detail, utc_now())
        )

    def _link_down(self, reason: str) -> None:
        with self._lock:
            was_up = self._link_up
            self._link_up = False
            self._stalled = False
            run_id = self._run_id if self._acquiring else ""
        with contextlib.suppress(HalError):
            self.driver.close()
        logger.warning("instrument %s: link down (%s)", self.id, reason)
        if was_up or reason.startswith("connecting"):
            self._publish_state(InstrumentLinkDown(self.id, run_id, reason, utc_now()))

    # --- the watchdog ------------------------------------------------------------------

    def _watch(self) -> None:
        period = self.config.stall_timeout_s / 4.0
        while not self._halt.wait(period):
            with self._lock:
                if not (self._acquiring and self._link_up) or self._stalled:
                    continue
                silent = time.monotonic() - self._last_progress
                if silent <= self.config.stall_timeout_s:
                    continue
                self._stalled = True
                self._stall_began = self._last_progress
                run_id = self._run_id
            logger.warning("instrument %s: no samples for %.3g s", self.id, silent)
            self._publish_state(StreamStalled(self.id, run_id, silent, utc_now()))

    # --- callbacks from the driver and the interlock -------------------------------------

    def _on_drop(self, reason: str, raw: bytes) -> None:
        self._publish_state(
            ReplyDropped(self.id, reason, bytes(raw), self.driver.dropped_replies, utc_now())
        )

    def _on_trip(self, trip: Trip) -> None:
        with self._lock:
            run_id = self._run_id if self._acquiring else ""
            if self._acquiring and self._end_reason is None:
                self._end_reason, self._end_detail = "tripped", f"{trip.limit}: {trip.detail}"
        value = trip.value if math.isfinite(trip.value) else math.nan
        self._publish_state(
            SafetyTripped(
                self.id,
                run_id,
                trip.limit,
                value,
                trip.accepted,
                trip.detail,
                trip.cell_off,
                utc_now(),
            )
        )

    def _publish_state(self, msg: object) -> None:
        try:
            self.bus.publish(topics.instrument_state(self.id), msg)
        except BusError:
            logger.exception("instrument %s: publishing %s failed", self.id, type(msg).__name__)


class InstrumentClient:
    """Talk to an instrument actor from any thread; errors are raised here.

    The emergency stop goes straight to the interlock, never through the mailbox.
    """

    def __init__(self, ref: pykka.ActorRef[Any], interlock: Interlock) -> None:
        self.ref = ref
        self.interlock = interlock

    def program(
        self, waveform: Waveform, settings: Settings | None = None, *, timeout: float = 30.0
    ) -> None:
        """Program a waveform (refused with SafetyLimitError beyond the limits)."""
        self._raise(self.ref.proxy().program(waveform, settings).get(timeout=timeout))

    def start(
        self, run: str | RunStream = "", origin_s: float = 0.0, *, timeout: float = 30.0
    ) -> None:
        """Start the programmed waveform, bound to a run when given (its id, or the
        :class:`RunStream` of its acquisitions; ``origin_s`` (s) the run's time of this
        acquisition's start)."""
        self._raise(self.ref.proxy().start_acquisition(run, origin_s).get(timeout=timeout))

    def stop(self, *, timeout: float = 30.0) -> None:
        """Stop the acquisition cleanly and turn the cell off."""
        self._raise(self.ref.proxy().stop_acquisition().get(timeout=timeout))

    def reset_interlock(self, *, timeout: float = 30.0) -> None:
        """Unlatch the interlock after a trip."""
        self._raise(self.ref.proxy().reset_interlock().get(timeout=timeout))

    def status(self, *, timeout: float = 30.0) -> InstrumentStatus:
        """A snapshot of the instrument."""
        result: InstrumentStatus = self.ref.proxy().status().get(timeout=timeout)
        return result

    def emergency_stop(self, reason: str = "emergency stop") -> Trip:
        """Turn the cell off now, from this thread; works in any state; idempotent."""
        return self.interlock.emergency_stop(reason)

    @staticmethod
    def _raise(error: HalError | None) -> None:
        if error is not None:
            raise error


def start_instrument(config: InstrumentConfig, bus: EventBus) -> InstrumentClient:
    """Start an unsupervised instrument actor (tests, scripts); returns its client."""
    ref = InstrumentActor.start(config, bus=bus)
    return InstrumentClient(ref, config.interlock)
