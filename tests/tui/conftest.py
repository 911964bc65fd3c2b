"""Fixtures of the TUI tests: a real daemon with a recorded run, and a twin run a real
daemon recorded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._daemon import Daemon, free_port, record_run
from ._recording import Recording, record_twin_run

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon per test module (each test starts runs of its own), on its Unix socket
    and on loopback TCP with a token."""
    data = tmp_path_factory.mktemp("tui") / "d"
    record_run(data)
    token_file = data.parent / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    running = Daemon(data, "--tcp", f"127.0.0.1:{free_port()}", "--token-file", str(token_file))
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def twin_recording(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    """A two-cycle twin run on the simulated potentiostat, run to its end by a real daemon
    and read back from its event log (once per session: it takes the daemon a while)."""
    return record_twin_run(tmp_path_factory.mktemp("recorded") / "d")
