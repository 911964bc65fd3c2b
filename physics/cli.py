"""``galvana simulate SCENARIO [--output FILE.csv] [--json]``: run one scenario.

The runtime's CLI owns the top-level parser and calls :func:`configure` and
:func:`run`. Exit status: 0 on success; 2 for a scenario that cannot be simulated as given (a
schema error, an unavailable engine, or numerics the scenario's parameters make
infeasible), with one line on stderr and no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

import numpy as np

from physics import plots
from physics.ac import Harmonics, harmonics
from physics.errors import EngineUnavailableError, NumericalError, ScenarioError
from physics.impedance import ImpedanceSpectrum, frequencies, impedance
from physics.peaks import voltammogram_peaks
from physics.scenario import load_scenario
from physics.simulation import SimulationResult, simulate

__all__ = ["configure", "run"]

PROG = "galvana simulate"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``galvana simulate`` to ``parser``."""
    parser.add_argument("scenario", metavar="SCENARIO", help="scenario file (YAML)")
    parser.add_argument(
        "--output",
        "-o",
        metavar="FILE.csv",
        help="write t,E,I (s, V, A; plus E_applied when Ru > 0) to this CSV file; for a "
        "scenario with impedance:, the spectrum (f, Z_re, Z_im, Z_mod, phase_deg)",
    )
    parser.add_argument(
        "--plot",
        metavar="FILE.png",
        help="draw the result: Nyquist and Bode plots of an impedance spectrum, the "
        "harmonics of AC voltammetry, else the current against the potential",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (steps, grid_points, elapsed_s, peaks) instead of a summary",
    )


class _Progress:
    """A progress bar on stderr that appears only once a run has taken a second."""

    def __init__(self, stream: TextIO, label: str) -> None:
        self.stream = stream
        self.label = label
        self.start = time.monotonic()
        self.shown = False

    def __call__(self, fraction: float) -> None:
        if time.monotonic() - self.start < 1.0:
            return
        self.shown = True
        width = 30
        filled = round(fraction * width)
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {fraction * 100:5.1f}%")
        self.stream.flush()

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


def _fail(message: str, status: int) -> int:
    sys.stderr.write(f"{PROG}: {message}\n")
    return status


def run(args: argparse.Namespace) -> int:
    """Run ``galvana simulate``; returns the exit status."""
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        return _fail(f"{args.scenario}: {exc}", 2)
    progress = _Progress(sys.stderr, scenario.name)
    try:
        result = simulate(scenario, progress=progress)
    except EngineUnavailableError as exc:
        progress.close()
        return _fail(f"{args.scenario}: {exc}", 2)
    except NumericalError as exc:
        progress.close()
        return _fail(f"{args.scenario}: {exc}", 2)
    progress.close()
    spectrum = None
    if scenario.impedance is not None:
        spec = scenario.impedance
        try:
            spectrum = impedance(scenario, frequencies(spec.f_max, spec.f_min, spec.per_decade))
        except NumericalError as exc:
            return _fail(f"{args.scenario}: {exc}", 2)
    found_harmonics = None
    if scenario.ac is not None:
        found_harmonics = _harmonics(result, scenario.ac.frequency)
    try:
        if args.output:
            if spectrum is not None:
                _write_columns(args.output, spectrum.columns())
            else:
                _write_csv(args.output, result, with_applied=scenario.cell.Ru > 0)
        if args.plot:
            _plot(args.plot, scenario.name, result, spectrum, found_harmonics)
    except OSError as exc:
        path = args.output if args.output and not args.plot else args.plot or args.output
        return _fail(f"cannot write {path!r}: {exc.strerror}", 2)
    if scenario.ac is not None:
        peaks = []  # each period of the sine would make two: the harmonics say it
    else:
        found = voltammogram_peaks(scenario.waveform, result.t, result.E_applied, result.I)
        peaks = [p.as_dict() for p in found]
    summary = {
        "scenario": scenario.name,
        "mechanism": scenario.mechanism,
        "waveform": result.waveform,
        "steps": result.steps,
        "samples": int(result.t.size),
        "grid_points": result.grid_points,
        "elapsed_s": result.elapsed_s,
        "steps_per_s": result.steps / result.elapsed_s if result.elapsed_s > 0 else None,
        "peaks": peaks,
        "output": args.output,
        "plot": args.plot,
    }
    if spectrum is not None:
        summary["impedance"] = {
            "points": int(spectrum.frequency.size),
            "f_max": float(spectrum.frequency[0]),
            "f_min": float(spectrum.frequency[-1]),
            "E_dc": spectrum.E_dc,
            "Z_f_max": [float(spectrum.Z[0].real), float(spectrum.Z[0].imag)],
            "Z_f_min": [float(spectrum.Z[-1].real), float(spectrum.Z[-1].imag)],
        }
    if found_harmonics is not None:
        summary["harmonics"] = _harmonic_peaks(found_harmonics)
    if args.json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        sys.stdout.write(_human(summary))
    return 0


