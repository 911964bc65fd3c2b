"""The actor message API server (trio): the protocol of ``runtime.api.protocol``.

Calls are bridged to actors through worker threads (``trio.to_thread``), never by
awaiting a Pykka future in the event loop. Subscriptions are lossy bus subscriptions
with a bounded queue per client: a client that reads too slowly is sent ``lagged``
frames and never slows the runtime down.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import logging
import os
import socket as stdlib_socket
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pykka
import trio

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
    ok_reply,
    parse_request,
    request_id_of,
)
from runtime.codec import DecodeLimits
from runtime.errors import ApiError, BusError, CallError, MessageError
from runtime.event_bus import LAGGED_TOPIC, EventBus, Subscription
from runtime.messages import ApiCall, Lagged

__all__ = ["ApiConfig", "ApiServer", "ServerThread"]

logger = logging.getLogger("galvana.api")

Resolver = Callable[[str], "pykka.ActorRef[Any]"]
"""Finds the actor at a path; raises :class:`CallError` ``not_found`` when there is none."""


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """Where the server listens and the limits it enforces.

    ``tcp`` is ``(host, port)``; any host but a loopback address needs ``token``,
    and when a token is set every TCP client must present it in ``hello``. The Unix
    socket (mode 0600) is protected by file permissions and needs no token.
    """

    socket_path: Path | None = None
    tcp: tuple[str, int] | None = None
    token: str | None = None
    max_frame_bytes: int = 16 * 1024 * 1024
    max_connections: int = 64
    max_subscriptions: int = 32
    max_calls_in_flight: int = 16
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
            if not _is_loopback(host) and not self.token:
                raise ApiError(
                    ErrorCode.UNAUTHORIZED,
                    f"TCP on {host} is reachable from other machines: set a token "
                    "(--token or GALVANA_TOKEN), or bind 127.0.0.1",
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
    send: trio.MemorySendChannel[bytes]
    nursery: trio.Nursery
    greeted: bool = False
    calls: int = 0
    subs: dict[int, tuple[Subscription, trio.CancelScope]] = field(default_factory=dict)
    # The scopes of the calls in flight, cancelled (and answered) when the daemon stops.
    call_scopes: set[trio.CancelScope] = field(default_factory=set)


class ApiServer:
    """Serves the actor message API for one actor tree and its event bus."""

    def __init__(
        self,
        config: ApiConfig,
        bus: EventBus,
        resolve: Resolver,
        *,
        server_info: dict[str, object] | None = None,
    ) -> None:
        self.config = config
        self.bus = bus
        self.resolve = resolve
        self.server_info = {
            "server": "galvana",
            "protocol": PROTOCOL_VERSION,
            **(server_info or {}),
        }
        self._limits = DecodeLimits(
            max_bytes=config.max_frame_bytes, max_array_bytes=config.max_frame_bytes
        )
        self._connections = 0
        self._open: set[_Connection] = set()
        self._closing = False
        self._calls_limiter = trio.CapacityLimiter(max(4, config.max_calls_in_flight))
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
        # Bind in a private directory and rename into place, so the socket is never
        # reachable with permissions wider than 0600.
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() or path.is_symlink():
            if await _socket_answers(path):
                raise ApiError(ErrorCode.LIMIT, f"another server is listening on {path}")
            path.unlink()
        if len(os.fsencode(path)) > 100:  # sun_path holds 108 bytes, the staging name needs a few
            raise ApiError(
                ErrorCode.BAD_REQUEST,
                f"socket path {path} is too long for a Unix socket (at most 100 bytes); "
                "use --socket with a shorter path",
            )
        private = Path(tempfile.mkdtemp(prefix=".gs-", dir=path.parent))
        sock = trio.socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
        try:
            staged = private / "s"
            await sock.bind(str(staged))
            staged.chmod(0o600)
            staged.rename(path)
        finally:
            private.rmdir()
        sock.listen(128)
        return trio.SocketListener(sock)

    # --- one connection ------------------------------------------------------------------

    async def _handle(self, transport: str, stream: trio.SocketStream) -> None:
        async with stream:
            if self._connections >= self.config.max_connections:
                await stream.send_all(
                    encode_frame(
                        error_reply(
                            None,
                            ErrorCode.LIMIT,
                            f"the daemon serves at most {self.config.max_connections} "
                            "connections; try again later",
                        )
                    )
                )
                return
            self._connections += 1
            try:
                await self._serve_connection(transport, stream)
            finally:
                self._connections -= 1

    async def _serve_connection(self, transport: str, stream: trio.SocketStream) -> None:
        send, receive = trio.open_memory_channel[bytes](self.config.send_queue_frames)
        async with trio.open_nursery() as nursery:
            conn = _Connection(transport, send, nursery)
            nursery.start_soon(self._writer, stream, receive)
            self._open.add(conn)
            try:
                await self._reader(conn, stream)
            finally:
                self._open.discard(conn)
                for sub, scope in conn.subs.values():
                    sub.close()
                    scope.cancel()
                # Let replies already queued go out, then stop the writer.
                await send.aclose()

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
            try:
                data = await stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
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
                if isinstance(item, ApiError):
                    await self._reply(conn, error_reply(None, item.code, str(item)))
                elif not await self._request(conn, item):
                    return

    async def _reply(self, conn: _Connection, payload: dict[str, Any]) -> None:
        try:
            frame = encode_frame(payload)
        except MessageError as exc:
            frame = encode_frame(
                error_reply(
                    payload.get("id"), ErrorCode.INTERNAL, f"reply cannot be encoded: {exc}"
                )
            )
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
        token = self.config.token
        if (
            conn.transport == "tcp"
            and token is not None
            and not hmac.compare_digest((hello.token or "").encode(), token.encode())
        ):
            await self._reply(
                conn, error_reply(hello.id, ErrorCode.UNAUTHORIZED, "wrong or missing token")
            )
            return False
        conn.greeted = True
        await self._reply(conn, ok_reply(hello.id, self.server_info))
        return True

    # --- calls -------------------------------------------------------------------------

    async def shut_down(self, grace_s: float = 2.0) -> None:
        """Answer every call in flight with ``unavailable`` (the daemon is shutting down)
        and refuse new ones; returns once those answers are sent, or after ``grace_s``."""
        self._closing = True
        for conn in self._open:
            for scope in conn.call_scopes:
                scope.cancel()
        with trio.move_on_after(grace_s):
            while any(c.calls or c.send.statistics().current_buffer_used for c in self._open):
                await trio.sleep(0.01)

    def _start_call(self, conn: _Connection, call: Call) -> None:
        if self._closing:
            raise ApiError(ErrorCode.UNAVAILABLE, _SHUTTING_DOWN)
        if conn.calls >= self.config.max_calls_in_flight:
            raise ApiError(
                ErrorCode.LIMIT,
                f"at most {self.config.max_calls_in_flight} calls may be in flight per connection",
            )
        conn.calls += 1
        conn.nursery.start_soon(self._call, conn, call)

    async def _call(self, conn: _Connection, call: Call) -> None:
        # Cancelled only by shut_down: the caller is told why instead of losing the line.
        reply = error_reply(call.id, ErrorCode.UNAVAILABLE, _SHUTTING_DOWN)
        with trio.CancelScope() as scope:
            conn.call_scopes.add(scope)
            try:
                timeout = min(
                    call.timeout or self.config.call_timeout_s, self.config.call_timeout_s * 10
                )
                result = await trio.to_thread.run_sync(
                    partial(self._ask, call, timeout),
                    limiter=self._calls_limiter,
                    abandon_on_cancel=True,
                )
                reply = ok_reply(call.id, result)
            except ApiError as exc:
                reply = error_reply(call.id, exc.code, str(exc))
            finally:
                conn.call_scopes.discard(scope)
                conn.calls -= 1
        await self._reply(conn, reply)

    def _ask(self, call: Call, timeout: float) -> object:
        """In a worker thread: resolve the actor and ask it."""
        try:
            ref = self.resolve(call.path)
            return ref.ask(ApiCall(call.method, call.args, call.kwargs), timeout=timeout)
        except CallError as exc:
            raise ApiError(exc.code, str(exc)) from None  # the actor's own code goes through
        except pykka.Timeout:
            raise ApiError(
                ErrorCode.TIMEOUT, f"{call.path}.{call.method} did not answer within {timeout} s"
            ) from None
        except pykka.ActorDeadError:
            raise ApiError(ErrorCode.NOT_FOUND, f"actor {call.path!r} is not running") from None
        except Exception as exc:
            # The actor crashed handling the call (and its supervisor restarts it).
            raise ApiError(
                ErrorCode.INTERNAL, f"{call.path}.{call.method} failed: {type(exc).__name__}: {exc}"
            ) from None

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
                        payload: dict[str, Any] = {
                            "op": "lagged",
                            "subscription": sid,
                            "lost": msg.lost,
                        }
                    else:
                        payload = {
                            "op": "event",
                            "subscription": sid,
                            "topic": topic,
                            "message": msg,
                        }
                    await self._reply(conn, payload)

    async def _unsubscribe(self, conn: _Connection, request: Unsubscribe) -> None:
        entry = conn.subs.pop(request.subscription, None)
        if entry is None:
            raise ApiError(ErrorCode.NOT_FOUND, f"no subscription {request.subscription}")
        sub, scope = entry
        sub.close()
        scope.cancel()
        await self._reply(conn, ok_reply(request.id, None))

    def statistics(self) -> dict[str, int]:
        """Connections open now."""
        return {"connections": self._connections}


async def _socket_answers(path: Path) -> bool:
    try:
        stream = await trio.open_unix_socket(str(path))
    except OSError:
        return False
    await stream.aclose()
    return True


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


def default_socket_path(data_dir: Path) -> Path:
    """Where the daemon listens unless told otherwise: ``<data>/galvana.sock``."""
    return data_dir / "galvana.sock"
