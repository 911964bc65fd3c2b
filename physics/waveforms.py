"""The discretization of applied-potential waveforms into the engine's time steps.

The waveforms themselves are the shared vocabulary (:mod:`runtime.waveforms`); what is
physics is how they are stepped through. A waveform is cut into segments (sweeps and
holds, each possibly starting with a potential jump). Sweeps advance by at most one
potential step per time step; after a jump the steps start small and grow
geometrically, because the current right after a jump varies like ``t**-0.5`` and a
uniform step would miss it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from physics.errors import NumericalError, ParameterError
from runtime.waveforms import (
    Chronoamperometry,
    CyclicVoltammetry,
    LinearSweep,
    Piecewise,
    SquareWave,
    Waveform,
)

__all__ = [
    "Segment",
    "SquareWaveCurrents",
    "TimeSteps",
    "segments",
    "square_wave_currents",
    "time_steps",
    "trace_steps",
]

FloatArray = npt.NDArray[np.float64]

# After a jump: first reported step as a fraction of the segment, geometric growth,
# and steps per hold once the growth stops (all divided/multiplied by `refine`).
_HOLD_FIRST = {"ca": 1e-5, "swv": 1e-3, "piecewise": 1e-5, "cv": 1.0}
_HOLD_STEPS = {"ca": 100, "swv": 12, "piecewise": 100, "cv": 100}
_GROWTH = 0.12
# Beyond this many time steps a run would take minutes and gigabytes; the scenario's
# time scales are then too far apart for a 1D simulation at the requested resolution.
MAX_STEPS = 50_000_000


@dataclass(frozen=True, slots=True)
class Segment:
    """A linear piece of the waveform: ``E_from -> E_to`` (V) over ``duration`` (s).

    ``jump`` says the potential jumps to ``E_from`` at the segment's start.
    """

    duration: float
    E_from: float
    E_to: float
    jump: bool


@dataclass(frozen=True, slots=True)
class SquareWaveCurrents:
    """Square-wave currents sampled at the end of each pulse, per staircase tread:
    ``E_base`` (V), ``I_forward``, ``I_reverse`` and ``I_net = I_forward - I_reverse`` (A)."""

    E_base: FloatArray
    I_forward: FloatArray
    I_reverse: FloatArray
    I_net: FloatArray


@dataclass(frozen=True, slots=True)
class TimeSteps:
    """The discretized waveform: step sizes ``h`` (s), the applied potential ``E`` (V)
    at each step's end, and ``restart`` (a discontinuity just before the step).

    ``t`` holds the end time of each step (s); ``E_initial`` is the potential at t = 0
    (before any jump) and ``output`` indexes the steps whose values are reported (all
    of them for scenario waveforms, one per sample for measured traces).
    """

    h: FloatArray
    t: FloatArray
    E: FloatArray
    restart: npt.NDArray[np.bool_]
    E_initial: float
    output: npt.NDArray[np.int64]

    @property
    def count(self) -> int:
        """Number of time steps."""
        return int(self.h.size)


def segments(wf: Waveform, *, start_jump: bool) -> tuple[list[Segment], str, float]:
    """Cut a waveform into segments; returns ``(segments, kind, E_initial)``.

    ``start_jump`` says the cell is not at rest at the first potential, so the first
    segment is treated as starting with a jump (refined steps).
    """
    out: list[Segment] = []
    if isinstance(wf, CyclicVoltammetry):
        path = (wf.E_start, *wf.vertices, wf.E_end)
        back = wf.E_end != wf.E_start  # each further cycle jumps back to E_start
        for cycle in range(wf.cycles):
            for i, (a, b) in enumerate(itertools.pairwise(path)):
                jump = i == 0 and (start_jump if cycle == 0 else back)
                out.append(Segment(abs(b - a) / wf.scan_rate, a, b, jump))
        return out, "cv", wf.E_start
    if isinstance(wf, LinearSweep):
        out.append(
            Segment(abs(wf.E_end - wf.E_start) / wf.scan_rate, wf.E_start, wf.E_end, start_jump)
        )
        return out, "cv", wf.E_start
    if isinstance(wf, Chronoamperometry):
        previous = wf.E_initial
        for i, step in enumerate(wf.steps):
            jump = previous != step.E or (i == 0 and start_jump)
            out.append(Segment(step.duration, step.E, step.E, jump))
            previous = step.E
        return out, "ca", wf.E_initial
    if isinstance(wf, SquareWave):
        direction = 1.0 if wf.E_end > wf.E_start else -1.0
        half = 0.5 / wf.frequency
        for k in range(wf.periods):
            base = wf.E_start + direction * k * wf.E_step
            forward = base + direction * wf.amplitude
            reverse = base - direction * wf.amplitude
            out.append(Segment(half, forward, forward, True))
            out.append(Segment(half, reverse, reverse, True))
        return out, "swv", wf.E_start
    assert isinstance(wf, Piecewise)
    pts = wf.points
    jump = start_jump
    for (t0, e0), (t1, e1) in itertools.pairwise(pts):
        if t1 == t0:
            jump = jump or e1 != e0
            continue
        out.append(Segment(t1 - t0, e0, e1, jump))
        jump = False
    return out, "piecewise", pts[0][1]


def time_steps(
    wf: Waveform,
    *,
    potential_step: float,
    refine: float,
    start_jump: bool,
    rc_time: float = 0.0,
) -> TimeSteps:
    """Discretize a scenario waveform (see the module docstring for the rules).

    ``rc_time`` (s) is the cell's Ru Cdl time constant: where a segment starts with a
    jump or a kink and the regular step would not resolve it, the steps are graded
    from a twentieth of it, so that the charging transient is followed accurately.
    """
    segs, kind, E_initial = segments(wf, start_jump=start_jump)
    dE = potential_step / refine
    growth = 1.0 + _GROWTH / refine
    hs: list[FloatArray] = []
    Es: list[FloatArray] = []
    rs: list[npt.NDArray[np.bool_]] = []
    outs: list[npt.NDArray[np.bool_]] = []
    rc_first = rc_time / (20.0 * refine)
    _check_count(segs, kind, dE, refine)
    for seg in segs:
        span = abs(seg.E_to - seg.E_from)
        if span > 0:
            n_uniform = max(1, math.ceil(span / dE - 1e-9))
        else:
            n_uniform = max(1, math.ceil(_HOLD_STEPS[kind] * refine))
        h_target = seg.duration / n_uniform
        # Unresolved charging costs a relative error of about rc_time / h on the first
        # step only, so time constants far below the step are left alone.
        resolve_rc = h_target > 4.0 * rc_first and rc_time > 1e-3 * h_target
        if seg.jump:
            h_first = min(h_target, seg.duration * _HOLD_FIRST[kind] / refine)
            if resolve_rc:
                h_first = min(h_first, rc_first)
            h, shown = _graded(seg.duration, h_first, h_target, growth, startup=True)
        elif resolve_rc:
            h, shown = _graded(seg.duration, rc_first, h_target, growth, startup=False)
        else:
            h = np.full(n_uniform, h_target)
            shown = np.ones(n_uniform, dtype=np.bool_)
        frac = np.cumsum(h) / seg.duration
        frac[-1] = 1.0
        restart = np.zeros(h.size, dtype=np.bool_)
        restart[0] = seg.jump
        hs.append(h)
        Es.append(seg.E_from + (seg.E_to - seg.E_from) * frac)
        rs.append(restart)
        outs.append(shown)
    h_all = np.concatenate(hs)
    restart_all = np.concatenate(rs)
    restart_all[0] = True  # no history before t = 0
    return TimeSteps(
        h=h_all,
        t=np.cumsum(h_all),
        E=np.concatenate(Es),
        restart=restart_all,
        E_initial=E_initial,
        output=np.flatnonzero(np.concatenate(outs)).astype(np.int64),
    )


# After a jump the current is singular (t**-0.5) and the first implicit steps carry
# an O(1) error (backward Euler overestimates the first flux by sqrt(pi)) that BDF2
# then carries along. Starting the geometric sequence this many-fold below the first
# reported step, and not reporting those start-up steps, leaves the reported values
# with the small self-similar error of the geometric sequence alone (~0.2 % of a
# Cottrell current at 12 % growth).
_STARTUP_SPAN = 400.0


def _check_count(segs: list[Segment], kind: str, dE: float, refine: float) -> None:
    spans = np.array([abs(s.E_to - s.E_from) for s in segs])
    holds = np.count_nonzero(spans == 0) * math.ceil(_HOLD_STEPS[kind] * refine)
    total = int(np.sum(np.ceil(spans / dE))) + holds
    if total > MAX_STEPS:
        raise NumericalError(
            f"the waveform would need about {total:.3g} time steps (potential step "
            f"{dE * 1e3:.3g} mV over {len(segs)} segments); at most {MAX_STEPS:.3g} are "
            "allowed: use fewer cycles, a narrower window or a larger numerics.potential_step"
        )


def _graded(
    duration: float, h_first: float, h_target: float, growth: float, *, startup: bool
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Steps growing geometrically from ``h_first`` to ``h_target``, then uniform,
    summing exactly to ``duration``. With ``startup`` (after a jump) the sequence
    starts further down and those start-up steps are marked as not reported."""
    n_startup = math.ceil(math.log(_STARTUP_SPAN) / math.log(growth)) if startup else 0
    h_start = h_first * growth ** (-n_startup)
    if h_start >= h_target:
        n = max(1, round(duration / h_target))
        return np.full(n, duration / n), np.ones(n, dtype=np.bool_)
    n_geo = math.ceil(math.log(h_target / h_start) / math.log(growth))
    geo = h_start * growth ** np.arange(n_geo)
    keep = int(np.searchsorted(np.cumsum(geo), duration * 0.5))
    geo = geo[:keep]
    rest = duration - float(geo.sum())
    n_rest = max(1, math.ceil(rest / h_target - 1e-9))
    h = np.concatenate([geo, np.full(n_rest, rest / n_rest)])
    shown = np.ones(h.size, dtype=np.bool_)
    shown[: min(n_startup, keep)] = False
    return h, shown


