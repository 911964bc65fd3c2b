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
from datetime import datetime

import numpy as np
import numpy.typing as npt

from hal.files.biologic import MPR_COLUMNS, MPR_FLAGS, MPR_MAGIC

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


def autolab(
    c: Columns, delimiter: str = ";", *, decimal_comma: bool = False, time: bool = True
) -> bytes:
    """NOVA 2.1's ASCII export of a CV as NOVA writes it: UTF-8, CRLF, one header line
    of the ticked columns (``Potential applied (V);Time (s);WE(1).Current (A);WE(1).
    Potential (V);Scan;Index;Q+;Q-;Current range``), one line per sample; numbers in
    .NET's round-trip format (``5.888266985133555``, ``-1.00128173828125E-05``),
    ``Current range`` as text (``10 µA``); a decimal comma with ``decimal_comma`` (a
    European Windows, where the separator is ``;``). ``time=False``: an export without
    the time column."""
    names = [
        "Potential applied (V)",
        "Time (s)",
        "WE(1).Current (A)",
        "WE(1).Potential (V)",
        "Scan",
        "Index",
        "Q+",
        "Q-",
        "Current range",
    ]
    if not time:
        names.remove("Time (s)")

    def f(x: float) -> str:
        text = repr(float(x)).replace("e", "E")
        return text.replace(".", ",") if decimal_comma else text

    lines = [delimiter.join(names)]
    measured = c.E + 1e-5 * np.sin(np.arange(len(c.t)))  # a measured potential wiggles
    charge = np.cumsum(c.I) * (c.t[1] - c.t[0])
    for k in range(len(c.t)):
        cells = [f(c.E[k]), f(c.t[k]), f(c.I[k]), f(measured[k]), str(int(c.scan[k]))]
        cells += [str(k + 1), f(max(charge[k], 0.0)), f(min(charge[k], 0.0)), "10 µA"]
        if not time:
            del cells[1]
        lines.append(delimiter.join(cells))
    return _crlf(lines).encode("utf-8")


def _dotnet(x: float) -> str:
    """A double as .NET writes it by default: up to 15 significant digits, ``E-06``."""
    return f"{x:.15G}"


def pstrace_csv(
    c: Columns, *, note: str = "", title: str = "Cyclic Voltammetry: CV i vs E"
) -> bytes:
    """PSTrace 5.x's CSV export as it writes it: UTF-16 LE with a BOM, CRLF lines (the
    last without one), the export's date, ``Notes:`` with the note (if any) on the next
    line padded with commas to the columns, one ``<title> Scan N`` per curve separated
    by an empty cell, ``Date and time measurement:`` per curve (a trailing comma), the
    units (``V,µA``), then one (V, µA) column pair per scan in .NET's number format."""
    scans = np.unique(c.scan).tolist()
    per = [np.flatnonzero(c.scan == s) for s in scans]
    n = max(len(p) for p in per)
    several = len(scans) > 1
    titles = [f"{title} Scan {s}" if several else title for s in scans]
    lines = [
        "Date and time:,2024-03-11 13:22:04",
        "Notes:",
        note + "," * (2 * len(scans) - 2),
        ",,".join(titles),
        "Date and time measurement:,2024-03-11 13:15:24," * len(scans),
        ",".join(["V,µA"] * len(scans)),
    ]
    for k in range(n):
        row = []
        for p in per:
            if k < len(p):
                row += [_dotnet(c.E[p[k]]), _dotnet(c.I[p[k]] * 1e6)]
            else:
                row += ["", ""]
        lines.append(",".join(row))
    return codecs.BOM_UTF16_LE + "\r\n".join(lines).encode("utf-16-le")


