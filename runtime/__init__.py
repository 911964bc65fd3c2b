"""Galvana's runtime: supervised actors, the message codec, the event bus and the stores.

Public names are importable from here; each is loaded on first use, so importing one
piece (``runtime.messages`` in the FEniCSx worker's parent, say) does not pull in the
others.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Actor",
    "Backoff",
    "BackpressureTimeout",
    "ChildSpec",
    "EventBus",
    "GalvanaError",
    "MessageError",
    "Restart",
    "Strategy",
    "Subscription",
    "SupervisorError",
    "SupervisorRef",
    "SupervisorSpec",
    "SupervisorSpecError",
    "decode",
    "encode",
    "message",
    "start_supervisor",
    "supervisor_child",
]

_HOMES = {
    "Actor": "runtime.actor",
    "BackpressureTimeout": "runtime.errors",
    "Backoff": "runtime.supervisor",
    "ChildSpec": "runtime.supervisor",
    "EventBus": "runtime.event_bus",
    "GalvanaError": "runtime.errors",
    "MessageError": "runtime.errors",
    "Restart": "runtime.supervisor",
    "Strategy": "runtime.supervisor",
    "Subscription": "runtime.event_bus",
    "SupervisorError": "runtime.errors",
    "SupervisorRef": "runtime.supervisor",
    "SupervisorSpec": "runtime.supervisor",
    "SupervisorSpecError": "runtime.errors",
    "decode": "runtime.codec",
    "encode": "runtime.codec",
    "message": "runtime.codec",
    "start_supervisor": "runtime.supervisor",
    "supervisor_child": "runtime.supervisor",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'runtime' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
