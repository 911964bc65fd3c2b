"""``galvana bench api``: call round trips and event fan-out over the Unix socket, and
how soon a simulation run's first sample reaches a client.

The server (an actor tree, its bus and the API in a thread) runs in this process;
every client runs in a process of its own, as real clients do. Fan-out: a publisher
emits 10-sample batches every 10 ms (1 kHz sampling), stamped with the wall clock of
their last sample; 10 subscriber processes report how late each batch arrived and
whether any sample was lost.

First sample: a real daemon (``galvana daemon``, a process of its own, in a temporary
data directory) is given ``runs.start`` with a scenario (``examples/ferrocene-cv.yaml``)
by a client subscribed to every run's samples; ``first_sample_ms`` is the time from the
call to the first sample batch of that run at the client, the median over the runs
after the first (``first_sample_cold_ms``: the first, which loads the engine's compiled
kernels into the daemon).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from runtime import topics
from runtime.actor import Actor, exposed
from runtime.api import ApiConfig, ApiServer, ServerThread
from runtime.client import Client
from runtime.documents import read_yaml
from runtime.event_bus import EventBus
from runtime.messages import SampleBatch
from runtime.supervisor import ChildSpec, SupervisorSpec, start_supervisor

SCENARIO = Path(__file__).resolve().parents[1] / "examples" / "ferrocene-cv.yaml"
SUBSCRIBERS = 10
BATCH = 10
PERIOD_S = 0.010


class _Echo(Actor):
    @exposed
    def echo(self, value: Any) -> Any:
        return value


def _client(socket_path: Path, mode: str, arg: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench._api_client", str(socket_path), mode, arg],
        stdout=subprocess.PIPE,
        text=True,
    )


def _publish(bus: EventBus, seconds: float) -> int:
    published = 0
    seq = 0
    next_due = time.monotonic()
    end = next_due + seconds
    while (now := time.monotonic()) < end:
        if now < next_due:
            time.sleep(next_due - now)
        wall = time.time()
        t = wall - PERIOD_S + (np.arange(1, BATCH + 1) * PERIOD_S / BATCH)
        bus.publish(
            topics.run_samples("bench"),
            SampleBatch(
                "bench", seq, t, np.zeros(BATCH), np.zeros(BATCH), np.zeros(BATCH, np.uint8)
            ),
        )
        seq += 1
        published += BATCH
        next_due += PERIOD_S
    end_marker = SampleBatch(
        "bench", -1, np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1, np.uint8)
    )
    bus.publish(topics.run_samples("bench"), end_marker)
    return published


def _first_samples(runs: int) -> list[float]:
    """Seconds from ``runs.start`` of a simulation to its first sample at the client, for
    ``runs`` runs one after the other on a daemon of its own."""
    scenario = read_yaml(SCENARIO)
    with tempfile.TemporaryDirectory(prefix="galvana-bench-") as tmp:
        data = Path(tmp) / "data"
        daemon = subprocess.Popen(
            [sys.executable, "-m", "galvana", "daemon", "--data", str(data)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ},
        )
        try:
            assert daemon.stdout is not None
            line = daemon.stdout.readline()
            if "serving" not in line:
                raise RuntimeError(f"the daemon did not start: {line!r}")
            times = []
            with Client(socket_path=data / "galvana.sock", timeout=120) as client:
                client.subscribe(topics.EVERY_RUN_SAMPLES)
                for _ in range(runs):
                    began = time.perf_counter()
                    run_id = client.call("runs", "start", scenario)["id"]
                    for event in client.events(timeout=120):
                        batch = event.message
                        if isinstance(batch, SampleBatch) and batch.run_id == run_id:
                            times.append(time.perf_counter() - began)
                            break
                    else:
                        raise RuntimeError(f"run {run_id} sent no sample within 120 s")
                    # The next run starts once this one is over: one at a time.
                    while client.call("runs", "show", run_id)["state"] == "running":
                        time.sleep(0.05)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
    return times


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure and return the API figures."""
    quick = bool(args.quick)
    calls, seconds = (500, 2.0) if quick else (3000, 6.0)
    bus = EventBus()
    root = start_supervisor(SupervisorSpec(children=(ChildSpec("echo", _Echo),)), bus=bus)
    with tempfile.TemporaryDirectory(prefix="galvana-bench-") as tmp:
        socket_path = Path(tmp) / "api.sock"
        server = ServerThread(ApiServer(ApiConfig(socket_path=socket_path), bus, root.resolve))
        server.start()
        try:
            rtt_proc = _client(socket_path, "rtt", str(calls))
            rtt_out, _ = rtt_proc.communicate(timeout=300)
            rtt = np.array(json.loads(rtt_out)["rtt_ms"])

            subs = [_client(socket_path, "subscribe", str(seconds)) for _ in range(SUBSCRIBERS)]
            for proc in subs:
                assert proc.stdout is not None
                proc.stdout.readline()  # "ready": subscribed
            published = 0

            def publisher() -> None:
                nonlocal published
                published = _publish(bus, seconds)

            thread = threading.Thread(target=publisher)
            thread.start()
            thread.join()
            results = [json.loads(p.communicate(timeout=120)[0]) for p in subs]
        finally:
            server.stop()
            root.stop()
    latency = np.concatenate([np.array(r["latency_ms"]) for r in results])
    lost = sum(published - r["samples"] for r in results)
    first = np.array(_first_samples(4 if quick else 11)) * 1e3
    return {
        "call_rtt_p50_ms": float(np.percentile(rtt, 50)),
        "call_rtt_p99_ms": float(np.percentile(rtt, 99)),
        "calls": int(rtt.size),
        "fanout_subscribers": SUBSCRIBERS,
        "fanout_sample_rate_hz": BATCH / PERIOD_S,
        "fanout_latency_p50_ms": float(np.percentile(latency, 50)),
        "fanout_latency_p99_ms": float(np.percentile(latency, 99)),
        "samples_published": published,
        "samples_lost": int(lost),
        "first_sample_ms": float(np.median(first[1:])),
        "first_sample_cold_ms": float(first[0]),
        "first_sample_runs": int(first.size - 1),
    }
