"""``galvana instrument``: instrument commands.

``galvana instrument list`` shows the daemon's instruments (state, link, trip);
``galvana instrument reset ID`` unlatches an instrument's safety interlock after a trip
or an emergency stop, once the cause is dealt with (until then the instrument refuses
to start a run). Both talk to a running daemon like ``galvana run``.

``galvana instrument serve [--port 5025] [--scenario FILE] [--rate HZ] [--speed X]
[--drift NAME=FRACTION] ...`` serves a simulated potentiostat over SCPI on
127.0.0.1 until interrupted. The hidden true cell is the physics engine simulating
``--scenario`` (default ``examples/simulated-cell.yaml``), or with ``--model
randles`` the built-in Randles cell. Its first line of output says where::

    galvana instrument serve: listening on 127.0.0.1:5025 (TCPIP0::127.0.0.1::5025::SOCKET)

Connect with pyvisa (``pyvisa.ResourceManager("@py").open_resource(...)``), with
:class:`hal.drivers.scpi_potentiostat.ScpiPotentiostat`, or by hand (``nc 127.0.0.1
5025``, then ``*IDN?``); the dialect is documented in :mod:`hal.sim.scpi`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading

from hal.errors import SimulatorError
from hal.sim.models import CurrentModel, RandlesModel
from hal.sim.potentiostat import DriftSpec, SimPotentiostat
from hal.sim.server import LOOPBACK, ScpiServer

__all__ = ["build_model", "configure", "run"]

logger = logging.getLogger("galvana.hal.cli")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``instrument`` subcommands to ``parser``."""
    from runtime.commands import connection_options  # noqa: PLC0415 - the client, when used

    subs = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = subs.add_parser("list", help="the daemon's instruments: state, link, trip")
    connection_options(listing)
    reset = subs.add_parser(
        "reset",
        help="unlatch an instrument's interlock after a trip or an emergency stop",
        description="Unlatch the safety interlock of instrument ID (after a trip or "
        "`galvana estop`), once the cause is dealt with; runs can then start on it again.",
    )
    reset.add_argument("instrument_id", metavar="ID", help="the instrument (see `list`)")
    connection_options(reset)
    serve = subs.add_parser(
        "serve",
        help="serve a simulated potentiostat over SCPI on 127.0.0.1",
        description="Serve a simulated potentiostat over SCPI on 127.0.0.1 until interrupted.",
    )
    serve.add_argument("--port", type=int, default=5025, help="TCP port (0: any free one)")
    serve.add_argument(
        "--scenario",
        metavar="FILE",
        help="the hidden true cell, a physics scenario YAML "
        "(default: examples/simulated-cell.yaml)",
    )
    serve.add_argument(
        "--model",
        choices=("auto", "physics", "randles"),
        default="auto",
        help="current model: the physics engine, the built-in Randles cell, or auto "
        "(physics when it is installed, else Randles)",
    )
    serve.add_argument("--rate", type=float, default=1000.0, help="default sample rate (Hz)")
    serve.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="instrument seconds per wall second (0: unpaced, as fast as fetched)",
    )
    serve.add_argument(
        "--drift",
        action="append",
        default=[],
        metavar="NAME=FRACTION",
        help="a model parameter that changes by FRACTION per cycle "
        "(kinetics.k0=-0.03; Randles: k0=-0.03); repeatable",
    )
    serve.add_argument("--seed", type=int, default=0, help="noise seed")
    serve.add_argument(
        "--relax",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long the cell must sit off to be back at rest; until then an acquisition "
        "carries on from where the last one left it (inf: never)",
    )
    serve.add_argument("--buffer", type=int, default=1_000_000, help="instrument buffer (samples)")


def build_model(scenario: str | None, model: str) -> CurrentModel:
    """The current model ``serve`` uses for these options.

    ``physics`` (and ``auto``, the default): the physics engine on ``scenario``, or on
    ``examples/simulated-cell.yaml`` when none is given; ``auto`` falls back to the
    Randles cell when the physics engine or that file is missing. ``randles``: the
    built-in Randles cell (no scenario).
    """
    if model == "randles":
        if scenario is not None:
            raise SimulatorError(
                f"--scenario {scenario!r} needs the physics model; accepted: --model physics "
                "or auto with --scenario, or --model randles without it"
            )
        return RandlesModel()
    try:
        from hal.sim.physics_model import DEFAULT_SCENARIO, PhysicsModel  # noqa: PLC0415
    except ImportError as exc:  # the physics engine is not installed
        if model == "physics" or scenario is not None:
            raise SimulatorError(
                f"--model physics: the physics engine is unavailable ({exc})"
            ) from None
        logger.warning("the physics engine is unavailable (%s); serving a Randles cell", exc)
        return RandlesModel()
    if scenario is None and not DEFAULT_SCENARIO.exists():
        if model == "physics":
            raise SimulatorError(
                f"--model physics without --scenario needs {DEFAULT_SCENARIO}; it is missing"
            )
        logger.warning("%s is missing; serving a Randles cell", DEFAULT_SCENARIO)
        return RandlesModel()
    return PhysicsModel(scenario if scenario is not None else DEFAULT_SCENARIO)


def run(args: argparse.Namespace) -> int:
    """Run the chosen ``instrument`` action."""
    if args.action in ("list", "reset"):
        return _daemon_action(args)
    if args.action != "serve":  # argparse only lets known actions through
        return 2
    model = build_model(args.scenario, args.model)
    drift = [DriftSpec.parse(d) for d in args.drift]
    instrument = SimPotentiostat(
        model,
        drift=drift,
        sample_rate=args.rate,
        speed=args.speed,
        buffer_samples=args.buffer,
        seed=args.seed,
        relax_s=args.relax,
    )
    try:
        server = ScpiServer(instrument, port=args.port)
    except OSError as exc:
        raise SimulatorError(
            f"--port {args.port}: cannot listen on {LOOPBACK}:{args.port} ({exc.strerror}); "
            "accepted: a free port, or 0 for any"
        ) from None
    with server:
        sys.stdout.write(
            f"galvana instrument serve: listening on {LOOPBACK}:{server.port} ({server.resource})\n"
        )
        sys.stdout.flush()
        # Serve until interrupted; the CLI turns KeyboardInterrupt into status 130.
        threading.Event().wait()
    return 0


def _daemon_action(args: argparse.Namespace) -> int:
    """``list`` and ``reset``, through the daemon's API."""
    from runtime.commands import connect  # noqa: PLC0415 - the client, when used

    with connect(args) as daemon:
        if args.action == "reset":
            result = daemon.call("instruments", "reset", args.instrument_id)
        else:
            result = daemon.call("instruments", "list")
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    elif args.action == "reset":
        sys.stdout.write(
            f"{result['instrument']}: interlock reset; runs can start on it again\n"
            if not result["latched"]
            else f"{result['instrument']}: the interlock is still latched\n"
        )
    else:
        for item in result:
            trip = f"  trip: {item['trip']}" if item.get("trip") else ""
            error = f"  {item['error']}" if item.get("error") else ""
            sys.stdout.write(f"{item['id']:<16} {item['state']:<13}{trip}{error}\n")
    return 0 if args.action == "list" or not result["latched"] else 1


if __name__ == "__main__":  # pragma: no cover - `python -m hal.cli serve ...`
    parser = argparse.ArgumentParser(prog="galvana instrument")
    configure(parser)
    sys.exit(run(parser.parse_args()))
