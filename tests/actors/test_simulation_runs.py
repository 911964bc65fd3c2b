"""Simulation runs in a real daemon: a scenario run as a supervised run, streamed,
paused, resumed, stopped, aborted, checked for conservation, refused when the engine
refuses it; and a twin spec measured on its own model (``instrument: simulation``).
2D runs (a killed worker, a pause at a checkpoint) run on the real DOLFINx worker in
``tests/fenicsx/test_solver.py``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
import zarr

import physics
from actors.run_state import FINAL_STATES
from runtime import topics
from runtime.client import Client
from runtime.errors import ApiError
from runtime.messages import (
    ConservationChecked,
    FieldMesh,
    FieldSnapshot,
    PosteriorUpdate,
    RunProgress,
    RunStateChanged,
    SampleBatch,
    SolverSummary,
    TwinPrediction,
)
from runtime.run_kinds import simulation_spec

from ..runtime._actors import wait_until
from ..runtime.test_daemon import Daemon
from .test_twin_runs import messages, state, twin_spec

ROOT = Path(__file__).resolve().parents[2]

# A reversible CV: 2,000 time steps, 20 s of simulated time, ten chunks of 200 steps.
DOC: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "ferrocene-cv.yaml").read_text())
STEPS = 2000
SLOW = 2.0  # x real time: ten seconds, time enough to act between chunks


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    with Daemon(tmp_path / "d") as running:
        yield running


def currents(events: list[Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    batches = [m for m in events if isinstance(m, SampleBatch)]
    assert [b.seq for b in batches] == list(range(len(batches)))  # no gap, no repeat
    return np.concatenate([b.t for b in batches]), np.concatenate([b.I for b in batches])


def next_event(
    client: Client, kind: type[Any], what: str, matches: Callable[[Any], bool] = lambda _: True
) -> Any:
    for event in client.events(timeout=120):
        if isinstance(event.message, kind) and matches(event.message):
            return event.message
    raise AssertionError(f"no {what} within 120 s")


def finished(client: Client, run_id: str, timeout: float = 120) -> dict[str, Any]:
    wait_until(lambda: state(client, run_id) in FINAL_STATES, timeout=timeout, what="the end")
    shown: dict[str, Any] = client.call("runs", "show", run_id)
    return shown


def test_a_simulation_paused_and_resumed_gives_the_currents_of_an_uninterrupted_one(
    daemon: Daemon,
) -> None:
    with daemon.client() as client:
        whole = client.call("runs", "start", DOC)["id"]  # a bare scenario is a simulation
        shown = finished(client, whole)
        assert shown["state"] == "completed", shown["reason"]
        assert (shown["kind"], shown["samples"], shown["progress"]) == ("simulation", STEPS, 1.0)
        reference = messages(client, whole)

        run_id = client.call("runs", "start", simulation_spec(DOC, speed=SLOW))["id"]
        client.subscribe(topics.run_events(run_id))
        next_event(client, SampleBatch, "the first samples")
        assert client.call("runs", "pause", run_id, True)["state"] == "paused"  # at once
        assert client.call("runs", "resume", run_id)["state"] == "running"
        progress = next_event(client, RunProgress, "an estimate", lambda m: m.fraction > 0)
        assert 0 < progress.fraction < 1
        assert progress.eta_s > 0
        assert progress.basis == "step rate"
        assert client.call("runs", "pause", run_id)["pause_pending"] is True  # deferred
        paused = next_event(
            client, RunStateChanged, "the deferred pause", lambda m: "checkpoint" in m.reason
        )
        assert paused.state == "paused"
        assert paused.reason.startswith("paused at a checkpoint: step ")
        shown = client.call("runs", "show", run_id)
        assert 0 < shown["progress"] < 1
        assert shown["samples"] < STEPS
        assert client.call("runs", "resume", run_id)["state"] == "running"
        shown = finished(client, run_id)
        events = messages(client, run_id)
    assert shown["state"] == "completed", shown["reason"]
    transitions = [state for state, _ in shown["transitions"]]
    assert transitions == ["running", "paused", "running", "paused", "running", "completed"]
    t_ref, i_ref = currents(reference)
    t, current = currents(events)
    # The same currents to the bit, however the run was interrupted...
    np.testing.assert_array_equal(t, t_ref)
    assert np.array_equal(current, i_ref)
    # ... and those the engine computes in one go, in this process.
    direct = physics.simulate(DOC)
    np.testing.assert_array_equal(t, direct.t)
    assert np.array_equal(current, direct.I)


def test_a_simulation_and_its_replay_compare_to_exactly_zero(daemon: Daemon) -> None:
    # Simulations and experiments are the same kind of run: a simulation run is replayed
    # and compared like any recorded run, through the daemon.
    with daemon.client() as client:
        sim = client.call("runs", "start", DOC)["id"]
        assert finished(client, sim)["state"] == "completed"
    replay = daemon.cli("replay", sim, "--json")
    assert replay.returncode == 0, replay.stderr
    replay_id = json.loads(replay.stdout)["id"]
    with daemon.client() as client:
        assert finished(client, replay_id)["state"] == "completed"
    for axis in ("E", "t"):
        out = daemon.cli("compare", sim, replay_id, "--axis", axis, "--json")
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
        assert (result["rms"], result["max_abs"]) == (0.0, 0.0)
        # Every sample on the time axis; on the potential axis those where both sweeps
        # of a branch overlap.
        assert result["points"] == STEPS if axis == "t" else result["points"] > 0.95 * STEPS
        assert result["peaks"], "the voltammogram's peaks are compared"
        assert all(p["dE"] == 0.0 and p["dI"] == 0.0 for p in result["peaks"])


def test_a_simulation_stops_and_aborts_at_a_checkpoint(daemon: Daemon) -> None:
    with daemon.client() as client:
        for command, ended in (("stop", "stopped"), ("abort", "aborted")):
            run_id = client.call("runs", "start", simulation_spec(DOC, speed=SLOW))["id"]
            client.subscribe(topics.run_samples(run_id))
            next_event(client, SampleBatch, "the first samples")
            assert client.call("runs", command, run_id)["state"] == ended
            shown = finished(client, run_id)
            assert shown["state"] == ended
            events = messages(client, run_id)
            # Nothing of the run after its end: its last event is the final state.
            assert isinstance(events[-1], RunStateChanged)
            assert events[-1].state == ended
            _, current = currents(events)
            assert 0 < current.size < STEPS
            assert not any(isinstance(m, ConservationChecked) for m in events)
        tree = client.call("", "tree")
    assert next(n for n in tree if n["id"] == "runs")["children"] == []


def test_a_scenario_the_engine_refuses_is_refused_at_start(daemon: Daemon, tmp_path: Path) -> None:
    bad = {**DOC, "engine": "numba", "electrode": {"geometry": "disk", "radius": 5e-6}}
    fragment = "scenario: electrode.geometry: got 'disk', a 2D geometry; accepted by engine numba"
    with daemon.client() as client:
        with pytest.raises(ApiError, match=fragment) as info:
            client.call("runs", "start", bad)
        assert info.value.code == "bad_request"
        with pytest.raises(ApiError, match="speed: got -1") as info:
            client.call("runs", "start", simulation_spec(DOC, speed=-1))
        assert info.value.code == "bad_request"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**DOC, "species": {"O": {"D": -1.0, "c_bulk": 1.0}}}))
    out = daemon.cli("run", "start", str(path))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "species.O.D" in lines[0]
    assert "Traceback" not in out.stderr
    listed = daemon.cli("run", "list", "--json")
    assert json.loads(listed.stdout) == []  # nothing was created
    assert daemon.proc is not None
    assert daemon.proc.poll() is None


def test_the_mass_balance_closes_and_a_failed_check_fails_the_run(
    daemon: Daemon, tmp_path: Path
) -> None:
    path = tmp_path / "cv.yaml"
    path.write_text(yaml.safe_dump(DOC))
    out = daemon.cli("run", "start", str(path), "--snapshots", "3", "--json")
    assert out.returncode == 0, out.stderr
    run_id = json.loads(out.stdout)["id"]
    with daemon.client() as client:
        shown = finished(client, run_id)
        events = messages(client, run_id)
        assert shown["state"] == "completed", shown["reason"]
        strict = client.call("runs", "start", simulation_spec(DOC, tolerance=1e-15))["id"]
        failed = finished(client, strict)
    check = next(m for m in events if isinstance(m, ConservationChecked))
    assert check.engine == "numba"
    assert check.passed
    assert check.species == ("O", "R")
    assert check.max_relative_error < 1e-6
    # The charge a reduction wave passes: cathodic, and each species moves by Q/nF.
    assert check.charge < 0
    np.testing.assert_allclose(
        check.expected, [check.charge / 96485.33212, -check.charge / 96485.33212]
    )
    np.testing.assert_allclose(check.change, check.expected + check.boundary, rtol=1e-6)
    summary = shown["summary"]
    assert summary["conservation"]["passed"] is True
    assert summary["conservation"]["max_relative_error"] == check.max_relative_error
    stability = summary["stability"]
    assert (stability["engine"], stability["steps"], stability["rejected_steps"]) == (
        "numba",
        STEPS,
        0,
    )
    assert any(isinstance(m, SolverSummary) for m in events)
    # The concentration profiles went through the recorder to the run's zarr group.
    mesh = next(m for m in events if isinstance(m, FieldMesh))
    snaps = [m for m in events if isinstance(m, FieldSnapshot)]
    assert len(snaps) == 3
    assert snaps[-1].step == STEPS - 1
    group = zarr.open_group(daemon.data / "fields" / f"{run_id}.zarr", mode="r")
    np.testing.assert_array_equal(np.asarray(group["numba.mesh.x"][:])[0], mesh.coordinates[0])
    np.testing.assert_array_equal(np.asarray(group["numba.snapshot.c"][:])[-1], snaps[-1].c)
    shown_text = daemon.cli("run", "show", run_id)
    assert "balance   passed: largest relative error" in shown_text.stdout
    # A tolerance the balance cannot meet: the run fails, with the figure.
    assert failed["state"] == "failed"
    assert failed["reason"].startswith("conservation check failed: species ")
    assert "tolerance 1e-15" in failed["reason"]


# --- a twin spec measured on its own model ---------------------------------------------


def test_a_twin_spec_on_instrument_simulation_measures_its_own_model(daemon: Daemon) -> None:
    spec = {**twin_spec(cycles=2), "instrument": "simulation"}
    with daemon.client() as client:
        runs = [client.call("runs", "start", spec)["id"] for _ in range(2)]
        shown = [finished(client, run_id, timeout=300) for run_id in runs]
        events = [messages(client, run_id) for run_id in runs]
    for record in shown:
        assert record["state"] == "completed", record["reason"]
        assert record["kind"] == "acquisition"
        assert record["reason"] == (
            "the protocol ran to its end (2 cycles) on its model's simulation"
        )
    # The protocol's samples: 2 cycles of 1.2 s and a rest of 0.2 s at 200 Hz, both ends.
    t, current = currents(events[0])
    np.testing.assert_allclose(t, np.arange(521) / 200.0, rtol=0, atol=1e-12)
    # Seeded: the same spec measures the same, to the bit.
    assert np.array_equal(current, currents(events[1])[1])
    # The twin and the calibrator follow it as they follow an instrument, and find the
    # model's own values (E0 0.2 V, k0 0.01 cm/s) from priors away from them, and the
    # noise it was measured with (the noise prior's median: 0.674 uA).
    predictions = [m for m in events[0] if isinstance(m, TwinPrediction)]
    assert sum(len(p.t) for p in predictions) >= 500
    posterior = [m for m in events[0] if isinstance(m, PosteriorUpdate)][-1]
    median = dict(zip(posterior.parameters, posterior.median, strict=True))
    assert median["kinetics.E0"] == pytest.approx(0.2, abs=2e-3)
    assert median["kinetics.k0"] == pytest.approx(1e-4, rel=0.1)
    assert median["noise"] == pytest.approx(0.6745e-6, rel=0.2)
