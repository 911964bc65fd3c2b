"""Safety interlocks: per-instrument compliance limits, checked before and during a run.

Two checkpoints, as in a lab's standard operating procedure:

- before anything is programmed, :meth:`Interlock.program` checks the waveform and
  settings against the limits (potential window, current limit, scan rate) and
  refuses with a :class:`~hal.errors.SafetyLimitError` that names the limit, the
  value and what is accepted; nothing reaches the instrument;
- on every streamed batch, :meth:`Interlock.check` looks for a breach (measured
  potential outside the window, current beyond the limit, the instrument reporting
  compliance) with array operations, and on the first one turns the cell off at once
  and latches.

A latched interlock refuses to program or start until :meth:`Interlock.reset`.
:meth:`Interlock.emergency_stop` works from any thread and any state, also while
another thread is inside a driver call (drivers' ``cell_off`` is built for that), and
is idempotent: every call cuts the cell again, but only the first one reports a trip.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from hal.driver import Driver, Samples, Settings
from hal.errors import HalError, InterlockLatched, SafetyLimitError
from runtime.sample_flags import Flag
from runtime.waveforms import SquareWave, Waveform, max_scan_rate, potential_bounds

__all__ = ["Breach", "Interlock", "SafetyLimits", "Trip", "check_waveform", "find_breach"]

logger = logging.getLogger("galvana.hal.safety")


@dataclass(frozen=True, slots=True)
class SafetyLimits:
    """One instrument's compliance limits.

    ``E_min``/``E_max``: the potential window (V); ``I_max``: the largest current
    magnitude (A); ``scan_rate_max``: the fastest sweep (V/s). ``E_margin`` (V) is how
    far a *measured* potential may stray outside the window (noise, ohmic readback)
    before it counts as a breach; programmed potentials get no margin.
    ``trip_on_compliance``: a sample the instrument flags as in compliance is a breach.
    """

    E_min: float
    E_max: float
    I_max: float
    scan_rate_max: float
    E_margin: float = 0.01
    trip_on_compliance: bool = True

    def __post_init__(self) -> None:
        for name in ("E_min", "E_max", "I_max", "scan_rate_max", "E_margin"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SafetyLimitError(
                    f"safety limit {name} = {value!r} is not accepted; expected a number",
                    limit=name,
                    value=math.nan,
                    accepted="a finite number",
                )
            if not math.isfinite(value):
                raise SafetyLimitError(
                    f"safety limit {name} = {value!r} is not accepted; expected a finite number",
                    limit=name,
                    value=float(value),
                    accepted="a finite number",
                )
        if not self.E_min < self.E_max:
            raise SafetyLimitError(
                f"safety limits E_min = {self.E_min!r} V, E_max = {self.E_max!r} V are not "
                "accepted; expected E_min < E_max",
                limit="potential_window",
                value=float(self.E_min),
                accepted="E_min < E_max",
            )
        for name in ("I_max", "scan_rate_max"):
            if getattr(self, name) <= 0:
                raise SafetyLimitError(
                    f"safety limit {name} = {getattr(self, name)!r} is not accepted; expected > 0",
                    limit=name,
                    value=float(getattr(self, name)),
                    accepted="> 0",
                )
        if self.E_margin < 0:
            raise SafetyLimitError(
                f"safety limit E_margin = {self.E_margin!r} V is not accepted; expected >= 0",
                limit="E_margin",
                value=float(self.E_margin),
                accepted=">= 0 V",
            )

    @property
    def window(self) -> str:
        """The potential window in words."""
        return f"{self.E_min:g} V <= E <= {self.E_max:g} V"


def check_waveform(limits: SafetyLimits, waveform: Waveform, settings: Settings) -> Settings:
    """Check a waveform and its settings against ``limits``; return the settings to program.

    The returned settings have ``current_limit`` filled in (the interlock's ``I_max``
    when none was asked for), so the instrument's own compliance never exceeds it.
    Raises :class:`SafetyLimitError` naming the limit, the value and what is accepted.
    """
    lo, hi = potential_bounds(waveform)
    if lo < limits.E_min or hi > limits.E_max:
        bad = lo if lo < limits.E_min else hi
        raise SafetyLimitError(
            f"waveform {waveform.type}: potential {bad:g} V is outside the safety window; "
            f"accepted: {limits.window}",
            limit="potential_window",
            value=bad,
            accepted=limits.window,
        )
    rate = max_scan_rate(waveform)
    if isinstance(waveform, SquareWave):
        # The staircase advances E_step per period: its effective scan rate.
        rate = max(rate, waveform.E_step * waveform.frequency)
    if rate > limits.scan_rate_max * (1 + 1e-9):
        raise SafetyLimitError(
            f"waveform {waveform.type}: scan rate {rate:g} V/s exceeds the safety limit; "
            f"accepted: <= {limits.scan_rate_max:g} V/s",
            limit="scan_rate",
            value=rate,
            accepted=f"<= {limits.scan_rate_max:g} V/s",
        )
    if settings.current_limit is not None and settings.current_limit > limits.I_max:
        raise SafetyLimitError(
            f"settings.current_limit {settings.current_limit:g} A exceeds the safety limit; "
            f"accepted: <= {limits.I_max:g} A",
            limit="current_limit",
            value=settings.current_limit,
            accepted=f"<= {limits.I_max:g} A",
        )
    if settings.current_limit is None:
        return replace(settings, current_limit=limits.I_max)
    return settings


@dataclass(frozen=True, slots=True)
class Breach:
    """The first sample of a batch that broke a limit: which limit, the value (SI),
    what is accepted, and the sample's index and time (s)."""

    limit: str
    value: float
    accepted: str
    index: int
    t: float


