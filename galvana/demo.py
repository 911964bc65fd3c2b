"""``galvana demo``: the main job on the embedded default.

A daemon (in this process) with a simulated potentiostat whose hidden true cell
(``examples/simulated-cell.yaml``) fouls as it is measured, k0 falling 3 % per CV
cycle; a twin run (``examples/twins/demo.yaml``) follows it with online calibration.
On a terminal the TUI opens on the run; otherwise (or with ``--headless``) one line
per posterior update: cycle, residual RMS, and the k0 estimate with its 90 %
interval against the truth over the cycle (k0 drifts while it is measured).
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time
from pathlib import Path

import numpy as np

from galvana.daemon import tree
from runtime import topics
from runtime.client import Client
from runtime.commands import read_twin_spec
from runtime.daemon import DaemonConfig, serve
from runtime.errors import ConnectionLost, GalvanaError
from runtime.messages import PosteriorUpdate, RunStateChanged, SimulatedTruth, TwinPrediction

__all__ = ["configure", "run", "say"]

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "examples" / "twins" / "demo.yaml"
K0_DRIFT = -0.03  # per cycle


def configure(parser: argparse.ArgumentParser) -> None:
    """The options of ``galvana demo``."""
    parser.add_argument("--headless", action="store_true", help="progress lines instead of the TUI")
    parser.add_argument(
        "--data", default="galvana-demo", help="data directory (default ./galvana-demo)"
    )
    parser.add_argument("--cycles", type=int, default=12, help="CV cycles to run (default 12)")


def run(args: argparse.Namespace) -> int:
    """Start the daemon and a twin run, then watch it (TUI or lines)."""
    if args.cycles < 1:
        raise GalvanaError(f"--cycles {args.cycles} is not accepted; expected at least 1")
    data = Path(args.data)
    config = DaemonConfig(
        data=data,
        socket=data / "galvana.sock",
        instruments=[{"id": "sim", "drift": [f"kinetics.k0={K0_DRIFT}"], "seed": 1}],
        config_dir=ROOT,
        log_level="INFO",
    )
    ready = threading.Event()
    stop = threading.Event()
    failure: list[BaseException] = []

    def host() -> None:
        try:
            serve(config, tree, stop=stop, ready=lambda _root: ready.set())
        except BaseException as exc:
            failure.append(exc)
            ready.set()

    began = time.monotonic()
    say(f"galvana demo: starting the daemon on {data} (simulated potentiostat, fouling electrode)")
    daemon = threading.Thread(target=host, name="galvana-daemon")
    daemon.start()
    ready.wait()
    if failure:
        raise failure[0]
    try:
        spec = read_twin_spec(SPEC)
        spec["protocol"]["cycles"] = args.cycles
        with Client(socket_path=config.socket) as client:
            record = client.call("runs", "start", spec)
        say(f"galvana demo: twin run {record['id']} started ({args.cycles} cycles of CV)")
        if args.headless or not (sys.stdin.isatty() and sys.stdout.isatty()):
            _watch(config.socket, record["id"], began)
        else:
            from tui import run_app  # noqa: PLC0415 - Textual only when there is a terminal

            run_app(socket_path=str(config.socket), run_id=record["id"])
    finally:
        stop.set()
        daemon.join(timeout=180)
    return 0


def say(line: str) -> None:
    """One progress line, at once."""
    print(line, flush=True)


def _watch(socket_path: Path, run_id: str, began: float) -> None:
    squares, count = 0.0, 0
    first_prediction = True
    k0_truth: dict[int, tuple[float, float]] = {}  # by cycle: at its start and its end
    with Client(socket_path=socket_path) as client:
        client.subscribe(topics.run_events(run_id))
        for event in client.events(timeout=120):
            msg = event.message
            if isinstance(msg, TwinPrediction) and len(msg.residual):
                if first_prediction:
                    elapsed = time.monotonic() - began
                    say(f"galvana demo: first twin prediction {elapsed:.1f} s after start")
                    first_prediction = False
                squares += float(np.sum(np.square(msg.residual)))
                count += len(msg.residual)
            elif isinstance(msg, SimulatedTruth) and "kinetics.k0" in msg.parameters:
                i = msg.parameters.index("kinetics.k0")
                k0_truth[msg.cycle] = (float(msg.start[i]), float(msg.end[i]))
            elif isinstance(msg, PosteriorUpdate):
                say(_posterior_line(msg, squares, count, k0_truth.get(msg.segment)))
                squares, count = 0.0, 0
            elif isinstance(msg, RunStateChanged) and msg.state not in ("running", "paused"):
                say(f"galvana demo: run {msg.state}: {msg.reason}")
                break
        else:
            raise ConnectionLost("the demo run went quiet for 120 s")


def _posterior_line(
    msg: PosteriorUpdate, squares: float, count: int, truth: tuple[float, float] | None
) -> str:
    cycle = msg.segment + 1
    rms = math.sqrt(squares / count) if count else math.nan
    names = list(msg.parameters)
    parts = [f"cycle {cycle:>2}", f"residual RMS {rms * 1e9:7.1f} nA"]
    if "kinetics.k0" in names:
        i = names.index("kinetics.k0")
        parts.append(
            f"k0 {msg.median[i] * 100:.5f} cm/s [{msg.q05[i] * 100:.5f}, {msg.q95[i] * 100:.5f}]"
        )
        if truth is not None:
            # k0 drifts while the cycle is measured: the interval should meet its range.
            lo, hi = sorted(truth)
            inside = msg.q05[i] <= hi and lo <= msg.q95[i]
            parts.append(
                f"truth {truth[0] * 100:.5f} -> {truth[1] * 100:.5f} "
                f"{'met' if inside else 'MISSED'}"
            )
    return "  ".join(parts)
