"""The gateway actor: hosts the HTTP gateway (``runtime.http``) for the tree it belongs to.

Like the API actor, it runs its server in a thread of its own and resolves call paths
against its parent, the root supervisor, so an HTTP request reaches the same actors by
the same dispatch as a socket call. It gives the gateway what ``runtime`` cannot know:
how long a run spec takes (the twin spec's protocol, a scenario's waveform), how to
read an uploaded instrument file (``actors.importer``, the readers of ``hal.files``) and
the twin spec's JSON Schema for the OpenAPI document.
"""

from __future__ import annotations

import functools
import json
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pykka

from actors.api import expand_alias
from actors.importer import CHUNK_ROWS, prepare
from runtime.actor import Actor, exposed
from runtime.api.server import UrgentRoutes
from runtime.api_keys import KeyStore
from runtime.errors import GalvanaError, SupervisorError
from runtime.event_bus import EventBus
from runtime.event_store import EventStore
from runtime.http import Gateway, GatewayConfig, GatewayThread
from runtime.http.gateway import Hooks, Upload
from runtime.supervisor import SupervisorRef
from runtime.waveforms import duration

__all__ = ["GatewayActor", "estimate_duration", "read_upload", "run_spec_schema"]

logger = logging.getLogger("galvana.http")


@functools.lru_cache(maxsize=512)
def _duration_of(spec_json: str) -> float | None:
    spec = json.loads(spec_json)
    if not isinstance(spec, dict):
        return None
    if "import" in spec:
        return 0.0
    try:
        if "scenario" in spec:
            from physics.scenario import load_scenario  # noqa: PLC0415

            return float(duration(load_scenario(spec["scenario"]).waveform))
        if "model" in spec and "protocol" in spec:
            # twins pulls in torch and pyro; a daemon that ran a twin has them already.
            from twins.spec import load_twin_spec  # noqa: PLC0415

            twin = {k: v for k, v in spec.items() if k not in ("replay", "procedure", "import")}
            return float(load_twin_spec(twin).protocol.duration)
    except (GalvanaError, ValueError, TypeError, KeyError, AttributeError):
        return None
    except Exception:  # a spec the daemon refused: no estimate, never an error here
        logger.debug("no duration for a run spec", exc_info=True)
        return None
    return None


def estimate_duration(spec: object) -> float | None:
    """How long a run of ``spec`` takes (s): its protocol's duration (every cycle and
    rest) or its scenario's waveform; 0 for an import; None when unknown (a replay)."""
    try:
        key = json.dumps(spec, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return None
    return _duration_of(key)


def run_spec_schema() -> dict[str, Any]:
    """The JSON Schema of a twin spec, as ``galvana schema twin`` prints it."""
    from twins.spec import twin_spec_schema  # noqa: PLC0415 - twins imports torch

    return twin_spec_schema()


def read_upload(
    filename: str, data: bytes, meta: Mapping[str, str], name: str | None, cycles: str | None
) -> Upload:
    """An uploaded instrument file read as ``galvana import`` reads one (its format from
    its content); ``ValueError`` with one line naming the file for a bad one."""
    from hal.files.errors import FileReadError  # noqa: PLC0415
    from hal.files.spec import parse_cycles, parse_meta  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="galvana-upload-") as tmp:
        path = Path(tmp) / (Path(filename).name or "upload")
        path.write_bytes(data)
        try:
            prepared = prepare(
                path,
                meta=parse_meta(f"{k}={v}" for k, v in meta.items()),
                cycles=parse_cycles(cycles) if cycles else None,
                cycles_text=cycles,
                name=name,
            )
        except FileReadError as exc:
            raise ValueError(str(exc)) from None
    return Upload(prepared.spec, prepared.source, prepared.t, prepared.E, prepared.I)


class GatewayActor(Actor):
    """Owns the HTTP gateway's thread."""

    def __init__(
        self,
        config: GatewayConfig,
        bus: EventBus,
        store: EventStore,
        keys: Path,
        urgent: UrgentRoutes | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.bus = bus
        self.store = store
        self.keys = KeyStore(keys)
        self.urgent = urgent
        self._thread: GatewayThread | None = None
        self.urls: list[str] = []

    def on_start(self) -> None:
        link = self.link
        if link is None or link.supervisor is None:
            raise SupervisorError("the gateway actor must run under the root supervisor")
        root = SupervisorRef(link.supervisor, link.path.rsplit("/", 1)[0])

        def resolve(path: str) -> pykka.ActorRef[Any]:
            return root.resolve(expand_alias(path))

        gateway = Gateway(
            self.config,
            bus=self.bus,
            store=self.store,
            resolve=resolve,
            keys=self.keys,
            urgent=self.urgent,
            hooks=Hooks(estimate_duration, read_upload, CHUNK_ROWS, run_spec_schema),
        )
        self._thread = GatewayThread(gateway)
        self.urls = self._thread.start()
        logger.info("HTTP gateway on %s", ", ".join(self.urls))

    @exposed
    def statistics(self) -> dict[str, Any]:
        """Where the gateway listens, its open streams and calls in flight per key."""
        assert self._thread is not None
        counters = self._thread.gateway.counters
        return {
            "urls": list(self.urls),
            "streams": counters.streams,
            "calls_in_flight": sum(counters.per_key.values()),
            "estops": counters.estops,
        }

    def on_stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()

    def on_failure(self, *exc_info: object) -> None:
        self.on_stop()
