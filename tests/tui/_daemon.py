"""A real daemon process for the TUI tests, with a recorded run to replay.

The daemon runs this worktree's code (``python -m galvana.cli daemon`` with
``PYTHONPATH`` set to the repository root), as a lab would run it. Recorded runs
are written with the event store before it starts; replaying one gives a live run
with samples and no instrument.
"""

from __future__ import annotations

import asyncio
import functools
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from runtime.client import Client
from runtime.codec import encode
from runtime.event_store import EventStore
from runtime.messages import RunCreated, RunStateChanged, SampleBatch, utc_now

ROOT = Path(__file__).resolve().parents[2]


def record_run(
    data: Path,
    run_id: str = "src",
    *,
    batches: int = 40,
    points: int = 100,
    rate_hz: float = 100.0,
    name: str = "recorded cv",
) -> None:
    """Write a finished run of ``batches`` x ``points`` samples of a CV into DATA/events.lmdb.

    The potential sweeps 0.5 -> -0.5 -> 0.5 V (triangle, one cycle over the run) and
    the current is a noisy sigmoid with a peak, so the I-E plot has a shape to see.
    """
    data.mkdir(parents=True, exist_ok=True)
    stream = f"run/{run_id}"
    n = batches * points
    with EventStore(data / "events.lmdb") as store:
        now = utc_now()
        store.append(stream, encode(RunCreated(run_id, now, {"name": name}, ""))).result()
        store.append(
            stream, encode(RunStateChanged(run_id, "running", "idle", "started", now))
        ).result()
        rng = np.random.default_rng(7)
        for k in range(batches):
            i = k * points + np.arange(points)
            t = i / rate_hz
            phase = i / n
            E = 0.5 - 2.0 * np.minimum(phase, 1.0 - phase)
            current = 1e-6 * (np.tanh(8 * E) + 0.6 * np.exp(-((E - 0.1) ** 2) / 0.01))
            current += 2e-8 * rng.standard_normal(points)
            batch = SampleBatch(run_id, k, t, E, current, np.zeros(points, np.uint8))
            store.append(stream, encode(batch))
        store.append(
            stream, encode(RunStateChanged(run_id, "completed", "running", "done", now))
        ).result()


class Daemon:
    """``galvana daemon --data DATA`` in a child process."""

    def __init__(self, data: Path, *extra: str) -> None:
        self.data = data
        self.extra = extra
        self.proc: subprocess.Popen[str] | None = None

    @property
    def socket(self) -> Path:
        return self.data / "galvana.sock"

    @property
    def tcp(self) -> tuple[str, int] | None:
        """The TCP address given with ``--tcp``, if any."""
        if "--tcp" not in self.extra:
            return None
        host, _, port = self.extra[self.extra.index("--tcp") + 1].rpartition(":")
        return host, int(port)

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "error"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "galvana.cli", "daemon", "--data", str(self.data), *self.extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "serving" not in line:
            self.proc.kill()
            _, err = self.proc.communicate()
            raise AssertionError(f"daemon did not start: {line!r} {err!r}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc.communicate()

    def client(self) -> Client:
        return Client(socket_path=self.socket, timeout=30)

    def call(self, path: str, method: str, *args: object) -> object:
        with self.client() as client:
            return client.call(path, method, *args)


def screen_text(app: Any) -> str:
    """The app's screen as plain text, one line per terminal row (what a person reads)."""
    width, height = app.size
    console = Console(
        width=width, height=height, file=io.StringIO(), record=True, color_system=None
    )
    screen = app.screen
    update = screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    console.print(update)
    return console.export_text(styles=False)


def run_async(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test on a fresh asyncio loop (Textual's), with its fixtures."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


UNTIL_TIMEOUT_S = 120.0
"""How long :func:`until` waits before it calls a test failed: a bound on a failure on a
loaded machine, never a time anything is expected to take."""


async def until(
    pilot: Any,
    condition: Callable[[], bool],
    *,
    timeout: float = UNTIL_TIMEOUT_S,
    what: str = "",
) -> None:
    """Let the app run until ``condition`` (on the app's state) holds: it is looked at
    again each time the app has handled what was pending, and a tenth of a second
    later when nothing was."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await pilot.pause()
        if not condition():
            await pilot.pause(0.1)


def free_port() -> int:
    """A TCP port nobody listens on now (the daemon binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
