"""Every exception the runtime raises, in one hierarchy.

Messages name what was wrong (the field, the value) and what would be accepted.
"""

from __future__ import annotations

__all__ = [
    "ApiError",
    "BackpressureTimeout",
    "BusError",
    "CallError",
    "ChildStartError",
    "ClientTimeout",
    "ConnectionLost",
    "EventStoreError",
    "ExecutorError",
    "FieldStoreError",
    "GalvanaError",
    "KeyStoreError",
    "MessageError",
    "RestartIntensityError",
    "SubscriptionClosed",
    "SupervisorError",
    "SupervisorSpecError",
    "TaskFailed",
    "TokenError",
    "WaveformError",
]


class GalvanaError(Exception):
    """Base class of every error Galvana raises on purpose."""


class MessageError(GalvanaError, ValueError):
    """An encoded message is malformed, oversized or does not match its type.

    ``field`` names the offending field (``"<frame>"`` for the envelope itself).
    """

    def __init__(self, message: str, *, field: str = "<frame>") -> None:
        super().__init__(message)
        self.field = field


class WaveformError(GalvanaError, ValueError):
    """A waveform (:mod:`runtime.waveforms`) is malformed: ``field`` names the offending
    field (``"cv.scan_rate"``, ``"piecewise.points[2].t"``) and ``reason`` says what it
    got and what is accepted."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class CallError(GalvanaError):
    """An ask was refused: the caller receives this error and the actor carries on.

    This is OTP's ``{reply, {error, Reason}}``: bad requests are answered, not crashed
    on. ``code`` is a short machine-readable word (``not_found``, ``bad_request``,
    ``conflict``, ...) that the API passes on to clients.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class SupervisorSpecError(GalvanaError, ValueError):
    """A supervisor or child specification is invalid (unknown strategy, bad timeout, ...)."""


class SupervisorError(GalvanaError):
    """A supervisor could not do what it was asked (start a child, find a child, ...)."""


class ChildStartError(SupervisorError):
    """A child failed in ``on_start`` while its supervisor was starting it."""


class RestartIntensityError(SupervisorError):
    """More than ``max_restarts`` restarts within ``max_seconds``: the supervisor gave up."""


class BusError(GalvanaError):
    """Base class of event-bus errors."""


class BackpressureTimeout(BusError):
    """A lossless subscriber stayed full for longer than the publisher was willing to wait."""


class SubscriptionClosed(BusError):
    """The subscription was closed (unsubscribed, or its bus shut down)."""


class EventStoreError(GalvanaError):
    """The event store cannot be opened, written or read (corrupt file, disk full, closed)."""


class FieldStoreError(GalvanaError):
    """The field store cannot create, append to or read an array."""


class ApiError(GalvanaError):
    """An API request failed; ``code`` says how (see ``runtime.api.protocol.ErrorCode``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class ConnectionLost(ApiError):
    """The connection to the daemon closed or could not be opened."""

    def __init__(self, message: str) -> None:
        super().__init__("connection", message)


class ClientTimeout(ApiError, TimeoutError):
    """The daemon did not answer a client in time (code ``timeout``)."""

    def __init__(self, message: str) -> None:
        super().__init__("timeout", message)


class TokenError(GalvanaError):
    """A token cannot be used: its file is readable by others, missing, or empty; or it
    was given on the command line."""


class ExecutorError(GalvanaError):
    """An ensemble could not run on its executor: a bad executor setting, Ray missing or
    unreachable, the cluster lost mid-way, a worker that kept dying."""


class TaskFailed(ExecutorError):
    """A task of an ensemble raised; ``kind`` is the name of what it raised (the task's
    own exception does not cross processes: its class may not unpickle there)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class KeyStoreError(GalvanaError):
    """The API key file cannot be read or written, or a key operation is refused (an
    unknown key id, a bad scope or name)."""
