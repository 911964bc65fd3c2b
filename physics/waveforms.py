"""The discretization of applied-potential waveforms into the engine's time steps.

The waveforms themselves are the shared vocabulary (:mod:`runtime.waveforms`); what is
physics is how they are stepped through. A waveform is cut into segments (sweeps and
holds, each possibly starting with a potential jump). Sweeps advance by at most one
potential step per time step; after a jump the steps start small and grow
geometrically, because the current right after a jump varies like ``t**-0.5`` and a
uniform step would miss it.
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from physics.errors import NumericalError, ParameterError, ResolutionWarning
from runtime.waveforms import (
    Chronoamperometry,
    CyclicVoltammetry,
    LinearSweep,
    Piecewise,
    SquareWave,
    Staircase,
    Waveform,
)

__all__ = [
    "Segment",
    "SquareWaveCurrents",
    "TimeSteps",
    "segments",
    "square_wave_currents",
    "staircase_time_steps",
    "time_steps",
    "trace_steps",
    "with_ac",
]

FloatArray = npt.NDArray[np.float64]

# After a jump: first reported step as a fraction of the segment, geometric growth,
# and steps per hold once the growth stops (all divided/multiplied by `refine`).
_HOLD_FIRST = {"ca": 1e-5, "swv": 1e-3, "piecewise": 1e-5, "cv": 1.0}
_HOLD_STEPS = {"ca": 100, "swv": 12, "piecewise": 100, "cv": 100}
_GROWTH = 0.12
# A staircase step: the first reported sub-step after its jump as a fraction of the
# step (small, so that a sampling window that opens at the jump integrates the
# t**-0.5 decay accurately), and the uniform sub-steps per step the grading grows to.
_STAIRCASE_FIRST = 1e-5
_STAIRCASE_STEPS = 24
# A trace whose potential holds between jumps needs this many samples per step before
# linear interpolation between samples follows the current (below it, the peak of a
# reversible staircase CV fed as samples comes out several per cent low).
MIN_SAMPLES_PER_STEP = 12
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
    mean_from: npt.NDArray[np.int64] | None = None
    """Where a reported value is a mean over a sampling window (a staircase
    instrument's): the first step of each window, the last being ``output``; a
    value with ``mean_from == output`` is that step's own (so a window always spans two
    steps or more)."""

    @property
    def count(self) -> int:
        """Number of time steps."""
        return int(self.h.size)

    def sampled(self, values: npt.ArrayLike, axis: int = 0) -> FloatArray:
        """The reported values of per-step ``values`` (along ``axis``): the value at each
        ``output`` step, or its time-weighted mean over the sampling window."""
        v = np.moveaxis(np.asarray(values, dtype=np.float64), axis, 0)
        picked = v[self.output]
        if self.mean_from is None or np.array_equal(self.mean_from, self.output):
            return np.moveaxis(picked, 0, axis)
        # A window's mean is its charge over its duration; each step's charge by the
        # trapezoidal rule, except where a jump makes the current at a step's start
        # unknown: the steps that restart (the jump's own, whose end value is its charge
        # over its length, a charging spike included, and the next, whose start is that).
        shape = (-1,) + (1,) * (v.ndim - 1)
        h = self.h.reshape(shape)
        before = np.concatenate([v[:1], v[:-1]])
        restart = self.restart.reshape(shape)
        charge_of_step = np.where(restart, v * h, 0.5 * (before + v) * h)
        weighted = np.concatenate([charge_of_step, np.zeros((1, *v.shape[1:]))])
        bounds = np.stack([self.mean_from, self.output + 1], axis=1).ravel()
        charge = np.add.reduceat(weighted, bounds, axis=0)[0::2]
        span = np.add.reduceat(np.append(self.h, 0.0), bounds)[0::2]
        window = (self.mean_from < self.output).reshape(shape)
        out = np.where(window, charge / span.reshape(shape), picked)
        return np.moveaxis(out, 0, axis)

    def window(self, first: int, stop: int) -> tuple[TimeSteps, int]:
        """The steps that reported values ``first..stop-1`` need, as steps of their own
        (their ``output`` re-indexed), and the index of their first step here: ``part,
        lo = steps.window(a, b)`` then ``part.sampled(values[lo:lo + part.count])`` is
        ``steps.sampled(values)[a:b]``, the same numbers, at the cost of those steps
        alone (a run that reports its values as they come)."""
        output = self.output[first:stop]
        mean_from = None if self.mean_from is None else self.mean_from[first:stop]
        # A window's first step needs the value at its start: the step before's.
        lo = max(int(output.min() if mean_from is None else mean_from.min()) - 1, 0)
        hi = int(output.max()) + 1
        part = TimeSteps(
            h=self.h[lo:hi],
            t=self.t[lo:hi],
            E=self.E[lo:hi],
            restart=self.restart[lo:hi],
            E_initial=self.E_initial,
            output=output - lo,
            mean_from=None if mean_from is None else mean_from - lo,
        )
        return part, lo


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
    if isinstance(wf, Staircase):
        return _staircase_steps(wf, refine=refine, start_jump=start_jump, rc_time=rc_time)
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


def with_ac(
    steps: TimeSteps,
    *,
    amplitude: float,
    frequency: float,
    points_per_period: int,
    jump_first: bool,
) -> TimeSteps:
    """``steps`` with a sine of ``amplitude`` (V) and ``frequency`` (Hz) added to the
    potential, ``E_dc(t) + amplitude sin(2 pi frequency t)``: each step is cut into
    pieces of at most a period / ``points_per_period`` (the DC potential linear along
    a sweep, held after a jump; ``jump_first`` says the first step starts with one),
    and every piece is reported, so that the current is sampled evenly enough for its
    harmonics."""
    h_max = 1.0 / (frequency * points_per_period)
    pieces = np.maximum(1, np.ceil(steps.h / h_max - 1e-9)).astype(np.int64)
    total = int(pieces.sum())
    if total > MAX_STEPS:
        raise NumericalError(
            f"the AC perturbation would need {total:.3g} time steps ({points_per_period} per "
            f"period of {1 / frequency:.3g} s over {float(steps.t[-1]):.3g} s); at most "
            f"{MAX_STEPS:.3g} are allowed: shorten the waveform or lower the frequency"
        )
    owner = np.repeat(np.arange(steps.h.size), pieces)
    first = np.cumsum(pieces) - pieces
    within = (np.arange(total) - first[owner] + 1) / pieces[owner]
    ends = np.cumsum(pieces) - 1
    within[ends] = 1.0
    t_start = steps.t - steps.h
    t = t_start[owner] + steps.h[owner] * within
    t[ends] = steps.t
    E_before = np.concatenate([[steps.E_initial], steps.E[:-1]])
    held = steps.restart.copy()
    held[0] = jump_first
    E_dc = np.where(
        held[owner], steps.E[owner], E_before[owner] + (steps.E - E_before)[owner] * within
    )
    restart = np.zeros(total, dtype=np.bool_)
    restart[first] = steps.restart
    return TimeSteps(
        h=np.diff(np.concatenate([[0.0], t])),
        t=t,
        E=E_dc + amplitude * np.sin(2.0 * math.pi * frequency * t),
        restart=restart,
        E_initial=steps.E_initial,
        output=np.arange(total, dtype=np.int64),
    )


def _staircase_steps(
    wf: Staircase, *, refine: float, start_jump: bool, rc_time: float
) -> TimeSteps:
    """A staircase as applied: each step a hold that starts with a jump, its sub-steps
    graded from the jump (and from a twentieth of Ru Cdl, so each step's charging is
    followed), with a sub-step boundary at each end of the sampling window; one
    reported value per step, at the window's end or its mean over the window."""
    count = staircase_time_steps(wf, refine=refine, start_jump=start_jump, rc_time=rc_time)
    if count > MAX_STEPS:
        raise NumericalError(
            f"the staircase would need {count:.3g} time steps ({wf.steps} steps of "
            f"{wf.t_step:.3g} s); at most {MAX_STEPS:.3g} are allowed: use fewer cycles "
            "or a larger E_step"
        )
    levels = wf.levels()
    n = levels.size
    jump = np.empty(n, dtype=np.bool_)
    jump[0] = start_jump
    jump[1:] = levels[1:] != levels[:-1]
    a, b = wf.sample
    jumped = _step_pattern(wf.t_step, a=a, b=b, refine=refine, rc_time=rc_time, jump=True)
    held = _step_pattern(wf.t_step, a=a, b=b, refine=refine, rc_time=rc_time, jump=False)
    sizes = np.where(jump, jumped.h.size, held.h.size)
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    pattern = [jumped if j else held for j in jump.tolist()]
    h = np.concatenate([p.h for p in pattern])
    # Times from each step's start, so that the sampling times carry no accumulated rounding.
    t = np.concatenate([k * wf.t_step + p.t for k, p in enumerate(pattern)])
    restart = np.zeros(count, dtype=np.bool_)
    restart[first[jump]] = True
    # And the step after: the potential before the jump is no history for the charging
    # current of the steps after it (the jump's own step took the jump's charge).
    restart[first[jump] + 1] = True
    restart[0] = True  # no history before t = 0
    output = first + np.where(jump, jumped.end, held.end)
    mean_from = first + np.where(jump, jumped.start, held.start)
    return TimeSteps(
        h=h,
        t=t,
        E=np.repeat(levels, sizes),
        restart=restart,
        E_initial=wf.E_start,
        output=output.astype(np.int64),
        mean_from=mean_from.astype(np.int64),
    )


