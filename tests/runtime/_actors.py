"""Actors and helpers the runtime tests share: a probe that journals its life and fails on cue."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from runtime.actor import Actor


class Boom(RuntimeError):
    """The failure the tests inject."""


class Journal:
    """A thread-safe record of lifecycle events, plus the cues that make probes fail."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[tuple[str, str]] = []
        self.fail_starts: dict[str, int] = {}  # name -> how many upcoming starts fail
        self.hang_stop: set[str] = set()
        self.killed: list[str] = []

    def add(self, what: str, name: str) -> None:
        with self._lock:
            self.entries.append((what, name))

    def take_start_failure(self, name: str) -> bool:
        with self._lock:
            left = self.fail_starts.get(name, 0)
            if left == 0:
                return False
            if left > 0:
                self.fail_starts[name] = left - 1
            return True  # a negative count fails forever

    def of(self, what: str) -> list[str]:
        with self._lock:
            return [n for w, n in self.entries if w == what]

    def count(self, what: str, name: str) -> int:
        with self._lock:
            return sum(1 for w, n in self.entries if (w, n) == (what, name))


class Probe(Actor):
    """Journals start/stop/failure; ``"crash"`` raises, ``"exit"`` stops normally."""

    def __init__(self, journal: Journal, name: str) -> None:
        super().__init__()
        self.journal = journal
        self.name = name

    def on_start(self) -> None:
        if self.journal.take_start_failure(self.name):
            self.journal.add("start-failed", self.name)
            raise Boom(f"{self.name} refuses to start")
        self.journal.add("start", self.name)

    def on_stop(self) -> None:
        if self.name in self.journal.hang_stop:
            time.sleep(3.0)
        self.journal.add("stop", self.name)

    def on_failure(self, *exc_info: object) -> None:
        self.journal.add("failure", self.name)

    def on_kill(self) -> None:
        self.journal.killed.append(self.name)

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise Boom(f"{self.name} crashed")
        if message == "exit":
            self.stop()
            return None
        return (self.name, message)


def wait_until(
    predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` until true; fail the test with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)
