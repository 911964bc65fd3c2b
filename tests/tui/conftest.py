"""Fixtures of the TUI tests: a real daemon with a recorded run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._daemon import Daemon, record_run


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon per test module (each test starts runs of its own)."""
    data = tmp_path_factory.mktemp("tui") / "d"
    record_run(data)
    running = Daemon(data)
    running.start()
    yield running
    running.stop()
