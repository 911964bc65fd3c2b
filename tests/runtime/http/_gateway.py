"""A real daemon process serving the HTTP gateway, with API keys of every scope.

Every answer its clients get is checked against the OpenAPI document: a status the
document does not list for that route fails the test that got it.

The daemon runs this worktree's code (``galvana daemon --http 127.0.0.1:0``); the keys
are made by ``galvana keys add`` before it starts, as an operator would. Runs are
replays of logs written with the event store (no instrument needed) or twin runs on
the daemon's simulated potentiostat ``sim``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

from runtime import topics
from runtime.codec import encode
from runtime.event_store import EventStore
from runtime.http.openapi import document
from runtime.messages import RunCreated, RunStateChanged, SampleBatch, utc_now
from tests.runtime._actors import wait_until
from tests.runtime.test_daemon import GALVANA, Daemon

LIMITS = {"E_min": -1.0, "E_max": 1.0, "I_max": 0.01, "scan_rate_max": 2.0}
SCOPES = ("read", "operate", "admin")


def record_run(
    data: Path, run_id: str, *, batches: int = 40, points: int = 100, name: str = "recorded cv"
) -> None:
    """A finished run of ``batches`` x ``points`` samples (100 Hz) in DATA/events.lmdb."""
    data.mkdir(parents=True, exist_ok=True)
    stream = topics.run_stream(run_id)
    with EventStore(data / "events.lmdb") as store:
        now = utc_now()
        store.append(stream, encode(RunCreated(run_id, now, {"name": name}, ""))).result()
        store.append(
            stream, encode(RunStateChanged(run_id, "running", "idle", "started", now))
        ).result()
        for k in range(batches):
            t = (k * points + np.arange(points)) / 100.0
            E = 0.5 - 0.01 * t
            I = 1e-6 * np.tanh(E) + 1e-9 * k  # noqa: E741
            store.append(
                stream, encode(SampleBatch(run_id, k, t, E, I, np.zeros(points, np.uint8)))
            )
        store.append(
            stream, encode(RunStateChanged(run_id, "completed", "running", "done", now))
        ).result()


_DOCUMENT = document()
_OPERATIONS = [
    (method.upper(), re.compile("^" + re.sub(r"{[^}]+}", "[^/]+", path) + "$"), operation)
    for path, item in _DOCUMENT["paths"].items()
    for method, operation in item.items()
]


def documented(response: httpx.Response) -> None:
    """Fail on an answer whose status the OpenAPI document does not list for its route
    (an httpx response hook; paths no operation matches, the web view's, pass)."""
    request = response.request
    for method, pattern, operation in _OPERATIONS:
        if method == request.method and pattern.match(request.url.path):
            listed = operation["responses"]
            assert str(response.status_code) in listed, (
                f"{request.method} {request.url.path} answered {response.status_code}, "
                f"which its OpenAPI operation {operation['operationId']} does not list "
                f"({', '.join(listed)})"
            )
            return


class GatewayDaemon(Daemon):
    """``galvana daemon --http 127.0.0.1:0`` with a key per scope in ``keys``."""

    def __init__(self, data: Path, config: Path) -> None:
        super().__init__(data, ("--config", str(config), "--http", "127.0.0.1:0"))
        self.url = ""
        self.keys: dict[str, str] = {}
        self.key_ids: dict[str, str] = {}

    def add_key(self, name: str, scope: str) -> tuple[str, str]:
        out = subprocess.run(
            [
                str(GALVANA),
                "keys",
                "--data",
                str(self.data),
                "--json",
                "add",
                name,
                "--scope",
                scope,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        import json

        shown = json.loads(out.stdout)
        return shown["key"], shown["id"]

    def start(self) -> None:
        for scope in SCOPES:
            self.keys[scope], self.key_ids[scope] = self.add_key(f"{scope}-user", scope)
        self.proc = subprocess.Popen(
            [str(GALVANA), "daemon", "--data", str(self.data), *self.extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "error"},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        found = re.search(r"(http://[\d.]+:\d+)", line)
        if found is None:
            self.proc.kill()
            log = (self.data / "logs" / "daemon.log").read_text()[-3000:]
            raise AssertionError(f"daemon did not start: {line!r}; its log: {log}")
        self.url = found.group(1)

    def http(self, scope: str | None = "admin", **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[scope]}"} if scope else {}
        return httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=60,
            event_hooks={"response": [documented]},
            **kwargs,
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.signal(signal.SIGTERM)


def start_gateway(
    base: Path, *, instruments: Sequence[dict[str, Any]] = (), **http: Any
) -> GatewayDaemon:
    """A daemon on BASE/d with the simulated potentiostat ``sim`` (limits ``LIMITS``),
    ``instruments`` after it, the recorded run ``src`` and the gateway (``http`` options
    in its config)."""
    data = base / "d"
    record_run(data, "src")
    config = base / "daemon.yaml"
    doc: dict[str, Any] = {
        "instruments": [{"id": "sim", "speed": 1.0, "seed": 5, "limits": LIMITS}, *instruments],
    }
    if http:
        doc["http"] = {"listen": "127.0.0.1:0", **http}
    config.write_text(yaml.safe_dump(doc))
    daemon = GatewayDaemon(data, config)
    daemon.start()
    with daemon.http() as client:
        wait_until(
            lambda: client.get("/api/v1/instruments").json()["items"][0].get("link_up"),
            timeout=60,
            what="the instrument link",
        )
    return daemon


def wait_state(client: httpx.Client, run_id: str, states: set[str], timeout: float = 120) -> str:
    """Wait (long-polling the run's status events) until the run is in one of ``states``."""
    after = 0
    deadline = time.monotonic() + timeout
    state = client.get(f"/api/v1/runs/{run_id}").json()["state"]
    while state not in states:
        assert time.monotonic() < deadline, f"run {run_id} still {state}, not {states}"
        page = client.get(
            f"/api/v1/runs/{run_id}/events",
            params={"after": after, "wait": 5, "channels": "status"},
        ).json()
        after = page["next"]
        for event in page["items"]:
            if event["type"] == "run.state":
                state = event["data"]["state"]
    return state


def log_events(data: Path, stream: str) -> Iterator[tuple[int, bytes]]:
    """A stream of the daemon's event log, read from another process (read-only)."""
    with EventStore(data / "events.lmdb", readonly=True) as store:
        yield from store.read(stream)
