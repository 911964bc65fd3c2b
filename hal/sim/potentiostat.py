"""The simulated potentiostat itself: settings, acquisition, measurement chain, faults.

Both wire front-ends (the SCPI server on a socket, the MethodSCRIPT device on a pty)
drive one :class:`SimPotentiostat`. It holds what a real instrument holds (output
state, current range, compliance, sample rate, the programmed waveform, an error
queue) and produces samples the way a real one does, in real time: sample ``k`` of
an acquisition exists once ``k / sample_rate`` seconds of instrument time have passed
since ``INIT``. Instrument time runs ``speed`` times faster than the wall clock
(``speed = 0``: unpaced, every sample is available as soon as it is asked for, which
is what deterministic tests want).

Samples are computed lazily, in vectorised chunks, when a client fetches: the
hidden :class:`~hal.sim.models.CurrentModel` gives the true current, then the
measurement chain adds what real hardware adds:

- the instrument's compliance (the current it can deliver; flagged ``COMPLIANCE``),
- Gaussian measurement noise on current and potential,
- the current range: readings beyond full scale are clipped and flagged
  ``OVERLOAD``; the rest are quantised to the range's ADC resolution,
- slow drift of chosen model parameters per waveform cycle (an electrode fouling).

The cell is physical: its concentrations do not reset when an acquisition ends. The
next ``INIT`` carries on from where the last acquisition left the cell unless the
cell sat off (open circuit) for ``relax_s`` seconds of instrument time or more, or
the instrument was reset (``*RST``); then it starts from rest (bulk concentrations),
as a cell left alone long enough does. A shorter gap is taken as instantaneous: the
simulator does not model open-circuit relaxation, which over the milliseconds between
a run's cycles changes nothing measurable. (A simulator that put the cell back at
rest on every ``INIT`` would disagree with any twin that follows the cell, cycle
after cycle.)

Samples not fetched wait in the instrument's buffer (``buffer_samples``); beyond it
the oldest are lost and counted, as on real hardware.

Faults for tests (:class:`Faults`): stall the acquisition, offset the applied
potential, short the cell, corrupt replies (garbage, truncated, out of range).
Dropping and hanging connections are the server's business.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from hal.errors import SimulatorError
from hal.records import RECORD
from hal.sim.models import CurrentModel
from runtime.sample_flags import Flag
from runtime.waveforms import potential_at

__all__ = [
    "CURRENT_RANGES",
    "RECORD",
    "DriftSpec",
    "Faults",
    "NoiseSpec",
    "SimPotentiostat",
]

FloatArray = npt.NDArray[np.float64]


CURRENT_RANGES: tuple[float, ...] = tuple(10.0**k for k in range(-9, 0))
"""The simulated instrument's current ranges, full scale (A): 1 nA to 100 mA."""

E_LIMIT = 10.0
"""The simulated instrument applies potentials within +-E_LIMIT (V)."""

MAX_COMPLIANCE = 0.1
"""The largest current (A) the simulated instrument can deliver."""

MAX_SAMPLE_RATE = 100_000.0
"""The fastest sample rate (Hz) the simulated instrument accepts."""

TECHNIQUES = ("cv", "lsv", "ca", "swv", "piecewise")

State = Literal["idle", "running", "done", "aborted"]

# Largest model call: bounds the latency one fetch can add and the memory of one chunk.
_MAX_CHUNK_S = 0.05
_MAX_CHUNK_SAMPLES = 8192


@dataclass(frozen=True, slots=True)
class NoiseSpec:
    """Measurement noise: ``current_rms`` (A) plus ``range_rms`` times the current
    range's full scale, ``potential_rms`` (V); ``adc_bits`` sets the current
    quantisation (full scale / 2**(bits-1)); ``potential_resolution`` (V)."""

    current_rms: float = 1e-10
    range_rms: float = 2e-5
    potential_rms: float = 50e-6
    adc_bits: int = 16
    potential_resolution: float = 10e-6


