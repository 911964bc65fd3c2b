"""Erlang/OTP supervision on Pykka actors.

A :class:`Supervisor` starts its children in spec order, watches how each exits and
restarts them as its strategy says:

- ``one_for_one``: only the child that exited is restarted;
- ``one_for_all``: every other child is stopped (reverse order) and all are restarted;
- ``rest_for_one``: the children started after it are stopped and restarted with it.

Each child's restart type says whether it is restarted at all: ``permanent`` always,
``transient`` only after an abnormal exit (an error, or being killed), ``temporary``
never, not even when a sibling's failure took it down (it is then removed).

More than ``max_restarts`` restarts within ``max_seconds`` make the supervisor stop all
its children in reverse start order and fail with :class:`RestartIntensityError`,
which its own supervisor handles in turn. Restarts wait an exponential backoff with
jitter. Starts, exits (with reason), restarts and give-ups are published on the event
bus under ``system/actors`` (:data:`runtime.topics.SYSTEM_ACTORS`).

>>> from runtime.actor import Actor
>>> class Worker(Actor):
...     def on_receive(self, message: object) -> object:
...         return message
>>> root = start_supervisor(SupervisorSpec(children=(ChildSpec("w", Worker),)))
>>> root.child_ref("w").ask("ping")
'ping'
>>> [c.state for c in root.which_children()]
['running']
>>> root.stop()
"""

from __future__ import annotations

import contextlib
import enum
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import pykka

from runtime import topics
from runtime.actor import ADMIN_SCOPE, Actor, ExitReason, Link, exposed, start_linked
from runtime.codec import message
from runtime.errors import (
    BusError,
    CallError,
    ChildStartError,
    RestartIntensityError,
    SupervisorError,
    SupervisorSpecError,
)
from runtime.event_bus import EventBus
from runtime.messages import (
    ActorExited,
    ActorRestarting,
    ActorStarted,
    ApiCall,
    ChildExited,
    SupervisorGaveUp,
    utc_now,
)

__all__ = [
    "Backoff",
    "ChildInfo",
    "ChildSpec",
    "Restart",
    "Strategy",
    "Supervisor",
    "SupervisorRef",
    "SupervisorSpec",
    "start_supervisor",
    "supervisor_child",
]

logger = logging.getLogger("galvana.supervisor")

TREE_WAIT_S = 5.0
"""How long :meth:`Supervisor.tree` waits for a child supervisor's own subtree."""


class Strategy(enum.StrEnum):
    """Which children a supervisor restarts when one of them exits."""

    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"


class Restart(enum.StrEnum):
    """Whether a child is restarted: always, after abnormal exits only, or never."""

    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


