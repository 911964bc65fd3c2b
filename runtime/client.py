"""Python clients of the actor message API: :class:`Client` (blocking) and
:class:`AsyncClient` (anyio: the same client under trio and under asyncio).

Both are thin loops around :class:`runtime.api.protocol.ClientProtocol`, which frames
the requests, matches the replies and decodes the events once for both; both raise
:class:`~runtime.errors.ApiError` (``.code``, message) for error replies,
:class:`~runtime.errors.ConnectionLost` when the daemon cannot be reached or the link
breaks, and :class:`~runtime.errors.ClientTimeout` when it does not answer in time.

>>> # with Client(socket_path=Path("galvana-data/galvana.sock")) as daemon:
>>> #     runs = daemon.call("runs", "list")
>>> # async with AsyncClient.connect(Address(socket_path=...)) as daemon:
>>> #     runs = await daemon.call("runs", "list")
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import anyio
import anyio.abc

from runtime.address import default_socket_path, parse_tcp, resolve_data_dir, token_from
from runtime.api.protocol import (
    ClientProtocol,
    Event,
    Reply,
    Undecodable,
    call_request,
    hello_request,
    subscribe_request,
    unsubscribe_request,
)
from runtime.errors import ApiError, ClientTimeout, ConnectionLost

__all__ = [
    "Address",
    "AsyncClient",
    "Client",
    "Event",
    "EventHandler",
    "Undecodable",
    "resolve_data_dir",
    "unreachable",
]

logger = logging.getLogger("galvana.client")

_READ_CHUNK: Final = 256 * 1024
EVENT_BUFFER: Final = 10_000
"""Events an :class:`AsyncClient` holds for :meth:`AsyncClient.events` before it drops
the newest (counted in :attr:`AsyncClient.dropped`): a reader that stalls never stalls
the connection's replies."""

EventHandler = Callable[[Event], None]
"""Called by :class:`AsyncClient`'s reader for each event of a subscription; must return
quickly (it holds up the replies behind it)."""


@dataclass(frozen=True, slots=True)
class Address:
    """Where the daemon listens: its Unix socket, or TCP (with the token it asks for)."""

    socket_path: Path | None = None
    tcp: tuple[str, int] | None = None
    token: str | None = None

    def __post_init__(self) -> None:
        if (self.socket_path is None) == (self.tcp is None):
            raise ValueError("give exactly one of socket_path or tcp")

    @classmethod
    def from_options(
        cls,
        *,
        data: str | Path | None = None,
        socket: str | Path | None = None,
        tcp: str | None = None,
        token: str | None = None,
    ) -> Address:
        """The address the command-line options name, as every client command reads them:
        ``tcp`` (``HOST:PORT``, with ``token`` or ``$GALVANA_TOKEN``), else ``socket``, else
        ``DATA/galvana.sock`` (``DATA``: ``data``, ``$GALVANA_HOME`` or ``./galvana-data``).
        A malformed ``tcp`` is a :class:`~runtime.errors.GalvanaError` naming it."""
        if tcp:
            return cls(tcp=parse_tcp(tcp), token=token or token_from(None))
        if socket:
            return cls(socket_path=Path(socket))
        return cls(socket_path=default_socket_path(resolve_data_dir(data)))

    def describe(self) -> str:
        """``unix:PATH`` or ``tcp:HOST:PORT``."""
        if self.socket_path is not None:
            return f"unix:{self.socket_path}"
        assert self.tcp is not None
        return f"tcp:{self.tcp[0]}:{self.tcp[1]}"


def unreachable(address: Address, exc: OSError) -> ConnectionLost:
    """Why the daemon at ``address`` cannot be reached, in words a person can act on."""
    where = address.describe()
    if isinstance(exc, FileNotFoundError):
        why = f"no daemon socket at {address.socket_path}"
    elif isinstance(exc, ConnectionRefusedError):
        why = f"nothing is listening at {where}"
    elif isinstance(exc, PermissionError):
        return ConnectionLost(
            f"cannot reach the daemon at {where}: permission denied (the socket belongs to "
            "another user)"
        )
    else:
        why = f"{where}: {exc.strerror or exc}"
    return ConnectionLost(
        f"cannot reach the daemon: {why}; is `galvana daemon` running (and do "
        "--data/--socket/--tcp point at it)?"
    )


