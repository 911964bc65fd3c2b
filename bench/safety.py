"""``galvana bench safety``: from an emergency stop to the cell off, seen by the instrument.

A real daemon process runs two instruments: ``sim`` (its own simulated potentiostat,
measuring a twin run) and ``cell``, a simulated potentiostat served by this process
over its SCPI socket, so the moment its cell goes off is seen here, on the instrument's
side (its output switched off by the daemon's ``ABOR;:OUTP OFF``), not inferred from a
reply. Before each trial the cell is switched on at the instrument; the trial's clock
starts when the stop leaves the client (connect to the daemon's emergency-stop socket,
``hello`` and the call in one write, as ``galvana estop`` sends them) and stops when
the instrument's output is off.

Figures (ms, ``TRIALS`` trials each; the goal is a p99 under 50 ms):

- ``estop_to_cell_off_ms_idle_p50`` / ``_p99``: the daemon idle (no run yet);
- ``estop_to_cell_off_ms_loaded_p50`` / ``_p99``: while another client holds 16 slow
  calls (NUTS reference posteriors on the twin run's calibrator, the attack that
  starved the stop before) and 64 connections that never say hello;
- ``estop_api_socket_to_cell_off_ms_loaded_p50`` / ``_p99``: the same stop sent to the
  API socket instead (its reserved threads and connections; the first trial waits for
  the 64 connections just opened to be set up by its event loop);
- ``estop_cli_to_cell_off_ms_p50`` / ``_p99``: ``galvana estop cell`` as a user types
  it, the process's start included (goal: under 300 ms), under the same load (a twin
  run measuring and calibrating every cycle on ``sim`` besides);
- ``python_start_ms_p50`` / ``_p99``: the command line's baseline, taken between its
  trials: this interpreter starting and exiting (``python -c pass``) under that load;
- ``driver_cell_off_ms_p50`` / ``_p99``: the baseline, side by side: this process
  turning the same cell off through its own SCPI driver (pyvisa, the instrument's
  socket), no daemon in between; the ``*_ratio_p50`` figures divide by its p50;
- ``load_calls_in_flight``, ``load_connections``: what the daemon reported while loaded.

On a shared machine the tails measure its load as much as the daemon: compare the
figures with the baseline taken in the same run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import yaml

from hal.drivers.scpi_potentiostat import ScpiPotentiostat
from hal.sim.models import RandlesModel
from hal.sim.potentiostat import SimPotentiostat
from hal.sim.server import ScpiServer
from runtime.address import estop_socket_path
from runtime.client import Client
from runtime.errors import ApiError

TRIALS = 20
SLOW_CALLS = 16
IDLE_CONNECTIONS = 64
_ROOT = Path(__file__).resolve().parent.parent
_HEADER = struct.Struct(">I")


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of this suite (after ``galvana bench safety``)."""
    parser.add_argument("--trials", type=int, default=TRIALS, help="trials per figure")


class _Cell:
    """The ``cell`` instrument, served here: notes when its output goes off."""

    def __init__(self) -> None:
        self.instrument = SimPotentiostat(RandlesModel(), seed=1)
        self.server = ScpiServer(self.instrument, port=0).start()
        self.off = threading.Event()
        self.off_at = 0.0
        original = self.instrument.set_output

        def set_output(on: bool) -> None:
            original(on)
            if not on and not self.off.is_set():
                self.off_at = time.perf_counter()
                self.off.set()

        self.instrument.set_output = set_output  # type: ignore[method-assign]

    def switch_on(self) -> None:
        self.instrument.set_output(True)
        self.off.clear()

    def close(self) -> None:
        self.server.close()


def _frame(payload: dict[str, Any]) -> bytes:
    body: bytes = msgpack.packb(payload)
    return _HEADER.pack(len(body)) + body


