"""The actor message API server (trio): the protocol of ``runtime.api.protocol``.

Calls are bridged to actors through worker threads (``trio.to_thread``), never by
awaiting a Pykka future in the event loop. Subscriptions are lossy bus subscriptions
with a bounded queue per client: a client that reads too slowly is sent ``lagged``
frames and never slows the runtime down.

No client can starve another, and none can starve the emergency stop:

- calls share a pool of ``max_threads`` worker threads, of which one connection holds
  at most ``max_threads_per_connection`` (its other calls wait their turn);
- *urgent* calls (``instruments.estop`` and ``runs.abort`` in the daemon) skip the pool
  and the actors' mailboxes: their handler runs on threads of their own
  (``urgent_threads``); one whose urgent part is done may hand the rest to the pool as an
  ordinary call (:class:`FollowUp`: ``runs.abort`` cuts the cell, then the run records it);
- past ``max_connections`` a further ``reserved_connections`` are still accepted and
  served for ``hello`` and urgent calls only (and closed when idle), so a client
  holding every connection slot does not lock the emergency stop out;
- a connection that has not said ``hello`` within ``handshake_timeout_s`` is closed;
- wrong tokens are rate limited per peer address with an exponential backoff: while
  it runs, that peer's ``hello`` is refused at once, without looking at the token and
  without blocking anyone else.

When the daemon shuts down (:meth:`ApiServer.shut_down`) calls in flight and every
later call are answered ``unavailable``; urgent calls are still served (a
:class:`FollowUp`'s ordinary rest is answered ``unavailable``, with what the urgent part
did).

Scopes (``runtime.actor``): the Unix socket's owner (checked with ``SO_PEERCRED``) and
TCP clients that present the admin token get ``admin`` (with ``operate`` and ``read``);
TCP clients with the token get ``operate`` and ``read``. Methods exposed with a scope
(``kill`` and an interlock's reset: ``admin``; runs started, steered or stopped, the
emergency stop: ``operate``) refuse everyone else. The HTTP gateway grants the same
scopes to API keys.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import logging
import math
import os
import random
import socket as stdlib_socket
import struct
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import trio

from runtime.actor import ADMIN_SCOPE, OPERATE_SCOPE, scopes_of
from runtime.address import default_socket_path
from runtime.api.dispatch import Resolver, ask_actor, run_urgent
from runtime.api.protocol import (
    PROTOCOL_VERSION,
    Call,
    ErrorCode,
    FrameDecoder,
    Hello,
    Subscribe,
    Unsubscribe,
    decode_body,
    encode_frame,
    error_reply,
    event_frame,
    ok_reply,
    parse_request,
    request_id_of,
)
from runtime.api.urgent import bind_private_unix_socket
from runtime.codec import DecodeLimits, encoded
from runtime.errors import ApiError, BusError, MessageError
from runtime.event_bus import LAGGED_TOPIC, EventBus, Subscription
from runtime.messages import Lagged
from runtime.supervisor import Backoff

__all__ = [
    "ApiConfig",
    "ApiServer",
    "FollowUp",
    "ServerThread",
    "UrgentRoutes",
    "default_socket_path",
]

logger = logging.getLogger("galvana.api")

UrgentRoutes = Mapping[tuple[str, str], Callable[..., object]]
"""``(path, method)`` -> the function that serves it on the reserved threads, without
an actor's mailbox in between (annotated like an exposed method; its arguments are
checked the same way). It returns the call's result, or a :class:`FollowUp`."""


@dataclass(frozen=True, slots=True)
class FollowUp:
    """What an urgent route returns when its urgent part is done and the rest is ordinary
    work: ``path.method(*args)`` is then asked like any call (on the shared worker
    threads, through the actor's mailbox), so the reserved threads are free again at
    once. ``combine`` makes the reply from that call's result, or from the
    :class:`~runtime.errors.ApiError` it failed with (raise one to reply with an error)."""

    path: str
    method: str
    args: tuple[object, ...]
    combine: Callable[[object], object]