def _harmonics(result: SimulationResult, frequency: float) -> Harmonics:
    """Harmonics 0 to 6 (fewer when the sampling cannot carry them) of an AC run."""
    dt = float(np.median(np.diff(result.t)))
    count = max(1, min(6, int(0.5 / (dt * frequency) - 0.25) - 1))
    return harmonics(result.t, result.I, frequency, count=count, E=result.E_applied)


def _harmonic_peaks(found: Harmonics) -> list[dict[str, float]]:
    """Each harmonic's largest envelope value and the DC potential there, read away
    from the record's tapered ends."""
    n = found.t.size
    inner = slice(n // 10, n - n // 10)
    # The DC potential: the applied one averaged over a period.
    window = max(1, round(1.0 / (found.frequency * float(found.t[1] - found.t[0]))))
    E_dc = np.convolve(found.E, np.ones(window) / window, mode="same")
    out = []
    for k in sorted(found.components):
        if k == 0:
            continue
        envelope = found.envelope(k)[inner]
        j = int(np.argmax(envelope))
        out.append({"k": k, "I": float(envelope[j]), "E": float(E_dc[inner][j])})
    return out


def _plot(
    path: str,
    name: str,
    result: SimulationResult,
    spectrum: ImpedanceSpectrum | None,
    found: Harmonics | None,
) -> None:
    if spectrum is not None:
        plots.save_impedance(spectrum, path, name)
    elif found is not None:
        window = max(1, round(1.0 / (found.frequency * float(found.t[1] - found.t[0]))))
        E_dc = np.convolve(found.E, np.ones(window) / window, mode="same")
        n = found.t.size
        inner = slice(n // 20, n - n // 20)
        envelopes = {k: found.envelope(k)[inner] for k in sorted(found.components)}
        plots.save_harmonics(E_dc[inner], envelopes, path, name)
    else:
        plots.save_voltammogram(result.E_applied, result.I, path, name)


def _write_columns(path: str, columns: Mapping[str, np.ndarray[Any, Any]]) -> None:
    np.savetxt(
        path,
        np.column_stack(list(columns.values())),
        delimiter=",",
        header=",".join(columns),
        comments="",
        fmt="%.10g",
    )


def _write_csv(path: str, result: SimulationResult, *, with_applied: bool) -> None:
    columns = [result.t, result.E, result.I]
    header = "t,E,I"
    if with_applied:
        columns.append(result.E_applied)
        header += ",E_applied"
    np.savetxt(
        path, np.column_stack(columns), delimiter=",", header=header, comments="", fmt="%.10g"
    )


def _human(summary: dict[str, object]) -> str:
    lines = [
        f"{summary['scenario']}: {summary['mechanism']} mechanism, {summary['waveform']} waveform",
        f"  {summary['steps']} time steps on {summary['grid_points']} grid points "
        f"in {float(summary['elapsed_s']) * 1e3:.1f} ms",  # type: ignore[arg-type]
    ]
    peaks = summary["peaks"]
    assert isinstance(peaks, list)
    for p in peaks:
        lines.append(f"  {p['kind']:>8} peak: E = {p['E']:+.4f} V, I = {p['I']:+.4e} A")
    for h in summary.get("harmonics", []):  # type: ignore[attr-defined]
        lines.append(f"  harmonic {h['k']}: largest {h['I']:.4e} A at E_dc = {h['E']:+.4f} V")
    z = summary.get("impedance")
    if isinstance(z, dict):
        high, low = z["Z_f_max"], z["Z_f_min"]
        lines.append(
            f"  impedance at E_dc = {z['E_dc']:+.4f} V, {z['points']} frequencies: "
            f"{z['f_max']:.4g} Hz {high[0]:.5g} {high[1]:+.5g}j ohm ... "
            f"{z['f_min']:.4g} Hz {low[0]:.5g} {low[1]:+.5g}j ohm"
        )
    for key in ("output", "plot"):
        if summary[key]:
            lines.append(f"  wrote {summary[key]}")
    return "\n".join(lines) + "\n"
