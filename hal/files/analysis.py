"""What the columns of a recording say about how it was measured.

Sweeps (segments) end where the potential turns; scans (cycles) start where the
potential passes its starting value again in the first sweep's direction (or, when
the file starts at a vertex, every second segment). The scan rate of each segment is
the slope of its potential against time. For a cyclic or linear sweep, the programme
that produced the file (start, vertices, scan rate, cycles) is recovered and checked
against the data (a staircase when the file or the user says where in each step the
current was sampled); a model can then be driven along it (``protocol:`` of a twin
spec).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from hal.files.recording import Recording
from runtime.errors import WaveformError
from runtime.waveforms import Staircase

__all__ = [
    "derive_protocol",
    "generated_time",
    "scans_of",
    "segment_summary",
    "segments_of",
    "turning_points",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int32]


def _hysteresis(E: FloatArray) -> float:
    """How far (V) the potential must come back from an extreme to count as a turn: a
    few typical steps, and ten times the potential's noise (its sd, from the second
    differences), so that noise on a measured potential is not a vertex even when the
    steps are finer than the noise (a slow scan sampled fast)."""
    steps = np.abs(np.diff(E))
    steps = steps[np.isfinite(steps) & (steps > 0)]
    typical = float(np.median(steps)) if steps.size else 0.0
    return max(4.0 * typical, 10.0 * _noise(E), 2e-4)


def turning_points(E: FloatArray) -> IntArray:
    """Indices of the samples at which the sweep direction reverses (the vertices)."""
    n = len(E)
    if n < 3:
        return np.zeros(0, np.int32)
    h = _hysteresis(E)
    vertices: list[int] = []
    direction = 0.0
    ext = 0
    e0 = float(E[0])
    values = E.tolist()  # plain floats: this loop runs once per sample
    for i in range(1, n):
        e = values[i]
        if direction == 0.0:
            if abs(e - e0) > h:
                direction = 1.0 if e > e0 else -1.0
                ext = i
            continue
        if (e - values[ext]) * direction > 0:
            ext = i
        elif (values[ext] - e) * direction > h:
            vertices.append(ext)
            direction = -direction
            ext = i
    return np.asarray(vertices, np.int32)


def segments_of(E: FloatArray) -> IntArray:
    """The 0-based segment (sweep) number of each sample; a vertex ends its segment."""
    segment = np.zeros(len(E), np.int32)
    for vertex in turning_points(E):
        segment[vertex + 1 :] += 1
    return segment


def scans_of(E: FloatArray, segment: IntArray) -> IntArray:
    """The 1-based scan (cycle) number of each sample, counted as a potentiostat does:
    a scan ends when the potential passes its starting value again in the first
    sweep's direction."""
    n = len(E)
    scan = np.ones(n, np.int32)
    if n < 3 or int(segment[-1]) < 2:
        return scan
    e0 = float(E[0])
    first = np.flatnonzero(segment == 0)
    d0 = 1.0 if E[first[-1]] > e0 else -1.0
    vertex_values = [float(E[np.flatnonzero(segment == k)[-1]]) for k in range(int(segment[-1]))]
    h = _hysteresis(E)
    starts: list[int] = []
    if any(abs(v - e0) <= h for v in vertex_values[1:2]) or abs(float(E[first[-1]]) - e0) <= h:
        # The file starts at a vertex: every second segment starts a scan.
        starts = [int(np.flatnonzero(segment == k)[0]) for k in range(2, int(segment[-1]) + 1, 2)]
    else:
        rel = (E - e0) * d0
        crossing = np.flatnonzero((rel[:-1] < 0) & (rel[1:] >= 0)) + 1
        last_segment = 0
        for i in crossing:
            if int(segment[i]) >= last_segment + 2:
                starts.append(int(i))
                last_segment = int(segment[i])
    for start in starts:
        scan[start:] += 1
    return scan


def segment_summary(t: FloatArray, E: FloatArray, segment: IntArray) -> list[dict[str, Any]]:
    """Each segment: first and last row (``start``, ``stop`` exclusive), potentials at its
    ends (V) and its scan rate (V/s, the least-squares slope of E against t)."""
    out: list[dict[str, Any]] = []
    if len(t) == 0:
        return out
    bounds = np.flatnonzero(np.diff(segment)) + 1
    starts = np.concatenate([[0], bounds])
    stops = np.concatenate([bounds, [len(t)]])
    for start, stop in zip(starts.tolist(), stops.tolist(), strict=True):
        tt, ee = t[start:stop], E[start:stop]
        ok = np.isfinite(tt) & np.isfinite(ee)
        rate = None
        if np.count_nonzero(ok) >= 2 and np.ptp(tt[ok]) > 0:
            rate = abs(float(np.polyfit(tt[ok], ee[ok], 1)[0]))
        out.append(
            {
                "start": start,
                "stop": stop,
                "E_from": float(ee[0]),
                "E_to": float(ee[-1]),
                "scan_rate": rate,
            }
        )
    return out


