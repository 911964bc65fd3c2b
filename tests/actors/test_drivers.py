"""Every driver through the daemon: a real ``galvana daemon`` process whose configuration
names the driver, twin runs through it against the driver's simulator, the samples
recorded, ``galvana instruments`` and the emergency stop turning the cell off.

- ``scpi``: the simulated potentiostat's SCPI server on a real loopback TCP socket,
  served by this test process (so the test sees the instrument's output directly);
- ``keithley2450``: pyvisa-sim with the canned dialogues of ``tests/hal/keithley2450.yaml``;
- ``methodscript``: the simulated MethodSCRIPT device on a real pseudo-terminal, served
  by this test process, which the daemon opens by its ``/dev/pts/N`` path.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from actors.sim_cell import DEFAULT_SCENARIO, PhysicsModel
from hal.sim.methodscript import MethodScriptDevice
from hal.sim.potentiostat import SimPotentiostat
from hal.sim.server import ScpiServer
from runtime.client import Client
from runtime.messages import RunStateChanged, SampleBatch, TwinPrediction
from twins.spec import load_twin_spec

from ..runtime._actors import wait_until
from ..runtime.test_daemon import GALVANA, Daemon, recorded_messages

ROOT = Path(__file__).resolve().parents[2]
K2450 = ROOT / "tests" / "hal" / "keithley2450.yaml"
LIMITS = {"E_min": -1.0, "E_max": 1.0, "I_max": 0.01, "scan_rate_max": 5.0}


def cv_spec(instrument: str, cycles: int) -> dict[str, Any]:
    """A twin run of ``cycles`` CVs (1.2 s each, 0.2 s rests, 200 Hz) on the simulated
    cell, modelled by the simulated cell itself (so the twin must follow the instrument)."""
    return {
        "name": f"cv on {instrument}",
        "instrument": instrument,
        "protocol": {
            "waveform": {"type": "cv", "E_start": 0.5, "E_vertex": -0.1, "scan_rate": 1.0},
            "cycles": cycles,
            "rest": 0.2,
            "sample_rate": 200,
        },
        "model": yaml.safe_load(DEFAULT_SCENARIO.read_text()),
    }


def start_daemon(tmp_path: Path, instruments: list[dict[str, Any]]) -> Daemon:
    config = tmp_path / "daemon.yaml"
    config.write_text(yaml.safe_dump({"instruments": instruments}))
    daemon = Daemon(tmp_path / "data", extra=("--config", str(config)))
    daemon.start()
    return daemon


def stop_daemon(daemon: Daemon) -> None:
    if daemon.proc is not None and daemon.proc.poll() is None:
        daemon.signal(signal.SIGTERM)


events = recorded_messages


def state(client: Client, run_id: str) -> str:
    return str(client.call("runs", "show", run_id)["state"])


FINAL = ("completed", "stopped", "aborted", "failed", "interrupted")


def finish(client: Client, run_id: str, timeout: float = 120) -> dict[str, Any]:
    """The run's record once it has ended (in whatever state)."""
    wait_until(lambda: state(client, run_id) in FINAL, timeout=timeout, what=f"run {run_id}")
    shown: dict[str, Any] = client.call("runs", "show", run_id)
    return shown


def instruments(daemon: Daemon) -> dict[str, dict[str, Any]]:
    out = daemon.cli("instruments", "--json")
    assert out.returncode == 0, out.stderr
    return {item["id"]: item for item in json.loads(out.stdout)}


def wait_link_up(daemon: Daemon, instrument_id: str) -> dict[str, Any]:
    wait_until(
        lambda: instruments(daemon)[instrument_id]["link"] == "up",
        timeout=60,
        what=f"{instrument_id}'s link",
    )
    return instruments(daemon)[instrument_id]


def check_twin_followed(spec: dict[str, Any], got: list[Any], cycles: int) -> None:
    """The samples are the protocol's, in protocol time, and the twin (whose model is the
    instrument's true cell) follows them to within half a per cent of the peak."""
    batches = [m for m in got if isinstance(m, SampleBatch)]
    t = np.concatenate([b.t for b in batches])
    E = np.concatenate([b.E for b in batches])
    protocol = load_twin_spec(spec).protocol
    # Each cycle's samples from one sample period after its rest starts (none at t = 0).
    assert len(t) == pytest.approx(protocol.duration * protocol.sample_rate, abs=cycles + 1)
    assert np.all(np.diff(t) > 0)
    t_prog, E_prog = protocol.trace()
    assert np.max(np.abs(E - np.interp(t, t_prog, E_prog))) < 1e-3  # V: the potential noise
    predictions = [m for m in got if isinstance(m, TwinPrediction)]
    residual = np.concatenate([p.residual for p in predictions])
    peak = max(float(np.max(np.abs(p.predicted))) for p in predictions)
    assert residual.size >= 0.95 * len(t)
    rms = float(np.sqrt(np.nanmean(residual**2)))
    # 0.2 % measured (the instrument's noise); a cell put back at rest at every
    # acquisition, or samples on the wrong clock, give several per cent.
    assert rms < 0.005 * peak, (rms, peak)