URGENT_CALLS_PER_CONNECTION = 4
"""Urgent calls one connection may have in flight (an emergency stop takes milliseconds)."""

RESERVED_HELLO_S = 2.0
"""How long a connection past the limit may take to say ``hello`` (``galvana estop``
sends it with the stop in one write): reserved slots are for stops, not for waiting."""

WRONG_TOKENS_FREE = 2
"""Wrong tokens in a row a peer may present before its hellos are refused for a while
(a mistyped token is retried at once)."""

WRONG_TOKEN_BACKOFF = Backoff(initial_s=0.5, max_s=30.0, factor=2.0, jitter=0.0)
"""How long a peer's ``hello`` is refused after each wrong token past the free ones."""


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """Where the server listens and the limits it enforces.

    ``tcp`` is ``(host, port)`` and needs ``token``, which every TCP client must present
    in ``hello`` (loopback too: the port is open to every local user, the Unix socket is
    not). A client presenting ``admin_token`` instead gets the admin scope. The Unix
    socket (mode 0600) is protected by file permissions and needs no token; its owner
    has the admin scope. The module docstring says what the other limits guard.
    """

    socket_path: Path | None = None
    tcp: tuple[str, int] | None = None
    token: str | None = None
    admin_token: str | None = None
    max_frame_bytes: int = 16 * 1024 * 1024
    max_connections: int = 64
    reserved_connections: int = 16
    handshake_timeout_s: float = 10.0
    max_subscriptions: int = 32
    max_calls_in_flight: int = 16
    max_threads: int = 32
    max_threads_per_connection: int = 8
    urgent_threads: int = 4
    call_timeout_s: float = 30.0
    subscription_queue: int = 10_000
    send_queue_frames: int = 256

    def __post_init__(self) -> None:
        if self.socket_path is None and self.tcp is None:
            raise ApiError(
                ErrorCode.BAD_REQUEST, "the API needs a Unix socket path or a TCP address"
            )
        if self.tcp is not None:
            host, port = self.tcp
            if not (0 <= port <= 65535):
                raise ApiError(ErrorCode.BAD_REQUEST, f"TCP port {port} is not in 0..65535")
            where = "from other machines" if not _is_loopback(host) else "by every local user"
            if not self.token:
                raise ApiError(
                    ErrorCode.UNAUTHORIZED,
                    f"TCP on {host} is reachable {where}: set a token "
                    "(--token-file FILE or $GALVANA_TOKEN), or use the Unix socket only",
                )
            if self.admin_token is not None and hmac.compare_digest(
                self.admin_token.encode(), self.token.encode()
            ):
                raise ApiError(ErrorCode.BAD_REQUEST, "the admin token must differ from the token")
        for name in (
            "max_connections",
            "max_calls_in_flight",
            "max_threads",
            "max_threads_per_connection",
            "urgent_threads",
        ):
            if getattr(self, name) < 1:
                raise ApiError(ErrorCode.BAD_REQUEST, f"{name} must be >= 1")
        if self.reserved_connections < 0 or not self.handshake_timeout_s > 0:
            raise ApiError(
                ErrorCode.BAD_REQUEST,
                "reserved_connections must be >= 0 and handshake_timeout_s > 0",
            )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(eq=False)
class _Connection:
    transport: str
    peer: str
    send: trio.MemorySendChannel[bytes]
    nursery: trio.Nursery
    threads: trio.CapacityLimiter
    restricted: bool = False
    """Accepted past ``max_connections``: hello and urgent calls only, closed when idle."""
    local_admin: bool = False
    """A Unix-socket peer running as the daemon's user (or root)."""
    scopes: tuple[str, ...] = ()
    deadline: float = math.inf
    """When the reader gives up waiting (no hello yet, or a reserved connection idle)."""
    greeted: bool = False
    calls: int = 0
    urgent: int = 0
    subs: dict[int, tuple[Subscription, trio.CancelScope]] = field(default_factory=dict)
    # The scopes of the calls in flight, cancelled (and answered) when the daemon stops.
    call_scopes: set[trio.CancelScope] = field(default_factory=set)


