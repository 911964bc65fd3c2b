"""The HTTP gateway: a thin adapter over the actor message API, served by hypercorn's
trio worker with Starlette.

Every call a request makes goes through the same dispatch as a socket client's
(``runtime.api.dispatch``): the actor checks the method's scope and its arguments, an
unexpected failure is answered ``internal`` and logged, the emergency stop runs on
threads reserved for it straight through the interlocks. The limits are the socket
API's: a pool of worker threads shared by every caller, calls in flight per caller
(here: per API key), reserved threads for urgent calls.

Access is deny by default: every route, stream and GraphQL field needs an API key
(``Authorization: Bearer KEY`` or ``X-API-Key: KEY``; ``runtime.api_keys``) holding its
scope; no key or a wrong one is ``401``, a key without the scope ``403``. Every
state-changing request, answered or refused, is an :class:`~runtime.messages.AuditEvent`
on ``system/audit`` (recorded in the ``system`` stream).

Streams (``runtime.http.streams``) read the run's committed events from the event log,
woken by each commit of the log's writer: an event's ``id`` is its sequence number, so
a client resumes exactly where it stopped.

:class:`GatewayThread` runs the server in a thread with its own trio loop (the daemon's
``http`` child, ``actors.gateway``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from runtime import topics
from runtime.actor import SCOPES
from runtime.api.dispatch import Resolver, ask_actor, run_urgent
from runtime.api.protocol import ErrorCode
from runtime.api.server import FollowUp, UrgentRoutes
from runtime.api_keys import ApiKey, Caller, KeyStore
from runtime.errors import ApiError, GalvanaError, KeyStoreError
from runtime.event_bus import EventBus
from runtime.event_store import EventStore
from runtime.http.errors import HttpError, http_error_of
from runtime.http.render import json_bytes
from runtime.messages import AuditEvent, utc_now

__all__ = ["Gateway", "GatewayConfig", "GatewayThread", "Hooks", "Upload", "not_found_response"]

logger = logging.getLogger("galvana.http")


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """Where the gateway listens and the limits it keeps.

    ``host`` is loopback by default; ``port`` 0 takes a free one. The thread and call
    limits default to the socket API's (``runtime.api.ApiConfig``), which the daemon
    passes on so both front ends share one set.
    """

    host: str = "127.0.0.1"
    port: int = 7341
    call_timeout_s: float = 30.0
    max_threads: int = 32
    max_calls_per_key: int = 16
    urgent_threads: int = 4
    max_streams: int = 64
    max_body_bytes: int = 64 * 1024 * 1024
    keepalive_s: float = 15.0
    lag_events: int = 10_000
    """How far (events) a stream's reader may fall behind the log's head before it is
    told it lags (it still loses nothing: it reads the log at its own pace)."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise GalvanaError(f"http: port {self.port} is not in 0..65535")
        for name in ("max_threads", "max_calls_per_key", "urgent_threads", "max_streams"):
            if getattr(self, name) < 1:
                raise GalvanaError(f"http: {name} must be >= 1")


@dataclass(frozen=True, slots=True)
class Upload:
    """An instrument file read for an import: the run's spec and source, and its columns
    (t s, E V, I A) on the run's clock."""

    spec: dict[str, Any]
    source: str
    t: Any
    E: Any
    I: Any  # noqa: E741 - current


@dataclass(frozen=True, slots=True)
class Hooks:
    """What the gateway needs from the packages above ``runtime`` (given by the daemon):

    ``estimate_duration(spec)``: a run spec's expected duration (s), None when unknown;
    ``read_upload(filename, data, meta, name, cycles)``: an instrument file read into
    an :class:`Upload` (raises ``ValueError`` with one line for a bad file), None when
    imports are not offered; ``import_chunk_rows``: rows per ``runs.import_chunk``;
    ``run_spec_schema()``: the JSON Schema of a twin spec (the one the daemon reads
    specs with), for the OpenAPI document, None when not known.
    """

    estimate_duration: Callable[[object], float | None] = lambda _spec: None
    read_upload: (
        Callable[[str, bytes, Mapping[str, str], str | None, str | None], Upload] | None
    ) = None
    import_chunk_rows: int = 100_000
    run_spec_schema: Callable[[], Mapping[str, Any]] | None = None


