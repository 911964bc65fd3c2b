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
from typing import TextIO

import numpy as np

from physics.errors import EngineUnavailableError, NumericalError, ScenarioError
from physics.peaks import find_peaks
from physics.scenario import load_scenario
from physics.simulation import SimulationResult, simulate
from physics.waveforms import square_wave_currents
from runtime.waveforms import SquareWave

__all__ = ["configure", "run"]

PROG = "galvana simulate"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``galvana simulate`` to ``parser``."""
    parser.add_argument("scenario", metavar="SCENARIO", help="scenario file (YAML)")
    parser.add_argument(
        "--output",
        "-o",
        metavar="FILE.csv",
        help="write t,E,I (s, V, A; plus E_applied when Ru > 0) to this CSV file",
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
    if args.output:
        try:
            _write_csv(args.output, result, with_applied=scenario.cell.Ru > 0)
        except OSError as exc:
            return _fail(f"cannot write {args.output!r}: {exc.strerror}", 2)
    if isinstance(scenario.waveform, SquareWave):
        # Square-wave peaks are those of the net current against the base potential.
        swv = square_wave_currents(scenario.waveform, result.t, result.I)
        t_tread = np.arange(1, swv.E_base.size + 1) / scenario.waveform.frequency
        found = find_peaks(t_tread, swv.E_base, swv.I_net)
        peaks = [p.as_dict() for p in found]
    else:
        peaks = [p.as_dict() for p in find_peaks(result.t, result.E_applied, result.I)]
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
    }
    if args.json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        sys.stdout.write(_human(summary))
    return 0


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
    if summary["output"]:
        lines.append(f"  wrote {summary['output']}")
    return "\n".join(lines) + "\n"