@dataclass(slots=True)
class _Strikes:
    """Wrong tokens in a row from one peer, and until when its hellos are refused."""

    count: int
    until: float


class ApiServer:
    """Serves the actor message API for one actor tree and its event bus."""

    def __init__(
        self,
        config: ApiConfig,
        bus: EventBus,
        resolve: Resolver,
        *,
        server_info: dict[str, object] | None = None,
        urgent: UrgentRoutes | None = None,
    ) -> None:
        self.config = config
        self.bus = bus
        self.resolve = resolve
        self.server_info = {
            "server": "galvana",
            "protocol": PROTOCOL_VERSION,
            **(server_info or {}),
        }
        self.urgent = {
            (path.strip("/"), method): fn for (path, method), fn in (urgent or {}).items()
        }
        self._limits = DecodeLimits(
            max_bytes=config.max_frame_bytes, max_array_bytes=config.max_frame_bytes
        )
        self._connections = 0
        self._open: set[_Connection] = set()
        self._closing = False
        self._restricted = 0
        self._calls_in_flight = 0
        self._urgent_in_flight = 0
        self._calls_limiter = trio.CapacityLimiter(config.max_threads)
        self._urgent_limiter = trio.CapacityLimiter(config.urgent_threads)
        self._strikes: dict[str, _Strikes] = {}
        self._rng = random.Random()
        self.addresses: list[str] = []

    # --- listening -------------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen and serve until cancelled; ``task_status.started`` gets the addresses."""
        listeners: list[tuple[str, list[trio.SocketListener]]] = []
        if self.config.socket_path is not None:
            listeners.append(("unix", [await self._unix_listener(self.config.socket_path)]))
            self.addresses.append(f"unix:{self.config.socket_path}")
        if self.config.tcp is not None:
            host, port = self.config.tcp
            tcp = await trio.open_tcp_listeners(port, host=host)
            listeners.append(("tcp", tcp))
            for listener in tcp:
                addr = listener.socket.getsockname()
                self.addresses.append(f"tcp:{addr[0]}:{addr[1]}")
        try:
            async with trio.open_nursery() as nursery:
                for transport, group in listeners:
                    nursery.start_soon(
                        partial(trio.serve_listeners, partial(self._handle, transport), group)
                    )
                task_status.started(list(self.addresses))
        finally:
            if self.config.socket_path is not None:
                with contextlib.suppress(FileNotFoundError):
                    self.config.socket_path.unlink()

    async def _unix_listener(self, path: Path) -> trio.SocketListener:
        # Bound in a private directory and renamed into place (mode 0600 from the start).
        sock = bind_private_unix_socket(path)
        return trio.SocketListener(trio.socket.from_stdlib_socket(sock))

    # --- one connection ------------------------------------------------------------------

    async def _handle(self, transport: str, stream: trio.SocketStream) -> None:
        async with stream:
            config = self.config
            if self._connections >= config.max_connections + config.reserved_connections:
                await stream.send_all(
                    encode_frame(
                        error_reply(
                            None,
                            ErrorCode.LIMIT,
                            f"the daemon serves at most {config.max_connections} "
                            f"connections (and {config.reserved_connections} more for the "
                            "emergency stop only); try again later",
                        )
                    )
                )
                return
            restricted = self._connections >= config.max_connections
            self._connections += 1
            self._restricted += restricted
            try:
                await self._serve_connection(transport, stream, restricted=restricted)
            finally:
                self._connections -= 1
                self._restricted -= restricted

    async def _serve_connection(
        self, transport: str, stream: trio.SocketStream, *, restricted: bool
    ) -> None:
        send, receive = trio.open_memory_channel[bytes](self.config.send_queue_frames)
        peer, local_admin = _peer(transport, stream)
        async with trio.open_nursery() as nursery:
            conn = _Connection(
                transport,
                peer,
                send,
                nursery,
                trio.CapacityLimiter(self.config.max_threads_per_connection),
                restricted=restricted,
                local_admin=local_admin,
            )
            conn.deadline = trio.current_time() + self._hello_window(conn)
            nursery.start_soon(self._writer, stream, receive)
            self._open.add(conn)
            try:
                await self._reader(conn, stream)
            finally:
                self._open.discard(conn)
                for sub, scope in conn.subs.values():
                    sub.close()
                    scope.cancel()
                # Let replies already queued go out, then stop the writer; calls still
                # in flight are abandoned (their threads finish on their own).
                await send.aclose()
                nursery.cancel_scope.deadline = trio.current_time() + 5.0

    def _hello_window(self, conn: _Connection) -> float:
        """Seconds a connection has to say hello (less for one past the limit)."""
        window = self.config.handshake_timeout_s
        return min(window, RESERVED_HELLO_S) if conn.restricted else window

    async def _writer(
        self, stream: trio.SocketStream, receive: trio.MemoryReceiveChannel[bytes]
    ) -> None:
        async with receive:
            try:
                async for frame in receive:
                    await stream.send_all(frame)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the client went away; the reader sees EOF and cleans up

    async def _reader(self, conn: _Connection, stream: trio.SocketStream) -> None:
        decoder = FrameDecoder(self.config.max_frame_bytes)
        while True:
            data = None
            try:
                with trio.move_on_at(conn.deadline):
                    data = await stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if data is None:
                why = (
                    f"no 'hello' within {self._hello_window(conn):g} s"
                    if not conn.greeted
                    else f"idle for {self.config.handshake_timeout_s:g} s on a connection "
                    "past the connection limit"
                )
                await self._reply(conn, error_reply(None, ErrorCode.TIMEOUT, f"{why}; closing"))
                return
            if not data:
                if decoder.mid_frame:
                    logger.info("client closed the connection inside a frame")
                return
            try:
                items = decoder.feed(data)
            except ApiError as exc:
                await self._reply(conn, error_reply(None, exc.code, str(exc)))
                return  # framing is broken: nothing after this can be trusted
            for item in items:
                if conn.restricted and conn.greeted:
                    conn.deadline = trio.current_time() + self.config.handshake_timeout_s
                if isinstance(item, ApiError):
                    await self._reply(conn, error_reply(None, item.code, str(item)))
                elif not await self._request(conn, item):
                    return

    async def _reply(self, conn: _Connection, payload: dict[str, Any]) -> None:
        try:
            frame = encode_frame(payload)
        except MessageError as exc:
            frame = _unencodable(payload.get("id"), exc)
        await self._send(conn, frame)

    @staticmethod
    async def _send(conn: _Connection, frame: bytes) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await conn.send.send(frame)

    async def _request(self, conn: _Connection, body: bytes) -> bool:
        """Handle one frame; False when the connection must close."""
        rid: int | None = None
        try:
            frame = decode_body(body, self._limits)
            rid = request_id_of(frame)
            request = parse_request(frame)
            if isinstance(request, Hello):
                return await self._hello(conn, request)
            if not conn.greeted:
                raise ApiError(ErrorCode.UNAUTHORIZED, "send 'hello' first")
            if isinstance(request, Call):
                self._start_call(conn, request)
            elif isinstance(request, Subscribe):
                self._refuse_if_restricted(conn)
                await self._subscribe(conn, request)
            elif isinstance(request, Unsubscribe):
                await self._unsubscribe(conn, request)
        except ApiError as exc:
            await self._reply(conn, error_reply(rid, exc.code, str(exc)))
        return True

    async def _hello(self, conn: _Connection, hello: Hello) -> bool:
        if hello.protocol != PROTOCOL_VERSION:
            await self._reply(
                conn,
                error_reply(
                    hello.id,
                    ErrorCode.BAD_REQUEST,
                    f"protocol {hello.protocol} is not supported; "
                    f"this daemon speaks {PROTOCOL_VERSION}",
                ),
            )
            return True
        if conn.transport == "tcp":
            scopes = self._tcp_scopes(conn, hello)
            if scopes is None:
                return False
        else:
            scopes = scopes_of(ADMIN_SCOPE if conn.local_admin else OPERATE_SCOPE)
        conn.greeted, conn.scopes = True, scopes
        conn.deadline = (
            trio.current_time() + self.config.handshake_timeout_s if conn.restricted else math.inf
        )
        info: dict[str, object] = {**self.server_info, "scopes": list(scopes)}
        if conn.restricted:
            info["restricted"] = self._restricted_note()
        await self._reply(conn, ok_reply(hello.id, info))
        return True

    def _tcp_scopes(self, conn: _Connection, hello: Hello) -> tuple[str, ...] | None:
        """The scopes a TCP client's token grants; None (and a reply queued) if refused."""
        now = trio.current_time()
        strikes = self._strikes.get(conn.peer)
        if strikes is not None and now < strikes.until:
            self._reply_nowait(
                conn,
                error_reply(
                    hello.id,
                    ErrorCode.LIMIT,
                    f"too many wrong tokens from {conn.peer}; the next try is accepted in "
                    f"{strikes.until - now:.1f} s",
                ),
            )
            return None
        presented = (hello.token or "").encode()
        admin = self.config.admin_token
        if admin is not None and hmac.compare_digest(presented, admin.encode()):
            scopes: tuple[str, ...] | None = scopes_of(ADMIN_SCOPE)
        elif self.config.token is not None and hmac.compare_digest(
            presented, self.config.token.encode()
        ):
            scopes = scopes_of(OPERATE_SCOPE)
        else:
            scopes = None
        if scopes is not None:
            self._strikes.pop(conn.peer, None)
            return scopes
        count = strikes.count + 1 if strikes is not None else 1
        excess = count - WRONG_TOKENS_FREE
        delay = WRONG_TOKEN_BACKOFF.delay(excess, self._rng) if excess > 0 else 0.0
        self._forget_old_strikes(now)
        self._strikes[conn.peer] = _Strikes(count, now + delay)
        logger.warning("wrong or missing token from %s (%d in a row)", conn.peer, count)
        self._reply_nowait(
            conn,
            error_reply(
                hello.id,
                ErrorCode.UNAUTHORIZED,
                f"wrong or missing token ({count} in a row from {conn.peer}"
                + (f"; the next try is accepted in {delay:g} s)" if delay else ")"),
            ),
        )
        return None

    def _forget_old_strikes(self, now: float) -> None:
        # Bounded memory: peers whose backoff ended long ago start afresh.
        if len(self._strikes) >= 1024:
            for peer in [p for p, s in self._strikes.items() if s.until < now - 600]:
                del self._strikes[peer]

    def _reply_nowait(self, conn: _Connection, payload: dict[str, Any]) -> None:
        """Queue a reply without waiting (the connection closes right after)."""
        with contextlib.suppress(
            trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError
        ):
            conn.send.send_nowait(encode_frame(payload))

    def _restricted_note(self) -> str:
        routes = ", ".join(f"{p}.{m}" for p, m in sorted(self.urgent)) or "nothing"
        return (
            f"this connection is past the daemon's limit of {self.config.max_connections} "
            f"connections: it may only call {routes}; try again later for anything else"
        )

    def _refuse_if_restricted(self, conn: _Connection) -> None:
        if conn.restricted:
            raise ApiError(ErrorCode.LIMIT, self._restricted_note())

    # --- calls -------------------------------------------------------------------------

    async def shut_down(self, grace_s: float = 2.0) -> None:
        """Answer every call in flight with ``unavailable`` (the daemon is shutting down)
        and refuse new ones; returns once those answers are sent, or after ``grace_s``.

        Urgent calls (the emergency stop) are neither cancelled nor refused: a stop asked
        for while the daemon stops is still carried out and answered.
        """
        self._closing = True
        for conn in self._open:
            for scope in conn.call_scopes:
                scope.cancel()
        with trio.move_on_after(grace_s):
            while any(
                c.calls or c.urgent or c.send.statistics().current_buffer_used for c in self._open
            ):
                await trio.sleep(0.01)

    def _start_call(self, conn: _Connection, call: Call) -> None:
        route = self.urgent.get((call.path.strip("/"), call.method))
        if route is not None:
            if conn.urgent >= URGENT_CALLS_PER_CONNECTION:
                raise ApiError(
                    ErrorCode.LIMIT,
                    f"at most {URGENT_CALLS_PER_CONNECTION} urgent calls may be in flight "
                    "per connection",
                )
            conn.urgent += 1
            # Served while the daemon shuts down too: a stop is never refused.
            conn.nursery.start_soon(self._urgent_call, conn, call, route)
            return
        if self._closing:
            raise ApiError(ErrorCode.UNAVAILABLE, _SHUTTING_DOWN)
        self._refuse_if_restricted(conn)
        if conn.calls >= self.config.max_calls_in_flight:
            raise ApiError(
                ErrorCode.LIMIT,
                f"at most {self.config.max_calls_in_flight} calls may be in flight per connection",
            )
        conn.calls += 1
        conn.nursery.start_soon(self._call, conn, call)

    async def _call(self, conn: _Connection, call: Call) -> None:
        try:
            outcome = await self._pooled(conn, call)
        finally:
            conn.calls -= 1
        if isinstance(outcome, ApiError):
            reply = error_reply(call.id, outcome.code, str(outcome))
        else:
            reply = ok_reply(call.id, outcome)
        await self._reply(conn, reply)

    async def _pooled(self, conn: _Connection, call: Call) -> object:
        """Ask ``call``'s actor on the shared worker threads: its result, or the
        :class:`ApiError` it failed with (``unavailable`` once the daemon shuts down)."""
        # Cancelled only by shut_down: the caller is told why instead of losing the line.
        outcome: object = ApiError(ErrorCode.UNAVAILABLE, _SHUTTING_DOWN)
        self._calls_in_flight += 1
        with trio.CancelScope() as scope:
            conn.call_scopes.add(scope)
            try:
                # One connection holds at most max_threads_per_connection of the shared pool.
                async with conn.threads:
                    outcome = await trio.to_thread.run_sync(
                        partial(self._ask, call, self._timeout_of(call), conn.scopes),
                        limiter=self._calls_limiter,
                        abandon_on_cancel=True,
                    )
            except ApiError as exc:
                outcome = exc
            finally:
                conn.call_scopes.discard(scope)
                self._calls_in_flight -= 1
        return outcome

    def _timeout_of(self, call: Call) -> float:
        """How long a call may wait for its actor (s): what it asked for, within bounds."""
        return min(call.timeout or self.config.call_timeout_s, self.config.call_timeout_s * 10)

    def _ask(self, call: Call, timeout: float, scopes: tuple[str, ...]) -> object:
        """In a worker thread: resolve the actor and ask it."""
        return ask_actor(
            self.resolve,
            call.path,
            call.method,
            call.args,
            call.kwargs,
            scopes=scopes,
            timeout=timeout,
        )

    async def _urgent_call(
        self, conn: _Connection, call: Call, route: Callable[..., object]
    ) -> None:
        self._urgent_in_flight += 1
        follow_up: FollowUp | None = None
        try:
            # Not abandoned on cancel: a stop that was asked for is carried out.
            result = await trio.to_thread.run_sync(
                partial(self._run_urgent, call, route, conn.scopes),
                limiter=self._urgent_limiter,
            )
            if isinstance(result, FollowUp):
                follow_up = result
            reply = ok_reply(call.id, result)
        except ApiError as exc:
            reply = error_reply(call.id, exc.code, str(exc))
        finally:
            conn.urgent -= 1
            self._urgent_in_flight -= 1
        if follow_up is not None:
            reply = await self._follow_up(conn, call, follow_up)
        await self._reply(conn, reply)

    async def _follow_up(
        self, conn: _Connection, call: Call, follow_up: FollowUp
    ) -> dict[str, Any]:
        """The ordinary rest of an urgent call, under the ordinary limits; its reply.

        Like any ordinary call it is answered ``unavailable`` once the daemon shuts down
        (``combine`` still says what the urgent part did).
        """
        outcome: object = ApiError(ErrorCode.UNAVAILABLE, _SHUTTING_DOWN)
        if not self._closing:
            rest = Call(call.id, follow_up.path, follow_up.method, follow_up.args, {}, call.timeout)
            conn.calls += 1
            try:
                outcome = await self._pooled(conn, rest)
            finally:
                conn.calls -= 1
        name = f"{call.path.strip('/')}.{call.method}"
        try:
            return ok_reply(call.id, follow_up.combine(outcome))
        except ApiError as exc:
            return error_reply(call.id, exc.code, str(exc))
        except Exception as exc:
            logger.exception("%s failed", name)
            return error_reply(
                call.id,
                ErrorCode.INTERNAL,
                f"{name} failed inside the daemon ({type(exc).__name__}); "
                "the daemon log has the details",
            )

    @staticmethod
    def _run_urgent(call: Call, route: Callable[..., object], scopes: tuple[str, ...]) -> object:
        """On a reserved thread: check the scope and arguments, run the route's function."""
        name = f"{call.path.strip('/')}.{call.method}"
        return run_urgent(route, name, call.args, call.kwargs, scopes)

    # --- subscriptions -------------------------------------------------------------------

    async def _subscribe(self, conn: _Connection, request: Subscribe) -> None:
        if len(conn.subs) >= self.config.max_subscriptions:
            raise ApiError(
                ErrorCode.LIMIT,
                f"at most {self.config.max_subscriptions} subscriptions per connection",
            )
        token = trio.lowlevel.current_trio_token()
        wake_send, wake_receive = trio.open_memory_channel[None](1)

        def poke() -> None:
            with contextlib.suppress(trio.WouldBlock, trio.ClosedResourceError):
                wake_send.send_nowait(None)

        def on_ready() -> None:  # the publisher's thread: must never raise or block
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(poke)

        try:
            sub = self.bus.subscribe(
                request.topic,
                mode="lossy",
                maxsize=self.config.subscription_queue,
                on_ready=on_ready,
            )
        except BusError as exc:
            raise ApiError(ErrorCode.BAD_REQUEST, str(exc)) from None
        scope = trio.CancelScope()
        conn.subs[request.id] = (sub, scope)
        await self._reply(conn, ok_reply(request.id, {"subscription": request.id}))
        conn.nursery.start_soon(self._pump, conn, request.id, sub, scope, wake_receive)

    async def _pump(
        self,
        conn: _Connection,
        sid: int,
        sub: Subscription,
        scope: trio.CancelScope,
        wake: trio.MemoryReceiveChannel[None],
    ) -> None:
        with scope:
            while True:
                items = sub.drain()
                if not items:
                    await wake.receive()
                    continue
                for topic, msg in items:
                    if topic == LAGGED_TOPIC and isinstance(msg, Lagged):
                        lagged = {"op": "lagged", "subscription": sid, "lost": msg.lost}
                        await self._reply(conn, lagged)
                        continue
                    try:
                        # The bytes the recorder wrote to the log (or will): made once, for
                        # the log and every subscriber.
                        frame = event_frame(sid, topic, encoded(msg))
                    except MessageError as exc:
                        frame = _unencodable(None, exc)
                    await self._send(conn, frame)

    async def _unsubscribe(self, conn: _Connection, request: Unsubscribe) -> None:
        entry = conn.subs.pop(request.subscription, None)
        if entry is None:
            raise ApiError(ErrorCode.NOT_FOUND, f"no subscription {request.subscription}")
        sub, scope = entry
        sub.close()
        scope.cancel()
        await self._reply(conn, ok_reply(request.id, None))

    def statistics(self) -> dict[str, int]:
        """Connections open now (and how many of them past the limit), calls in flight
        (waiting for a thread or on one), worker threads busy, urgent calls in flight,
        peers whose hellos are refused for wrong tokens. Safe from any thread."""
        return {
            "connections": self._connections,
            "restricted_connections": self._restricted,
            "calls_in_flight": self._calls_in_flight,
            "threads_busy": int(self._calls_limiter.borrowed_tokens),
            "urgent_in_flight": self._urgent_in_flight,
            "peers_backing_off": len(self._strikes),
        }


