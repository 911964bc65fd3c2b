"""One call into the actor tree, as every front end makes it: the socket API and the HTTP
gateway alike.

:func:`ask_actor` resolves the actor at a path and asks it through its mailbox (the
actor checks the method's scope and arguments, ``runtime.actor``); :func:`run_urgent`
runs an urgent route (the emergency stop) in the calling thread, past every mailbox,
after the same checks. Both block: call them from a worker thread
(``trio.to_thread.run_sync``), never from an event loop. Every failure comes out as an
:class:`~runtime.errors.ApiError` whose code is the API's (``not_found``, ``timeout``,
``internal``, or the actor's own refusal: ``conflict``, ``refused``, ...), with a short
message; an unexpected exception is logged here, never shown.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pykka

from runtime.actor import OPERATE_SCOPE
from runtime.api.protocol import ErrorCode
from runtime.arguments import bind_arguments
from runtime.errors import ApiError, CallError
from runtime.messages import ApiCall

__all__ = ["URGENT_SCOPE", "Resolver", "ask_actor", "run_urgent"]

logger = logging.getLogger("galvana.api")

Resolver = Callable[[str], "pykka.ActorRef[Any]"]
"""Finds the actor at a path; raises :class:`CallError` ``not_found`` when there is none."""

URGENT_SCOPE = OPERATE_SCOPE
"""What an urgent route (the emergency stop) needs: every caller allowed to run a cell
may stop it."""


def ask_actor(
    resolve: Resolver,
    path: str,
    method: str,
    args: Sequence[object],
    kwargs: Mapping[str, object],
    *,
    scopes: tuple[str, ...],
    timeout: float,
) -> object:
    """Resolve the actor at ``path`` and ask it to run ``method`` (blocking)."""
    try:
        ref = resolve(path)
        return ref.ask(ApiCall(method, tuple(args), dict(kwargs), scopes), timeout=timeout)
    except CallError as exc:
        raise ApiError(exc.code, str(exc)) from None  # the actor's own code goes through
    except pykka.Timeout:
        raise ApiError(
            ErrorCode.TIMEOUT, f"{path}.{method} did not answer within {timeout} s"
        ) from None
    except pykka.ActorDeadError:
        raise ApiError(ErrorCode.NOT_FOUND, f"actor {path!r} is not running") from None
    except Exception as exc:
        logger.exception("%s.%s failed", path, method)
        raise ApiError(
            ErrorCode.INTERNAL,
            f"{path}.{method} failed inside the daemon ({type(exc).__name__}); "
            "the daemon log has the details",
        ) from None


def run_urgent(
    route: Callable[..., object],
    name: str,
    args: Sequence[object],
    kwargs: Mapping[str, object],
    scopes: tuple[str, ...],
) -> object:
    """Check the scope and the arguments, then run an urgent route's function here.

    ``name`` is how the call is reported (``instruments.estop``).
    """
    if URGENT_SCOPE not in scopes:
        raise ApiError(ErrorCode.UNAUTHORIZED, f"{name} needs the {URGENT_SCOPE!r} scope")
    try:
        bound_args, bound_kwargs = bind_arguments(route, name, list(args), dict(kwargs))
        return route(*bound_args, **bound_kwargs)
    except CallError as exc:
        raise ApiError(exc.code, str(exc)) from None
    except Exception as exc:
        logger.exception("%s failed", name)
        raise ApiError(
            ErrorCode.INTERNAL,
            f"{name} failed inside the daemon ({type(exc).__name__}); "
            "the daemon log has the details",
        ) from None
