"""End to end with real actors: a twin and a calibrator under a rest_for_one run
supervisor, fed by an instrument thread publishing real engine data on the bus."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from actors.twin import run_children
from runtime import topics
from runtime.codec import encode
from runtime.event_bus import EventBus
from runtime.messages import (
    ApiCall,
    CalibrationSegment,
    CalibratorStarted,
    PosteriorUpdate,
    SampleBatch,
    TwinPrediction,
)
from runtime.supervisor import SupervisorSpec, start_supervisor
from tests.twins.conftest import TRUTH, batches_of, twin_doc
from twins.samples import SampleCleaner
from twins.spec import TwinSpec, load_twin_spec
from twins.synthetic import true_current

RUN = "run-e2e"


@pytest.fixture(scope="module")
def spec() -> TwinSpec:
    return load_twin_spec(twin_doc(cycles=3))


@pytest.fixture(scope="module")
def batches(spec: TwinSpec) -> list[SampleBatch]:
    t, E, current = true_current(spec, TRUTH)
    return batches_of(t, E, current, seed=21, size=50, run_id=RUN)


def _run(spec: TwinSpec, batches: list[SampleBatch], *, calls: bool = False) -> dict[str, Any]:
    """Start the run's children, stream the batches from an 'instrument' thread, collect
    what they publish until every batch is predicted and every segment answered."""
    bus = EventBus()
    watcher = bus.subscribe(f"run/{RUN}/**", mode="lossless", maxsize=100_000)
    cut = bus.subscribe(topics.twin_segments(RUN), mode="lossless", maxsize=100_000)
    tree = start_supervisor(
        SupervisorSpec(strategy="rest_for_one", children=run_children(spec, RUN, bus)), bus=bus
    )
    try:
        assert [c.id for c in tree.which_children()] == ["twin", "calibrator"]

        def instrument() -> None:
            for b in batches:
                bus.publish(f"run/{RUN}/samples", b)
                time.sleep(0.001)

        feeder = threading.Thread(target=instrument)
        feeder.start()
        got: dict[str, list[Any]] = {"pred": [], "post": [], "other": []}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if len(got["pred"]) == len(batches) and len(got["post"]) == 3:
                break
            try:
                topic, msg = watcher.receive(timeout=1.0)
            except TimeoutError:
                continue
            if isinstance(msg, TwinPrediction):
                assert topic == f"run/{RUN}/twin"
                got["pred"].append(msg)
            elif isinstance(msg, PosteriorUpdate):
                assert topic == f"run/{RUN}/posterior"
                got["post"].append(msg)
            elif not isinstance(msg, SampleBatch):
                got["other"].append(msg)
        feeder.join()
        got["segments"] = [m for _, m in cut.drain()]
        if calls:
            calibrator = tree.child_ref("calibrator")
            got["summary"] = calibrator.ask(ApiCall("posterior", (), {}))
            got["status"] = tree.child_ref("twin").ask(ApiCall("status", (), {}))
            candidates = [
                {"type": "cv", "E_start": 0.6, "E_vertex": -0.1, "scan_rate": rate}
                for rate in (0.05, 2.0)
            ]
            got["suggest"] = calibrator.ask(
                ApiCall("suggest", (candidates,), {"parameters": ["kinetics.k0"]})
            )
        return got
    finally:
        tree.stop()
        bus.close()


def test_twin_follows_and_posterior_converges(spec: TwinSpec, batches: list[SampleBatch]) -> None:
    got = _run(spec, batches, calls=True)
    preds, posts = got["pred"], got["post"]
    assert [p.seq for p in preds] == list(range(len(batches)))
    assert [p.version for p in posts] == [1, 2, 3]
    assert any(isinstance(m, CalibratorStarted) for m in got["other"])
    # Each batch is predicted with the posteriors of the cycles before it, never later.
    ends = spec.segment_ends()
    for p in preds:
        finished = int(np.sum(ends < p.t[0] - 1e-9))
        assert p.posterior == min(finished, 3), (p.seq, p.t[0])
    # Converges: the truth inside a narrowing interval, the median within 1 %.
    k0 = TRUTH["kinetics.k0"]
    widths = [(p.q95[0] - p.q05[0]) / p.median[0] for p in posts]
    assert widths[-1] < widths[0]
    assert posts[-1].median[0] == pytest.approx(k0, rel=0.01)
    assert posts[-1].median[1] == pytest.approx(TRUTH["kinetics.E0"], abs=1e-3)
    # Once calibrated, about 90 % of residuals lie inside the 90 % band.
    late = [p for p in preds if p.posterior >= 1]
    residual = np.concatenate([p.residual for p in late])
    band = np.concatenate([p.band for p in late])
    assert 0.8 < np.mean(np.abs(residual) <= band) < 0.97
    summary = got["summary"]
    assert summary["version"] == 3
    assert summary["parameters"]["kinetics.k0"]["median"] == pytest.approx(k0, rel=0.01)
    assert got["status"]["predicted"] == len(batches)
    assert got["status"]["held"] == 0
    ranked = got["suggest"]
    assert [r["waveform"]["scan_rate"] for r in ranked] == [2.0, 0.05]
    assert ranked[0]["eig"] > ranked[1]["eig"] > 0


def test_the_samples_are_cleaned_and_cut_once_for_twin_and_calibrator(
    spec: TwinSpec, batches: list[SampleBatch], monkeypatch: pytest.MonkeyPatch
) -> None:
    cleaned: list[int] = []
    clean = SampleCleaner.clean

    def counted(self: SampleCleaner, seq: int, *columns: Any) -> Any:
        cleaned.append(seq)
        return clean(self, seq, *columns)

    monkeypatch.setattr(SampleCleaner, "clean", counted)
    got = _run(spec, batches)
    assert len(got["pred"]) == len(batches)
    # Each batch was cleaned once, for the twin and the calibrator together ...
    assert sorted(cleaned) == list(range(len(batches)))
    # ... by the twin, which cut the segments the calibrator calibrated: one per cycle,
    # every cleaned sample of the run in one of them.
    segments = got["segments"]
    assert all(isinstance(s, CalibrationSegment) for s in segments)
    assert [s.index for s in segments] == [0, 1, 2]
    assert [p.segment for p in got["post"]] == [0, 1, 2]
    assert [s.first for s in segments] == [True, False, False]
    assert sum(s.t.size for s in segments) == sum(len(b) for b in batches)
    np.testing.assert_array_equal(
        np.concatenate([s.t for s in segments]), np.concatenate([b.t for b in batches])
    )


def test_a_run_spec_with_a_model_gets_its_twin_and_calibrator(spec: TwinSpec) -> None:
    from actors.runs import _twin_children, _twin_spec
    from runtime.errors import CallError

    assert _twin_spec({"name": "no twin"}) is None
    doc = twin_doc()
    twin = _twin_spec(doc)
    children = _twin_children(twin, "r9", EventBus())
    assert [c.id for c in children] == ["twin", "calibrator"]
    assert all(c.restart == "transient" for c in children)
    doc["calibrate"]["parameters"] = {"kinetics.k0": {"dist": "lognormal", "median": 1e-5}}
    with pytest.raises(CallError, match=r"calibrate\.parameters\.kinetics\.k0\.scale") as info:
        _twin_spec(doc)
    assert info.value.code == "bad_request"


def test_same_log_same_predictions_and_posteriors(
    spec: TwinSpec, batches: list[SampleBatch]
) -> None:
    first = _run(spec, batches)
    second = _run(spec, batches)
    for key in ("pred", "post"):
        assert [encode(m) for m in first[key]] == [encode(m) for m in second[key]]
