"""``galvana tui`` in a real terminal (tmux): what a person sees and types.

The TUI runs as ``python -m galvana.cli tui`` in a detached tmux session on a
private tmux server; the test reads the screen with ``capture-pane`` and types with
``send-keys``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._daemon import ROOT, Daemon

TMUX = shutil.which("tmux") or "/usr/bin/tmux"

pytestmark = pytest.mark.skipif(not Path(TMUX).exists(), reason="tmux is not installed")


class Terminal:
    """One tmux session running a command at a fixed size, on a server of its own."""

    def __init__(self, command: list[str], *, width: int = 100, height: int = 30) -> None:
        self.server = f"galvana-tui-test-{os.getpid()}-{time.monotonic_ns()}"
        env = f"PYTHONPATH={ROOT} TERM=xterm-256color COLORTERM=truecolor"
        shell = f'env {env} {shlex.join(command)}; echo "[exit $?]"; sleep 60'
        self._tmux(
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            str(width),
            "-y",
            str(height),
            shell,
        )

    def _tmux(self, *args: str) -> str:
        out = subprocess.run(
            [TMUX, "-L", self.server, *args], capture_output=True, text=True, timeout=30, check=True
        )
        return out.stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "t")

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "t", *keys)

    def wait_for(self, text: str, timeout: float = 90.0) -> str:
        """The screen, once ``text`` shows on it (a terminal can only be read by looking:
        the timeout bounds a failure, nothing waits for it)."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never showed; the screen:\n{screen}")
            time.sleep(0.2)

    def exit_status(self, timeout: float = 60.0) -> int:
        """The command's exit status, once it has exited (the shell prints it)."""
        screen = self.wait_for("[exit ", timeout)
        return int(screen.rsplit("[exit ", 1)[1].split("]", 1)[0])

    def close(self) -> None:
        subprocess.run([TMUX, "-L", self.server, "kill-server"], capture_output=True, check=False)


@pytest.fixture
def terminal() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for term in opened:
        term.close()


def _tui(*args: str) -> list[str]:
    return [sys.executable, "-m", "galvana.cli", "tui", *args]


def test_galvana_tui_in_a_terminal(daemon: Daemon, terminal: list[Terminal]) -> None:
    term = Terminal(_tui("--data", str(daemon.data)))
    terminal.append(term)
    screen = term.wait_for("completed")
    assert "src" in screen
    assert "Galvana" in screen
    term.keys("Enter")  # open the run under the cursor
    # The state shows with the run's record, the samples once its history is read.
    screen = term.wait_for("4,000 samples")
    assert "COMPLETED" in screen
    assert "I vs E" in screen
    assert any("\u2800" < ch <= "\u28ff" for ch in screen)  # the plot is drawn in braille
    term.keys("F3")
    screen = term.wait_for("recorder")
    assert "instruments" in screen
    term.keys("C-q")
    assert term.exit_status() == 0


def test_no_daemon_is_one_clear_line_and_a_retry(tmp_path: Path, terminal: list[Terminal]) -> None:
    term = Terminal(_tui("--data", str(tmp_path / "nothing-here")))
    terminal.append(term)
    screen = term.wait_for("no daemon socket at")
    assert "retrying in" in screen
    assert "Traceback" not in screen
    term.keys("C-q")
    assert term.exit_status() == 0


def test_a_malformed_address_is_refused_before_the_tui_opens() -> None:
    out = subprocess.run(
        _tui("--tcp", "nonsense"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "galvana tui: --tcp 'nonsense' is not HOST:PORT (e.g. 127.0.0.1:7340)"
    )
