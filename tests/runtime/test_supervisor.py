"""OTP supervision on Pykka: strategies x restart types x failure points, intensity, backoff."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import pykka
import pytest

from runtime import topics
from runtime.actor import Actor
from runtime.errors import (
    CallError,
    ChildStartError,
    RestartIntensityError,
    SupervisorError,
    SupervisorSpecError,
)
from runtime.event_bus import EventBus
from runtime.messages import ActorExited, ActorRestarting, ActorStarted, SupervisorGaveUp
from runtime.supervisor import (
    Backoff,
    ChildSpec,
    SupervisorRef,
    SupervisorSpec,
    start_supervisor,
    supervisor_child,
)

from ._actors import Boom, Journal, Probe, wait_until

FAST = Backoff(initial_s=0.001, max_s=0.01, jitter=0.0)


@pytest.fixture
def journal() -> Journal:
    return Journal()


@pytest.fixture(autouse=True)
def _no_actor_left() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all(timeout=10)


def probe(journal: Journal, name: str, restart: str = "permanent", **kw: object) -> ChildSpec:
    return ChildSpec(name, Probe, (journal, name), restart=restart, **kw)  # type: ignore[arg-type]


def states(sup: SupervisorRef) -> dict[str, tuple[str, int]]:
    return {c.id: (c.state, c.incarnation) for c in sup.which_children()}


def settle(sup: SupervisorRef, expect: dict[str, int | None]) -> None:
    """Wait until each child runs in the expected incarnation (None: the child is gone)."""

    def done() -> bool:
        now = states(sup)
        for name, inc in expect.items():
            if inc is None:
                if name in now:
                    return False
            elif now.get(name) != ("running", inc):
                return False
        return True

    wait_until(done, what=f"children {expect}, have {states(sup)}")


# --- the matrix ---------------------------------------------------------------------

STRATEGIES = ["one_for_one", "one_for_all", "rest_for_one"]
RESTARTS = ["permanent", "transient", "temporary"]
FAILURES = ["tell", "ask", "on_start_at_restart", "normal_exit"]


def trigger(sup: SupervisorRef, journal: Journal, failure: str) -> None:
    ref = sup.child_ref("b")
    if failure == "tell":
        ref.tell("crash")
    elif failure == "ask":
        with pytest.raises(Boom, match="b crashed"):
            ref.ask("crash", timeout=5)
    elif failure == "on_start_at_restart":
        journal.fail_starts["b"] = 1  # the first restart of b fails in on_start
        ref.tell("crash")
    else:
        ref.tell("exit")


def expected(strategy: str, restart: str, failure: str) -> dict[str, int | None]:
    """OTP's outcome: the incarnation each child ends in (None: removed)."""
    abnormal = failure != "normal_exit"
    restarted = restart == "permanent" or (restart == "transient" and abnormal)
    if not restarted:
        # Not restarted: no sibling is touched. A temporary child is forgotten; a
        # transient one that exited normally stays in the list, stopped.
        return {"a": 1, "c": 1, "b": None if restart == "temporary" else -1}
    rounds = 2 if failure == "on_start_at_restart" else 1
    return {
        "a": 1 + rounds if strategy == "one_for_all" else 1,
        "b": 1 + rounds,
        # c is taken down each round but only started once the failing b started again.
        "c": 1 if strategy == "one_for_one" else 2,
    }


@pytest.mark.parametrize("failure", FAILURES)
@pytest.mark.parametrize("restart", RESTARTS)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_strategy_restart_failure_matrix(
    journal: Journal, strategy: str, restart: str, failure: str
) -> None:
    spec = SupervisorSpec(
        strategy=strategy,
        max_restarts=10,
        backoff=FAST,
        children=(probe(journal, "a"), probe(journal, "b", restart), probe(journal, "c")),
    )
    sup = start_supervisor(spec)
    assert journal.of("start") == ["a", "b", "c"]
    trigger(sup, journal, failure)
    want = expected(strategy, restart, failure)
    if want["b"] == -1:
        wait_until(lambda: states(sup)["b"][0] == "stopped", what="b stopped")
        want = {k: v for k, v in want.items() if k != "b"}
    settle(sup, want)
    time.sleep(0.05)  # nothing further happens once settled
    settle(sup, want)
    stops = journal.of("stop")
    if strategy == "one_for_all" and want.get("b", 0) and (want["b"] or 0) > 1:
        # Siblings go down in reverse start order: c before a.
        assert stops.index("c") < stops.index("a")
    failures = {"tell": 1, "ask": 1, "normal_exit": 0}.get(failure)
    if failure == "on_start_at_restart":
        # The crash, then the failed on_start of the restart (if there was one).
        failures = 1 if restart == "temporary" else 2
    assert journal.count("failure", "b") == failures
    sup.stop()
    assert not sup.is_alive()


