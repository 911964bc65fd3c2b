"""A run's live stream over SSE and WebSocket, read from the event log.

Only committed events have a sequence number, and the sequence number is what a client
resumes from; so the stream follows the log itself, not the bus. A follower reads the
committed tail after the client's position, then waits for the log's writer to commit
again (:class:`CommitWatch`, one waiter for every stream) and reads on: the switch from
the tail to live events is the same read, so nothing is missed or repeated, and each
event's ``id`` is its sequence number in the run's stream. What it costs is the group
commit (a few ms) before an event is shown; what it gives is that an event a client saw
is one the daemon will still have after a crash.

A slow client reads the log at its own pace: it holds one page of events at a time and
never slows the daemon. When it falls more than ``lag_events`` behind the log's head it
is told so (``lagged``, with how far behind it is) and carries on from where it is; it
may also drop the connection and resume with ``Last-Event-ID`` whenever it likes.

SSE: ``id:`` the sequence number, ``event:`` the channel (``status``, ``frames``,
``logs``, ``events``), ``data:`` the event as JSON (``{seq, channel, type, data}``);
``event: lagged`` and ``event: end`` (the run finished, every event sent) carry no id.
The WebSocket sends the same objects as JSON text, or as msgpack binary frames with the
message encoded as the actor message API encodes it (``format=msgpack``): the very bytes
the log holds, not encoded again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from runtime.codec import decode, pack_plain_with
from runtime.errors import MessageError
from runtime.event_store import EventStore
from runtime.http.app import parse_query
from runtime.http.endpoints import StreamQuery
from runtime.http.errors import HttpError
from runtime.http.render import channel_of, msgpack_bytes, tag_of
from runtime.http.rest import FINAL_STATES, event_json, parse_channels, run_stream
from runtime.messages import RunStateChanged

if TYPE_CHECKING:
    from runtime.api_keys import Caller
    from runtime.http.gateway import Gateway

__all__ = ["CommitWatch", "EventCache", "Follow", "follow", "sse", "websocket"]

logger = logging.getLogger("galvana.http")

PAGE_EVENTS = 256
"""Events read from the log at a time (a slow client holds no more than this)."""

LIVE_EVENTS = 16
"""A reader whose last page held fewer events than this follows the head: its next
read is small enough to make in the event loop."""


class CommitWatch:
    """Wakes the gateway's streams each time the event store commits.

    The store's writer calls back after every commit (``EventStore.on_commit``); the
    callback hands over to the gateway's trio loop, where tasks wait on :meth:`wait`
    with the :attr:`generation` they last saw.
    """

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.generation = 0
        self._changed = trio.Event()

    def _bump(self) -> None:
        self.generation += 1
        changed, self._changed = self._changed, trio.Event()
        changed.set()

    async def run(self) -> None:
        """Follow the store's commits until cancelled."""
        token = trio.lowlevel.current_trio_token()

        def committed() -> None:  # the writer's thread: never block it
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(self._bump)

        stop = self.store.on_commit(committed)
        try:
            await trio.sleep_forever()
        finally:
            stop()

    @staticmethod
    def deadline(seconds: float) -> float:
        """The trio time ``seconds`` from now."""
        return trio.current_time() + seconds

    async def wait(self, generation: int, deadline: float) -> bool:
        """Wait until a commit after ``generation`` (True) or ``deadline`` (False)."""
        if self.generation != generation:
            return True
        with trio.move_on_at(deadline):
            await self._changed.wait()
            return True
        return False


