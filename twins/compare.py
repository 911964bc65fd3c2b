"""Two runs on one axis: how far apart they are, and how far their peaks moved.

Any run with samples is a :class:`Trace` (a simulation, an acquisition, a replay, an
import: they are the same kind of data): time ``t`` (s), potential ``E`` (V), current
``I`` (A, anodic positive), and each sample's ``sweep`` (0-based; a vertex ends one)
and ``cycle`` (1-based, as the potentiostat counts scans). The labels come from the
caller (``hal.files.analysis`` finds them in measured potentials, noise and all).

On the potential axis (``axis="E"``) a voltammogram is not a function of E, so each
sweep is compared with its counterpart: the k-th anodic (or cathodic) sweep of cycle N
of one run with the k-th of the same kind and cycle of the other. A sweep's holds (the
rest before a cycle, a dwell at a vertex) are left out and its potential is the ramp
fitted to the measured one against time (the potential the instrument applied, without
the noise that would reorder samples when the steps are finer than it), and both are
interpolated onto a common potential grid over the potentials both sweep, at the
coarser of their two steps. On the time axis
(``axis="t"``) the second run is interpolated at the first one's sample times where
both have samples (with ``cycle`` given: time since each run's first sample of it).
Interpolating a run at its own nodes returns its values, so a run compared with
itself, or with its replay, differs by exactly zero.

Reported (:class:`Comparison`): the difference B - A as RMS (A), relative to A's
largest current over the compared samples, and largest magnitude; per cycle, each
run's anodic and cathodic peak (:func:`physics.peaks.find_peaks` on each sweep, the
largest of each kind) and the shift B - A of their potential, current and time, with
the ratio of the peak currents.

Example::

    result = compare(trace_a, trace_b, axis="E")
    result.rms, result.peaks[0].dE
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from physics.peaks import Peak, find_peaks
from twins.errors import CompareError

__all__ = ["ComparedSegment", "Comparison", "PeakShift", "Trace", "compare"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
AxisName = Literal["E", "t"]
Kind = Literal["anodic", "cathodic"]


@dataclass(frozen=True, slots=True, eq=False)
class Trace:
    """One run's samples with their labels (see the module docstring); ``name`` says
    which run it is in messages. Non-finite samples are left out by :meth:`of`."""

    name: str
    t: FloatArray
    E: FloatArray
    I: FloatArray  # noqa: E741 - the electrochemist's name for current
    sweep: IntArray
    cycle: IntArray

    @classmethod
    def of(
        cls,
        name: str,
        t: npt.ArrayLike,
        E: npt.ArrayLike,
        I: npt.ArrayLike,  # noqa: E741
        *,
        sweep: npt.ArrayLike,
        cycle: npt.ArrayLike,
    ) -> Trace:
        """A trace from columns of equal length, its non-finite samples left out."""
        tt, EE, II = (np.asarray(c, dtype=np.float64) for c in (t, E, I))
        sw, cy = (np.asarray(c, dtype=np.int64) for c in (sweep, cycle))
        n = tt.shape[0]
        if any(c.shape != (n,) for c in (tt, EE, II, sw, cy)):
            shapes = ", ".join(str(c.shape) for c in (tt, EE, II, sw, cy))
            raise CompareError(f"{name}: columns t, E, I, sweep, cycle differ in shape: {shapes}")
        ok = np.isfinite(tt) & np.isfinite(EE) & np.isfinite(II)
        if not ok.any():
            raise CompareError(f"{name} has no samples with a finite time, potential and current")
        return cls(name, tt[ok], EE[ok], II[ok], sw[ok], cy[ok])

    @property
    def cycles(self) -> tuple[int, ...]:
        """The cycles the trace has samples in, ascending."""
        return tuple(int(c) for c in np.unique(self.cycle))


@dataclass(frozen=True, slots=True, eq=False)
class ComparedSegment:
    """One stretch compared: on the potential axis a sweep pair (``cycle``, ``kind``,
    ``index``: the k-th sweep of that kind in the cycle), on the time axis a cycle (or
    the whole run, ``cycle`` 0, ``kind`` ``""``); ``x`` the common axis (V or s) in the
    order the samples were measured, ``I_a`` and ``I_b`` the currents there (A)."""

    cycle: int
    kind: str
    index: int
    x: FloatArray
    I_a: FloatArray
    I_b: FloatArray

    @property
    def difference(self) -> FloatArray:
        """``I_b - I_a`` (A)."""
        return self.I_b - self.I_a


@dataclass(frozen=True, slots=True)
class PeakShift:
    """Cycle ``cycle``'s ``kind`` peak of each run (None where a run has none) and the
    shifts B - A: ``dE`` (V), ``dI`` (A), ``dt`` (s), ``ratio`` of currents (B/A)."""

    cycle: int
    kind: Kind
    a: Peak | None
    b: Peak | None

    @property
    def dE(self) -> float | None:  # noqa: N802 - the electrochemist's name
        """Peak potential shift B - A (V)."""
        return None if self.a is None or self.b is None else self.b.E - self.a.E

    @property
    def dI(self) -> float | None:  # noqa: N802 - the electrochemist's name
        """Peak current shift B - A (A)."""
        return None if self.a is None or self.b is None else self.b.I - self.a.I

    @property
    def dt(self) -> float | None:
        """Peak time shift B - A (s)."""
        return None if self.a is None or self.b is None else self.b.t - self.a.t

    @property
    def ratio(self) -> float | None:
        """Peak current ratio B / A."""
        if self.a is None or self.b is None or self.a.I == 0:
            return None
        return self.b.I / self.a.I

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON (SI units)."""
        return {
            "cycle": self.cycle,
            "kind": self.kind,
            "a": None if self.a is None else self.a.as_dict(),
            "b": None if self.b is None else self.b.as_dict(),
            "dE": self.dE,
            "dI": self.dI,
            "dt": self.dt,
            "ratio": self.ratio,
        }


