"""Snapshots of every screen (pytest-textual-snapshot): the layout at 80x24 and when larger.

Review a changed layout with ``pytest tests/tui/test_snapshots.py`` (the report shows
both images) and accept it with ``--snapshot-update``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from textual.pilot import Pilot

from tui import ConnectionStatus, GalvanaApp, RunScreen

from ._daemon import until
from ._data import LIVE, cv_batches, fake_link, paused, posterior_at, truth_of, twin_for
from ._fake import FakeLink

Compare = Callable[..., bool]


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Times show in local time; the snapshots are taken in UTC wherever they run.
    monkeypatch.setenv("TZ", "UTC")
    # A busy test machine must not slow the frame rate (the status line would say so).
    monkeypatch.setattr(RunScreen, "CPU_BUDGET", 100.0)
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _app() -> tuple[GalvanaApp, FakeLink]:
    link = fake_link()
    return GalvanaApp(link=link), link


async def _open_run(pilot: Pilot[Any], link: FakeLink, *, twin: bool = True) -> None:
    await pilot.app.push_screen(RunScreen(LIVE))
    await pilot.pause()
    batches = cv_batches(LIVE, 40)
    if twin:
        link.publish(f"run/{LIVE}/truth", truth_of(LIVE))
    for k, batch in enumerate(batches[:30]):
        link.publish(f"run/{LIVE}/samples", batch)
        if twin:
            link.publish(f"run/{LIVE}/twin", twin_for(batch))
            if k % 3 == 0:
                link.publish(f"run/{LIVE}/posterior", posterior_at(LIVE, k // 3))
    link.publish(f"run/{LIVE}/state", paused(LIVE))
    await _drawn(pilot)


async def _drawn(pilot: Pilot[Any]) -> None:
    """Until the run screen shows everything it was given."""
    screen = pilot.app.screen
    assert isinstance(screen, RunScreen)
    await until(pilot, lambda: screen.up_to_date, what="the frame")


def test_runs(snap_compare: Compare) -> None:
    app, _ = _app()
    assert snap_compare(app, terminal_size=(80, 24))


def test_runs_filtered_large(snap_compare: Compare) -> None:
    app, _ = _app()
    assert snap_compare(app, press=["slash", *"ferro", "enter"], terminal_size=(140, 36))


def test_run(snap_compare: Compare) -> None:
    app, link = _app()

    async def before(pilot: Pilot[Any]) -> None:
        await _open_run(pilot, link)

    assert snap_compare(app, terminal_size=(80, 24), run_before=before)


def test_run_against_time(snap_compare: Compare) -> None:
    app, link = _app()

    async def before(pilot: Pilot[Any]) -> None:
        await _open_run(pilot, link, twin=False)
        await pilot.press("x")
        await _drawn(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=before)


def test_run_wide(snap_compare: Compare) -> None:
    app, link = _app()

    async def before(pilot: Pilot[Any]) -> None:
        await _open_run(pilot, link)

    assert snap_compare(app, terminal_size=(170, 48), run_before=before)


def test_abort_asks_first(snap_compare: Compare) -> None:
    app, link = _app()

    async def before(pilot: Pilot[Any]) -> None:
        await _open_run(pilot, link)
        await pilot.press("a")

    assert snap_compare(app, terminal_size=(80, 24), run_before=before)


def test_actors(snap_compare: Compare) -> None:
    app, _ = _app()
    assert snap_compare(app, press=["f3", "_"], terminal_size=(80, 24))


def test_replay(snap_compare: Compare) -> None:
    app, _ = _app()
    assert snap_compare(app, press=["f4", "_", "plus"], terminal_size=(80, 24))


def test_help(snap_compare: Compare) -> None:
    app, link = _app()

    async def before(pilot: Pilot[Any]) -> None:
        await _open_run(pilot, link)
        await pilot.press("f1")

    assert snap_compare(app, terminal_size=(80, 24), run_before=before)


def test_connection_lost_banner(snap_compare: Compare) -> None:
    app, link = _app()

    async def before(pilot: Pilot[Any]) -> None:
        await pilot.pause()
        status = ConnectionStatus(
            "down",
            "unix:/var/lib/galvana/galvana.sock",
            "nothing is listening at unix:/var/lib/galvana/galvana.sock: "
            "is `galvana daemon` running?",
            3,
            8.0,
        )
        link.set_status(status, pilot.app)
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=before)
