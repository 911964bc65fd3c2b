"""A run ends with everything it holds: a finished twin run takes nothing of the runs after
it (a real daemon, its simulated potentiostat over pyvisa, the twin and calibrator)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime.messages import SampleBatch

from ..runtime.test_daemon import Daemon
from ..runtime.test_data_integrity import stream_events, wait_state
from .test_twin_runs import twin_spec


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    data = tmp_path / "d"
    data.mkdir()
    config = tmp_path / "daemon.yaml"
    config.write_text(yaml.safe_dump({"instruments": [{"id": "sim", "speed": 1.0, "seed": 5}]}))
    running = Daemon(data, extra=("--config", str(config)))
    running.start()
    yield running
    if running.proc is not None and running.proc.poll() is None:
        running.signal(signal.SIGTERM)


def test_a_finished_run_takes_nothing_of_the_next_one(daemon: Daemon) -> None:
    with daemon.client() as client:
        first = client.call("runs", "start", twin_spec(cycles=2))["id"]
    wait_state(daemon, first, "completed")
    with daemon.client() as client:
        before = stream_events(client, first)
        shown = client.call("runs", "show", first)
        second = client.call("runs", "start", twin_spec(cycles=2))["id"]
    wait_state(daemon, second, "completed")
    with daemon.client() as client:
        after = stream_events(client, first)
        assert client.call("runs", "show", first)["samples"] == shown["samples"]
        assert client.call("runs", "show", second)["samples"] > 0
        stats = client.call("recorder", "statistics")
    assert len(after) == len(before)  # not one event joined the finished run's stream

    def samples(events: list[Any]) -> int:
        return sum(len(m) for m in events if isinstance(m, SampleBatch))

    assert samples(after) == samples(before) == shown["samples"]
    # Nothing was even published on the finished run's topics: its acquisition let go of
    # the instrument, so the recorder had nothing to refuse.
    assert stats["refused"] == 0