@dataclass
class _Counters:
    """Request counters the metrics read (trio thread only)."""

    in_flight: int = 0
    per_key: dict[str, int] = field(default_factory=dict)
    streams: int = 0
    estops: int = 0


class Gateway:
    """The gateway of one daemon: its app, its callers' limits, its audit trail."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        bus: EventBus,
        store: EventStore,
        resolve: Resolver,
        keys: KeyStore,
        urgent: UrgentRoutes | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        self.config = config
        self.bus = bus
        self.store = store
        self.resolve = resolve
        self.keys = keys
        self.urgent = {(p.strip("/"), m): fn for (p, m), fn in (urgent or {}).items()}
        self.hooks = hooks or Hooks()
        self.counters = _Counters()
        self._calls_limiter = trio.CapacityLimiter(config.max_threads)
        self._urgent_limiter = trio.CapacityLimiter(config.urgent_threads)
        self._reads_limiter = trio.CapacityLimiter(8)
        try:
            self._keys_seen = {k.id: k.revoked for k in keys.entries()}
        except KeyStoreError:
            self._keys_seen = {}
        self.started = time.monotonic()
        # Built here, not at import: each part imports what it needs.
        from runtime.http.app import build_app  # noqa: PLC0415 - the app imports this module
        from runtime.http.metrics import Metrics  # noqa: PLC0415
        from runtime.http.streams import CommitWatch, EventCache  # noqa: PLC0415

        self.metrics = Metrics(self)
        self.commits = CommitWatch(store)
        self.events = EventCache()
        self.app: Starlette = build_app(self)

    # --- who is calling -------------------------------------------------------------

    def authenticate(self, conn: HTTPConnection, presented: str | None = None) -> Caller:
        """The caller a request's key belongs to; ``401`` without a valid key."""
        key = presented
        if key is None:
            header = conn.headers.get("authorization", "")
            scheme, _, value = header.partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                key = value.strip()
            else:
                key = conn.headers.get("x-api-key")
        if not key:
            raise HttpError(
                401,
                "unauthorized",
                "an API key is needed: send 'Authorization: Bearer KEY' (create one with "
                "`galvana keys add NAME --scope read|operate|admin`)",
                headers={"WWW-Authenticate": 'Bearer realm="galvana"'},
            )
        try:
            caller = self.keys.verify(key)
        except KeyStoreError as exc:
            logger.error("API keys cannot be read: %s", exc)
            raise HttpError(
                503, "unavailable", "the daemon cannot read its API keys; see its log"
            ) from None
        if caller is None:
            raise HttpError(
                401,
                "unauthorized",
                "the API key is unknown or revoked",
                headers={"WWW-Authenticate": 'Bearer realm="galvana", error="invalid_token"'},
            )
        return caller

    @staticmethod
    def require(caller: Caller, scope: str) -> None:
        """Refuse (``403``) a caller without ``scope``."""
        if scope not in caller.scopes:
            raise HttpError(
                403,
                "unauthorized",
                f"this needs the {scope!r} scope; key {caller.key_id} ({caller.name}) has "
                f"{caller.scopes[-1]!r} (scopes: {', '.join(SCOPES)})",
            )

    # --- calls into the tree ---------------------------------------------------------

    async def call(
        self,
        caller: Caller,
        path: str,
        method: str,
        *args: object,
        timeout: float | None = None,
        **kwargs: object,
    ) -> Any:
        """Ask the actor at ``path`` to run ``method``, as a socket client would: the
        caller's scopes, the shared thread pool, at most ``max_calls_per_key`` calls in
        flight per key (``503`` past it). API errors become :class:`HttpError`."""
        route = self.urgent.get((path.strip("/"), method))
        if route is not None:
            return await self.urgent_call(caller, path, method, args, kwargs, route=route)
        try:
            return await self._ask(caller, path, method, args, kwargs, timeout=timeout)
        except ApiError as exc:
            raise http_error_of(exc) from None

    async def _ask(
        self,
        caller: Caller,
        path: str,
        method: str,
        args: Sequence[object],
        kwargs: Mapping[str, object],
        *,
        timeout: float | None = None,
    ) -> Any:
        """An ordinary call on the shared pool, within the key's limit (API errors as
        :class:`ApiError`)."""
        inflight = self.counters.per_key.get(caller.key_id, 0)
        if inflight >= self.config.max_calls_per_key:
            raise HttpError(
                503,
                "busy",
                f"key {caller.key_id} has {inflight} calls in flight (at most "
                f"{self.config.max_calls_per_key}); try again when one has finished",
            )
        self.counters.per_key[caller.key_id] = inflight + 1
        wait = min(timeout or self.config.call_timeout_s, self.config.call_timeout_s * 10)
        try:
            return await trio.to_thread.run_sync(
                partial(
                    ask_actor,
                    self.resolve,
                    path,
                    method,
                    args,
                    kwargs,
                    scopes=caller.scopes,
                    timeout=wait,
                ),
                limiter=self._calls_limiter,
                abandon_on_cancel=True,
            )
        finally:
            left = self.counters.per_key.get(caller.key_id, 1) - 1
            if left:
                self.counters.per_key[caller.key_id] = left
            else:
                self.counters.per_key.pop(caller.key_id, None)

    async def urgent_call(
        self,
        caller: Caller,
        path: str,
        method: str,
        args: Sequence[object],
        kwargs: Mapping[str, object],
        *,
        route: Callable[..., object] | None = None,
    ) -> Any:
        """Run an urgent route (the emergency stop, a run's abort) on the reserved threads,
        past every mailbox and the shared pool, exactly as the socket API does; a route
        that returns a :class:`~runtime.api.server.FollowUp` (its urgent part done: the
        cell is off) has the rest asked as an ordinary call, and its reply combined."""
        route = route or self.urgent.get((path.strip("/"), method))
        if route is None:
            raise HttpError(404, "not_found", f"{path}.{method} is not an urgent route here")
        name = f"{path.strip('/')}.{method}"
        self.counters.estops += method == "estop"
        try:
            # Not abandoned on cancel: a stop that was asked for is carried out.
            result = await trio.to_thread.run_sync(
                partial(run_urgent, route, name, args, kwargs, caller.scopes),
                limiter=self._urgent_limiter,
            )
        except ApiError as exc:
            raise http_error_of(exc) from None
        if not isinstance(result, FollowUp):
            return result
        outcome: object
        try:
            outcome = await self._ask(caller, result.path, result.method, result.args, {})
        except ApiError as exc:
            outcome = exc
        try:
            return result.combine(outcome)
        except ApiError as exc:
            raise http_error_of(exc) from None

    async def read(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a read of the event log in a worker thread of its own pool (reads never
        wait behind calls, and never hold a call's thread)."""
        return await trio.to_thread.run_sync(
            partial(fn, *args), limiter=self._reads_limiter, abandon_on_cancel=True
        )

    # --- audit ------------------------------------------------------------------------

    async def audit(
        self, caller: Caller, action: str, *, target: str, status: int, detail: str
    ) -> None:
        """Record a state-changing request (answered or refused) on ``system/audit``."""
        event = AuditEvent(caller.who, caller.key_id, action, target, status, detail, utc_now())
        try:
            # The recorder's subscription is lossless: publishing may wait for room.
            await trio.to_thread.run_sync(partial(self.bus.publish, topics.SYSTEM_AUDIT, event))
        except GalvanaError:
            logger.exception("audit event not recorded: %s %s by %s", action, target, caller.who)

    def noted_key(self, entry: ApiKey) -> None:
        """A key the gateway itself added or revoked (audited by its route, not again
        by :meth:`watch_keys`)."""
        self._keys_seen = {**self._keys_seen, entry.id: entry.revoked}

    async def watch_keys(self) -> None:
        """Record keys added or revoked outside the gateway (``galvana keys``) as they
        are noticed (checked every few seconds; the first look is taken when the gateway
        is built, so a change made while it starts is not missed)."""
        while True:
            known = self._keys_seen
            try:
                entries = {k.id: k for k in self.keys.entries()}
            except KeyStoreError as exc:
                logger.error("API keys cannot be read: %s", exc)
                entries = {}
            else:
                owner = Caller("owner", "the data directory's owner (galvana keys)", ())
                for key_id, entry in entries.items():
                    changes = []
                    if key_id not in known:
                        changes.append(f"key added: {entry.name}, scope {entry.scope}")
                    # Added and revoked between two looks: both are recorded.
                    if entry.revoked is not None and known.get(key_id) is None:
                        changes.append(f"key revoked: {entry.name}, scope {entry.scope}")
                    for what in changes:
                        await self.audit(
                            owner, "galvana keys", target=key_id, status=0, detail=what
                        )
                # Merged, not replaced: the gateway may have noted a change meanwhile.
                seen = self._keys_seen
                self._keys_seen = {
                    **seen,
                    **{i: e.revoked or seen.get(i) for i, e in entries.items()},
                }
            await trio.sleep(2.0)

    # --- answers ----------------------------------------------------------------------

    @staticmethod
    def error_response(exc: HttpError) -> Response:
        """The JSON answer to an error."""
        return Response(
            json_bytes(exc.body()),
            status_code=exc.status,
            media_type="application/json",
            headers=exc.headers,
        )

    @staticmethod
    def json(
        value: object, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> Response:
        """A JSON answer (NaN as null, arrays as lists)."""
        return Response(
            json_bytes(value), status_code=status, media_type="application/json", headers=headers
        )


def not_found_response(_request: Request, _exc: Exception) -> Response:
    """The JSON answer for a path no route serves."""
    return JSONResponse(
        {"error": {"code": "not_found", "message": "no such route; see /api/v1/openapi.json"}},
        status_code=404,
    )


class GatewayThread:
    """Runs a :class:`Gateway` with hypercorn's trio worker in a thread of its own."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.urls: list[str] = []
        self._token: trio.lowlevel.TrioToken | None = None
        self._shutdown: trio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="galvana-http", daemon=True)

    def start(self, timeout: float = 30.0) -> list[str]:
        """Start serving; returns the URLs once listening (raises what failed)."""
        self._thread.start()
        if not self._started.wait(timeout):
            raise ApiError(ErrorCode.TIMEOUT, f"the HTTP gateway did not start within {timeout} s")
        if self._error is not None:
            raise _first_leaf(self._error)
        return list(self.urls)

    def _main(self) -> None:
        config = self.gateway.config
        hyper = HypercornConfig()
        hyper.bind = [
            f"[{config.host}]:{config.port}"
            if ":" in config.host
            else f"{config.host}:{config.port}"
        ]
        hyper.accesslog = None
        hyper.errorlog = logging.getLogger("galvana.http.server")
        hyper.graceful_timeout = 2.0
        hyper.keep_alive_timeout = 30.0
        hyper.websocket_ping_interval = 20.0

        async def main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            self._shutdown = trio.Event()
            async with trio.open_nursery() as helpers:
                helpers.start_soon(self.gateway.commits.run)
                helpers.start_soon(self.gateway.watch_keys)
                helpers.start_soon(self.gateway.metrics.run)
                async with trio.open_nursery() as web:
                    self.urls = await web.start(
                        partial(
                            serve,
                            cast(Any, self.gateway.app),
                            hyper,
                            shutdown_trigger=self._shutdown.wait,
                        )
                    )
                    self._started.set()
                # hypercorn has closed its connections (streams get graceful_timeout).
                helpers.cancel_scope.cancel()
            self.gateway.metrics.close()

        try:
            trio.run(main)
        except BaseException as exc:  # surfaced to start(); logged if it happens later
            self._error = exc
            if self._started.is_set():
                logger.exception("the HTTP gateway stopped")
        finally:
            self._started.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and close every connection."""
        if self._token is not None and self._shutdown is not None:
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self._shutdown.set, trio_token=self._token)
        self._thread.join(timeout)


def _first_leaf(exc: BaseException) -> BaseException:
    """The first real error inside (possibly nested) exception groups from trio."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


Handler = Callable[..., Awaitable[Response]]
