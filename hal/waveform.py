"""The applied-potential waveforms a driver programs, in SI units.

The names and fields are those of the physics scenario schema
(``physics.scenario.CyclicVoltammetry`` and friends), so one vocabulary describes
what is simulated and what is applied; ``hal`` keeps its own copy because it may
not import ``physics``. Waveforms are inert descriptions (as Bluesky plans are):
they can be checked against safety limits before anything touches a cell.

Every waveform is piecewise linear in time; :func:`breakpoints` gives its corners
(two corners at the same time make a potential jump) and :func:`potential` its value
at any times.

>>> cv = CyclicVoltammetry(E_start=0.5, vertices=(-0.5,), E_end=0.5, scan_rate=0.1)
>>> duration(cv)
20.0
>>> potential(cv, np.array([0.0, 5.0, 10.0, 15.0])).tolist()
[0.5, 0.0, -0.5, 0.0]
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, fields
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from hal.errors import WaveformError

__all__ = [
    "Chronoamperometry",
    "CyclicVoltammetry",
    "LinearSweep",
    "Piecewise",
    "PotentialStep",
    "SquareWave",
    "Waveform",
    "breakpoints",
    "describe",
    "duration",
    "initial_potential",
    "max_scan_rate",
    "period",
    "potential",
    "potential_at",
    "potential_bounds",
    "sample_times",
]

FloatArray = npt.NDArray[np.float64]

# Largest potential any waveform may name, V: a sanity bound on typos (500 for 0.5),
# far beyond any potentiostat; instrument limits are the interlock's business.
_E_SANE = 100.0


def _finite(kind: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise WaveformError(
            f"{kind}.{name}: {value!r} is not accepted; expected a finite number",
            field=f"{kind}.{name}",
        )
    return float(value)


def _potential_value(kind: str, name: str, value: object) -> float:
    v = _finite(kind, name, value)
    if abs(v) > _E_SANE:
        raise WaveformError(
            f"{kind}.{name}: {v!r} V is not accepted; expected |E| <= {_E_SANE} V",
            field=f"{kind}.{name}",
        )
    return v


def _positive(kind: str, name: str, value: object, unit: str) -> float:
    v = _finite(kind, name, value)
    if v <= 0:
        raise WaveformError(
            f"{kind}.{name}: {v!r} {unit} is not accepted; expected > 0", field=f"{kind}.{name}"
        )
    return v


@dataclass(frozen=True, slots=True)
class CyclicVoltammetry:
    """Triangular sweeps ``E_start -> vertices... -> E_end`` (V) at ``scan_rate`` (V/s),
    repeated ``cycles`` times (each cycle starts again at ``E_start``)."""

    E_start: float
    vertices: tuple[float, ...]
    E_end: float
    scan_rate: float
    cycles: int = 1
    type: Literal["cv"] = "cv"

    def __post_init__(self) -> None:
        object.__setattr__(self, "E_start", _potential_value("cv", "E_start", self.E_start))
        object.__setattr__(self, "E_end", _potential_value("cv", "E_end", self.E_end))
        if not isinstance(self.vertices, tuple | list) or not self.vertices:
            raise WaveformError(
                f"cv.vertices: {self.vertices!r} is not accepted; expected one or more potentials",
                field="cv.vertices",
            )
        object.__setattr__(
            self,
            "vertices",
            tuple(_potential_value("cv", "vertices", v) for v in self.vertices),
        )
        object.__setattr__(self, "scan_rate", _positive("cv", "scan_rate", self.scan_rate, "V/s"))
        if isinstance(self.cycles, bool) or not isinstance(self.cycles, int) or self.cycles < 1:
            raise WaveformError(
                f"cv.cycles: {self.cycles!r} is not accepted; expected an integer >= 1",
                field="cv.cycles",
            )
        path = (self.E_start, *self.vertices, self.E_end)
        if all(a == b for a, b in itertools.pairwise(path)):
            raise WaveformError(
                "cv.vertices: every corner equals E_start; expected a sweep of non-zero span",
                field="cv.vertices",
            )


@dataclass(frozen=True, slots=True)
class LinearSweep:
    """One sweep from ``E_start`` to ``E_end`` (V) at ``scan_rate`` (V/s)."""

    E_start: float
    E_end: float
    scan_rate: float
    type: Literal["lsv"] = "lsv"

    def __post_init__(self) -> None:
        object.__setattr__(self, "E_start", _potential_value("lsv", "E_start", self.E_start))
        object.__setattr__(self, "E_end", _potential_value("lsv", "E_end", self.E_end))
        object.__setattr__(self, "scan_rate", _positive("lsv", "scan_rate", self.scan_rate, "V/s"))
        if self.E_start == self.E_end:
            raise WaveformError(
                f"lsv.E_end: {self.E_end!r} V equals E_start; expected a sweep of non-zero span",
                field="lsv.E_end",
            )


@dataclass(frozen=True, slots=True)
class PotentialStep:
    """Hold the potential ``E`` (V) for ``duration`` (s)."""

    E: float
    duration: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "E", _potential_value("ca.steps", "E", self.E))
        object.__setattr__(self, "duration", _positive("ca.steps", "duration", self.duration, "s"))


@dataclass(frozen=True, slots=True)
class Chronoamperometry:
    """A sequence of potential steps; the cell rests at ``E_initial`` (V) before t = 0."""

    steps: tuple[PotentialStep, ...]
    E_initial: float
    type: Literal["ca"] = "ca"

    def __post_init__(self) -> None:
        if not isinstance(self.steps, tuple | list) or not self.steps:
            raise WaveformError(
                f"ca.steps: {self.steps!r} is not accepted; expected one or more PotentialStep",
                field="ca.steps",
            )
        if not all(isinstance(s, PotentialStep) for s in self.steps):
            raise WaveformError(
                "ca.steps: every step must be a PotentialStep(E, duration)", field="ca.steps"
            )
        object.__setattr__(self, "steps", tuple(self.steps))
        object.__setattr__(self, "E_initial", _potential_value("ca", "E_initial", self.E_initial))


@dataclass(frozen=True, slots=True)
class SquareWave:
    """Osteryoung square-wave voltammetry (as in the physics schema).

    The base potential staircases from ``E_start`` towards ``E_end`` by ``E_step`` (V)
    per period; each period is a forward pulse of ``+amplitude`` (in the scan
    direction) then a reverse pulse of ``-amplitude``, each half of ``1/frequency``.
    """

    E_start: float
    E_end: float
    E_step: float
    amplitude: float
    frequency: float
    type: Literal["swv"] = "swv"

    def __post_init__(self) -> None:
        object.__setattr__(self, "E_start", _potential_value("swv", "E_start", self.E_start))
        object.__setattr__(self, "E_end", _potential_value("swv", "E_end", self.E_end))
        object.__setattr__(self, "E_step", _positive("swv", "E_step", self.E_step, "V"))
        object.__setattr__(self, "amplitude", _positive("swv", "amplitude", self.amplitude, "V"))
        object.__setattr__(self, "frequency", _positive("swv", "frequency", self.frequency, "Hz"))
        if self.E_start == self.E_end:
            raise WaveformError(
                f"swv.E_end: {self.E_end!r} V equals E_start; expected a scan of non-zero span",
                field="swv.E_end",
            )

    @property
    def periods(self) -> int:
        """Number of square-wave periods (the staircase treads)."""
        return max(1, math.floor(abs(self.E_end - self.E_start) / self.E_step + 1e-9))


@dataclass(frozen=True, slots=True)
class Piecewise:
    """A piecewise-linear potential through ``points`` ``(t s, E V)`` starting at t = 0.

    Two consecutive points at the same time make a potential jump.
    """

    points: tuple[tuple[float, float], ...]
    type: Literal["piecewise"] = "piecewise"

    def __post_init__(self) -> None:
        pts = self.points
        if not isinstance(pts, tuple | list) or len(pts) < 2:
            raise WaveformError(
                f"piecewise.points: {len(pts) if isinstance(pts, tuple | list) else pts!r} "
                "points given; expected at least two (t, E) pairs",
                field="piecewise.points",
            )
        clean: list[tuple[float, float]] = []
        for i, p in enumerate(pts):
            if not isinstance(p, tuple | list) or len(p) != 2:
                raise WaveformError(
                    f"piecewise.points[{i}]: {p!r} is not accepted; expected a (t, E) pair",
                    field=f"piecewise.points[{i}]",
                )
            clean.append(
                (
                    _finite("piecewise", f"points[{i}].t", p[0]),
                    _potential_value("piecewise", f"points[{i}].E", p[1]),
                )
            )
        if clean[0][0] != 0.0:
            raise WaveformError(
                f"piecewise.points[0].t: {clean[0][0]!r} s is not accepted; expected 0",
                field="piecewise.points[0].t",
            )
        for i in range(1, len(clean)):
            if clean[i][0] < clean[i - 1][0]:
                raise WaveformError(
                    f"piecewise.points[{i}].t: {clean[i][0]!r} s is before the previous point; "
                    "expected non-decreasing times",
                    field=f"piecewise.points[{i}].t",
                )
        if clean[-1][0] <= 0:
            raise WaveformError(
                "piecewise.points: the last time must be > 0 s", field="piecewise.points"
            )
        object.__setattr__(self, "points", tuple(clean))


Waveform: TypeAlias = CyclicVoltammetry | LinearSweep | Chronoamperometry | SquareWave | Piecewise
"""Any waveform a driver can be asked to program."""


def breakpoints(wf: Waveform) -> tuple[FloatArray, FloatArray]:
    """The corners ``(t s, E V)`` of the piecewise-linear waveform, from t = 0 to its end.

    Times are non-decreasing; two corners at the same time make a jump (the value
    after the jump is the later one). A chronoamperogram starts with a jump from
    ``E_initial``, which is not a corner: before t = 0 the cell rests there.
    """
    if isinstance(wf, CyclicVoltammetry):
        corners = (wf.E_start, *wf.vertices, wf.E_end)
        one = np.array(corners, dtype=np.float64)
        # Each further cycle jumps back to E_start when E_end differs from it.
        E = np.concatenate([one] * wf.cycles) if wf.cycles > 1 else one
        dt = np.abs(np.diff(E)) / wf.scan_rate
        if wf.cycles > 1 and wf.E_end != wf.E_start:
            n = len(one)
            dt[n - 1 :: n] = 0.0  # the jump from E_end to the next E_start
        t = np.concatenate([[0.0], np.cumsum(dt)])
        return t, E
    if isinstance(wf, LinearSweep):
        return (
            np.array([0.0, abs(wf.E_end - wf.E_start) / wf.scan_rate]),
            np.array([wf.E_start, wf.E_end]),
        )
    if isinstance(wf, Chronoamperometry):
        d = np.array([s.duration for s in wf.steps])
        levels = np.array([s.E for s in wf.steps])
        ends = np.cumsum(d)
        t = np.repeat(np.concatenate([[0.0], ends]), 2)[1:-1]
        E = np.repeat(levels, 2)
        return t, E
    if isinstance(wf, SquareWave):
        direction = 1.0 if wf.E_end > wf.E_start else -1.0
        half = 0.5 / wf.frequency
        k = np.arange(wf.periods, dtype=np.float64)
        base = wf.E_start + direction * k * wf.E_step
        levels = np.stack(
            [base + direction * wf.amplitude, base - direction * wf.amplitude], axis=1
        ).ravel()
        edges = np.arange(levels.size + 1, dtype=np.float64) * half
        t = np.repeat(edges, 2)[1:-1]
        E = np.repeat(levels, 2)
        return t, E
    t = np.array([p[0] for p in wf.points])
    E = np.array([p[1] for p in wf.points])
    return t, E


def duration(wf: Waveform) -> float:
    """Total duration of the waveform (s)."""
    t, _ = breakpoints(wf)
    return float(t[-1])


def period(wf: Waveform) -> float:
    """Duration of one repetition (s): one cycle of a CV, the whole waveform otherwise.

    Slow drift of the simulated cell ("k0 falls 3 % per cycle") is counted in these.
    """
    if isinstance(wf, CyclicVoltammetry):
        return duration(wf) / wf.cycles
    return duration(wf)


def initial_potential(wf: Waveform) -> float:
    """The potential (V) the cell should rest at before t = 0."""
    if isinstance(wf, Chronoamperometry):
        return wf.E_initial
    return float(breakpoints(wf)[1][0])


def potential(wf: Waveform, t: npt.ArrayLike) -> FloatArray:
    """The applied potential (V) at times ``t`` (s); after a jump, the value after it.

    Before t = 0 the result is :func:`initial_potential`; after the end, the last value.
    """
    tb, Eb = breakpoints(wf)
    return potential_at(tb, Eb, t, initial_potential(wf))


def potential_at(tb: FloatArray, Eb: FloatArray, t: npt.ArrayLike, E_before: float) -> FloatArray:
    """Evaluate corners ``(tb, Eb)`` (as from :func:`breakpoints`) at times ``t`` (s)."""
    tt = np.asarray(t, dtype=np.float64)
    # The last corner at or before each time; at a jump that is the corner after it.
    i = np.clip(np.searchsorted(tb, tt, side="right") - 1, 0, tb.size - 2)
    t0, t1 = tb[i], tb[i + 1]
    span = t1 - t0
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        frac = np.where(span > 0, (tt - t0) / np.where(span > 0, span, 1.0), 1.0)
    frac = np.clip(frac, 0.0, 1.0)
    out: FloatArray = Eb[i] + (Eb[i + 1] - Eb[i]) * frac
    out = np.where(tt < tb[0], E_before, out)
    return np.where(tt >= tb[-1], Eb[-1], out)


def potential_bounds(wf: Waveform) -> tuple[float, float]:
    """The lowest and highest potential (V) the waveform applies, the rest potential included."""
    _, E = breakpoints(wf)
    lo = min(float(E.min()), initial_potential(wf))
    hi = max(float(E.max()), initial_potential(wf))
    return lo, hi


def max_scan_rate(wf: Waveform) -> float:
    """The fastest sweep (V/s) in the waveform; jumps (steps, pulses) do not count."""
    if isinstance(wf, CyclicVoltammetry | LinearSweep):
        return wf.scan_rate  # exact, where corner times would carry rounding
    if isinstance(wf, Chronoamperometry | SquareWave):
        return 0.0
    t, E = breakpoints(wf)
    dt = np.diff(t)
    dE = np.abs(np.diff(E))
    ramps = dt > 0
    if not np.any(ramps):
        return 0.0
    return float(np.max(dE[ramps] / dt[ramps]))


def sample_times(wf: Waveform, sample_rate: float) -> FloatArray:
    """The times (s) at which an instrument sampling at ``sample_rate`` (Hz) reports:
    ``k / rate`` for k = 1 .. floor(duration * rate) (the first sample one interval in)."""
    n = math.floor(duration(wf) * sample_rate + 1e-9)
    return np.arange(1, n + 1, dtype=np.float64) / sample_rate


def describe(wf: Waveform) -> str:
    """A one-line description of the waveform with its fields, for logs and errors."""
    parts = ", ".join(f"{f.name}={getattr(wf, f.name)!r}" for f in fields(wf) if f.name != "type")
    return f"{wf.type}({parts})"