def test_temporary_sibling_taken_down_is_not_restarted(journal: Journal) -> None:
    spec = SupervisorSpec(
        strategy="one_for_all",
        backoff=FAST,
        children=(probe(journal, "a"), probe(journal, "b"), probe(journal, "t", "temporary")),
    )
    sup = start_supervisor(spec)
    sup.child_ref("b").tell("crash")
    settle(sup, {"a": 2, "b": 2, "t": None})
    assert journal.count("start", "t") == 1
    assert journal.count("stop", "t") == 1  # it was stopped, cleanly, and forgotten
    sup.stop()


def test_transient_sibling_is_restarted_with_the_group(journal: Journal) -> None:
    spec = SupervisorSpec(
        strategy="rest_for_one",
        backoff=FAST,
        children=(probe(journal, "a"), probe(journal, "b"), probe(journal, "t", "transient")),
    )
    sup = start_supervisor(spec)
    sup.child_ref("b").tell("crash")
    settle(sup, {"a": 1, "b": 2, "t": 2})
    sup.stop()


# --- ordering, start failures, shutdown ---------------------------------------------


def test_start_in_spec_order_and_stop_in_reverse(journal: Journal) -> None:
    names = [f"p{i}" for i in range(8)]
    sup = start_supervisor(SupervisorSpec(children=tuple(probe(journal, n) for n in names)))
    assert journal.of("start") == names
    sup.stop()
    assert journal.of("stop") == names[::-1]


def test_initial_start_failure_stops_started_children_and_fails(journal: Journal) -> None:
    journal.fail_starts["b"] = 1
    spec = SupervisorSpec(children=(probe(journal, "a"), probe(journal, "b"), probe(journal, "c")))
    with pytest.raises(ChildStartError, match="root/b failed to start: Boom: b refuses to start"):
        start_supervisor(spec)
    assert journal.of("start") == ["a"]
    assert journal.of("stop") == ["a"]
    assert journal.of("start-failed") == ["b"]
    assert journal.count("failure", "b") == 1  # on_failure runs for on_start failures too


def test_ask_failure_reaches_caller_and_crashes_the_actor(journal: Journal) -> None:
    sup = start_supervisor(SupervisorSpec(backoff=FAST, children=(probe(journal, "a"),)))
    ref = sup.child_ref("a")
    with pytest.raises(Boom):
        ref.ask("crash", timeout=5)
    wait_until(lambda: not ref.is_alive(), what="the old incarnation to die")
    settle(sup, {"a": 2})
    assert sup.child_ref("a").ask("hi", timeout=5) == ("a", "hi")
    sup.stop()


def test_shutdown_timeout_abandons_and_kills(journal: Journal) -> None:
    bus = EventBus()
    events = bus.subscribe(topics.SYSTEM_ACTORS, mode="lossless", maxsize=100)
    journal.hang_stop.add("slow")
    spec = SupervisorSpec(children=(probe(journal, "slow", shutdown_s=0.2), probe(journal, "b")))
    sup = start_supervisor(spec, bus=bus)
    sup.stop()  # abandons 'slow' after 0.2 s: its on_stop would take 3 s
    assert journal.killed == ["slow"]
    exits = [m for _, m in events.drain() if isinstance(m, ActorExited)]
    assert [(e.path, e.reason) for e in exits] == [("root/b", "shutdown"), ("root/slow", "killed")]
    assert "did not stop within 0.2 s" in exits[1].detail


def test_start_timeout_counts_as_a_failed_start(journal: Journal) -> None:
    class Sleepy(Actor):
        def on_start(self) -> None:
            time.sleep(1.0)

    with pytest.raises(ChildStartError, match="did not finish within 0.1 s"):
        start_supervisor(SupervisorSpec(children=(ChildSpec("z", Sleepy, start_timeout_s=0.1),)))


