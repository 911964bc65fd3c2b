"""The HTTP gateway's errors, and how the actor message API's error codes read as HTTP.

Every error answer is JSON: ``{"error": {"code", "message", "field"?}}`` with the
status below; ``code`` is the API's (``bad_request``, ``not_found``, ``refused``, ...)
so a client may act on it whatever the transport. No traceback ever reaches a client.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

import msgspec

from runtime.errors import ApiError, GalvanaError

__all__ = ["RETRY_AFTER_S", "STATUS_OF_CODE", "HttpError", "http_error_of", "validation_field"]

STATUS_OF_CODE: Final[Mapping[str, int]] = {
    "bad_request": 400,
    "bad_frame": 400,
    "unknown_op": 400,
    "unauthorized": 403,  # a known key without the scope (no key at all is a 401)
    "forbidden": 403,  # a path outside the daemon's directories
    "not_found": 404,
    "conflict": 409,  # a run that cannot make that transition, a duplicate import
    "refused": 409,  # the instrument's limits or its latched interlock forbid the run
    "too_large": 413,
    "limit": 422,  # what a run spec implies exceeds the daemon's run_limits
    "failed": 500,  # a run that could not start
    "internal": 500,
    "unavailable": 503,  # an actor restarting, the recorder not running
    "busy": 503,  # the instrument is in use by another run, too many calls in flight
    "timeout": 504,
}
"""The HTTP status of each API error code (anything else: 500)."""

RETRY_AFTER_S: Final = 1
"""What ``Retry-After`` says on a 503: actors restart and calls finish within seconds."""

# A bad_request names what was wrong first: `runs.events: argument 'limit' is ...`,
# `twin spec: protocol[0].scan_rate: ...`, `model: kinetics.k0: ...`.
_ARGUMENT = re.compile(r"argument '([^']+)'")
# msgspec says where (`- at `$.a.b[0]``) and, for a field missing or unknown, which.
_AT = re.compile(r" - at `\$\.?([^`]*)`$")
_NAMED = re.compile(r"(?:missing required|unknown) field `([^`]*)`")
_KEY_PATH = re.compile(r"^(?:[\w .-]+: )?([A-Za-z_][\w]*(?:(?:\.[\w]+)|(?:\[\d+\]))+): ")


class HttpError(GalvanaError):
    """An answer other than success: ``status``, the API ``code``, a one-line message,
    the ``field`` at fault (a parameter or a key path) when known, and extra headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.field = field
        self.headers = dict(headers or {})
        if status == 503 and "Retry-After" not in self.headers:
            self.headers["Retry-After"] = str(RETRY_AFTER_S)

    def body(self) -> dict[str, object]:
        """The JSON body of the answer."""
        error: dict[str, object] = {"code": self.code, "message": str(self)}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}


def _field_of(message: str) -> str | None:
    found = _ARGUMENT.search(message)
    if found:
        return found.group(1)
    found = _KEY_PATH.match(message)
    return found.group(1) if found else None


def validation_field(exc: msgspec.ValidationError) -> str | None:
    """The path of the field a query or body failed on (``k.child``, ``items[2]``), from
    msgspec's message; None when it names none (the whole value was of the wrong kind).

    >>> class Kill(msgspec.Struct):
    ...     path: str
    ...     child: str
    >>> try:
    ...     msgspec.convert([{"path": "runs", "child": "r1"}, {"path": "runs"}], list[Kill])
    ... except msgspec.ValidationError as exc:
    ...     validation_field(exc)
    '[1].child'
    """
    text = str(exc)
    at = _AT.search(text)
    where = at.group(1) if at else ""
    named = _NAMED.search(text)
    if named is not None:
        return f"{where}.{named.group(1)}" if where else named.group(1)
    return where or None


def http_error_of(exc: ApiError) -> HttpError:
    """The HTTP answer to an error of the actor message API."""
    status = STATUS_OF_CODE.get(exc.code, 500)
    field = _field_of(str(exc)) if status == 400 else None
    return HttpError(status, exc.code, str(exc), field=field)