# --- scpi: the simulated potentiostat over a real TCP socket ---------------------------


@pytest.fixture
def scpi_server() -> Iterator[tuple[SimPotentiostat, ScpiServer]]:
    sim = SimPotentiostat(PhysicsModel(DEFAULT_SCENARIO), speed=1.0, seed=11)
    with ScpiServer(sim, port=0) as server:
        yield sim, server


def test_scpi_driver_through_the_daemon(
    tmp_path: Path, scpi_server: tuple[SimPotentiostat, ScpiServer]
) -> None:
    sim, server = scpi_server
    daemon = start_daemon(
        tmp_path,
        [
            {
                "id": "bench",
                "driver": "scpi",
                "resource": server.resource,
                "timeout": 2.0,
                "limits": LIMITS,
            }
        ],
    )
    try:
        listed = wait_link_up(daemon, "bench")
        assert (listed["driver"], listed["connection"]) == ("scpi", server.resource)
        assert (listed["interlock"], listed["state"]) == ("ok", "idle")
        assert listed["identity"].startswith("Galvana SimPotentiostat")
        spec = cv_spec("bench", cycles=2)
        with daemon.client() as client:
            run_id = client.call("runs", "start", spec)["id"]
            shown = finish(client, run_id)
            assert (shown["state"], shown["reason"]) == (
                "completed",
                "the protocol ran to its end (2 cycles)",
            )
            check_twin_followed(spec, events(client, run_id), cycles=2)
            assert_estop_turns_the_cell_off(daemon, client, "bench", lambda: sim.output_on)
    finally:
        stop_daemon(daemon)