def trace_steps(
    t: FloatArray, E: FloatArray, *, t0: float, E0: float, potential_step: float
) -> TimeSteps:
    """Time steps along a measured trace: samples ``(t, E)`` after the state ``(t0, E0)``.

    The potential is taken as linear between samples, with enough sub-steps that it
    changes by at most ``potential_step`` (V) per step. ``output`` indexes the steps
    that end on a sample.
    """
    t = np.asarray(t, dtype=np.float64)
    E = np.asarray(E, dtype=np.float64)
    if t.ndim != 1 or E.shape != t.shape:
        raise ParameterError(
            f"t and E must be 1-D arrays of equal length; got shapes {t.shape} and {E.shape}"
        )
    if t.size == 0:
        raise ParameterError("t is empty; accepted: at least one sample")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(E))):
        raise ParameterError("t and E must be finite")
    tt = np.concatenate([[t0], t])
    EE = np.concatenate([[E0], E])
    dt = np.diff(tt)
    if np.any(dt <= 0):
        i = int(np.argmax(dt <= 0))
        raise ParameterError(
            f"t[{i}] = {t[i]!r} is not after the previous time {tt[i]!r}; "
            "accepted: strictly increasing times"
        )
    dE = np.diff(EE)
    n = np.maximum(1, np.ceil(np.abs(dE) / potential_step - 1e-9)).astype(np.int64)
    if int(n.sum()) > MAX_STEPS:
        raise NumericalError(
            f"the trace would need {int(n.sum()):.3g} sub-steps of at most "
            f"{potential_step * 1e3:.3g} mV; at most {MAX_STEPS:.3g} are allowed per call"
        )
    h = np.repeat(dt / n, n)
    ends = np.cumsum(n)
    starts = ends - n
    # Sub-step j (1..n) of interval i ends at fraction j/n of the interval.
    j = np.arange(int(ends[-1])) - np.repeat(starts, n) + 1
    frac = j / np.repeat(n, n)
    E_steps = np.repeat(EE[:-1], n) + np.repeat(dE, n) * frac
    t_steps = np.repeat(tt[:-1], n) + np.repeat(dt, n) * frac
    output = ends - 1
    E_steps[output] = E  # exact sample values, free of rounding in the interpolation
    t_steps[output] = t
    return TimeSteps(
        h=h,
        t=t_steps,
        E=E_steps,
        restart=np.zeros(h.size, dtype=np.bool_),
        E_initial=float(E0),
        output=output.astype(np.int64),
    )


def square_wave_currents(wf: SquareWave, t: FloatArray, I: FloatArray) -> SquareWaveCurrents:  # noqa: E741
    """Sample a simulated square-wave trace ``(t s, I A)`` at the end of every pulse."""
    periods = wf.periods
    half = 0.5 / wf.frequency
    ends = half * np.arange(1, 2 * periods + 1)
    # The last reported step of each pulse ends exactly at the pulse's end.
    idx = np.clip(np.searchsorted(t, ends * (1 - 1e-12)), 0, t.size - 1)
    sampled = np.asarray(I)[idx]
    direction = 1.0 if wf.E_end > wf.E_start else -1.0
    forward = sampled[0::2]
    reverse = sampled[1::2]
    return SquareWaveCurrents(
        E_base=wf.E_start + direction * wf.E_step * np.arange(periods, dtype=np.float64),
        I_forward=forward,
        I_reverse=reverse,
        I_net=forward - reverse,
    )
