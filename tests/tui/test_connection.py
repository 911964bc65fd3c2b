"""The TUI's asyncio client against a real daemon: calls, events, lag, reconnection."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from runtime.client import Event
from runtime.errors import ApiError, ConnectionLost
from runtime.messages import RunStateChanged
from tui import Address, Connection, ConnectionStatus

from ._daemon import Daemon, record_run, run_async


async def _until(condition: object, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


@run_async
async def test_subscriptions_survive_a_daemon_restart(tmp_path: Path) -> None:
    data = tmp_path / "d"
    record_run(data, batches=4)
    daemon = Daemon(data)
    daemon.start()
    statuses: list[ConnectionStatus] = []
    events: list[Event] = []
    connection = Connection(
        Address(socket_path=daemon.socket), on_status=statuses.append, retry_s=0.2
    )
    task = asyncio.create_task(connection.run())
    try:
        await _until(lambda: connection.status.connected)
        connection.subscribe("run/*/state", events.append)
        runs = await connection.call("runs", "list")
        assert [r["id"] for r in runs] == ["src"]
        with pytest.raises(ApiError, match="no run 'nope'") as info:
            await connection.call("runs", "show", "nope")
        assert info.value.code == "not_found"

        daemon.stop()
        await _until(lambda: connection.status.state == "down")
        with pytest.raises(ConnectionLost):
            await connection.call("runs", "list")
        daemon.start()
        await _until(lambda: connection.status.connected)

        # The subscription was sent again on the new connection: a new run's states arrive.
        run = await connection.call("runs", "replay", "src", "max")
        await _until(
            lambda: any(
                isinstance(e.message, RunStateChanged)
                and e.message.run_id == run["id"]
                and e.message.state == "completed"
                for e in events
            )
        )
        assert [s.state for s in statuses].count("connected") == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        daemon.stop()
