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

from tui import GalvanaApp
from tui._export import export_pictures
from tui._sweep_screen import SweepScreen, read_sweep

from ._recorded import (
    SWEEP,
    calibration_report,
    open_run,
    recorded,
    runs_listed,
    two_runs_compared,
)

ROOT = Path(__file__).resolve().parents[2]
SIZE = (120, 36)

View = Callable[[Pilot[Any]], Awaitable[None]]


async def _twin(pilot: Pilot[Any]) -> None:
    await open_run(pilot, recorded().twin)


async def _last_cycle(pilot: Pilot[Any]) -> None:
    await open_run(pilot, recorded().twin, "x", "z")


async def _history(pilot: Pilot[Any]) -> None:
    await open_run(pilot, recorded().twin, "h")


async def _imported(pilot: Pilot[Any]) -> None:
    await open_run(pilot, recorded().imported)


async def _sweep(pilot: Pilot[Any]) -> None:
    await pilot.app.push_screen(SweepScreen(read_sweep(SWEEP)))
    await pilot.pause()


VIEWS: dict[str, View] = {
    "runs": runs_listed,
    "twin-run": _twin,
    "last-cycle": _last_cycle,
    "posterior-history": _history,
    "calibration-report": calibration_report,
    "imported-run": _imported,
    "compare": two_runs_compared,
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
