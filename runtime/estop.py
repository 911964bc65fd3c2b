"""``galvana estop [INSTRUMENT]``: every cell (or one) off at once; never asks.

It goes to the daemon's emergency-stop socket (``galvana-estop.sock`` beside the API
socket, served outside the API's event loop) and to the API socket when that one is
not there. This command stands alone: the standard library, msgpack and ``runtime.address``,
nothing else (no numpy, no trio, no codec), so the stop is on the wire within
milliseconds of the command being typed. It connects, sends ``hello`` and the
``instruments.estop`` call in one write (the daemon answers frames in order), and
waits for the answer.

The daemon serves the stop on threads reserved for it and accepts it on connections
past its connection limit, so no busy actor and no other client delays it.

Exit status: 0 when every cell is confirmed off; 1 when the daemon answered but an
instrument could not confirm its cell off; 2 when there is no answer (unreachable,
refused, timed out) or the options are wrong. Never a traceback: one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

import msgpack

from runtime.address import (
    TOKEN_ARGV_REFUSAL,
    TOKEN_ENV,
    default_socket_path,
    estop_socket_path,
    parse_tcp,
    resolve_data_dir,
    token_from,
)
from runtime.errors import GalvanaError

__all__ = ["configure", "run"]

_HEADER = struct.Struct(">I")  # runtime.api.protocol's frame header
_MAX_REPLY = 16 * 1024 * 1024
_REASON = "emergency stop (galvana estop)"


class _NotConfirmed(Exception):
    """The stop was not confirmed; the message is the one line to print."""


def configure(parser: argparse.ArgumentParser) -> None:
    """The options of ``galvana estop``."""
    parser.add_argument("instrument", nargs="?", help="one instrument (default: all)")
    parser.add_argument(
        "--data", help="the daemon's data directory (default: $GALVANA_HOME or ./galvana-data)"
    )
    parser.add_argument("--socket", help="the daemon's Unix socket (default: DATA/galvana.sock)")
    parser.add_argument("--tcp", help="reach the daemon over TCP at HOST:PORT instead")
    parser.add_argument(
        "--token-file", help=f"a file (mode 0600) holding the daemon's TCP token (or ${TOKEN_ENV})"
    )
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for confirmation (default 5)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    """Send the stop; print one line per instrument (or JSON); see the module docstring."""
    try:
        trips = _stop(args)
    except (GalvanaError, _NotConfirmed) as exc:
        print(f"galvana estop: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        # A safety command's failure must read as one line: a traceback would bury it.
        print(
            f"galvana estop: the stop is NOT confirmed ({type(exc).__name__}: {exc})",
            file=sys.stderr,
        )
        return 2
    if args.json:
        print(json.dumps(trips, indent=2))
    else:
        for trip in trips:
            state = (
                "cell OFF" if trip["cell_off"] else "cell-off NOT CONFIRMED (link down; retried)"
            )
            print(f"{trip['instrument']}: {state}")
    return 0 if all(t["cell_off"] for t in trips) else 1


def _stop(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.token is not None:
        raise GalvanaError(TOKEN_ARGV_REFUSAL)
    if not args.timeout > 0:
        raise GalvanaError(f"--timeout {args.timeout!r} is not accepted; expected seconds > 0")
    deadline = time.monotonic() + args.timeout
    hello: dict[str, Any] = {"id": 1, "op": "hello", "protocol": 1, "client": "galvana-estop"}
    targets: list[tuple[str, socket.AddressFamily, Any]]
    if args.tcp:
        address = parse_tcp(args.tcp)
        hello["token"] = token_from(args.token_file)
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        targets = [(f"tcp:{address[0]}:{address[1]}", family, address)]
    else:
        api = Path(args.socket) if args.socket else default_socket_path(resolve_data_dir(args.data))
        # The daemon's emergency-stop socket first: served outside the API's event loop
        # (runtime.api.urgent); the API socket when it is not there (an older daemon).
        targets = [
            (f"unix:{path}", socket.AF_UNIX, str(path)) for path in (estop_socket_path(api), api)
        ]
    call = {
        "id": 2,
        "op": "call",
        "path": "instruments",
        "method": "estop",
        "args": [args.instrument, _REASON],
        "kwargs": {},
    }
    for number, (where, family, target) in enumerate(targets, 1):
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                sock.connect(target)
                sock.sendall(_frame(hello) + _frame(call))
            except OSError as exc:
                if number < len(targets):
                    continue
                raise _NotConfirmed(
                    f"cannot reach the daemon at {where}: {exc.strerror or exc}; the stop is "
                    "NOT confirmed: turn the cell off at the instrument"
                ) from None
            try:
                return _answer(sock, where, deadline, args.timeout)
            except _NotConfirmed:
                # Every slot of the stop's socket taken (or it went away): the API socket
                # keeps connections in reserve for the stop.
                if number == len(targets) or time.monotonic() >= deadline:
                    raise
    raise AssertionError("unreachable: the last target answers or raises")


def _frame(payload: dict[str, Any]) -> bytes:
    body: bytes = msgpack.packb(payload)
    return _HEADER.pack(len(body)) + body


def _answer(
    sock: socket.socket, where: str, deadline: float, timeout: float
) -> list[dict[str, Any]]:
    """Read frames until the call's reply; a failed hello explains a refused call."""
    hello_error = ""
    buffer = b""
    while True:
        while len(buffer) < _HEADER.size or len(buffer) < _HEADER.size + _length(buffer):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _NotConfirmed(
                    f"no answer from the daemon at {where} within {timeout:g} s; the stop is "
                    "NOT confirmed: turn the cell off at the instrument"
                )
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                chunk = b""
                hello_error = hello_error or str(exc)
            if not chunk:
                why = f": {hello_error}" if hello_error else ""
                raise _NotConfirmed(
                    f"the daemon at {where} closed the connection{why}; the stop is NOT "
                    "confirmed: turn the cell off at the instrument"
                )
            buffer += chunk
        size = _length(buffer)
        body, buffer = buffer[_HEADER.size : _HEADER.size + size], buffer[_HEADER.size + size :]
        reply = msgpack.unpackb(body)
        if not isinstance(reply, dict):
            continue
        error = reply.get("error") if not reply.get("ok") else None
        if reply.get("id") == 1 and error:
            hello_error = str(error.get("message", error))
        elif reply.get("id") == 2:
            if error:
                why = hello_error or str(error.get("message", error))
                raise _NotConfirmed(f"the daemon at {where} refused the stop: {why}")
            return _trips(reply.get("result"), where)
        elif reply.get("id") is None and error and not hello_error:
            hello_error = str(error.get("message", error))


def _length(buffer: bytes) -> int:
    (size,) = _HEADER.unpack_from(buffer)
    if size > _MAX_REPLY:
        raise _NotConfirmed(f"the daemon sent a frame of {size} bytes; the stop is NOT confirmed")
    return int(size)


def _trips(result: object, where: str) -> list[dict[str, Any]]:
    if not isinstance(result, list) or not all(
        isinstance(t, dict) and "instrument" in t and "cell_off" in t for t in result
    ):
        raise _NotConfirmed(f"the daemon at {where} answered the stop with {result!r}")
    return result
