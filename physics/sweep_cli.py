"""``galvana sweep SCENARIO --vary KEY=... --out DIR.zarr``: a parameter sweep.

See :mod:`physics.sweep`. Exit status: 0 when every point is done, 1 when some points
could not be simulated (the store says which and why), 2 for bad input or an executor
that fails (what finished is kept: the same command resumes), 130 when interrupted
(likewise resumable).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TextIO

from physics.errors import ScenarioError, SweepError
from physics.scenario import load_scenario
from physics.sweep import DESIGNS, Axis, Design, SweepReport, run_sweep
from runtime.executor import add_arguments, executor_for, settings_from

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``galvana sweep`` to ``parser``."""
    parser.add_argument("scenario", metavar="SCENARIO", help="scenario file (YAML)")
    parser.add_argument(
        "--vary",
        action="append",
        required=True,
        metavar="KEY=LOW:HIGH[:lin|log][:COUNT]",
        help="an entry to vary (repeat for more): a range, or KEY=V1,V2,...",
    )
    parser.add_argument(
        "--design", choices=DESIGNS, default="grid", help="grid (default), random or lhs"
    )
    parser.add_argument("--samples", type=int, metavar="N", help="points of a random/lhs design")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the design")
    parser.add_argument(
        "--traces", action="store_true", help="store every voltammogram, not only its peaks"
    )
    parser.add_argument("--out", required=True, metavar="DIR.zarr", help="the result store")
    parser.add_argument(
        "--batch",
        type=int,
        metavar="N",
        help="points per task (default: sized from a timed probe batch)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    add_arguments(parser)


class _Progress:
    """A bar on a terminal, a line per tenth otherwise (both on stderr)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.shown = -1
        self.start = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        fraction = done / total if total else 1.0
        if self.tty:
            filled = round(30 * fraction)
            rate = done / max(time.monotonic() - self.start, 1e-9)
            self.stream.write(
                f"\rsweep [{'#' * filled}{'-' * (30 - filled)}] {done}/{total} points "
                f"({rate:.3g}/s) "
            )
        else:
            tenth = int(fraction * 10)
            if tenth == self.shown:
                return
            self.shown = tenth
            self.stream.write(f"sweep: {done}/{total} points\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def run(args: argparse.Namespace) -> int:
    """Run ``galvana sweep``; returns the exit status."""
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        raise SweepError(f"{args.scenario}: {exc}") from None
    if args.batch is not None and args.batch < 1:
        raise SweepError(f"--batch {args.batch}: accepted: a number of points >= 1")
    design = Design(args.design, tuple(Axis.parse(v) for v in args.vary), args.samples, args.seed)
    progress = _Progress(sys.stderr)
    with executor_for(settings_from(args)) as executor:
        try:
            report = run_sweep(
                scenario, design, args.out, executor=executor, traces=args.traces,
                batch=args.batch, progress=progress,
            )  # fmt: skip
        finally:
            progress.close()
    if args.json:
        sys.stdout.write(json.dumps(_plain(report)) + "\n")
    else:
        sys.stdout.write(_human(report, scenario.name))
    return 1 if report.failed else 0


def _plain(report: SweepReport) -> dict[str, object]:
    plan = report.plan
    return {
        "out": str(report.path),
        "points": report.points,
        "done": report.done,
        "failed": report.failed,
        "computed": report.computed,
        "invocation": report.invocation,
        "executor": report.executor,
        "elapsed_s": report.elapsed_s,
        "batch": plan.batch,
        "batches": plan.batches,
        "probe_seconds_per_point": None
        if plan.seconds_per_item != plan.seconds_per_item
        else plan.seconds_per_item,
        "failures": report.failures,
    }


def _human(report: SweepReport, name: str) -> str:
    plan = report.plan
    probe = (
        f" (probe: {plan.seconds_per_item * 1e3:.3g} ms per point)"
        if plan.seconds_per_item == plan.seconds_per_item
        else ""
    )
    lines = [
        f"sweep of {name} into {report.path}: {report.done} of {report.points} points done, "
        f"{report.computed} computed now in {report.elapsed_s:.3g} s on {report.executor}, "
        f"{plan.batches} batches of up to {plan.batch} points{probe}"
    ]
    if report.failed:
        lines.append(f"  {report.failed} points failed; for example:")
        for index, message in list(report.failures.items())[:3]:
            lines.append(f"    point {index}: {message}")
    return "\n".join(lines) + "\n"
