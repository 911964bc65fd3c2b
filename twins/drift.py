"""Drift detection: residuals outside the predictive band for a sustained window.

Without drift, a fraction ``1 - level`` of the samples falls outside a band of
probability ``level``. When more than ``fraction`` of the last ``window`` samples do,
the model no longer describes the cell: :class:`~runtime.messages.DriftDetected`. It
clears (:class:`~runtime.messages.DriftCleared`) once the windowed fraction is back
below the midpoint between the threshold and what the band expects (hysteresis, so a
borderline window does not flap). Windows count samples, never seconds.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from runtime.messages import DriftCleared, DriftDetected

__all__ = ["DriftDetector"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


class DriftDetector:
    """Watches ``outside`` flags (one per usable sample) and reports drift changes."""

    def __init__(self, run_id: str, *, window: int, fraction: float, level: float) -> None:
        self.run_id = run_id
        self.window = window
        self.fraction = fraction
        self.level = level
        self.clear_below = 0.5 * (fraction + (1.0 - level))
        self.active = False
        self._t = np.zeros(0)
        self._out = np.zeros(0, dtype=np.bool_)

    def feed(self, t: FloatArray, outside: BoolArray) -> list[DriftDetected | DriftCleared]:
        """Add samples (times ``t`` s, ``outside`` the band or not); returns the changes."""
        events: list[DriftDetected | DriftCleared] = []
        if t.size == 0:
            return events
        W = self.window
        times = np.concatenate([self._t, t])
        flags = np.concatenate([self._out, outside.astype(np.bool_)])
        counts = np.concatenate([[0], np.cumsum(flags)])
        # Windowed fraction ending at each new sample whose window is full.
        ends = np.arange(max(self._t.size, W - 1), times.size)
        frac = (counts[ends + 1] - counts[ends + 1 - W]) / W
        pos = 0
        while pos < ends.size:
            if self.active:
                hits = np.flatnonzero(frac[pos:] < self.clear_below)
            else:
                hits = np.flatnonzero(frac[pos:] > self.fraction)
            if hits.size == 0:
                break
            k = pos + int(hits[0])
            i = int(ends[k])
            if self.active:
                events.append(DriftCleared(self.run_id, float(times[i]), float(frac[k])))
            else:
                events.append(
                    DriftDetected(
                        self.run_id,
                        float(times[i - W + 1]),
                        float(times[i]),
                        float(frac[k]),
                        W,
                        self.level,
                    )
                )
            self.active = not self.active
            pos = k + 1
        keep = min(W - 1, times.size)
        self._t = times[times.size - keep :]
        self._out = flags[flags.size - keep :]
        return events
