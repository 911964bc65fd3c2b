"""``galvana bench http``: the HTTP gateway's REST round trips and SSE streams.

In this process: the recorder and the runs supervisor (the daemon's own actors) over a
real event log and field store in a temporary directory, their bus, and the gateway
(hypercorn's trio worker in its thread). Every client is a process of its own, as real
clients are.

- REST: ``GET /api/v1/runs/{id}`` (a call on the runs actor) from one client, after a
  warm-up: ``rest_rtt_p50_ms``, ``rest_rtt_p99_ms`` (goal: p99 < 100 ms).
- SSE: a publisher emits 10-sample batches every 10 ms (1 kHz sampling) on a run's
  topic, stamped with the wall clock of their last sample; the recorder commits them to
  the log and 10 SSE clients follow the run's stream. ``sse_latency_p50_ms`` /
  ``_p99_ms``: from a batch's publication to its arrival at a client (the group commit
  included; goal p99 < 50 ms). Each client drops its connection half way and resumes
  with ``Last-Event-ID``: ``sse_samples_lost`` (committed samples a client never got,
  goal 0) and ``sse_samples_repeated`` (got twice, goal 0) over all clients.
- The baseline, side by side in the same run: ``log_latency_p50_ms`` / ``_p99_ms``, from
  a batch's publication to its being readable in the log (a thread of this process
  tailing the run's stream, no HTTP): what every stream waits for (the durable group
  commit). ``sse_over_log_p99`` is the ratio of the two p99s: what the gateway, HTTP and
  the client processes add.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from actors.recorder import Recorder
from actors.runs import Runs
from actors.services import Services
from runtime import topics
from runtime.api_keys import KEY_FILE, KeyStore
from runtime.codec import decode
from runtime.event_bus import EventBus
from runtime.event_store import EventStore
from runtime.field_store import FieldStore
from runtime.http import Gateway, GatewayConfig, GatewayThread
from runtime.messages import RunCreated, RunStateChanged, SampleBatch, utc_now
from runtime.supervisor import ChildSpec, SupervisorSpec, start_supervisor

CLIENTS = 10
BATCH = 10
PERIOD_S = 0.010
RUN = "bench"


def _client(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench._http_client", *args], stdout=subprocess.PIPE, text=True
    )


def _publish(bus: EventBus, seconds: float) -> int:
    """Batches on the run's topic at 1 kHz sampling for ``seconds``; returns the samples."""
    published = seq = 0
    next_due = time.monotonic()
    end = next_due + seconds
    while (now := time.monotonic()) < end:
        if now < next_due:
            time.sleep(next_due - now)
        wall = time.time()
        t = wall - PERIOD_S + np.arange(1, BATCH + 1) * PERIOD_S / BATCH
        batch = SampleBatch(
            RUN, seq, t, np.zeros(BATCH), np.zeros(BATCH), np.zeros(BATCH, np.uint8)
        )
        bus.publish(topics.run_samples(RUN), batch)
        seq += 1
        published += BATCH
        next_due += PERIOD_S
    return published


def _tail_latency(store: EventStore, out: list[float]) -> None:
    """Follow the run's stream in the log until it completes; for each batch, the time
    (ms) from its publication (its last sample's wall clock) to its being read here."""
    for _seq, data in store.tail(topics.run_stream(RUN), idle_timeout=60.0):
        message = decode(data)
        if isinstance(message, SampleBatch):
            out.append((time.time() - float(message.t[-1])) * 1e3)
        elif isinstance(message, RunStateChanged) and message.state == "completed":
            return


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure and return the gateway's figures."""
    quick = bool(args.quick)
    calls, seconds = (300, 3.0) if quick else (2000, 8.0)
    with tempfile.TemporaryDirectory(prefix="galvana-bench-http-") as tmp:
        data = Path(tmp)
        store = EventStore(data / "events.lmdb")
        fields = FieldStore(data / "fields")
        bus = EventBus()
        services = Services(store, bus)
        root = start_supervisor(
            SupervisorSpec(
                children=(
                    ChildSpec("recorder", Recorder, (store, fields, bus, services)),
                    ChildSpec("runs", Runs, (SupervisorSpec(),), {"services": services}),
                )
            ),
            bus=bus,
        )
        keys = KeyStore(data / KEY_FILE)
        _, key = keys.add("bench", "operate")
        gateway = GatewayThread(
            Gateway(
                GatewayConfig(port=0),
                bus=bus,
                store=store,
                resolve=root.resolve,
                keys=keys,
            )
        )
        (url,) = gateway.start()
        try:
            recorder = services.recorder_ref().proxy()
            created = RunCreated(RUN, utc_now(), {"name": "bench"}, "")
            recorder.commit(topics.run_created(RUN), created).get()
            running = RunStateChanged(RUN, "running", "idle", "bench", utc_now())
            recorder.commit(topics.run_state(RUN), running).get()

            rtt_proc = _client(url, key, "rtt", RUN, str(calls))
            rtt = np.array(json.loads(rtt_proc.communicate(timeout=600)[0])["rtt_ms"])

            clients = [_client(url, key, "sse", RUN, str(seconds)) for _ in range(CLIENTS)]
            for proc in clients:
                assert proc.stdout is not None
                proc.stdout.readline()  # "ready": its stream has begun
            published = 0
            log_latency: list[float] = []
            tail = threading.Thread(target=_tail_latency, args=(store, log_latency))
            tail.start()

            def publisher() -> None:
                nonlocal published
                published = _publish(bus, seconds)

            thread = threading.Thread(target=publisher)
            thread.start()
            thread.join()
            done = RunStateChanged(RUN, "completed", "running", "bench", utc_now())
            recorder.commit(topics.run_state(RUN), done).get()
            results = [json.loads(p.communicate(timeout=300)[0]) for p in clients]
            tail.join(timeout=60)
        finally:
            gateway.stop()
            root.stop()
            store.close()
            fields.close()
    latency = np.concatenate([np.array(r["latency_ms"]) for r in results])
    return {
        "rest_rtt_p50_ms": float(np.percentile(rtt, 50)),
        "rest_rtt_p99_ms": float(np.percentile(rtt, 99)),
        "rest_calls": int(rtt.size),
        "sse_clients": CLIENTS,
        "sse_sample_rate_hz": BATCH / PERIOD_S,
        "sse_latency_p50_ms": float(np.percentile(latency, 50)),
        "sse_latency_p99_ms": float(np.percentile(latency, 99)),
        "log_latency_p50_ms": float(np.percentile(log_latency, 50)),
        "log_latency_p99_ms": float(np.percentile(log_latency, 99)),
        "sse_over_log_p99": float(np.percentile(latency, 99) / np.percentile(log_latency, 99)),
        "sse_samples_published": published,
        "sse_samples_lost": int(sum(published - r["unique_samples"] for r in results)),
        "sse_samples_repeated": int(sum(r["repeated_samples"] for r in results)),
        "sse_resumes": int(sum(r["resumes"] for r in results)),
    }
