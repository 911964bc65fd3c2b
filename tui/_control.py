"""Steering a run from the TUI: pause, resume, stop, abort, the emergency stop, and
resetting an instrument's latched interlock.

Each returns what a person should read afterwards, in words; API refusals
(``conflict``: the run already ended, ...) are raised as :class:`ApiError` for the
screen to show.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from runtime.errors import ApiError
from tui._connection import DaemonLink

__all__ = [
    "ESTOP_REASON",
    "abort_run",
    "emergency_stop",
    "pause_run",
    "reset_interlock",
    "resume_run",
    "stop_run",
]

ESTOP_REASON: Final = "emergency stop (TUI)"


async def pause_run(link: DaemonLink, run_id: str, *, immediate: bool = False) -> dict[str, Any]:
    """Pause at the next checkpoint, or at once when ``immediate``; the run's record."""
    result: dict[str, Any] = await link.call("runs", "pause", run_id, immediate)
    return result


async def resume_run(link: DaemonLink, run_id: str) -> dict[str, Any]:
    """Resume a paused run (or withdraw a pause not yet reached)."""
    result: dict[str, Any] = await link.call("runs", "resume", run_id)
    return result


async def stop_run(link: DaemonLink, run_id: str) -> dict[str, Any]:
    """Finish cleanly (the cell off); the run ends ``stopped``."""
    result: dict[str, Any] = await link.call("runs", "stop", run_id)
    return result


async def abort_run(
    link: DaemonLink, run_id: str, reason: str = "aborted from the TUI"
) -> dict[str, Any]:
    """The cell off at once; the run ends ``aborted`` with ``reason`` (which its record
    then shows). ``runs.abort`` cuts the run's cell through its instrument's interlock
    first, never waiting behind the run's own mailbox."""
    result: dict[str, Any] = await link.call("runs", "abort", run_id, reason)
    return result


async def reset_interlock(link: DaemonLink, instrument_id: str) -> dict[str, Any]:
    """Unlatch ``instrument_id``'s safety interlock (after a trip or an emergency stop);
    ``{"instrument": id, "latched": False}`` once it accepts runs again."""
    result: dict[str, Any] = await link.call("instruments", "reset", instrument_id)
    return result


async def emergency_stop(link: DaemonLink, run_id: str, instrument_id: str = "") -> list[str]:
    """Cut the cell now: the instrument's emergency stop and the run's abort, together.

    Never asks, never waits for one before sending the other. The instruments
    supervisor's ``estop`` goes straight to the instrument's safety interlock (never
    through the instrument actor's mailbox); the run's abort also turns the cell off.
    """
    calls: list[Any] = [abort_run(link, run_id, ESTOP_REASON)]
    if instrument_id:
        calls.append(link.call("instruments", "estop", instrument_id, ESTOP_REASON, timeout=5.0))
    results = await asyncio.gather(*calls, return_exceptions=True)
    notes: list[str] = []
    aborted = results[0]
    if isinstance(aborted, ApiError):
        if aborted.code == "conflict":
            notes.append(f"the run had already ended ({aborted})")
        else:
            notes.append(f"ABORT FAILED: {aborted.code}: {aborted}")
    elif isinstance(aborted, BaseException):
        notes.append(f"ABORT FAILED: {aborted}")
    else:
        notes.append(f"run {run_id} aborted: {aborted.get('state', '?')}")
    if instrument_id:
        tripped = results[1]
        if isinstance(tripped, ApiError) and tripped.code == "not_found":
            notes.append(
                f"instrument {instrument_id} has no emergency stop on the API; "
                "the run's abort turned its cell off"
            )
        elif isinstance(tripped, BaseException):
            notes.append(f"INSTRUMENT EMERGENCY STOP FAILED on {instrument_id}: {tripped}")
        else:
            notes.append(f"instrument {instrument_id}: emergency stop latched, cell off")
    else:
        notes.append("no instrument bound to this run: the run's abort turned the cell off")
    return notes