class EventCache:
    """Recently read events of every stream, decoded and rendered once for all the
    streams that follow them (ten clients of one run cost one decode and one JSON
    rendering per event, not ten). Thread-safe; bounded to ``capacity`` events."""

    def __init__(self, capacity: int = 8192) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple[str, int], list[Any]] = OrderedDict()
        self._lock = threading.Lock()

    def read(
        self, store: EventStore, stream: str, after: int, limit: int
    ) -> list[tuple[int, object, bytes]]:
        """Like :func:`runtime.http.rest.read_events`, decoding only what is not cached;
        each event comes with its bytes in the log."""
        out: list[tuple[int, object, bytes]] = []
        for seq, data in store.read(stream, after + 1, limit):
            key = (stream, seq)
            with self._lock:
                entry = self._items.get(key)
            if entry is None:
                try:
                    message: object = decode(data)
                except MessageError:
                    message = None
                entry = [message, None]
                with self._lock:
                    self._items[key] = entry
                    while len(self._items) > self.capacity:
                        self._items.popitem(last=False)
            out.append((seq, entry[0], data))
        return out

    def json_text(self, stream: str, seq: int, message: object) -> str:
        """The event as JSON (``{seq, channel, type, data}``), rendered once."""
        with self._lock:
            entry = self._items.get((stream, seq))
        if entry is not None and entry[1] is not None:
            return str(entry[1])
        text = json.dumps(event_json(seq, message), separators=(",", ":"), allow_nan=False)
        if entry is not None:
            entry[1] = text
        return text


@dataclass(frozen=True, slots=True)
class Follow:
    """What a follower yields: ``kind`` ``event`` (with ``seq``, ``message`` and its
    bytes in the log, ``data``), ``lagged`` (``behind`` events behind the head),
    ``keepalive`` or ``end``."""

    kind: str
    seq: int = 0
    message: object = None
    behind: int = 0
    head: int = 0
    data: bytes = b""


async def follow(
    gw: Gateway, stream: str, after: int, channels: frozenset[str]
) -> AsyncIterator[list[Follow]]:
    """Yield the run's events after ``after`` in pages, then live ones as they commit,
    until the run's final state has been sent; keepalives while nothing happens."""
    position = after
    final = False
    live = False
    told_behind = 0
    while True:
        generation = gw.commits.generation
        if live:
            # Following the head: a few events, read in the loop (microseconds of LMDB)
            # rather than through a worker thread, whose hand-offs cost milliseconds.
            page = gw.events.read(gw.store, stream, position, LIVE_EVENTS)
        else:
            page = await gw.read(gw.events.read, gw.store, stream, position, PAGE_EVENTS)
        live = len(page) < LIVE_EVENTS
        out: list[Follow] = []
        for seq, message, data in page:
            position = seq
            if isinstance(message, RunStateChanged) and message.state in FINAL_STATES:
                final = True
            if message is not None and channel_of(message) in channels:
                out.append(Follow("event", seq, message, data=data))
        if len(page) >= LIVE_EVENTS:
            head = await gw.read(gw.store.last_seq, stream)
            behind = head - position
            if behind > gw.config.lag_events and behind > 2 * told_behind:
                told_behind = behind
                out.append(Follow("lagged", behind=behind, head=head))
            elif behind <= gw.config.lag_events:
                told_behind = 0
        if out:
            yield out
        if page:
            continue
        if final:
            yield [Follow("end", position)]
            return
        if not await gw.commits.wait(generation, gw.commits.deadline(gw.config.keepalive_s)):
            yield [Follow("keepalive", position)]


async def _open(
    gw: Gateway, run_id: str, query: StreamQuery, last_event_id: str | None
) -> tuple[str, int, frozenset[str]]:
    channels = parse_channels(query.channels)
    stream = run_stream(run_id)
    if await gw.read(gw.store.last_seq, stream) == 0:
        raise HttpError(404, "not_found", f"no run {run_id!r}")
    after = query.after or 0
    if last_event_id:
        if not last_event_id.strip().isdigit():
            raise HttpError(
                400,
                "bad_request",
                f"Last-Event-ID {last_event_id!r} is not a sequence number",
                field="Last-Event-ID",
            )
        after = max(after, int(last_event_id))
    if gw.counters.streams >= gw.config.max_streams:
        raise HttpError(
            503, "busy", f"the gateway serves at most {gw.config.max_streams} streams at once"
        )
    return stream, after, channels


def _sse_chunk(gw: Gateway, stream: str, item: Follow) -> str:
    if item.kind == "event":
        data = gw.events.json_text(stream, item.seq, item.message)
        # A JSON text from json.dumps holds no newline: one data line per event.
        return f"id: {item.seq}\nevent: {channel_of(item.message)}\ndata: {data}\n\n"
    if item.kind == "lagged":
        data = json.dumps({"behind": item.behind, "head": item.head})
        return f"event: lagged\ndata: {data}\n\n"
    if item.kind == "end":
        return f"event: end\ndata: {json.dumps({'seq': item.seq})}\n\n"
    return ": keepalive\n\n"


