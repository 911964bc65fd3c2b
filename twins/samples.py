"""Sample batches made fit for a model: masking, gaps, and calibration segments.

Measured data are never "repaired" silently. :class:`SampleCleaner` drops samples the
model cannot be advanced along (a non-finite time or potential, a time not after the
previous one) and masks from the likelihood those whose current cannot be trusted (a
non-finite current, an overload or compliance flag, the recovery after a gap), and
says so as a list of :class:`Issue`. :class:`Segmenter` cuts the cleaned stream into
the calibration segments of the spec's cadence. Both are pure functions of the samples
they were given, in order, whatever the batching: a run's samples are cleaned and cut
once, by its twin, which hands the segments
(:class:`~runtime.messages.CalibrationSegment`) to its calibrator; a replay cuts the same
ones again.

The potential the model is advanced along is the measured one with its noise filtered
out. A potentiostat reports the applied potential with measurement noise (tens of µV),
while the cell felt the smooth applied potential; a model driven through the noise
would answer every wiggle with a charging current ``Cdl dE/dt`` and a faradaic one
that the cell never produced: residuals far above the current's own noise, a learned
noise sd that is too large, and parameters biased (errors in variables). So the
cleaner takes the *deviation* of each measured potential from the programmed one,
``E - E_prog(t)``, and replaces it by its running median over the last ``window``
samples: white noise is averaged away, a real deviation (an offset, a lagging
control loop, a clock skew) passes through within ``window / 2`` samples, and a
single sample caught mid-jump does not smear a step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from runtime.messages import CalibrationSegment
from runtime.sample_flags import Flag
from twins.spec import TwinSpec

__all__ = ["CleanChunk", "Issue", "SampleCleaner", "Segmenter"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# Samples whose current cannot be trusted: clipped, or the potential was not held.
UNTRUSTED = int(Flag.OVERLOAD | Flag.COMPLIANCE)


@dataclass(frozen=True, slots=True)
class Issue:
    """Samples set aside in one batch: ``kind`` (see :class:`runtime.messages.DataIssue`),
    how many, the times (s) they span and a sentence saying what was done."""

    kind: str
    count: int
    t_start: float
    t_end: float
    detail: str


@dataclass(frozen=True, slots=True)
class CleanChunk:
    """One batch after cleaning: the ``kept`` samples (a mask over the batch) with finite,
    increasing times ``t`` (s) and finite potentials ``E`` (V, noise filtered; see the
    module docstring); their currents ``I`` (A; may be NaN) and ``usable``, which of them
    may enter a likelihood."""

    seq: int
    kept: BoolArray
    t: FloatArray
    E: FloatArray
    I: FloatArray  # noqa: E741 - current
    usable: BoolArray
    issues: tuple[Issue, ...]


class SampleCleaner:
    """Cleans batches in order. ``sample_rate`` (Hz) is the nominal rate; a step longer
    than ``gap_factor`` nominal intervals (or a sample flagged GAP) is a gap, and the
    samples within one gap length after it are masked while the model, which assumed a
    linear potential through the gap, recovers.

    ``programmed`` gives the programmed potential (V) at times (s) and ``window`` the
    running median's length in samples (see the module docstring); without
    ``programmed``, or with ``window`` 1, the measured potential is used as it is.
    """

    def __init__(
        self,
        sample_rate: float,
        gap_factor: float,
        *,
        programmed: Callable[[FloatArray], FloatArray] | None = None,
        window: int = 1,
    ) -> None:
        if window < 1:
            raise ValueError(f"window {window!r} is not accepted; expected >= 1 sample")
        self.interval = 1.0 / sample_rate
        self.gap_factor = gap_factor
        self.last_t = -math.inf
        self.masked_until = -math.inf
        self.programmed = programmed
        self.window = int(window)
        self._recent = np.zeros(0)  # the last window - 1 deviations

    @classmethod
    def for_spec(cls, spec: TwinSpec) -> SampleCleaner:
        """The cleaner of a twin spec: its sample rate, gap factor and potential filter."""
        protocol = spec.protocol
        return cls(
            1.0 / protocol.sample_interval() if protocol.staircases else protocol.sample_rate,
            spec.twin.gap,
            programmed=spec.protocol.potential_at,
            window=spec.twin.potential_window,
        )

    def _filtered(self, t: FloatArray, E: FloatArray) -> FloatArray:
        """The model's potential at the kept samples (see the module docstring)."""
        if self.programmed is None or self.window == 1 or t.size == 0:
            return E
        E_prog = self.programmed(t)
        deviation = np.concatenate([self._recent, E - E_prog])
        w = self.window
        lead = w - 1 - self._recent.size
        if lead:
            # The stream's first samples have a shorter past: the median of what there is.
            padded = np.concatenate([np.full(lead, np.nan), deviation])
            windows = np.lib.stride_tricks.sliding_window_view(padded, w)
            median = np.nanmedian(windows, axis=1)
        else:
            median = np.median(np.lib.stride_tricks.sliding_window_view(deviation, w), axis=1)
        self._recent = deviation[-(w - 1) :].copy()
        out: FloatArray = E_prog + median
        return out

    def clean(
        self,
        seq: int,
        t: FloatArray,
        E: FloatArray,
        I: FloatArray,  # noqa: E741 - current
        flags: npt.NDArray[np.uint8],
    ) -> CleanChunk:
        """Clean one batch (columnar arrays of equal length)."""
        t = np.asarray(t, dtype=np.float64)
        issues: list[Issue] = []
        finite = np.isfinite(t) & np.isfinite(E)
        bad = ~finite
        if np.any(bad):
            issues.append(
                _issue("non_finite", bad, t, "samples with a non-finite time or potential dropped")
            )
        # A time must come after every earlier one (running maximum, previous batches too).
        t_f = np.where(finite, t, -math.inf)
        before = np.maximum.accumulate(np.concatenate([[self.last_t], t_f]))[:-1]
        in_order = t_f > before
        late = finite & ~in_order
        if np.any(late):
            issues.append(
                _issue("out_of_order", late, t, "samples not after the previous time dropped")
            )
        kept = finite & in_order
        tk = t[kept]
        Ek = np.asarray(E, dtype=np.float64)[kept]
        Ik = np.asarray(I, dtype=np.float64)[kept]
        fk = np.asarray(flags)[kept]
        usable = np.isfinite(Ik) & ((fk & UNTRUSTED) == 0)
        nan_I = ~np.isfinite(Ik)
        if np.any(nan_I):
            issues.append(
                _issue("non_finite", nan_I, tk, "samples with a non-finite current masked")
            )
        flagged = np.isfinite(Ik) & ((fk & UNTRUSTED) != 0)
        if np.any(flagged):
            issues.append(_issue("flagged", flagged, tk, "overload or compliance samples masked"))
        if tk.size:
            usable &= tk > self.masked_until  # still recovering from an earlier gap
            steps = np.diff(np.concatenate([[self.last_t], tk]))
            gap = (steps > self.gap_factor * self.interval) | ((fk & int(Flag.GAP)) != 0)
            gap &= np.isfinite(steps)
            if np.any(gap):
                where = np.flatnonzero(gap)
                lengths = np.where(np.isfinite(steps[where]), steps[where], self.interval)
                # Each gap masks one gap length of the samples after it.
                ends = tk[where] + lengths
                starts = tk[where]
                for a, b in zip(starts, ends, strict=True):
                    usable &= ~((tk >= a) & (tk <= b))
                self.masked_until = max(self.masked_until, float(ends.max()))
                issues.append(
                    Issue(
                        "gap",
                        int(where.size),
                        float(tk[where[0]] - lengths[0]),
                        float(ends.max()),
                        f"{where.size} gap(s) in time, longest {lengths.max():.6g} s; "
                        "the samples within one gap length after each are masked",
                    )
                )
            self.last_t = float(tk[-1])
        return CleanChunk(seq, kept, tk, self._filtered(tk, Ek), Ik, usable, tuple(issues))


