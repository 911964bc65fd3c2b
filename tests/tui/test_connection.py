"""The TUI's link (the async client on Textual's asyncio loop) against a real daemon:
calls, events, reconnection with the runtime's backoff."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from runtime.client import Event
from runtime.errors import ApiError, ConnectionLost
from runtime.messages import RunStateChanged
from runtime.supervisor import Backoff
from tui import Address, Connection, ConnectionStatus

from ._daemon import Daemon, record_run, run_async


class Changes:
    """Wakes a waiting test whenever what it watches changes (a status, an event)."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()

    def note(self, *_: object) -> None:
        self._changed.set()

    async def until(self, condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not condition():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None


@run_async
async def test_subscriptions_survive_a_daemon_restart(tmp_path: Path) -> None:
    data = tmp_path / "d"
    record_run(data, batches=4)
    daemon = Daemon(data)
    daemon.start()
    changes = Changes()
    statuses: list[ConnectionStatus] = []
    events: list[Event] = []

    def status(value: ConnectionStatus) -> None:
        statuses.append(value)
        changes.note()

    def event(value: Event) -> None:
        events.append(value)
        changes.note()

    fast = Backoff(initial_s=0.2, max_s=0.2, jitter=0.0)
    connection = Connection(Address(socket_path=daemon.socket), on_status=status, backoff=fast)
    task = asyncio.create_task(connection.run())
    try:
        await changes.until(lambda: connection.status.connected, "the connection")
        connection.subscribe("run/*/state", event)
        runs = await connection.call("runs", "list")
        assert [r["id"] for r in runs] == ["src"]
        with pytest.raises(ApiError, match="no run 'nope'") as info:
            await connection.call("runs", "show", "nope")
        assert info.value.code == "not_found"

        daemon.stop()
        await changes.until(lambda: connection.status.state == "down", "the loss")
        with pytest.raises(ConnectionLost):
            await connection.call("runs", "list")
        # While it is gone every attempt fails, each said in words, paced by the backoff.
        await changes.until(
            lambda: connection.status.state == "down" and connection.status.attempt >= 2,
            "a second failed attempt",
        )
        assert "no daemon socket at" in connection.status.message
        assert connection.status.retry_in_s == 0.2
        daemon.start()
        await changes.until(lambda: connection.status.connected, "the reconnection")

        # The subscription was sent again on the new connection: a new run's states arrive.
        run = await connection.call("runs", "replay", "src", "max")
        await changes.until(
            lambda: any(
                isinstance(e.message, RunStateChanged)
                and e.message.run_id == run["id"]
                and e.message.state == "completed"
                for e in events
            ),
            "the replay's states",
        )
        assert [s.state for s in statuses].count("connected") == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        daemon.stop()