def pssession(c: Columns, *, generation: str = "5.11") -> bytes:
    """A .pssession as PSTrace writes it: UTF-16 LE JSON with a BOM, and a stray BOM
    after the closing brace.

    ``generation`` "5.11" (PSTrace 5.9 on): keys in PascalCase; per scan a potential,
    a current and a charge array described ``scanNchannel1``; one time array, of the
    first scan only, with its ``IntervalTime``; currents in µA with the unit written
    ``{"Type": "PalmSens.Units.MicroAmpere", "S": "A"}``; one curve per scan; the
    measurement's start in .NET ticks (``TimeStamp``). "5.0" (PSTrace 5.0 to 5.8):
    keys in lower case, an empty DataSet, the data only in the curves."""
    old = generation == "5.0"

    def key(name: str) -> str:
        return name.lower() if old else name

    def obj(**fields: object) -> dict[str, object]:
        return {key(k): v for k, v in fields.items()}

    volt = obj(Type="PalmSens.Units.Volt", S="V", Q="Potential", A="E")
    micro = obj(Type="PalmSens.Units.MicroAmpere", S="A", Q="Current", A="i")
    sec = obj(Type="PalmSens.Units.Time", S="s", Q="Time", A="t")
    coulomb = obj(Type="PalmSens.Units.MicroCoulomb", S="C", Q="Charge", A="Q")

    def array(
        kind: str, description: str, unit: dict[str, object], values: FloatArray, **extra: object
    ) -> dict[str, object]:
        return obj(
            Type=f"PalmSens.Data.DataArray{kind}",
            ArrayType={"Time": 0, "Potentials": 1, "Currents": 2, "Charge": 3}[kind],
            Description=description,
            **extra,
            Unit=unit,
            DataValues=[obj(V=float(v)) for v in values],
        )

    arrays: list[dict[str, object]] = []
    curves = []
    dt = c.E_step / c.scan_rate
    for s in np.unique(c.scan).tolist():
        idx = c.scan == s
        name = f"scan{s}channel1"
        E = array("Potentials", name, volt, c.E[idx])
        current = array("Currents", name, micro, c.I[idx] * 1e6)
        if s == 1:
            arrays.append(array("Time", "time", sec, c.t[idx], IntervalTime=dt))
        charge = np.cumsum(c.I[idx] * 1e6) * dt
        arrays += [E, current, array("Charge", name, coulomb, charge)]
        curves.append(
            obj(
                Title=f"CV i vs E Scan {s} Channel 1",
                Type="PalmSens.Plottables.Curve",
                XAxisDataArray=E,
                YAxisDataArray=current,
            )
        )
    method = "\r\n".join(
        [
            "#PSTrace, Version=5.11.1006.19013",
            "#2024-03-11 13:22:04",
            "#cv.pssession",
            "#Method file version",
            "METHOD_VERSION=1",
            "#Technique and application",
            "METHOD_ID=cv",
            "TECHNIQUE=5",
            "NOTES=",
            "AREA=0.0000000E+000",
            "E_BEGIN=6.0000000E-001",
            f"E_STEP={c.E_step:.7E}",
            f"N_SCANS={int(c.scan.max())}",
            f"SCAN_RATE={c.scan_rate:.7E}",
            "E_VTX1=-1.0000000E-001",
            "E_VTX2=6.0000000E-001",
            "",
        ]
    )
    started = datetime(2024, 3, 11, 13, 15, 24) - datetime(1, 1, 1)
    ticks = (started.days * 86400 + started.seconds) * 10_000_000
    measurement = obj(
        Title="Cyclic Voltammetry",
        TimeStamp=ticks,
        UTCTimeStamp=ticks - 36_000_000_000,
        DeviceUsed=15,
        DeviceSerial="ES4HR20B0008",
        Type="PalmSens.Comm.CVMeasMS",
        DataSet=obj(Type="PalmSens.Data.DataSetCommon", Values=[] if old else arrays),
        Method=method,
        Curves=curves,
        EISDataList=[],
    )
    doc = obj(
        Type="PalmSens.DataFiles.SessionFile",
        CoreVersion="5.0.802.2" if old else "5.11.1006.0",
        MethodForMeasurement=method,
        Measurements=[measurement],
    )
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    return codecs.BOM_UTF16_LE + (text + "\ufeff").encode("utf-16-le")