def _issue(kind: str, which: BoolArray, t: FloatArray, detail: str) -> Issue:
    times = t[which]
    times = times[np.isfinite(times)]
    lo = float(times.min()) if times.size else math.nan
    hi = float(times.max()) if times.size else math.nan
    return Issue(kind, int(which.sum()), lo, hi, detail)


class Segmenter:
    """Cuts cleaned chunks into calibration segments as the spec's cadence says.

    With a cadence in cycles, segment ``k`` closes with the first sample at or after its
    last cycle's end (less half a sample interval); with a cadence in samples, after
    every ``count`` kept samples. ``keep_data=False`` only counts (the twin's use).
    """

    def __init__(self, spec: TwinSpec, *, keep_data: bool = True) -> None:
        cal = spec.calibrate
        self.unit = cal.every.unit if cal is not None else "cycles"
        self.count = cal.every.count if cal is not None else 1
        self.bounds = spec.segment_closes()
        self.keep_data = keep_data
        self.index = 0
        self._parts: list[tuple[FloatArray, FloatArray, FloatArray, BoolArray]] = []
        self._pending = 0
        self._started = False
        self.skipped = 0

    def feed(self, chunk: CleanChunk) -> list[CalibrationSegment]:
        """The segments this chunk completes (possibly none).

        A stream that begins after the end of some segments (a calibrator that
        restarted mid-run) starts at the segment its first sample falls in; ``skipped``
        says how many were passed over.
        """
        out: list[CalibrationSegment] = []
        start = 0
        n = chunk.t.size
        if n and not self._started and not self._pending and self.unit == "cycles":
            ahead = int(np.searchsorted(self.bounds, chunk.t[0], side="left"))
            if ahead > self.index:
                self.skipped = ahead - self.index
                self.index = ahead
        while start < n:
            stop = self._close_at(chunk.t, start)
            end = n if stop is None else stop + 1
            if self.keep_data:
                self._parts.append(
                    (
                        chunk.t[start:end],
                        chunk.E[start:end],
                        chunk.I[start:end],
                        chunk.usable[start:end],
                    )
                )
            self._pending += end - start
            start = end
            if stop is None:
                break
            out.append(self._close())
        return out

    def _close_at(self, t: FloatArray, start: int) -> int | None:
        """Index (in ``t``) of the sample that closes the current segment, if any."""
        if self.unit == "samples":
            need = self.count - self._pending
            return start + need - 1 if start + need - 1 < t.size else None
        if self.index >= self.bounds.size:
            return None
        i = start + int(np.searchsorted(t[start:], self.bounds[self.index], side="left"))
        return i if i < t.size else None

    def _close(self) -> CalibrationSegment:
        if self.keep_data and self._parts:
            t, E, I, usable = (np.concatenate(c) for c in zip(*self._parts, strict=True))  # noqa: E741
        else:
            t = E = I = np.zeros(0)  # noqa: E741 - current
            usable = np.zeros(0, dtype=np.bool_)
        seg = CalibrationSegment(self.index, t, E, I, usable.astype(np.bool_), not self._started)
        self._started = True
        self._parts = []
        self._pending = 0
        self.index += 1
        return seg
