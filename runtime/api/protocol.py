"""The actor message API's wire protocol: framing, requests, replies, events.

A frame is a 4-byte big-endian unsigned length ``N`` followed by ``N`` bytes of
msgpack (see ``runtime.codec`` for arrays, timestamps and messages). Every frame
holds a map. A client sends requests; the server sends replies and events.

Requests (client -> server), each with an integer ``id`` the reply echoes:

=============  ===============================================================
``op``         other keys
=============  ===============================================================
``hello``      ``protocol`` (int, must be 1), ``client`` (str, optional),
               ``token`` (str; required on TCP); within ``handshake_timeout_s``
``call``       ``path`` (actor path, e.g. ``runs`` or ``run/7``), ``method``
               (str), ``args`` (array, optional), ``kwargs`` (map, optional),
               ``timeout`` (seconds, optional)
``subscribe``  ``topic`` (a pattern: ``run/*/samples``, ``system/**``)
``unsubscribe`` ``subscription`` (the id of the subscribe request)
=============  ===============================================================

Replies: ``{"id": N, "ok": true, "result": ...}`` or
``{"id": N, "ok": false, "error": {"code": str, "message": str}}``.

Events (server -> client), for each subscription:
``{"op": "event", "subscription": N, "topic": str, "message": [tag, ...]}`` and,
when the client fell behind and messages were dropped for it,
``{"op": "lagged", "subscription": N, "lost": int}``.

The first request must be ``hello``. Malformed frames, unknown ops and bad fields
get an error reply and the connection stays up; a frame longer than the limit gets
a ``too_large`` reply and its body is skipped; a connection that breaks framing
(ends inside a frame, or announces an absurd length) is closed.

The client's side is here too, without any I/O: :class:`ClientProtocol` numbers the
requests, frames them, and turns the bytes a client reads into :class:`Reply` and
:class:`Event` objects (events decoded into their message classes). The blocking and
the async client (:mod:`runtime.client`) are thin loops around it.
"""

from __future__ import annotations

import enum
import itertools
import logging
import struct
from dataclasses import dataclass
from typing import Any, Final

from runtime.codec import (
    DEFAULT_LIMITS,
    DecodeLimits,
    message_from_plain,
    pack_plain,
    pack_plain_with,
    unpack_plain,
)
from runtime.errors import ApiError, MessageError

__all__ = [
    "CLIENT_MAX_FRAME",
    "HARD_FRAME_LIMIT",
    "HEADER",
    "LAGGED_EVENT_TOPIC",
    "PROTOCOL_VERSION",
    "Call",
    "ClientProtocol",
    "ErrorCode",
    "Event",
    "FrameDecoder",
    "Hello",
    "Reply",
    "Request",
    "Subscribe",
    "Undecodable",
    "Unsubscribe",
    "call_request",
    "decode_body",
    "decode_message",
    "encode_frame",
    "error_reply",
    "event_frame",
    "event_of",
    "hello_request",
    "ok_reply",
    "parse_request",
    "reply_result",
    "request_id_of",
    "subscribe_request",
    "unsubscribe_request",
]

logger = logging.getLogger("galvana.client")

PROTOCOL_VERSION: Final = 1
HEADER: Final = struct.Struct(">I")
HARD_FRAME_LIMIT: Final = 1 << 30
"""A length above this is no frame a client meant to send: the connection is closed."""


class ErrorCode(enum.StrEnum):
    """The ``code`` of an error reply."""

    BAD_FRAME = "bad_frame"  # not msgpack, or not a map
    BAD_REQUEST = "bad_request"  # a field missing or of the wrong type
    UNKNOWN_OP = "unknown_op"
    TOO_LARGE = "too_large"
    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "not_found"  # no such actor, method or subscription
    LIMIT = "limit"  # too many connections, subscriptions or calls in flight
    TIMEOUT = "timeout"
    INTERNAL = "internal"  # the method failed unexpectedly (logged; the actor carries on)
    UNAVAILABLE = "unavailable"  # the daemon is shutting down (or a part it needs is down)
    # An actor that refuses a call (CallError) sends its own code: conflict, ...


