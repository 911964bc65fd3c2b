"""Answering later and asking without waiting (OTP's ``{noreply}``).

A front actor asks a back actor that the test holds busy on an Event: the front actor
keeps answering its other messages meanwhile, and its first caller gets the back
actor's answer once the test lets it go.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from runtime import topics
from runtime.actor import Actor, exposed
from runtime.errors import CallError
from runtime.event_bus import EventBus
from runtime.messages import ActorExited, ApiCall
from runtime.supervisor import ChildSpec, Supervisor, SupervisorSpec, start_supervisor

HANG_GUARD_S = 30.0  # a failing test ends here instead of hanging; nothing waits this long


@pytest.fixture(autouse=True)
def _no_actor_left() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all(timeout=20)


class Back(Actor):
    """Answers ``work`` once the test sets ``release``; ``entered`` says it is busy."""

    def __init__(self, entered: threading.Event, release: threading.Event) -> None:
        super().__init__()
        self.entered = entered
        self.release = release

    @exposed
    def work(self, x: int) -> int:
        self.entered.set()
        self.release.wait(HANG_GUARD_S)
        if x < 0:
            raise CallError("bad_request", f"x must be >= 0, got {x}")
        return 2 * x


class Front(Actor):
    """Relays ``work`` to the back actor without waiting for it; answers ``ping`` at once."""

    def __init__(self, back: pykka.ActorRef[Any]) -> None:
        super().__init__()
        self.back = back
        self.outcomes: list[object] = []

    @exposed
    def work(self, x: int, timeout: float | None = None) -> None:
        reply = self.reply_later()

        def answered(outcome: object) -> None:
            self.outcomes.append(outcome)
            if isinstance(outcome, BaseException):
                reply.fail(outcome)
            else:
                reply.send({"doubled": outcome})

        self.ask_later(self.back, ApiCall("work", (x,), {}), answered, timeout=timeout)

    @exposed
    def ping(self) -> str:
        return "pong"

    @exposed
    def broken(self) -> None:
        self.reply_later()
        raise CallError("conflict", "refused after taking the reply")

    @exposed
    def seen(self) -> list[str]:
        return [type(o).__name__ for o in self.outcomes]


def call(ref: pykka.ActorRef[Any], method: str, *args: Any) -> Any:
    return ref.ask(ApiCall(method, args, {}), block=False)


def test_an_actor_answers_others_while_the_actor_it_asked_is_busy() -> None:
    entered, release = threading.Event(), threading.Event()
    back = Back.start(entered, release)
    front = Front.start(back)
    pending = call(front, "work", 21)
    assert entered.wait(HANG_GUARD_S)  # the back actor is busy with the front's question
    assert call(front, "ping").get(timeout=HANG_GUARD_S) == "pong"
    release.set()
    assert pending.get(timeout=HANG_GUARD_S) == {"doubled": 42}


def test_the_asked_actor_refusing_reaches_the_first_caller() -> None:
    release = threading.Event()
    release.set()
    front = Front.start(Back.start(threading.Event(), release))
    with pytest.raises(CallError, match="x must be >= 0, got -1"):
        call(front, "work", -1).get(timeout=HANG_GUARD_S)
    assert call(front, "ping").get(timeout=HANG_GUARD_S) == "pong"  # the front carries on


def test_an_asked_actor_that_is_gone_or_too_slow_is_an_outcome() -> None:
    entered, release = threading.Event(), threading.Event()
    back = Back.start(entered, release)
    front = Front.start(back)
    with pytest.raises(pykka.Timeout):
        call(front, "work", 1, 0.05).get(timeout=HANG_GUARD_S)
    release.set()
    # The late answer of the question that timed out is dropped: one outcome per question.
    assert call(front, "work", 2).get(timeout=HANG_GUARD_S) == {"doubled": 4}
    assert call(front, "seen").get(timeout=HANG_GUARD_S) == ["Timeout", "int"]
    back.stop()
    with pytest.raises(pykka.ActorDeadError):
        call(front, "work", 3).get(timeout=HANG_GUARD_S)


def test_a_handler_that_raises_after_taking_the_reply_still_answers() -> None:
    front = Front.start(Back.start(threading.Event(), threading.Event()))
    with pytest.raises(CallError, match="refused after taking the reply"):
        call(front, "broken").get(timeout=HANG_GUARD_S)
    assert call(front, "ping").get(timeout=HANG_GUARD_S) == "pong"


class BusySupervisor(Supervisor):
    """A supervisor the test can hold busy (``hold``) until it sets ``release``."""

    def __init__(
        self, spec: SupervisorSpec, *, entered: threading.Event, release: threading.Event
    ) -> None:
        super().__init__(spec)
        self.entered = entered
        self.release = release

    @exposed
    def hold(self) -> None:
        self.entered.set()
        self.release.wait(HANG_GUARD_S)


def test_tree_does_not_wait_for_a_busy_child_supervisor() -> None:
    entered, release = threading.Event(), threading.Event()
    inner = SupervisorSpec(children=(ChildSpec("leaf", Back, (entered, threading.Event())),))
    events = {"entered": entered, "release": release}
    busy = ChildSpec("inner", BusySupervisor, (inner,), events, shutdown_s=None)
    root = start_supervisor(SupervisorSpec(children=(busy,)))
    root.child_ref("inner").ask(ApiCall("hold", (), {}), block=False)
    assert entered.wait(HANG_GUARD_S)
    tree = root.actor_ref.ask(ApiCall("tree", (), {}), block=False)
    # The root answers meanwhile: its tree() asked the busy supervisor and moved on.
    assert [c.id for c in root.which_children(timeout=HANG_GUARD_S)] == ["inner"]
    release.set()
    (node,) = tree.get(timeout=HANG_GUARD_S)
    assert (node["id"], [c["id"] for c in node["children"]]) == ("inner", ["leaf"])
    root.stop()


class _Niced(Actor):
    niceness = 7

    @exposed
    def nice(self) -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_a_compute_actor_runs_at_a_lower_priority_than_the_process() -> None:
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    ref = _Niced.start()
    try:
        assert ref.proxy().nice().get(timeout=10) == min(mine + 7, 19)
    finally:
        ref.stop()
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine  # ours unchanged
    assert Actor.niceness == 0  # an actor is not lowered unless it says so


# --- drained subscriptions ----------------------------------------------------------------


class Gatherer(Actor):
    """Takes what its drained subscription holds; ``got`` is set once ``want`` arrived."""

    def __init__(self, bus: EventBus, want: int, got: threading.Event) -> None:
        super().__init__()
        self.bus, self.want, self.got = bus, want, got
        self.taken: list[object] = []
        self.drains = 0

    def on_start(self) -> None:
        self.sub = self.subscribe_drained(self.bus, "lab/*")

    def on_drain(self) -> None:
        self.drains += 1
        self.taken += [message for _, message in self.sub.drain()]
        if len(self.taken) >= self.want:
            self.got.set()

    @exposed
    def seen(self) -> tuple[list[object], int]:
        return self.taken, self.drains


class GatheringSupervisor(Supervisor):
    """A supervisor with a drained subscription of its own (as the runs supervisor)."""

    def __init__(self, bus: EventBus, want: int, got: threading.Event) -> None:
        super().__init__(SupervisorSpec(children=()))
        self.lab_bus, self.want, self.got = bus, want, got
        self.taken: list[object] = []
        self.drains = 0

    def on_start(self) -> None:
        super().on_start()
        self.sub = self.subscribe_drained(self.lab_bus, "lab/*")

    on_drain = Gatherer.on_drain
    seen = Gatherer.seen


@pytest.mark.parametrize("kind", ["actor", "supervisor"])
def test_a_drained_subscription_wakes_its_actor_and_loses_nothing(kind: str) -> None:
    bus, got = EventBus(), threading.Event()
    kinds: dict[str, type[Gatherer | GatheringSupervisor]] = {
        "actor": Gatherer,
        "supervisor": GatheringSupervisor,
    }
    ref = kinds[kind].start(bus, 500, got)
    for k in range(500):
        bus.publish("lab/cell", k)
    assert got.wait(HANG_GUARD_S)
    taken, drains = ref.proxy().seen().get(timeout=HANG_GUARD_S)
    assert taken == list(range(500))  # in order, none lost (lossless)
    assert 1 <= drains <= 500  # woken per burst, not necessarily per message
    ref.stop()


class Backlogged(Actor):
    """Works through a backlog item by item; on the first it holds until its supervisor
    asks it to stop (the stop is then queued behind the backlog)."""

    def __init__(self, bus: EventBus, entered: threading.Event, done: list[int]) -> None:
        super().__init__()
        self.bus, self.entered, self.done = bus, entered, done

    def on_start(self) -> None:
        self.sub = self.subscribe_drained(self.bus, "work/*")

    def on_drain(self) -> None:
        for _, item in self.sub.drain():
            if self.stopping:
                return
            assert isinstance(item, int)
            self.done.append(item)
            self.entered.set()
            assert self.link is not None
            self.link.shutdown_requested.wait(HANG_GUARD_S)


def test_an_actor_asked_to_stop_leaves_its_backlog_and_stops_in_time() -> None:
    bus, entered, done = EventBus(), threading.Event(), []
    events = bus.subscribe(topics.SYSTEM_ACTORS, mode="lossless")
    child = ChildSpec("worker", Backlogged, (bus, entered, done), shutdown_s=HANG_GUARD_S)
    root = start_supervisor(SupervisorSpec(children=(child,)), bus=bus)
    for k in range(5):
        bus.publish("work/item", k)
    assert entered.wait(HANG_GUARD_S)
    root.stop()
    assert done == [0]  # the four behind it were left: the stop did not wait for them
    exits = [m for _, m in events.drain() if isinstance(m, ActorExited)]
    assert [(e.path, e.reason) for e in exits] == [("root/worker", "shutdown")]
