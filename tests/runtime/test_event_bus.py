"""Topic pub/sub: lossy subscribers lose and are told; lossless ones lose nothing and push back."""

from __future__ import annotations

import threading

import pytest

from runtime.errors import BackpressureTimeout, BusError, SubscriptionClosed
from runtime.event_bus import LAGGED_TOPIC, EventBus, Subscription, topic_matches
from runtime.messages import Lagged

from ._actors import wait_until


@pytest.mark.parametrize(
    ("pattern", "topic", "hit"),
    [
        ("run/*/samples", "run/42/samples", True),
        ("run/*/samples", "run/42/twin", False),
        ("run/*/samples", "run/42/samples/x", False),
        ("system/**", "system", True),
        ("system/**", "system/actors", True),
        ("system/**", "system/actors/root", True),
        ("system/**", "run/1", False),
        ("**", "anything/at/all", True),
        ("system/actors", "system/actors", True),
    ],
)
def test_topic_patterns(pattern: str, topic: str, hit: bool) -> None:
    assert topic_matches(pattern, topic) is hit


def test_bad_topics_and_options_are_refused() -> None:
    bus = EventBus()
    with pytest.raises(BusError, match="empty segment"):
        bus.subscribe("run//samples")
    with pytest.raises(BusError, match="only allowed as the last segment"):
        bus.subscribe("**/x")
    with pytest.raises(BusError, match="may not contain wildcards"):
        bus.publish("run/*/samples", 1)
    with pytest.raises(BusError, match="mode 'sometimes' is not one of"):
        bus.subscribe("x", mode="sometimes")  # type: ignore[arg-type]
    with pytest.raises(BusError, match="maxsize must be a positive integer"):
        bus.subscribe("x", maxsize=0)


def test_delivery_follows_patterns_and_order() -> None:
    bus = EventBus()
    run7 = bus.subscribe("run/7/**")
    samples = bus.subscribe("run/*/samples")
    for i in range(5):
        bus.publish("run/7/samples", i)
        bus.publish("run/8/samples", 10 + i)
    bus.publish("run/7/state", "paused")
    assert [m for _, m in run7.drain()] == [0, 1, 2, 3, 4, "paused"]
    assert [m for _, m in samples.drain()] == [0, 10, 1, 11, 2, 12, 3, 13, 4, 14]


def test_lossy_slow_subscriber_never_blocks_and_is_told_what_it_lost() -> None:
    bus = EventBus()
    slow = bus.subscribe("t", mode="lossy", maxsize=10)
    fast = bus.subscribe("t", mode="lossless", maxsize=100_000)
    for i in range(10_000):
        bus.publish("t", i, timeout=0)  # a wait of any length would raise here
    first = slow.receive(timeout=1)
    assert first == (LAGGED_TOPIC, Lagged("t", 9_990))
    kept = [m for _, m in slow.drain()]
    assert kept == list(range(9_990, 10_000))  # the newest are kept
    assert slow.lost == 9_990
    assert [m for _, m in fast.drain()] == list(range(10_000))
    # A later burst is reported separately.
    for i in range(25):
        bus.publish("t", i)
    assert slow.receive(timeout=1) == (LAGGED_TOPIC, Lagged("t", 15))
    assert slow.statistics().lost == 9_990 + 15


def _waiting(sub: Subscription) -> int:
    """Threads waiting on the subscription's condition (CPython's Condition keeps them in
    ``_waiters``): the only way to know, without a sleep, that a thread is blocked in it."""
    return len(sub._cond._waiters)  # type: ignore[attr-defined]


def test_lossless_subscriber_loses_nothing_and_slows_the_publisher() -> None:
    bus = EventBus()
    sub = bus.subscribe("run/1/samples", mode="lossless", maxsize=8)
    published: list[int] = []

    def publish() -> None:
        for i in range(500):
            bus.publish("run/1/samples", i, timeout=30)
            published.append(i)

    publisher = threading.Thread(target=publish)
    publisher.start()
    # Nobody consumes yet: the publisher fills the queue and then waits for room.
    wait_until(lambda: _waiting(sub) == 1, what="the publisher to wait for room")
    assert published == list(range(8))
    assert sub.statistics().queued == 8
    received = [sub.receive(timeout=30)[1] for _ in range(500)]
    publisher.join(timeout=30)
    assert not publisher.is_alive()
    assert received == list(range(500))
    stats = sub.statistics()
    assert stats.lost == 0
    assert stats.delivered == 500
    assert stats.blocked_s > 0  # the publisher really waited: backpressure


def test_lossless_backpressure_times_out_without_dropping() -> None:
    bus = EventBus()
    sub = bus.subscribe("t", mode="lossless", maxsize=3)
    for i in range(3):
        bus.publish("t", i)
    with pytest.raises(
        BackpressureTimeout, match="full \\(3 queued\\) for 0.05 s; nothing was dropped"
    ):
        bus.publish("t", 3, timeout=0.05)
    assert [m for _, m in sub.drain()] == [0, 1, 2]


def test_on_ready_fires_once_per_burst() -> None:
    bus = EventBus()
    calls: list[int] = []
    sub = bus.subscribe("t", on_ready=lambda: calls.append(1))
    for i in range(10):
        bus.publish("t", i)
    assert len(calls) == 1
    sub.drain()
    bus.publish("t", 99)
    assert len(calls) == 2


def test_close_wakes_a_waiting_consumer() -> None:
    bus = EventBus()
    sub = bus.subscribe("t")
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            sub.receive(timeout=10)
        except SubscriptionClosed as exc:
            errors.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    wait_until(lambda: _waiting(sub) == 1, what="the consumer to wait in receive")
    sub.close()
    waiter.join(timeout=5)
    assert len(errors) == 1
    assert bus.publish("t", 1) == 0
    with pytest.raises(TimeoutError):
        bus.subscribe("u").receive(timeout=0.01)
