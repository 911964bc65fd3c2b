"""Snapshots of every screen (pytest-textual-snapshot), fed by runs a real daemon recorded
(``_recorded.py``: a twin run on the simulated potentiostat, an imported instrument
file, the daemon's calibration of the twin run, a ``galvana sweep`` store), at 80x24
and larger.

Review a changed layout with ``pytest tests/tui/test_snapshots.py`` (the report shows
both images) and accept it with ``--snapshot-update``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from textual.pilot import Pilot

from tui import ConnectionStatus, GalvanaApp, RunScreen
from tui import _format as tui_format
from tui._sweep_screen import SweepScreen, read_sweep

from ._daemon import until
from ._recorded import (
    SWEEP,
    calibration_report,
    open_run,
    recorded,
    runs_listed,
    two_runs_compared,
)

Compare = Callable[..., bool]
Before = Callable[[Pilot[Any]], Awaitable[None]]


@pytest.fixture(autouse=True)
def _stable(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Times show in local time; the snapshots are taken in UTC wherever they run, on a
    # "today" that is not the recording's day (so dates show, whenever the tests run).
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setattr(tui_format, "local_today", lambda: "2000-01-01")
    # A busy test machine must not slow the frame rate (the status line would say so).
    monkeypatch.setattr(RunScreen, "CPU_BUDGET", 100.0)
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _app() -> GalvanaApp:
    return GalvanaApp(link=recorded().link())


def _snap(snap_compare: Compare, before: Before, size: tuple[int, int] = (80, 24)) -> bool:
    return snap_compare(_app(), terminal_size=size, run_before=before)


# --- the runs -----------------------------------------------------------------------------


def test_runs(snap_compare: Compare) -> None:
    assert _snap(snap_compare, runs_listed)


def test_runs_one_pinned_large(snap_compare: Compare) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await runs_listed(pilot)
        await pilot.press("down", "p")
        await until(pilot, lambda: not pilot.app._notifications, what="the note to go")

    assert _snap(snap_compare, before, (140, 36))


# --- a twin run -----------------------------------------------------------------------------


def test_twin_run(snap_compare: Compare) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await open_run(pilot, recorded().twin)

    assert _snap(snap_compare, before)


def test_twin_run_wide(snap_compare: Compare) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await open_run(pilot, recorded().twin)

    assert _snap(snap_compare, before, (170, 48))


def test_twin_run_against_time_last_cycle(snap_compare: Compare) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await open_run(pilot, recorded().twin, "x", "z")

    assert _snap(snap_compare, before, (120, 36))


def test_twin_run_first_cycle_in_si(snap_compare: Compare) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await open_run(pilot, recorded().twin, "z", "left_square_bracket", "u")
        await until(pilot, lambda: not pilot.app._notifications, what="the note to go")

    assert _snap(snap_compare, before, (120, 36))


def test_posterior_history(snap_compare: Compare) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await open_run(pilot, recorded().twin, "h")

    assert _snap(snap_compare, before, (120, 36))


def test_calibration_report(snap_compare: Compare) -> None:
    assert _snap(snap_compare, calibration_report, (120, 36))


def test_abort_asks_first(snap_compare: Compare) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await open_run(pilot, recorded().twin, "a")

    assert _snap(snap_compare, before)


def test_help(snap_compare: Compare) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await open_run(pilot, recorded().twin, "f1")

    assert _snap(snap_compare, before)


# --- an imported run, a comparison, a sweep ------------------------------------------------


def test_imported_run(snap_compare: Compare) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await open_run(pilot, recorded().imported)

    assert _snap(snap_compare, before, (120, 36))


def test_two_runs_compared(snap_compare: Compare) -> None:
    assert _snap(snap_compare, two_runs_compared, (120, 36))


def test_sweep_heatmap(snap_compare: Compare) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await pilot.app.push_screen(SweepScreen(read_sweep(SWEEP)))
        await pilot.pause()

    assert _snap(snap_compare, before, (100, 30))


def test_sweep_heatmap_another_output(snap_compare: Compare) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await pilot.app.push_screen(SweepScreen(read_sweep(SWEEP)))
        await pilot.press("o", "o")
        await pilot.pause()

    assert _snap(snap_compare, before)


# --- the daemon -------------------------------------------------------------------------------


def test_actors(snap_compare: Compare) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await pilot.press("f3")
        table = pilot.app.screen.query_one("#actors")
        await until(pilot, lambda: table.row_count > 0, what="the tree")

    assert _snap(snap_compare, before)


def test_replay(snap_compare: Compare) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await pilot.press("f4")
        table = pilot.app.screen.query_one("#replay-runs")
        await until(pilot, lambda: table.row_count == len(recorded().runs), what="the runs")
        await pilot.press("plus")

    assert _snap(snap_compare, before)


def test_connection_lost_banner(snap_compare: Compare) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await runs_listed(pilot)
        status = ConnectionStatus(
            "down",
            "unix:/var/lib/galvana/galvana.sock",
            "nothing is listening at unix:/var/lib/galvana/galvana.sock: "
            "is `galvana daemon` running?",
            3,
            8.0,
        )
        link = pilot.app.link
        link.set_status(status, pilot.app)  # type: ignore[attr-defined]
        await pilot.pause()

    assert _snap(snap_compare, before)
