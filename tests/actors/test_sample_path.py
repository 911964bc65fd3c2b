"""The path of a sample through the daemon's own tree, in this process (the recorder, the
runs supervisor, the API server on a real Unix socket; see ``test_run_commands.py``):
counts shown without sitting in the samples' way, event frames that carry the very bytes
the log holds, made once, and losses carried from a recording through its replay."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pykka
import pytest

import runtime.codec
from runtime import topics
from runtime.api.protocol import (
    CLIENT_MAX_FRAME,
    ClientProtocol,
    FrameDecoder,
    decode_body,
    hello_request,
    subscribe_request,
)
from runtime.codec import DEFAULT_LIMITS, decode, encode, peek_tag
from runtime.event_bus import topic_matches
from runtime.event_store import EventStore
from runtime.messages import RunCreated, RunStateChanged, SampleBatch, utc_now
from runtime.sample_flags import Flag

from ..runtime.test_daemon import BATCHES, POINTS
from .test_run_commands import HANG_GUARD_S, Tree

LOSSY = "lossy"
# (samples, lost before them) of each batch of the lossy recording: a loss inside the
# recording, and a batch that holds nothing but a loss.
LOSSY_BATCHES = ((10, 0), (10, 7), (0, 5), (10, 0))


def record_lossy_run(data: Path) -> None:
    """A finished run whose instrument lost samples along the way."""
    data.mkdir(parents=True, exist_ok=True)
    stream = topics.run_stream(LOSSY)
    with EventStore(data / "events.lmdb") as store:
        now = utc_now()
        store.append(stream, encode(RunCreated(LOSSY, now, {"name": "lossy"}, "")))
        store.append(stream, encode(RunStateChanged(LOSSY, "running", "idle", "started", now)))
        t0 = 0.0
        for seq, (n, lost) in enumerate(LOSSY_BATCHES):
            t0 += lost * 1e-3
            t = t0 + np.arange(1, n + 1) * 1e-3
            t0 = float(t[-1]) if n else t0
            flags = np.zeros(n, np.uint8)
            if n and lost:
                flags[0] = Flag.GAP
            batch = SampleBatch(LOSSY, seq, t, -t, 1e-6 * t, flags, lost)
            store.append(stream, encode(batch))
        done = RunStateChanged(LOSSY, "completed", "running", "done", now)
        store.append(stream, encode(done)).result()


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Tree]:
    record_lossy_run(tmp_path / "d")
    running = Tree(tmp_path / "d")
    yield running
    running.close()
    pykka.ActorRegistry.stop_all(timeout=20)


def replayed(tree: Tree, source: str) -> str:
    """Replay ``source`` at full speed; the new run's id once it has completed."""
    states = tree.bus.subscribe(topics.EVERY_RUN_STATE, mode="lossless")
    try:
        with tree.client() as client:
            run_id = str(client.call("runs", "replay", source, "max")["id"])
        while True:
            _, msg = states.receive(timeout=HANG_GUARD_S)
            if isinstance(msg, RunStateChanged) and msg.run_id == run_id:
                assert msg.state in ("running", "completed"), msg
                if msg.state == "completed":
                    return run_id
    finally:
        states.close()


def logged(tree: Tree, run_id: str) -> list[bytes]:
    """The sample batches of ``run_id`` as the event log holds them (bytes)."""
    tree.services.recorder_ref().proxy().flush().get()
    stream = topics.run_stream(run_id)
    return [data for _, data in tree.store.read(stream) if peek_tag(data) == "samples"]


def test_the_runs_count_durable_samples_without_sitting_in_their_way(tree: Tree) -> None:
    run_id = replayed(tree, "src")
    # Nothing in the daemon listens to the recorder's per-commit notes losslessly: no
    # one can hold the recorder (and through it the samples) up to count them.
    holding = [
        s.pattern
        for s in tree.bus.statistics().subscriptions
        if s.mode == "lossless" and topic_matches(s.pattern, topics.RECORDER_SAMPLES)
    ]
    assert holding == []
    recorded = sum(len(decode(data)) for data in logged(tree, run_id))
    assert recorded == BATCHES * POINTS
    with tree.client() as client:
        assert client.call("runs", "show", run_id)["samples"] == recorded
        listed = {r["id"]: r["samples"] for r in client.call("runs", "list")}
    assert listed == {"src": recorded, LOSSY: 30, run_id: recorded}


class RawSubscriber:
    """A connection to the actor message API that keeps every frame as it came."""

    def __init__(self, path: Path, pattern: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(HANG_GUARD_S)
        self.sock.connect(str(path))
        self.decoder = FrameDecoder(CLIENT_MAX_FRAME)
        self.frames: list[dict[str, Any]] = []  # event frames: the body and what it says
        try:
            self.sock.sendall(ClientProtocol.frame(1, hello_request("raw")))
            self.sock.sendall(ClientProtocol.frame(2, subscribe_request(pattern)))
            self._until(lambda body, frame: frame.get("id") == 2)
        except BaseException:
            self.sock.close()
            raise

    def _until(self, done: Any) -> None:
        while True:
            data = self.sock.recv(1 << 16)
            assert data, "the daemon closed the connection"
            for body in self.decoder.feed(data):
                assert isinstance(body, bytes), body
                frame = decode_body(body, DEFAULT_LIMITS)
                if frame.get("op") == "event":
                    self.frames.append({"body": body, **frame})
                elif "id" in frame:
                    assert frame["ok"], frame
                if done(body, frame):
                    return

    def events(self, topic: str, count: int) -> list[dict[str, Any]]:
        """The first ``count`` event frames on ``topic``."""

        def enough(*_: object) -> bool:
            return sum(f["topic"] == topic for f in self.frames) >= count

        if not enough():
            self._until(enough)
        return [f for f in self.frames if f["topic"] == topic][:count]

    def close(self) -> None:
        self.sock.close()


def test_event_frames_carry_the_logs_bytes_made_once(
    tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    serialized: list[object] = []  # every array packed, kept (so no two share an id)
    pack_array = runtime.codec._array_ext

    def counted(array: Any) -> Any:
        serialized.append(array)
        return pack_array(array)

    monkeypatch.setattr(runtime.codec, "_array_ext", counted)
    watchers: list[RawSubscriber] = []
    try:
        watchers += [RawSubscriber(tree.socket, topics.EVERY_RUN_SAMPLES) for _ in range(2)]
        run_id = replayed(tree, LOSSY)
        log = logged(tree, run_id)
        seen = [w.events(topics.run_samples(run_id), len(log)) for w in watchers]
    finally:
        for w in watchers:
            w.close()
    # The losses came through the replay as recorded, the batch of nothing but a loss too.
    batches = [decode(data) for data in log]
    assert [(len(b), b.lost) for b in batches] == list(LOSSY_BATCHES)
    assert batches[1].flags[0] == Flag.GAP
    for frames in seen:
        for frame, data in zip(frames, log, strict=True):
            # The frame's message is the log's bytes, as they are: not encoded anew.
            assert frame["body"].endswith(data)
            assert frame["message"][:2] == ["samples", run_id]
    # Each batch's four arrays were packed once, for the log and both subscribers.
    assert len(serialized) == 4 * len(batches)
