"""Kill a writing process with SIGKILL again and again; every acknowledged event must survive.

The child (``_store_child.py crash-writer``) appends events whose bytes follow
from stream and sequence number (with a CRC-32), and prints ``<stream> <seq>``
for each one only after its future resolved, i.e. after the commit was durable.
Each round starts a new child on the same store and kills it at a random point:
while it opens the store, appends, grows the map or commits.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from runtime.event_store import EventStore
from tests.runtime._store_child import STREAMS, event_bytes

REPO = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("_store_child.py")
ROUNDS = 40


def _run_and_kill(path: Path, seed: int, rng: random.Random, stderr_path: Path) -> list[str]:
    """One child's life: start, let it write for a random while, SIGKILL; its finished lines."""
    with (
        stderr_path.open("w") as stderr,
        subprocess.Popen(
            [sys.executable, str(CHILD), "crash-writer", str(path), str(seed)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            stderr=stderr,
        ) as proc,
    ):
        assert proc.stdout is not None
        if seed % 5 == 4:
            # Sometimes before "ready": during start-up, opening or recovery.
            time.sleep(rng.uniform(0.0, 0.2))
        else:
            first = proc.stdout.readline()
            assert first == b"ready\n", stderr_path.read_text()
            time.sleep(rng.uniform(0.01, 0.25))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, (
            f"the writer exited by itself ({proc.returncode}):\n{stderr_path.read_text()}"
        )
    # A line cut off by the kill has no newline and proves nothing: drop it.
    return out.decode().split("\n")[:-1]


@pytest.mark.slow
def test_acknowledged_events_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "events.lmdb"
    rng = random.Random(20240611)
    acked: dict[str, set[int]] = defaultdict(set)
    for seed in range(ROUNDS):
        for line in _run_and_kill(path, seed, rng, tmp_path / "stderr.txt"):
            if line != "ready":
                stream, number = line.split()
                acked[stream].add(int(number))
        if path.exists():
            # Between kills: the store opens, and nothing acknowledged is missing yet.
            with EventStore(path, readonly=True) as store:
                for stream, seqs in acked.items():
                    assert store.last_seq(stream) >= max(seqs), (seed, stream)
    assert sum(map(len, acked.values())) > 1000, "the writer hardly wrote; the test proves little"

    with EventStore(path) as store:
        assert set(store.streams()) <= set(STREAMS)
        for stream in STREAMS:
            stored: list[int] = []
            for seq, data in store.read(stream):
                # Intact, and exactly the event that belongs at this place in the stream.
                assert data == event_bytes(stream, seq), (stream, seq, len(data))
                stored.append(seq)
            assert stored == list(range(1, len(stored) + 1)), f"{stream}: gap in sequence numbers"
            missing = acked[stream] - set(stored)
            assert not missing, f"{stream}: acknowledged but lost: {sorted(missing)[:10]}"
        # The reopened store takes writes again, after the last surviving event.
        last = store.last_seq("system")
        assert store.append_sync("system", event_bytes("system", last + 1)) == last + 1
    shutil.rmtree(path)  # a few hundred MB; pytest keeps old tmp dirs around
