"""The layouts of real instrument exports, as public files show them.

Each fixture is a short excerpt written here (or by writers.py) that reproduces a real
export's structure exactly (header lines, encoding, separators, decimal marks, column
names, binary module layouts) with numbers generated here: no instrument's data is
shipped. README.md beside this file names the public files each layout was checked
against.
"""

from __future__ import annotations

import codecs
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hal.files import FileFormatError, MissingColumnError, MissingMetadataError, read_recording

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


# ---------------------------------------------------------------------------------------
# PalmSens PSTrace


def _session_doc(data: bytes) -> dict[str, Any]:
    text = data.decode("utf-16")
    doc: dict[str, Any] = json.loads(text[: text.rfind("}") + 1].lstrip("\ufeff"))
    return doc


def _session_bytes(doc: dict[str, Any]) -> bytes:
    return codecs.BOM_UTF16_LE + (json.dumps(doc) + "\ufeff").encode("utf-16-le")


def test_pssession_of_pstrace_5_11_with_several_scans(tmp_path: Path, cv: Columns) -> None:
    # One time array for the first scan only; currents in µA under a unit written "A"
    # (the prefix is in the unit's type, MicroAmpere); the start in .NET ticks.
    (tmp_path / "cv.pssession").write_bytes(w.pssession(cv))
    rec = read_recording(tmp_path / "cv.pssession")
    np.testing.assert_allclose(rec.I, cv.I, rtol=1e-12)  # not 1e6 times too large
    np.testing.assert_allclose(rec.t, cv.t, atol=1e-9)
    assert "covers 700 of 1400 samples" in rec.time_note
    assert not rec.time_generated
    np.testing.assert_array_equal(rec.scan, cv.scan)
    md = rec.metadata
    assert (md.technique, md.scan_rate, md.E_step) == ("cv", 0.1, 0.002)
    assert md.scans_in_programme == 2
    assert md.started == datetime(2024, 3, 11, 13, 15, 24)
    assert md.instrument == "PalmSens ES4HR20B0008"


def test_pssession_of_pstrace_5_0_keeps_lower_case_keys_and_only_curves(
    tmp_path: Path, cv: Columns
) -> None:
    (tmp_path / "old.pssession").write_bytes(w.pssession(cv, generation="5.0"))
    rec = read_recording(tmp_path / "old.pssession")
    assert rec.metadata.format == "pssession"
    np.testing.assert_allclose(rec.I, cv.I, rtol=1e-12)
    np.testing.assert_array_equal(rec.scan, cv.scan)
    assert rec.time_generated  # no time array: made from SCAN_RATE and E_STEP
    np.testing.assert_allclose(rec.t, cv.t, atol=1e-9)


def test_pssession_with_several_measurements_reads_the_first_voltammetry(
    tmp_path: Path, cv: Columns
) -> None:
    doc = _session_doc(w.pssession(cv))
    cv_measurement = doc["Measurements"][0]
    eis = json.loads(json.dumps(cv_measurement))
    eis["Title"] = "Impedance Spectroscopy"
    eis["Method"] = cv_measurement["Method"].replace("METHOD_ID=cv", "METHOD_ID=eis")
    doc["Measurements"] = [eis, cv_measurement]
    (tmp_path / "two.pssession").write_bytes(_session_bytes(doc))
    rec = read_recording(tmp_path / "two.pssession")
    assert rec.metadata.technique == "cv"
    assert "measurement 2 of 2 was read" in rec.metadata.notes
    doc["Measurements"] = [eis]
    (tmp_path / "eis.pssession").write_bytes(_session_bytes(doc))
    with pytest.raises(FileFormatError, match=r"eis\.pssession, Measurements: holds an imp"):
        read_recording(tmp_path / "eis.pssession")


def test_pssession_of_several_channels_reads_the_first(tmp_path: Path, cv: Columns) -> None:
    doc = _session_doc(w.pssession(cv))
    values = doc["Measurements"][0]["DataSet"]["Values"]
    second = [json.loads(json.dumps(a)) for a in values if "channel1" in a["Description"]]
    for array in second:
        array["Description"] = array["Description"].replace("channel1", "channel2")
        for point in array["DataValues"]:
            point["V"] *= 3.0
    values += second
    (tmp_path / "multi.pssession").write_bytes(_session_bytes(doc))
    rec = read_recording(tmp_path / "multi.pssession")
    np.testing.assert_allclose(rec.I, cv.I, rtol=1e-12)
    assert "channels 1, 2; channel 1 was read" in rec.metadata.notes


