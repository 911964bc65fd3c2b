"""Twin runs end to end: a real daemon, its simulated potentiostat over pyvisa, the twin
and the calibrator; pause at a cycle end, resume, emergency stop."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from actors.run_state import FINAL_STATES
from runtime import topics
from runtime.client import Client
from runtime.messages import (
    PosteriorUpdate,
    RunStateChanged,
    SampleBatch,
    SimulatedTruth,
    TwinPrediction,
)

from ..runtime._actors import wait_until
from ..runtime.test_daemon import Daemon, recorded_messages

ROOT = Path(__file__).resolve().parents[2]


def twin_spec(cycles: int = 3) -> dict[str, Any]:
    return {
        "name": "test-twin",
        "seed": 3,
        "instrument": "sim",
        "protocol": {
            "waveform": {
                "type": "cv",
                "E_start": "500 mV",
                "E_vertex": "-100 mV",
                "scan_rate": "1 V/s",
            },
            "cycles": cycles,
            "rest": "0.2 s",
            "sample_rate": "200 Hz",
        },
        "model": yaml.safe_load((ROOT / "examples" / "simulated-cell.yaml").read_text()),
        "calibrate": {
            "parameters": {
                "kinetics.E0": {"dist": "normal", "mean": "0.18 V", "sd": "30 mV"},
                "kinetics.k0": {"dist": "lognormal", "median": "0.005 cm/s", "scale": 1.0},
            },
            "noise": {"dist": "halfnormal", "scale": "1 uA"},
            "every": {"cycles": 1},
        },
    }


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    with Daemon.with_simulator(tmp_path) as running:
        yield running


def state(client: Client, run_id: str) -> str:
    return str(client.call("runs", "show", run_id)["state"])


messages = recorded_messages


def test_a_twin_run_follows_the_simulated_cell_and_calibrates(daemon: Daemon) -> None:
    with daemon.client() as client:
        run = client.call("runs", "start", twin_spec(cycles=3))
        wait_until(lambda: state(client, run["id"]) == "completed", timeout=120, what="the run")
        shown = client.call("runs", "show", run["id"])
        events = messages(client, run["id"])
    assert shown["reason"] == "the protocol ran to its end (3 cycles)"
    # 3 cycles of 1.2 s and 2 rests of 0.2 s at 200 Hz, with the cycle ends' samples
    assert 780 <= shown["samples"] <= 800
    predictions = [m for m in events if isinstance(m, TwinPrediction)]
    assert sum(len(p.t) for p in predictions) >= 700  # the twin followed nearly every sample
    posteriors = [m for m in events if isinstance(m, PosteriorUpdate)]
    assert len(posteriors) >= 2
    names = list(posteriors[-1].parameters)
    e0 = posteriors[-1].median[names.index("kinetics.E0")]
    k0 = posteriors[-1].median[names.index("kinetics.k0")]
    assert e0 == pytest.approx(0.2, abs=2e-3)  # the hidden truth, from a 0.18 V prior
    assert k0 == pytest.approx(1e-4, rel=0.05)  # ... and from a prior half of it
    # Calibrated, the twin follows the instrument to within 1 % of the peak current (it
    # was 6 % while the instrument put its cell back at rest at every acquisition).
    last = [p for p in predictions if p.posterior == posteriors[-1].version - 1 > 0]
    residual = np.concatenate([p.residual for p in last])
    peak = max(float(np.nanmax(np.abs(p.predicted))) for p in predictions)
    rms = float(np.sqrt(np.nanmean(residual**2)))
    assert rms < 0.01 * peak, (rms, peak)
    states = [(m.previous, m.state) for m in events if isinstance(m, RunStateChanged)]
    assert states == [("idle", "running"), ("running", "completed")]
    truths = [m for m in events if isinstance(m, SimulatedTruth)]
    assert [t.cycle for t in truths] == [0, 1, 2]  # one per cycle, for people to compare
    truth = dict(zip(truths[0].parameters, truths[0].values, strict=True))
    assert truth["kinetics.E0"] == pytest.approx(0.2)
    assert truth["kinetics.k0"] == pytest.approx(1e-4)  # 0.01 cm/s


def test_deferred_pause_waits_for_the_end_of_the_cycle(daemon: Daemon) -> None:
    with daemon.client() as client:
        run_id = client.call("runs", "start", twin_spec(cycles=3))["id"]
        wait_until(lambda: client.call("runs", "show", run_id)["samples"] > 20, what="samples")
        assert client.call("runs", "pause", run_id)["pause_pending"] is True
        wait_until(lambda: state(client, run_id) == "paused", timeout=60, what="the pause")
        shown = client.call("runs", "show", run_id)
        assert shown["reason"] == "paused at a checkpoint: end of cycle 1 of 3"
        assert client.call("runs", "resume", run_id)["state"] == "running"
        wait_until(lambda: state(client, run_id) == "completed", timeout=120, what="the end")


LONG_RUN_CYCLES = 500
"""A protocol no test sees the end of (about 12 minutes): a run that must be stopped
cannot finish first however slowly the machine runs the test."""


def next_event(
    client: Client,
    kind: type[Any],
    what: str,
    matches: Callable[[Any], bool] = lambda _: True,
    timeout: float = 120.0,
) -> Any:
    """The next message of the client's subscriptions that is a ``kind`` and ``matches``
    (``timeout`` s without one bounds a failure)."""
    for event in client.events(timeout=timeout):
        if isinstance(event.message, kind) and matches(event.message):
            return event.message
    raise AssertionError(f"no {what} within {timeout:g} s")


def test_emergency_stop_aborts_the_run_and_turns_the_cell_off(daemon: Daemon) -> None:
    with daemon.client() as client:
        run_id = client.call("runs", "start", twin_spec(cycles=LONG_RUN_CYCLES))["id"]
        samples = client.subscribe(topics.run_samples(run_id))
        next_event(client, SampleBatch, "samples")  # the cell is on and measuring
        client.unsubscribe(samples)
        client.subscribe(topics.run_state(run_id))
        out = daemon.cli("estop", "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)[0]["cell_off"] is True
        # (Under load a suspender may pause and resume the run first: skip to its end.)
        ended = next_event(
            client, RunStateChanged, "the run's end", lambda m: m.state in FINAL_STATES
        )
        assert ended.state == "aborted"
        assert "emergency stop" in ended.reason
        assert client.call("runs", "show", run_id)["reason"] == ended.reason
        sim = client.call("instruments", "list")[0]
        assert sim["state"] == "tripped"
        # A second emergency stop is harmless; a reset brings the instrument back.
        assert client.call("instruments", "estop", "sim")[0]["cell_off"] is True
        client.call("instruments", "reset", "sim")
        assert client.call("instruments", "list")[0]["state"] in ("idle", "armed")


def test_a_killed_instrument_actor_is_restarted_and_the_run_resumes(daemon: Daemon) -> None:
    with daemon.client() as client:
        run_id = client.call("runs", "start", twin_spec(cycles=4))["id"]
        wait_until(lambda: client.call("runs", "show", run_id)["samples"] > 20, what="samples")
        client.call("instruments", "kill", "sim")
        wait_until(lambda: state(client, run_id) == "completed", timeout=120, what="the end")
        shown = client.call("runs", "show", run_id)
        tree = client.call("", "tree")
    transitions = [tuple(t) for t in shown["transitions"]]
    assert ("paused", "suspended: instrument sim restarting") in transitions
    assert ("running", "resumed: instrument sim restarting cleared") in transitions
    instruments = next(n for n in tree if n["id"] == "instruments")
    sim = instruments["children"][0]
    assert (sim["id"], sim["state"], sim["restarts"], sim["incarnation"]) == (
        "sim",
        "running",
        1,
        2,
    )
    assert sim["last_failure"] == "killed on request"


def _fingerprint(events: list[Any]) -> tuple[list[bytes], list[bytes]]:
    """The twin's predictions and the calibrator's posteriors, byte for byte (the run id,
    which differs between runs by design, left out)."""
    from dataclasses import replace

    from runtime.codec import encode

    def anonymous(kind: type) -> list[bytes]:
        return [encode(replace(m, run_id="")) for m in events if isinstance(m, kind)]

    return anonymous(TwinPrediction), anonymous(PosteriorUpdate)


def test_replays_of_a_twin_run_are_bit_identical(daemon: Daemon, tmp_path: Path) -> None:
    with daemon.client() as client:
        source = client.call("runs", "start", twin_spec(cycles=2))["id"]
        wait_until(lambda: state(client, source) == "completed", timeout=120, what="the run")
        replays = []
        for _ in range(2):
            replay_id = client.call("runs", "replay", source, "max")["id"]
            wait_until(
                lambda rid=replay_id: state(client, rid) == "completed",
                timeout=120,
                what="a replay",
            )
            replays.append(replay_id)
        original = _fingerprint(messages(client, source))
        first, second = (_fingerprint(messages(client, r)) for r in replays)
    assert len(first[1]) >= 2  # posteriors were computed
    assert first == second  # same log, model and seed: the same bytes
    assert first == original  # and the live run computed exactly that too

    other = tmp_path / "model.yaml"
    model = yaml.safe_load((ROOT / "examples" / "simulated-cell.yaml").read_text())
    model["kinetics"]["alpha"] = 0.4
    other.write_text(yaml.safe_dump(model))
    out = daemon.cli("replay", source, "--model", str(other), "--json")
    assert out.returncode == 0, out.stderr
    with daemon.client() as client:
        run_id = json.loads(out.stdout)["id"]
        wait_until(lambda: state(client, run_id) == "completed", timeout=120, what="the replay")
        assert client.call("runs", "show", run_id)["spec"]["model"]["kinetics"]["alpha"] == 0.4
        different = _fingerprint(messages(client, run_id))
    assert different[0] != first[0]  # another model predicts otherwise


def test_run_start_from_a_spec_file_reads_its_model_in(daemon: Daemon, tmp_path: Path) -> None:
    spec = twin_spec(cycles=50)  # a minute long: still running when the abort comes
    (tmp_path / "cell.yaml").write_text(yaml.safe_dump(spec.pop("model")))
    spec["model"] = "cell.yaml"  # relative to the spec file, which the daemon never sees
    (tmp_path / "twin.yaml").write_text(yaml.safe_dump(spec))
    out = daemon.cli("run", "start", str(tmp_path / "twin.yaml"), "--json")
    assert out.returncode == 0, out.stderr
    run = json.loads(out.stdout)
    assert run["state"] == "running"
    aborted = daemon.cli("run", "abort", run["id"], "--json")
    assert aborted.returncode == 0, aborted.stderr
    assert json.loads(aborted.stdout)["state"] == "aborted"
    (tmp_path / "bad.yaml").write_text(
        yaml.safe_dump(
            {
                **spec,
                "calibrate": {
                    "parameters": {"kinetics.k9": {"dist": "normal", "mean": 0, "sd": 1}}
                },
            }
        )
    )
    bad = daemon.cli("run", "start", str(tmp_path / "bad.yaml"))
    assert bad.returncode == 2
    assert "kinetics.k9" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_sigterm_during_a_twin_run_logs_no_traceback(daemon: Daemon) -> None:
    with daemon.client() as client:
        run_id = client.call("runs", "start", twin_spec(cycles=3))["id"]
        wait_until(lambda: client.call("runs", "show", run_id)["samples"] > 20, what="samples")
    assert daemon.signal(signal.SIGTERM) == 0
    log = (daemon.data / "logs" / "daemon.log").read_text().splitlines()
    entries = [json.loads(line) for line in log]
    tracebacks = [(e["logger"], e["msg"], e["exc"]) for e in entries if "exc" in e]
    assert tracebacks == []
    assert [e for e in entries if e["level"] in ("ERROR", "CRITICAL")] == []
    stopped = [e["msg"] for e in entries if e["logger"] == "galvana.run"]
    assert any("-> interrupted" in m for m in stopped), stopped
