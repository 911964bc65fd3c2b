"""``galvana``: the command line.

Each subcommand lives in the package it belongs to (here in ``galvana`` when it needs
several of them together) and is imported only when it is used, so ``galvana --help``
stays instant and a command never drags in another's dependencies (numba, torch, ...).
A command module provides ``configure(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any, Protocol

from runtime.errors import GalvanaError

__all__ = ["BENCH", "BENCH_SUITES", "COMMANDS", "DOCTOR", "main"]


class _Command(Protocol):
    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


# name -> (module, attribute or "" for the module itself, one-line help).
# Listed in `galvana --help` in this order.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "demo": ("galvana.demo", "", "run the demo: daemon, simulated potentiostat and live twin"),
    "daemon": ("galvana.daemon", "", "run the daemon in the foreground"),
    "simulate": ("physics.cli", "", "simulate a scenario (YAML): current trace, peaks, CSV"),
    "sweep": (
        "physics.sweep_cli",
        "",
        "sweep a scenario over a grid or random design of its entries, locally or on Ray",
    ),
    "run": ("runtime.commands", "RUN", "start, list, show, pause, resume, stop or abort runs"),
    "replay": ("runtime.commands", "REPLAY", "replay a recorded run into a new run"),
    "estop": ("runtime.estop", "", "emergency stop: every cell (or one) off at once"),
    "instruments": (
        "runtime.commands",
        "INSTRUMENTS",
        "list the instruments: driver, state, link, interlock, connection",
    ),
    "events": (
        "runtime.commands",
        "EVENTS",
        "print a run's recorded events (--follow for new ones)",
    ),
    "actors": ("runtime.commands", "ACTORS", "show the supervision tree with restart counts"),
    "import": (
        "galvana.import_",
        "",
        "import instrument files (Autolab, PalmSens, Gamry, BioLogic, CHI, CSV) as runs",
    ),
    "compare": (
        "galvana.compare",
        "",
        "overlay two runs on potential or time: their difference and peak shifts",
    ),
    "export": (
        "galvana.export",
        "EXPORT",
        "export a run's samples as csv, zarr, netcdf or a data package",
    ),
    "calibrate": (
        "galvana.calibrate",
        "CALIBRATE",
        "calibrate a model on recorded runs: posterior, adequacy, report",
    ),
    "instrument": (
        "galvana.instrument",
        "",
        "instruments: list them, reset a latched interlock, serve a simulated potentiostat",
    ),
    "keys": ("runtime.api_keys", "", "API keys of the HTTP gateway: add, list, revoke"),
    "schema": (
        "galvana.schema",
        "",
        "print the JSON Schema of a scenario, twin spec, daemon configuration or mapping",
    ),
    "tui": ("tui.cli", "", "watch and steer the daemon in the terminal UI"),
    "bench": ("galvana.cli", "BENCH", "run a benchmark suite and report its figures"),
    "doctor": ("galvana.cli", "DOCTOR", "check the installation and print versions"),
}

# Benchmark suites: `galvana bench NAME` imports bench.NAME.
BENCH_SUITES: dict[str, str] = {
    "runtime": "actors, codec, event store and field store throughput",
    "api": "call round trips and event fan-out over the Unix socket",
    "solver": "numba engine steps/s and ms per CV, batch throughput, peers side by side",
    "instrument": "sample rate and latency from the simulated potentiostat to the bus",
    "calibration": "online posteriors: accuracy, 90 % coverage, drift tracking, refresh time",
    "fenicsx": "2D engine (DOLFINx/PETSc worker): s per step on 1 and 2 MPI ranks, dofs",
    "import": "instrument file readers: rows/s per format on a 100k-row file, peak memory",
    "safety": "emergency stop to cell off (ms), idle and under load, and from the command line",
    "scale": "ensembles on the executors: CVs/s local and on Ray (1, 2 workers), NUTS chains",
    "http": "HTTP gateway: REST round trips, SSE latency at 1 kHz to 10 clients, resume losses",
}


def _load(name: str) -> _Command:
    module, attribute, _ = COMMANDS[name]
    loaded = importlib.import_module(module)
    return getattr(loaded, attribute) if attribute else loaded


def _parser(selected: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="galvana",
        description="Galvana: a digital-twin runtime for electrochemistry.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, _, help_text) in COMMANDS.items():
        sub = subs.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            _load(name).configure(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status (2 for bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["estop"]:
        return _estop(argv[1:])
    import logging

    selected = next((a for a in argv if not a.startswith("-")), None)
    parser = _parser(selected if selected in COMMANDS else None)
    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)  # the terminal stays quiet even when a log file takes more
    try:
        return _load(args.command).run(args)
    except GalvanaError as exc:
        print(f"galvana {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`galvana events RUN | head`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _estop(argv: list[str]) -> int:
    """``galvana estop``: the stop's own short path, no other command's parser built and
    no logging set up before the stop is on the wire (its module is standalone)."""
    from runtime import estop

    _, _, help_text = COMMANDS["estop"]
    parser = argparse.ArgumentParser(prog="galvana estop", description=help_text)
    estop.configure(parser)
    return estop.run(parser.parse_args(argv))


# --- commands that belong to the runtime itself -------------------------------------


class _Bench:
    """A suite is a module ``bench.NAME`` with ``run(args) -> dict`` and, optionally,
    ``configure(parser)`` for options of its own (given after the suite's name)."""

    @staticmethod
    def configure(parser: argparse.ArgumentParser) -> None:
        # argparse formats help with %: a suite's "90 %" must reach it as "90 %%".
        suites = ", ".join(f"{k} ({v})" for k, v in BENCH_SUITES.items()).replace("%", "%%")
        parser.add_argument("suite", choices=sorted(BENCH_SUITES), help=f"the suite: {suites}")
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument("--quick", action="store_true", help="a short run (less precise)")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        suite: Any = importlib.import_module(f"bench.{args.suite}")
        own = argparse.ArgumentParser(prog=f"galvana bench {args.suite}")
        if hasattr(suite, "configure"):
            suite.configure(own)
        suite_args = own.parse_args(args.rest)
        suite_args.quick, suite_args.json = args.quick, args.json
        figures: dict[str, Any] = suite.run(suite_args)
        if args.json:
            import json

            print(json.dumps(figures, indent=2, sort_keys=True))
        else:
            width = max(map(len, figures), default=0)
            for key, value in figures.items():
                shown = f"{value:,.4g}" if isinstance(value, float) else str(value)
                print(f"{key:<{width}}  {shown}")
        return 0


class _Doctor:
    @staticmethod
    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from importlib import metadata

        report: dict[str, str] = {"python": sys.version.split()[0]}
        for dist in (
            "galvana",
            "pykka",
            "trio",
            "numpy",
            "numba",
            "msgpack",
            "lmdb",
            "zarr",
            "torch",
            "pyro-ppl",
            "textual",
            "pyvisa",
            "pyvisa-py",
        ):
            try:
                report[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                report[dist] = "missing"
        # The 2D engine is optional: its absence is reported with the fix, not as missing.
        from physics.engines import fenicsx
        from physics.errors import EngineUnavailableError

        try:
            report["fenicsx"] = fenicsx.find_worker().describe()
        except EngineUnavailableError as exc:
            report["fenicsx"] = f"not available: {exc}"
        # Likewise the Ray executor, an optional extra.
        try:
            report["ray"] = metadata.version("ray")
        except metadata.PackageNotFoundError:
            report["ray"] = "not installed (optional: pip install 'galvana[ray]')"
        if args.json:
            import json

            print(json.dumps(report, indent=2))
        else:
            for key, value in report.items():
                print(f"{key:<10} {value}")
        return 1 if "missing" in report.values() else 0


BENCH, DOCTOR = _Bench, _Doctor

if __name__ == "__main__":
    sys.exit(main())
