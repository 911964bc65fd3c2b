"""The simulated potentiostat on a real wire: a TCP server on loopback speaking SCPI.

One thread per connection (instruments serve a handful of clients); every
connection talks to the same :class:`~hal.sim.potentiostat.SimPotentiostat`, so a
second session can turn the cell off while the first is stuck, as with a real
instrument's second socket. Binds 127.0.0.1 only.

>>> from hal.sim.models import RandlesModel
>>> server = ScpiServer(SimPotentiostat(RandlesModel()), port=0).start()
>>> server.resource.startswith("TCPIP0::127.0.0.1::")
True
>>> server.close()

Connection-level faults: :meth:`ScpiServer.drop_connections` closes every
connection (and optionally refuses new ones for a while); :meth:`ScpiServer.hang`
makes every open connection sit on its next command for a while.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from types import TracebackType

from hal.sim.potentiostat import SimPotentiostat
from hal.sim.scpi import ScpiSession, ServerHooks, is_truncated

__all__ = ["LOOPBACK", "ScpiServer"]

logger = logging.getLogger("galvana.hal.sim")

LOOPBACK = "127.0.0.1"
_MAX_LINE = 1 << 20  # a program of ~40,000 corners fits on one line


class _Connection:
    def __init__(self, server: ScpiServer, sock: socket.socket, peer: str) -> None:
        self.server = server
        self.sock = sock
        self.peer = peer
        self.hang_until = 0.0
        self.session = ScpiSession(
            server.instrument, ServerHooks(drop=server.drop_connections, hang=server.hang)
        )
        self.thread = threading.Thread(target=self._serve, name=f"scpi-{peer}", daemon=True)

    def _serve(self) -> None:
        buffer = bytearray()
        try:
            while not self.server.closed.is_set():
                newline = buffer.find(b"\n")
                if newline < 0:
                    if len(buffer) > _MAX_LINE:
                        logger.warning(
                            "%s sent a line over %d bytes; closing", self.peer, _MAX_LINE
                        )
                        return
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        return
                    buffer.extend(chunk)
                    continue
                line = bytes(buffer[:newline]).rstrip(b"\r")
                del buffer[: newline + 1]
                self._wait_while_hung()
                reply = self.session.execute(line.decode("ascii", errors="replace"))
                if reply is not None:
                    self.sock.sendall(reply)
                    if is_truncated(reply):
                        logger.info("%s: sent a truncated reply on purpose", self.peer)
        except OSError:
            pass  # the client went away, or the connection was dropped on purpose
        finally:
            self.server._forget(self)
            with contextlib.suppress(OSError):
                self.sock.close()

    def _wait_while_hung(self) -> None:
        if self.hang_until > time.monotonic():
            self.server.hung.set()
        while True:
            left = self.hang_until - time.monotonic()
            if left <= 0 or self.server.closed.wait(min(left, 0.05)):
                return

    def drop(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()


class ScpiServer:
    """Serve ``instrument`` over SCPI on ``127.0.0.1:port`` (0: a free port)."""

    def __init__(self, instrument: SimPotentiostat, *, port: int = 5025) -> None:
        self.instrument = instrument
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((LOOPBACK, port))
        self._listener.listen(8)
        self.port: int = self._listener.getsockname()[1]
        self.closed = threading.Event()
        self.hung = threading.Event()
        """Set once a connection has started sitting on a command for :meth:`hang`."""
        self._lock = threading.Lock()
        self._connections: set[_Connection] = set()
        self._refuse_until = 0.0
        self.accepted = 0
        self.refused = 0
        self._thread = threading.Thread(target=self._accept, name="scpi-accept", daemon=True)

    @property
    def resource(self) -> str:
        """The VISA resource string of this server (raw socket, pyvisa-py)."""
        return f"TCPIP0::{LOOPBACK}::{self.port}::SOCKET"

    @property
    def connections(self) -> int:
        """Open client connections now."""
        with self._lock:
            return len(self._connections)

    def start(self) -> ScpiServer:
        """Start accepting connections (in a daemon thread); returns self."""
        self._thread.start()
        return self

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                sock, peer = self._listener.accept()
            except OSError:
                return  # the listener was closed
            if time.monotonic() < self._refuse_until:
                self.refused += 1
                with contextlib.suppress(OSError):
                    sock.close()
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(self, sock, f"{peer[0]}:{peer[1]}")
            with self._lock:
                self._connections.add(conn)
                self.accepted += 1
            conn.thread.start()

    def _forget(self, conn: _Connection) -> None:
        with self._lock:
            self._connections.discard(conn)

    def drop_connections(self, refuse_s: float = 0.0) -> None:
        """Close every connection now; refuse new ones for ``refuse_s`` seconds."""
        self._refuse_until = time.monotonic() + max(0.0, refuse_s)
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            conn.drop()

    def hang(self, seconds: float) -> None:
        """Every open connection sits on its next command for ``seconds``."""
        until = time.monotonic() + max(0.0, seconds)
        with self._lock:
            for conn in self._connections:
                conn.hang_until = until

    def close(self) -> None:
        """Stop serving: close the listener and every connection."""
        self.closed.set()
        # shutdown() wakes a thread blocked in accept(); close() alone may not.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._listener.close()
        self.drop_connections()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)

    def __enter__(self) -> ScpiServer:
        return self.start() if not self._thread.is_alive() else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