# --- intensity and backoff ------------------------------------------------------------


def test_intensity_escalates_through_two_levels(journal: Journal) -> None:
    bus = EventBus()
    events = bus.subscribe(topics.SYSTEM_ACTORS, mode="lossless", maxsize=1000)
    journal.fail_starts["leaf"] = 0
    mid = SupervisorSpec(
        max_restarts=2, max_seconds=30, backoff=FAST, children=(probe(journal, "leaf"),)
    )
    spec = SupervisorSpec(
        max_restarts=1,
        max_seconds=30,
        backoff=FAST,
        children=(probe(journal, "sibling"), supervisor_child("mid", mid)),
    )
    root = start_supervisor(spec, bus=bus)
    journal.fail_starts["leaf"] = -1  # from now on the leaf never starts again
    root.child("mid").child_ref("leaf").tell("crash")
    reason = root.wait_exited(timeout=20)
    assert reason is not None
    assert reason.kind == "error"
    assert isinstance(reason.exception, RestartIntensityError)
    assert "root: 2 restarts within 30 s exceed max_restarts=1" in reason.detail
    gave_up = [m.path for _, m in events.drain() if isinstance(m, SupervisorGaveUp)]
    # mid gives up (3 leaf restarts > 2), root restarts mid, whose start fails (leaf
    # cannot start), root restarts it again -> 2 restarts > 1: root gives up.
    assert gave_up == ["root/mid", "root"]
    assert journal.of("stop")[-1] == "sibling"  # everything was stopped on the way out
    assert not any(a.is_alive() for a in pykka.ActorRegistry.get_all())


def test_backoff_grows_exponentially_with_jitter() -> None:
    backoff = Backoff(initial_s=0.01, max_s=0.1, factor=2.0, jitter=0.2)
    rng = random.Random(1)
    for attempt, base in [(1, 0.01), (2, 0.02), (3, 0.04), (4, 0.08), (5, 0.1), (9, 0.1)]:
        delays = [backoff.delay(attempt, rng) for _ in range(200)]
        assert base * 0.8 <= min(delays)
        assert max(delays) <= base * 1.2
        assert max(delays) - min(delays) > base * 0.2  # the jitter is really there


def test_restarts_wait_the_backoff_and_are_announced(journal: Journal) -> None:
    bus = EventBus()
    events = bus.subscribe(topics.SYSTEM_ACTORS, mode="lossless", maxsize=1000)
    spec = SupervisorSpec(
        max_restarts=10,
        max_seconds=30,
        backoff=Backoff(initial_s=0.05, max_s=1.0, factor=2.0, jitter=0.0),
        children=(probe(journal, "a"),),
    )
    sup = start_supervisor(spec, bus=bus)
    for n in range(1, 4):
        began = time.monotonic()
        sup.child_ref("a").tell("crash")
        settle(sup, {"a": n + 1})
        assert time.monotonic() - began >= 0.05 * 2 ** (n - 1) * 0.95
    seen = [m for _, m in events.drain()]
    restarting = [m for m in seen if isinstance(m, ActorRestarting)]
    assert [round(m.delay_s, 3) for m in restarting] == [0.05, 0.1, 0.2]
    kinds = [type(m).__name__ for m in seen]
    assert kinds[:4] == ["ActorStarted", "ActorExited", "ActorRestarting", "ActorStarted"]
    crash = next(m for m in seen if isinstance(m, ActorExited))
    assert (crash.path, crash.reason, crash.detail) == ("root/a", "error", "Boom: a crashed")
    sup.stop()


# --- dynamic children and big trees -------------------------------------------------


