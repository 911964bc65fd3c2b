"""A serial line on POSIX: a device file in raw mode, read and written without blocking.

PalmSens instruments enumerate as USB serial ports (``/dev/ttyUSB0``,
``/dev/ttyACM0``); the simulated device is a pseudo-terminal (``/dev/pts/N``). Both
are opened and configured the same way with :mod:`termios`, so the driver cannot
tell them apart. Reads and writes may happen from different threads at the same
time (the line is full duplex): a write never waits for a read to finish.
"""

from __future__ import annotations

import contextlib
import os
import select
import termios
import threading
import time
import tty

from hal.errors import InstrumentOpenError, LinkError

__all__ = ["BAUD_RATES", "SerialLine"]

_BAUD = {
    9600: termios.B9600,
    19200: termios.B19200,
    38400: termios.B38400,
    57600: termios.B57600,
    115200: termios.B115200,
    230400: termios.B230400,
}
BAUD_RATES = tuple(sorted(_BAUD))
"""The line speeds (baud) a serial line may be opened at."""


class SerialLine:
    """One open serial device file (see the module docstring)."""

    def __init__(self, path: str, *, baudrate: int = 230400) -> None:
        if baudrate not in _BAUD:
            raise InstrumentOpenError(
                path, [("serial", f"baud rate {baudrate} not accepted; accepted: {sorted(_BAUD)}")]
            )
        self.path = path
        self.baudrate = baudrate
        self._fd = -1
        self._pending = b""
        self._write_lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        """Whether the device file is open."""
        return self._fd >= 0

    def open(self) -> None:
        """Open the device file in raw mode at the baud rate; input is flushed."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as exc:
            raise InstrumentOpenError(self.path, [("serial", exc.strerror or str(exc))]) from None
        try:
            tty.setraw(fd)
            attrs = termios.tcgetattr(fd)
            attrs[4] = attrs[5] = _BAUD[self.baudrate]
            termios.tcsetattr(fd, termios.TCSANOW, attrs)
            termios.tcflush(fd, termios.TCIOFLUSH)
        except (OSError, termios.error) as exc:
            os.close(fd)
            raise InstrumentOpenError(
                self.path, [("serial", f"not a serial line: {exc}")]
            ) from None
        self._fd = fd
        self._pending = b""

    def close(self) -> None:
        """Close the device file (idempotent)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)

    def write(self, data: bytes, *, timeout_s: float = 2.0) -> None:
        """Write all of ``data``; LinkError if the line is gone or stays full."""
        deadline = time.monotonic() + timeout_s
        with self._write_lock:
            view = memoryview(data)
            while view:
                fd = self._require()
                try:
                    _, ready, _ = select.select([], [fd], [], max(0.0, deadline - time.monotonic()))
                    if not ready:
                        raise LinkError(f"{self.path}: the line stayed full for {timeout_s} s")
                    view = view[os.write(fd, view) :]
                except BlockingIOError:
                    continue
                except (OSError, ValueError) as exc:
                    raise LinkError(f"{self.path}: write failed ({exc})") from exc

    def read(self, timeout_s: float) -> bytes:
        """What arrives within ``timeout_s`` (possibly nothing); LinkError on hang-up."""
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        fd = self._require()
        try:
            ready, _, _ = select.select([fd], [], [], timeout_s)
            if not ready:
                return b""
            data = os.read(fd, 65536)
        except BlockingIOError:
            return b""
        except (OSError, ValueError) as exc:
            raise LinkError(f"{self.path}: read failed ({exc})") from exc
        if not data:
            raise LinkError(f"{self.path}: the device hung up")
        return data

    def readline(self, timeout_s: float) -> bytes:
        """One line (without its ``\\n``); LinkError if none arrives within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        buffer = self._pending
        self._pending = b""
        while b"\n" not in buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                self._pending = buffer
                raise LinkError(f"{self.path}: no reply within {timeout_s} s (got {buffer[:40]!r})")
            buffer += self.read(left)
        line, _, rest = buffer.partition(b"\n")
        self._pending = rest
        return line.rstrip(b"\r")

    def flush_input(self) -> None:
        """Discard everything received and not read yet."""
        self._pending = b""
        fd = self._require()
        with contextlib.suppress(OSError, termios.error):
            termios.tcflush(fd, termios.TCIFLUSH)

    def _require(self) -> int:
        if self._fd < 0:
            raise LinkError(f"{self.path}: not open")
        return self._fd
