"""Peak detection on voltammograms: anodic maxima on positive-going sweeps, cathodic
minima on negative-going ones, refined between samples by a parabola."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from physics.waveforms import square_wave_currents
from runtime.waveforms import SquareWave, Waveform

__all__ = ["Peak", "find_peaks", "voltammogram_peaks"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Peak:
    """A current extremum: potential ``E`` (V), current ``I`` (A), its ``kind`` and the
    time ``t`` (s) at which it occurs."""

    E: float
    I: float  # noqa: E741 - the electrochemical symbol for current
    kind: Literal["anodic", "cathodic"]
    t: float

    def as_dict(self) -> dict[str, float | str]:
        """``{"E", "I", "kind", "t"}`` for JSON output."""
        return {"E": self.E, "I": self.I, "kind": self.kind, "t": self.t}


def find_peaks(t: FloatArray, E: FloatArray, I: FloatArray) -> list[Peak]:  # noqa: E741
    """Peaks of a voltammogram sampled at ``(t, E, I)``.

    The trace is split into monotonic sweeps of ``E``; on each, the largest current
    (positive-going sweep, anodic) or smallest current (negative-going, cathodic) is a
    peak if it lies strictly inside the sweep and has the expected sign. ``E`` here is
    whichever potential the caller wants on the axis (applied or interfacial).
    """
    t = np.asarray(t, dtype=np.float64)
    E = np.asarray(E, dtype=np.float64)
    I = np.asarray(I, dtype=np.float64)  # noqa: E741
    if I.size < 5:
        return []
    # Monotonic runs of E; holds (dE = 0) form runs of their own and are skipped, so
    # potential steps and chronoamperometry report no peaks.
    direction = np.sign(np.diff(E))
    breaks = np.flatnonzero(np.diff(direction) != 0) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks + 1, [E.size]])
    peaks: list[Peak] = []
    for a, b in zip(starts, stops, strict=True):
        sweep_dir = direction[min(a, direction.size - 1)]
        if sweep_dir == 0 or b - a < 5:  # a hold, or a jump
            continue
        seg = I[a:b] * sweep_dir  # anodic sweeps: look for a maximum of I
        k = int(np.argmax(seg))
        if k == 0 or k == seg.size - 1 or seg[k] <= 0:
            continue
        y0, y1, y2 = seg[k - 1], seg[k], seg[k + 1]
        denom = y0 - 2 * y1 + y2
        shift = 0.5 * (y0 - y2) / denom if denom < 0 else 0.0
        shift = float(np.clip(shift, -0.5, 0.5))
        i = a + k
        j = i + (1 if shift >= 0 else -1)
        w = abs(shift)
        peak_I = (y1 - 0.25 * (y0 - y2) * shift) * sweep_dir
        peaks.append(
            Peak(
                E=float(E[i] + (E[j] - E[i]) * w),
                I=float(peak_I),
                kind="anodic" if sweep_dir > 0 else "cathodic",
                t=float(t[i] + (t[j] - t[i]) * w),
            )
        )
    return peaks


def voltammogram_peaks(
    waveform: Waveform,
    t: FloatArray,
    E_applied: FloatArray,
    I: FloatArray,  # noqa: E741
) -> list[Peak]:
    """The peaks of a simulated run of ``waveform``: of the current against the applied
    potential, or for a square wave of the net current against the base potential (its
    ``t`` then the end of each staircase tread)."""
    if isinstance(waveform, SquareWave):
        swv = square_wave_currents(waveform, t, I)
        t_tread = np.arange(1, swv.E_base.size + 1) / waveform.frequency
        return find_peaks(t_tread, swv.E_base, swv.I_net)
    return find_peaks(t, E_applied, I)
