"""The runs a real daemon recorded for the snapshot tests (``record_fixtures.py`` made
them), served as the daemon served them.

``runs.msgpack`` holds what the daemon answered (``runs.list``, ``runs.show`` of each
run, its supervision tree, a calibration's result) and each run's events as its event
log holds them, encoded; :meth:`Recorded.link` answers the TUI's calls from them, each
event decoded to the plain form ``runs.events`` sends (``runtime.codec.unpack_plain``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
from textual.pilot import Pilot
from textual.widgets import RichLog

from runtime.codec import decode, unpack_plain
from runtime.errors import ApiError
from tui import RunScreen
from tui._calibration_screen import CalibrationScreen
from tui._compare_screen import CompareScreen

from ._daemon import until
from ._fake import FakeLink

RECORDED = Path(__file__).parent / "recorded"
SWEEP = RECORDED / "sweep.zarr"
CALIBRATION_JOB = "runs/calibration-recorded"


@dataclass(frozen=True)
class Recorded:
    """The recorded runs: ``twin`` (a twin run on the simulated potentiostat) and
    ``imported`` (an instrument file imported)."""

    twin: str
    imported: str
    runs: list[dict[str, Any]]
    records: dict[str, dict[str, Any]]
    events: dict[str, list[dict[str, Any]]]
    encoded: dict[str, list[bytes]]
    calibration: dict[str, Any]
    tree: list[dict[str, Any]]

    def messages(self, run_id: str) -> list[object]:
        """A run's recorded messages, decoded, in order."""
        return [decode(e) for e in self.encoded[run_id]]

    def link(self) -> FakeLink:
        """A daemon link that answers from the recording."""

        def show(run_id: str) -> dict[str, Any]:
            if run_id not in self.records:
                raise ApiError("not_found", f"no run {run_id!r}")
            return dict(self.records[run_id])

        def events(run_id: str, from_seq: int = 1, limit: int = 1000) -> list[dict[str, Any]]:
            return [e for e in self.events[run_id] if e["seq"] >= from_seq][:limit]

        def calibrate(run_ids: list[str], spec: dict[str, Any], arrays: bool = False) -> Any:
            assert run_ids == [self.twin]
            assert arrays
            return {"job": CALIBRATION_JOB.split("/")[1], "path": CALIBRATION_JOB}

        return FakeLink(
            {
                ("runs", "list"): lambda state=None: [dict(r) for r in self.runs],
                ("runs", "show"): show,
                ("runs", "events"): events,
                ("runs", "calibrate"): calibrate,
                (CALIBRATION_JOB, "result"): lambda: self.calibration,
                ("", "tree"): self.tree,
            }
        )


@functools.cache
def recorded() -> Recorded:
    """The recording (read once)."""
    document = msgpack.unpackb((RECORDED / "runs.msgpack").read_bytes(), raw=False)
    encoded = {
        run_id: [bytes(value) for _, value in stream]
        for run_id, stream in document["events"].items()
    }
    events = {
        run_id: [{"seq": seq, "message": unpack_plain(value)} for seq, value in stream]
        for run_id, stream in document["events"].items()
    }
    twin = str(document["twin"])
    imported = next(r["id"] for r in document["runs"] if str(r["source"]).startswith("import:"))
    return Recorded(
        twin=twin,
        imported=imported,
        runs=document["runs"],
        records=document["records"],
        events=events,
        encoded=encoded,
        calibration=document["calibration"],
        tree=document["tree"],
    )


# --- the views, opened on the recording (the snapshots and the README's pictures) --------


async def open_run(pilot: Pilot[Any], run_id: str, *keys: str) -> RunScreen:
    """Open a recorded run, drawn, its log at its end; then press ``keys``."""
    screen = RunScreen(run_id)
    await pilot.app.push_screen(screen)
    await until(pilot, lambda: screen.up_to_date, what="the run, drawn")
    log = screen.query_one("#run-log", RichLog)
    # The log scrolls to its end when it has laid out its lines, which is a matter of
    # timing: scroll it there now, so that every picture shows the same lines.
    await until(pilot, lambda: bool(log.lines), what="the log")
    await pilot.pause()
    log.scroll_end(animate=False, immediate=True)
    await pilot.pause()
    for key in keys:
        await pilot.press(key)
        await until(pilot, lambda: screen.up_to_date, what="the frame")
    await pilot.pause()
    return screen


async def runs_listed(pilot: Pilot[Any]) -> None:
    """Until the runs table lists every recorded run."""
    table = pilot.app.screen.query_one("#runs")
    await until(pilot, lambda: table.row_count == len(recorded().runs), what="the runs")


async def calibration_report(pilot: Pilot[Any]) -> None:
    """The twin run's calibration report, shown."""
    await open_run(pilot, recorded().twin, "C")
    screen = pilot.app.screen
    assert isinstance(screen, CalibrationScreen)
    await until(pilot, lambda: screen.result is not None, what="the calibration")
    await pilot.pause()


async def two_runs_compared(pilot: Pilot[Any]) -> None:
    """The twin run and the imported one overlaid."""
    rec = recorded()
    screen = CompareScreen(rec.twin, rec.imported)
    await pilot.app.push_screen(screen)
    await until(pilot, lambda: screen.loaded, what="both runs")
    await pilot.pause()
