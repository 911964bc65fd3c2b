"""How much CPU ``galvana tui`` takes while it follows a 1 kHz run (not a test: run it).

    PYTHONPATH=. python -m tests.tui.measure_cpu [--seconds 30] [--size 120x40]

It records a 1 kHz run (50-sample batches, 20 a second, as an instrument streams),
starts a daemon, replays the run at real speed (so 1,000 samples a second arrive
live), opens ``galvana tui --run <replay>`` in a tmux terminal, and reads the TUI
process's CPU time (user + system, from /proc) over a window after a warm-up. It
then compares the samples the TUI shows with those the daemon counted, to see that
it kept up.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from ._daemon import Daemon, record_run
from .test_terminal import Terminal

_TICKS = os.sysconf("SC_CLK_TCK")


def _tui_pid(data: Path) -> int:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"tui" in cmdline and str(data).encode() in cmdline and b"galvana.cli" in cmdline:
            return int(entry.name)
    raise RuntimeError("the TUI process was not found")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="the measured window")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--size", default="120x40", help="the terminal, COLSxROWS")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    duration = args.warmup + args.seconds + 20
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "d"
        record_run(data, batches=int(duration * 20), points=50, rate_hz=1000.0, name="1 kHz cv")
        daemon = Daemon(data)
        daemon.start()
        term = None
        try:
            record = daemon.call("runs", "replay", "src", 1.0)
            assert isinstance(record, dict)
            run_id = str(record["id"])
            term = Terminal(
                [sys.executable, "-m", "galvana.cli", "tui", "--data", str(data), "--run", run_id],
                width=width,
                height=height,
            )
            term.wait_for("RUNNING")
            pid = _tui_pid(data)
            time.sleep(args.warmup)
            cpu0, wall0 = _cpu_seconds(pid), time.monotonic()
            time.sleep(args.seconds)
            cpu1, wall1 = _cpu_seconds(pid), time.monotonic()
            screen = term.screen()
            shown = daemon.call("runs", "show", run_id)
            assert isinstance(shown, dict)
            match = re.search(r"([\d,]+) samples @ ([^ ]+ \w+)", screen)
            lag = "no lag" if "no lag" in screen else "LAGGED"
            # The screen draws less often than 10 Hz when over its CPU budget, and says so.
            paced = re.search(r"display (\d+) Hz", screen)
            frames = f"display {paced.group(1)} Hz (paced)" if paced else "display 10 Hz"
            shown_samples = match.group(1) if match else "?"
            rate = match.group(2) if match else "?"
            report = [
                f"terminal {width}x{height}, {args.seconds:.0f} s window at 1 kHz",
                f"TUI CPU: {100 * (cpu1 - cpu0) / (wall1 - wall0):.1f}% of one core",
                f"samples shown {shown_samples} at {rate}; daemon counted "
                f"{shown['samples']:,}; {lag}; {frames}",
            ]
            sys.stdout.write("\n".join(report) + "\n")
        finally:
            if term is not None:
                term.keys("C-q")
                time.sleep(1)
                term.close()
            daemon.stop()


if __name__ == "__main__":
    main()