def gamry(
    c: Columns, *, decimal_comma: bool = False, notes: str = "ferricyanide 1 mM, 3 mm GC"
) -> bytes:
    """A Gamry Framework 7.10 CV .DTA as it writes it: Windows-1252, CRLF, the EXPLAIN
    header (``KEY<tab>TYPE<tab>value<tab>label``; 7.10 labels some quantities "A
    Potential (V)" and "A Real Number", without a unit), one ``CURVEn<tab>TABLE`` per
    cycle without a row count, and a last curve holding the sweep to the final
    potential (here the last point). Numbers as Gamry prints them: ``1.00264E-001``,
    times and temperatures shortest (``20.1``); a decimal comma under a European
    locale. ``notes``: the one line of the NOTES field."""

    def f(x: float) -> str:
        mantissa, _, exponent = f"{x:.5E}".partition("E")
        text = f"{mantissa}E{exponent[0]}{int(exponent[1:]):03d}"
        return text.replace(".", ",") if decimal_comma else text

    def g(x: float) -> str:
        text = f"{x:g}"
        return text.replace(".", ",") if decimal_comma else text

    cycles = int(c.scan.max())
    lines = [
        "EXPLAIN",
        "TAG\tCV",
        "TITLE\tLABEL\tCyclic Voltammetry\tTest Identifier",
        "DATE\tLABEL\t11.3.2024\tDate",
        "TIME\tLABEL\t13:15:24\tTime",
        "NOTES\tNOTES\t1\tNotes...",
        f"\t{notes}",
        "PSTAT\tPSTAT\tIFC1010-12345\tPotentiostat",
        f"VINIT\tPOTEN\t{f(0.6)}\tF\tA Potential (V)",
        f"VLIMIT1\tPOTEN\t{f(-0.1)}\tF\tA Potential (V)",
        f"VLIMIT2\tPOTEN\t{f(0.6)}\tF\tA Potential (V)",
        f"VFINAL\tPOTEN\t{f(0.6)}\tF\tA Potential (V)",
        f"SCANRATE\tQUANT\t{f(c.scan_rate * 1e3)}\tA Real Number",
        f"STEPSIZE\tQUANT\t{f(c.E_step * 1e3)}\tStep Size (mV)",
        f"CYCLES\tIQUANT\t{cycles}\tCycles (#)",
        "IMODE\tSELECTOR\t1\tI/E Range Mode",
        f"IRANGE\tQUANT\t{f(0.3)}\tMax Current (mA)",
        f"AREA\tQUANT\t{f(0.0707)}\tSample Area (cm^2)",
        f"EQDELAY\tQUANT\t{f(0.0)}\tEquil. Time (s)",
        "SAMPLINGMODE\tSELECTOR\t2\tSampling Mode",
        f"EOC\tQUANT\t{g(0.3105974)}\tOpen Circuit (V)",
        "SEQUENCER\tTOGGLE\tTRUE\tRun as Sequence",
        "PSTATMODEL\tIQUANT\t64\tPstat Model",
        "PSTATSECTION\tLABEL\tIFC1010-12345\tPstat Section",
        "PSTATSERIALNO\tLABEL\t12345\tPstat Serial Number",
        "CTRLMODE\tIQUANT\t1\tControl Mode",
        "CONVENTION\tIQUANT\t1\tCurrent Convention",
        "DCCALDATE\tLABEL\t1/30/2024\tDC Calibration Date",
        "FRAMEWORKVERSION\tLABEL\t7.10.3\tFramework Version",
        "INSTRUMENTVERSION\tLABEL\t4.91\tInstrument Version",
    ]
    names = "\tPt\tT\tVf\tIm\tVu\tSig\tAch\tIERange\tOver\tTemp"
    units = "\t#\ts\tV vs. Ref.\tA\tV\tV\tV\t#\tbits\tdeg C"
    curve_of = c.scan.astype(int).copy()
    curve_of[-1] = cycles + 1  # the sweep to the final potential: its own curve
    for number in range(1, cycles + 2):
        lines += [f"CURVE{number}\tTABLE", names, units]
        for k in np.flatnonzero(curve_of == number):
            lines.append(
                f"\t{k}\t{g(c.t[k])}\t{f(c.E[k])}\t{f(c.I[k])}\t{f(0.0)}\t{f(c.E[k])}"
                f"\t{f(0.0)}\t9\t...........\t{g(1466.98)}"
            )
    return _crlf(lines).encode("cp1252")


def _ec_lab_number(x: float, digits: int, decimal_comma: bool) -> str:
    """A number as EC-Lab prints it: ``4.5403185E-001`` (three exponent digits)."""
    mantissa, _, exponent = f"{x:.{digits}E}".partition("E")
    text = f"{mantissa}E{exponent[0]}{int(exponent[1:]):03d}"
    return text.replace(".", ",") if decimal_comma else text


