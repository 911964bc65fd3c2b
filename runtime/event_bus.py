"""Topic publish/subscribe between actors, with a bounded queue per subscriber.

Topics are ``/``-separated paths (``run/42/samples``, ``system/actors``). A pattern
matches a topic segment by segment; ``*`` matches one segment and a final ``**``
matches any number (zero included): ``run/*/samples``, ``system/**``.

Each subscription chooses what happens when its consumer falls behind:

- ``lossy`` (the default, for watchers such as the TUI): the oldest queued message is
  dropped; the publisher never waits. The consumer's next receive yields a
  :class:`~runtime.messages.Lagged` telling how many it lost.
- ``lossless`` (for the twin, which must see every sample): the publisher waits for
  room, which is backpressure. A publisher that cannot wait longer than ``timeout``
  gets :class:`~runtime.errors.BackpressureTimeout`; nothing is dropped.

>>> bus = EventBus()
>>> sub = bus.subscribe("run/*/samples")
>>> bus.publish("run/7/samples", "batch-0")
1
>>> sub.receive(timeout=1.0)
('run/7/samples', 'batch-0')
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from runtime.errors import BackpressureTimeout, BusError, SubscriptionClosed
from runtime.messages import Lagged

__all__ = [
    "LAGGED_TOPIC",
    "BusStatistics",
    "EventBus",
    "Subscription",
    "SubscriptionStatistics",
    "topic_matches",
]

Mode = Literal["lossy", "lossless"]

LAGGED_TOPIC = "bus/lagged"
"""The topic under which a lossy subscription reports its losses."""


def _check_topic(topic: str, *, pattern: bool) -> tuple[str, ...]:
    what = "pattern" if pattern else "topic"
    if not isinstance(topic, str) or not topic:
        raise BusError(f"{what} must be a non-empty string, got {topic!r}")
    parts = tuple(topic.split("/"))
    if any(not p for p in parts):
        raise BusError(f"{what} {topic!r} has an empty segment")
    if not pattern and any(p in ("*", "**") for p in parts):
        raise BusError(f"topic {topic!r} may not contain wildcards; only patterns may")
    if pattern and "**" in parts[:-1]:
        raise BusError(f"pattern {topic!r}: '**' is only allowed as the last segment")
    return parts


def topic_matches(pattern: str, topic: str) -> bool:
    """Whether ``topic`` matches ``pattern`` (``*`` one segment, final ``**`` the rest)."""
    return _matches(_check_topic(pattern, pattern=True), _check_topic(topic, pattern=False))


def _matches(pat: tuple[str, ...], top: tuple[str, ...]) -> bool:
    if pat and pat[-1] == "**":
        head = pat[:-1]
        return len(top) >= len(head) and all(p in ("*", t) for p, t in zip(head, top, strict=False))
    return len(pat) == len(top) and all(p in ("*", t) for p, t in zip(pat, top, strict=True))


@dataclass(frozen=True, slots=True)
class SubscriptionStatistics:
    """A subscription's counters: ``lost`` only grows for lossy ones, ``blocked_s`` for lossless."""

    pattern: str
    mode: Mode
    queued: int
    maxsize: int
    delivered: int
    lost: int
    blocked_s: float


@dataclass(frozen=True, slots=True)
class BusStatistics:
    """The bus's counters: messages published and the subscriptions open now."""

    published: int
    subscriptions: tuple[SubscriptionStatistics, ...]


