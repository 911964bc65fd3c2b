"""The applied-potential waveforms: one vocabulary for what is simulated and what is applied.

A physics scenario, a twin's protocol and an instrument driver all speak of these
classes, in SI units. They are inert descriptions (as Bluesky plans are): they can be
checked against limits, simulated, or programmed into an instrument, and nothing
happens until one of those is asked for.

Every class validates its fields on construction against one set of rules (the
ranges in :data:`LIMITS`, and the shape of each waveform) and raises
:class:`~runtime.errors.WaveformError` naming the field. The ranges are sanity
bounds on what a waveform may describe (a potential of 50 V is a typo); whether an
instrument may apply it is its safety interlock's business.

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

from runtime.errors import WaveformError

__all__ = [
    "CYCLES",
    "LIMITS",
    "TYPES",
    "Chronoamperometry",
    "CyclicVoltammetry",
    "Limit",
    "LinearSweep",
    "Piecewise",
    "PotentialStep",
    "SquareWave",
    "Staircase",
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


@dataclass(frozen=True, slots=True)
class Limit:
    """The accepted range of a waveform field: ``lo`` to ``hi`` in ``unit`` (SI), each
    end open when ``lo_open``/``hi_open``."""

    lo: float
    hi: float
    unit: str
    lo_open: bool = False
    hi_open: bool = False

    def accepts(self, value: float) -> bool:
        """Whether ``value`` lies in the range."""
        above = value > self.lo if self.lo_open else value >= self.lo
        below = value < self.hi if self.hi_open else value <= self.hi
        return above and below

    def __str__(self) -> str:
        left = "(" if self.lo_open else "["
        right = ")" if self.hi_open else "]"
        return f"a number in {left}{self.lo:g}, {self.hi:g}{right} {self.unit}"


LIMITS: dict[str, Limit] = {
    "potential": Limit(-10.0, 10.0, "V"),
    "scan_rate": Limit(1e-6, 1e6, "V/s"),
    "duration": Limit(0.0, 1e7, "s", lo_open=True),
    "time": Limit(0.0, 1e7, "s"),
    "E_step": Limit(0.0, 0.1, "V", lo_open=True),
    "staircase_step": Limit(0.0, 1.0, "V", lo_open=True),
    "amplitude": Limit(0.0, 1.0, "V", lo_open=True),
    "frequency": Limit(1e-2, 1e6, "Hz"),
}
"""The range of every kind of waveform field (the scenario schema reads with them too)."""

CYCLES = (1, 1000)
"""The accepted number of cycles of a cyclic voltammogram, inclusive."""


def _error(kind: str, name: str, reason: str) -> WaveformError:
    return WaveformError(f"{kind}.{name}", reason)


def _number(kind: str, name: str, value: object, limit: Limit | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        accepted = str(limit) if limit is not None else "a finite number"
        raise _error(kind, name, f"got {value!r}; accepted: {accepted}")
    x = float(value)
    if limit is not None and not limit.accepts(x):
        raise _error(kind, name, f"got {x:g}; accepted: {limit}")
    return x


def _potential(kind: str, name: str, value: object) -> float:
    return _number(kind, name, value, LIMITS["potential"])


def _potentials(kind: str, name: str, values: object) -> tuple[float, ...]:
    if not isinstance(values, tuple | list) or not values:
        raise _error(kind, name, f"got {values!r}; accepted: one or more potentials (V)")
    return tuple(_potential(kind, f"{name}[{i}]", v) for i, v in enumerate(values))


def _cycles(kind: str, value: object) -> int:
    lo, hi = CYCLES
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _error(kind, "cycles", f"got {value!r}; accepted: an integer from {lo} to {hi}")
    return value


def _sweeps(kind: str, path: tuple[float, ...], vertices: int) -> None:
    """Every sweep of ``path`` (E_start, vertices..., E_end) must span something."""
    for i, (a, b) in enumerate(itertools.pairwise(path)):
        if a == b:
            name = f"vertices[{i}]" if i < vertices else "E_end"
            raise _error(
                kind,
                name,
                f"got {b:g}, equal to the potential before it; accepted: a different "
                "potential (a sweep needs a span)",
            )


@dataclass(frozen=True, slots=True)
class CyclicVoltammetry:
    """Triangular sweeps ``E_start -> vertices... -> E_end`` (V) at ``scan_rate`` (V/s),
    repeated ``cycles`` times; each further cycle starts again at ``E_start`` (a jump
    when ``E_end`` differs from it)."""

    E_start: float
    vertices: tuple[float, ...]
    E_end: float
    scan_rate: float
    cycles: int = 1
    type: Literal["cv"] = "cv"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "E_start", _potential("cv", "E_start", self.E_start))
        set_(self, "vertices", _potentials("cv", "vertices", self.vertices))
        set_(self, "E_end", _potential("cv", "E_end", self.E_end))
        set_(self, "scan_rate", _number("cv", "scan_rate", self.scan_rate, LIMITS["scan_rate"]))
        set_(self, "cycles", _cycles("cv", self.cycles))
        _sweeps("cv", (self.E_start, *self.vertices, self.E_end), len(self.vertices))


@dataclass(frozen=True, slots=True)
class LinearSweep:
    """One sweep from ``E_start`` to ``E_end`` (V) at ``scan_rate`` (V/s)."""

    E_start: float
    E_end: float
    scan_rate: float
    type: Literal["lsv"] = "lsv"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "E_start", _potential("lsv", "E_start", self.E_start))
        set_(self, "E_end", _potential("lsv", "E_end", self.E_end))
        set_(self, "scan_rate", _number("lsv", "scan_rate", self.scan_rate, LIMITS["scan_rate"]))
        _sweeps("lsv", (self.E_start, self.E_end), 0)


@dataclass(frozen=True, slots=True)
class PotentialStep:
    """Hold the potential ``E`` (V) for ``duration`` (s)."""

    E: float
    duration: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "E", _potential("ca.steps", "E", self.E))
        object.__setattr__(
            self, "duration", _number("ca.steps", "duration", self.duration, LIMITS["duration"])
        )


@dataclass(frozen=True, slots=True)
class Chronoamperometry:
    """A sequence of potential steps; the cell rests at ``E_initial`` (V) before t = 0."""

    steps: tuple[PotentialStep, ...]
    E_initial: float
    type: Literal["ca"] = "ca"

    def __post_init__(self) -> None:
        steps = self.steps
        if not isinstance(steps, tuple | list) or not steps:
            raise _error("ca", "steps", f"got {steps!r}; accepted: one or more PotentialStep")
        if not all(isinstance(s, PotentialStep) for s in steps):
            raise _error("ca", "steps", "accepted: PotentialStep(E, duration) items")
        object.__setattr__(self, "steps", tuple(steps))
        object.__setattr__(self, "E_initial", _potential("ca", "E_initial", self.E_initial))


@dataclass(frozen=True, slots=True)
class SquareWave:
    """Osteryoung square-wave voltammetry.

    The base potential staircases from ``E_start`` to ``E_end`` (V) by ``E_step`` (V) per
    period, both ends included; each period is a forward pulse of ``+amplitude`` (V, in
    the scan direction) then a reverse pulse of ``-amplitude``, each lasting half of
    ``1/frequency`` (Hz). The cell rests at ``E_start`` before t = 0.
    """

    E_start: float
    E_end: float
    E_step: float
    amplitude: float
    frequency: float
    type: Literal["swv"] = "swv"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "E_start", _potential("swv", "E_start", self.E_start))
        set_(self, "E_end", _potential("swv", "E_end", self.E_end))
        set_(self, "E_step", _number("swv", "E_step", self.E_step, LIMITS["E_step"]))
        set_(self, "amplitude", _number("swv", "amplitude", self.amplitude, LIMITS["amplitude"]))
        set_(self, "frequency", _number("swv", "frequency", self.frequency, LIMITS["frequency"]))
        _sweeps("swv", (self.E_start, self.E_end), 0)

    @property
    def periods(self) -> int:
        """Number of square-wave periods (staircase treads), ``E_start`` and ``E_end``
        both included."""
        # The small tolerance keeps E_end itself when the span is a whole number of steps.
        return math.floor(abs(self.E_end - self.E_start) / self.E_step + 1e-9) + 1


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
            raise _error("piecewise", "points", f"got {pts!r}; accepted: two or more (t, E) pairs")
        clean: list[tuple[float, float]] = []
        for i, p in enumerate(pts):
            if not isinstance(p, tuple | list) or len(p) != 2:
                raise _error("piecewise", f"points[{i}]", f"got {p!r}; accepted: a (t, E) pair")
            t = _number("piecewise", f"points[{i}].t", p[0], LIMITS["time"])
            E = _potential("piecewise", f"points[{i}].E", p[1])
            if i == 0 and t != 0.0:
                raise _error(
                    "piecewise", "points[0].t", f"got {t:g}; accepted: 0 (it starts at t = 0)"
                )
            if i > 0 and t < clean[-1][0]:
                raise _error(
                    "piecewise",
                    f"points[{i}].t",
                    f"got {t:g}, earlier than the point before ({clean[-1][0]:g}); "
                    "accepted: non-decreasing times",
                )
            clean.append((t, E))
        if clean[-1][0] <= 0.0:
            raise _error(
                "piecewise", "points", "the points span no time; accepted: a last time > 0"
            )
        object.__setattr__(self, "points", tuple(clean))


@dataclass(frozen=True, slots=True)
class Staircase:
    """Staircase voltammetry, as staircase potentiostats (Autolab, PalmSens, ...) apply it.

    The potential steps by ``E_step`` (V) every ``t_step`` (s) along ``E_start ->
    vertices... -> E_end`` (V), ``cycles`` times; without vertices it is a linear
    staircase (``type`` ``staircase_lsv``). Step 0 holds ``E_start``, where the cell
    rested before t = 0, and each sweep's last step holds its corner, so a sweep spans a
    whole number of steps. The nominal scan rate is ``E_step / t_step``.

    The current of each step is sampled as the instrument samples it: ``sample`` is
    ``(a, b)``, fractions of the step; the value at ``b`` when ``a == b`` (``(1, 1)``:
    the end of the step), else the mean over ``[a, b]``. One sample per step, at time
    ``(j + b) t_step`` for step ``j``, with that step's potential.
    """

    E_start: float
    vertices: tuple[float, ...]
    E_end: float
    E_step: float
    t_step: float
    sample: tuple[float, float] = (1.0, 1.0)
    cycles: int = 1
    type: Literal["staircase_cv", "staircase_lsv"] = "staircase_cv"

    def __post_init__(self) -> None:
        kind, set_ = self.type, object.__setattr__
        if kind not in ("staircase_cv", "staircase_lsv"):
            raise _error(
                "staircase", "type", f"got {kind!r}; accepted: staircase_cv, staircase_lsv"
            )
        set_(self, "E_start", _potential(kind, "E_start", self.E_start))
        if kind == "staircase_cv":
            set_(self, "vertices", _potentials(kind, "vertices", self.vertices))
        elif self.vertices:
            raise _error(kind, "vertices", "a linear staircase has none; accepted: ()")
        set_(self, "E_end", _potential(kind, "E_end", self.E_end))
        set_(self, "E_step", _number(kind, "E_step", self.E_step, LIMITS["staircase_step"]))
        set_(self, "t_step", _number(kind, "t_step", self.t_step, LIMITS["duration"]))
        set_(self, "sample", _sample(kind, self.sample))
        set_(self, "cycles", _cycles(kind, self.cycles))
        path = (self.E_start, *self.vertices, self.E_end)
        _sweeps(kind, path, len(self.vertices))
        for a, b in itertools.pairwise(path):
            ratio = abs(b - a) / self.E_step
            if abs(ratio - round(ratio)) > 1e-6 * max(1.0, ratio):
                raise _error(
                    kind,
                    "E_step",
                    f"got {self.E_step:g}, which divides the sweep from {a:g} to {b:g} V into "
                    f"{ratio:.6g} steps; accepted: a step that divides every sweep",
                )

    @property
    def scan_rate(self) -> float:
        """The nominal scan rate ``E_step / t_step`` (V/s)."""
        return self.E_step / self.t_step

    @property
    def steps(self) -> int:
        """Number of steps of the whole staircase (every cycle), counted without laying
        them out (a spec's implied sizes are checked before anything is allocated)."""
        path = (self.E_start, *self.vertices, self.E_end)
        per_cycle = 1 + sum(round(abs(b - a) / self.E_step) for a, b in itertools.pairwise(path))
        return per_cycle * self.cycles

    @property
    def jumps(self) -> int:
        """Number of potential jumps after step 0: every step of a sweep, and the return
        to ``E_start`` at each further cycle when ``E_end`` differs from it."""
        returns = (self.cycles - 1) * int(self.E_end != self.E_start)
        return self.steps - self.cycles + returns

    def levels(self) -> FloatArray:
        """The potential (V) of every step, in order."""
        path = (self.E_start, *self.vertices, self.E_end)
        pieces = [np.array([self.E_start])]
        for a, b in itertools.pairwise(path):
            n = round(abs(b - a) / self.E_step)
            # The corner itself ends each sweep, free of rounding in the steps.
            pieces.append(a + (b - a) * np.arange(1, n + 1, dtype=np.float64) / n)
        one = np.concatenate(pieces)
        return np.tile(one, self.cycles) if self.cycles > 1 else one

    def sample_times(self) -> FloatArray:
        """When each step's current is sampled (s): the end of its sampling window."""
        return (np.arange(self.steps, dtype=np.float64) + self.sample[1]) * self.t_step


def _sample(kind: str, value: object) -> tuple[float, float]:
    """A sampling point ``b`` or window ``(a, b)``, fractions of a step, ``0 <= a <= b <= 1``
    and ``b > 0`` (at the very start of a step the current is that of the jump itself)."""
    accepted = "a fraction b in (0, 1] of the step, or a window [a, b] with 0 <= a < b <= 1"
    items = value if isinstance(value, tuple | list) else (value, value)
    if len(items) != 2 or not all(
        isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in items
    ):
        raise _error(kind, "sample", f"got {value!r}; accepted: {accepted}")
    a, b = float(items[0]), float(items[1])
    if not (0.0 <= a <= b <= 1.0 and b > 0.0):
        raise _error(kind, "sample", f"got {value!r}; accepted: {accepted}")
    return a, b


Waveform: TypeAlias = (
    CyclicVoltammetry | LinearSweep | Chronoamperometry | SquareWave | Piecewise | Staircase
)
"""Any waveform."""

TYPES: tuple[str, ...] = ("cv", "lsv", "ca", "swv", "piecewise", "staircase_cv", "staircase_lsv")
"""The ``type`` of every waveform class."""


def breakpoints(wf: Waveform) -> tuple[FloatArray, FloatArray]:
    """The corners ``(t s, E V)`` of the piecewise-linear waveform, from t = 0 to its end.

    Times are non-decreasing; two corners at the same time make a jump (the value
    after the jump is the later one). A waveform that starts away from its rest
    potential (:func:`initial_potential`) starts with a jump that is not a corner:
    before t = 0 the cell rests there.
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
    if isinstance(wf, Staircase):
        edges = np.arange(wf.steps + 1, dtype=np.float64) * wf.t_step
        return np.repeat(edges, 2)[1:-1], np.repeat(wf.levels(), 2)
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
    # Closed forms where they exist: the physics engine's scales are built from this
    # number, so it must not depend on how rounding accumulates along the corners.
    if isinstance(wf, CyclicVoltammetry):
        path = (wf.E_start, *wf.vertices, wf.E_end)
        span = sum(abs(b - a) for a, b in itertools.pairwise(path))
        return wf.cycles * span / wf.scan_rate
    if isinstance(wf, LinearSweep):
        return abs(wf.E_end - wf.E_start) / wf.scan_rate
    if isinstance(wf, Chronoamperometry):
        return sum(s.duration for s in wf.steps)
    if isinstance(wf, SquareWave):
        return wf.periods / wf.frequency
    if isinstance(wf, Staircase):
        return wf.steps * wf.t_step
    return wf.points[-1][0]


def period(wf: Waveform) -> float:
    """Duration of one repetition (s): one cycle of a CV, the whole waveform otherwise.

    Slow drift of the simulated cell ("k0 falls 3 % per cycle") is counted in these.
    """
    if isinstance(wf, CyclicVoltammetry | Staircase):
        return duration(wf) / wf.cycles
    return duration(wf)


def initial_potential(wf: Waveform) -> float:
    """The potential (V) the cell rests at before t = 0."""
    if isinstance(wf, Chronoamperometry):
        return wf.E_initial
    if isinstance(wf, CyclicVoltammetry | LinearSweep | SquareWave | Staircase):
        return wf.E_start
    return wf.points[0][1]


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
    """The fastest sweep (V/s) in the waveform; jumps (steps, pulses) do not count, but a
    staircase sweeps at its nominal scan rate ``E_step / t_step``."""
    if isinstance(wf, CyclicVoltammetry | LinearSweep | Staircase):
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
    ``k / rate`` for k = 1 .. floor(duration * rate) (the first sample one interval in).
    A staircase is reported once per step, whatever the rate (:meth:`Staircase.sample_times`).
    """
    if isinstance(wf, Staircase):
        return wf.sample_times()
    n = math.floor(duration(wf) * sample_rate + 1e-9)
    return np.arange(1, n + 1, dtype=np.float64) / sample_rate


def describe(wf: Waveform) -> str:
    """A one-line description of the waveform with its fields, for logs and errors."""
    parts = ", ".join(f"{f.name}={getattr(wf, f.name)!r}" for f in fields(wf) if f.name != "type")
    return f"{wf.type}({parts})"