def mpt(c: Columns, *, decimal_comma: bool = False, header: bool = True) -> bytes:
    """An EC-Lab 11.5x .mpt export of a CV, as EC-Lab writes it (Windows-1252, CRLF):
    the header block of the software's text export, the column line ending in a tab,
    data lines without one; time, current and cycle number with 15 decimals, the other
    columns with 7, every exponent with three digits; a decimal comma when
    ``decimal_comma`` (a European Windows locale). ``header=False`` is the export
    without its header (the column line first)."""

    def f(x: float, digits: int = 7) -> str:
        return _ec_lab_number(x, digits, decimal_comma)

    def g(x: float) -> str:
        return f"{x:.3f}".replace(".", ",") if decimal_comma else f"{x:.3f}"

    def setting(name: str, value: str) -> str:
        return f"{name:<20}{value:<20}"

    rate = g(c.scan_rate * 1e3)
    area = "0,0707" if decimal_comma else "0.0707"
    block = [
        "",
        "Cyclic Voltammetry",
        "",
        "Run on channel : 15 (SN 19485)",
        "User : ",
        "Electrode connection : standard",
        "Potential control : Ewe",
        "Ewe ctrl range : min = -1.00 V, max = 1.00 V",
        "Ewe,I filtering : <None>",
        "Safety Limits :",
        "\tDo not start on E overload",
        "Channel : Floating",
        "Acquisition started on : 03/11/2024 13:15:24.245",
        "Loaded Setting File : NONE",
        "Saved on :",
        "\tFile : ferri_01_CV_C15.mpr",
        "\tDirectory : C:\\Data\\",
        "\tHost : 192.168.0.1",
        "Device : SP-300 (SN 1111)",
        "Address : USB",
        "EC-Lab for windows v11.52 (software)",
        "Internet server v11.52 (firmware)",
        "Command interpretor v11.52 (firmware)",
        "Electrode material : glassy carbon",
        "Initial state : ",
        "Electrolyte : 1 M KCl",
        "Comments : ferricyanide 1 mM",
        "Cable : standard",
        f"Reference electrode : Ag/AgCl (3M KCl) ({'0,210' if decimal_comma else '0.210'} V)",
        f"Electrode surface area : {area} cm²",
        "Characteristic mass : 0.001 g",
        "Equivalent Weight : 0.000 g/eq.",
        "Density : 0.000 g/cm3",
        "Volume (V) : 0.001 cm³",
        "Cycle Definition : Charge/Discharge alternance",
        setting("Ei (V)", g(0.6)),
        setting("vs.", "Ref"),
        setting("dE/dt", rate),
        setting("dE/dt unit", "mV/s"),
        setting("E1 (V)", g(-0.1)),
        setting("vs.", "Ref"),
        setting("Step percent", "50"),
        setting("N", "10"),
        setting("E range min (V)", g(-2.5)),
        setting("E range max (V)", g(2.5)),
        setting("I Range", "Auto"),
        setting("Bandwidth", "8"),
        setting("E2 (V)", g(0.6)),
        setting("vs.", "Ref"),
        setting("nc cycles", str(int(c.scan.max()) - 1)),
        setting("Reverse Scan", "1"),
        setting("Ef (V)", g(0.6)),
        setting("vs.", "Ref"),
        "",
    ]
    names = (
        "mode\tox/red\terror\tcontrol changes\tcounter inc.\ttime/s\tcontrol/V\tEwe/V\t"
        "<I>/mA\tcycle number\t(Q-Qo)/C\tI Range\tstep time/s\tP/W\t"
    )
    n_header = 2 + len(block) + 1
    lines = [
        "EC-Lab ASCII FILE",
        f"Nb header lines : {n_header:<28}",
        *block,
        names,
    ]
    if not header:
        lines = [names]
    measured = c.E + 1e-5 * np.sin(np.arange(len(c.t)))  # a measured potential wiggles
    charge = np.concatenate([[0.0], np.cumsum(0.5 * (c.I[1:] + c.I[:-1]) * np.diff(c.t))])
    for k in range(len(c.t)):
        lines.append(
            "\t".join(
                [
                    "2",
                    "1" if k == 0 or c.E[k] >= c.E[k - 1] else "0",
                    "0",
                    "0" if k == 0 else "1",
                    "0",
                    f(c.t[k], 15),
                    f(c.E[k]),
                    f(measured[k]),
                    f(c.I[k] * 1e3, 15),
                    f(float(c.scan[k]), 15),
                    f(charge[k]),
                    "41",
                    f(0.0, 15),
                    f(measured[k] * c.I[k]),
                ]
            )
        )
    return _crlf(lines).encode("cp1252")


