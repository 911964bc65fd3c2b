"""The TUI's connection to the daemon: an asyncio client of the actor message API.

Why not :class:`runtime.client.Client` or :class:`~runtime.client.AsyncClient`:
Textual runs on asyncio, the async client on trio, and the blocking client reads
replies and events on one socket in the caller's thread, so concurrent calls and a
1 kHz event stream would need a thread per call plus a reader thread marshalling
every event back into the event loop. This client speaks the same protocol through
the same framing (:mod:`runtime.api.protocol`) and codec, on the loop Textual already
runs: events reach their handlers without a thread hop, calls run concurrently on
one connection, and the connection comes back by itself (with its subscriptions)
after the daemon restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from runtime.api.protocol import (
    PROTOCOL_VERSION,
    FrameDecoder,
    call_request,
    decode_body,
    encode_frame,
    reply_result,
)
from runtime.client import Event, resolve_data_dir
from runtime.codec import DEFAULT_LIMITS, message_from_plain
from runtime.errors import ApiError, ConnectionLost, MessageError
from tui.errors import AddressError

__all__ = [
    "Address",
    "Connection",
    "ConnectionState",
    "ConnectionStatus",
    "EventHandler",
    "Link",
    "Subscription",
]

logger = logging.getLogger("galvana.tui")

_MAX_FRAME = 64 * 1024 * 1024  # as the Python clients: a reply may carry a large page
_READ_CHUNK = 256 * 1024

ConnectionState = Literal["connecting", "connected", "down"]
"""``connecting``: a first attempt or a retry is under way; ``connected``: the daemon
said hello; ``down``: the last attempt failed (or the link broke), a retry is due."""

EventHandler = Callable[[Event], None]
"""Called on the event loop for each event of a subscription; must return quickly."""


@dataclass(frozen=True, slots=True)
class Address:
    """Where the daemon listens: its Unix socket, or TCP with an optional token."""

    socket_path: Path | None = None
    tcp: tuple[str, int] | None = None
    token: str | None = None

    def __post_init__(self) -> None:
        if (self.socket_path is None) == (self.tcp is None):
            raise AddressError("give exactly one of a socket path or a TCP address")

    @classmethod
    def from_options(
        cls,
        *,
        data: str | Path | None = None,
        socket: str | Path | None = None,
        tcp: str | None = None,
        token: str | None = None,
    ) -> Address:
        """The address the command-line options name, as ``galvana run`` reads them.

        ``tcp`` is ``HOST:PORT``; without ``socket`` or ``tcp`` the socket is
        ``DATA/galvana.sock`` (``DATA``: ``data``, ``$GALVANA_HOME`` or ``./galvana-data``).
        """
        if tcp:
            host, sep, port = tcp.rpartition(":")
            if not sep or not port.isdigit():
                raise AddressError(f"--tcp {tcp!r} is not HOST:PORT (e.g. 127.0.0.1:7340)")
            return cls(
                tcp=(host or "127.0.0.1", int(port)),
                token=token or os.environ.get("GALVANA_TOKEN"),
            )
        if socket:
            return cls(socket_path=Path(socket))
        # The daemon's default; the same rule as runtime.api.server.default_socket_path.
        return cls(socket_path=resolve_data_dir(data) / "galvana.sock")

    def describe(self) -> str:
        """``unix:PATH`` or ``tcp:HOST:PORT``."""
        if self.socket_path is not None:
            return f"unix:{self.socket_path}"
        assert self.tcp is not None
        return f"tcp:{self.tcp[0]}:{self.tcp[1]}"


@dataclass(frozen=True, slots=True)
class ConnectionStatus:
    """Where the connection stands, in words a person can act on."""

    state: ConnectionState
    address: str
    message: str = ""
    attempt: int = 0
    retry_in_s: float = 0.0

    @property
    def connected(self) -> bool:
        """True while requests can be sent."""
        return self.state == "connected"


@dataclass(eq=False)
class Subscription:
    """A subscription the TUI holds; it survives reconnects (it is re-sent each time)."""

    topic: str
    handler: EventHandler
    server_id: int | None = None
    active: bool = field(default=True)


class Link(Protocol):
    """What the screens need of a daemon connection (a fake one stands in for tests)."""

    @property
    def status(self) -> ConnectionStatus:
        """The connection's state now."""

    async def call(
        self, path: str, method: str, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        """Call an exposed actor method; raises ApiError, or ConnectionLost when down."""

    def subscribe(self, topic: str, handler: EventHandler) -> Subscription:
        """Deliver the events of ``topic`` (a pattern) to ``handler``, now and after reconnects."""

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop delivering a subscription's events."""

    def retry_now(self) -> None:
        """Skip the wait before the next connection attempt."""


def _describe_os_error(address: Address, exc: OSError) -> str:
    where = address.describe()
    if isinstance(exc, FileNotFoundError):
        return (
            f"no daemon socket at {address.socket_path}: is `galvana daemon` running, "
            "and do --data/--socket point at it?"
        )
    if isinstance(exc, ConnectionRefusedError):
        return f"nothing is listening at {where}: is `galvana daemon` running?"
    if isinstance(exc, PermissionError):
        return f"permission denied on {where}: the socket belongs to another user"
    return f"cannot reach the daemon at {where}: {exc.strerror or exc}"


def _event_of(frame: dict[str, Any]) -> Event:
    sid = int(frame.get("subscription", -1))
    if frame.get("op") == "lagged":
        return Event(sid, "bus/lagged", None, int(frame.get("lost", 0)))
    raw = frame.get("message")
    try:
        msg = message_from_plain(raw)
    except MessageError:
        msg = raw  # a tag this build does not know yet: hand over [tag, ...] as it came
    return Event(sid, str(frame.get("topic", "")), msg)


class Connection:
    """One connection to the daemon, re-established whenever it breaks.

    Start :meth:`run` as a task; it connects, says hello, re-sends every
    subscription and then reads until the link breaks, and retries after
    ``retry_s`` (doubling up to ``max_retry_s``). ``on_status`` hears every change of
    :attr:`status`.
    """

    def __init__(
        self,
        address: Address,
        *,
        name: str = "galvana-tui",
        on_status: Callable[[ConnectionStatus], None] | None = None,
        retry_s: float = 2.0,
        max_retry_s: float = 10.0,
        call_timeout_s: float = 30.0,
    ) -> None:
        self.address = address
        self.name = name
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self.call_timeout_s = call_timeout_s
        self._on_status = on_status
        self._status = ConnectionStatus("connecting", address.describe())
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._subscriptions: list[Subscription] = []
        self._by_server_id: dict[int, Subscription] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._send_lock = asyncio.Lock()
        self._retry = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._read_task: asyncio.Task[None] | None = None
        self.server_info: dict[str, Any] = {}

    # --- state --------------------------------------------------------------------------

    @property
    def status(self) -> ConnectionStatus:
        """The connection's state now."""
        return self._status

    def _set_status(self, status: ConnectionStatus) -> None:
        self._status = status
        if self._on_status is not None:
            self._on_status(status)

    def retry_now(self) -> None:
        """Skip the wait before the next connection attempt."""
        self._retry.set()

    # --- the connection loop ----------------------------------------------------------

    async def run(self) -> None:
        """Connect, serve, and reconnect after every break, until cancelled."""
        attempt = 0
        delay = self.retry_s
        try:
            while True:
                attempt += 1
                # A retry keeps saying why the last attempt failed: the banner stays put.
                why = self._status.message if self._status.state == "down" else ""
                self._set_status(
                    ConnectionStatus("connecting", self.address.describe(), why, attempt)
                )
                reader = await self._open(attempt)
                if reader is not None:
                    attempt, delay = 0, self.retry_s
                    message = await self._serve(reader)
                    self._set_status(
                        ConnectionStatus("down", self.address.describe(), message, 0, delay)
                    )
                else:
                    delay = min(delay * 2, self.max_retry_s) if attempt > 1 else delay
                    self._set_status(
                        ConnectionStatus(
                            "down", self.address.describe(), self._status.message, attempt, delay
                        )
                    )
                self._retry.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._retry.wait(), delay)
        finally:
            if self._read_task is not None:
                self._read_task.cancel()
            for task in list(self._tasks):
                task.cancel()
            await self._close_writer()

    async def _open(self, attempt: int) -> asyncio.StreamReader | None:
        """Connect and say hello; None (with the reason in the status) on failure."""
        where = self.address.describe()
        try:
            if self.address.socket_path is not None:
                reader, writer = await asyncio.open_unix_connection(
                    str(self.address.socket_path), limit=_READ_CHUNK
                )
            else:
                assert self.address.tcp is not None
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(*self.address.tcp, limit=_READ_CHUNK), 10.0
                )
        except OSError as exc:
            self._status = ConnectionStatus(
                "down", where, _describe_os_error(self.address, exc), attempt
            )
            return None
        except TimeoutError:
            self._status = ConnectionStatus(
                "down", where, f"no answer from {where} within 10 s", attempt
            )
            return None
        self._writer = writer
        read_task = asyncio.create_task(self._read(reader))
        try:
            self.server_info = await self._request(
                {
                    "op": "hello",
                    "protocol": PROTOCOL_VERSION,
                    "client": self.name,
                    "token": self.address.token,
                },
                timeout=10.0,
            )
        except (ApiError, TimeoutError) as exc:
            read_task.cancel()
            await self._close_writer()
            self._status = ConnectionStatus("down", where, self._hello_failure(exc), attempt)
            return None
        self._read_task = read_task
        self._set_status(ConnectionStatus("connected", where))
        for sub in list(self._subscriptions):
            self._spawn(self._send_subscribe(sub))
        return reader

    def _hello_failure(self, exc: Exception) -> str:
        where = self.address.describe()
        if isinstance(exc, ApiError) and exc.code == "unauthorized":
            return (
                f"the daemon at {where} refused this client: {exc}; "
                "give its token with --token-file FILE (or $GALVANA_TOKEN)"
            )
        if isinstance(exc, TimeoutError):
            return f"the daemon at {where} did not answer hello within 10 s"
        return f"the daemon at {where} refused the connection: {exc}"

    async def _serve(self, reader: asyncio.StreamReader) -> str:
        """Wait for the reader to end; returns why the link broke."""
        assert self._read_task is not None
        try:
            await self._read_task
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return f"lost the connection to {self.address.describe()}: {exc}"
        finally:
            await self._close_writer()
        return f"the daemon at {self.address.describe()} closed the connection"

    async def _read(self, reader: asyncio.StreamReader) -> None:
        decoder = FrameDecoder(_MAX_FRAME)
        try:
            while True:
                data = await reader.read(_READ_CHUNK)
                if not data:
                    return
                for item in decoder.feed(data):
                    if isinstance(item, ApiError):
                        logger.warning("a frame from the daemon was refused: %s", item)
                        continue
                    self._dispatch(decode_body(item, DEFAULT_LIMITS))
        finally:
            lost = ConnectionLost(f"lost the connection to {self.address.describe()}")
            for waiter in self._waiting.values():
                if not waiter.done():
                    waiter.set_exception(lost)
            self._waiting.clear()
            self._by_server_id.clear()
            for sub in self._subscriptions:
                sub.server_id = None

    def _dispatch(self, frame: dict[str, Any]) -> None:
        if "op" in frame and "id" not in frame:
            event = _event_of(frame)
            sub = self._by_server_id.get(event.subscription)
            if sub is not None and sub.active:
                try:
                    sub.handler(event)
                except Exception:
                    # One screen's bug must not take the connection down with it.
                    logger.exception("handler of %s failed", sub.topic)
            return
        waiter = self._waiting.pop(frame.get("id"), None)  # type: ignore[arg-type]
        if waiter is not None and not waiter.done():
            waiter.set_result(frame)

    async def _close_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- requests -----------------------------------------------------------------------

    async def _request(
        self, payload: dict[str, Any], *, timeout: float, rid: int | None = None
    ) -> Any:
        writer = self._writer
        if writer is None:
            raise ConnectionLost(
                f"not connected to the daemon at {self.address.describe()}: "
                f"{self._status.message or 'connecting'}"
            )
        rid = next(self._ids) if rid is None else rid
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = waiter
        try:
            async with self._send_lock:
                writer.write(encode_frame({**payload, "id": rid}))
                await writer.drain()
        except (OSError, ConnectionError) as exc:
            self._waiting.pop(rid, None)
            raise ConnectionLost(
                f"lost the connection to {self.address.describe()}: {exc}"
            ) from None
        try:
            frame = await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            self._waiting.pop(rid, None)
            raise TimeoutError(
                f"no reply from {self.address.describe()} within {timeout:g} s"
            ) from None
        return reply_result(frame)

    async def call(
        self, path: str, method: str, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        """Call ``method`` of the actor at ``path`` with plain-data arguments."""
        payload = call_request(path, method, args, kwargs, timeout)
        return await self._request(payload, timeout=(timeout or self.call_timeout_s) + 5.0)

    # --- subscriptions ------------------------------------------------------------------

    def subscribe(self, topic: str, handler: EventHandler) -> Subscription:
        """Deliver the events of ``topic`` to ``handler``, now and after every reconnect."""
        sub = Subscription(topic, handler)
        self._subscriptions.append(sub)
        if self._writer is not None and self._status.connected:
            self._spawn(self._send_subscribe(sub))
        return sub

    async def _send_subscribe(self, sub: Subscription) -> None:
        # The server names a subscription by the id of its subscribe request, and its
        # first events can arrive in the same read as the reply: register the handler
        # under that id before sending, not after the reply is awaited.
        rid = next(self._ids)
        sub.server_id = rid
        self._by_server_id[rid] = sub
        try:
            await self._request({"op": "subscribe", "topic": sub.topic}, timeout=10.0, rid=rid)
        except (ApiError, TimeoutError) as exc:
            self._by_server_id.pop(rid, None)
            sub.server_id = None
            logger.warning("could not subscribe to %s: %s", sub.topic, exc)
            return
        if not sub.active:  # unsubscribed while the request was under way
            self._by_server_id.pop(rid, None)
            self._spawn(self._send_unsubscribe(rid))

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop delivering a subscription's events (and tell the daemon)."""
        subscription.active = False
        with contextlib.suppress(ValueError):
            self._subscriptions.remove(subscription)
        server_id, subscription.server_id = subscription.server_id, None
        if server_id is not None:
            self._by_server_id.pop(server_id, None)
            if self._writer is not None:
                self._spawn(self._send_unsubscribe(server_id))

    async def _send_unsubscribe(self, server_id: int) -> None:
        with contextlib.suppress(ApiError, TimeoutError):
            await self._request({"op": "unsubscribe", "subscription": server_id}, timeout=10.0)