def assert_estop_turns_the_cell_off(
    daemon: Daemon, client: Client, instrument_id: str, output_on: Any
) -> None:
    """A second run, stopped by ``galvana estop`` while it measures: aborted, cell off."""
    run_id = client.call("runs", "start", cv_spec(instrument_id, cycles=3))["id"]
    wait_until(lambda: client.call("runs", "show", run_id)["samples"] > 20, what="samples")
    assert output_on()  # the instrument itself says the cell is on
    out = daemon.cli("estop", instrument_id, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [
        {"instrument": instrument_id, "cell_off": True, "detail": "emergency stop (galvana estop)"}
    ]
    assert not output_on()  # off before the command returned
    wait_until(lambda: state(client, run_id) == "aborted", timeout=30, what="the abort")
    listed = instruments(daemon)[instrument_id]
    assert (listed["state"], listed["interlock"]) == ("tripped", "latched")
    assert listed["trip"] == "emergency_stop: emergency stop (galvana estop)"
    client.call("instruments", "reset", instrument_id)
    assert instruments(daemon)[instrument_id]["interlock"] == "ok"


# --- methodscript: the MethodSCRIPT device on a real pty --------------------------------


@pytest.fixture
def pico() -> Iterator[tuple[SimPotentiostat, MethodScriptDevice]]:
    sim = SimPotentiostat(PhysicsModel(DEFAULT_SCENARIO), speed=1.0, seed=12)
    device = MethodScriptDevice(sim)
    device.open()
    yield sim, device
    device.close()


def test_methodscript_driver_through_the_daemon(
    tmp_path: Path, pico: tuple[SimPotentiostat, MethodScriptDevice]
) -> None:
    sim, device = pico
    daemon = start_daemon(
        tmp_path,
        [{"id": "pico", "driver": "methodscript", "port": device.path, "limits": LIMITS}],
    )
    try:
        listed = wait_link_up(daemon, "pico")
        assert (listed["driver"], listed["connection"]) == ("methodscript", device.path)
        assert listed["identity"] == (
            "PalmSens Galvana MethodSCRIPT simulator (serial GMS-0001, firmware galvsim1.0)"
        )
        spec = cv_spec("pico", cycles=2)
        with daemon.client() as client:
            run_id = client.call("runs", "start", spec)["id"]
            shown = finish(client, run_id)
            assert (shown["state"], shown["reason"]) == (
                "completed",
                "the protocol ran to its end (2 cycles)",
            )
            check_twin_followed(spec, events(client, run_id), cycles=2)
            # Each cycle was one script: the second one holds the rest, then sweeps.
            measured = [s.splitlines() for s in device.scripts if "meas_loop" in s]
            assert len(measured) == 2
            loops = [x for x in measured[1] if x.startswith("meas_loop")]
            assert loops == [
                "meas_loop_ca p c 500m 5m 200m",
                "meas_loop_lsv p c 500m -100m 5m 1",
                "meas_loop_lsv p c -100m 500m 5m 1",
            ]
            assert_estop_turns_the_cell_off(daemon, client, "pico", lambda: sim.output_on)
    finally:
        stop_daemon(daemon)


# --- keithley2450: pyvisa-sim's canned dialogues --------------------------------------


def lsv_spec(instrument: str) -> dict[str, Any]:
    """One 5-point LSV (0 to 50 mV at 100 mV/s, 10 Hz): the dialogue the canned 2450s
    hold. The model's cell (0.3 mM) asks for the 100 uA range."""
    model = yaml.safe_load(DEFAULT_SCENARIO.read_text())
    model["species"]["O"]["c_bulk"] = "0.3 mM"
    return {
        "name": f"lsv on {instrument}",
        "instrument": instrument,
        "protocol": {
            "waveform": {"type": "lsv", "E_start": 0.0, "E_end": 0.05, "scan_rate": 0.1},
            "cycles": 1,
            "sample_rate": 10,
        },
        "model": model,
    }


def test_keithley2450_driver_through_the_daemon(tmp_path: Path) -> None:
    # pyvisa-sim answers a fixed reply per query and keeps no state, so these 2450s run
    # one dialogue each: a twin run whose acquisition is exactly the canned sweep. What
    # the canned instrument cannot show is an output that really went off: its `:OUTP?`
    # always answers 0. The estop here proves the cell-off reaches the driver, is sent
    # (an unknown command would land in the error queue) and is confirmed; the output
    # itself turning off is shown with the SCPI and MethodSCRIPT simulators above.
    backends = [f"{K2450}@sim"]
    daemon = start_daemon(
        tmp_path,
        [
            {
                "id": "k2450",
                "driver": "keithley2450",
                "resource": "TCPIP0::192.168.0.51::5025::SOCKET",
                "backends": backends,
                "poll": 0.01,
                "limits": LIMITS,
            },
            {
                "id": "k2450-b",
                "driver": "keithley2450",
                "resource": "TCPIP0::192.168.0.52::5025::SOCKET",
                "backends": backends,
                "poll": 0.01,
                "limits": LIMITS,
            },
        ],
    )
    try:
        listed = wait_link_up(daemon, "k2450")
        assert listed["driver"] == "keithley2450"
        assert listed["connection"] == "TCPIP0::192.168.0.51::5025::SOCKET"
        assert listed["identity"] == (
            "KEITHLEY INSTRUMENTS MODEL 2450 (serial 04512346, firmware 1.7.12b)"
        )
        with daemon.client() as client:
            # Programmed with the documented dialogue (any other command is refused
            # through the error queue, and the run would fail), run, read back.
            run_id = client.call("runs", "start", lsv_spec("k2450"))["id"]
            shown = finish(client, run_id, timeout=60)
            assert (shown["state"], shown["reason"]) == (
                "completed",
                "the protocol ran to its end (1 cycles)",
            )
            got = events(client, run_id)
            batches = [m for m in got if isinstance(m, SampleBatch)]
            assert np.concatenate([b.t for b in batches]).tolist() == [
                0.0,
                0.1003,
                0.2001,
                0.3004,
                0.4002,
            ]
            assert np.concatenate([b.E for b in batches]).tolist() == [0.01, 0.02, 0.03, 0.04, 0.05]
            assert np.concatenate([b.I for b in batches]).tolist() == [
                -2.1e-05,
                -1.5e-05,
                -1.2e-05,
                -1.05e-05,
                -9.4e-06,
            ]
            predictions = [m for m in got if isinstance(m, TwinPrediction)]
            assert sum(len(p.t) for p in predictions) == 5  # the twin followed them

            # The other 2450's last reading is at its 10 mA limit: in compliance. The
            # interlock cuts the cell and the run is aborted, its samples kept.
            wait_link_up(daemon, "k2450-b")
            run_b = client.call("runs", "start", lsv_spec("k2450-b"))["id"]
            shown = finish(client, run_b, timeout=60)
            assert shown["state"] == "aborted"
            assert shown["reason"].startswith("safety interlock (compliance)")
            assert shown["samples"] == 5
            tripped = instruments(daemon)["k2450-b"]
            assert (tripped["state"], tripped["interlock"]) == ("tripped", "latched")
            assert tripped["trip"].startswith("compliance: sample 4 of a batch at t = 0.4002 s")
            states = [m.state for m in events(client, run_b) if isinstance(m, RunStateChanged)]
            assert states == ["running", "aborted"]

        out = daemon.cli("estop", "k2450", "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)[0]["cell_off"] is True
        assert instruments(daemon)["k2450"]["interlock"] == "latched"
    finally:
        stop_daemon(daemon)


# --- the configuration ------------------------------------------------------------------


def test_a_daemon_with_an_unknown_driver_says_which_ones_exist(tmp_path: Path) -> None:
    config = tmp_path / "daemon.yaml"
    config.write_text(yaml.safe_dump({"instruments": [{"id": "k", "driver": "keithley"}]}))
    out = subprocess.run(
        [str(GALVANA), "daemon", "--data", str(tmp_path / "d"), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert (
        out.stderr.strip()
        .splitlines()[-1]
        .endswith(
            "instruments[0].driver: got 'keithley'; accepted: keithley2450, methodscript, scpi, sim"
        )
    )
    assert "Traceback" not in out.stderr