@dataclass(frozen=True, slots=True)
class DriftSpec:
    """A model parameter that changes by the fraction ``per_cycle`` every waveform
    cycle, compounded (``k0`` with ``-0.03``: k0 falls 3 % per cycle)."""

    parameter: str
    per_cycle: float

    @classmethod
    def parse(cls, text: str) -> DriftSpec:
        """``"k0=-0.03"`` -> DriftSpec("k0", -0.03)."""
        name, sep, value = text.partition("=")
        try:
            per_cycle = float(value)
        except ValueError:
            per_cycle = math.nan
        if not sep or not name.strip() or not math.isfinite(per_cycle) or per_cycle <= -1:
            raise SimulatorError(
                f"drift {text!r} is not accepted; expected NAME=FRACTION_PER_CYCLE with the "
                "fraction > -1, e.g. k0=-0.03"
            )
        return cls(name.strip(), per_cycle)


@dataclass(slots=True)
class Faults:
    """Misbehaviour on demand (tests). Reply faults count down one per affected reply."""

    stall_until: float = 0.0
    potential_offset: float = 0.0
    short_ohm: float | None = None
    garbage_replies: int = 0
    truncated_replies: int = 0
    out_of_range_replies: int = 0

    def clear(self) -> None:
        """No more faults."""
        self.stall_until = 0.0
        self.potential_offset = 0.0
        self.short_ohm = None
        self.garbage_replies = self.truncated_replies = self.out_of_range_replies = 0


@dataclass(slots=True)
class _Acquisition:
    tb: FloatArray
    Eb: FloatArray
    E_initial: float
    n_total: int
    t_offset: float  # added to the reported sample times
    model_offset: float  # the cell's own clock at t = 0
    started_wall: float  # clock() at t = 0
    epoch: float  # time.time() at t = 0
    n_done: int = 0
    lost: int = 0
    lost_reported: int = 0
    pending: deque[npt.NDArray[np.void]] = field(default_factory=deque)
    pending_count: int = 0


