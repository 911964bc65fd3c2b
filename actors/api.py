"""The API actor: serves the actor message API for the tree it belongs to.

It runs the trio server in a thread of its own (``runtime.api.ServerThread``) and
resolves call paths against its parent, the root supervisor. Short aliases:
``run/<id>`` for ``runs/<id>`` and ``instrument/<id>`` for ``instruments/<id>``.
"""

from __future__ import annotations

import logging
from typing import Any

import pykka

from runtime.actor import Actor, exposed
from runtime.address import estop_socket_path
from runtime.api import ApiConfig, ApiServer, ServerThread
from runtime.api.server import UrgentRoutes
from runtime.api.urgent import UrgentListener
from runtime.errors import ApiError, SupervisorError
from runtime.event_bus import EventBus
from runtime.supervisor import SupervisorRef

__all__ = ["ApiActor", "expand_alias"]

logger = logging.getLogger("galvana.api")

_ALIASES = {"run": "runs", "instrument": "instruments"}


def expand_alias(path: str) -> str:
    """``run/7`` -> ``runs/7``; other paths are left as they are."""
    head, _, rest = path.strip("/").partition("/")
    return f"{_ALIASES[head]}/{rest}" if head in _ALIASES and rest else path.strip("/")


class ApiActor(Actor):
    """Owns the API server thread."""

    def __init__(
        self,
        config: ApiConfig,
        bus: EventBus,
        info: dict[str, Any] | None = None,
        urgent: UrgentRoutes | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.bus = bus
        self.info = info or {}
        self.urgent = urgent
        self._server: ServerThread | None = None
        self._estop: UrgentListener | None = None
        self.addresses: list[str] = []

    def on_start(self) -> None:
        link = self.link
        if link is None or link.supervisor is None:
            raise SupervisorError("the API actor must run under the root supervisor")
        root = SupervisorRef(link.supervisor, link.path.rsplit("/", 1)[0])

        def resolve(path: str) -> pykka.ActorRef[Any]:
            return root.resolve(expand_alias(path))

        self._server = ServerThread(
            ApiServer(self.config, self.bus, resolve, server_info=self.info, urgent=self.urgent)
        )
        self.addresses = self._server.start()
        # The stop also gets a socket of its own, outside the server's event loop, so a
        # burst of connections being set up there cannot delay it (runtime.api.urgent).
        estop = (self.urgent or {}).get(("instruments", "estop"))
        if estop is not None and self.config.socket_path is not None:
            listener = UrgentListener(
                estop_socket_path(self.config.socket_path),
                {("instruments", "estop"): estop},
                self.info,
            )
            try:
                logger.info("emergency stop served on %s", listener.start())
                self._estop = listener
            except (ApiError, OSError) as exc:
                # The API socket still serves the stop (its reserved threads and slots).
                logger.warning("no emergency-stop socket of its own: %s", exc)

    def shut_down(self) -> None:
        """The daemon is stopping: answer the calls in flight, and every call from now on,
        with ``unavailable``; subscriptions keep delivering until the server stops."""
        if self._server is not None:
            self._server.shut_down()

    @exposed
    def statistics(self) -> dict[str, int]:
        """The server's connections, calls and threads now (``ApiServer.statistics``)."""
        assert self._server is not None
        return self._server.server.statistics()

    def on_stop(self) -> None:
        if self._estop is not None:
            self._estop.close()
            self._estop = None
        if self._server is not None:
            self._server.stop()

    def on_failure(self, *exc_info: object) -> None:
        self.on_stop()
