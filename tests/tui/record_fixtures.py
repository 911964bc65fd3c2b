"""Record the runs the TUI's snapshot tests show (not a test: run it when what a daemon
records changes, and review the snapshots it changes).

    PYTHONPATH=. python -m tests.tui.record_fixtures

Everything is made by the real parts, as a lab would make it:

- a real daemon runs a two-cycle twin run on its simulated potentiostat to its end
  (``_recording.record_twin_run``), and calibrates the model on it
  (``runs.calibrate`` with ``arrays``, the calibration report's request);
- ``galvana import`` records an instrument export (an Autolab text file of a simulated
  CV, written by the file readers' test writers) into the same data directory, with
  its instrument and reference electrode;
- the daemon, started again, lists the runs and shows each (``runs.list``, ``runs.show``),
  and its supervision tree;
- ``galvana sweep`` sweeps k0 and the scan rate of a quasi-reversible CV.

They are written to ``tests/tui/recorded/``: ``runs.msgpack`` (the runs list, each run's
record, each run's events as the event log holds them, encoded, and the calibration's
result, and the tree) and ``sweep.zarr/`` (the sweep's store). Snapshots need them fixed: a run
recorded again has new ids, times and noise.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import msgpack
import yaml

from galvana.cli import main
from runtime import topics
from runtime.client import Client
from runtime.event_store import EventStore
from tests.hal.files import writers
from tests.hal.files.conftest import simulated_cv
from tests.physics.conftest import e_scenario

from ._daemon import Daemon
from ._recording import record_twin_run

OUT = Path(__file__).parent / "recorded"
CALIBRATION_TIMEOUT_S = 900.0


def _sweep_scenario() -> dict[str, Any]:
    """A quasi-reversible CV with Ru and Cdl, coarse: a few ms per point."""
    doc = e_scenario(
        waveform={"type": "cv", "E_start": 0.3, "E_vertex": -0.3, "scan_rate": 0.1},
        kinetics={"model": "butler-volmer", "E0": 0.0, "k0": 1e-5, "alpha": 0.5},
        cell={"Ru": 100.0, "Cdl": 1e-7},
    )
    doc["numerics"] = {"potential_step": 5e-3}
    return doc


def record(out: Path = OUT) -> None:
    """Record everything into ``out`` (replaced)."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "d"
        twin = record_twin_run(data)
        export = Path(tmp) / "cv-gc3mm.txt"
        export.write_bytes(writers.autolab(simulated_cv()))
        status = main(
            [
                "import",
                str(export),
                "--data",
                str(data),
                "--meta",
                "instrument=Autolab PGSTAT302N",
                "--meta",
                "reference=Ag/AgCl (3 M KCl)",
                "--meta",
                "area=0.0707cm2",
            ]
        )
        if status != 0:
            raise SystemExit(f"galvana import failed ({status})")
        daemon = Daemon(data)
        daemon.start()
        try:
            with Client(socket_path=daemon.socket, timeout=60) as client:
                runs: list[dict[str, Any]] = client.call("runs", "list")
                records = {r["id"]: client.call("runs", "show", r["id"]) for r in runs}
                tree = client.call("", "tree")
                job = client.call("runs", "calibrate", [twin.run_id], twin.record["spec"], True)
                calibration = client.call(job["path"], "result", timeout=CALIBRATION_TIMEOUT_S)
        finally:
            daemon.stop()
        events: dict[str, list[list[Any]]] = {}
        with EventStore(data / "events.lmdb", readonly=True) as store:
            for run in runs:
                stream = topics.run_stream(run["id"])
                events[run["id"]] = [[seq, bytes(value)] for seq, value in store.read(stream)]
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        document = {
            "twin": twin.run_id,
            "runs": runs,
            "records": records,
            "events": events,
            "calibration": calibration,
            "tree": tree,
        }
        (out / "runs.msgpack").write_bytes(msgpack.packb(document, use_bin_type=True))
        scenario = Path(tmp) / "quasi-reversible.yaml"
        scenario.write_text(yaml.safe_dump(_sweep_scenario()))
        status = main(
            [
                "sweep",
                str(scenario),
                "--vary",
                "kinetics.k0=1e-6:1e-2:log:5",
                "--vary",
                "waveform.scan_rate=0.05,0.1,0.2,0.5",
                "--out",
                str(out / "sweep.zarr"),
            ]
        )
        if status != 0:
            raise SystemExit(f"galvana sweep failed ({status})")
    sys.stdout.write(f"recorded {len(runs)} runs, a calibration and a sweep into {out}\n")


if __name__ == "__main__":
    record()