def test_pssession_amperometry_with_the_measured_potential(tmp_path: Path) -> None:
    # PSTrace 5.12's amperometric detection: the applied potential ("potential", 0 V
    # against the counter electrode here), the measured one ("Measured WE potential").
    t = np.arange(0.0, 20.0, 1.0)

    def array(kind: str, description: str, unit: str, s: str, values: np.ndarray) -> dict:
        return {
            "Type": f"PalmSens.Data.DataArray{kind}",
            "Description": description,
            "Unit": {"Type": f"PalmSens.Units.{unit}", "S": s},
            "DataValues": [{"V": float(v)} for v in values],
        }

    doc = {
        "Type": "PalmSens.DataFiles.SessionFile",
        "Measurements": [
            {
                "Title": "Chronoamperometry",
                "DeviceSerial": "ES4HR20B0012",
                "Method": "METHOD_ID=ad\r\nT_INTERVAL=1.0000000E+000\r\nAREA=0.0000000E+000\r\n",
                "DataSet": {
                    "Values": [
                        array("Time", "time", "Time", "s", t),
                        array("Potentials", "potential", "Volt", "V", np.zeros_like(t)),
                        array("Currents", "current", "NanoAmpere", "A", -3.9 - 0.01 * t),
                        array("Potentials", "Measured WE potential", "Volt", "V", 4.05 + 0 * t),
                    ]
                },
            }
        ],
    }
    (tmp_path / "ca.pssession").write_bytes(_session_bytes(doc))
    rec = read_recording(tmp_path / "ca.pssession")
    assert rec.metadata.technique == "ca"
    np.testing.assert_allclose(rec.I, (-3.9 - 0.01 * t) * 1e-9)
    np.testing.assert_allclose(rec.E, 4.05)
    assert rec.E_applied is not None
    np.testing.assert_allclose(rec.E_applied, 0.0)


def test_pstrace_csv_as_pstrace_5_writes_it(tmp_path: Path, cv: Columns) -> None:
    data = w.pstrace_csv(cv)
    text = data.decode("utf-16")
    lines = text.split("\r\n")
    assert lines[:3] == ["Date and time:,2024-03-11 13:22:04", "Notes:", ",,"]  # 2 scans
    assert lines[4].endswith(",")  # each measurement date, then a trailing comma
    assert not text.endswith("\r\n")  # the last line has no line end
    (tmp_path / "cv.csv").write_bytes(data)
    rec = read_recording(tmp_path / "cv.csv", meta={"scan_rate": 0.1})
    # The measurement's start, not the export's ("Date and time:" at the top).
    assert rec.metadata.started == datetime(2024, 3, 11, 13, 15, 24)
    np.testing.assert_allclose(rec.I, cv.I, rtol=1e-14)
    np.testing.assert_array_equal(rec.scan, cv.scan)


