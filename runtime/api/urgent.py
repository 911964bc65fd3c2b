"""The emergency-stop socket: ``instruments.estop`` served outside the API's event loop.

The API server (:mod:`runtime.api.server`) serves the stop on threads of its own, but
it still accepts and greets the stop's connection on its event loop, one connection
after another: behind a burst of connections (64 opened at once by another client) the
stop waited for every one of them to be set up first, 100-230 ms on a loaded machine.
This listener takes that loop out of the stop's way: a second Unix socket beside the
API's (``galvana-estop.sock``, mode 0600, the owner only), accepted by a plain thread,
each connection read by a short-lived thread of its own, speaking the same frames
(``hello``, then calls) and serving the urgent routes it is given and nothing else.
``galvana estop`` uses it when it is there.

Bounded: at most :data:`MAX_CONNECTIONS` connections at once (the next is told ``limit``
and closed) and :data:`IDLE_S` seconds for a connection to send its frames.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from runtime.actor import ADMIN_SCOPE, scopes_of
from runtime.api.dispatch import run_urgent
from runtime.api.protocol import (
    PROTOCOL_VERSION,
    Call,
    ErrorCode,
    FrameDecoder,
    Hello,
    decode_body,
    encode_frame,
    error_reply,
    ok_reply,
    parse_request,
    request_id_of,
)
from runtime.codec import DecodeLimits
from runtime.errors import ApiError

__all__ = ["IDLE_S", "MAX_CONNECTIONS", "UrgentListener", "bind_private_unix_socket"]

logger = logging.getLogger("galvana.api.urgent")

MAX_CONNECTIONS = 16
"""Connections served at once; one more is answered ``limit`` and closed."""
IDLE_S = 5.0
"""Seconds a connection may stay silent before it is closed."""
_MAX_FRAME = 64 * 1024  # a stop is a few dozen bytes
_LIMITS = DecodeLimits(max_bytes=_MAX_FRAME, max_array_bytes=_MAX_FRAME)

Route = Callable[..., object]


def bind_private_unix_socket(path: Path) -> socket.socket:
    """A listening Unix socket at ``path``, never reachable with permissions wider than
    0600: bound in a private directory, then renamed into place. A stale socket file
    (nobody answering) is replaced; a live one is refused with :class:`ApiError`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        if _answers(path):
            raise ApiError(ErrorCode.LIMIT, f"another server is listening on {path}")
        path.unlink()
    if len(os.fsencode(path)) > 100:  # sun_path holds 108 bytes, the staging name needs a few
        raise ApiError(
            ErrorCode.BAD_REQUEST,
            f"socket path {path} is too long for a Unix socket (at most 100 bytes); "
            "use --socket with a shorter path",
        )
    private = Path(tempfile.mkdtemp(prefix=".gs-", dir=path.parent))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        staged = private / "s"
        sock.bind(str(staged))
        staged.chmod(0o600)
        staged.rename(path)
    except BaseException:
        sock.close()
        raise
    finally:
        private.rmdir()
    sock.listen(128)
    return sock


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


class UrgentListener:
    """Serves ``routes`` (``(path, method) -> function``) on its own Unix socket."""

    def __init__(
        self,
        path: Path,
        routes: Mapping[tuple[str, str], Route],
        server_info: Mapping[str, object] | None = None,
    ) -> None:
        self.path = path
        self.routes = {(p.strip("/"), m): fn for (p, m), fn in routes.items()}
        self.server_info = dict(server_info or {})
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._closed = threading.Event()

    def start(self) -> str:
        """Bind and start accepting; returns the address (``unix:PATH``)."""
        self._sock = bind_private_unix_socket(self.path)
        self._thread = threading.Thread(
            target=self._accept_loop, name="galvana-estop-accept", daemon=True
        )
        self._thread.start()
        return f"unix:{self.path}"

    def close(self) -> None:
        """Stop accepting and remove the socket file (connections being served finish)."""
        self._closed.set()
        if self._sock is not None:
            # shutdown() wakes the accepting thread; close() alone may not.
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            if not self._slots.acquire(blocking=False):
                with conn:
                    conn.settimeout(1.0)
                    message = (
                        f"the emergency-stop socket serves at most {MAX_CONNECTIONS} "
                        "connections at once; try again"
                    )
                    with contextlib.suppress(OSError):
                        conn.sendall(encode_frame(error_reply(None, ErrorCode.LIMIT, message)))
                continue
            threading.Thread(
                target=self._serve, args=(conn,), name="galvana-estop", daemon=True
            ).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                conn.settimeout(IDLE_S)
                self._serve_frames(conn)
        except OSError:
            pass  # the client went away or stayed silent: nothing to answer
        finally:
            self._slots.release()

    def _serve_frames(self, conn: socket.socket) -> None:
        decoder = FrameDecoder(_MAX_FRAME)
        scopes: tuple[str, ...] | None = None
        while True:
            data = conn.recv(65536)
            if not data:
                return
            try:
                items = decoder.feed(data)
            except ApiError as exc:
                conn.sendall(encode_frame(error_reply(None, exc.code, str(exc))))
                return  # framing is broken
            for item in items:
                if isinstance(item, ApiError):
                    reply = error_reply(None, item.code, str(item))
                else:
                    reply, scopes = self._answer(conn, item, scopes)
                conn.sendall(_encoded(reply))

    def _answer(
        self, conn: socket.socket, body: bytes, scopes: tuple[str, ...] | None
    ) -> tuple[dict[str, Any], tuple[str, ...] | None]:
        rid: int | None = None
        try:
            frame = decode_body(body, _LIMITS)
            rid = request_id_of(frame)
            request = parse_request(frame)
            if isinstance(request, Hello):
                if request.protocol != PROTOCOL_VERSION:
                    raise ApiError(
                        ErrorCode.BAD_REQUEST,
                        f"protocol {request.protocol} is not supported; "
                        f"this daemon speaks {PROTOCOL_VERSION}",
                    )
                # The socket is 0600: whoever got through is its owner (or root).
                scopes = scopes_of(ADMIN_SCOPE) if _is_owner(conn) else ()
                return ok_reply(request.id, {**self.server_info, "scopes": list(scopes)}), scopes
            if scopes is None:
                raise ApiError(ErrorCode.UNAUTHORIZED, "send 'hello' first")
            if not isinstance(request, Call):
                raise ApiError(ErrorCode.BAD_REQUEST, self._only())
            name = f"{request.path.strip('/')}.{request.method}"
            route = self.routes.get((request.path.strip("/"), request.method))
            if route is None:
                raise ApiError(ErrorCode.NOT_FOUND, self._only())
            result = run_urgent(route, name, request.args, request.kwargs, scopes)
            return ok_reply(request.id, result), scopes
        except ApiError as exc:
            return error_reply(rid, exc.code, str(exc)), scopes

    def _only(self) -> str:
        routes = ", ".join(f"{p}.{m}" for p, m in sorted(self.routes)) or "nothing"
        return f"the emergency-stop socket serves {routes} only; use the API socket"


def _encoded(reply: dict[str, Any]) -> bytes:
    try:
        return encode_frame(reply)
    except Exception as exc:  # a route's result the codec refuses: say so, keep serving
        message = f"reply cannot be encoded: {type(exc).__name__}"
        return encode_frame(error_reply(reply.get("id"), ErrorCode.INTERNAL, message))


def _is_owner(conn: socket.socket) -> bool:
    try:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (OSError, AttributeError):
        return False
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid in (os.geteuid(), 0)
