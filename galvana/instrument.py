"""``galvana instrument``: instrument commands.

``galvana instrument list`` is ``galvana instruments`` (:mod:`runtime.commands`): the
daemon's instruments with their driver, state, link, interlock and connection.
``galvana instrument reset ID`` unlatches an instrument's safety interlock after a trip
or an emergency stop, once the cause is dealt with (until then the instrument refuses
to start a run). Both talk to a running daemon like ``galvana run``.

``galvana instrument serve [--port 5025] [--scenario FILE] [--rate HZ] [--speed X]
[--drift NAME=FRACTION] ...`` serves a simulated potentiostat over SCPI on
127.0.0.1 until interrupted. The hidden true cell is the physics engine simulating
``--scenario`` (default ``examples/simulated-cell.yaml``), or with ``--model
randles`` the built-in Randles cell (:func:`actors.sim_cell.build_model`). Its first
line of output says where::

    galvana instrument serve: listening on 127.0.0.1:5025 (TCPIP0::127.0.0.1::5025::SOCKET)

Connect with pyvisa (``pyvisa.ResourceManager("@py").open_resource(...)``), with
:class:`hal.drivers.scpi_potentiostat.ScpiPotentiostat`, or by hand (``nc 127.0.0.1
5025``, then ``*IDN?``); the dialect is documented in :mod:`hal.sim.scpi`.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading

from runtime.commands import INSTRUMENTS, connect, connection_options

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``instrument`` subcommands to ``parser``."""
    subs = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = subs.add_parser(
        "list",
        help="the daemon's instruments: driver, state, link, interlock (`galvana instruments`)",
    )
    INSTRUMENTS.configure(listing)
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
        "(physics, or Randles without --scenario when the default scenario is missing)",
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


def run(args: argparse.Namespace) -> int:
    """Run the chosen ``instrument`` action."""
    if args.action == "list":
        return INSTRUMENTS.run(args)
    if args.action == "reset":
        return _reset(args)
    if args.action != "serve":  # argparse only lets known actions through
        return 2
    # The simulated instrument and the physics engine (numba) load only to serve: `list`
    # and `reset` stay light.
    from actors.sim_cell import build_model  # noqa: PLC0415
    from hal.errors import SimulatorError  # noqa: PLC0415
    from hal.sim.potentiostat import DriftSpec, SimPotentiostat  # noqa: PLC0415
    from hal.sim.server import LOOPBACK, ScpiServer  # noqa: PLC0415

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


def _reset(args: argparse.Namespace) -> int:
    """``reset ID``, through the daemon's API."""
    with connect(args) as daemon:
        result = daemon.call("instruments", "reset", args.instrument_id)
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    elif not result["latched"]:
        sys.stdout.write(f"{result['instrument']}: interlock reset; runs can start on it again\n")
    else:
        sys.stdout.write(f"{result['instrument']}: the interlock is still latched\n")
    return 0 if not result["latched"] else 1


if __name__ == "__main__":  # pragma: no cover - `python -m galvana.instrument serve ...`
    parser = argparse.ArgumentParser(prog="galvana instrument")
    configure(parser)
    sys.exit(run(parser.parse_args()))
