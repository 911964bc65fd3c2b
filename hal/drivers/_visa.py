"""Opening VISA resources, shared by the SCPI drivers.

A resource is tried with each backend in turn (``"@py"``: pyvisa-py, pure Python;
``"@ivi"``: a vendor VISA library; ``"path/to/device.yaml@sim"``: pyvisa-sim), and
when none opens it the error names the resource and every backend with its reason.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Iterator, Sequence

import pyvisa
from pyvisa.resources import MessageBasedResource

from hal.errors import InstrumentOpenError, LinkError

__all__ = ["VISA_ERRORS", "drain", "open_resource", "visa_errors_as_link_errors"]

logger = logging.getLogger("galvana.hal.visa")

VISA_ERRORS: tuple[type[BaseException], ...] = (pyvisa.errors.Error, OSError, EOFError)
"""What a VISA call raises when the link fails (pyvisa's errors, and the socket's)."""

_managers: dict[str, pyvisa.ResourceManager] = {}
_managers_lock = threading.Lock()


def _manager(backend: str) -> pyvisa.ResourceManager:
    # One manager per backend for the process: creating one loads a library.
    with _managers_lock:
        rm = _managers.get(backend)
        if rm is None:
            rm = pyvisa.ResourceManager(backend)
            _managers[backend] = rm
        return rm


def _no_delay(res: MessageBasedResource) -> None:
    """Send each line at once (TCP_NODELAY) on a raw-socket resource.

    Commands are short lines, each waiting on the one before: with Nagle's algorithm a
    line waits for the previous one's delayed ACK (40 ms on Linux), and a cell-off
    waits with it. pyvisa-py 0.7 registers VI_ATTR_TCPIP_NODELAY without its setter,
    so its session's socket is set directly when the attribute is refused.
    """
    try:
        res.set_visa_attribute(
            pyvisa.constants.ResourceAttribute.tcpip_nodelay, pyvisa.constants.VisaBoolean.true
        )
        return
    except Exception:  # pyvisa-py raises UnknownAttribute (not a VisaIOError) here
        logger.debug("VI_ATTR_TCPIP_NODELAY refused; setting the socket option", exc_info=True)
    sessions = getattr(res.visalib, "sessions", {})
    sock = getattr(sessions.get(res.session), "interface", None)
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def open_resource(
    resource: str,
    backends: Sequence[str] = ("@py",),
    *,
    timeout_s: float = 2.0,
    open_timeout_s: float = 2.0,
) -> MessageBasedResource:
    """Open ``resource`` with the first backend that can; lines end in ``\\n``.

    Raises :class:`InstrumentOpenError` naming the resource and each backend tried.
    """
    attempts: list[tuple[str, str]] = []
    for backend in backends:
        try:
            rm = _manager(backend)
            res = rm.open_resource(
                resource,
                read_termination="\n",
                write_termination="\n",
                timeout=round(timeout_s * 1000),
                open_timeout=round(open_timeout_s * 1000),
            )
        except Exception as exc:  # pyvisa-py raises a bare Exception when it cannot connect
            attempts.append((backend, f"{type(exc).__name__}: {exc}".strip()))
            continue
        if not isinstance(res, MessageBasedResource):
            with contextlib.suppress(*VISA_ERRORS):
                res.close()
            attempts.append((backend, f"{type(res).__name__} is not message-based"))
            continue
        try:
            if resource.upper().endswith("::SOCKET"):
                _no_delay(res)
            if backend == "@py" and resource.upper().endswith("::SOCKET"):
                # pyvisa-py "opens" a socket whose connection was refused; an empty
                # line (which SCPI ignores) touches the wire and fails with the reason.
                # Not a device clear: pyvisa-py's spins forever on a closed socket.
                res.write("")
        except VISA_ERRORS as exc:
            with contextlib.suppress(*VISA_ERRORS):
                res.close()
            attempts.append((backend, f"{type(exc).__name__}: {exc}"))
            continue
        logger.debug("opened %s with backend %s", resource, backend)
        return res
    raise InstrumentOpenError(resource, attempts)


@contextlib.contextmanager
def visa_errors_as_link_errors(what: str) -> Iterator[None]:
    """Turn VISA and socket failures inside the block into :class:`LinkError` (``what`` failed)."""
    try:
        yield
    except VISA_ERRORS as exc:
        description = getattr(exc, "description", "") or str(exc) or type(exc).__name__
        raise LinkError(f"{what}: {description}") from exc


def drain(res: MessageBasedResource, *, quiet_s: float = 0.1, limit: int = 1000) -> bytes:
    """Read and discard what is in flight until the line stays quiet for ``quiet_s``.

    Used instead of a device clear after a bad reply (pyvisa-py's clear never returns
    on a socket the peer closed). Returns the first bytes discarded, for the log.
    """
    discarded = bytearray()
    previous = res.timeout
    res.timeout = max(1, round(quiet_s * 1000))
    try:
        for _ in range(limit):
            try:
                chunk = bytes(res.read_raw())
            except pyvisa.errors.VisaIOError:
                break  # quiet: the line is drained
            if not chunk:
                break
            if len(discarded) < 256:
                discarded.extend(chunk[: 256 - len(discarded)])
    finally:
        res.timeout = previous
    return bytes(discarded)