def generated_time(E: FloatArray, scan_rate: float, E_step: float | None) -> tuple[FloatArray, str]:
    """Times (s) for a file without a time column: one potential step per sample, each
    lasting ``E_step / scan_rate``, the sample at the end of its step. ``E_step`` is the
    median step of the potential when None. Returns the times and a sentence saying how
    they were made."""
    step = E_step
    if step is None:
        steps = np.abs(np.diff(E))
        steps = steps[np.isfinite(steps) & (steps > 0)]
        step = float(np.median(steps)) if steps.size else 0.0
    if not step > 0 or not scan_rate > 0:
        raise ValueError("needs a positive scan rate and potential step")
    dt = step / scan_rate
    t = (np.arange(len(E), dtype=np.float64) + 1.0) * dt
    how = (
        f"generated: the file has no time column; one sample per potential step of "
        f"{step * 1e3:.4g} mV at {scan_rate * 1e3:.4g} mV/s ({dt * 1e3:.4g} ms), each at "
        "the end of its step"
    )
    return t, how


def _triangle(knots_E: list[float], rate: float, t: FloatArray) -> FloatArray:
    """The potential (V) of a sweep through ``knots_E`` at ``rate`` (V/s) at times ``t``."""
    durations = np.abs(np.diff(knots_E)) / rate
    knots_t = np.concatenate([[0.0], np.cumsum(durations)])
    return np.interp(t, knots_t, knots_E)


def derive_protocol(rec: Recording) -> tuple[dict[str, Any] | None, str]:
    """The programme that produced a sweep recording, as a twin spec's ``protocol:``
    (plain data, SI), or None and the reason it cannot be recovered. Checked: the
    programme's potential must stay within a few steps of the recorded one. A recording
    that says where in each step its current was sampled (``metadata.sampling``) and
    holds one sample per step is the staircase a digital potentiostat applied
    (``staircase_cv``, ``staircase_lsv``); when its samples do not fall on one, the
    linear programme is kept and the reason returned with it."""
    t, E = rec.t, rec.potential
    n = len(t)
    if n < 4:
        return None, "too few samples"
    if rec.metadata.technique not in (None, "cv", "lsv"):
        return None, f"a {rec.metadata.technique} programme is not recovered from the data"
    dt = np.diff(t)
    if not np.all(dt > 0):
        return None, "the times do not increase"
    sample_rate = 1.0 / float(np.median(dt))
    segment = rec.segment if rec.segment is not None else segments_of(E)
    summary = segment_summary(t, E, segment)
    rates = [s["scan_rate"] for s in summary if s["scan_rate"]]
    if not rates:
        return None, "the potential does not sweep"
    rate = float(rec.metadata.scan_rate or np.median(rates))
    if any(abs(r - rate) > 0.1 * rate for r in rates):
        return None, "the scan rate differs between segments"
    h = max(_hysteresis(E), 2.0 * (rec.metadata.E_step or 0.0))
    # The programme started before the first sample by the sample's own time.
    d0 = 1.0 if summary[0]["E_to"] > summary[0]["E_from"] else -1.0
    E_start = float(E[0]) - d0 * rate * float(t[0])
    vertices = [float(E[s["stop"] - 1]) for s in summary[:-1]]
    if len(summary) == 1:
        waveform: dict[str, Any] = {
            "type": "lsv",
            "E_start": E_start,
            "E_end": float(summary[0]["E_to"]),
            "scan_rate": rate,
        }
        knots = [E_start, float(summary[0]["E_to"])]
        cycles = 1
    else:
        tol = max(3.0 * h, 5e-3)
        if len(vertices) == 1 or abs(vertices[1] - E_start) <= tol:
            cycle_vertices = vertices[:1]  # the programme starts at a vertex
            cycles = (len(vertices) + 2) // 2
        else:
            cycle_vertices = vertices[:2]
            cycles = (len(vertices) + 1) // 2
        E_end = E_start if cycles > 1 else float(summary[-1]["E_to"])
        if cycles == 1 and abs(E_end - E_start) <= tol:
            E_end = E_start
        waveform = {
            "type": "cv",
            "E_start": E_start,
            "E_vertex": cycle_vertices if len(cycle_vertices) > 1 else cycle_vertices[0],
            "E_end": E_end,
            "scan_rate": rate,
        }
        knots = [E_start]
        for k in range(cycles):
            knots += [*cycle_vertices, E_start if k < cycles - 1 else E_end]
    programmed = _triangle(knots, rate, t)
    tolerance = max(3.0 * h, 3.0 * (rec.metadata.E_step or 0.0), 5e-3)
    deviation = float(np.nanmax(np.abs(programmed - E)))
    if deviation > tolerance:
        return None, (
            f"a {waveform['type']} programme through the recorded vertices misses the "
            f"recorded potential by up to {deviation * 1e3:.3g} mV"
        )
    protocol = {"waveform": waveform, "cycles": cycles, "rest": 0.0, "sample_rate": sample_rate}
    if rec.metadata.sampling is None:
        return protocol, ""
    stairs, why = _staircase(rec, waveform, cycles, rate)
    return (protocol, why) if stairs is None else (stairs, "")