def _address(
    address: Address | None,
    socket_path: Path | str | None,
    tcp: tuple[str, int] | None,
    token: str | None,
) -> Address:
    if address is not None:
        if socket_path is not None or tcp is not None:
            raise ValueError("give an address, or socket_path or tcp, not both")
        return address
    return Address(Path(socket_path) if socket_path is not None else None, tcp, token)


# --- the blocking client ------------------------------------------------------------------


class Client:
    """A blocking client: one socket, requests answered in order, events queued.

    Give ``socket_path`` (the daemon's Unix socket) or ``tcp=(host, port)`` and, for
    TCP, the daemon's ``token`` (or an :class:`Address`). ``timeout`` (s) bounds every
    wait for a reply (a call's own ``timeout`` plus 5 s).
    """

    def __init__(
        self,
        address: Address | None = None,
        *,
        socket_path: Path | str | None = None,
        tcp: tuple[str, int] | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        name: str = "galvana-client",
    ) -> None:
        where = _address(address, socket_path, tcp, token)
        self.address = where.describe()
        self.timeout = timeout
        self._waiting_s = timeout
        self._protocol = ClientProtocol()
        self._events: deque[Event] = deque()
        self._items: deque[Reply | Event] = deque()
        try:
            if where.socket_path is not None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._sock.settimeout(timeout)
                try:
                    self._sock.connect(str(where.socket_path))
                except OSError:
                    self._sock.close()
                    raise
            else:
                assert where.tcp is not None
                self._sock = socket.create_connection(where.tcp, timeout=timeout)
        except OSError as exc:
            raise unreachable(where, exc) from None
        try:
            self.server_info: dict[str, Any] = self.request(hello_request(name, where.token))
        except BaseException:
            self.close()
            raise

    # --- requests -------------------------------------------------------------------

    def request(self, payload: dict[str, Any], *, timeout: float | None = None) -> Any:
        """Send one request and wait for its reply; returns the result."""
        rid = self._protocol.next_id()
        self._send(self._protocol.frame(rid, payload))
        self._waiting_s = timeout or self.timeout
        deadline = time.monotonic() + self._waiting_s
        while True:
            item = self._next_item(deadline)
            if isinstance(item, Event):
                self._events.append(item)
            elif item.id in (rid, None):
                return item.result()

    def call(
        self, path: str, method: str, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        """Call ``method`` of the actor at ``path`` with plain-data arguments."""
        payload = call_request(path, method, args, kwargs, timeout)
        return self.request(payload, timeout=(timeout or self.timeout) + 5.0)

    def subscribe(self, topic: str) -> int:
        """Subscribe to a topic pattern; returns the subscription id."""
        return int(self.request(subscribe_request(topic))["subscription"])

    def unsubscribe(self, subscription: int) -> None:
        """End a subscription."""
        self.request(unsubscribe_request(subscription))

    def events(self, timeout: float | None = None) -> Iterator[Event]:
        """Yield events as they arrive; stops after ``timeout`` s without one (None: never)."""
        while True:
            if self._events:
                yield self._events.popleft()
                continue
            deadline = None if timeout is None else time.monotonic() + timeout
            try:
                item = self._next_item(deadline)
            except ClientTimeout:
                return
            if isinstance(item, Event):
                yield item

    # --- plumbing -------------------------------------------------------------------

    def _send(self, frame: bytes) -> None:
        try:
            self._sock.sendall(frame)
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
            items = self._protocol.receive(data) if data else []
        except (OSError, ApiError):
            return None
        for item in items:
            if isinstance(item, Reply) and item.frame.get("ok") is False:
                try:
                    item.result()
                except ApiError as exc:
                    return exc
        return None

    def _next_item(self, deadline: float | None) -> Reply | Event:
        while not self._items:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise self._timed_out()
            self._sock.settimeout(remaining)
            try:
                data = self._sock.recv(_READ_CHUNK)
            except TimeoutError:
                raise self._timed_out() from None
            except OSError as exc:
                raise ConnectionLost(f"lost the connection to {self.address}: {exc}") from None
            if not data:
                raise ConnectionLost(f"the daemon at {self.address} closed the connection")
            self._items.extend(self._protocol.receive(data))
        return self._items.popleft()

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


# --- the async client ---------------------------------------------------------------------


def _sole(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception a task group wrapped (the group itself when it holds several)."""
    inner: BaseException = group
    while isinstance(inner, BaseExceptionGroup) and len(inner.exceptions) == 1:
        inner = inner.exceptions[0]
    return inner


class _Waiter:
    """A request waiting for its reply (or for the connection to break)."""

    __slots__ = ("done", "error", "reply")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.reply: Reply | None = None
        self.error: ApiError | None = None


class AsyncClient:
    """An async client on anyio: runs under trio (the API's tests and benchmarks) and
    asyncio (the TUI) alike. Concurrent calls share one connection; each subscription's
    events go to its handler, or else to :meth:`events`.

    Use as ``async with AsyncClient.connect(address) as client:``. When the link breaks,
    every waiting request raises :class:`~runtime.errors.ConnectionLost` and
    :meth:`wait_closed` returns why; the client does not reconnect by itself.
    """

    def __init__(
        self, stream: anyio.abc.ByteStream, address: Address, *, timeout: float = 30.0
    ) -> None:
        self.address = address
        self.where = address.describe()
        self.timeout = timeout
        self.server_info: dict[str, Any] = {}
        self.dropped = 0
        """Events dropped because nobody read :meth:`events` fast enough."""
        self._stream = stream
        self._protocol = ClientProtocol()
        self._waiting: dict[int, _Waiter] = {}
        self._handlers: dict[int, EventHandler] = {}
        self._event_send, self._event_receive = anyio.create_memory_object_stream[Event](
            EVENT_BUFFER
        )
        self._send_lock = anyio.Lock()
        self._closed = anyio.Event()
        self._why = ""

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls,
        address: Address | None = None,
        *,
        socket_path: Path | str | None = None,
        tcp: tuple[str, int] | None = None,
        token: str | None = None,
        name: str = "galvana-async-client",
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
    ) -> AsyncIterator[AsyncClient]:
        """Connect, say hello, and yield the client; closes it on exit.

        Raises :class:`~runtime.errors.ConnectionLost` when the daemon cannot be reached,
        :class:`~runtime.errors.ClientTimeout` when it does not answer ``hello`` within
        ``connect_timeout`` (s), :class:`~runtime.errors.ApiError` when it refuses it
        (``unauthorized``: a wrong or missing token).
        """
        where = _address(address, socket_path, tcp, token)
        try:
            with anyio.fail_after(connect_timeout):
                if where.socket_path is not None:
                    stream: anyio.abc.ByteStream = await anyio.connect_unix(where.socket_path)
                else:
                    assert where.tcp is not None
                    stream = await anyio.connect_tcp(*where.tcp)
        except OSError as exc:
            raise unreachable(where, exc) from None
        except TimeoutError:
            raise ClientTimeout(
                f"cannot reach the daemon at {where.describe()}: no connection within "
                f"{connect_timeout:g} s"
            ) from None
        client = cls(stream, where, timeout=timeout)
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(client._read)
                try:
                    client.server_info = await client.request(
                        hello_request(name, where.token), timeout=connect_timeout
                    )
                    yield client
                finally:
                    tasks.cancel_scope.cancel()
                    await client.aclose()
        except BaseExceptionGroup as group:
            # The reader never fails (it closes the client instead): what the group holds
            # is what the hello or the caller's block raised, and it leaves as it was raised.
            inner = _sole(group)
            if inner is group:
                raise
            raise inner from inner.__cause__

    # --- reading ----------------------------------------------------------------------

    async def _read(self) -> None:
        why = f"the daemon at {self.where} closed the connection"
        try:
            while True:
                data = await self._stream.receive(_READ_CHUNK)
                for item in self._protocol.receive(data):
                    if isinstance(item, Event):
                        self._deliver(item)
                    elif item.id is not None and (waiter := self._waiting.get(item.id)):
                        waiter.reply = item
                        waiter.done.set()
        except anyio.EndOfStream:
            pass
        except anyio.ClosedResourceError:
            why = f"the connection to {self.where} was closed"
        except (anyio.BrokenResourceError, OSError) as exc:
            why = f"lost the connection to {self.where}: {exc or type(exc).__name__}"
        except ApiError as exc:  # the daemon broke the framing: nothing after it can be read
            why = f"lost the connection to {self.where}: {exc}"
        finally:
            self._close(why)

    def _deliver(self, event: Event) -> None:
        handler = self._handlers.get(event.subscription)
        if handler is None:
            try:
                self._event_send.send_nowait(event)
            except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                self.dropped += 1
            return
        try:
            handler(event)
        except Exception:
            # One subscriber's bug must not take the connection (and every reply) down.
            logger.exception("the handler of subscription %d failed", event.subscription)

    def _close(self, why: str) -> None:
        """Mark the connection closed: every request still waiting fails with ``why``."""
        if self._closed.is_set():
            return
        self._why = why
        self._closed.set()
        for waiter in self._waiting.values():
            if not waiter.done.is_set():  # an answered one keeps its answer (a refusal)
                waiter.error = ConnectionLost(why)
                waiter.done.set()
        self._event_send.close()

    @property
    def closed(self) -> bool:
        """Whether the connection is closed (no request can be sent)."""
        return self._closed.is_set()

    async def wait_closed(self) -> str:
        """Wait until the connection is closed; returns why, in words."""
        await self._closed.wait()
        return self._why

    # --- requests ---------------------------------------------------------------------

    async def request(
        self,
        payload: dict[str, Any],
        *,
        timeout: float | None = None,
        request_id: int | None = None,
    ) -> Any:
        """Send one request and wait (at most ``timeout`` s, default :attr:`timeout`) for
        its reply; returns the result."""
        if self._closed.is_set():
            raise ConnectionLost(f"not connected to the daemon at {self.where}: {self._why}")
        rid = self._protocol.next_id() if request_id is None else request_id
        waiter = self._waiting[rid] = _Waiter()
        wait_s = self.timeout if timeout is None else timeout
        try:
            await self._send(self._protocol.frame(rid, payload), wait_s)
            with anyio.move_on_after(wait_s):
                await waiter.done.wait()
        finally:
            self._waiting.pop(rid, None)
        if waiter.error is not None:
            raise waiter.error
        if waiter.reply is None:
            raise ClientTimeout(f"no reply from the daemon at {self.where} within {wait_s:g} s")
        return waiter.reply.result()

    async def _send(self, frame: bytes, wait_s: float) -> None:
        # Shielded: a frame cut short by a cancelled caller would break the framing of
        # every request after it. Bounded: a daemon that stops reading cannot hang it.
        with anyio.move_on_after(wait_s, shield=True) as scope:
            async with self._send_lock:
                try:
                    await self._stream.send(frame)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
                    self._close(f"lost the connection to {self.where}: {exc or 'closed'}")
                    raise ConnectionLost(self._why) from None
        if scope.cancelled_caught:
            self._close(f"the daemon at {self.where} stopped reading (no write in {wait_s:g} s)")
            await anyio.aclose_forcefully(self._stream)
            raise ClientTimeout(self._why)

    async def call(
        self, path: str, method: str, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        """Call ``method`` of the actor at ``path`` with plain-data arguments; ``timeout``
        (s) is the daemon's limit for the call (the client waits 5 s more)."""
        payload = call_request(path, method, args, kwargs, timeout)
        return await self.request(payload, timeout=(timeout or self.timeout) + 5.0)

    async def subscribe(
        self, topic: str, handler: EventHandler | None = None, *, timeout: float | None = None
    ) -> int:
        """Subscribe to a topic pattern; returns the subscription id. Its events go to
        ``handler`` (called in the reader, from the first one on, even those that arrive
        with the reply), or else to :meth:`events`."""
        rid = self._protocol.next_id()
        if handler is not None:
            self._handlers[rid] = handler
        try:
            result = await self.request(subscribe_request(topic), timeout=timeout, request_id=rid)
        except BaseException:
            self._handlers.pop(rid, None)
            raise
        return int(result["subscription"])

    async def unsubscribe(self, subscription: int, *, timeout: float | None = None) -> None:
        """End a subscription (its handler hears nothing more from now on)."""
        self._handlers.pop(subscription, None)
        await self.request(unsubscribe_request(subscription), timeout=timeout)

    def events(self) -> anyio.abc.ObjectReceiveStream[Event]:
        """The events of subscriptions without a handler (``async for``; ``receive()``)."""
        return self._event_receive

    async def aclose(self) -> None:
        """Close the connection (waiting requests raise ConnectionLost)."""
        self._close(f"the connection to {self.where} was closed")
        self._event_receive.close()
        with anyio.CancelScope(shield=True):
            await self._stream.aclose()
