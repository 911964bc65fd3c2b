"""Where a voltammogram's cycles start, read from its potential (for zooming the plots).

A cycle starts where the potential leaves its starting value in its first direction
again, having been far (0.4 of the span) that way and come back: this holds for a cycle
that starts at a vertex (0.5 -> -0.5 -> 0.5 V) and for one that starts between them
(0 -> 0.5 -> -0.5 -> 0 V). Hysteresis (5 % and 10 % of the span) keeps noise on the
measured potential from starting cycles. A run whose potential never comes back (a
step, a single sweep) is one cycle.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["cycle_starts", "cycle_window"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _rises(mask: npt.NDArray[np.bool_]) -> IntArray:
    """Indices where ``mask`` turns True (index 0 when it starts True)."""
    before = np.concatenate([[False], mask[:-1]])
    return np.flatnonzero(mask & ~before).astype(np.int64)


def cycle_starts(E: FloatArray) -> IntArray:
    """The sample index where each cycle starts (the first is 0).

    >>> t = np.linspace(0.0, 3.0, 301)
    >>> E = np.abs((t % 1.0) * 2.0 - 1.0) - 0.5  # 0.5 -> -0.5 -> 0.5 V, three times
    >>> cycle_starts(E).tolist()
    [0, 100, 200]
    """
    finite = np.isfinite(E)
    if not finite.any():
        return np.zeros(1, dtype=np.int64)
    first = int(np.argmax(finite))
    values = np.where(finite, E, E[first])
    start = float(values[first])
    span = float(values.max() - values.min())
    if span <= 0:
        return np.zeros(1, dtype=np.int64)
    tol = 0.05 * span
    away = np.flatnonzero(np.abs(values - start) > tol)
    if away.size == 0:
        return np.zeros(1, dtype=np.int64)
    u = np.sign(values[away[0]] - start) * (values - start)
    # Three thresholds: far out (armed), back (within tol of the start or beyond it),
    # and leaving again (past 2 tol): a cycle starts at the first leaving after both.
    far = _rises(u > 0.4 * span)
    back = _rises(u <= tol)
    leave = _rises(u > 2 * tol)
    events = np.concatenate([far, back, leave])
    kinds = np.concatenate([np.zeros(far.size), np.ones(back.size), np.full(leave.size, 2)])
    order = np.lexsort((kinds, events))
    starts = [0]
    state, came_back = 0, 0  # state 0: going out, 1: out far (armed), 2: back
    for index, kind in zip(events[order].tolist(), kinds[order].tolist(), strict=True):
        if state == 0 and kind == 0 and index > starts[-1]:
            state = 1
        elif state == 1 and kind == 1:
            state, came_back = 2, index
        elif state == 2 and kind == 2:
            # The cycle began at the vertex it turned at (a cycle from a vertex), or
            # where it last crossed its start value (a cycle from between vertices).
            stretch = u[came_back : index + 1]
            crossed = np.flatnonzero(stretch <= 0.0)
            beyond = bool((stretch < -tol).any())
            at = came_back + int(crossed[-1] if beyond else np.argmin(stretch))
            starts.append(max(at, starts[-1] + 1))
            state = 0
    return np.asarray(starts, dtype=np.int64)


def cycle_window(t: FloatArray, E: FloatArray, cycle: int) -> tuple[int, int, float, float]:
    """Cycle ``cycle`` of samples ``(t, E)``: its number (1-based; below 1 or past the
    last means the last), how many cycles there are, and its time span ``[t0, t1)``
    (``t1`` infinite for the last)."""
    starts = cycle_starts(E)
    count = starts.size
    number = count if cycle < 1 or cycle > count else cycle
    t0 = float(t[starts[number - 1]]) if t.size else 0.0
    t1 = float(t[starts[number]]) if number < count else float("inf")
    return number, count, t0, t1
