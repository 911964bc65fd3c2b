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
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Any, Final

from runtime.codec import DecodeLimits, pack_plain, unpack_plain
from runtime.errors import ApiError, MessageError

__all__ = [
    "HARD_FRAME_LIMIT",
    "HEADER",
    "PROTOCOL_VERSION",
    "Call",
    "ErrorCode",
    "FrameDecoder",
    "Hello",
    "Request",
    "Subscribe",
    "Unsubscribe",
    "call_request",
    "encode_frame",
    "error_reply",
    "ok_reply",
    "parse_request",
    "reply_result",
]

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
