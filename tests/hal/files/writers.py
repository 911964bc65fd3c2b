"""Writers of each vendor's export format, byte for byte, from simulated columns.

They follow the layouts documented in each reader's module docstring (line endings,
encodings, header blocks, column names and units as the vendor's software writes
them), so the readers are tested on files in the vendor's exact format without
shipping anyone's measurements. See README.md beside this file.
"""

from __future__ import annotations

import codecs
import json
import struct
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from hal.files.biologic import MPR_MAGIC

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Columns:
    """Simulated columns: t (s), E (V, the potential as applied), I (A), scan (1-based)."""

    t: FloatArray
    E: FloatArray
    I: FloatArray  # noqa: E741
    scan: npt.NDArray[np.int32]
    scan_rate: float
    E_step: float
    extra: dict[str, float] = field(default_factory=dict)


def _crlf(lines: list[str]) -> str:
    return "\r\n".join(lines) + "\r\n"


def autolab(c: Columns, delimiter: str = "\t") -> bytes:
    """NOVA's ASCII export: one header line, one line per sample."""
    names = [
        "Potential applied (V)",
        "Time (s)",
        "WE(1).Current (A)",
        "WE(1).Potential (V)",
        "Scan",
        "Index",
    ]
    lines = [delimiter.join(names)]
    measured = c.E + 1e-5 * np.sin(np.arange(len(c.t)))  # a measured potential wiggles
    for k in range(len(c.t)):
        lines.append(
            delimiter.join(
                [
                    f"{c.E[k]:.15g}",
                    f"{c.t[k]:.15g}",
                    f"{c.I[k]:.6E}",
                    f"{measured[k]:.15g}",
                    str(int(c.scan[k])),
                    str(k + 1),
                ]
            )
        )
    return _crlf(lines).encode("utf-8")


def pstrace_csv(c: Columns) -> bytes:
    """PSTrace's CSV: UTF-16 with BOM, a header block, one (V, µA) column pair per scan."""
    scans = np.unique(c.scan).tolist()
    per = [np.flatnonzero(c.scan == s) for s in scans]
    n = max(len(p) for p in per)
    titles, dates, units = [], [], []
    for s in scans:
        titles += [f"Cyclic Voltammetry: CV i vs E Scan {s}", ""]
        dates += ["Date and time measurement:", "2024-03-11 13:15:24"]
        units += ["V", "µA"]
    lines = [
        "Date and time:,2024-03-11 13:15:24",
        "Notes:,",
        "," * (2 * len(scans) - 1),
        ",".join(titles),
        ",".join(dates),
        ",".join(units),
    ]
    for k in range(n):
        row = []
        for p in per:
            if k < len(p):
                row += [f"{c.E[p[k]]:.3f}", f"{c.I[p[k]] * 1e6:.4E}"]
            else:
                row += ["", ""]
        lines.append(",".join(row))
    lines.append("")
    return codecs.BOM_UTF16_LE + _crlf(lines).encode("utf-16-le")


def pssession(c: Columns) -> bytes:
    """A .pssession: UTF-16 JSON, one measurement, data arrays and one curve per scan."""

    def array(
        kind: str, description: str, unit: dict[str, str], values: FloatArray
    ) -> dict[str, object]:
        return {
            "Type": f"PalmSens.Data.DataArray{kind}",
            "ArrayType": {"Time": 0, "Potentials": 1, "Currents": 2}[kind],
            "Description": description,
            "Unit": unit,
            "DataValues": [{"V": float(v)} for v in values],
        }

    volt = {"Type": "PalmSens.Units.Volt", "S": "V", "Q": "Potential", "A": "E"}
    micro = {"Type": "PalmSens.Units.MicroAmpere", "S": "µA", "Q": "Current", "A": "i"}
    sec = {"Type": "PalmSens.Units.Time", "S": "s", "Q": "Time", "A": "t"}
    curves = []
    for s in np.unique(c.scan).tolist():
        idx = c.scan == s
        curves.append(
            {
                "Type": "PalmSens.Plottables.Curve",
                "Title": f"CV i vs E Scan {s}",
                "XAxisDataArray": array("Potentials", "potential", volt, c.E[idx]),
                "YAxisDataArray": array("Currents", "current", micro, c.I[idx] * 1e6),
            }
        )
    method = "\r\n".join(
        [
            "#Method file",
            "METHOD_ID=cv",
            "E_BEGIN=0.6",
            f"E_STEP={c.E_step}",
            f"SCAN_RATE={c.scan_rate}",
            f"N_SCANS={int(c.scan.max())}",
        ]
    )
    doc = {
        "Type": "PalmSens.DataFiles.SessionFile",
        "CoreVersion": "5.9.0.0",
        "Measurements": [
            {
                "Type": "PalmSens.Measurement",
                "Title": "Cyclic Voltammetry",
                "Method": method,
                "DataSet": {
                    "Type": "PalmSens.Data.DataSet",
                    "Values": [
                        array("Time", "time", sec, c.t),
                        array("Potentials", "potential", volt, c.E),
                        array("Currents", "current", micro, c.I * 1e6),
                    ],
                },
                "Curves": curves,
            }
        ],
    }
    return codecs.BOM_UTF16_LE + (json.dumps(doc) + "\ufeff").encode("utf-16-le")