def test_pstrace_csv_note_on_the_line_after_notes(tmp_path: Path, cv: Columns) -> None:
    one = cv.scan == 1
    single = Columns(cv.t[one], cv.E[one], cv.I[one], cv.scan[one], cv.scan_rate, cv.E_step)
    data = w.pstrace_csv(
        single,
        note="Use PSDummyCell WE_B (10 k Ohm 0.1%)",
        title="Linear Sweep Voltammetry: LSV i vs E",
    )
    (tmp_path / "lsv.csv").write_bytes(data)
    rec = read_recording(tmp_path / "lsv.csv", meta={"scan_rate": 0.1})
    assert rec.metadata.notes == "Use PSDummyCell WE_B (10 k Ohm 0.1%)"
    assert rec.metadata.technique == "lsv"
    assert rec.metadata.sources["technique"] == "header"


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            [
                "Date and time:,2024-11-07 14:48:04",
                "Notes:",
                "",
                "Chronoamperometry: CA i vs t",
                "Date and time measurement:,2024-11-07 13:38:29,",
                "s,µA",
                "0,0.000538253458216786",
                "0.100000001490116,0.000333246018271893",
            ],
            r"line 6: holds amperometry curves \(s,µA\) without their potential",
        ),
        (
            [
                "Date and time:,2024-12-02 15:15:02",
                "Notes:",
                "",
                "Chronopotentiometry: CP E vs t",
                "Date and time measurement:,2024-12-02 15:08:19,",
                "s,V",
                "0,-5.6463885307312",
            ],
            r"line 6: holds a chronopotentiometry curve \(s,V\) without its current",
        ),
        (
            [
                "File date:,2024-10-29 08:23:17",
                "Measurement:,Impedance Spectroscopy",
                "Notes:,This method is to verify EIS functionality",
                "Date and time:,2024-10-29 08:21:56",
                "39 freqs",
                "freq / Hz,neg. Phase / °,Idc / uA,Z / Ohm,Z' / Ohm,-Z'' / Ohm,Cs / F,",
                "200000,1.86854720696118,-0.715255737304688,557.6,557.3,18.18,4.37E-08,",
            ],
            r"line 2: holds an impedance spectrum \(EIS\)",
        ),
    ],
    ids=["chronoamperometry", "chronopotentiometry", "impedance"],
)
def test_pstrace_csv_without_voltammetry_is_refused_in_one_line(
    tmp_path: Path, lines: list[str], message: str
) -> None:
    data = codecs.BOM_UTF16_LE + "\r\n".join(lines).encode("utf-16-le")
    (tmp_path / "x.csv").write_bytes(data)
    with pytest.raises((FileFormatError, MissingColumnError), match=message):
        read_recording(tmp_path / "x.csv", meta={"scan_rate": 0.1})


def test_pssession_square_wave_gives_a_frequency_not_a_scan_rate(
    tmp_path: Path, cv: Columns
) -> None:
    one = cv.scan == 1
    sweep = Columns(cv.t[one], cv.E[one], cv.I[one], cv.scan[one], cv.scan_rate, cv.E_step)
    doc = _session_doc(w.pssession(sweep, generation="5.0"))
    method = doc["methodformeasurement"].replace("METHOD_ID=cv", "METHOD_ID=swv")
    method = re.sub(r"SCAN_RATE=[^\r]*", "FREQ=5.000E+001", method)
    doc["measurements"][0]["method"] = method
    (tmp_path / "swv.pssession").write_bytes(_session_bytes(doc))
    rec = read_recording(tmp_path / "swv.pssession")
    assert rec.metadata.technique == "swv"
    assert rec.metadata.scan_rate == pytest.approx(0.002 * 50)  # E_STEP x FREQ


# ---------------------------------------------------------------------------------------
# Gamry Framework


def test_gamry_cv_of_framework_7_10(tmp_path: Path, cv: Columns) -> None:
    # No row count after TABLE; "A Real Number" for the scan rate (no unit: mV/s); a
    # d.m.yyyy date; the last curve holds only the sweep to the final potential.
    data = w.gamry(cv)
    assert b"CURVE3\tTABLE\r\n" in data  # two cycles, then the final sweep
    (tmp_path / "CV.DTA").write_bytes(data)
    rec = read_recording(tmp_path / "CV.DTA")
    np.testing.assert_array_equal(rec.scan, cv.scan)  # curve 3 belongs to cycle 2
    md = rec.metadata
    assert (md.technique, md.scan_rate, md.E_step) == ("cv", 0.1, 0.002)
    assert md.started == datetime(2024, 3, 11, 13, 15, 24)
    assert md.instrument == "Gamry IFC1010-12345 (Framework 7.10.3)"
    assert md.area == pytest.approx(7.07e-6)
    assert rec.E_applied is not None
    np.testing.assert_allclose(rec.E_applied, cv.E, atol=1e-5)


def _dta(header: list[str], table: list[str]) -> bytes:
    return ("\r\n".join(["EXPLAIN", *header, *table]) + "\r\n").encode("cp1252")


