"""Python clients of the actor message API: :class:`Client` (blocking), :class:`AsyncClient` (trio).

Both speak the protocol of :mod:`runtime.api.protocol`; both raise
:class:`~runtime.errors.ApiError` (``.code``, message) for error replies,
:class:`~runtime.errors.ConnectionLost` when the daemon cannot be reached and
:class:`~runtime.errors.ClientTimeout` when it does not answer in time.

>>> # with Client(socket_path=Path("galvana-data/galvana.sock")) as daemon:
>>> #     runs = daemon.call("runs", "list")
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from runtime.address import resolve_data_dir
from runtime.api.protocol import (
    PROTOCOL_VERSION,
    FrameDecoder,
    call_request,
    decode_body,
    encode_frame,
    reply_result,
)
from runtime.codec import DEFAULT_LIMITS, message_from_plain
from runtime.errors import ApiError, ClientTimeout, ConnectionLost, MessageError

__all__ = ["AsyncClient", "Client", "Event", "resolve_data_dir"]

_MAX_FRAME = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Event:
    """One delivery on a subscription: a message, or a note that ``lost`` were dropped."""

    subscription: int
    topic: str
    message: Any
    lost: int = 0

    @property
    def lagged(self) -> bool:
        """True when this is a lag report (the client read too slowly)."""
        return self.lost > 0


def _event(frame: dict[str, Any]) -> Event:
    sid = int(frame.get("subscription", -1))
    if frame.get("op") == "lagged":
        return Event(sid, "bus/lagged", None, int(frame.get("lost", 0)))
    raw = frame.get("message")
    try:
        msg = message_from_plain(raw)
    except MessageError:
        msg = raw  # a tag this client does not know: hand over the plain data
    return Event(sid, str(frame.get("topic", "")), msg)


def _describe(socket_path: Path | None, tcp: tuple[str, int] | None) -> str:
    return (
        f"unix:{socket_path}"
        if socket_path is not None
        else f"tcp:{tcp[0]}:{tcp[1]}"
        if tcp
        else "?"
    )


class Client:
    """A blocking client: one socket, requests answered in order, events queued.

    Give ``socket_path`` (the daemon's Unix socket) or ``tcp=(host, port)`` and, for
    TCP, the daemon's ``token``.
    """

    def __init__(
        self,
        *,
        socket_path: Path | str | None = None,
        tcp: tuple[str, int] | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        name: str = "galvana-client",
    ) -> None:
        if (socket_path is None) == (tcp is None):
            raise ValueError("give exactly one of socket_path or tcp")
        self.address = _describe(Path(socket_path) if socket_path else None, tcp)
        self.timeout = timeout
        self._waiting_s = timeout
        self._ids = itertools.count(1)
        self._events: deque[Event] = deque()
        self._decoder = FrameDecoder(_MAX_FRAME)
        self._frames: deque[dict[str, Any]] = deque()
        try:
            if socket_path is not None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._sock.settimeout(timeout)
                try:
                    self._sock.connect(str(socket_path))
                except OSError:
                    self._sock.close()
                    raise
            else:
                assert tcp is not None
                self._sock = socket.create_connection(tcp, timeout=timeout)
        except OSError as exc:
            raise ConnectionLost(
                f"cannot reach the daemon at {self.address}: {exc.strerror or exc}; "
                "is `galvana daemon` running (and is --data/--socket right)?"
            ) from None
        try:
            self.server_info: dict[str, Any] = self.request(
                {"op": "hello", "protocol": PROTOCOL_VERSION, "client": name, "token": token}
            )
        except BaseException:
            self.close()
            raise

    # --- requests -------------------------------------------------------------------

    def request(self, payload: dict[str, Any], *, timeout: float | None = None) -> Any:
        """Send one request and wait for its reply; returns the result."""
        rid = next(self._ids)
        self._send({**payload, "id": rid})
        self._waiting_s = timeout or self.timeout
        deadline = time.monotonic() + self._waiting_s
        while True:
            frame = self._next_frame(deadline)
            if "op" in frame and "id" not in frame:
                self._events.append(_event(frame))
            elif frame.get("id") in (rid, None):
                return reply_result(frame)

    def call(
        self, path: str, method: str, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        """Call ``method`` of the actor at ``path`` with plain-data arguments."""
        payload = call_request(path, method, args, kwargs, timeout)
        return self.request(payload, timeout=(timeout or self.timeout) + 5.0)

    def subscribe(self, topic: str) -> int:
        """Subscribe to a topic pattern; returns the subscription id."""
        result = self.request({"op": "subscribe", "topic": topic})
        return int(result["subscription"])

    def unsubscribe(self, subscription: int) -> None:
        """End a subscription."""
        self.request({"op": "unsubscribe", "subscription": subscription})

    def events(self, timeout: float | None = None) -> Iterator[Event]:
        """Yield events as they arrive; stops after ``timeout`` s without one (None: never)."""
        while True:
            if self._events:
                yield self._events.popleft()
                continue
            deadline = None if timeout is None else time.monotonic() + timeout
            try:
                frame = self._next_frame(deadline)
            except TimeoutError:
                return
            if "op" in frame and "id" not in frame:
                yield _event(frame)

    # --- plumbing -------------------------------------------------------------------

    def _send(self, payload: dict[str, Any]) -> None:
        try:
            self._sock.sendall(encode_frame(payload))
        except OSError as exc:
            # The daemon may have said why before it closed (a connection limit, say).
            said = self._parting_words()
            if said is not None:
                raise said from None
            raise ConnectionLost(f"lost the connection to {self.address}: {exc}") from None

    def _parting_words(self) -> ApiError | None:
        """An error reply the daemon sent before closing, if one is still unread."""
        try:
            self._sock.settimeout(0.5)
            data = self._sock.recv(65536)
            frames = [
                decode_body(item, DEFAULT_LIMITS)
                for item in (self._decoder.feed(data) if data else [])
                if isinstance(item, bytes)
            ]
        except (OSError, ApiError):
            return None
        for frame in frames:
            if frame.get("ok") is False:
                error = frame.get("error") or {}
                return ApiError(str(error.get("code")), str(error.get("message")))
        return None

    def _next_frame(self, deadline: float | None) -> dict[str, Any]:
        while not self._frames:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise self._timed_out()
            self._sock.settimeout(remaining)
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                raise self._timed_out() from None
            except OSError as exc:
                raise ConnectionLost(f"lost the connection to {self.address}: {exc}") from None
            if not data:
                raise ConnectionLost(f"the daemon at {self.address} closed the connection")
            for item in self._decoder.feed(data):
                if isinstance(item, ApiError):
                    raise item
                self._frames.append(decode_body(item, DEFAULT_LIMITS))
        return self._frames.popleft()

    def _timed_out(self) -> ClientTimeout:
        return ClientTimeout(
            f"no reply from the daemon at {self.address} within {self._waiting_s:g} s; it may be "
            "busy or stuck (give more time with --timeout S)"
        )

    def close(self) -> None:
        """Close the connection."""
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient:
    """A trio client: concurrent calls on one connection, events on a channel.

    Use as ``async with await AsyncClient.connect(socket_path=...) as client:``.
    """

    def __init__(self, stream: trio.abc.Stream, address: str, nursery: trio.Nursery) -> None:
        self.address = address
        self._stream = stream
        self._nursery = nursery
        self._ids = itertools.count(1)
        self._waiting: dict[int, trio.MemorySendChannel[dict[str, Any]]] = {}
        self._event_send, self._event_receive = trio.open_memory_channel[Event](10_000)
        self._send_lock = trio.Lock()
        self._closed = False
        self.server_info: dict[str, Any] = {}

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls,
        *,
        socket_path: Path | str | None = None,
        tcp: tuple[str, int] | None = None,
        token: str | None = None,
        name: str = "galvana-async-client",
    ) -> AsyncIterator[AsyncClient]:
        """Connect, say hello, and yield the client; closes it on exit."""
        address = _describe(Path(socket_path) if socket_path else None, tcp)
        try:
            if socket_path is not None:
                stream: trio.abc.Stream = await trio.open_unix_socket(str(socket_path))
            else:
                assert tcp is not None
                stream = await trio.open_tcp_stream(*tcp)
        except OSError as exc:
            raise ConnectionLost(f"cannot reach the daemon at {address}: {exc}") from None
        async with trio.open_nursery() as nursery:
            client = cls(stream, address, nursery)
            nursery.start_soon(client._read)
            try:
                client.server_info = await client.request(
                    {"op": "hello", "protocol": PROTOCOL_VERSION, "client": name, "token": token}
                )
                yield client
            finally:
                await client.aclose()
                nursery.cancel_scope.cancel()

    async def _read(self) -> None:
        decoder = FrameDecoder(_MAX_FRAME)
        try:
            while True:
                data = await self._stream.receive_some(65536)
                if not data:
                    break
                for item in decoder.feed(bytes(data)):
                    if isinstance(item, ApiError):
                        raise item
                    frame = decode_body(item, DEFAULT_LIMITS)
                    if "op" in frame and "id" not in frame:
                        with contextlib.suppress(trio.WouldBlock):
                            self._event_send.send_nowait(_event(frame))
                    else:
                        waiter = self._waiting.pop(frame.get("id"), None)  # type: ignore[arg-type]
                        if waiter is not None:
                            waiter.send_nowait(frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self._closed = True
            for waiter in self._waiting.values():
                await waiter.aclose()
            self._waiting.clear()
            await self._event_send.aclose()

    async def request(self, payload: dict[str, Any]) -> Any:
        """Send one request and wait for its reply; returns the result."""
        if self._closed:
            raise ConnectionLost(f"the connection to {self.address} is closed")
        rid = next(self._ids)
        send, receive = trio.open_memory_channel[dict[str, Any]](1)
        self._waiting[rid] = send
        async with self._send_lock:
            try:
                await self._stream.send_all(encode_frame({**payload, "id": rid}))
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise ConnectionLost(f"lost the connection to {self.address}: {exc}") from None
        try:
            frame = await receive.receive()
        except trio.EndOfChannel:
            raise ConnectionLost(f"the daemon at {self.address} closed the connection") from None
        return reply_result(frame)

    async def call(self, path: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``method`` of the actor at ``path``."""
        return await self.request(call_request(path, method, args, kwargs))

    async def subscribe(self, topic: str) -> int:
        """Subscribe to a topic pattern; returns the subscription id."""
        result = await self.request({"op": "subscribe", "topic": topic})
        return int(result["subscription"])

    async def unsubscribe(self, subscription: int) -> None:
        """End a subscription."""
        await self.request({"op": "unsubscribe", "subscription": subscription})

    def events(self) -> trio.MemoryReceiveChannel[Event]:
        """The channel events arrive on (iterate it with ``async for``)."""
        return self._event_receive

    async def aclose(self) -> None:
        """Close the connection."""
        self._closed = True
        await self._stream.aclose()
