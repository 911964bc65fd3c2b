"""Fixtures of the TUI tests: a real daemon with a recorded run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._daemon import Daemon, free_port, record_run

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