def test_gamry_chronoamperometry_starts_before_zero(tmp_path: Path) -> None:
    # CHRONOA of Framework 7.10: one CURVE table with its row count; the pre-step is
    # recorded at negative times.
    rows = []
    for k in range(8):
        t = -25.0 + 5.0 * k
        current = -5.4e-3 + 1e-5 * k
        rows.append(
            f"\t{k}\t{t:g}\t-3.99870E-001\t{current:.5E}\t0.00000E+000\t-3.99973E-001"
            "\t0.00000E+000\t11\t...........\t1467.25"
        )
    header = [
        "TAG\tCHRONOA",
        "TITLE\tLABEL\tChronoamperometry Scan\tTest Identifier",
        "DATE\tLABEL\t17.7.2024\tDate",
        "TIME\tLABEL\t11:10:33\tTime",
        "PSTAT\tPSTAT\tIFC1010-12345\tPotentiostat",
        "VPRESTEP\tPOTEN\t-4.00000E-001\tF\tPre-step Voltage (V)",
        "TPRESTEP\tQUANT\t3.00000E+001\tPre-step Delay Time (s)",
        "SAMPLETIME\tQUANT\t4.99999E+000\tSample Period (s)",
        "AREA\tQUANT\t1.00000E+000\tSample Area (cm^2)",
        "FRAMEWORKVERSION\tLABEL\t7.10.3\tFramework Version",
    ]
    table = [
        f"CURVE\tTABLE\t{len(rows)}",
        "\tPt\tT\tVf\tIm\tVu\tSig\tAch\tIERange\tOver\tTemp",
        "\t#\ts\tV vs. Ref.\tA\tV\tV\tV\t#\tbits\tdeg C",
        *rows,
    ]
    (tmp_path / "CA.DTA").write_bytes(_dta(header, table))
    rec = read_recording(tmp_path / "CA.DTA")
    assert rec.metadata.technique == "ca"
    np.testing.assert_allclose(rec.t, -25.0 + 5.0 * np.arange(8))
    np.testing.assert_allclose(rec.I, -5.4e-3 + 1e-5 * np.arange(8), rtol=1e-5)
    assert rec.metadata.t_step == pytest.approx(4.99999)
    assert rec.metadata.area == pytest.approx(1e-4)


def test_gamry_square_wave_scan_rate_from_its_frequency(tmp_path: Path) -> None:
    rows = [
        f"\t{k}\t{0.01 * (k + 1):g}\t{-0.025 - 0.002 * k:.5E}\t{0.0375 - 0.002 * k:.5E}"
        f"\t{0.006 - 0.002 * k:.5E}\t1.95523E-007\t-1.73274E-006\t{1.9e-6 + 1e-8 * k:.5E}"
        "\t2.50000E-002\t5.08394E-005\t7\t...........\t-0.01"
        for k in range(6)
    ]
    header = [
        "TAG\tSQUARE_WAVE",
        "TITLE\tLABEL\tSquare Wave\tTest &Identifier",
        "DATE\tLABEL\t12/31/2021\tDate",
        "TIME\tLABEL\t12:00:00\tTime",
        "STEPSIZE\tQUANT\t2.00000E+000\tSt&ep Size (mV)",
        "FREQUENCY\tQUANT\t1.00000E+002\t&Frequency (Hz)",
        "PULSESIZE\tQUANT\t2.50000E+001\tPulse Size &Epeak (mV)",
    ]
    table = [
        f"CURVE\tTABLE\t{len(rows)}",
        "\tPt\tT\tVfwd\tVrev\tVstep\tIfwd\tIrev\tIdif\tSig\tAch\tIERange\tOver\tTemp",
        "\t#\ts\tV\tV\tV\tA\tA\tA\tV\tV\t#\tbits\tdeg C",
        *rows,
    ]
    (tmp_path / "SWV.DTA").write_bytes(_dta(header, table))
    rec = read_recording(tmp_path / "SWV.DTA")
    assert rec.metadata.technique == "swv"
    assert rec.metadata.scan_rate == pytest.approx(0.2)  # 2 mV x 100 Hz
    np.testing.assert_allclose(rec.E, 0.006 - 0.002 * np.arange(6), rtol=1e-5)
    np.testing.assert_allclose(rec.I, 1.9e-6 + 1e-8 * np.arange(6), rtol=1e-5)