def encode_frame(payload: dict[str, Any]) -> bytes:
    """One frame: the length header and the msgpack body."""
    body = pack_plain(payload)
    return HEADER.pack(len(body)) + body


def event_frame(subscription: int, topic: str, message: bytes) -> bytes:
    """The ``event`` frame of ``subscription`` for a message on ``topic`` that is already
    encoded (:func:`runtime.codec.encoded`: the bytes the event log holds): byte for
    byte what :func:`encode_frame` makes of ``{"op": "event", "subscription": ...,
    "topic": ..., "message": msg}``, without encoding the message again."""
    head: dict[str, object] = {"op": "event", "subscription": subscription, "topic": topic}
    body = pack_plain_with(head, "message", message)
    return HEADER.pack(len(body)) + body


def call_request(
    path: str,
    method: str,
    args: tuple[object, ...] | list[object],
    kwargs: dict[str, object],
    timeout: float | None = None,
) -> dict[str, Any]:
    """A ``call`` request (without its ``id``, which the client assigns)."""
    payload: dict[str, Any] = {
        "op": "call",
        "path": path,
        "method": method,
        "args": list(args),
        "kwargs": kwargs,
    }
    if timeout is not None:
        payload["timeout"] = timeout
    return payload


def hello_request(client: str, token: str | None = None) -> dict[str, Any]:
    """A ``hello`` request (without its ``id``): ``client`` names the client in the daemon's
    log; ``token`` is needed over TCP."""
    return {"op": "hello", "protocol": PROTOCOL_VERSION, "client": client, "token": token}


def subscribe_request(topic: str) -> dict[str, Any]:
    """A ``subscribe`` request (without its ``id``, which names the subscription)."""
    return {"op": "subscribe", "topic": topic}


def unsubscribe_request(subscription: int) -> dict[str, Any]:
    """An ``unsubscribe`` request for the subscription made by request ``subscription``."""
    return {"op": "unsubscribe", "subscription": subscription}


def reply_result(frame: dict[str, Any]) -> Any:
    """The result of a reply frame, or its error raised as :class:`ApiError`."""
    if frame.get("ok"):
        return frame.get("result")
    error = frame.get("error") or {}
    raise ApiError(str(error.get("code", "internal")), str(error.get("message", "error")))


def ok_reply(request_id: int | None, result: object) -> dict[str, Any]:
    """A success reply to request ``request_id``."""
    return {"id": request_id, "ok": True, "result": result}


def error_reply(request_id: int | None, code: str, message: str) -> dict[str, Any]:
    """An error reply to request ``request_id`` (None when the request had no id)."""
    return {"id": request_id, "ok": False, "error": {"code": str(code), "message": message}}


class FrameDecoder:
    """Splits a byte stream into frames; feed it what the socket gave.

    ``frames()`` yields each complete frame's body, or an :class:`ApiError` with code
    ``too_large`` in its place for a frame over ``max_frame_bytes`` (whose body is
    skipped as it arrives). A length over :data:`HARD_FRAME_LIMIT` raises
    :class:`ApiError` with code ``bad_frame``: the stream cannot be trusted after it.
    """

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()
        self._skip = 0

    @property
    def mid_frame(self) -> bool:
        """Whether bytes of an unfinished frame are pending (EOF now breaks framing)."""
        return bool(self._buffer) or self._skip > 0

    def feed(self, data: bytes) -> list[bytes | ApiError]:
        """Add received bytes; return the frames (or oversize errors) they complete."""
        out: list[bytes | ApiError] = []
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
        self._buffer += data
        while len(self._buffer) >= HEADER.size:
            (length,) = HEADER.unpack_from(self._buffer)
            if length > HARD_FRAME_LIMIT:
                raise ApiError(
                    ErrorCode.BAD_FRAME,
                    f"frame length {length} exceeds {HARD_FRAME_LIMIT}; framing is broken",
                )
            if length > self.max_frame_bytes:
                out.append(
                    ApiError(
                        ErrorCode.TOO_LARGE,
                        f"frame of {length} bytes exceeds the limit of {self.max_frame_bytes}",
                    )
                )
                available = len(self._buffer) - HEADER.size
                dropped = min(length, available)
                del self._buffer[: HEADER.size + dropped]
                self._skip = length - dropped
                if self._skip:
                    break
                continue
            if len(self._buffer) < HEADER.size + length:
                break
            out.append(bytes(self._buffer[HEADER.size : HEADER.size + length]))
            del self._buffer[: HEADER.size + length]
        return out


