"""The README's pictures of the TUI (not a test: run it after a change to what it shows).

    PYTHONPATH=. python -m tests.tui.screenshots [--out docs/tui]

Each view is opened on the runs a real daemon recorded (``recorded/``, as the snapshot
tests see them) and saved with the TUI's own export (``ctrl+s``: the screen as SVG, its
plot in front as PNG: the README shows the SVGs alone), at 120x36.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import RichLog

from tui import GalvanaApp, RunScreen
from tui._calibration_screen import CalibrationScreen
from tui._compare_screen import CompareScreen
from tui._export import export_pictures
from tui._sweep_screen import SweepScreen, read_sweep

from ._daemon import until
from ._recorded import SWEEP, recorded

ROOT = Path(__file__).resolve().parents[2]
SIZE = (120, 36)

View = Callable[[Pilot[Any]], Awaitable[None]]


async def _run(pilot: Pilot[Any], run_id: str, *keys: str) -> None:
    screen = RunScreen(run_id)
    await pilot.app.push_screen(screen)
    await until(pilot, lambda: screen.up_to_date, what="the run")
    log = screen.query_one("#run-log", RichLog)
    await pilot.pause()
    log.scroll_end(animate=False, immediate=True)
    for key in keys:
        await pilot.press(key)
        await until(pilot, lambda: screen.up_to_date, what="the frame")
    await pilot.pause()


async def _runs(pilot: Pilot[Any]) -> None:
    table = pilot.app.screen.query_one("#runs")
    await until(pilot, lambda: table.row_count == len(recorded().runs), what="the runs")


async def _twin(pilot: Pilot[Any]) -> None:
    await _run(pilot, recorded().twin)


async def _last_cycle(pilot: Pilot[Any]) -> None:
    await _run(pilot, recorded().twin, "x", "z")


async def _history(pilot: Pilot[Any]) -> None:
    await _run(pilot, recorded().twin, "h")


async def _calibration(pilot: Pilot[Any]) -> None:
    await _run(pilot, recorded().twin, "C")
    screen = pilot.app.screen
    assert isinstance(screen, CalibrationScreen)
    await until(pilot, lambda: screen.result is not None, what="the calibration")
    await pilot.pause()


async def _imported(pilot: Pilot[Any]) -> None:
    await _run(pilot, recorded().imported)


async def _compare(pilot: Pilot[Any]) -> None:
    rec = recorded()
    screen = CompareScreen(rec.twin, rec.imported)
    await pilot.app.push_screen(screen)
    await until(pilot, lambda: screen.loaded, what="both runs")
    await pilot.pause()


async def _sweep(pilot: Pilot[Any]) -> None:
    await pilot.app.push_screen(SweepScreen(read_sweep(SWEEP)))
    await pilot.pause()


VIEWS: dict[str, View] = {
    "runs": _runs,
    "twin-run": _twin,
    "last-cycle": _last_cycle,
    "posterior-history": _history,
    "calibration-report": _calibration,
    "imported-run": _imported,
    "compare": _compare,
    "sweep": _sweep,
}


async def _shoot(name: str, view: View, out: Path) -> list[Path]:
    app = GalvanaApp(link=recorded().link())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await view(pilot)
        return export_pictures(app, out, f"tui-{name}", png=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "tui"))
    args = parser.parse_args()
    os.environ["TZ"] = "UTC"
    time.tzset()
    out = Path(args.out)
    for name, view in VIEWS.items():
        for path in asyncio.run(_shoot(name, view, out)):
            sys.stdout.write(f"{path}\n")


if __name__ == "__main__":
    main()