def staircase_time_steps(
    wf: Staircase, *, refine: float, start_jump: bool = True, rc_time: float = 0.0
) -> int:
    """How many time steps :func:`time_steps` takes along the staircase ``wf`` (each step
    after a jump graded from it), counted without laying them out."""
    a, b = wf.sample
    jumped = _step_pattern(wf.t_step, a=a, b=b, refine=refine, rc_time=rc_time, jump=True)
    held = _step_pattern(wf.t_step, a=a, b=b, refine=refine, rc_time=rc_time, jump=False)
    jumps = wf.jumps + int(start_jump)
    return jumps * jumped.h.size + (wf.steps - jumps) * held.h.size


@dataclass(frozen=True, slots=True)
class _Pattern:
    """The sub-steps of one staircase step: sizes ``h`` and end times ``t`` from the step's
    start (s), and the indices of the sampling window's first (``start``) and last
    (``end``) sub-step."""

    h: FloatArray
    t: FloatArray
    start: int
    end: int


@functools.lru_cache(maxsize=64)
def _step_pattern(
    t_step: float, *, a: float, b: float, refine: float, rc_time: float, jump: bool
) -> _Pattern:
    growth = 1.0 + _GROWTH / refine
    h_target = t_step / max(_STAIRCASE_STEPS, math.ceil(_STAIRCASE_STEPS * refine))
    if jump:
        h_first = t_step * _STAIRCASE_FIRST / refine
        rc_first = rc_time / (20.0 * refine)
        if h_target > 4.0 * rc_first and rc_time > 1e-3 * h_target:
            h_first = min(h_first, rc_first)
        h, _ = _graded(t_step, h_first, h_target, growth, startup=True)
    else:
        count = math.ceil(t_step / h_target - 1e-9)
        h = np.full(count, t_step / count)
    t = np.cumsum(h)
    t[-1] = t_step
    t = _with_boundary(t, a * t_step)
    t = _with_boundary(t, b * t_step)
    end = int(np.argmin(np.abs(t - b * t_step)))
    if a < b and (t[end - 1] if end > 0 else 0.0) <= a * t_step:
        # A window of one sub-step would read as that sub-step's end value: split it.
        t = np.insert(t, end, 0.5 * (a + b) * t_step)
        end += 1
    ends = np.concatenate([[0.0], t])
    h = np.diff(ends)
    start = end if a == b else int(np.argmin(np.abs(ends[:-1] - a * t_step)))
    t.flags.writeable = False
    h.flags.writeable = False
    return _Pattern(h, t, start, end)