def gamry(c: Columns, *, decimal_comma: bool = False) -> bytes:
    """A Gamry CV .DTA: the EXPLAIN header, one CURVEn TABLE per cycle, Windows-1252."""

    def f(x: float) -> str:
        text = f"{x:.5E}"
        return text.replace(".", ",") if decimal_comma else text

    lines = [
        "EXPLAIN",
        "TAG\tCV",
        "TITLE\tLABEL\tCyclic Voltammetry\tTest &Identifier",
        "DATE\tLABEL\t3/11/2024\tDate",
        "TIME\tLABEL\t13:15:24\tTime",
        "NOTES\tNOTES\t1\t&Notes...",
        "\tferricyanide 1 mM, 3 mm GC",
        "PSTAT\tPSTAT\tREF600-12345\tPotentiostat",
        f"VINIT\tPOTEN\t{f(0.6)}\tF\tInitial &E (V)",
        f"VLIMIT1\tPOTEN\t{f(-0.1)}\tF\tScan Limit &1 (V)",
        f"VLIMIT2\tPOTEN\t{f(0.6)}\tF\tScan Limit &2 (V)",
        f"SCANRATE\tQUANT\t{f(c.scan_rate * 1e3)}\t&Scan Rate (mV/s)",
        f"STEPSIZE\tQUANT\t{f(c.E_step * 1e3)}\tStep &Size (mV)",
        f"CYCLES\tIQUANT\t{int(c.scan.max())}\tC&ycles (#)",
        f"AREA\tQUANT\t{f(0.0707)}\tSample &Area (cm^2)",
        "OCVCURVE\tTABLE\t2",
        "\tPt\tT\tVf\tVm\tAch\tOver\tTemp",
        "\t#\ts\tV vs. Ref.\tV\tV\tbits\tdeg C",
        f"\t0\t{f(0.1)}\t{f(0.31)}\t{f(0.31)}\t{f(0.0)}\t...........\t{f(25.0)}",
        f"\t1\t{f(0.2)}\t{f(0.31)}\t{f(0.31)}\t{f(0.0)}\t...........\t{f(25.0)}",
    ]
    pt = 0
    for s in np.unique(c.scan).tolist():
        idx = np.flatnonzero(c.scan == s)
        lines.append(f"CURVE{s}\tTABLE\t{len(idx)}")
        lines.append("\tPt\tT\tVf\tIm\tVu\tSig\tAch\tIERange\tOver")
        lines.append("\t#\ts\tV vs. Ref.\tA\tV\tV\tV\t#\tbits")
        for k in idx:
            lines.append(
                f"\t{pt}\t{f(c.t[k])}\t{f(c.E[k])}\t{f(c.I[k])}\t{f(0.0)}\t{f(c.E[k])}\t{f(0.0)}\t5\t..........."
            )
            pt += 1
    return _crlf(lines).encode("cp1252")


