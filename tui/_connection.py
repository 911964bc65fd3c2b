"""The TUI's link to the daemon: :class:`runtime.client.AsyncClient`, kept connected.

The async client (anyio, here on the asyncio loop Textual runs) frames, matches
replies and decodes events; this module adds what a screen needs on top: the link's
state in words for the banner, subscriptions that outlive a connection (each is sent
again after a reconnect), and the reconnection itself, paced by the runtime's one
backoff (:class:`runtime.supervisor.Backoff`).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

import anyio
import anyio.abc

from runtime.client import Address, AsyncClient, Event, EventHandler
from runtime.errors import ApiError, ConnectionLost
from runtime.supervisor import Backoff

__all__ = [
    "RECONNECT_BACKOFF",
    "Address",
    "Connection",
    "ConnectionState",
    "ConnectionStatus",
    "DaemonLink",
    "EventHandler",
    "StandingSubscription",
]

logger = logging.getLogger("galvana.tui")

RECONNECT_BACKOFF: Final = Backoff(initial_s=2.0, max_s=10.0, factor=2.0, jitter=0.1)
"""How long the TUI waits before each attempt after a failed one: 2 s, doubling up to
10 s (a little jitter, so that several TUIs do not all knock at once after a daemon
restart); the count starts again after a connection succeeded."""

HELLO_TIMEOUT_S: Final = 10.0

ConnectionState = Literal["connecting", "connected", "down"]
"""``connecting``: a first attempt or a retry is under way; ``connected``: the daemon
said hello; ``down``: the last attempt failed (or the link broke), a retry is due."""


@dataclass(frozen=True, slots=True)
class ConnectionStatus:
    """Where the connection stands, in words a person can act on."""

    state: ConnectionState
    address: str
    message: str = ""
    attempt: int = 0
    retry_in_s: float = 0.0

    @property
    def connected(self) -> bool:
        """True while requests can be sent."""
        return self.state == "connected"


@dataclass(eq=False)
class StandingSubscription:
    """A subscription the TUI holds; it survives reconnects (it is re-sent each time)."""

    topic: str
    handler: EventHandler
    server_id: int | None = None
    active: bool = field(default=True)

    def deliver(self, event: Event) -> None:
        """Hand ``event`` to the handler, unless the subscription was ended meanwhile."""
        if self.active:
            self.handler(event)


class DaemonLink(Protocol):
    """What the screens need of a daemon connection (a fake one stands in for tests)."""

    @property
    def status(self) -> ConnectionStatus:
        """The connection's state now."""

    async def call(
        self, path: str, method: str, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        """Call an exposed actor method; raises ApiError, or ConnectionLost when down."""

    def subscribe(self, topic: str, handler: EventHandler) -> StandingSubscription:
        """Deliver the events of ``topic`` (a pattern) to ``handler``, now and after reconnects."""

    def unsubscribe(self, subscription: StandingSubscription) -> None:
        """Stop delivering a subscription's events."""

    def retry_now(self) -> None:
        """Skip the wait before the next connection attempt."""


class Connection:
    """One connection to the daemon, re-established whenever it breaks.

    Start :meth:`run` as a task; it connects, says hello, re-sends every
    subscription and then serves until the link breaks, and tries again after the
    :data:`RECONNECT_BACKOFF` delay. ``on_status`` hears every change of :attr:`status`.
    """

    def __init__(
        self,
        address: Address,
        *,
        name: str = "galvana-tui",
        on_status: Callable[[ConnectionStatus], None] | None = None,
        backoff: Backoff = RECONNECT_BACKOFF,
        call_timeout_s: float = 30.0,
    ) -> None:
        self.address = address
        self.where = address.describe()
        self.name = name
        self.backoff = backoff
        self.call_timeout_s = call_timeout_s
        self.server_info: dict[str, Any] = {}
        self._on_status = on_status
        self._status = ConnectionStatus("connecting", self.where)
        self._subscriptions: list[StandingSubscription] = []
        self._client: AsyncClient | None = None
        self._tasks: anyio.abc.TaskGroup | None = None
        self._retry: anyio.Event | None = None  # made on the loop: anyio needs one running
        self._rng = random.Random()

    # --- state --------------------------------------------------------------------------

    @property
    def status(self) -> ConnectionStatus:
        """The connection's state now."""
        return self._status

    def _set_status(self, status: ConnectionStatus) -> None:
        self._status = status
        if self._on_status is not None:
            self._on_status(status)

    def retry_now(self) -> None:
        """Skip the wait before the next connection attempt."""
        if self._retry is not None:
            self._retry.set()

    # --- the connection loop ----------------------------------------------------------

    async def run(self) -> None:
        """Connect, serve, and reconnect after every break, until cancelled."""
        failures = 0
        while True:
            # A retry keeps saying why the last attempt failed: the banner stays put.
            why = self._status.message if self._status.state == "down" else ""
            self._set_status(ConnectionStatus("connecting", self.where, why, failures + 1))
            try:
                async with AsyncClient.connect(
                    self.address,
                    name=self.name,
                    timeout=self.call_timeout_s,
                    connect_timeout=HELLO_TIMEOUT_S,
                ) as client:
                    failures = 0
                    why = await self._serve(client)
            except ApiError as exc:
                failures += 1
                why = self._failure(exc)
            delay = self.backoff.delay(max(failures, 1), self._rng)
            self._set_status(ConnectionStatus("down", self.where, why, failures, delay))
            retry = self._retry = anyio.Event()
            with anyio.move_on_after(delay):
                await retry.wait()

    def _failure(self, exc: ApiError) -> str:
        """Why an attempt failed, and what to do about it."""
        if exc.code == "unauthorized":
            return (
                f"the daemon at {self.where} refused this client: {exc}; "
                "give its token with --token-file FILE (or $GALVANA_TOKEN)"
            )
        if exc.code == "timeout":
            return f"the daemon at {self.where} did not answer hello within {HELLO_TIMEOUT_S:g} s"
        if isinstance(exc, ConnectionLost):
            return str(exc)
        return f"the daemon at {self.where} refused the connection: {exc}"

    async def _serve(self, client: AsyncClient) -> str:
        """Subscribe everything again and serve until the link breaks; returns why it did."""
        self.server_info = client.server_info
        try:
            async with anyio.create_task_group() as tasks:
                self._client, self._tasks = client, tasks
                self._set_status(ConnectionStatus("connected", self.where))
                for sub in list(self._subscriptions):
                    tasks.start_soon(self._send_subscribe, client, sub)
                why = await client.wait_closed()
                tasks.cancel_scope.cancel()
        finally:
            self._client = self._tasks = None
            for sub in self._subscriptions:
                sub.server_id = None
        return why

    # --- requests -----------------------------------------------------------------------

    async def call(
        self, path: str, method: str, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        """Call ``method`` of the actor at ``path`` with plain-data arguments."""
        client = self._client
        if client is None:
            raise ConnectionLost(
                f"not connected to the daemon at {self.where}: "
                f"{self._status.message or 'connecting'}"
            )
        return await client.call(path, method, *args, timeout=timeout, **kwargs)

    # --- subscriptions ------------------------------------------------------------------

    def subscribe(self, topic: str, handler: EventHandler) -> StandingSubscription:
        """Deliver the events of ``topic`` to ``handler``, now and after every reconnect."""
        sub = StandingSubscription(topic, handler)
        self._subscriptions.append(sub)
        if self._client is not None and self._tasks is not None:
            self._tasks.start_soon(self._send_subscribe, self._client, sub)
        return sub

    async def _send_subscribe(self, client: AsyncClient, sub: StandingSubscription) -> None:
        try:
            sub.server_id = await client.subscribe(sub.topic, sub.deliver, timeout=10.0)
        except ApiError as exc:
            logger.warning("could not subscribe to %s: %s", sub.topic, exc)
            return
        if not sub.active:  # unsubscribed while the request was under way
            await self._send_unsubscribe(client, sub.server_id)

    def unsubscribe(self, subscription: StandingSubscription) -> None:
        """Stop delivering a subscription's events (and tell the daemon)."""
        subscription.active = False
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
        server_id, subscription.server_id = subscription.server_id, None
        if server_id is not None and self._client is not None and self._tasks is not None:
            self._tasks.start_soon(self._send_unsubscribe, self._client, server_id)

    @staticmethod
    async def _send_unsubscribe(client: AsyncClient, server_id: int) -> None:
        try:
            await client.unsubscribe(server_id, timeout=10.0)
        except ApiError as exc:  # the link broke meanwhile: the subscription went with it
            logger.debug("unsubscribe %d: %s", server_id, exc)