def _stop_over_the_api(sock_path: Path, cell: _Cell) -> float:
    """One stop as ``galvana estop cell`` sends it; ms from sending to the cell off."""
    cell.switch_on()
    hello = {"id": 1, "op": "hello", "protocol": 1, "client": "bench-safety"}
    call = {
        "id": 2,
        "op": "call",
        "path": "instruments",
        "method": "estop",
        "args": ["cell", "bench"],
        "kwargs": {},
    }
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        began = time.perf_counter()
        sock.connect(str(sock_path))
        sock.sendall(_frame(hello) + _frame(call))
        if not cell.off.wait(30):
            raise RuntimeError("the cell did not go off within 30 s")
        sock.recv(65536)  # the reply: not what is timed
    return (cell.off_at - began) * 1e3


def _driver_baseline(cell: _Cell, trials: int) -> list[float]:
    """The baseline: the same cell off straight through an SCPI driver in this process
    (connected, as the daemon's is); ms from the call to the cell off."""
    driver = ScpiPotentiostat(cell.server.resource)
    driver.connect()
    out = []
    try:
        for _ in range(trials):
            cell.switch_on()
            began = time.perf_counter()
            driver.cell_off()
            if not cell.off.wait(30):
                raise RuntimeError("the cell did not go off within 30 s")
            out.append((cell.off_at - began) * 1e3)
    finally:
        driver.close()
    return out