def _unencodable(request_id: object, exc: MessageError) -> bytes:
    """The error frame in place of a reply or an event that cannot be encoded."""
    rid = request_id if isinstance(request_id, int) else None
    return encode_frame(error_reply(rid, ErrorCode.INTERNAL, f"reply cannot be encoded: {exc}"))


def _peer(transport: str, stream: trio.SocketStream) -> tuple[str, bool]:
    """Who is on the other end: the TCP peer's address, or for the Unix socket the peer's
    uid, and whether it is the daemon's own user (or root): the socket's owner."""
    sock = stream.socket
    if transport == "tcp":
        try:
            return str(sock.getpeername()[0]), False
        except OSError:
            return "?", False
    try:
        creds = sock.getsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_PEERCRED, 12)
    except (OSError, AttributeError):
        return "unix:?", False
    _pid, uid, _gid = struct.unpack("3i", creds)
    return f"unix:uid={uid}", uid in (os.geteuid(), 0)


class ServerThread:
    """Runs an :class:`ApiServer` in a thread of its own with its own trio loop."""

    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self._token: trio.lowlevel.TrioToken | None = None
        self._cancel: trio.CancelScope | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="galvana-api", daemon=True)

    def start(self, timeout: float = 10.0) -> list[str]:
        """Start serving; returns the addresses once listening (raises what failed)."""
        self._thread.start()
        if not self._started.wait(timeout):
            raise ApiError(ErrorCode.TIMEOUT, f"the API server did not start within {timeout} s")
        if self._error is not None:
            raise _first_leaf(self._error)
        return list(self.server.addresses)

    def _main(self) -> None:
        async def main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            with trio.CancelScope() as scope:
                self._cancel = scope
                async with trio.open_nursery() as nursery:
                    await nursery.start(self.server.run)
                    self._started.set()

        try:
            trio.run(main)
        except BaseException as exc:  # surfaced to start(); logged if it happens later
            self._error = exc
            if self._started.is_set():
                logger.exception("the API server stopped")
        finally:
            self._started.set()

    def shut_down(self) -> None:
        """Answer the calls in flight, and all later ones, with ``unavailable`` (the
        daemon is shutting down); from any thread but the server's own."""
        if self._token is not None:
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run(self.server.shut_down, trio_token=self._token)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving: answer the calls in flight (``unavailable``), then close every
        connection."""
        if self._token is not None and self._cancel is not None:
            self.shut_down()
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self._cancel.cancel, trio_token=self._token)
        self._thread.join(timeout)

    def __enter__(self) -> ServerThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_SHUTTING_DOWN = "the daemon is shutting down"


def _first_leaf(exc: BaseException) -> BaseException:
    """The first real error inside (possibly nested) exception groups from trio."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
