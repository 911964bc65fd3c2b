"""The actor every Galvana actor derives from: a Pykka ``ThreadingActor`` with OTP exits.

Pykka has no links and treats failures unevenly: an exception in an ask handler
goes back to the caller and the actor carries on; one in ``on_start`` stops the
actor without calling ``on_failure``. Galvana actors follow OTP instead:

- any exception in ``on_start``, a tell handler or an ask handler ends the actor
  with reason ``error`` (an ask's caller still receives the exception);
- ``on_failure`` runs for every failure, wherever it happened;
- the actor's supervisor (when it has one) is told how the actor exited, after the
  actor has stopped taking messages;
- a handler that raises :class:`~runtime.errors.CallError` refuses the request: the
  caller gets the error and the actor carries on (OTP's ``{reply, {error, Reason}}``).

Methods decorated with :func:`exposed` can be called through the actor message API
(an :class:`~runtime.messages.ApiCall`); nothing else can. An API call is the caller's
request, not the tree's work: its arguments are checked against the method's
annotations first (``runtime.arguments``: a wrong one is a ``bad_request``), and an
unexpected exception inside the method is answered ``internal`` (the traceback goes to
the log) without ending the actor. A crash in a call is the caller's failure; a client
sending malformed calls must never exhaust a supervisor's restart intensity.

An actor never waits for another one to answer (OTP's gen_server that returns
``{noreply}``): a handler whose answer depends on another actor takes the caller's
answer with :meth:`Actor.reply_later`, asks the other actor with
:meth:`Actor.ask_later` and answers from the callback, which runs on the actor's own
thread when the other actor's answer arrives. Meanwhile the actor takes its next
messages.

Only the actor loop is replaced; message dispatch, proxies and the registry remain
Pykka's own.

>>> class Greeter(Actor):
...     def on_receive(self, message: object) -> object:
...         return f"hello {message}"
>>> ref = Greeter.start()
>>> ref.ask("lab")
'hello lab'
>>> ref.stop()
True
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import sys
import threading
import uuid
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar, overload

import pykka
from pykka._envelope import Envelope  # the actor loop below is Pykka's, made OTP

from runtime.arguments import bind_arguments
from runtime.errors import CallError
from runtime.messages import ApiCall, ChildExited, ExitKind

if TYPE_CHECKING:
    from collections.abc import Callable

    from runtime.event_bus import EventBus, Subscription

__all__ = [
    "ADMIN_SCOPE",
    "DRAIN",
    "OPERATE_SCOPE",
    "READ_SCOPE",
    "SCOPES",
    "Actor",
    "ExitReason",
    "Link",
    "PendingReply",
    "exposed",
    "exposed_scope",
    "lower_thread_priority",
    "scopes_of",
    "start_linked",
    "waker",
]

logger = logging.getLogger("galvana.actor")

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


@dataclass(frozen=True, slots=True)
class ExitReason:
    """How an actor ended. ``exception`` is set for ``error`` exits (in-process only)."""

    kind: ExitKind
    detail: str = ""
    exception: BaseException | None = None

    @property
    def abnormal(self) -> bool:
        """True for exits a ``transient`` child is restarted after (OTP: not normal/shutdown)."""
        return self.kind in ("error", "killed")


@dataclass(eq=False)
class Link:
    """The bond between one incarnation of a child and its supervisor.

    Set by the supervisor before the child starts; read by both threads. ``path`` is
    the child's place in the tree (``root/runs/run-7``) and ``bus`` the tree's event
    bus. ``started`` is set once ``on_start`` returned; ``exited`` once the actor
    stopped taking messages, after which ``reason`` holds why; ``settled`` once either.
    """

    child_id: str
    incarnation: int
    supervisor: pykka.ActorRef[Any] | None
    path: str
    bus: EventBus | None = None
    started: threading.Event = field(default_factory=threading.Event)
    exited: threading.Event = field(default_factory=threading.Event)
    shutdown_requested: threading.Event = field(default_factory=threading.Event)
    settled: threading.Event = field(default_factory=threading.Event)
    reason: ExitReason | None = None
    kill: Callable[[], None] | None = None


_EXPOSED = "__galvana_exposed__"
_SCOPE = "__galvana_scope__"

READ_SCOPE = "read"
"""Look, never touch: runs, events, samples, instruments, the tree. Every caller has it."""

OPERATE_SCOPE = "operate"
"""Change what the cells do: start, pause, resume, stop and abort runs, the emergency
stop, imports, calibrations."""

ADMIN_SCOPE = "admin"
"""The scope of operator tools that act on the tree and its safety state (``kill``, an
interlock's reset, API keys). The API server grants it to the Unix socket's owner and
to TCP clients presenting the admin token; the HTTP gateway to admin keys."""

SCOPES = (READ_SCOPE, OPERATE_SCOPE, ADMIN_SCOPE)
"""Every scope, each granting the ones before it (an admin may operate and read)."""


def scopes_of(scope: str) -> tuple[str, ...]:
    """The scopes a caller holding ``scope`` has: itself and every lesser one.

    >>> scopes_of("operate")
    ('read', 'operate')
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; accepted: {', '.join(SCOPES)}")
    return SCOPES[: SCOPES.index(scope) + 1]


F = TypeVar("F", bound="Callable[..., Any]")


@overload
def exposed(method: F) -> F: ...


@overload
def exposed(*, name: str | None = None, scope: str | None = None) -> Callable[[F], F]: ...


def exposed(
    method: F | None = None, *, name: str | None = None, scope: str | None = None
) -> F | Callable[[F], F]:
    """Mark an actor method as callable through the actor message API.

    Its arguments and result must be plain data (what ``runtime.codec.Plain`` holds),
    and every parameter is annotated: the annotations are what a call's arguments are
    checked against (ranges with ``Annotated[int, msgspec.Meta(ge=1)]``). Raise
    :class:`~runtime.errors.CallError` to refuse a request. ``name`` publishes it under
    another name (``stop`` for a method that cannot be called ``stop``); ``scope``
    (:data:`OPERATE_SCOPE`, :data:`ADMIN_SCOPE`) restricts it to callers the server
    granted that scope; without one, every caller (they all hold :data:`READ_SCOPE`).
    """

    def mark(fn: F) -> F:
        setattr(fn, _EXPOSED, name or fn.__name__)
        if scope is not None:
            setattr(fn, _SCOPE, scope)
        return fn

    return mark(method) if method is not None else mark


class _Drain:
    """The wake-up :meth:`Actor.subscribe_drained`'s subscriptions send their actor."""

    def __repr__(self) -> str:
        return "DRAIN"


DRAIN: Final = _Drain()
"""Told to an actor when one of its drained subscriptions has messages queued: the
actor's :meth:`Actor.on_drain` runs (also to be told by a timer, to drain later)."""


def waker(ref: pykka.ActorRef[Any], message: object) -> Callable[[], None]:
    """An ``on_ready`` callback for an actor's bus subscription: tells ``ref`` ``message``.

    It runs in the publisher's thread and never raises. Once the actor has stopped
    taking messages it does nothing: a stopping actor closes its subscriptions only
    after that, and whoever publishes meanwhile (the recorder committing a run's last
    state at shutdown) must never fail for it.
    """

    def wake() -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            ref.tell(message)

    return wake


def exposed_scope(method: object) -> str | None:
    """The scope an exposed method requires (None: any caller)."""
    scope = getattr(method, _SCOPE, None)
    return scope if isinstance(scope, str) else None


class PendingReply:
    """A caller's answer, given later (OTP: the ``From`` that a ``{noreply}`` handler keeps
    for ``gen_server:reply``). Answered once, from any thread; later answers are ignored.
    A message that was told rather than asked has nobody to answer."""

    def __init__(self, future: pykka.Future[Any] | None) -> None:
        self._future = future
        self._lock = threading.Lock()

    @property
    def pending(self) -> bool:
        """Whether a caller still waits for this answer."""
        return self._future is not None

    def send(self, value: object) -> None:
        """Answer with ``value``."""
        future = self._take()
        if future is not None:
            future.set(value)

    def fail(self, error: BaseException) -> None:
        """Answer with ``error``, raised in the caller's thread."""
        future = self._take()
        if future is not None:
            future.set_exception(exc_info=(type(error), error, error.__traceback__))

    def _take(self) -> pykka.Future[Any] | None:
        with self._lock:
            future, self._future = self._future, None
        return future


@dataclass(eq=False)
class _Replies:
    """An actor's answers taken to give later, and its questions awaiting an answer
    (one attribute, so that subclasses' own names never clash with them)."""

    handling: Envelope[Any] | None = None
    deferred: PendingReply | None = None
    asked: int = 0
    # token -> (what to do with the answer, its timeout's timer)
    awaiting: dict[int, tuple[Callable[[object], None], threading.Timer | None]] = field(
        default_factory=dict
    )


@dataclass(frozen=True, slots=True)
class _Answered:
    """What an actor asked with :meth:`Actor.ask_later` answered (or ``pykka.Timeout``)."""

    token: int
    outcome: object


class _Relay(pykka.ThreadingFuture[Any]):
    """The future an asked actor answers: it tells the asker instead of holding the answer."""

    def __init__(self, asker: pykka.ActorRef[Any], token: int) -> None:
        super().__init__()
        self._asker = asker
        self._token = token

    def set(self, value: Any = None) -> None:
        self._tell(value)

    def set_exception(self, exc_info: Any = None) -> None:
        _, error, _ = exc_info if exc_info is not None else sys.exc_info()
        self._tell(error)

    def expire(self, timeout: float) -> None:
        """No answer within ``timeout`` s (a timer's thread)."""
        self._tell(pykka.Timeout(f"no answer within {timeout:g} s"))

    def _tell(self, outcome: object) -> None:
        # An asker that stopped meanwhile no longer wants the answer.
        with contextlib.suppress(pykka.ActorDeadError):
            self._asker.tell(_Answered(self._token, outcome))


_pending = threading.local()


def _take_pending_link() -> Link | None:
    link: Link | None = getattr(_pending, "link", None)
    _pending.link = None
    return link


def start_linked(cls: type[Actor], link: Link, *args: Any, **kwargs: Any) -> pykka.ActorRef[Any]:
    """Start ``cls`` with ``link`` attached (the supervisor's way of starting a child).

    Pykka constructs the actor inside ``start()``, in this thread, so the link is
    handed over through a thread-local that ``Actor.__init__`` takes.
    """
    _pending.link = link
    try:
        return cls.start(*args, **kwargs)
    finally:
        _pending.link = None


def lower_thread_priority(niceness: int) -> bool:
    """Add ``niceness`` to the calling thread's nice value (on Linux a thread's own; the
    threads it starts inherit it). False where the system does not allow it."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + niceness)
    except (OSError, AttributeError):
        return False
    return True


class Actor(pykka.ThreadingActor):
    """Base class of Galvana actors: Pykka's API, OTP's exit semantics.

    Override ``on_start``, ``on_receive`` (or expose methods for proxies),
    ``on_stop``, ``on_failure`` as with Pykka, and ``on_kill`` to release what
    must not outlive an actor its supervisor abandoned (a worker process, say).
    """

    # An actor its supervisor abandoned must not keep the process alive.
    use_daemon_thread = True

    # Added to the OS scheduling priority's nice value of this actor's thread (Linux):
    # compute-heavy actors (calibration) yield the CPU to the threads and processes that
    # must answer at once (the emergency stop, ``galvana estop``, the API's loop).
    niceness: ClassVar[int] = 0

    # API name -> attribute name, for the methods marked with @exposed.
    _exposed: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._exposed = {
            getattr(member, _EXPOSED): attr
            for attr, member in inspect.getmembers(cls)
            if getattr(member, _EXPOSED, None)
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._link: Link | None = _take_pending_link()
        self._failure: _ExcInfo | None = None
        self._replies = _Replies()
        if self._link is not None:
            self._link.kill = self.on_kill

    @property
    def link(self) -> Link | None:
        """This incarnation's link to its supervisor (None when unsupervised)."""
        return self._link

    def on_kill(self) -> None:
        """Called from the supervisor's thread when this actor is abandoned; must not block."""

    @property
    def stopping(self) -> bool:
        """Whether this actor's supervisor has asked it to stop: long work (a backlog of
        fits) checks it between pieces, so that the stop, queued behind that work, is
        taken within the child's shutdown timeout."""
        return self._link is not None and self._link.shutdown_requested.is_set()

    def subscribe_drained(
        self, bus: EventBus, pattern: str, maxsize: int = 100_000
    ) -> Subscription:
        """A lossless subscription to ``pattern`` that wakes this actor: when messages
        arrive on an empty queue, :data:`DRAIN` is told to the actor, whose
        :meth:`on_drain` then takes them in its own thread (``Subscription.drain``).
        One wake-up per burst, however many messages it holds; the publisher waits
        (backpressure) when ``maxsize`` are queued."""
        return bus.subscribe(
            pattern, mode="lossless", maxsize=maxsize, on_ready=waker(self.actor_ref, DRAIN)
        )

    def on_drain(self) -> None:
        """Take what this actor's drained subscriptions hold (see :meth:`subscribe_drained`)."""

    def on_receive(self, message: Any) -> Any:
        """:data:`DRAIN` runs :meth:`on_drain`; anything else is logged and ignored.
        Subclasses handle their own messages and pass the rest here."""
        if message is DRAIN:
            self.on_drain()
        else:
            where = self._link.path if self._link is not None else type(self).__name__
            logger.warning("%s ignored an unexpected message %r", where, message)
        return None

    def _actor_loop(self) -> None:
        if self.niceness:
            lower_thread_priority(self.niceness)
        try:
            self.on_start()
        except Exception:
            self._fail(sys.exc_info())  # type: ignore[arg-type]
        else:
            if self._link is not None:
                self._link.started.set()
                self._link.settled.set()
        while not self.actor_stopped.is_set():
            envelope = self.actor_inbox.get()
            replies = self._replies
            replies.handling, replies.deferred = envelope, None
            try:
                if isinstance(envelope.message, ApiCall):
                    response = self._api_call(envelope.message)
                elif isinstance(envelope.message, _Answered):
                    response = None
                    self._handle_answer(envelope.message)
                else:
                    response = self._handle_receive(envelope.message)
            except CallError as refusal:
                if not self._reply_failure(envelope, refusal):
                    logger.warning("%s refused a message: %s", self, refusal)
            except Exception:
                exc_info: _ExcInfo = sys.exc_info()  # type: ignore[assignment]
                self._reply_failure(envelope, exc_info[1])
                self._fail(exc_info)
            except BaseException:
                # Pykka's rule: KeyboardInterrupt and friends stop every actor.
                logger.debug("%r in %s; stopping all actors", sys.exc_info()[1], self)
                self._stop()
                pykka.ActorRegistry.stop_all()
            else:
                if envelope.reply_to is not None:
                    envelope.reply_to.set(response)
            finally:
                replies.handling, replies.deferred = None, None
        for _, timer in self._replies.awaiting.values():
            if timer is not None:
                timer.cancel()
        self._replies.awaiting.clear()
        self._actor_loop_teardown()
        self._report_exit()

    def _reply_failure(self, envelope: Envelope[Any], error: BaseException) -> bool:
        """Give a handler's exception to whoever waits for the answer; False if nobody."""
        if envelope.reply_to is not None:
            envelope.reply_to.set_exception(exc_info=(type(error), error, error.__traceback__))
            return True
        deferred = self._replies.deferred
        if deferred is not None and deferred.pending:
            deferred.fail(error)  # taken with reply_later, then the handler raised
            return True
        return False

    # --- answering later, asking without waiting (OTP's noreply) ---------------------------

    def reply_later(self) -> PendingReply:
        """Take the answer to the message being handled: this actor goes on to its next
        message without answering, and the returned :class:`PendingReply` answers later.

        For a handler whose answer depends on another actor (see :meth:`ask_later`).
        An exception the handler raises afterwards still reaches the caller.
        """
        envelope = self._replies.handling
        if envelope is None:
            raise RuntimeError("reply_later() is for the handler of a message, in its thread")
        reply = PendingReply(envelope.reply_to)
        envelope.reply_to = None
        self._replies.deferred = reply
        return reply

    def ask_later(
        self,
        ref: pykka.ActorRef[Any],
        message: object,
        then: Callable[[object], None],
        *,
        timeout: float | None = None,
    ) -> None:
        """Ask ``ref`` without waiting: ``then(outcome)`` runs later on this actor's
        thread, as a message handler would, with the answer or the exception the asked
        actor raised: ``pykka.ActorDeadError`` when it is gone or stops before answering,
        ``pykka.Timeout`` when ``timeout`` s pass first. Exactly one outcome is handled.
        """
        self._replies.asked += 1
        token = self._replies.asked
        relay = _Relay(self.actor_ref, token)
        timer = None
        if timeout is not None:
            timer = threading.Timer(timeout, relay.expire, (timeout,))
            timer.daemon = True
        self._replies.awaiting[token] = (then, timer)
        if timer is not None:
            timer.start()
        if not ref.is_alive():
            gone = pykka.ActorDeadError(f"{ref} is not running")
            relay.set_exception((pykka.ActorDeadError, gone, None))
            return
        ref.actor_inbox.put(Envelope(message, reply_to=relay))

    def _handle_answer(self, answer: _Answered) -> None:
        entry = self._replies.awaiting.pop(answer.token, None)
        if entry is None:
            return  # answered already (a timeout, then the late answer)
        then, timer = entry
        if timer is not None:
            timer.cancel()
        then(answer.outcome)

    def _api_call(self, call: ApiCall) -> object:
        if call.method not in self._exposed:
            offered = ", ".join(sorted(self._exposed)) or "nothing"
            raise CallError(
                "not_found",
                f"{self._name()} has no method {call.method!r}; it offers: {offered}",
            )
        method = getattr(self, self._exposed[call.method])
        scope = exposed_scope(method)
        if scope is not None and scope not in call.scopes:
            raise CallError(
                "unauthorized",
                f"{call.method} needs the {scope!r} scope: call it through the daemon's Unix "
                "socket as its owner, over TCP with the "
                + ("admin token" if scope == ADMIN_SCOPE else "token")
                + f", or over HTTP with an API key of scope {scope!r}",
            )
        args, kwargs = bind_arguments(method, self._call_name(call.method), call.args, call.kwargs)
        try:
            return method(*args, **kwargs)
        except CallError:
            raise
        except Exception as exc:
            # The caller's request failed, not the actor: answer, log, carry on.
            incident = uuid.uuid4().hex[:8]
            logger.exception(
                "%s.%s failed (incident %s); the actor carries on",
                self._name(),
                call.method,
                incident,
            )
            raise CallError(
                "internal",
                f"{self._name()}.{call.method} failed inside the daemon ({type(exc).__name__}); "
                f"the daemon log has the details (incident {incident})",
            ) from None

    def _call_name(self, method: str) -> str:
        """How a client names the call: ``runs.show`` (the API path below the root)."""
        if self._link is None:
            return f"{type(self).__name__}.{method}"
        _, _, below = self._link.path.partition("/")
        return f"{below}.{method}" if below else method

    def _name(self) -> str:
        return self._link.path if self._link is not None else type(self).__name__

    def _fail(self, exc_info: _ExcInfo) -> None:
        """End the actor with reason ``error``: log, unregister, run ``on_failure``."""
        self._handle_failure(*exc_info)
        try:
            self.on_failure(*exc_info)
        except Exception:
            logger.exception("on_failure of %s raised", self)

    def _handle_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Also reached from Pykka's _stop() when on_stop raises; the first failure wins.
        if exception_type is not None and exception_value is not None:
            if self._failure is None:
                self._failure = (exception_type, exception_value, traceback)
            logger.error(
                "Unhandled exception in %s",
                self,
                exc_info=(exception_type, exception_value, traceback),
            )
        pykka.ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()

    def _exit_reason(self) -> ExitReason:
        if self._failure is not None:
            _, exc, _ = self._failure
            return ExitReason("error", f"{type(exc).__name__}: {exc}", exc)
        if self.stopping:
            return ExitReason("shutdown")
        return ExitReason("normal")

    def _report_exit(self) -> None:
        link = self._link
        if link is None:
            return
        reason = self._exit_reason()
        link.reason = reason
        link.exited.set()
        link.settled.set()
        if link.supervisor is not None:
            # A supervisor that is gone already has whoever stopped it handling the tree.
            with contextlib.suppress(pykka.ActorDeadError):
                link.supervisor.tell(
                    ChildExited(link.child_id, link.incarnation, reason.kind, reason.detail)
                )
