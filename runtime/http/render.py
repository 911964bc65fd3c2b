"""Messages and plain results as JSON, CSV or msgpack for HTTP clients.

JSON has no NaN and no arrays of doubles: an array becomes a list, a value that is not
finite becomes ``null``, a time its ISO 8601 string, bytes base64, and a message a map
with its ``type`` (the message's tag) beside its fields. msgpack keeps everything as
the actor message API carries it (``runtime.codec``: arrays as extension type 1,
messages as ``[tag, ...]``).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
from datetime import datetime
from typing import Any, Final

import numpy as np

from runtime.codec import pack_plain
from runtime.messages import (
    RunCreated,
    RunStateChanged,
    SampleBatch,
    SystemNote,
    TwinPrediction,
)

__all__ = [
    "CHANNELS",
    "channel_of",
    "json_bytes",
    "jsonable",
    "msgpack_bytes",
    "tag_of",
]

CHANNELS: Final = ("status", "frames", "logs", "events")
"""A run stream's channels: ``status`` (created, state changes), ``frames`` (sample
batches and the twin's predictions), ``logs`` (log lines of the run's actors),
``events`` (everything else: posteriors, drift, data issues, the simulated truth)."""


def channel_of(message: object) -> str:
    """The channel a run's recorded message belongs to (see :data:`CHANNELS`)."""
    if isinstance(message, SampleBatch | TwinPrediction):
        return "frames"
    if isinstance(message, RunStateChanged | RunCreated):
        return "status"
    if isinstance(message, SystemNote):
        return "logs"
    return "events"


def tag_of(message: object) -> str:
    """A message's tag (``run.state``); the class name for anything else."""
    return str(getattr(type(message), "__message_tag__", type(message).__name__))


def _array(value: np.ndarray[Any, Any]) -> list[Any]:
    if value.dtype.kind == "f" and not np.isfinite(value).all():
        return [x if math.isfinite(x) else None for x in value.tolist()]
    return value.tolist()  # type: ignore[no-any-return]


def jsonable(value: object) -> Any:
    """``value`` as plain JSON data (see the module docstring)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.ndarray):
        return _array(value)
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {"type": tag_of(value)}
        for field in dataclasses.fields(value):
            out[field.name] = jsonable(getattr(value, field.name))
        return out
    return str(value)


def json_bytes(value: object) -> bytes:
    """``value`` as compact UTF-8 JSON."""
    return json.dumps(jsonable(value), separators=(",", ":"), allow_nan=False).encode()


def msgpack_bytes(value: object) -> bytes:
    """``value`` as msgpack, as the actor message API encodes it."""
    return pack_plain(value)