class Subscription:
    """One subscriber's bounded queue. Receive from it in the consumer's thread."""

    def __init__(
        self,
        bus: EventBus,
        pattern: str,
        mode: Mode,
        maxsize: int,
        on_ready: Callable[[], None] | None,
    ) -> None:
        self.pattern = pattern
        self.mode: Mode = mode
        self.maxsize = maxsize
        self._parts = _check_topic(pattern, pattern=True)
        self._bus = bus
        self._on_ready = on_ready
        self._queue: deque[tuple[str, object]] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._closed = False
        self._unreported_loss = 0
        self._lost = 0
        self._delivered = 0
        self._blocked_s = 0.0

    def _offer(self, topic: str, msg: object, timeout: float | None) -> None:
        """Queue ``msg`` (publisher's thread); drop or wait when full, as the mode says."""
        with self._cond:
            if self._closed:
                return
            if len(self._queue) >= self.maxsize:
                if self.mode == "lossy":
                    self._queue.popleft()
                    self._unreported_loss += 1
                    self._lost += 1
                elif not self._wait_for_room(timeout):
                    return  # closed while the publisher waited
            was_empty = not self._queue and not self._unreported_loss
            self._queue.append((topic, msg))
            self._delivered += 1
            self._cond.notify()
        if was_empty and self._on_ready is not None:
            self._on_ready()

    def _wait_for_room(self, timeout: float | None) -> bool:
        """Wait (lock held) until the queue has room; False if it was closed meanwhile."""
        started = time.monotonic()
        deadline = None if timeout is None else started + timeout
        try:
            while len(self._queue) >= self.maxsize and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise BackpressureTimeout(
                        f"lossless subscriber to {self.pattern!r} has been full "
                        f"({self.maxsize} queued) for {timeout} s; nothing was dropped"
                    )
                self._cond.wait(remaining)
        finally:
            self._blocked_s += time.monotonic() - started
        return not self._closed

    def receive(self, timeout: float | None = None) -> tuple[str, object]:
        """The next ``(topic, message)``, waiting up to ``timeout`` seconds (None: forever).

        A lossy subscription that dropped messages first yields
        ``("bus/lagged", Lagged(pattern, lost))``. Raises ``TimeoutError`` when nothing
        arrived in time, :class:`SubscriptionClosed` once closed and drained.
        """
        with self._cond:
            if not self._cond.wait_for(
                lambda: self._queue or self._unreported_loss or self._closed, timeout
            ):
                raise TimeoutError(f"nothing on {self.pattern!r} within {timeout} s")
            return self._pop()

    def receive_nowait(self) -> tuple[str, object] | None:
        """The next ``(topic, message)`` if one is queued, else None."""
        with self._cond:
            if not (self._queue or self._unreported_loss or self._closed):
                return None
            return self._pop()

    def drain(self) -> list[tuple[str, object]]:
        """Everything queued now (a lag report first, when there is one), without waiting."""
        with self._cond:
            out: list[tuple[str, object]] = []
            if self._unreported_loss:
                out.append(self._lag_report())
            out.extend(self._queue)
            self._queue.clear()
            self._cond.notify_all()
            return out

    def _pop(self) -> tuple[str, object]:
        if self._unreported_loss:
            return self._lag_report()
        if self._queue:
            item = self._queue.popleft()
            self._cond.notify()  # a publisher may be waiting for room
            return item
        raise SubscriptionClosed(f"subscription to {self.pattern!r} is closed")

    def _lag_report(self) -> tuple[str, object]:
        lost, self._unreported_loss = self._unreported_loss, 0
        return LAGGED_TOPIC, Lagged(self.pattern, lost)

    @property
    def lost(self) -> int:
        """Messages dropped for this subscriber so far (always 0 for lossless ones)."""
        return self._lost

    @property
    def closed(self) -> bool:
        """Whether the subscription has been closed."""
        return self._closed

    def close(self) -> None:
        """Unsubscribe; a consumer waiting in ``receive`` wakes up once the queue is empty."""
        self._bus._remove(self)
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def statistics(self) -> SubscriptionStatistics:
        """This subscription's counters."""
        with self._cond:
            return SubscriptionStatistics(
                self.pattern,
                self.mode,
                len(self._queue),
                self.maxsize,
                self._delivered,
                self._lost,
                self._blocked_s,
            )

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    """In-process topic pub/sub. Thread-safe; publishing costs one lookup per topic."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: list[Subscription] = []
        # topic -> the subscriptions matching it; rebuilt lazily after (un)subscribe.
        self._routes: dict[str, tuple[Subscription, ...]] = {}
        self._published = 0
        self._closed = False

    def subscribe(
        self,
        pattern: str,
        *,
        mode: Mode = "lossy",
        maxsize: int = 1024,
        on_ready: Callable[[], None] | None = None,
    ) -> Subscription:
        """Subscribe to topics matching ``pattern``.

        ``maxsize`` bounds the queue. ``on_ready`` is called in the publisher's thread
        when the queue goes from empty to non-empty, so an actor can be told to drain
        it with one message per burst rather than one per event; it must not block.
        """
        if mode not in ("lossy", "lossless"):
            raise BusError(f"subscription mode {mode!r} is not one of 'lossy', 'lossless'")
        if not isinstance(maxsize, int) or maxsize < 1:
            raise BusError(f"maxsize must be a positive integer, got {maxsize!r}")
        sub = Subscription(self, pattern, mode, maxsize, on_ready)
        with self._lock:
            if self._closed:
                raise BusError("the event bus is closed")
            self._subs.append(sub)
            self._routes = {}
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)
                self._routes = {}

    def publish(self, topic: str, msg: object, *, timeout: float | None = 10.0) -> int:
        """Deliver ``msg`` to every subscription matching ``topic``; returns how many.

        Lossy subscribers never make this wait. A full lossless subscriber makes it
        wait up to ``timeout`` seconds, then raises :class:`BackpressureTimeout`.
        """
        routes = self._routes.get(topic)
        if routes is None:
            routes = self._route(topic)
        self._published += 1
        for sub in routes:
            sub._offer(topic, msg, timeout)
        return len(routes)

    def _route(self, topic: str) -> tuple[Subscription, ...]:
        parts = _check_topic(topic, pattern=False)
        with self._lock:
            routes = tuple(s for s in self._subs if _matches(s._parts, parts))
            self._routes[topic] = routes
        return routes

    def statistics(self) -> BusStatistics:
        """Counters of the bus and of each open subscription."""
        with self._lock:
            subs = tuple(self._subs)
        return BusStatistics(self._published, tuple(s.statistics() for s in subs))

    def close(self) -> None:
        """Close every subscription; later subscribes fail, later publishes reach no one."""
        with self._lock:
            self._closed = True
            subs = tuple(self._subs)
        for sub in subs:
            sub.close()