def test_dynamic_children(journal: Journal) -> None:
    sup = start_supervisor(SupervisorSpec(backoff=FAST))
    ref = sup.start_child(probe(journal, "run-1", "transient"))
    assert ref.ask("x", timeout=5) == ("run-1", "x")
    with pytest.raises(SupervisorError, match="already has a child 'run-1'"):
        sup.start_child(probe(journal, "run-1"))
    journal.fail_starts["run-2"] = 1
    with pytest.raises(SupervisorError, match="root/run-2 failed to start"):
        sup.start_child(probe(journal, "run-2"))
    assert [c.id for c in sup.which_children()] == ["run-1"]
    ref.tell("crash")
    settle(sup, {"run-1": 2})
    # A transient dynamic child that finishes normally is forgotten, like OTP's runs.
    sup.child_ref("run-1").tell("exit")
    settle(sup, {"run-1": None})
    sup.start_child(probe(journal, "run-3"))
    sup.terminate_child("run-3")
    assert sup.which_children() == []
    with pytest.raises(SupervisorError, match="has no child 'nope'"):
        sup.terminate_child("nope")
    sup.stop()


def test_thousand_children_under_one_supervisor(journal: Journal) -> None:
    names = [f"c{i:04d}" for i in range(1000)]
    spec = SupervisorSpec(
        max_restarts=100, backoff=FAST, children=tuple(probe(journal, n) for n in names)
    )
    sup = start_supervisor(spec)
    assert journal.of("start") == names
    crashed = random.Random(7).sample(names, 25)
    for name in crashed:
        sup.child_ref(name).tell("crash")
    settle(sup, {n: (2 if n in crashed else 1) for n in names})
    assert sum(c.restarts for c in sup.which_children()) == 25
    sup.stop()
    stops = journal.of("stop")
    assert stops == names[::-1]  # crashed incarnations ran on_failure, not on_stop
    assert sorted(journal.of("failure")) == sorted(crashed)


# --- bad specs ----------------------------------------------------------------------


def test_bad_specs_name_the_valid_values(journal: Journal) -> None:
    with pytest.raises(
        SupervisorSpecError,
        match="unknown strategy 'one_for_some'; "
        "valid: 'one_for_one', 'one_for_all', 'rest_for_one'",
    ):
        SupervisorSpec(strategy="one_for_some")
    with pytest.raises(
        SupervisorSpecError,
        match="unknown restart type 'sometimes'; valid: 'permanent', 'transient', 'temporary'",
    ):
        probe(journal, "x", "sometimes")
    with pytest.raises(SupervisorSpecError, match="appears twice"):
        SupervisorSpec(children=(probe(journal, "x"), probe(journal, "x")))
    with pytest.raises(SupervisorSpecError, match="Actor subclass"):
        ChildSpec("x", dict)  # type: ignore[arg-type]
    with pytest.raises(SupervisorSpecError, match="max_restarts"):
        SupervisorSpec(max_restarts=-1)


def test_started_events_carry_paths_of_nested_supervisors(journal: Journal) -> None:
    bus = EventBus()
    events = bus.subscribe(topics.SYSTEM_ACTORS, mode="lossless", maxsize=100)
    inner = SupervisorSpec(children=(probe(journal, "leaf"),))
    root = start_supervisor(SupervisorSpec(children=(supervisor_child("runs", inner),)), bus=bus)
    started = [m.path for _, m in events.drain() if isinstance(m, ActorStarted)]
    assert started == ["root/runs/leaf", "root/runs"]
    root.stop()


def test_kill_is_a_crash_as_far_as_restart_types_go(journal: Journal) -> None:
    bus = EventBus()
    events = bus.subscribe(topics.SYSTEM_ACTORS, mode="lossless", maxsize=100)
    spec = SupervisorSpec(
        backoff=FAST, children=(probe(journal, "p"), probe(journal, "t", "transient"))
    )
    sup = start_supervisor(spec, bus=bus)
    ref = sup.actor_ref
    from runtime.messages import ApiCall

    with pytest.raises(CallError, match="kill needs the 'admin' scope") as refused:
        ref.ask(ApiCall("kill", ("t",), {}), timeout=5)
    assert refused.value.code == "unauthorized"
    admin = ("admin",)
    ref.ask(ApiCall("kill", ("t",), {}, admin), timeout=5)  # transient: abnormal exit restarts it
    settle(sup, {"p": 1, "t": 2})
    exits = [m for _, m in events.drain() if isinstance(m, ActorExited)]
    assert [(e.path, e.reason, e.detail) for e in exits] == [
        ("root/t", "killed", "killed on request")
    ]
    with pytest.raises(Exception, match="has no running child 'nope'"):
        ref.ask(ApiCall("kill", ("nope",), {}, admin), timeout=5)
    sup.stop()