class SimPotentiostat:
    """A simulated potentiostat (see the module docstring). Thread-safe.

    ``model`` is the hidden true cell; ``speed`` instrument seconds per wall second
    (0: unpaced; gaps between acquisitions then count in wall seconds);
    ``buffer_samples`` the sample buffer; ``seed`` the noise seed; ``relax_s`` how long
    (instrument s) the cell must sit off to be back at rest; ``clock`` a monotonic
    clock (s).
    """

    def __init__(
        self,
        model: CurrentModel,
        *,
        noise: NoiseSpec | None = None,
        drift: Sequence[DriftSpec] = (),
        sample_rate: float = 1000.0,
        speed: float = 1.0,
        buffer_samples: int = 1_000_000,
        seed: int = 0,
        relax_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        serial: str = "GSP-0001",
    ) -> None:
        if not speed >= 0 or not math.isfinite(speed):
            raise SimulatorError(f"speed {speed!r} is not accepted; expected >= 0 (0: unpaced)")
        if not relax_s >= 0:
            raise SimulatorError(f"relax_s {relax_s!r} is not accepted; expected >= 0 s")
        if buffer_samples < 1:
            raise SimulatorError(
                f"buffer_samples {buffer_samples!r} is not accepted; expected >= 1"
            )
        known = model.parameters()
        for d in drift:
            if d.parameter not in known:
                raise SimulatorError(
                    f"drift parameter {d.parameter!r} is not a parameter of the model; "
                    f"accepted: {', '.join(known)}"
                )
            # Try the change now (and undo it): a model refuses parameters it cannot
            # drift, and it had better say so before the first acquisition.
            model.set_parameters({d.parameter: known[d.parameter] * (1.0 + d.per_cycle)})
            model.set_parameters({d.parameter: known[d.parameter]})
        self.model = model
        self.noise = noise or NoiseSpec()
        self.drift = tuple(drift)
        self.speed = float(speed)
        self.buffer_samples = int(buffer_samples)
        self.relax_s = float(relax_s)
        self.serial = serial
        self.faults = Faults()
        self.lock = threading.RLock()
        self._clock = clock
        self._rng = np.random.default_rng(seed)
        self._base = {d.parameter: known[d.parameter] for d in self.drift}
        self._cycles_done = 0.0
        self._default_rate = float(sample_rate)
        self._check_rate(self._default_rate)
        self.errors: deque[tuple[int, str]] = deque(maxlen=32)
        self.reset()

    # --- settings ---------------------------------------------------------------

    def reset(self) -> None:
        """``*RST``: output off, acquisition dropped, settings to defaults, program cleared."""
        with self.lock:
            self.output_on = False
            self.E_dc = 0.0
            self.current_range = CURRENT_RANGES[-1]
            self.compliance = MAX_COMPLIANCE
            self.sample_rate = self._default_rate
            self.corners_t: list[float] = []
            self.corners_E: list[float] = []
            self.E_initial: float | None = None
            self.period = 0.0
            self.state: State = "idle"
            self._acq: _Acquisition | None = None
            # The cell's clock at the end of the last acquisition, and the clock()
            # reading then; None: the cell is at rest (a fresh or reset instrument).
            self._cell_t: float | None = None
            self._off_since = 0.0
            self.errors.clear()

    def error(self, code: int, text: str) -> None:
        """Queue an instrument error (SCPI numbering: -100 command, -200 execution, ...)."""
        with self.lock:
            self.errors.append((code, text))

    def set_current_range(self, value: float) -> float:
        """Select the smallest range covering ``value`` (A); returns the range chosen."""
        if not (math.isfinite(value) and 0 < value <= CURRENT_RANGES[-1]):
            raise SimulatorError(
                f"current range {value!r} A is not accepted; expected 0 < range <= "
                f"{CURRENT_RANGES[-1]:g} A"
            )
        with self.lock:
            self.current_range = next(r for r in CURRENT_RANGES if r >= value * (1 - 1e-9))
            return self.current_range

    def set_compliance(self, value: float) -> None:
        """The largest current (A) the instrument will deliver."""
        if not (math.isfinite(value) and 0 < value <= MAX_COMPLIANCE):
            raise SimulatorError(
                f"compliance {value!r} A is not accepted; expected 0 < compliance <= "
                f"{MAX_COMPLIANCE:g} A"
            )
        with self.lock:
            self.compliance = value

    def set_sample_rate(self, value: float) -> None:
        """Samples per second of the next acquisition (Hz)."""
        self._check_rate(value)
        with self.lock:
            self.sample_rate = float(value)

    @staticmethod
    def _check_rate(value: float) -> None:
        if not (math.isfinite(value) and 0 < value <= MAX_SAMPLE_RATE):
            raise SimulatorError(
                f"sample rate {value!r} Hz is not accepted; expected 0 < rate <= "
                f"{MAX_SAMPLE_RATE:g} Hz"
            )

    def set_program(self, t: Sequence[float], E: Sequence[float], *, append: bool = False) -> int:
        """Replace (or extend) the waveform's corners; returns how many there are."""
        ta = np.asarray(t, dtype=np.float64)
        Ea = np.asarray(E, dtype=np.float64)
        if ta.shape != Ea.shape or ta.ndim != 1 or ta.size == 0:
            raise SimulatorError("program corners must come as (t, E) pairs")
        if not (np.all(np.isfinite(ta)) and np.all(np.isfinite(Ea))):
            raise SimulatorError("program corners must be finite numbers")
        if np.any(np.abs(Ea) > E_LIMIT):
            raise SimulatorError(
                f"program potential {float(np.max(np.abs(Ea))):g} V is not accepted; "
                f"expected |E| <= {E_LIMIT:g} V"
            )
        with self.lock:
            base_t = self.corners_t if append else []
            all_t = np.concatenate([np.asarray(base_t), ta])
            if all_t[0] != 0.0 or np.any(np.diff(all_t) < 0):
                raise SimulatorError("program times must start at 0 s and never decrease")
            if append:
                self.corners_t.extend(ta.tolist())
                self.corners_E.extend(Ea.tolist())
            else:
                self.corners_t = ta.tolist()
                self.corners_E = Ea.tolist()
            return len(self.corners_t)

    def set_dc(self, E: float) -> None:
        """The potential (V) held while no waveform runs."""
        if not (math.isfinite(E) and abs(E) <= E_LIMIT):
            raise SimulatorError(
                f"potential {E!r} V is not accepted; expected |E| <= {E_LIMIT:g} V"
            )
        with self.lock:
            self.E_dc = float(E)

    # --- acquisition ------------------------------------------------------------

    def initiate(self, *, keep_cell: bool = False) -> None:
        """Start the programmed waveform (``INIT``): output on, sample 0 at t = 0.

        ``keep_cell``: continue the cell's history and clock from the previous
        acquisition instead of a cell at rest (a script's next measurement loop).
        """
        with self.lock:
            if len(self.corners_t) < 2 or self.corners_t[-1] <= 0:
                raise SimulatorError("no waveform programmed; send at least two corners first")
            if self.state == "running":
                raise SimulatorError("an acquisition is already running; abort it first")
            tb = np.asarray(self.corners_t)
            Eb = np.asarray(self.corners_E)
            E_init = self.E_initial if self.E_initial is not None else float(Eb[0])
            previous = self._acq
            t_offset = 0.0
            if keep_cell and previous is not None:
                t_offset = previous.t_offset + previous.n_done / self.sample_rate
            now = self._clock()
            off_for = (now - self._off_since) * (self.speed if self.speed > 0 else 1.0)
            if self._cell_t is not None and (keep_cell or off_for < self.relax_s):
                model_offset = self._cell_t
            else:
                model_offset = 0.0
                self.model.reset(0.0, E_init)
            n_total = math.floor(float(tb[-1]) * self.sample_rate + 1e-9)
            self._acq = _Acquisition(
                tb, Eb, E_init, n_total, t_offset, model_offset, now, time.time()
            )
            self._cell_t = model_offset
            self.output_on = True
            self.state = "running"

    def abort(self) -> None:
        """Stop the waveform (``ABOR``); what was measured so far can still be fetched."""
        with self.lock:
            if self.state == "running":
                self._generate(self._clock(), want=0)
                self._finish("aborted")

    def set_output(self, on: bool) -> None:
        """``OUTP ON|OFF``: turning the output off aborts a running waveform first."""
        with self.lock:
            if not on:
                self.abort()
            self.output_on = bool(on)

    @property
    def epoch(self) -> float:
        """Wall-clock time (UNIX s) of t = 0 of the current acquisition (0 if none)."""
        with self.lock:
            return self._acq.epoch if self._acq is not None else 0.0

    def status(self) -> tuple[State, int, int]:
        """``(state, samples measured, samples in the waveform)``, brought up to now."""
        with self.lock:
            self._generate(self._clock(), want=0)
            acq = self._acq
            if acq is None:
                return self.state, 0, 0
            return self.state, acq.n_done, acq.n_total

    def fetch(self, max_samples: int) -> tuple[npt.NDArray[np.void], int]:
        """Up to ``max_samples`` samples not fetched yet (RECORD array), and how many
        were lost from the buffer since the previous fetch."""
        with self.lock:
            self._generate(self._clock(), want=max_samples)
            acq = self._acq
            if acq is None or acq.pending_count == 0:
                lost = self._take_lost()
                return np.zeros(0, dtype=RECORD), lost
            parts: list[npt.NDArray[np.void]] = []
            count = 0
            while acq.pending and count < max_samples:
                head = acq.pending[0]
                room = max_samples - count
                if head.size <= room:
                    parts.append(acq.pending.popleft())
                    count += head.size
                else:
                    parts.append(head[:room])
                    acq.pending[0] = head[room:]
                    count += room
            acq.pending_count -= count
            out = np.concatenate(parts) if len(parts) > 1 else parts[0].copy()
            return out, self._take_lost()

    def truth(self) -> dict[str, float]:
        """The hidden cell's parameters right now (for tests and demos, never for twins)."""
        with self.lock:
            return self.model.parameters()

    def _take_lost(self) -> int:
        acq = self._acq
        if acq is None:
            return 0
        lost = acq.lost - acq.lost_reported
        acq.lost_reported = acq.lost
        return lost

    def _finish(self, state: State) -> None:
        acq = self._acq
        self.state = state
        if acq is None:
            return
        measured = acq.n_done / self.sample_rate
        self._cell_t = acq.model_offset + measured
        # When the last sample was due: the cell has been off since then.
        self._off_since = (
            acq.started_wall + measured / self.speed if self.speed > 0 else self._clock()
        )
        if self.period > 0:
            self._cycles_done += measured / self.period

    def _generate(self, now: float, *, want: int) -> None:
        """Measure every sample due by ``now`` (unpaced: ``want`` more than buffered)."""
        acq = self._acq
        if acq is None or self.state != "running" or now < self.faults.stall_until:
            return
        rate = self.sample_rate
        if self.speed > 0:
            due = math.floor((now - acq.started_wall) * self.speed * rate + 1e-9)
        else:
            due = acq.n_done + max(0, want - acq.pending_count)
        target = min(acq.n_total, due)
        chunk_max = max(1, min(_MAX_CHUNK_SAMPLES, math.ceil(_MAX_CHUNK_S * rate)))
        while acq.n_done < target:
            count = min(chunk_max, target - acq.n_done)
            k = np.arange(acq.n_done + 1, acq.n_done + count + 1, dtype=np.int64)
            t_prog = k / rate
            E_set = potential_at(acq.tb, acq.Eb, t_prog, acq.E_initial)
            self._apply_drift(float(t_prog[0]))
            records = self._measure(k, t_prog + acq.t_offset, t_prog + acq.model_offset, E_set)
            acq.pending.append(records)
            acq.pending_count += count
            acq.n_done += count
            overflow = acq.pending_count - self.buffer_samples
            while overflow > 0:
                head = acq.pending[0]
                drop = min(overflow, head.size)
                if drop == head.size:
                    acq.pending.popleft()
                else:
                    acq.pending[0] = head[drop:]
                acq.pending_count -= drop
                acq.lost += drop
                overflow -= drop
        if acq.n_done >= acq.n_total:
            self._finish("done")

    def _apply_drift(self, t0: float) -> None:
        if not self.drift or self.period <= 0:
            return
        cycles = self._cycles_done + t0 / self.period
        current = self.model.parameters()
        changes = {}
        for d in self.drift:
            value = self._base[d.parameter] * (1.0 + d.per_cycle) ** cycles
            # Rebuilding a model costs; a step of 1e-4 is far below any twin's resolution.
            if abs(value - current[d.parameter]) > 1e-4 * abs(current[d.parameter]):
                changes[d.parameter] = value
        if changes:
            self.model.set_parameters(changes)

    def _measure(
        self, k: npt.NDArray[np.int64], t: FloatArray, t_cell: FloatArray, E_set: FloatArray
    ) -> npt.NDArray[np.void]:
        """The measurement chain: true current, compliance, noise, range, quantisation.
        ``t`` is reported; ``t_cell`` is the same instants on the cell's own clock."""
        faults = self.faults
        noise = self.noise
        n = k.size
        E_app = E_set + faults.potential_offset
        I_true = self.model.advance(t_cell, E_app)
        if faults.short_ohm is not None:
            I_true = I_true + E_app / faults.short_ohm
        flags = np.zeros(n, dtype=np.uint8)
        in_compliance = np.abs(I_true) > self.compliance
        flags[in_compliance] |= np.uint8(Flag.COMPLIANCE)
        I_src = np.clip(I_true, -self.compliance, self.compliance)
        rng = self._rng
        full_scale = self.current_range
        sigma_I = noise.current_rms + noise.range_rms * full_scale
        I_meas = I_src + rng.normal(0.0, sigma_I, n) if sigma_I > 0 else I_src
        over = np.abs(I_meas) > full_scale
        flags[over] |= np.uint8(Flag.OVERLOAD)
        lsb = full_scale / 2.0 ** (noise.adc_bits - 1)
        I_q = np.round(np.clip(I_meas, -full_scale, full_scale) / lsb) * lsb
        E_meas = (
            E_app + rng.normal(0.0, noise.potential_rms, n) if noise.potential_rms > 0 else E_app
        )
        if noise.potential_resolution > 0:
            E_meas = np.round(E_meas / noise.potential_resolution) * noise.potential_resolution
        records = np.empty(n, dtype=RECORD)
        records["n"] = k
        records["t"] = t
        records["E"] = E_meas
        records["I"] = I_q
        records["flags"] = flags
        return records