def _with_boundary(t: FloatArray, at: float) -> FloatArray:
    """End times ``t`` with a sub-step ending exactly at ``at`` (the nearest end moves
    there when it is within a hundredth of a sub-step, else the sub-step is split)."""
    if at <= 0.0:
        return t
    i = int(np.searchsorted(t, at))
    i = min(i, t.size - 1)
    before = t[i - 1] if i > 0 else 0.0
    width = t[i] - before
    if abs(t[i] - at) <= 0.01 * width:
        out = t.copy()
        out[i] = at
        return out
    if i > 0 and abs(before - at) <= 0.01 * width:
        out = t.copy()
        out[i - 1] = at
        return out
    return np.insert(t, i, at)


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
    t: FloatArray,
    E: FloatArray,
    *,
    t0: float,
    E0: float,
    potential_step: float,
    jump_at: FloatArray | None = None,
    window: FloatArray | None = None,
    refine: float = 1.0,
    rc_time: float = 0.0,
) -> TimeSteps:
    """Time steps along a measured trace: samples ``(t, E)`` after the state ``(t0, E0)``.

    The potential is taken as linear between samples, with enough sub-steps that it
    changes by at most ``potential_step`` (V) per step. ``output`` indexes the steps
    that end on a sample.

    A staircase instrument's samples say more: ``jump_at`` (s, one per sample, NaN for
    none) is when the potential jumped in the interval before each sample. There the
    potential holds the previous sample's value until ``jump_at[i]``, jumps to ``E[i]``
    and holds it, the sub-steps graded from the jump as in a simulated staircase (and
    from a twentieth of ``rc_time``, Ru Cdl in s, so the charging is followed); while it
    holds, later samples keep the step's resolution. ``window`` (s, one per sample, 0
    for none) makes a sample's value the mean over ``(t[i] - window[i], t[i]]``, the
    instrument's sampling window. Without ``jump_at``, a trace that holds its potential
    between jumps with fewer than :data:`MIN_SAMPLES_PER_STEP` samples per step is
    followed too coarsely, and :class:`~physics.errors.ResolutionWarning` says so.
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
    if jump_at is not None or window is not None:
        jumps = _per_sample("jump_at", jump_at, t.size, np.nan)
        widths = _per_sample("window", window, t.size, 0.0)
        return _stepped_trace(tt, EE, n, jumps, widths, refine=refine, rc_time=rc_time)
    _warn_if_coarse_steps(dE, potential_step)
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


def _per_sample(name: str, values: FloatArray | None, size: int, fill: float) -> FloatArray:
    if values is None:
        return np.full(size, fill)
    out = np.asarray(values, dtype=np.float64)
    if out.shape != (size,):
        raise ParameterError(f"{name} must have one value per sample ({size}); got {out.shape}")
    return out


def _warn_if_coarse_steps(dE: FloatArray, potential_step: float) -> None:
    """Warn when the trace is a staircase (jumps between holds) sampled too coarsely.

    Jumps no larger than ``potential_step`` (V) are not a staircase's: a sweep is
    followed at that step, and an instrument at rest flickers by its last digit."""
    size = np.abs(dE)
    top = float(size.max(initial=0.0))
    if top <= potential_step:
        return
    jumps = size > 0.5 * top
    holds = size <= 0.05 * top
    count = int(np.count_nonzero(jumps))
    if count < 3 or np.any(~jumps & ~holds) or np.any(jumps[1:] & jumps[:-1]):
        return  # a sweep (consecutive jumps), a single step, or noise: not a staircase
    per_step = size.size / count
    if 2.0 <= per_step < MIN_SAMPLES_PER_STEP:
        warnings.warn(
            ResolutionWarning(
                f"the trace holds its potential between jumps of up to {top * 1e3:.3g} mV "
                f"every {per_step:.3g} samples; linear interpolation between samples follows "
                f"the current after a jump only with {MIN_SAMPLES_PER_STEP} or more samples "
                "per step: simulate the staircase itself (waveform staircase_cv) or give "
                "the trace its jump times (jump_at)"
            ),
            stacklevel=4,
        )


def _stepped_trace(
    tt: FloatArray,
    EE: FloatArray,
    n: npt.NDArray[np.int64],
    jumps: FloatArray,
    widths: FloatArray,
    *,
    refine: float,
    rc_time: float,
) -> TimeSteps:
    """:func:`trace_steps` with the jump times and sampling windows of a staircase."""
    pieces: list[_Piece] = []
    output = np.empty(jumps.size, dtype=np.int64)
    mean_from = np.empty(jumps.size, dtype=np.int64)
    count = 0
    h_hold = math.nan  # the current staircase step's sub-step while its potential holds
    for i in range(jumps.size):
        start, end = float(tt[i]), float(tt[i + 1])
        E_from, E_to = float(EE[i]), float(EE[i + 1])
        s, width = float(jumps[i]), float(widths[i])
        if not (math.isfinite(width) and 0.0 <= width <= end - start):
            raise ParameterError(
                f"window[{i}] = {width!r} s; accepted: a duration from 0 to the interval "
                f"before its sample ({end - start!r} s)"
            )
        if math.isfinite(s):
            piece = _jump_piece(
                i,
                start=start,
                end=end,
                s=s,
                E_from=E_from,
                E_to=E_to,
                width=width,
                h_hold=h_hold,
                refine=refine,
                rc_time=rc_time,
            )
            h_hold = float(piece.h[-1])
        else:
            holding = E_to == E_from and math.isfinite(h_hold)
            # While a staircase step holds, later samples keep the step's resolution.
            m = max(1, math.ceil((end - start) / h_hold - 1e-9)) if holding else int(n[i])
            h_hold = h_hold if holding else math.nan
            piece = _linear_piece(start, end, E_from=E_from, E_to=E_to, m=m, width=width)
        pieces.append(piece)
        output[i] = count + piece.end
        mean_from[i] = count + piece.start
        count += piece.h.size
    if count > MAX_STEPS:
        raise NumericalError(
            f"the trace would need {count:.3g} sub-steps; at most {MAX_STEPS:.3g} are allowed "
            "per call"
        )
    t_steps = np.concatenate([p.t for p in pieces])
    E_steps = np.concatenate([p.E for p in pieces])
    t_steps[output] = tt[1:]  # exact sample times and values
    E_steps[output] = EE[1:]
    firsts = np.concatenate([[0], np.cumsum([p.h.size for p in pieces])[:-1]])
    restart = np.zeros(count, dtype=np.bool_)
    jumps_at = [f + p.jump for f, p in zip(firsts.tolist(), pieces, strict=True) if p.jump >= 0]
    restart[jumps_at] = True
    restart[[j + 1 for j in jumps_at]] = True  # as in a simulated staircase
    return TimeSteps(
        h=np.concatenate([p.h for p in pieces]),
        t=t_steps,
        E=E_steps,
        restart=restart,
        E_initial=float(EE[0]),
        output=output,
        mean_from=mean_from,
    )


@dataclass(frozen=True, slots=True)
class _Piece:
    """The sub-steps of one sample interval: sizes ``h`` (s), end times ``t`` (s) and
    potentials ``E`` (V); ``end`` and ``start`` index (within the piece) the sample's
    step and its window's first step; ``jump`` the step a potential jump starts (-1: none)."""

    h: FloatArray
    t: FloatArray
    E: FloatArray
    end: int
    start: int
    jump: int


