"""``galvana tui``: the terminal UI on this terminal."""

from __future__ import annotations

import argparse
import logging
import sys

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """The options of ``galvana tui`` (how ``galvana run`` finds the daemon, and a run to open)."""
    parser.add_argument(
        "--data", help="the daemon's data directory (default: $GALVANA_HOME or ./galvana-data)"
    )
    parser.add_argument("--socket", help="the daemon's Unix socket (default: DATA/galvana.sock)")
    parser.add_argument("--tcp", help="reach the daemon over TCP at HOST:PORT instead")
    parser.add_argument(
        "--token-file", help="a file (mode 0600) holding the daemon's TCP token (or $GALVANA_TOKEN)"
    )
    parser.add_argument("--token", help=argparse.SUPPRESS)  # refused: it shows in `ps`
    parser.add_argument("--run", dest="run_id", metavar="ID", help="open this run at start")
    parser.add_argument(
        "--sweep",
        metavar="DIR.zarr",
        help="open a sweep's results (galvana sweep --out DIR.zarr) as a heatmap",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="the TUI's settings (display units; default: $XDG_CONFIG_HOME/galvana/tui.yaml)",
    )


def run(args: argparse.Namespace) -> int:
    """Open the TUI; returns 0 when the user quits.

    A daemon that cannot be reached is no error here: the TUI says so in a banner
    and keeps retrying. A malformed ``--tcp`` or config file is (one line, exit status 2).
    """
    from runtime.address import TOKEN_ARGV_REFUSAL, token_from  # noqa: PLC0415
    from runtime.errors import TokenError  # noqa: PLC0415

    if args.token is not None:
        raise TokenError(TOKEN_ARGV_REFUSAL)
    token = token_from(args.token_file)
    from tui._units import load_units  # noqa: PLC0415

    units = load_units(args.config)
    sweep = None
    if args.sweep is not None:
        from tui._sweep_screen import read_sweep  # noqa: PLC0415

        sweep = read_sweep(args.sweep)
    # Textual is imported only when the TUI is used: `galvana --help` stays instant.
    from textual.logging import TextualHandler  # noqa: PLC0415

    from tui._app import run_app  # noqa: PLC0415

    # A log line written to the terminal would tear the screen: while the TUI runs,
    # records go to Textual's log (its devtools console) instead.
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.StreamHandler) and handler.stream in (
            sys.stderr,
            sys.stdout,
        ):
            root.removeHandler(handler)
    root.addHandler(TextualHandler())
    run_app(
        socket_path=args.socket,
        tcp=args.tcp,
        token=token,
        data=args.data,
        run_id=args.run_id,
        units=units,
        sweep=sweep,
    )
    return 0
