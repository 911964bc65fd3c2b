"""A client process for ``galvana bench http``.

``python -m bench._http_client URL KEY rtt RUN N``: N timed ``GET /api/v1/runs/RUN``.
``python -m bench._http_client URL KEY sse RUN SECONDS``: follow the run's stream (frames),
drop the connection after SECONDS/2 and resume with ``Last-Event-ID``, until the run
ends; how late each batch arrived, and which samples came (once, twice, never).
Prints one JSON object on stdout.
"""

from __future__ import annotations

import json
import sys
import time

import httpx
import numpy as np
from httpx_sse import connect_sse


def rtt(client: httpx.Client, run_id: str, n: int) -> dict[str, object]:
    for _ in range(50):
        client.get(f"/api/v1/runs/{run_id}").raise_for_status()
    times = np.empty(n)
    for i in range(n):
        began = time.perf_counter()
        client.get(f"/api/v1/runs/{run_id}").raise_for_status()
        times[i] = time.perf_counter() - began
    return {"rtt_ms": (times * 1e3).tolist()}


def sse(client: httpx.Client, run_id: str, seconds: float) -> dict[str, object]:
    latencies: list[float] = []
    seen: dict[int, int] = {}  # batch seq -> how many times it came
    sizes: dict[int, int] = {}
    last_id: str | None = None
    resumes = 0
    drop_at = time.monotonic() + seconds / 2
    ready = False
    url = f"/api/v1/runs/{run_id}/stream?channels=frames"
    while True:
        headers = {"Last-Event-ID": last_id} if last_id else {}
        ended = False
        with connect_sse(client, "GET", url, headers=headers) as events:
            for event in events.iter_sse():
                if not ready:
                    print("ready", flush=True)
                    ready = True
                if event.event == "end":
                    ended = True
                    break
                if event.event != "frames":
                    continue
                now = time.time()
                last_id = event.id
                batch = json.loads(event.data)["data"]
                seen[batch["seq"]] = seen.get(batch["seq"], 0) + 1
                sizes[batch["seq"]] = len(batch["t"])
                latencies.append(now - float(batch["t"][-1]))
                if resumes == 0 and time.monotonic() > drop_at:
                    resumes = 1
                    break  # drop the connection mid-stream; resume after last_id
        if ended:
            break
    return {
        "latency_ms": [x * 1e3 for x in latencies],
        "unique_samples": sum(sizes.values()),
        "repeated_samples": sum((n - 1) * sizes[s] for s, n in seen.items()),
        "resumes": resumes,
    }


if __name__ == "__main__":
    url, key, mode, run, arg = sys.argv[1:6]
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120
    ) as http:
        result = rtt(http, run, int(arg)) if mode == "rtt" else sse(http, run, float(arg))
    print(json.dumps(result), flush=True)
