"""The round trip: a CV simulated by the physics engine, written in each vendor's format,
imported as a run (its protocol recovered from the data), replayed into the twin spec
of examples/twins/ferricyanide-gc3mm.yaml and calibrated by the online calibrator: the
parameters that made the data come back within what their posterior says.

Truth: k0 = 1e-4 m/s (0.01 cm/s), E0 = 0.23 V, alpha = 0.5, D_O = 7.6e-10 m^2/s, 2 nA
of noise; the spec's priors start from k0 = 0.005 cm/s, E0 = 230 +- 50 mV.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from actors.importer import prepare, replay_spec_of_import, sample_batches
from runtime.commands import read_twin_spec
from runtime.messages import PosteriorUpdate
from twins.calibration import OnlineCalibrator
from twins.samples import SampleCleaner, Segmenter
from twins.spec import load_twin_spec

from . import writers as w
from .conftest import SCAN_RATE, TRUTH
from .writers import Columns

EXAMPLE = Path(__file__).parents[3] / "examples" / "twins" / "ferricyanide-gc3mm.yaml"

CASES: list[tuple[str, Callable[[Columns], bytes], list[str]]] = [
    ("cv.txt", w.autolab, ["area=0.070686cm2"]),
    ("cv.csv", w.pstrace_csv, ["area=0.070686cm2"]),
    ("cv.pssession", w.pssession, ["area=0.070686cm2"]),
    ("cv.DTA", w.gamry, []),  # its header gives the area
    ("cv.mpt", w.mpt, []),
    ("cv.mpr", w.mpr, ["area=0.070686cm2"]),
    ("cv-chi.txt", w.chi, ["area=0.070686cm2"]),
]


@pytest.mark.parametrize(("name", "writer", "meta"), CASES, ids=[c[0] for c in CASES])
def test_import_replay_calibrate_recovers_the_truth(
    tmp_path: Path, cv: Columns, name: str, writer: Callable[[Columns], bytes], meta: list[str]
) -> None:
    path = tmp_path / name
    path.write_bytes(writer(cv))
    given = {"scan_rate": SCAN_RATE} if name.endswith(".csv") else {}
    prepared = prepare(path, meta=given)
    assert "protocol" in prepared.spec, prepared.spec["import"]["protocol_note"]
    spec = load_twin_spec(replay_spec_of_import("r", prepared.spec, read_twin_spec(EXAMPLE), meta))
    assert spec.model.electrode.area == pytest.approx(7.0686e-6, rel=1e-3)
    cleaner, segmenter = SampleCleaner.for_spec(spec), Segmenter(spec)
    calibrator = OnlineCalibrator(spec, "r")
    updates = []
    for batch in sample_batches("r", prepared.t, prepared.E, prepared.I):
        for segment in segmenter.feed(
            cleaner.clean(batch.seq, batch.t, batch.E, batch.I, batch.flags)
        ):
            outcome = calibrator.update(segment)
            assert isinstance(outcome, PosteriorUpdate), outcome
            updates.append(outcome)
            break  # the first cycle is enough to identify them
        if updates:
            break
    posterior = updates[-1]
    values = dict(zip(posterior.parameters, posterior.median.tolist(), strict=True))
    assert values["kinetics.k0"] == pytest.approx(TRUTH["kinetics.k0"], rel=0.05)
    assert values["kinetics.E0"] == pytest.approx(TRUTH["kinetics.E0"], abs=1e-3)
    assert values["kinetics.alpha"] == pytest.approx(TRUTH["kinetics.alpha"], abs=0.02)
    assert values["species.O.D"] == pytest.approx(7.6e-10, rel=0.02)
