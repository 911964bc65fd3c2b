"""A client process for ``galvana bench api``: measures calls or subscription latency.

Run as ``python -m bench._api_client SOCKET rtt N`` or ``... SOCKET subscribe SECONDS``;
prints one JSON object on stdout.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from runtime import topics
from runtime.client import Client
from runtime.messages import SampleBatch


def rtt(socket_path: str, n: int) -> dict[str, object]:
    with Client(socket_path=socket_path) as client:
        for _ in range(50):
            client.call("echo", "echo", 1)
        times = np.empty(n)
        for i in range(n):
            began = time.perf_counter()
            client.call("echo", "echo", i)
            times[i] = time.perf_counter() - began
    return {"rtt_ms": (times * 1e3).tolist()}


def subscribe(socket_path: str, seconds: float) -> dict[str, object]:
    latencies: list[float] = []
    samples = lost = 0
    with Client(socket_path=socket_path) as client:
        client.subscribe(topics.run_samples("bench"))
        print("ready", flush=True)
        for event in client.events(timeout=seconds + 5.0):
            now = time.time()
            if event.lagged:
                lost += event.lost
                continue
            batch = event.message
            if isinstance(batch, SampleBatch):
                if batch.run_id == "bench" and batch.seq < 0:
                    break  # the publisher's end marker
                samples += len(batch)
                latencies.append(now - float(batch.t[-1]))
    return {"latency_ms": [x * 1e3 for x in latencies], "samples": samples, "lagged_batches": lost}


if __name__ == "__main__":
    socket, mode, arg = sys.argv[1], sys.argv[2], sys.argv[3]
    result = rtt(socket, int(arg)) if mode == "rtt" else subscribe(socket, float(arg))
    print(json.dumps(result), flush=True)