def _enum_value(enum_cls: type[enum.StrEnum], value: object, what: str) -> Any:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return enum_cls(value)
    valid = ", ".join(repr(m.value) for m in enum_cls)
    raise SupervisorSpecError(f"unknown {what} {value!r}; valid: {valid}")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before a restart: ``initial_s * factor**(n-1)``, capped at ``max_s``, +-``jitter``.

    ``n`` counts the child's restarts in a row; it starts again at 1 once the child
    stayed up for the supervisor's ``max_seconds``.
    """

    initial_s: float = 0.01
    max_s: float = 5.0
    factor: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not (0 <= self.initial_s <= self.max_s):
            raise SupervisorSpecError(
                f"backoff needs 0 <= initial_s <= max_s, got {self.initial_s}, {self.max_s}"
            )
        if self.factor < 1:
            raise SupervisorSpecError(f"backoff factor must be >= 1, got {self.factor}")
        if not (0 <= self.jitter < 1):
            raise SupervisorSpecError(f"backoff jitter must be in [0, 1), got {self.jitter}")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before restart number ``attempt`` (1-based) of a child."""
        base = min(self.max_s, self.initial_s * self.factor ** max(0, attempt - 1))
        return base * (1 + self.jitter * (2 * rng.random() - 1))


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to start one child and what to do when it exits.

    ``actor`` is a :class:`~runtime.actor.Actor` subclass started with ``args`` and
    ``kwargs``. ``shutdown_s`` is how long it gets to stop before it is abandoned
    (``None``: wait as long as it takes, as for supervisors); ``start_timeout_s`` how
    long its ``on_start`` may take.
    """

    id: str
    actor: type[Actor]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    restart: Restart | str = Restart.PERMANENT
    shutdown_s: float | None = 5.0
    start_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id or "/" in self.id:
            raise SupervisorSpecError(
                f"child id must be a non-empty string without '/', got {self.id!r}"
            )
        if not (isinstance(self.actor, type) and issubclass(self.actor, Actor)):
            raise SupervisorSpecError(
                f"child {self.id!r}: actor must be a runtime.actor.Actor subclass, "
                f"got {self.actor!r}"
            )
        object.__setattr__(self, "restart", _enum_value(Restart, self.restart, "restart type"))
        if self.shutdown_s is not None and self.shutdown_s < 0:
            raise SupervisorSpecError(f"child {self.id!r}: shutdown_s must be >= 0 or None")
        if self.start_timeout_s <= 0:
            raise SupervisorSpecError(f"child {self.id!r}: start_timeout_s must be > 0")


@dataclass(frozen=True, slots=True)
class SupervisorSpec:
    """A supervisor's strategy, restart intensity, backoff and its static children."""

    strategy: Strategy | str = Strategy.ONE_FOR_ONE
    max_restarts: int = 3
    max_seconds: float = 5.0
    backoff: Backoff = field(default_factory=Backoff)
    children: tuple[ChildSpec, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "strategy", _enum_value(Strategy, self.strategy, "strategy"))
        if not isinstance(self.max_restarts, int) or self.max_restarts < 0:
            raise SupervisorSpecError(
                f"max_restarts must be an integer >= 0, got {self.max_restarts!r}"
            )
        if not self.max_seconds > 0:
            raise SupervisorSpecError(f"max_seconds must be > 0, got {self.max_seconds!r}")
        object.__setattr__(self, "children", tuple(self.children))
        seen: set[str] = set()
        for child in self.children:
            if not isinstance(child, ChildSpec):
                raise SupervisorSpecError(f"children must be ChildSpec objects, got {child!r}")
            if child.id in seen:
                raise SupervisorSpecError(f"child id {child.id!r} appears twice")
            seen.add(child.id)


def supervisor_child(
    id: str,
    spec: SupervisorSpec,
    *,
    restart: Restart | str = Restart.PERMANENT,
    shutdown_s: float | None = None,
) -> ChildSpec:
    """A child spec that starts a nested :class:`Supervisor` running ``spec``."""
    return ChildSpec(id, Supervisor, (spec,), restart=restart, shutdown_s=shutdown_s)


ChildState = Literal["running", "restarting", "stopping", "stopped"]


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """A snapshot of one child: what ``galvana actors`` shows."""

    id: str
    path: str
    state: ChildState
    restart: Restart
    incarnation: int
    restarts: int
    mailbox: int
    last_failure: str
    supervisor: bool
    ref: pykka.ActorRef[Any] | None


@message("supervisor.restart_due")
class _RestartDue:
    """A backoff timer fired: restart these children (if ``token`` is still current)."""

    child_ids: tuple[str, ...]
    token: int


@dataclass(eq=False)
class _Child:
    spec: ChildSpec
    dynamic: bool = False
    state: ChildState = "stopped"
    ref: pykka.ActorRef[Any] | None = None
    link: Link | None = None
    incarnation: int = 0
    restarts: int = 0
    in_a_row: int = 0
    started_at: float = 0.0
    last_failure: str = ""


