"""``galvana calibrate RUN... --model TWIN.yaml [--report DIR] [--units k0=cm/s,...]``.

Runs in the command's own process on the data directory (``--data``, ``$GALVANA_HOME``),
read-only; when a daemon holds that directory, it is asked first to write what it
still buffers and to confirm the runs exist. It prints the posterior table, the model's
adequacy and the warnings (or one JSON object with ``--json``), shows its progress on
stderr, and with ``--report`` writes ``calibration.json`` and the figures
(:mod:`twins.report`). Exit status: 0, 1 when the fit did not converge (the result is
still printed, saying why), 2 for bad input (an unknown run, a bad spec or unit). What
is computed: :mod:`actors.calibrate`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from actors.calibrate import recorded_experiments
from runtime.errors import ConnectionLost, GalvanaError
from runtime.event_store import EventStore
from runtime.executor import add_arguments, executor_for, settings_from
from twins.errors import ExperimentError, TwinError
from twins.experiments import Calibration, Experiment, calibrate_experiments
from twins.priors import Parameterization
from twins.spec import TwinSpec, load_twin_spec

__all__ = ["CALIBRATE"]


class _Calibrate:
    """``galvana calibrate RUN... --model TWIN.yaml [--report DIR] [--units ...]``."""

    @staticmethod
    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("runs", nargs="+", metavar="RUN", help="recorded or imported runs")
        parser.add_argument(
            "--model", required=True, help="the twin spec (YAML) whose model and priors to fit"
        )
        parser.add_argument("--report", metavar="DIR", help="write calibration.json and plots here")
        parser.add_argument(
            "--units",
            help="display units, e.g. k0=cm/s,D=cm2/s,E0=mV (default: SI)",
        )
        parser.add_argument(
            "--data", help="the data directory (default: $GALVANA_HOME or ./galvana-data)"
        )
        parser.add_argument("--socket", help="a daemon's Unix socket (default: DATA/galvana.sock)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        # The starts of the mode search and the runs fitted alone as tasks (default:
        # in this process, which for a few runs is the quickest).
        add_arguments(parser)

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        # Imported here: twins.report pulls matplotlib in only when it draws.
        from runtime.api.server import default_socket_path
        from runtime.client import Client, resolve_data_dir
        from twins.report import parse_units, posterior_table, report_plain, write_report

        try:
            spec = load_twin_spec(Path(args.model))
        except TwinError as exc:
            raise GalvanaError(f"--model {args.model}: {exc}") from None
        if spec.calibrate is None:
            raise GalvanaError(f"--model {args.model}: calibrate: required key is missing")
        data = resolve_data_dir(args.data)
        socket = Path(args.socket) if args.socket else default_socket_path(data)
        try:
            with Client(socket_path=socket) as daemon:
                for run_id in args.runs:
                    daemon.call("runs", "show", run_id)  # an unknown run is refused here
                daemon.call("recorder", "flush")  # what it still buffers reaches the disk
        except ConnectionLost:
            pass  # no daemon: the log on disk is complete
        log = data / "events.lmdb"
        if not (log / "data.mdb").is_file():
            raise GalvanaError(f"no event log in {data} (no events.lmdb); check --data")
        progress = _Progress()
        try:
            with EventStore(log, readonly=True) as store:
                experiments = recorded_experiments(store, args.runs, spec)
            runs = args.runs if len(args.runs) > 1 else ()
            names = Parameterization(spec.calibrate, runs=runs).names
            try:
                units = parse_units(args.units, names)
            except ValueError as exc:
                raise GalvanaError(str(exc)) from None
            with progress as say:
                result = _calibrate_on(args, spec, experiments, say)
        except ExperimentError as exc:
            raise GalvanaError(str(exc)) from None
        except TwinError as exc:
            raise GalvanaError(f"the calibration failed: {exc}") from None
        written: list[Path] = []
        if args.report:
            written = write_report(result, Path(args.report), units, seed=spec.seed)
        if args.json:
            plain = report_plain(result, units)
            plain["report"] = [str(p) for p in written]
            print(json.dumps(plain, indent=2, allow_nan=False))
        else:
            print(posterior_table(result, units))
            if written:
                print("\nreport: " + ", ".join(str(p) for p in written))
        return 0 if result.converged else 1


def _calibrate_on(
    args: argparse.Namespace,
    spec: TwinSpec,
    experiments: list[Experiment],
    say: Callable[[int, int, str], None],
) -> Calibration:
    """The calibration, on the executor the command line names (none: this process)."""
    if args.executor is None and args.ray_address is None:
        return calibrate_experiments(spec, experiments, progress=say)
    with executor_for(settings_from(args)) as executor:
        return calibrate_experiments(spec, experiments, progress=say, executor=executor)


class _Progress:
    """Progress on stderr: a rich bar on a terminal, one line per stage otherwise."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Callable[[int, int, str], None]:
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.start()
        return self.say

    def say(self, done: int, total: int, what: str) -> None:
        if self._bar is None:
            print(f"calibrate: [{done + 1}/{total}] {what}", file=sys.stderr, flush=True)
            return
        if self._task is None:
            self._task = self._bar.add_task(what, total=total)
        self._bar.update(self._task, completed=done, description=what)

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.stop()


CALIBRATE = _Calibrate