def mpt(c: Columns, *, decimal_comma: bool = False) -> bytes:
    """An EC-Lab .mpt export of a CV: header block, tab-separated columns, Windows-1252."""

    def f(x: float, digits: int = 7) -> str:
        text = f"{x:.{digits}E}"
        return text.replace(".", ",") if decimal_comma else text

    rate = f"{c.scan_rate * 1e3:.3f}"
    header = [
        "",
        "Cyclic Voltammetry",
        "",
        "Run on channel : 1 (SN 14990)",
        "User : ",
        "Electrode connection : standard",
        "Ewe ctrl range : min = -2.50 V, max = 2.50 V",
        "Acquisition started on : 03/11/2024 13:15:24.245",
        "Device : SP-300 (SN 1111)",
        "Electrode material : glassy carbon",
        "Electrolyte : 1 M KCl",
        "Comments : ferricyanide 1 mM",
        "Reference electrode : Ag/AgCl (3M KCl) (0,210 V)",
        "Electrode surface area : 0.0707 cm²",
        "Characteristic mass : 0.001 g",
        "Cycle Definition : Charge/Discharge alternance",
        "Ei (V)              0.600               ",
        "vs.                 Ref                 ",
        f"dE/dt               {rate.replace('.', ',') if decimal_comma else rate}               ",
        "dE/dt unit          mV/s                ",
        "E1 (V)              -0.100              ",
        "vs.                 Ref                 ",
        f"nc cycles           {int(c.scan.max()) - 1}                   ",
    ]
    names = (
        "mode\tox/red\terror\tcontrol changes\tcounter inc.\ttime/s\tcontrol/V\tEwe/V\t"
        "<I>/mA\tcycle number\t(Q-Qo)/C\t"
    )
    n_header = 2 + len(header) + 1
    lines = ["EC-Lab ASCII FILE", f"Nb header lines : {n_header}", *header, names]
    for k in range(len(c.t)):
        lines.append(
            "\t".join(
                [
                    "2",
                    "1",
                    "0",
                    "0",
                    "0",
                    f(c.t[k], 10),
                    f(c.E[k]),
                    f(c.E[k]),
                    f(c.I[k] * 1e3),
                    f(float(c.scan[k] - 1), 6),
                    f(0.0),
                ]
            )
            + "\t"
        )
    return _crlf(lines).encode("cp1252")


def mpr(c: Columns, *, version: int = 2, truncate_points: int = 0) -> bytes:
    """An EC-Lab .mpr: the magic, a settings module and a 'VMP data' module (version 2:
    rows from byte 0x195) with the flag byte, time/s, control/V, Ewe/V, <I>/mA and
    cycle number columns."""

    def module(short: bytes, long: bytes, body: bytes, ver: int) -> bytes:
        header = (
            short.ljust(10, b" ")
            + long.ljust(25, b" ")
            + struct.pack("<II", len(body), ver)
            + b"03/11/24"
        )
        return b"MODULE" + header + body

    settings = b"\x04" + b"\x00" * 99  # the technique byte, then settings not read
    ids = [1, 2, 3, 21, 4, 19, 6, 76, 24]
    n = len(c.t) - truncate_points
    head = struct.pack("<IB", len(c.t), len(ids)) + struct.pack(f"<{len(ids)}H", *ids)
    offset = 0x195 if version == 2 else 0x196
    head = head.ljust(offset, b"\x00")
    rows = np.zeros(
        n,
        dtype=[
            ("flags", "u1"),
            ("t", "<f8"),
            ("control", "<f4"),
            ("Ewe", "<f4"),
            ("I", "<f4"),
            ("cycle", "<f8"),
        ],
    )
    rows["flags"] = 0x02 | 0x04
    rows["t"] = c.t[:n]
    rows["control"] = c.E[:n]
    rows["Ewe"] = c.E[:n]
    rows["I"] = c.I[:n] * 1e3
    rows["cycle"] = c.scan[:n] - 1
    return (
        MPR_MAGIC
        + module(b"VMP Set", b"VMP settings", settings, 0)
        + module(b"VMP data", b"VMP data", head + rows.tobytes(), version)
    )


def chi(c: Columns) -> bytes:
    """A CHI660E text export of a CV (Windows-1252, CRLF)."""
    lines = [
        "Mar. 11, 2024   13:15:24",
        "Cyclic Voltammetry",
        "File:  C:\\CHI\\ferri.bin",
        "Data Source:  Experiment",
        "Instrument Model:  CHI660E",
        "Header:",
        "Note:",
        "",
        "Init E (V) = 0.6",
        "High E (V) = 0.6",
        "Low E (V) = -0.1",
        "Init P/N = N",
        f"Scan Rate (V/s) = {c.scan_rate:g}",
        f"Segment = {2 * int(c.scan.max())}",
        f"Sample Interval (V) = {c.E_step:g}",
        "Quiet Time (sec) = 2",
        "Sensitivity (A/V) = 1e-5",
        "",
        "Potential/V, Current/A",
        "",
    ]
    for k in range(len(c.t)):
        lines.append(f"{c.E[k]:.3f}, {c.I[k]:.3e}")
    return _crlf(lines).encode("cp1252")


def table(c: Columns) -> bytes:
    """A plain CSV: time in ms, potential in V, current in µA."""
    lines = ["time,potential,current"]
    for k in range(len(c.t)):
        lines.append(f"{c.t[k] * 1e3:.6f},{c.E[k]:.6f},{c.I[k] * 1e6:.6f}")
    return ("\n".join(lines) + "\n").encode("utf-8")
