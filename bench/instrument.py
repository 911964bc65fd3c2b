"""``galvana bench instrument``: samples from the simulated potentiostat to the event bus.

The simulated potentiostat runs in its own process (``galvana instrument serve``),
in real time at ``--rate`` (default 10 kHz), so everything between it and the bus is
exercised as with hardware: its socket, pyvisa with the pyvisa-py backend, the SCPI
driver's batched binary fetches, the safety interlock, the instrument actor and the
bus. A subscriber notes when each batch arrives.

Figures:

- ``sample_rate_hz``: samples delivered to the bus, per second from the start of
  the acquisition to the delivery of its last sample; sustained means it matches
  ``target_rate_hz`` with ``samples_lost`` 0;
- ``latency_p50_ms`` / ``latency_p99_ms``: from each sample's timestamp (the
  instrument's clock, on the same host) to its delivery on the bus;
- ``samples_lost``: lost anywhere (instrument buffer, link, bus);
- ``capacity_hz``: the same chain with an unpaced instrument (every sample ready
  at once), i.e. how far above the target the chain could go.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from actors.instrument import InstrumentConfig, start_instrument
from hal.driver import Settings
from hal.drivers.scpi_potentiostat import ScpiPotentiostat
from hal.safety import Interlock, SafetyLimits
from runtime import topics
from runtime.event_bus import EventBus
from runtime.messages import AcquisitionEnded, Lagged, SampleBatch
from runtime.waveforms import CyclicVoltammetry

_ROOT = Path(__file__).resolve().parent.parent
_LIMITS = SafetyLimits(E_min=-2.0, E_max=2.0, I_max=0.1, scan_rate_max=100.0)


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of this suite (after ``galvana bench instrument``)."""
    parser.add_argument("--rate", type=float, default=10_000.0, help="sample rate (Hz)")
    parser.add_argument("--seconds", type=float, default=10.0, help="acquisition length (s)")
    parser.add_argument("--poll", type=float, default=0.002, help="driver poll interval (s)")
    parser.add_argument(
        "--model",
        choices=("randles", "physics"),
        default="randles",
        help="the simulated cell: the built-in Randles cell (measures the chain alone) or "
        "the physics engine (includes its cost in the instrument process)",
    )


def _serve(rate: float, speed: float, model: str) -> tuple[subprocess.Popen[str], str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hal.cli",  # what `galvana instrument` runs, without the CLI's start-up
            "serve",
            "--port",
            "0",
            "--model",
            model,
            "--rate",
            str(rate),
            "--speed",
            str(speed),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"the simulated potentiostat did not start: {line!r}")
    resource = line.rsplit("(", 1)[1].rstrip(")\n")
    return proc, resource


def _measure(rate: float, seconds: float, poll: float, speed: float, model: str) -> dict[str, Any]:
    proc, resource = _serve(rate, speed, model)
    bus = EventBus()
    try:
        driver = ScpiPotentiostat(resource, poll_s=poll, timeout_s=5.0)
        samples_sub = bus.subscribe(topics.run_samples("bench"), maxsize=1_000_000)
        state_sub = bus.subscribe(topics.instrument_state("bench"), mode="lossless")
        client = start_instrument(
            InstrumentConfig("bench", Interlock(driver, _LIMITS), stall_timeout_s=5.0), bus
        )
        _wait_link(client)
        # A CV that fits in `seconds`: 0.5 V -> -0.5 V -> 0.5 V.
        scan_rate = 2.0 / seconds
        wf = CyclicVoltammetry(E_start=0.5, vertices=(-0.5,), E_end=0.5, scan_rate=scan_rate)
        client.program(wf, Settings(sample_rate=rate, current_limit=0.05))
        client.start("bench")
        started = time.perf_counter()
        epoch = driver.epoch or time.time()
        delivered: list[tuple[float, np.ndarray[Any, np.dtype[np.float64]]]] = []
        lagged = 0
        ended: AcquisitionEnded | None = None
        while ended is None:
            try:
                _, msg = samples_sub.receive(timeout=0.05)
            except TimeoutError:
                msg = None
            if isinstance(msg, SampleBatch):
                delivered.append((time.time(), msg.t))
            elif isinstance(msg, Lagged):
                lagged += msg.lost
            for _, event in state_sub.drain():
                if isinstance(event, AcquisitionEnded):
                    ended = event
            if time.perf_counter() - started > 10 * seconds + 30:
                raise RuntimeError("the acquisition did not end")
        for _, msg in samples_sub.drain():
            if isinstance(msg, SampleBatch):
                delivered.append((time.time(), msg.t))
        elapsed = time.perf_counter() - started
        client.ref.stop()
        count = sum(t.size for _, t in delivered)
        if speed > 0:
            latency = (
                np.concatenate([arrived - (epoch + t / speed) for arrived, t in delivered]) * 1e3
            )
        else:
            latency = np.zeros(1)
        last = delivered[-1][0] if delivered else time.time()
        return {
            "samples": count,
            "elapsed_s": elapsed,
            "span_s": last - epoch,
            "batches": len(delivered),
            "lost": ended.lost + lagged,
            "latency_ms": latency,
            "dropped_replies": driver.dropped_replies,
        }
    finally:
        bus.close()
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_link(client: Any) -> None:
    deadline = time.monotonic() + 30
    while not client.status().link_up:
        if time.monotonic() > deadline:
            raise RuntimeError("could not connect to the simulated potentiostat")
        time.sleep(0.02)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the suite; returns its figures (see the module docstring)."""
    seconds = min(args.seconds, 3.0) if args.quick else args.seconds
    live = _measure(args.rate, seconds, args.poll, speed=1.0, model=args.model)
    unpaced = _measure(args.rate, seconds, args.poll, speed=0.0, model=args.model)
    latency = live["latency_ms"]
    return {
        "target_rate_hz": args.rate,
        "duration_s": seconds,
        "sample_rate_hz": live["samples"] / live["span_s"],
        "latency_p50_ms": float(np.percentile(latency, 50)),
        "latency_p99_ms": float(np.percentile(latency, 99)),
        "latency_max_ms": float(latency.max()),
        "samples_lost": int(live["lost"]),
        "samples_delivered": int(live["samples"]),
        "mean_batch": live["samples"] / max(1, live["batches"]),
        "dropped_replies": int(live["dropped_replies"]),
        "capacity_hz": unpaced["samples"] / unpaced["elapsed_s"],
        "poll_s": args.poll,
        "model": args.model,
        "cpus": os.cpu_count() or 0,
    }