class Supervisor(Actor):
    """An OTP supervisor as a Pykka actor. Use :class:`SupervisorRef` to talk to it."""

    def __init__(self, spec: SupervisorSpec, *, seed: int | None = None) -> None:
        super().__init__()
        if not isinstance(spec, SupervisorSpec):
            raise SupervisorSpecError(f"a Supervisor needs a SupervisorSpec, got {spec!r}")
        self.spec = spec
        link = self.link
        self.path = link.path if link is not None else "supervisor"
        self.bus = link.bus if link is not None else None
        self._children: list[_Child] = [_Child(c) for c in spec.children]
        self._restart_times: deque[float] = deque()
        # token -> (timer, the children it restarts)
        self._timers: dict[int, tuple[threading.Timer, tuple[str, ...]]] = {}
        self._next_token = 0
        self._rng = random.Random(seed)

    # --- lifecycle -----------------------------------------------------------

    def on_start(self) -> None:
        for child in self._children:
            failure = self._start(child)
            if failure is not None:
                self._terminate_all()
                raise ChildStartError(f"{self._path_of(child)} failed to start: {failure.detail}")

    def on_stop(self) -> None:
        self._terminate_all()

    def on_failure(self, *exc_info: object) -> None:
        self._terminate_all()

    # --- messages --------------------------------------------------------------

    def on_receive(self, message: object) -> object:
        if isinstance(message, ChildExited):
            self._child_exited(message)
        elif isinstance(message, _RestartDue):
            self._restart_due(message)
        else:
            return super().on_receive(message)
        return None

    # Ask handlers return (value, error) rather than raising: an exception here would
    # crash the supervisor (OTP semantics), and a refused request is no crash.

    def start_child(self, spec: ChildSpec) -> tuple[pykka.ActorRef[Any] | None, str | None]:
        """Add and start a dynamic child; returns (ref, None) or (None, why not)."""
        if self._find(spec.id) is not None:
            return None, f"{self.path} already has a child {spec.id!r}"
        child = _Child(spec, dynamic=True)
        self._children.append(child)
        failure = self._start(child)
        if failure is not None:
            self._children.remove(child)
            return None, f"{self._path_of(child)} failed to start: {failure.detail}"
        return child.ref, None

    def terminate_child(self, child_id: str) -> str | None:
        """Stop a child and forget it; returns None, or why it could not."""
        child = self._find(child_id)
        if child is None:
            return f"{self.path} has no child {child_id!r}"
        self._cancel_restart(child)
        if child.state == "running":
            self._terminate(child)
        self._children.remove(child)
        return None

    @exposed(name="kill", scope=ADMIN_SCOPE)
    def kill_child(self, child_id: str) -> dict[str, Any]:
        """Kill a running child as a crash would (OTP's ``exit(Pid, kill)``): it stops,
        exits ``killed``, and its restart type and this supervisor's strategy decide
        what happens next (an operator's tool, and how tests prove recovery). It counts
        toward this supervisor's restart intensity, so it needs the admin scope."""
        child = self._find(child_id)
        if child is None or child.state != "running":
            state = "absent" if child is None else child.state
            raise CallError("not_found", f"{self.path} has no running child {child_id!r} ({state})")
        self._terminate(child, as_killed="killed on request")
        self._after_exit(child, ExitReason("killed", "killed on request"))
        return {"child": self._path_of(child), "state": child.state}

    def which_children(self) -> list[ChildInfo]:
        """A snapshot of every child, in start order."""
        return [self._info(c) for c in self._children]

    @exposed
    def tree(self) -> None:
        """The supervision tree below this supervisor, as plain data (``galvana actors``).

        Answered once each child supervisor has answered for its own subtree (an empty
        one after 5 s without an answer): this supervisor never waits for a child.
        """
        reply = self.reply_later()
        out: list[dict[str, Any]] = []
        below: dict[int, pykka.ActorRef[Any]] = {}
        for child in self._children:
            info = self._info(child)
            node: dict[str, Any] = {
                "id": info.id,
                "path": info.path,
                "state": info.state,
                "restart": str(info.restart),
                "incarnation": info.incarnation,
                "restarts": info.restarts,
                "mailbox": info.mailbox,
                "last_failure": info.last_failure,
                "supervisor": info.supervisor,
            }
            if info.supervisor and info.ref is not None:
                node["children"] = []
                below[len(out)] = info.ref
            out.append(node)
        waiting = set(below)
        if not waiting:
            reply.send(out)
            return

        def answered(index: int, outcome: object) -> None:
            if isinstance(outcome, list):
                out[index]["children"] = outcome
            waiting.discard(index)
            if not waiting:
                reply.send(out)

        for index, ref in below.items():
            self.ask_later(
                ref, ApiCall("tree", (), {}), partial(answered, index), timeout=TREE_WAIT_S
            )

    # --- starting and stopping children ----------------------------------------

    def _path_of(self, child: _Child) -> str:
        return f"{self.path}/{child.spec.id}"

    def _find(self, child_id: str) -> _Child | None:
        return next((c for c in self._children if c.spec.id == child_id), None)

    def _start(self, child: _Child) -> ExitReason | None:
        """Start one incarnation of ``child`` and wait for its ``on_start``; None if it runs."""
        spec = child.spec
        child.incarnation += 1
        link = Link(spec.id, child.incarnation, self.actor_ref, self._path_of(child), self.bus)
        try:
            ref = start_linked(spec.actor, link, *spec.args, **spec.kwargs)
        except Exception as exc:  # the constructor raised in this thread
            reason = ExitReason("error", f"{type(exc).__name__}: {exc}", exc)
            self._record_exit(child, reason)
            return reason
        if not link.settled.wait(spec.start_timeout_s):
            link.shutdown_requested.set()
            ref.stop(block=False)
            self._kill(link)
            reason = ExitReason(
                "killed", f"on_start did not finish within {spec.start_timeout_s} s"
            )
            self._record_exit(child, reason)
            return reason
        if link.exited.is_set():
            reason = link.reason or ExitReason("error", "exited during on_start")
            self._record_exit(child, reason)
            return reason
        child.ref, child.link, child.state = ref, link, "running"
        child.started_at = time.monotonic()
        self._publish(ActorStarted(link.path, child.incarnation, utc_now()))
        return None

    def _terminate(self, child: _Child, *, as_killed: str = "") -> None:
        """Stop a running child within its shutdown timeout, or abandon it.

        ``as_killed``: record the exit as ``killed`` with this detail (an operator's kill).
        """
        link, ref = child.link, child.ref
        assert link is not None
        assert ref is not None
        child.state = "stopping"
        link.shutdown_requested.set()
        ref.stop(block=False)
        if link.exited.wait(child.spec.shutdown_s):
            reason = link.reason or ExitReason("shutdown")
            if as_killed:
                reason = ExitReason("killed", as_killed)
        else:
            self._kill(link)
            reason = ExitReason(
                "killed", f"did not stop within {child.spec.shutdown_s} s; abandoned"
            )
            logger.error("%s %s", link.path, reason.detail)
        child.ref, child.link = None, None
        self._record_exit(child, reason)

    def _kill(self, link: Link) -> None:
        if link.kill is not None:
            try:
                link.kill()
            except Exception:
                logger.exception("on_kill of %s raised", link.path)

    def _terminate_all(self) -> None:
        for child in reversed(self._children):
            self._cancel_restart(child)
            if child.state == "running":
                self._terminate(child)
        for timer, _ in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def _record_exit(self, child: _Child, reason: ExitReason) -> None:
        child.state = "stopped"
        if reason.abnormal:
            child.last_failure = reason.detail
        self._publish(
            ActorExited(
                self._path_of(child), child.incarnation, reason.kind, reason.detail, utc_now()
            )
        )

    # --- reacting to exits -----------------------------------------------------

    def _child_exited(self, msg: ChildExited) -> None:
        child = self._find(msg.child_id)
        if child is None or child.state != "running" or child.incarnation != msg.incarnation:
            return  # an exit this supervisor caused, or of an incarnation already replaced
        link = child.link
        reason = (link.reason if link is not None else None) or ExitReason(msg.reason, msg.detail)
        child.ref, child.link = None, None
        self._record_exit(child, reason)
        self._after_exit(child, reason)

    def _after_exit(self, child: _Child, reason: ExitReason) -> None:
        restart = child.spec.restart
        if restart is Restart.TEMPORARY or (restart is Restart.TRANSIENT and not reason.abnormal):
            if restart is Restart.TEMPORARY or child.dynamic:
                self._children.remove(child)
            return
        self._restart(child)

    def _restart(self, child: _Child) -> None:
        """Apply the strategy to a child that must be restarted."""
        now = time.monotonic()
        self._restart_times.append(now)
        while self._restart_times and self._restart_times[0] < now - self.spec.max_seconds:
            self._restart_times.popleft()
        if len(self._restart_times) > self.spec.max_restarts:
            self._give_up()
        group = self._group(child)
        for other in reversed(group):
            if other is not child and other.state == "running":
                self._terminate(other)
        for other in group:
            if other is not child and other.spec.restart is Restart.TEMPORARY:
                self._children.remove(other)
        group = [c for c in group if c in self._children]
        # A pending restart of children now in this group is superseded: restarting
        # them ahead of this one would break start order (rest_for_one, one_for_all).
        ids = {c.spec.id for c in group}
        for token, (timer, pending) in list(self._timers.items()):
            if ids.intersection(pending):
                timer.cancel()
                del self._timers[token]
        child.in_a_row = child.in_a_row + 1 if now - child.started_at < self.spec.max_seconds else 1
        delay = self.spec.backoff.delay(child.in_a_row, self._rng)
        for c in group:
            self._cancel_restart(c)
            c.state = "restarting"
            c.restarts += 1
            self._publish(
                ActorRestarting(self._path_of(c), c.incarnation, c.restarts, delay, utc_now())
            )
        self._schedule(tuple(c.spec.id for c in group), delay)

    def _group(self, child: _Child) -> list[_Child]:
        if self.spec.strategy is Strategy.ONE_FOR_ALL:
            return list(self._children)
        if self.spec.strategy is Strategy.REST_FOR_ONE:
            return self._children[self._children.index(child) :]
        return [child]

    def _give_up(self) -> None:
        window = self.spec.max_seconds
        count = len(self._restart_times)
        self._publish(SupervisorGaveUp(self.path, count, window, utc_now()))
        self._terminate_all()
        raise RestartIntensityError(
            f"{self.path}: {count} restarts within {window} s exceed max_restarts="
            f"{self.spec.max_restarts}; stopped all children"
        )

    def _schedule(self, child_ids: tuple[str, ...], delay: float) -> None:
        self._next_token += 1
        token = self._next_token
        ref = self.actor_ref

        def fire() -> None:
            # The supervisor may have stopped while the timer ran.
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(_RestartDue(child_ids, token))

        timer = threading.Timer(delay, fire)
        timer.daemon = True
        self._timers[token] = (timer, child_ids)
        timer.start()

    def _cancel_restart(self, child: _Child) -> None:
        if child.state == "restarting":
            child.state = "stopped"

    def _restart_due(self, msg: _RestartDue) -> None:
        if self._timers.pop(msg.token, None) is None:
            return
        for child_id in msg.child_ids:
            child = self._find(child_id)
            if child is None or child.state != "restarting":
                continue
            failure = self._start(child)
            if failure is not None:
                # A restart that fails counts as another exit; the strategy decides again,
                # and the rest of this group is restarted (or not) from there.
                self._after_exit(child, failure)
                return

    # --- introspection and events ------------------------------------------------

    def _info(self, child: _Child) -> ChildInfo:
        ref = child.ref
        return ChildInfo(
            id=child.spec.id,
            path=self._path_of(child),
            state=child.state,
            restart=Restart(child.spec.restart),
            incarnation=child.incarnation,
            restarts=child.restarts,
            mailbox=_mailbox_depth(ref),
            last_failure=child.last_failure,
            supervisor=issubclass(child.spec.actor, Supervisor),
            ref=ref,
        )

    def _publish(self, msg: object) -> None:
        if self.bus is None:
            return
        try:
            self.bus.publish(topics.SYSTEM_ACTORS, msg)
        except BusError:
            # A stuck watcher must not take supervision down with it.
            logger.exception("%s could not publish %r", self.path, msg)