async def sse(gw: Gateway, request: Request, caller: Caller, query: StreamQuery) -> Response:
    """``GET /runs/{run_id}/stream``: server-sent events."""
    stream, after, channels = await _open(
        gw, request.path_params["run_id"], query, request.headers.get("last-event-id")
    )

    async def body() -> AsyncIterator[bytes]:
        gw.counters.streams += 1
        try:
            yield b"retry: 2000\n\n"
            async for items in follow(gw, stream, after, channels):
                yield "".join(_sse_chunk(gw, stream, i) for i in items).encode()
        finally:
            gw.counters.streams -= 1

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def websocket(gw: Gateway, ws: WebSocket, caller: None, query: None) -> None:
    """``/runs/{run_id}/ws``: the stream over a WebSocket. The key comes in the headers
    (a refusal is then the HTTP answer to the handshake: 401, 403, 404, ...) or, for a
    browser, which cannot set them, as the first message ``{"key": KEY}`` (a refusal is
    then a close with code 4000 + the HTTP status and the reason)."""
    in_headers = bool(ws.headers.get("authorization") or ws.headers.get("x-api-key"))
    if not in_headers:
        await ws.accept()
    try:
        who = gw.authenticate(ws) if in_headers else await _first_message_caller(gw, ws)
        gw.require(who, "read")
        parsed: StreamQuery = parse_query(StreamQuery, ws.query_params)
        stream, after, channels = await _open(gw, ws.path_params["run_id"], parsed, None)
    except HttpError as exc:
        if in_headers:
            await ws.send_denial_response(gw.error_response(exc))
        else:
            await ws.close(code=4000 + min(exc.status, 999), reason=str(exc)[:120])
        return
    if in_headers:
        await ws.accept()
    binary = parsed.format == "msgpack"
    gw.counters.streams += 1
    try:
        async with trio.open_nursery() as nursery:
            closed = trio.Event()

            async def until_closed() -> None:
                try:
                    while True:
                        await ws.receive_text()
                except (WebSocketDisconnect, RuntimeError):
                    pass
                closed.set()
                nursery.cancel_scope.cancel()

            nursery.start_soon(until_closed)
            async for items in follow(gw, stream, after, channels):
                for item in items:
                    await _ws_send(gw, ws, stream, item, binary)
            # Everything was sent, "end" last: the client closes; only one that does not
            # is closed from here (two closes crossing each other trip up the server).
            with trio.move_on_after(5.0):
                await closed.wait()
            if not closed.is_set():
                await ws.close()
            nursery.cancel_scope.cancel()
    except (WebSocketDisconnect, RuntimeError, trio.BrokenResourceError):
        pass
    finally:
        gw.counters.streams -= 1


async def _first_message_caller(gw: Gateway, ws: WebSocket) -> Caller:
    with trio.move_on_after(10.0):
        first = await ws.receive_text()
        try:
            key = json.loads(first).get("key")
        except (ValueError, AttributeError):
            key = None
        return gw.authenticate(ws, key if isinstance(key, str) else "")
    raise HttpError(401, "unauthorized", 'no key within 10 s (send {"key": KEY} first)')


async def _ws_send(gw: Gateway, ws: WebSocket, stream: str, item: Follow, binary: bool) -> None:
    payload: dict[str, Any]
    if item.kind == "event":
        if binary:
            head: dict[str, object] = {
                "seq": item.seq,
                "channel": channel_of(item.message),
                "type": tag_of(item.message),
            }
            await ws.send_bytes(pack_plain_with(head, "message", item.data))
            return
        await ws.send_text(gw.events.json_text(stream, item.seq, item.message))
        return
    if item.kind == "lagged":
        payload = {"type": "lagged", "behind": item.behind, "head": item.head}
    elif item.kind == "end":
        payload = {"type": "end", "seq": item.seq}
    else:
        payload = {"type": "keepalive", "seq": item.seq}
    if binary:
        await ws.send_bytes(msgpack_bytes(payload))
    else:
        await ws.send_text(json.dumps(payload))