def find_breach(limits: SafetyLimits, samples: Samples) -> Breach | None:
    """The first breach in ``samples``, or None. Vectorised: no per-sample Python."""
    if len(samples) == 0:
        return None
    volts, amps = samples.E, samples.I
    lo = limits.E_min - limits.E_margin
    hi = limits.E_max + limits.E_margin
    bad_E = (volts < lo) | (volts > hi)
    bad_I = np.abs(amps) > limits.I_max
    bad_C = (
        (samples.flags & np.uint8(Flag.COMPLIANCE)) != 0
        if limits.trip_on_compliance
        else np.zeros(len(samples), dtype=np.bool_)
    )
    any_bad = bad_E | bad_I | bad_C
    if not any_bad.any():
        return None
    i = int(np.argmax(any_bad))
    t = float(samples.t[i])
    # A wrong potential is usually the cause of a current breach in the same sample.
    if bad_E[i]:
        return Breach("potential_window", float(volts[i]), limits.window, i, t)
    if bad_I[i]:
        return Breach("current_limit", float(amps[i]), f"|I| <= {limits.I_max:g} A", i, t)
    return Breach("compliance", float(amps[i]), "the instrument below its current compliance", i, t)


@dataclass(frozen=True, slots=True)
class Trip:
    """A latched interlock: why it tripped, and whether the cell-off was confirmed.

    ``limit`` is a limit name or ``"emergency_stop"``; ``value`` the offending value
    (SI, NaN when there is none); ``at`` the wall-clock time (UNIX s).
    """

    limit: str
    value: float
    accepted: str
    detail: str
    cell_off: bool
    at: float


class Interlock:
    """Guards one driver with one set of limits (see the module docstring).

    ``on_trip`` is called once per latch with the :class:`Trip`, in the thread that
    tripped it, after the cell-off was attempted; it must not block.
    """

    def __init__(
        self,
        driver: Driver,
        limits: SafetyLimits,
        *,
        on_trip: Callable[[Trip], None] | None = None,
    ) -> None:
        self.driver = driver
        self.limits = limits
        self.on_trip = on_trip
        self._lock = threading.Lock()
        self._trip: Trip | None = None
        self._cell_off_confirmed = True

    @property
    def latched(self) -> bool:
        """Whether the interlock has tripped and not been reset."""
        return self._trip is not None

    @property
    def trip_record(self) -> Trip | None:
        """The trip that latched the interlock, if it is latched."""
        return self._trip

    @property
    def cell_off_confirmed(self) -> bool:
        """False while a trip's cell-off could not reach the instrument (link down)."""
        return self._cell_off_confirmed

    def program(self, waveform: Waveform, settings: Settings | None = None) -> Settings:
        """Check, then program; returns the settings programmed. Nothing is sent if refused."""
        self._refuse_if_latched("program")
        effective = check_waveform(self.limits, waveform, settings or Settings())
        self.driver.program(waveform, effective)
        return effective

    def start(self) -> None:
        """Start the programmed waveform, unless latched."""
        self._refuse_if_latched("start")
        self.driver.start()

    def check(self, samples: Samples) -> Trip | None:
        """Look for a breach in a streamed batch; on one, cut the cell and latch."""
        breach = find_breach(self.limits, samples)
        if breach is None:
            return None
        return self.trip(
            breach.limit,
            breach.value,
            breach.accepted,
            f"sample {breach.index} of a batch at t = {breach.t:.6g} s",
        )

    def trip(self, limit: str, value: float, accepted: str, detail: str) -> Trip:
        """Cut the cell off and latch; returns the latching trip (the first one)."""
        # Latch before cutting: whoever sees the cell go off must find the latch set.
        with self._lock:
            first = self._trip is None
            if self._trip is None:
                self._trip = Trip(limit, value, accepted, detail, False, time.time())
        confirmed = self._cut()
        with self._lock:
            trip = self._trip or Trip(limit, value, accepted, detail, confirmed, time.time())
            if confirmed and not trip.cell_off:
                trip = replace(trip, cell_off=True)
            self._trip = trip
        if first:
            logger.warning(
                "interlock tripped: %s = %g (%s); cell off: %s", limit, value, detail, confirmed
            )
            if self.on_trip is not None:
                self.on_trip(trip)
        return trip

    def emergency_stop(self, reason: str = "emergency stop") -> Trip:
        """Turn the cell off now, from any thread and any state; idempotent."""
        return self.trip("emergency_stop", math.nan, "no emergency stop", reason)

    def retry_cell_off(self) -> bool:
        """After a reconnect: cut the cell again if a trip could not confirm it. True if off."""
        if self._trip is None or self._cell_off_confirmed:
            return True
        confirmed = self._cut()
        if confirmed:
            with self._lock:
                if self._trip is not None:
                    self._trip = replace(self._trip, cell_off=True)
        return confirmed

    def reset(self) -> None:
        """Unlatch, once the cause is understood. Refused while the cell-off is unconfirmed."""
        with self._lock:
            if self._trip is not None and not self._cell_off_confirmed:
                raise InterlockLatched(
                    f"the interlock tripped on {self._trip.limit} and the cell-off has not "
                    "been confirmed; reconnect the instrument before resetting"
                )
            self._trip = None

    def _cut(self) -> bool:
        try:
            self.driver.cell_off()
        except HalError as exc:
            logger.error("cell off failed: %s", exc)
            self._cell_off_confirmed = False
            return False
        self._cell_off_confirmed = True
        return True

    def _refuse_if_latched(self, what: str) -> None:
        trip = self._trip
        if trip is not None:
            raise InterlockLatched(
                f"cannot {what}: the interlock tripped on {trip.limit} ({trip.detail}); "
                "reset it first"
            )