def _mailbox_depth(ref: pykka.ActorRef[Any] | None) -> int:
    """Messages waiting in an actor's inbox (a ``queue.Queue`` for threading actors)."""
    qsize = getattr(ref.actor_inbox, "qsize", None) if ref is not None else None
    return int(qsize()) if qsize is not None else 0


class SupervisorRef:
    """A handle on a running supervisor, usable from any thread.

    Every method asks the supervisor actor and raises :class:`SupervisorError` in the
    caller's thread when the supervisor refuses or is gone.
    """

    def __init__(self, ref: pykka.ActorRef[Any], path: str, link: Link | None = None) -> None:
        self.actor_ref = ref
        self.path = path
        """The supervisor's path in the tree (``root``, ``root/runs``, ...)."""
        self._link = link

    def _call(self, name: str, *args: object, timeout: float | None) -> Any:
        try:
            return getattr(self.actor_ref.proxy(), name)(*args).get(timeout=timeout)
        except pykka.ActorDeadError as exc:
            raise SupervisorError(f"supervisor {self.path} is not running") from exc

    def start_child(self, spec: ChildSpec, *, timeout: float | None = None) -> pykka.ActorRef[Any]:
        """Start a dynamic child and return its ref once its ``on_start`` finished."""
        if not isinstance(spec, ChildSpec):
            raise SupervisorError(f"start_child needs a ChildSpec, got {spec!r}")
        ref, error = self._call("start_child", spec, timeout=timeout)
        if error is not None:
            raise SupervisorError(error)
        return ref  # type: ignore[no-any-return]

    def terminate_child(self, child_id: str, *, timeout: float | None = None) -> None:
        """Stop a child (within its shutdown timeout) and remove it."""
        error = self._call("terminate_child", child_id, timeout=timeout)
        if error is not None:
            raise SupervisorError(error)

    def which_children(self, *, timeout: float | None = 10.0) -> list[ChildInfo]:
        """A snapshot of every child, in start order."""
        return self._call("which_children", timeout=timeout)  # type: ignore[no-any-return]

    def child_ref(self, child_id: str, *, timeout: float | None = 10.0) -> pykka.ActorRef[Any]:
        """The current ref of a running child."""
        for info in self.which_children(timeout=timeout):
            if info.id == child_id:
                if info.ref is None:
                    raise SupervisorError(f"{info.path} is {info.state}, not running")
                return info.ref
        raise SupervisorError(f"{self.path} has no child {child_id!r}")

    def child(self, child_id: str, *, timeout: float | None = 10.0) -> SupervisorRef:
        """A handle on a nested supervisor child."""
        for info in self.which_children(timeout=timeout):
            if info.id == child_id and info.supervisor and info.ref is not None:
                return SupervisorRef(info.ref, info.path)
        raise SupervisorError(f"{self.path} has no running supervisor child {child_id!r}")

    def resolve(self, path: str, *, timeout: float | None = 10.0) -> pykka.ActorRef[Any]:
        """The ref of the actor at ``path`` below this supervisor (``runs/run-7``).

        The empty path is this supervisor. Raises :class:`CallError` ``not_found``
        naming the first segment that does not exist (the API passes it on).
        """
        ref: pykka.ActorRef[Any] = self.actor_ref
        here = SupervisorRef(ref, self.path)
        for segment in [p for p in path.split("/") if p]:
            try:
                infos = here.which_children(timeout=timeout)
            except (SupervisorError, pykka.Timeout):
                raise CallError("not_found", f"{here.path} is not running") from None
            info = next((i for i in infos if i.id == segment), None)
            if info is None or info.ref is None:
                known = ", ".join(i.id for i in infos if i.ref is not None) or "none"
                raise CallError(
                    "not_found", f"no actor {segment!r} under {here.path} (running: {known})"
                )
            ref = info.ref
            here = SupervisorRef(ref, info.path)
        return ref

    def is_alive(self) -> bool:
        """Whether the supervisor is still running."""
        return bool(self.actor_ref.is_alive())

    def wait_exited(self, timeout: float | None = None) -> ExitReason | None:
        """Wait for a top-level supervisor to exit; its reason, or None if still running."""
        if self._link is None:
            raise SupervisorError(f"{self.path} is supervised; its parent sees how it exits")
        if not self._link.exited.wait(timeout):
            return None
        return self._link.reason

    def stop(self, *, timeout: float | None = None) -> None:
        """Stop every child in reverse start order, then the supervisor.

        A nested supervisor is better stopped through its parent (``terminate_child``);
        stopping it here counts as its normal exit.
        """
        if self._link is not None:
            self._link.shutdown_requested.set()
        self.actor_ref.stop(block=True, timeout=timeout)


def start_supervisor(
    spec: SupervisorSpec,
    *,
    name: str = "root",
    bus: EventBus | None = None,
    seed: int | None = None,
    start_timeout_s: float = 60.0,
) -> SupervisorRef:
    """Start a top-level supervisor and its children; returns once all have started.

    Raises :class:`ChildStartError` if a child fails to start (the ones already started
    are stopped again). ``seed`` makes the backoff jitter reproducible.
    """
    link = Link(name, 1, None, name, bus)
    ref = start_linked(Supervisor, link, spec, seed=seed)
    if not link.settled.wait(start_timeout_s):
        raise SupervisorError(f"supervisor {name} did not start within {start_timeout_s} s")
    if link.exited.is_set():
        reason = link.reason or ExitReason("error", "exited during start")
        raise ChildStartError(f"supervisor {name} failed to start: {reason.detail}")
    return SupervisorRef(ref, name, link)