def _stop_from_the_command_line(galvana: str, data: Path, cell: _Cell) -> float:
    cell.switch_on()
    began = time.perf_counter()
    proc = subprocess.Popen(
        [galvana, "estop", "cell", "--data", str(data)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if not cell.off.wait(60):
        proc.kill()
        raise RuntimeError("the cell did not go off within 60 s")
    _, err = proc.communicate(timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"galvana estop failed: {err.strip()}")
    return (cell.off_at - began) * 1e3


def _python_start() -> float:
    """The command line's baseline: ms for this interpreter to start and exit."""
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return (time.perf_counter() - began) * 1e3


def _slow_calls(sock_path: Path, calibrator: str) -> list[socket.socket]:
    """The attack's slow calls: 16 NUTS reference posteriors, on two connections (one
    connection holds at most 8 worker threads), each waiting up to 3000 s."""
    held = []
    for _ in range(2):
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(str(sock_path))
        frames = [_frame({"id": 0, "op": "hello", "protocol": 1})]
        frames += [
            _frame(
                {
                    "id": 1 + i,
                    "op": "call",
                    "path": calibrator,
                    "method": "reference",
                    "args": [200, 200, 1],
                    "kwargs": {},
                    "timeout": 3000,
                }
            )
            for i in range(SLOW_CALLS // 2)
        ]
        sock.sendall(b"".join(frames))
        held.append(sock)
    return held


def _twin_spec() -> dict[str, Any]:
    model = yaml.safe_load((_ROOT / "examples" / "simulated-cell.yaml").read_text())
    return {
        "name": "bench-safety",
        "seed": 3,
        "instrument": "sim",
        "protocol": {
            "waveform": {
                "type": "cv",
                "E_start": "500 mV",
                "E_vertex": "-100 mV",
                "scan_rate": "1 V/s",
            },
            "cycles": 300,  # 7 minutes: longer than the bench (and 10,000 outlast a start)
            "rest": "0.2 s",
            "sample_rate": "200 Hz",
        },
        "model": model,
        "calibrate": {
            "parameters": {
                "kinetics.E0": {"dist": "normal", "mean": "0.18 V", "sd": "30 mV"},
                "kinetics.k0": {"dist": "lognormal", "median": "0.005 cm/s", "scale": 1.0},
            },
            "noise": {"dist": "halfnormal", "scale": "1 uA"},
            "every": {"cycles": 1},  # the reference needs the segments updates keep
        },
    }


def _start_twin_run(client: Client) -> str:
    """Start the twin run; on a loaded machine the first start (torch, pyro and the
    model loading in the daemon) can outlast a run's 30 s start timeout: try again."""
    for attempt in range(3):
        try:
            return str(client.call("runs", "start", _twin_spec(), timeout=600)["id"])
        except ApiError as exc:
            if exc.code != "failed" or attempt == 2:
                raise
    raise AssertionError("unreachable")


def _figures(trials: int, **measured: list[float]) -> dict[str, Any]:
    """p50 and p99 of each series (ms), and each p50 over the driver baseline's."""
    figures: dict[str, Any] = {"trials": trials, "cpus": os.cpu_count()}
    base = float(np.percentile(measured["driver_cell_off_ms"], 50))
    for name, values in measured.items():
        p50, p99 = np.percentile(np.asarray(values), [50, 99])
        figures[f"{name}_p50"] = round(float(p50), 2)
        figures[f"{name}_p99"] = round(float(p99), 2)
        if name != "driver_cell_off_ms":
            figures[f"{name}_ratio_p50"] = round(float(p50) / base, 2)
    return figures


def _wait(condition: Any, what: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _start_daemon(galvana: str, work: Path, data: Path, cell: _Cell) -> subprocess.Popen[str]:
    """The daemon: ``sim`` (its own simulated potentiostat) and ``cell`` (served here)."""
    config = work / "daemon.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "instruments": [
                    {"id": "sim", "speed": 1.0, "seed": 5},
                    {"id": "cell", "resource": cell.server.resource},
                ]
            }
        )
    )
    daemon = subprocess.Popen(
        [galvana, "daemon", "--data", str(data), "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return daemon


def _wait_serving(daemon: subprocess.Popen[str]) -> None:
    assert daemon.stdout is not None
    line = daemon.stdout.readline()
    if "serving" not in line:
        raise RuntimeError(f"the daemon did not start: {line!r}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the suite; returns the figures of the module docstring."""
    trials = max(2, int(args.trials))
    galvana = shutil.which("galvana") or str(Path(sys.executable).with_name("galvana"))
    cell = _Cell()
    work = Path(tempfile.mkdtemp(prefix="galvana-bench-safety-"))
    data = work / "d"
    daemon = _start_daemon(galvana, work, data, cell)
    held: list[socket.socket] = []
    try:
        _wait_serving(daemon)
        sock_path = data / "galvana.sock"
        # The stop goes where `galvana estop` sends it: the daemon's emergency-stop socket.
        stop_path = estop_socket_path(sock_path)
        idle = [_stop_over_the_api(stop_path, cell) for _ in range(trials)]
        baseline = _driver_baseline(cell, trials)
        with Client(socket_path=sock_path, timeout=120) as client:
            run_id = _start_twin_run(client)
            calibrator = f"runs/{run_id}/calibrator"
            _wait(
                lambda: client.call("runs", "show", run_id)["samples"] > 600,
                "the twin run's first cycles",
            )

            held += _slow_calls(sock_path, calibrator)
            _wait(
                lambda: client.call("api", "statistics")["calls_in_flight"] >= SLOW_CALLS + 1,
                "the slow calls to be in flight",
            )
            load = client.call("api", "statistics")
        for _ in range(IDLE_CONNECTIONS):
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(str(sock_path))
            held.append(sock)
        loaded = [_stop_over_the_api(stop_path, cell) for _ in range(trials)]
        # The API socket's own path for the stop (its reserved threads and connections),
        # for a client that speaks to that socket alone.
        loaded_api = [_stop_over_the_api(sock_path, cell) for _ in range(trials)]
        cli, python_start = [], []
        for _ in range(trials):  # interleaved: both see the same load
            cli.append(_stop_from_the_command_line(galvana, data, cell))
            python_start.append(_python_start())
    finally:
        for sock in held:
            sock.close()
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.communicate()
        cell.close()
        shutil.rmtree(work, ignore_errors=True)
    figures = _figures(
        trials,
        driver_cell_off_ms=baseline,
        estop_to_cell_off_ms_idle=idle,
        estop_to_cell_off_ms_loaded=loaded,
        estop_api_socket_to_cell_off_ms_loaded=loaded_api,
        estop_cli_to_cell_off_ms=cli,
    )
    start = _figures(trials, driver_cell_off_ms=baseline, python_start_ms=python_start)
    figures["python_start_ms_p50"] = start["python_start_ms_p50"]
    figures["python_start_ms_p99"] = start["python_start_ms_p99"]
    figures["load_calls_in_flight"] = int(load["calls_in_flight"]) - 1  # less the asking call
    figures["load_threads_busy"] = int(load["threads_busy"]) - 1
    figures["load_connections"] = IDLE_CONNECTIONS + 2
    return figures