def _module(
    short: str, body: bytes, kind: int, *, new: bool, version: int = 0, date: bytes = b"03/11/24"
) -> bytes:
    """An .mpr module: its header as EC-Lab writes it up to 11.4x (length, version,
    date) or from 11.50 on (0xFFFFFFFF, length, 0, ``kind``: 10 or 11, date)."""
    names = short.encode().ljust(10, b" ") + {
        "VMP Set": b"VMP settings",
        "VMP data": b"VMP data",
        "VMP LOG": b"VMP LOG",
        "VMP loop": b"VMP expt. loop indexes",
    }[short].ljust(25, b" ")
    if new:
        header = struct.pack("<IIII", 0xFFFFFFFF, len(body), 0, kind)
    else:
        header = struct.pack("<II", len(body), version)
    return b"MODULE" + names + header + date + body


def _pascal(text: str, size: int) -> bytes:
    raw = text.encode("cp1252")
    return (bytes([len(raw)]) + raw).ljust(size, b"\x00")


def mpr(
    c: Columns,
    *,
    version: int = 11,
    truncate_points: int = 0,
    area_cm2: float = 0.0707,
    loops: list[int] | None = None,
    technique: int = 0x06,
    date: bytes = b"03/11/24",
) -> bytes:
    """An EC-Lab .mpr of a CV as EC-Lab writes it: the magic, then the modules
    ``VMP Set`` (technique byte 6: CV, or ``technique``; comments at byte 7; area f4
    in cm² at 529; the reference at 533), ``VMP data``, ``VMP LOG`` (the start as an
    OLE date at 585, the EC-Lab version at 951) and, with ``loops``, ``VMP loop``.

    ``version`` 11 is the layout of EC-Lab 11.50 on: new module headers, a two-byte
    column count, rows from 0x3EF, the CV columns of 11.52 (flags, time/s, control/V,
    Ewe/V, <I>/mA f8, cycle number, (Q-Qo)/C, I Range, step time/s). 2 and 3 are the
    older data modules (rows from 0x195 and 0x196; the CV columns of 11.12, without
    I Range and step time). ``date`` is the modules' date as the PC's locale wrote it
    (``01.10.18``)."""
    if version == 11:
        ids = [1, 2, 3, 21, 65, 4, 19, 6, 11, 24, 434, 39, 438]
    else:
        ids = [1, 2, 3, 21, 65, 4, 19, 6, 11, 24, 434]
    n = len(c.t) - truncate_points
    columns: dict[str, FloatArray] = {
        "flags": np.full(n, 0x02 | 0x04, dtype=np.float64),
        "time/s": c.t[:n],
        "control/V": c.E[:n],
        "Ewe/V": c.E[:n],
        "<I>/mA": c.I[:n] * 1e3,
        "cycle number": c.scan[:n].astype(np.float64),  # EC-Lab counts CV cycles from 1
    }
    return mpr_file(
        ids,
        columns,
        points=len(c.t),
        version=version,
        area_cm2=area_cm2,
        loops=loops,
        technique=technique,
        date=date,
    )


