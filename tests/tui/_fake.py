"""A stand-in daemon link for screen and snapshot tests: canned answers, published events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runtime.client import Event
from runtime.errors import ApiError
from tui import ConnectionStatus, StandingSubscription
from tui._connection import EventHandler


def topic_matches(pattern: str, topic: str) -> bool:
    """The bus's pattern rule: ``*`` is one segment, a final ``**`` any number."""
    want, have = pattern.split("/"), topic.split("/")
    for k, part in enumerate(want):
        if part == "**":
            return True
        if k >= len(have) or (part != "*" and part != have[k]):
            return False
    return len(want) == len(have)


class FakeLink:
    """Answers calls from ``answers[(path, method)]`` (a value, or a function of the
    arguments, or an ApiError to raise) and delivers what tests :meth:`publish`."""

    def __init__(self, answers: dict[tuple[str, str], Any] | None = None) -> None:
        self.answers: dict[tuple[str, str], Any] = dict(answers or {})
        self.calls: list[tuple[str, str, tuple[Any, ...], dict[str, Any]]] = []
        self.subscriptions: list[StandingSubscription] = []
        self._status = ConnectionStatus("connected", "unix:/fake/galvana.sock")

    @property
    def status(self) -> ConnectionStatus:
        return self._status

    def set_status(self, status: ConnectionStatus, app: Any) -> None:
        self._status = status
        app.connection_status = status

    async def call(
        self, path: str, method: str, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        self.calls.append((path, method, args, kwargs))
        if not self._status.connected:
            raise ApiError("connection", "not connected")
        answer = self.answers.get((path, method))
        if answer is None:
            raise ApiError("not_found", f"no answer for {path} {method}")
        if isinstance(answer, ApiError):
            raise answer
        if isinstance(answer, Callable):  # type: ignore[arg-type]
            return answer(*args, **kwargs)
        return answer

    def subscribe(self, topic: str, handler: EventHandler) -> StandingSubscription:
        sub = StandingSubscription(topic, handler)
        self.subscriptions.append(sub)
        return sub

    def unsubscribe(self, subscription: StandingSubscription) -> None:
        subscription.active = False
        if subscription in self.subscriptions:
            self.subscriptions.remove(subscription)

    def retry_now(self) -> None:
        pass

    def publish(self, topic: str, message: object) -> None:
        for sub in list(self.subscriptions):
            if sub.active and topic_matches(sub.topic, topic):
                sub.handler(Event(0, topic, message))

    def lag(self, pattern: str, lost: int) -> None:
        for sub in list(self.subscriptions):
            if sub.active and sub.topic == pattern:
                sub.handler(Event(0, "bus/lagged", None, lost))


def handler_of(answers: Callable[..., Any]) -> Callable[..., Any]:
    return answers