@dataclass(frozen=True, slots=True, eq=False)
class Comparison:
    """The result of :func:`compare` (see the module docstring). ``peak``: A's largest
    |I| over the compared samples (A), the scale of ``rms_relative``."""

    a: str
    b: str
    axis: AxisName
    cycles: tuple[int, ...]
    segments: tuple[ComparedSegment, ...]
    peaks: tuple[PeakShift, ...]
    points: int
    rms: float
    rms_relative: float
    max_abs: float
    peak: float

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON (SI units); the compared samples themselves are left out."""
        return {
            "a": self.a,
            "b": self.b,
            "axis": self.axis,
            "cycles": list(self.cycles),
            "points": self.points,
            "rms": self.rms,
            "rms_relative": self.rms_relative,
            "max_abs": self.max_abs,
            "peak": self.peak,
            "segments": [
                {
                    "cycle": s.cycle,
                    "kind": s.kind,
                    "index": s.index,
                    "points": int(s.x.size),
                    "from": float(s.x[0]),
                    "to": float(s.x[-1]),
                    "rms": _rms(s.difference),
                }
                for s in self.segments
            ],
            "peaks": [p.as_dict() for p in self.peaks],
        }


def compare(a: Trace, b: Trace, *, axis: AxisName = "E", cycle: int | None = None) -> Comparison:
    """Compare ``b`` with ``a`` on ``axis`` (``"E"`` or ``"t"``), over every cycle both
    have or only ``cycle``; :class:`CompareError` when they share nothing to compare."""
    if axis not in ("E", "t"):
        raise CompareError(f"axis {axis!r} is not accepted; accepted: E, t")
    cycles = _cycles(a, b, cycle)
    a_in, b_in = _only(a, cycles), _only(b, cycles)
    sweeps_a, sweeps_b = _sweeps(a_in), _sweeps(b_in)
    if axis == "E":
        segments = _potential_segments(a_in, b_in, sweeps_a, sweeps_b, cycles)
    else:
        segments = (_time_segment(a_in, b_in, cycle),)
    difference = np.concatenate([s.difference for s in segments])
    reference = np.concatenate([s.I_a for s in segments])
    peak = float(np.max(np.abs(reference)))
    rms = _rms(difference)
    peaks = tuple(
        PeakShift(c, kind, _peak(sweeps_a, c, kind), _peak(sweeps_b, c, kind))
        for c in cycles
        for kind in ("anodic", "cathodic")
    )
    return Comparison(
        a.name,
        b.name,
        axis,
        cycles,
        segments,
        peaks,
        int(difference.size),
        rms,
        rms / peak if peak > 0 else math.inf if rms > 0 else 0.0,
        float(np.max(np.abs(difference))),
        peak,
    )


# --- cycles and sweeps -----------------------------------------------------------------


def _cycles(a: Trace, b: Trace, cycle: int | None) -> tuple[int, ...]:
    common = tuple(sorted(set(a.cycles) & set(b.cycles)))
    if cycle is not None:
        for trace in (a, b):
            if cycle not in trace.cycles:
                raise CompareError(
                    f"{trace.name} has no cycle {cycle}; it has {_span(trace.cycles)}"
                )
        return (cycle,)
    if not common:
        raise CompareError(
            f"{a.name} (cycles {_span(a.cycles)}) and {b.name} (cycles {_span(b.cycles)}) "
            "have no cycle in common"
        )
    return common


def _span(cycles: tuple[int, ...]) -> str:
    if len(cycles) > 1 and cycles == tuple(range(cycles[0], cycles[-1] + 1)):
        return f"{cycles[0]}-{cycles[-1]}"
    return ", ".join(map(str, cycles))


def _only(trace: Trace, cycles: tuple[int, ...]) -> Trace:
    keep = np.isin(trace.cycle, cycles)
    return Trace(
        trace.name,
        trace.t[keep],
        trace.E[keep],
        trace.I[keep],
        trace.sweep[keep],
        trace.cycle[keep],
    )


@dataclass(frozen=True, slots=True, eq=False)
class _Sweep:
    cycle: int
    kind: Kind
    index: int
    t: FloatArray
    E: FloatArray
    I: FloatArray  # noqa: E741


def _sweeps(trace: Trace) -> dict[tuple[int, Kind, int], _Sweep]:
    """The trace's sweeps by (cycle, kind, k), each cut to the samples that sweep (see
    :func:`_swept`)."""
    # A stretch is a run of samples with one (cycle, sweep) label: a scan may start in
    # the middle of a sweep, and then the sweep belongs half to each cycle.
    label = trace.cycle * (int(trace.sweep.max()) + 1) + trace.sweep
    bounds = np.flatnonzero(np.diff(label)) + 1
    starts = np.concatenate([[0], bounds])
    stops = np.concatenate([bounds, [label.size]])
    out: dict[tuple[int, Kind, int], _Sweep] = {}
    counts: dict[tuple[int, Kind], int] = {}
    for start, stop in zip(starts.tolist(), stops.tolist(), strict=True):
        s = slice(start, stop)
        t, E = trace.t[s], trace.E[s]
        if E.size < 3 or E[-1] == E[0]:
            continue  # a hold, or a lone sample or two
        direction = 1.0 if E[-1] > E[0] else -1.0
        swept = _swept(t, E * direction)
        if swept is None:
            continue  # a hold whose noise looked like a sweep
        keep, potential = swept
        cycle = int(trace.cycle[start])
        kind: Kind = "anodic" if direction > 0 else "cathodic"
        k = counts.get((cycle, kind), 0)
        counts[(cycle, kind)] = k + 1
        out[(cycle, kind, k)] = _Sweep(
            cycle, kind, k, t[keep], potential * direction, trace.I[s][keep]
        )
    return out


def _swept(t: FloatArray, signed: FloatArray) -> tuple[npt.NDArray[np.bool_], FloatArray] | None:
    """The samples of one stretch (its potential times its direction) that sweep, and
    their potential along the sweep; None for a hold.

    A hold at either end (the rest before a cycle, a dwell at a vertex) is what lies
    within 5 noise sd (from the potential's second differences) of the stretch's
    starting or ending level. The rest is one ramp (a sweep runs at one scan rate), so its
    potential is the line fitted against time: the ramp the potentiostat applied, with
    the measured noise gone, however small the steps are beside it. A stretch that is no
    single ramp (the residual above 3 noise sd) keeps its measured potential, only the
    samples that go beyond every earlier and stop short of every later one by 3 sd."""
    d2 = np.diff(signed, 2)
    noise = 1.4826 * float(np.median(np.abs(d2 - np.median(d2)))) / math.sqrt(6.0)
    head, tail = float(np.median(signed[:5])), float(np.median(signed[-5:]))
    moving = (signed > head + 5.0 * noise) & (signed < tail - 5.0 * noise)
    if np.count_nonzero(moving) < 3:
        return None
    slope, intercept = np.polyfit(t[moving], signed[moving], 1)
    ramp: FloatArray = intercept + slope * t[moving]
    if slope > 0 and _rms(signed[moving] - ramp) <= max(3.0 * noise, 1e-6):
        return moving, ramp
    before = np.concatenate([[-np.inf], np.maximum.accumulate(signed)[:-1]])
    after = np.concatenate([np.minimum.accumulate(signed[::-1])[::-1][1:], [np.inf]])
    keep = moving & (signed > before + 3.0 * noise) & (signed < after - 3.0 * noise)
    if np.count_nonzero(keep) < 3:
        return None
    return keep, signed[keep]


def _potential_segments(
    a: Trace,
    b: Trace,
    sweeps_a: dict[tuple[int, Kind, int], _Sweep],
    sweeps_b: dict[tuple[int, Kind, int], _Sweep],
    cycles: tuple[int, ...],
) -> tuple[ComparedSegment, ...]:
    out: list[ComparedSegment] = []
    for key in sorted(set(sweeps_a) & set(sweeps_b)):
        sa, sb = sweeps_a[key], sweeps_b[key]
        lo = max(float(np.min(sa.E)), float(np.min(sb.E)))
        hi = min(float(np.max(sa.E)), float(np.max(sb.E)))
        if not hi > lo:
            continue
        step = max(_step(sa.E), _step(sb.E))
        n = max(2, round((hi - lo) / step) + 1)
        grid = np.linspace(lo, hi, n)
        if sa.kind == "cathodic":
            grid = grid[::-1]  # in the order the sweep ran
        out.append(
            ComparedSegment(key[0], key[1], key[2], grid, _along(sa, grid), _along(sb, grid))
        )
    if not out:
        raise CompareError(
            f"{a.name} ({_window(a)}) and {b.name} ({_window(b)}) sweep no potential range "
            f"in common in cycle(s) {_span(cycles)}; compare them with --axis t"
        )
    return tuple(out)


def _step(E: FloatArray) -> float:
    """A sweep's typical potential step (V)."""
    return float(np.median(np.abs(np.diff(E))))


def _along(sweep: _Sweep, grid: FloatArray) -> FloatArray:
    """The sweep's current interpolated at the potentials ``grid`` (V)."""
    order = slice(None) if sweep.kind == "anodic" else slice(None, None, -1)
    current: FloatArray = np.interp(grid, sweep.E[order], sweep.I[order])
    return current


def _window(trace: Trace) -> str:
    return f"{float(np.min(trace.E)):.4g} V to {float(np.max(trace.E)):.4g} V"


def _time_segment(a: Trace, b: Trace, cycle: int | None) -> ComparedSegment:
    ta = a.t - a.t[0] if cycle is not None else a.t
    tb = b.t - b.t[0] if cycle is not None else b.t
    lo, hi = max(ta[0], tb[0]), min(ta[-1], tb[-1])
    keep = (ta >= lo) & (ta <= hi)
    if not hi >= lo or np.count_nonzero(keep) < 2:
        since = f" since the start of cycle {cycle}" if cycle is not None else ""
        raise CompareError(
            f"{a.name} ({ta[0]:.6g} s to {ta[-1]:.6g} s{since}) and {b.name} "
            f"({tb[0]:.6g} s to {tb[-1]:.6g} s) have no time in common"
        )
    x = ta[keep]
    return ComparedSegment(cycle or 0, "", 0, x, a.I[keep], np.interp(x, tb, b.I))


# --- peaks ----------------------------------------------------------------------------------


def _peak(sweeps: dict[tuple[int, Kind, int], _Sweep], cycle: int, kind: Kind) -> Peak | None:
    """The largest ``kind`` peak of ``cycle`` over its sweeps of that kind."""
    found = [
        _fitted(s, p)
        for s in sweeps.values()
        if s.cycle == cycle and s.kind == kind
        for p in find_peaks(s.t, s.E, s.I)
        if p.kind == kind
    ]
    if not found:
        return None
    return max(found, key=lambda p: abs(p.I))


def _fitted(sweep: _Sweep, peak: Peak) -> Peak:
    """``peak`` refined by a least-squares parabola through the samples around it whose
    current is within 20 noise sd of the top (at most 10 % of the peak; at least five
    samples): on clean data the five nearest samples, on measured data enough of them
    that the noise averages out (on a reversible wave with 0.3 % noise: 0.3 mV sd of a
    peak shift, against 1.5 mV with 4 sd and several steps for the largest sample)."""
    sign = 1.0 if sweep.kind == "anodic" else -1.0
    y = sweep.I * sign
    k = int(np.argmax(y))
    # The current's noise from its second differences (a smooth wave has almost none).
    d2 = np.diff(y, 2)
    noise = 1.4826 * float(np.median(np.abs(d2 - np.median(d2)))) / math.sqrt(6.0)
    band = min(20.0 * noise, 0.1 * abs(float(y[k])))
    below = np.flatnonzero(y[:k] < y[k] - band)
    above = np.flatnonzero(y[k:] < y[k] - band)
    lo = min(int(below[-1]) + 1 if below.size else 0, max(0, k - 2))
    hi = max(k + int(above[0]) if above.size else y.size, min(y.size, k + 3))
    if hi - lo < 5:
        return peak
    x = sweep.E[lo:hi] - sweep.E[k]
    c2, c1, c0 = np.polyfit(x, y[lo:hi], 2)
    if not c2 < 0:
        return peak
    vertex = -c1 / (2.0 * c2)
    if not x.min() <= vertex <= x.max():
        return peak
    E = float(sweep.E[k] + vertex)
    order = slice(None) if sweep.kind == "anodic" else slice(None, None, -1)
    t = float(np.interp(E, sweep.E[order], sweep.t[order]))
    return Peak(E=E, I=float(sign * (c0 - c1 * c1 / (4.0 * c2))), kind=peak.kind, t=t)


def _rms(values: FloatArray) -> float:
    return float(np.sqrt(np.mean(values**2))) if values.size else 0.0