@pytest.mark.parametrize(
    ("tag", "table", "message"),
    [
        (
            "EISPOT",
            [
                "ZCURVE\tTABLE",
                "\tPt\tTime\tFreq\tZreal\tZimag\tZsig\tZmod\tZphz\tIdc\tVdc\tIERange",
                "\t#\ts\tHz\tohm\tohm\tV\tohm\t°\tA\tV\t#",
                "\t0\t1\t10000\t224.6\t-3.77\t1\t224.6\t-0.96\t2.4E-006\t1.299\t10",
            ],
            r"line 2: holds an impedance spectrum \(EISPOT\)",
        ),
        (
            "CORPOT",
            [
                "CURVE\tTABLE\t99999",
                "\tPt\tT\tVf\tVm\tAch\tOver\tTemp",
                "\t#\ts\tV vs. Ref.\tV\tV\tbits\tdeg C",
                "\t0\t5.00833\t2.05436E-002\t2.05436E-002\t1.67396E-003\t..........a\t-327.62",
            ],
            r"line 2: holds an open-circuit potential recording \(CORPOT\)",
        ),
    ],
    ids=["eispot", "corpot"],
)
def test_gamry_without_voltammetry_is_refused_in_one_line(
    tmp_path: Path, tag: str, table: list[str], message: str
) -> None:
    header = [f"TAG\t{tag}", "TITLE\tLABEL\tx\tTest Identifier"]
    (tmp_path / "x.DTA").write_bytes(_dta(header, table))
    with pytest.raises(FileFormatError, match=message):
        read_recording(tmp_path / "x.DTA")


# ---------------------------------------------------------------------------------------
# CH Instruments


def test_chi_export_with_segment_results(tmp_path: Path, cv: Columns) -> None:
    (tmp_path / "cv.txt").write_bytes(w.chi(cv))
    rec = read_recording(tmp_path / "cv.txt")
    md = rec.metadata
    assert (md.technique, md.scan_rate, md.E_step) == ("cv", 0.1, 0.002)
    assert md.sources["E_step"] == "header"
    assert "Ep" not in md.header  # the results are not parameters
    assert md.started == datetime(2024, 3, 11, 13, 15, 24)
    assert md.instrument == "CH Instruments CHI660E"
    np.testing.assert_allclose(rec.I, cv.I, rtol=1e-3, atol=1e-12)
    np.testing.assert_array_equal(rec.scan, cv.scan)


def test_chi_text_without_file_information_tab_separated(tmp_path: Path, cv: Columns) -> None:
    (tmp_path / "cv.txt").write_bytes(w.chi(cv, header=False, delimiter="\t"))
    rec = read_recording(tmp_path / "cv.txt")
    assert rec.metadata.format == "chi"
    assert rec.metadata.sources["technique"] == "measured"
    assert rec.metadata.scan_rate == 0.1
    np.testing.assert_allclose(rec.E, cv.E, atol=5e-4)
    np.testing.assert_array_equal(rec.scan, cv.scan)


def test_chi_bipotentiostat_reads_the_first_electrode(tmp_path: Path, cv: Columns) -> None:
    text = w.chi(cv).decode("cp1252").replace("Potential/V, Current/A", "Potential/V, i1/A, i2/A")
    lines = text.split("\r\n")
    start = lines.index("Potential/V, i1/A, i2/A") + 2
    for k in range(start, len(lines) - 1):
        lines[k] += ", 1.119e-5"  # the ring electrode's current
    (tmp_path / "rrde.txt").write_bytes("\r\n".join(lines).encode("cp1252"))
    rec = read_recording(tmp_path / "rrde.txt")
    np.testing.assert_allclose(rec.I, cv.I, rtol=1e-3, atol=1e-12)
    assert "bipotentiostat" in rec.metadata.notes