def _jump_piece(
    i: int,
    *,
    start: float,
    end: float,
    s: float,
    E_from: float,
    E_to: float,
    width: float,
    h_hold: float,
    refine: float,
    rc_time: float,
) -> _Piece:
    """An interval in which the potential holds ``E_from`` until ``s``, then jumps to ``E_to``
    and holds it until the sample at ``end``."""
    if not start <= s < end:
        raise ParameterError(
            f"jump_at[{i}] = {s!r} s is not in [{start!r}, {end!r}), the interval before its sample"
        )
    if width > end - s:
        raise ParameterError(
            f"window[{i}] = {width!r} s reaches back before the jump at {s!r} s; accepted: "
            "a window within the step"
        )
    hs, ts, Es = [], [], []
    if s > start:  # the previous potential holds until the jump
        step = h_hold if math.isfinite(h_hold) else s - start
        m = math.ceil((s - start) / step - 1e-9)
        hs.append(np.full(m, (s - start) / m))
        ts.append(start + (s - start) * np.arange(1, m + 1) / m)
        Es.append(np.full(m, E_from))
    held = sum(h.size for h in hs)
    length = end - s
    pattern = _step_pattern(
        length, a=1.0 - width / length, b=1.0, refine=refine, rc_time=rc_time, jump=E_to != E_from
    )
    hs.append(pattern.h)
    ts.append(s + pattern.t)
    Es.append(np.full(pattern.h.size, E_to))
    return _Piece(
        np.concatenate(hs),
        np.concatenate(ts),
        np.concatenate(Es),
        held + pattern.end,
        held + pattern.start,
        held if E_to != E_from else -1,
    )


def _linear_piece(
    start: float, end: float, *, E_from: float, E_to: float, m: int, width: float
) -> _Piece:
    """An interval in ``m`` sub-steps along which the potential is linear, with a sub-step
    boundary where a sampling window of ``width`` (s) opens."""
    span = end - start
    ends = span * np.arange(1, m + 1) / m
    if width > 0.0:
        ends = _with_boundary(ends, span - width)
    edges = np.concatenate([[0.0], ends])
    first = ends.size - 1 if width == 0.0 else int(np.argmin(np.abs(edges[:-1] - (span - width))))
    if width > 0.0 and first == ends.size - 1:
        # A window of one sub-step would read as that sub-step's end value: split it.
        ends = np.insert(ends, first, span - 0.5 * width)
        edges = np.concatenate([[0.0], ends])
    return _Piece(
        np.diff(edges),
        start + ends,
        E_from + (E_to - E_from) * ends / span,
        ends.size - 1,
        first,
        -1,
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