def mpr_file(
    ids: list[int],
    columns: dict[str, FloatArray],
    *,
    points: int | None = None,
    version: int = 11,
    area_cm2: float = 0.0707,
    loops: list[int] | None = None,
    technique: int = 0x06,
    date: bytes = b"03/11/24",
) -> bytes:
    """An .mpr with the column ``ids`` (see :data:`hal.files.biologic.MPR_COLUMNS`) and
    the values of ``columns`` by column name (missing ones are zero; ``flags`` is the
    shared flag byte); ``points`` the number the data module announces (default: the
    rows). See :func:`mpr` for the modules."""
    new = version == 11
    settings = bytearray(6692 if new else 1856)
    flavour = b"\x00\x08K\x03\x00\x00" if new else b"\x00\x07K\x03\x00\x00"
    settings[0:7] = bytes([technique]) + flavour
    settings[7 : 7 + 20] = _pascal("ferricyanide 1 mM", 20)
    settings[529:533] = struct.pack("<f", area_cm2)
    settings[533 : 533 + 20] = _pascal("Ag/AgCl (3M KCl)", 20)
    fields: list[tuple[str, str]] = []
    for i in ids:
        if i in MPR_FLAGS:
            if ("flags", "u1") not in fields:
                fields.append(("flags", "u1"))
        else:
            fields.append(MPR_COLUMNS[i])
    n = len(next(iter(columns.values())))
    rows = np.zeros(n, dtype=fields)
    for name, values in columns.items():
        rows[name] = values
    count = n if points is None else points
    if new:
        head = struct.pack("<IH", count, len(ids)) + struct.pack(f"<{len(ids)}H", *ids)
        offset = 0x3EF
    else:
        head = struct.pack("<IB", count, len(ids)) + struct.pack(f"<{len(ids)}H", *ids)
        offset = 0x195 if version == 2 else 0x196
    head = head.ljust(offset, b"\x00")
    log = bytearray(8048 if new else 2907)
    started = (datetime(2024, 3, 11, 13, 15, 24, 245000) - datetime(1899, 12, 30)).total_seconds()
    log[585:593] = struct.pack("<d", started / 86400)
    log[951:957] = _pascal("11.52" if new else "11.12", 6)
    modules = [
        _module("VMP Set", bytes(settings), 10, new=new, date=date),
        _module("VMP data", head + rows.tobytes(), 11, new=new, version=version, date=date),
        _module("VMP LOG", bytes(log), 10, new=new, date=date),
    ]
    if loops is not None:
        body = struct.pack(f"<I{len(loops)}I", len(loops), *loops).ljust(280, b"\x00")
        modules.append(_module("VMP loop", body, 10, new=new, date=date))
    return MPR_MAGIC + b"".join(modules)


def _chi_number(x: float) -> str:
    """A current as the CHI software prints it: ``-9.816e-8`` (no exponent padding)."""
    mantissa, _, exponent = f"{x:.3e}".partition("e")
    return f"{mantissa}e{int(exponent)}"


def chi(c: Columns, *, header: bool = True, delimiter: str = ", ") -> bytes:
    """A CHI 600-series text export of a CV as the CHI software writes it
    (Windows-1252, CRLF): the date, the technique, ``File:``, ``Data Source:``,
    ``Instrument Model:``, empty ``Header:`` and ``Note:`` (a trailing space), the
    parameters as ``Name (unit) = value``, the results of each segment (``Segment N:``,
    then ``Ep``, ``ip``, ``Ah`` where a peak was found), the column line and the rows
    (potential with 3 decimals, current as ``-9.816e-8``). ``header=False`` and
    ``delimiter="\\t"``: the text as saved without the file information and results,
    tab-separated."""
    segments = 2 * int(c.scan.max())
    lines = [
        "Mar. 11, 2024   13:15:24",
        "Cyclic Voltammetry",
        "File: c:\\chi\\data\\ferri.bin",
        "Data Source:  Experiment",
        "Instrument Model:  CHI660E",
        "Header: ",
        "Note: ",
        "",
    ]
    parameters = [
        "Init E (V) = 0.6",
        "High E (V) = 0.6",
        "Low E (V) = -0.1",
        "Init P/N = N",
        f"Scan Rate (V/s) = {c.scan_rate:g}",
        f"Segment = {segments}",
        f"Sample Interval (V) = {c.E_step:g}",
        "Quiet Time (sec) = 2",
        "Sensitivity (A/V) = 1e-5",
        "",
    ]
    results = []
    for k in range(1, segments + 1):
        results.append(f"Segment {k}:")
        if k % 2:  # a cathodic peak on each forward sweep
            results += ["Ep = 0.198V", "ip = -2.457e-6A", "Ah = -7.710e-6C"]
        results.append("")
    lines = [*lines, *parameters, *results] if header else parameters
    lines += [f"Potential/V{delimiter}Current/A", ""]
    for k in range(len(c.t)):
        lines.append(f"{c.E[k]:.3f}{delimiter}{_chi_number(c.I[k])}")
    return _crlf(lines).encode("cp1252")


def table(c: Columns) -> bytes:
    """A plain CSV: time in ms, potential in V, current in µA."""
    lines = ["time,potential,current"]
    for k in range(len(c.t)):
        lines.append(f"{c.t[k] * 1e3:.6f},{c.E[k]:.6f},{c.I[k] * 1e6:.6f}")
    return ("\n".join(lines) + "\n").encode("utf-8")