def test_chi_impedance_is_refused_in_one_line(tmp_path: Path) -> None:
    text = "\r\n".join(
        [
            "Mar. 12, 2026   15:48:13",
            "A.C. Impedance",
            "File: c:\\chi\\eis.bin",
            "Data Source:  Experiment",
            "Instrument Model:  CHI760E",
            "Header: ",
            "Note: ",
            "",
            "Init E (V) = 0.2",
            "",
            "Freq/Hz, Z'/ohm, Z\"/ohm, Z/ohm, Phase/deg",
            "",
            "1.000e+5, 1.0e+1, -1.0e+0, 1.005e+1, -5.71",
        ]
    )
    (tmp_path / "eis.txt").write_bytes(text.encode("cp1252"))
    with pytest.raises(FileFormatError, match=r"eis\.txt, line 2: holds an impedance spectrum"):
        read_recording(tmp_path / "eis.txt")


# ---------------------------------------------------------------------------------------
# Metrohm Autolab NOVA


def test_nova_cv_export_with_its_text_column(tmp_path: Path, cv: Columns) -> None:
    # NOVA 2.1's CV export: Q+, Q- and "Current range" as text (10 µA) in UTF-8.
    data = w.autolab(cv)
    assert "10 µA".encode() in data
    (tmp_path / "cv.txt").write_bytes(data)
    rec = read_recording(tmp_path / "cv.txt")
    np.testing.assert_allclose(rec.I, cv.I, rtol=1e-15)
    np.testing.assert_array_equal(rec.scan, cv.scan)
    assert rec.metadata.technique == "cv"
    assert rec.metadata.scan_rate == pytest.approx(0.1, rel=1e-9)


def test_nova_export_without_time(tmp_path: Path, cv: Columns) -> None:
    (tmp_path / "cv.txt").write_bytes(w.autolab(cv, time=False))
    with pytest.raises(MissingMetadataError, match=r"no time column.*--meta scan_rate"):
        read_recording(tmp_path / "cv.txt")
    rec = read_recording(tmp_path / "cv.txt", meta={"scan_rate": 0.1})
    assert rec.time_generated
    np.testing.assert_allclose(rec.t, cv.t, atol=1e-6)


def test_nova_linear_sweep_semicolons_and_decimal_commas(tmp_path: Path) -> None:
    # A European Windows: ";" between columns, a decimal comma, the columns in the
    # order the user ticked them, and no Scan column in a linear sweep.
    lines = ["Scan;Index;Time (s);WE(1).Potential (V);WE(1).Current (A);Current range"]
    for k in range(20):
        lines.append(f"1;{k + 1};{0.1 * k:.1f};{-0.1 + 0.005 * k:.3f};{-1e-6 + 1e-7 * k:.2E};10 uA")
    text = "\r\n".join(line.replace(".", ",") if j else line for j, line in enumerate(lines))
    (tmp_path / "lsv.txt").write_bytes((text + "\r\n").encode("utf-8"))
    rec = read_recording(tmp_path / "lsv.txt")
    np.testing.assert_allclose(rec.E, -0.1 + 0.005 * np.arange(20))
    np.testing.assert_allclose(rec.I, -1e-6 + 1e-7 * np.arange(20))
    assert rec.metadata.technique == "lsv"
    assert rec.metadata.scan_rate == pytest.approx(0.05)


def test_nova_second_working_electrode_is_named(tmp_path: Path, cv: Columns) -> None:
    text = w.autolab(cv).decode().replace("Q+", "WE(2).Current (A)")
    (tmp_path / "bipot.txt").write_bytes(text.encode())
    rec = read_recording(tmp_path / "bipot.txt")
    assert "second working electrode" in rec.metadata.notes
    np.testing.assert_allclose(rec.I, cv.I, rtol=1e-15)


def test_nova_value_that_is_not_a_number_names_the_files_column(
    tmp_path: Path, cv: Columns
) -> None:
    lines = w.autolab(cv).decode().split("\r\n")
    cells = lines[5].split(";")
    cells[2] = "n/a"
    lines[5] = ";".join(cells)
    (tmp_path / "bad.txt").write_bytes("\r\n".join(lines).encode())
    with pytest.raises(
        FileFormatError, match=r"bad\.txt, line 6: column 3 \(WE\(1\)\.Current \(A\)\) is not"
    ):
        read_recording(tmp_path / "bad.txt")