def _staircase(
    rec: Recording, sweep: dict[str, Any], cycles: int, rate: float
) -> tuple[dict[str, Any] | None, str]:
    """The recovered sweep ``sweep`` as the staircase a digital potentiostat applied,
    when the recording says where in each step it sampled the current
    (``metadata.sampling``) and holds one sample per step: steps of ``E_step`` every
    ``E_step / rate`` (s), each sample at that fraction of its step with its step's
    potential. None and the reason (the linear programme is kept) when the samples do
    not fall on such a staircase."""
    md = rec.metadata
    b = float(md.sampling or 1.0)
    if md.E_step is None or not md.E_step > 0 or not b > 0:
        return None, "the staircase's step is not known: give --meta E_step=2mV"
    t, E = rec.t, rec.potential
    t_step = md.E_step / rate
    if abs(float(np.median(np.diff(t))) / t_step - 1.0) > 0.02:
        return None, (
            f"the samples are not one per {md.E_step * 1e3:.4g} mV step at "
            f"{rate * 1e3:.4g} mV/s: kept as a linear sweep"
        )
    # Sample j of step j is at (j + b) t_step, reporting step j's potential.
    first = round(float(t[0]) / t_step - b)
    vertices = [float(v) for v in np.atleast_1d(sweep.get("E_vertex", []))]
    towards = vertices[0] if vertices else float(E[-1])
    direction = 1.0 if towards >= float(E[0]) else -1.0
    E_start = float(E[0]) - direction * first * md.E_step
    # Corners a whole number of steps apart (a staircase reaches each exactly); the last
    # step holds the end (the linear programme's end is a step further).
    E_end = float(E[-1]) if cycles == 1 else E_start
    corners = [E_start]
    for corner in [*vertices, E_end]:
        corners.append(E_start + round((corner - E_start) / md.E_step) * md.E_step)
    kind = "staircase_cv" if sweep["type"] == "cv" else "staircase_lsv"
    try:
        stairs = Staircase(
            corners[0],
            tuple(corners[1:-1]) if kind == "staircase_cv" else (),
            corners[-1],
            md.E_step,
            t_step,
            (b, b),
            cycles,  # laid out as the protocol's cycles, each from its own step 0
            kind,  # type: ignore[arg-type]
        )
    except WaveformError as exc:
        return None, f"no staircase fits the data ({exc}): kept as a linear sweep"
    step = np.clip(np.rint(t / t_step - b).astype(np.int64), 0, stairs.steps - 1)
    misplaced = float(np.max(np.abs(t - (step + b) * t_step))) / t_step
    deviation = float(np.nanmax(np.abs(stairs.levels()[step] - E)))
    if misplaced > 0.05 or deviation > max(0.5 * md.E_step, 10.0 * _noise(E)):
        return None, (
            f"the samples do not fall on a staircase of {md.E_step * 1e3:.4g} mV steps "
            f"sampled at {b:g} of each step (up to {deviation * 1e3:.3g} mV and "
            f"{misplaced:.2g} of a step away): kept as a linear sweep"
        )
    waveform: dict[str, Any] = {
        "type": kind,
        "E_start": stairs.E_start,
        "E_end": stairs.E_end,
        "E_step": md.E_step,
        "t_step": t_step,
        "sample": [b, b],
    }
    if kind == "staircase_cv":
        waveform["E_vertex"] = (
            list(stairs.vertices) if len(stairs.vertices) > 1 else (stairs.vertices[0])
        )
    return {"waveform": waveform, "cycles": cycles, "rest": 0.0, "sample_rate": 1.0 / t_step}, ""


def _noise(E: FloatArray) -> float:
    """The sd (V) of a measured potential's noise, from its second differences."""
    d2 = np.diff(E, 2)
    d2 = d2[np.isfinite(d2)]
    return 1.4826 * float(np.median(np.abs(d2 - np.median(d2)))) / 6**0.5 if d2.size else 0.0
