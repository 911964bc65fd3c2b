"""Every reader on a file in its vendor's format (written by writers.py from a simulated
CV): the columns come back in SI to the precision the format keeps, with the scans,
the metadata the format carries and the programme recovered from the data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import physics
from hal.files import read_recording
from hal.files.analysis import derive_protocol
from hal.files.reference import convert, find_reference
from hal.files.table import ColumnMap, TableReader
from hal.files.units import quantity_to_si, scale_to_si
from twins.spec import load_twin_spec

from . import writers as w
from .conftest import AREA, E_START, E_VERTEX, SCAN_RATE, SCENARIO
from .writers import Columns

# name, writer, file name, metadata given, current tolerance (A; what the format keeps)
FORMATS: list[tuple[str, Callable[[Columns], bytes], str, dict[str, float], float]] = [
    ("autolab", w.autolab, "cv.txt", {}, 1e-11),
    ("autolab", lambda c: w.autolab(c, "\t"), "cv-tab.txt", {}, 1e-11),
    ("autolab", lambda c: w.autolab(c, decimal_comma=True), "cv-comma.txt", {}, 1e-11),
    ("pstrace-csv", w.pstrace_csv, "cv.csv", {"scan_rate": SCAN_RATE}, 1e-9),
    ("pssession", w.pssession, "cv.pssession", {}, 1e-15),
    ("gamry", w.gamry, "CV.DTA", {}, 1e-10),
    ("gamry", lambda c: w.gamry(c, decimal_comma=True), "CV-comma.DTA", {}, 1e-10),
    ("biologic-mpt", w.mpt, "cv.mpt", {}, 1e-12),
    ("biologic-mpt", lambda c: w.mpt(c, decimal_comma=True), "cv-comma.mpt", {}, 1e-12),
    ("biologic-mpr", w.mpr, "cv.mpr", {}, 1e-11),
    ("chi", w.chi, "cv-chi.txt", {}, 1e-8),
]


@pytest.mark.parametrize(
    ("fmt", "writer", "name", "meta", "tol"), FORMATS, ids=[f[2] for f in FORMATS]
)
def test_reads_the_simulated_cv(
    tmp_path: Path,
    cv: Columns,
    fmt: str,
    writer: Callable[[Columns], bytes],
    name: str,
    meta: dict[str, float],
    tol: float,
) -> None:
    path = tmp_path / name
    path.write_bytes(writer(cv))
    rec = read_recording(path, meta=meta)
    assert rec.metadata.format == fmt
    assert len(rec) == len(cv.t)
    np.testing.assert_allclose(rec.t, cv.t, rtol=0, atol=1e-9)
    np.testing.assert_allclose(rec.potential, cv.E, rtol=0, atol=1e-6)
    np.testing.assert_allclose(rec.I, cv.I, rtol=0, atol=tol)
    assert rec.scan is not None
    assert rec.segment is not None
    np.testing.assert_array_equal(rec.scan, cv.scan)
    assert int(rec.segment.max()) == 3  # two cycles: four sweeps
    assert rec.metadata.technique == "cv"
    assert rec.metadata.scan_rate == pytest.approx(SCAN_RATE, rel=1e-6)
    protocol, why = derive_protocol(rec)
    assert protocol is not None, why
    assert protocol["cycles"] == 2
    assert protocol["waveform"]["E_start"] == pytest.approx(E_START, abs=1e-6)
    assert protocol["waveform"]["E_vertex"] == pytest.approx(E_VERTEX, abs=1e-6)
    assert protocol["sample_rate"] == pytest.approx(SCAN_RATE / 0.002, rel=1e-6)


def _staircase_cv(E_step_said: float = 0.002) -> Columns:
    """Two cycles of a staircase CV (2 mV steps every 20 ms, the current sampled at the
    end of each step) as the engine simulates one, its header saying ``E_step_said``."""
    waveform = {
        "type": "staircase_cv",
        "E_start": E_START,
        "E_vertex": E_VERTEX,
        "E_step": 0.002,
        "t_step": 0.002 / SCAN_RATE,
        "cycles": 2,
    }
    result = physics.simulate({**SCENARIO, "waveform": waveform})
    half = len(result.t) // 2
    scan = np.where(np.arange(len(result.t)) < half, 1, 2).astype(np.int32)
    return Columns(result.t, result.E, result.I, scan, SCAN_RATE, E_step_said)


def test_a_staircase_file_is_recovered_as_the_staircase_it_was(tmp_path: Path) -> None:
    """With the sampling point given (``--meta sampling=1``), a file of one sample per
    step is the staircase the instrument applied: its layout gives back the file's
    times and potentials exactly. Without it the linear programme is kept as before."""
    c = _staircase_cv()
    path = tmp_path / "stairs.DTA"
    path.write_bytes(w.gamry(c))
    protocol, why = derive_protocol(read_recording(path, meta={"sampling": 1.0}))
    assert protocol is not None, why
    assert why == ""
    wf = protocol["waveform"]
    assert wf["type"] == "staircase_cv"
    assert (wf["E_start"], wf["E_end"]) == (pytest.approx(E_START), pytest.approx(E_START))
    assert wf["E_vertex"] == pytest.approx(E_VERTEX)
    assert (wf["E_step"], wf["t_step"]) == (pytest.approx(0.002), pytest.approx(0.02))
    assert wf["sample"] == [1.0, 1.0]
    assert protocol["cycles"] == 2
    t, E = load_twin_spec({"model": SCENARIO, "protocol": protocol}).protocol.trace()
    np.testing.assert_allclose(t[1:], c.t, rtol=0, atol=1e-9)
    np.testing.assert_allclose(E[1:], c.E, rtol=0, atol=1e-9)
    linear, _ = derive_protocol(read_recording(path))
    assert linear is not None
    assert linear["waveform"]["type"] == "cv"


def test_samples_off_the_staircase_keep_the_linear_programme_and_say_why(
    tmp_path: Path,
) -> None:
    path = tmp_path / "stairs.DTA"
    path.write_bytes(w.gamry(_staircase_cv(E_step_said=0.001)))  # 2 mV steps said to be 1 mV
    protocol, why = derive_protocol(read_recording(path, meta={"sampling": 1.0}))
    assert protocol is not None
    assert protocol["waveform"]["type"] == "cv"
    assert why == "the samples are not one per 1 mV step at 100 mV/s: kept as a linear sweep"


def test_header_metadata_of_each_format(tmp_path: Path, cv: Columns) -> None:
    (tmp_path / "a.DTA").write_bytes(w.gamry(cv))
    gamry = read_recording(tmp_path / "a.DTA").metadata
    assert gamry.area == pytest.approx(AREA, rel=1e-3)  # 0.0707 cm^2 in the header
    assert gamry.E_step == pytest.approx(0.002)
    assert gamry.sources["scan_rate"] == "header"
    assert gamry.instrument == "Gamry IFC1010-12345 (Framework 7.10.3)"
    assert gamry.started is not None
    assert gamry.started.year == 2024
    assert "ferricyanide" in gamry.notes
    (tmp_path / "a.mpt").write_bytes(w.mpt(cv))
    mpt = read_recording(tmp_path / "a.mpt").metadata
    assert mpt.area == pytest.approx(AREA, rel=1e-3)
    assert mpt.reference is not None
    assert find_reference(mpt.reference) == find_reference("Ag/AgCl (3 M KCl)")
    assert mpt.instrument == "BioLogic SP-300 (SN 1111) (EC-Lab 11.52)"
    (tmp_path / "a.pssession").write_bytes(w.pssession(cv))
    ps = read_recording(tmp_path / "a.pssession").metadata
    assert ps.sources["scan_rate"] == "header"
    assert ps.E_step == pytest.approx(0.002)
    (tmp_path / "a.txt").write_bytes(w.autolab(cv))
    autolab = read_recording(tmp_path / "a.txt").metadata
    assert autolab.sources["scan_rate"] == "measured"
    assert autolab.area is None  # NOVA's export does not say; never guessed


def test_format_is_found_from_content_not_extension(tmp_path: Path, cv: Columns) -> None:
    for writer, fmt in (
        (w.gamry, "gamry"),
        (w.mpt, "biologic-mpt"),
        (w.mpr, "biologic-mpr"),
        (w.pssession, "pssession"),
    ):
        path = tmp_path / "export.dat"
        path.write_bytes(writer(cv))
        assert read_recording(path, meta={"scan_rate": SCAN_RATE}).metadata.format == fmt


def test_pstrace_csv_times_are_generated_and_say_so(tmp_path: Path, cv: Columns) -> None:
    (tmp_path / "cv.csv").write_bytes(w.pstrace_csv(cv))
    rec = read_recording(tmp_path / "cv.csv", meta={"scan_rate": SCAN_RATE})
    assert rec.time_generated
    assert "no time column" in rec.time_note
    assert "2 mV" in rec.time_note
    assert rec.metadata.sources["scan_rate"] == "user"


def test_plain_table_with_mapping(tmp_path: Path, cv: Columns) -> None:
    (tmp_path / "cv.csv").write_bytes(w.table(cv))
    mapping = ColumnMap({"t": ("time", "ms"), "E": (2, "V"), "I": ("current", "uA")})
    rec = read_recording(tmp_path / "cv.csv", reader=TableReader(mapping))
    np.testing.assert_allclose(rec.t, cv.t, atol=1e-9)
    np.testing.assert_allclose(rec.I, cv.I, atol=1e-12)


def test_user_metadata_wins_and_current_sign_turns(tmp_path: Path, cv: Columns) -> None:
    (tmp_path / "cv-chi.txt").write_bytes(w.chi(cv))
    rec = read_recording(tmp_path / "cv-chi.txt", meta={"current_sign": -1.0, "area": 1e-6})
    np.testing.assert_allclose(rec.I, -cv.I, atol=1e-8)
    assert rec.metadata.area == 1e-6
    assert rec.metadata.sources["area"] == "user"


def test_reference_table_and_units() -> None:
    # Bard & Faulkner: SCE +0.241 V, Ag/AgCl (sat. KCl) +0.197 V against SHE.
    assert convert(0.0, "SCE", "SHE") == pytest.approx(0.241)
    assert convert(0.5, "Ag/AgCl sat. KCl", "SCE") == pytest.approx(0.456)
    assert find_reference("SCE Saturated Calomel Electrode (0,241 V)").name == "SCE"  # type: ignore[union-attr]
    assert find_reference("Ag/AgCl") is None  # the filling matters: not guessed
    with pytest.raises(ValueError, match="no fixed potential"):
        convert(0.0, "Fc/Fc+", "SHE")
    assert scale_to_si("µA", "current") == 1e-6
    assert scale_to_si("V vs. Ref.", "potential") == 1.0
    assert quantity_to_si("0.0707 cm2", "area") == pytest.approx(7.07e-6)
    assert quantity_to_si("100mV/s", "scan_rate") == pytest.approx(0.1)
    with pytest.raises(ValueError, match="not of current"):
        scale_to_si("mV", "current")
