"""The layouts of real instrument exports, as public files show them.

Each fixture is a short excerpt written here (or by writers.py) that reproduces a real
export's structure exactly (header lines, encoding, separators, decimal marks, column
names, binary module layouts) with numbers generated here: no instrument's data is
shipped. README.md beside this file names the public files each layout was checked
against.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from hal.files import FileFormatError, MissingColumnError, read_recording

from . import writers as w
from .writers import Columns

# ---------------------------------------------------------------------------------------
# BioLogic EC-Lab


@pytest.mark.parametrize(
    ("version", "date"),
    [(11, b"03/11/24"), (3, b"03-11-24"), (2, b"03.11.24")],
    ids=["ec-lab-11.50-layout", "data-v3", "data-v2-dotted-date"],
)
def test_mpr_of_each_ec_lab_generation_reads_like_its_mpt(
    tmp_path: Path, cv: Columns, version: int, date: bytes
) -> None:
    (tmp_path / "cv.mpr").write_bytes(w.mpr(cv, version=version, date=date))
    (tmp_path / "cv.mpt").write_bytes(w.mpt(cv))
    mpr = read_recording(tmp_path / "cv.mpr")
    mpt = read_recording(tmp_path / "cv.mpt")
    np.testing.assert_allclose(mpr.t, mpt.t, rtol=1e-14)
    np.testing.assert_allclose(mpr.potential, mpt.potential, atol=1e-7)
    np.testing.assert_allclose(mpr.I, mpt.I, rtol=1e-7, atol=1e-15)
    np.testing.assert_array_equal(mpr.scan, cv.scan)  # CV cycles count from 1
    np.testing.assert_array_equal(mpt.scan, cv.scan)
    md = mpr.metadata
    assert md.technique == "cv"
    assert md.sources["technique"] == "header"
    assert md.started == datetime(2024, 3, 11, 13, 15, 24, 245000)  # the LOG's OLE date
    assert md.area == pytest.approx(7.07e-6, rel=1e-6)  # settings byte 529, cm²
    assert md.reference == "Ag/AgCl (3M KCl)"
    assert md.instrument == f"BioLogic (EC-Lab {'11.52' if version == 11 else '11.12'})"
    assert "ferricyanide 1 mM" in md.notes
    assert mpt.metadata.started == md.started
    assert mpt.metadata.area == pytest.approx(7.07e-6, rel=1e-9)


def test_mpr_whose_data_module_does_not_fit_its_columns_is_refused(
    tmp_path: Path, cv: Columns
) -> None:
    data = bytearray(w.mpr(cv))
    at = data.index(b"MODULEVMP data") + 6 + 35 + 16 + 8
    data[at + 6 + 2 * 12] = 24  # the last column id (438, f8) becomes 24 (also f8)
    data[at + 6 + 2 * 12 + 1] = 0
    (tmp_path / "ok.mpr").write_bytes(bytes(data))
    read_recording(tmp_path / "ok.mpr")  # same size: still fits
    data[at + 6 + 2 * 12] = 19  # control/V, f4: four bytes a row short
    (tmp_path / "bad.mpr").write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match=r"bad\.mpr, VMP data: its data module has"):
        read_recording(tmp_path / "bad.mpr")


def _chronoamperometry(points: int = 40) -> dict[str, np.ndarray]:
    t = np.linspace(0.5, 20.0, points)
    return {
        "flags": np.full(points, 0x02, dtype=np.float64),
        "time/s": t,
        "control/V": np.full(points, 0.4),
        "Ewe/V": np.full(points, 0.4) + 1e-4 * np.cos(t),
        "<I>/mA": 1e-2 / np.sqrt(t),
    }


def test_mpr_loop_module_numbers_the_scans_of_a_file_without_cycle_numbers(
    tmp_path: Path,
) -> None:
    # A looped chronoamperometry as EC-Lab 11.50 writes it: no cycle number column,
    # the loops' first rows in the "VMP loop" module (count, then indices, then the end).
    data = w.mpr_file(
        [1, 2, 3, 21, 31, 65, 131, 4, 19, 6, 11, 435, 434, 39, 467, 468, 70],
        _chronoamperometry(40),
        technique=0x18,
        loops=[0, 10, 20, 30, 40],
    )
    (tmp_path / "ca.mpr").write_bytes(data)
    rec = read_recording(tmp_path / "ca.mpr")
    assert rec.metadata.technique == "ca"
    assert rec.scan is not None
    np.testing.assert_array_equal(rec.scan, np.repeat([1, 2, 3, 4], 10))
    assert rec.E_applied is not None
    np.testing.assert_allclose(rec.E_applied, 0.4, rtol=1e-7)
    np.testing.assert_allclose(rec.I, 1e-5 / np.sqrt(rec.t), rtol=1e-12)


@pytest.mark.parametrize(
    ("technique", "ids", "message"),
    [
        (0x1D, [32, 37, 38, 36, 35, 4, 77, 76], r"holds an impedance spectrum \(PEIS\)"),
        (0x0B, [1, 3, 4, 6], r"holds an open-circuit voltage recording \(OCV\)"),
        (0x04, [1, 2, 3, 4, 7, 13, 5, 6, 39], r"has no column <I>/mA .*export an \.mpt"),
        (0x06, [1, 4, 6, 11, 999], r"column id\(s\) 999 .*biologic-gpl"),
    ],
    ids=["peis", "ocv", "gcpl-without-current", "unknown-column"],
)
def test_mpr_that_holds_no_voltammetry_is_refused_in_one_line(
    tmp_path: Path, technique: int, ids: list[int], message: str
) -> None:
    known = [i for i in ids if i != 999]
    columns = {"time/s": np.linspace(0.0, 1.0, 5)}
    data = bytearray(w.mpr_file(known, columns, technique=technique))
    if 999 in ids:  # an id EC-Lab may add one day, written into the column list
        at = data.index(b"MODULEVMP data") + 6 + 35 + 16 + 8
        data[at + 4 : at + 6] = len(ids).to_bytes(2, "little")
        data[at + 6 + 2 * len(known) : at + 8 + 2 * len(known)] = (999).to_bytes(2, "little")
    (tmp_path / "x.mpr").write_bytes(bytes(data))
    with pytest.raises((FileFormatError, MissingColumnError), match=message):
        read_recording(tmp_path / "x.mpr")


def test_mpt_exported_without_its_header(tmp_path: Path, cv: Columns) -> None:
    (tmp_path / "bare.mpt").write_bytes(w.mpt(cv, header=False))
    rec = read_recording(tmp_path / "bare.mpt")
    assert rec.metadata.format == "biologic-mpt"
    assert rec.metadata.technique == "cv"
    assert rec.metadata.sources["technique"] == "measured"
    np.testing.assert_allclose(rec.potential, cv.E, atol=1e-6)
    np.testing.assert_array_equal(rec.scan, cv.scan)


_CP_HEADER = [
    "EC-Lab ASCII FILE",
    "Nb header lines : {n:<28}",
    "",
    "Chronopotentiometry",
    "",
    "Run on channel : 1 (SN 1854)",
    "User : ",
    "Acquisition started on : 01/10/2024 11:02:29.886",
    "Device : SP-300 (SN 1854)",
    "EC-Lab for windows v11.50 (software)",
    "Electrode surface area : 0,000 cm²",
    "Is                  20,000              ",
    "unit Is             µA                  ",
    "",
    "mode\tox/red\terror\tcontrol changes\tNs changes\tcounter inc.\tNs\ttime/s\t"
    "control/mA\t<Ewe/V>\tI/mA\tdQ/C\t(Q-Qo)/C\thalf cycle\tQ charge/discharge/mA.h\t"
    "I Range\tcycle number\tP/W\t",
]


def test_mpt_chronopotentiometry_names_its_potential_in_brackets(tmp_path: Path) -> None:
    # EC-Lab 11.50's CP export: "<Ewe/V>" (the unit inside the brackets), a decimal
    # comma, and EC-Lab's placeholder area 0,000 cm².
    header = [line.format(n=len(_CP_HEADER)) for line in _CP_HEADER]
    rows = []
    for k in range(6):
        t, E = 11.0 + k, 3.4244 + 1e-3 * k
        cells = ["1", "1", "0", "1", "0", "0", "0", f"{t:.15E}", "2,0000001E-002"]
        cells += [f"{E:.7E}", f"{2.0003e-2:.7E}", "0", "0", "0", "0", "41", "1", "0"]
        rows.append("\t".join(c.replace(".", ",") for c in cells))
    text = "\r\n".join(header + rows) + "\r\n"
    (tmp_path / "cp.mpt").write_bytes(text.encode("cp1252"))
    rec = read_recording(tmp_path / "cp.mpt")
    assert rec.metadata.technique == "cp"
    assert rec.metadata.area is None
    assert "placeholder" in rec.metadata.notes
    np.testing.assert_allclose(rec.E, 3.4244 + 1e-3 * np.arange(6), rtol=1e-7)
    np.testing.assert_allclose(rec.I, 2.0003e-5, rtol=1e-7)
    assert rec.metadata.started == datetime(2024, 1, 10, 11, 2, 29, 886000)


def test_mpt_of_bt_lab_names_its_potential_ecell(tmp_path: Path, cv: Columns) -> None:
    text = w.mpt(cv).decode("cp1252").replace("\tEwe/V\t", "\tEcell/V\t")
    text = text.replace("EC-Lab ASCII FILE", "BT-Lab ASCII FILE", 1)
    (tmp_path / "bcd.mpt").write_bytes(text.encode("cp1252"))
    rec = read_recording(tmp_path / "bcd.mpt")
    np.testing.assert_allclose(rec.E, cv.E, atol=2e-5)


def test_mpt_re_encoded_as_utf8_that_lost_the_squared_sign(tmp_path: Path, cv: Columns) -> None:
    # Seen in public files: "cm²" came back from a round through another program as
    # "cm" and U+FFFD, in UTF-8. EC-Lab writes cm² always.
    text = w.mpt(cv).decode("cp1252").replace("cm²", "cm\ufffd")
    (tmp_path / "u.mpt").write_bytes(text.encode("utf-8"))
    assert read_recording(tmp_path / "u.mpt").metadata.area == pytest.approx(7.07e-6)


@pytest.mark.parametrize(
    ("title", "columns", "message"),
    [
        ("Open Circuit Voltage", "mode\terror\ttime/s\tEwe/V\t", r"open-circuit voltage"),
        (
            "Potentio Electrochemical Impedance Spectroscopy",
            "freq/Hz\tRe(Z)/Ohm\t-Im(Z)/Ohm\t|Z|/Ohm\tPhase(Z)/deg\ttime/s\t<Ewe>/V\t<I>/mA\t",
            r"impedance spectrum \(PEIS\)",
        ),
        (None, "freq/Hz\tRe(Z)/Ohm\t-Im(Z)/Ohm\ttime/s\t<Ewe>/V\t<I>/mA\t", r"impedance"),
    ],
    ids=["ocv", "peis", "peis-without-header"],
)
def test_mpt_that_holds_no_voltammetry_is_refused_in_one_line(
    tmp_path: Path, title: str | None, columns: str, message: str
) -> None:
    lines = [columns]
    if title is not None:
        lines = ["EC-Lab ASCII FILE", "Nb header lines : 6", "", title, "", columns]
    n = columns.count("\t")
    lines.append("\t".join(["1.0"] * n))
    (tmp_path / "x.mpt").write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    with pytest.raises((FileFormatError, MissingColumnError), match=message):
        read_recording(tmp_path / "x.mpt")


def test_mpt_of_cv_advanced_gives_one_setting_column_per_sequence(
    tmp_path: Path, cv: Columns
) -> None:
    # CV Advanced prints each setting once per sequence (Ns), in 20-character columns.
    text = w.mpt(cv).decode("cp1252")
    one = "dE/dt               100.000             \r\ndE/dt unit          mV/s                "
    assert one in text
    several = (
        "Ns                  0                   1                   2                   \r\n"
        "dE/dt               100.000             200.000             50.000              \r\n"
        "dE/dt unit          mV/s                mV/s                mV/s                "
    )
    text = text.replace(one, several).replace("Nb header lines : 57", "Nb header lines : 58")
    text = text.replace("Cyclic Voltammetry\r\n", "Cyclic Voltammetry Advanced\r\n", 1)
    (tmp_path / "cva.mpt").write_bytes(text.encode("cp1252"))
    rec = read_recording(tmp_path / "cva.mpt")
    assert rec.metadata.technique == "cv"
    assert rec.metadata.header["dE/dt"] == "100.000 | 200.000 | 50.000"
    assert "100.000 mV/s, 200.000 mV/s, 50.000 mV/s" in rec.metadata.notes
    assert rec.metadata.sources["scan_rate"] == "measured"  # no one rate in the header
    assert rec.metadata.scan_rate == pytest.approx(0.1, rel=1e-3)