# --- requests -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    id: int
    protocol: int
    client: str
    token: str | None


@dataclass(frozen=True, slots=True)
class Call:
    id: int
    path: str
    method: str
    args: tuple[object, ...]
    kwargs: dict[str, object]
    timeout: float | None


@dataclass(frozen=True, slots=True)
class Subscribe:
    id: int
    topic: str


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    id: int
    subscription: int


Request = Hello | Call | Subscribe | Unsubscribe

_OPS = ("hello", "call", "subscribe", "unsubscribe")


def _field(frame: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    if key not in frame:
        raise ApiError(ErrorCode.BAD_REQUEST, f"'{frame.get('op')}' needs '{key}' ({what})")
    value = frame[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ApiError(ErrorCode.BAD_REQUEST, f"'{key}' must be {what}, got {type(value).__name__}")
    return value


def request_id_of(body: object) -> int | None:
    """The id of a decoded frame, when it has a usable one (for error replies)."""
    if isinstance(body, dict):
        rid = body.get("id")
        if isinstance(rid, int) and not isinstance(rid, bool):
            return rid
    return None


def decode_body(body: bytes, limits: DecodeLimits) -> dict[str, Any]:
    """Decode a frame body into its map; :class:`ApiError` ``bad_frame`` otherwise."""
    try:
        frame = unpack_plain(body, limits=limits)
    except MessageError as exc:
        raise ApiError(ErrorCode.BAD_FRAME, f"frame is not valid msgpack: {exc}") from None
    if not isinstance(frame, dict):
        raise ApiError(ErrorCode.BAD_FRAME, f"a frame holds a map, got {type(frame).__name__}")
    return frame


def parse_request(frame: dict[str, Any]) -> Request:
    """Validate a decoded frame as a request; :class:`ApiError` names what is wrong."""
    rid = _field(frame, "id", int, "an integer")
    op = _field(frame, "op", str, "a string")
    if op == "hello":
        token = frame.get("token")
        if token is not None and not isinstance(token, str):
            raise ApiError(ErrorCode.BAD_REQUEST, "'token' must be a string")
        client = frame.get("client", "")
        return Hello(rid, _field(frame, "protocol", int, "an integer"), str(client), token)
    if op == "call":
        args = frame.get("args", [])
        kwargs = frame.get("kwargs", {})
        timeout = frame.get("timeout")
        if not isinstance(args, list):
            raise ApiError(ErrorCode.BAD_REQUEST, "'args' must be an array")
        if not isinstance(kwargs, dict):
            raise ApiError(ErrorCode.BAD_REQUEST, "'kwargs' must be a map")
        if timeout is not None and (
            not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0
        ):
            raise ApiError(ErrorCode.BAD_REQUEST, "'timeout' must be a positive number")
        return Call(
            rid,
            _field(frame, "path", str, "an actor path"),
            _field(frame, "method", str, "a method name"),
            tuple(args),
            kwargs,
            None if timeout is None else float(timeout),
        )
    if op == "subscribe":
        return Subscribe(rid, _field(frame, "topic", str, "a topic pattern"))
    if op == "unsubscribe":
        return Unsubscribe(rid, _field(frame, "subscription", int, "a subscription id"))
    raise ApiError(ErrorCode.UNKNOWN_OP, f"unknown op {op!r}; valid: {', '.join(_OPS)}")


# --- the client's side --------------------------------------------------------------

CLIENT_MAX_FRAME: Final = 64 * 1024 * 1024
"""The largest frame a client reads: a reply may carry a large page of recorded events."""

LAGGED_EVENT_TOPIC: Final = "bus/lagged"
"""The topic an :class:`Event` reports a lag under (it carries no message)."""


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A message a client could not decode, in place of it: its ``tag`` (``""`` when it
    has none) and why (an unknown tag, from a newer daemon; fields that do not match
    this build's class). Nothing of its content is kept: a client never guesses at it."""

    tag: str
    reason: str


def decode_message(plain: object, limits: DecodeLimits = DEFAULT_LIMITS) -> object:
    """The message an unpacked ``[tag, field, ...]`` list encodes (an instance of its
    class in :mod:`runtime.messages`), or an :class:`Undecodable` saying why not.

    >>> decode_message(["no.such.tag", 1])
    Undecodable(tag='no.such.tag', reason="unknown message tag 'no.such.tag'")
    """
    try:
        return message_from_plain(plain, limits=limits)
    except MessageError as exc:
        tag = plain[0] if isinstance(plain, list) and plain and isinstance(plain[0], str) else ""
        return Undecodable(tag, str(exc))


@dataclass(frozen=True, slots=True)
class Event:
    """One delivery on a subscription: a message, or a note that ``lost`` were dropped.

    ``message`` is the decoded message (or :class:`Undecodable`); None for a lag report,
    whose topic is :data:`LAGGED_EVENT_TOPIC`.
    """

    subscription: int
    topic: str
    message: object
    lost: int = 0

    @property
    def lagged(self) -> bool:
        """True when this is a lag report (the client read too slowly)."""
        return self.lost > 0


def event_of(frame: dict[str, Any], limits: DecodeLimits = DEFAULT_LIMITS) -> Event:
    """The :class:`Event` an ``event`` or ``lagged`` frame carries."""
    sid = frame.get("subscription")
    sid = sid if isinstance(sid, int) and not isinstance(sid, bool) else -1
    if frame.get("op") == "lagged":
        lost = frame.get("lost")
        return Event(sid, LAGGED_EVENT_TOPIC, None, lost if isinstance(lost, int) else 0)
    return Event(sid, str(frame.get("topic", "")), decode_message(frame.get("message"), limits))


@dataclass(frozen=True, slots=True)
class Reply:
    """The daemon's reply to request ``id`` (None: to a request it could not read)."""

    id: int | None
    frame: dict[str, Any]

    def result(self) -> Any:
        """The result, or the error raised as :class:`ApiError`."""
        return reply_result(self.frame)


class ClientProtocol:
    """A client's side of one connection, without I/O.

    :meth:`frame` frames a request under an id of :meth:`next_id` (a subscription is
    named by the id of its request, so a client that registers a handler under it
    before sending sees the events that arrive with the reply); :meth:`receive` takes
    the bytes read from the socket and returns the replies and events they complete, in
    order. A frame over ``max_frame_bytes``, or one that holds no map, is skipped and
    counted in :attr:`skipped` (its request, if any, then times out); a length no frame
    can have raises :class:`ApiError` ``bad_frame``: the connection cannot be trusted.
    """

    def __init__(
        self, *, max_frame_bytes: int = CLIENT_MAX_FRAME, limits: DecodeLimits = DEFAULT_LIMITS
    ) -> None:
        self.limits = limits
        self.skipped = 0
        self._decoder = FrameDecoder(max_frame_bytes)
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        """The id of the next request."""
        return next(self._ids)

    @staticmethod
    def frame(request_id: int, payload: dict[str, Any]) -> bytes:
        """The frame of request ``payload`` under ``request_id``."""
        return encode_frame({**payload, "id": request_id})

    def receive(self, data: bytes) -> list[Reply | Event]:
        """The replies and events that ``data`` (what the socket gave) completes."""
        out: list[Reply | Event] = []
        for item in self._decoder.feed(data):
            try:
                if isinstance(item, ApiError):
                    raise item
                frame = decode_body(item, self.limits)
            except ApiError as exc:
                self.skipped += 1
                logger.warning("a frame from the daemon was skipped: %s", exc)
                continue
            if "id" not in frame and frame.get("op") in ("event", "lagged"):
                out.append(event_of(frame, self.limits))
            else:
                rid = frame.get("id")
                valid = isinstance(rid, int) and not isinstance(rid, bool)
                out.append(Reply(rid if valid else None, frame))
        return out
