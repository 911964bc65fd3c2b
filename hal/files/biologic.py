"""BioLogic EC-Lab: ``.mpt`` (text export) and ``.mpr`` (the binary file EC-Lab writes).

**.mpt** (Windows-1252 text, or UTF-8 after a round through another program;
tab-separated, CRLF, a decimal point or comma as the PC's locale had it)::

    EC-Lab ASCII FILE
    Nb header lines : 60
    <blank>
    Cyclic Voltammetry
    <blank>
    Run on channel : 15 (SN 19485)
    ...
    Acquisition started on : 03/13/2024 16:38:30.802
    Device : VMP-300 (SN 0826)
    EC-Lab for windows v11.52 (software)
    ...
    Reference electrode : SCE Saturated Calomel Electrode (0,241 V)
    Electrode surface area : 0,196 cm²
    ...
    dE/dt               20.000
    dE/dt unit          mV/s
    ...
    <blank>
    mode	ox/red	error	control changes	counter inc.	time/s	control/V	Ewe/V	<I>/mA	...

``Nb header lines`` counts every line before the data, the column names included.
EC-Lab can also export without the header: then the first line is the column line.
Each column is ``name/unit``: the working electrode's potential is ``Ewe/V``,
``<Ewe>/V``, ``<Ewe/V>`` (chronopotentiometry) or ``Ecell/V`` (BT-Lab); the current
``<I>/mA`` or ``I/mA``; ``control/V`` the applied potential of a potentiostatic
technique; ``cycle number`` the cycle, from 1 in CV files and from 0 in galvanostatic
cycling. Dates are month first whatever the separator (``03/26/2018``, ``03.26.18``).
EC-Lab's default area, 0.001 cm² (and 0), is a placeholder nobody measured: it is
taken as not given (and said so in the notes). A file saved as UTF-8 by another
program may have lost the ``²`` of ``cm²``: the area is in cm² whatever follows.

**.mpr** is a sequence of modules after a 52-byte magic (``BIO-LOGIC MODULAR FILE``,
0x1A, spaces, four NUL bytes). Each module is ``MODULE``, a header and its data. The
header is a short name (10 bytes), a long name (25), then either (files up to EC-Lab
11.4x) the data length u4, a version u4 and the date (8 ASCII characters, month first,
``/``, ``.`` or ``-`` between), or (EC-Lab 11.50 on) 0xFFFFFFFF, the data length u4,
two u4 (0, then 10 or 11) and the date. The modules read:

- ``VMP Set`` (settings): the technique (byte 0; the ids in :data:`MPR_TECHNIQUES`),
  the comments (a length byte at 7, the text after it), the electrode area (f4, cm²,
  at byte 529) and the reference electrode (a length byte at 533, the name after it;
  ``(unspecified)`` when none was chosen).
- ``VMP data``: the number of points (u4) and of columns, the column ids (u2 each), and
  the rows from a fixed offset: version 2 (EC-Lab 10.x to 11.1x): a one-byte column
  count at 4, ids from 5, rows from byte 0x195; version 3: the same, rows from 0x196;
  the 11.50 layout: a two-byte count at 4, ids from 6, rows from 0x3EF. One
  little-endian record per point, the columns in order, except that the flag columns
  (mode, ox/red, error, control changes, Ns changes, counter inc.) share one byte. The
  module's length must be exactly the offset plus the rows: a layout that does not fit
  is refused rather than read as garbage.
- ``VMP LOG``: the acquisition start as an OLE date (f8, days since 1899-12-30) at byte
  585, and the EC-Lab version (a length byte at 951, e.g. ``11.52``).
- ``VMP loop``: u4 count, then that many u4 row indices where each loop of a looped
  sequence starts (the last is the number of points): the scans of a file without a
  ``cycle number`` column.

The column ids in :data:`MPR_COLUMNS` were each checked against the ``.mpt`` EC-Lab
exported from the same file (values equal to the precision printed) in public files of
EC-Lab 10.40 to 11.62 (see ``tests/hal/files/README.md``); 883 and 884 are known only
by their size (the module length fixes it) and are named for what they hold there.
The layout was first documented by reverse engineering in the galvani project
(GPL-3.0); this reader is written from those descriptions and the files, not from its
code, so that it stays under Apache-2.0. A file with a column id this reader does not
know is read by galvani when the optional extra is installed (``pip install
'galvana[biologic-gpl]'``: galvani is GPL-3.0), and otherwise refused with the advice
to export an ``.mpt``.

Impedance (PEIS, GEIS, ZIR), open-circuit (OCV) and wait files hold no voltammetry:
they are refused with one line that says so.
"""

from __future__ import annotations

import io
import re
from datetime import datetime, timedelta
from typing import Any, Final

import numpy as np

from hal.files._text import decode_text, parse_rows
from hal.files.errors import FileFormatError, MissingColumnError, UnitError
from hal.files.recording import Metadata, Recording, scan_numbers
from hal.files.units import quantity_to_si, scale_to_si

__all__ = [
    "MPR_COLUMNS",
    "MPR_FLAGS",
    "MPR_MAGIC",
    "MPR_TECHNIQUES",
    "MprReader",
    "MptReader",
]

_TECHNIQUES: Final[dict[str, str]] = {
    "Cyclic Voltammetry": "cv",
    "Cyclic Voltammetry Advanced": "cv",
    "Linear Sweep Voltammetry": "lsv",
    "Chronoamperometry / Chronocoulometry": "ca",
    "Chronoamperometry": "ca",
    "Constant Voltage": "ca",
    "Chronopotentiometry": "cp",
    "Constant Current": "cp",
    "Square Wave Voltammetry": "swv",
    "Differential Pulse Voltammetry": "dpv",
    "Galvanostatic Cycling with Potential Limitation": "gcpl",
    "Modulo Bat": "mb",
    "Battery Capacity Determination": "bcd",
    "Open Circuit Voltage": "ocv",
    "Wait": "wait",
    "Potentio Electrochemical Impedance Spectroscopy": "peis",
    "Galvano Electrochemical Impedance Spectroscopy": "geis",
    "IR compensation (PEIS)": "zir",
}
"""EC-Lab's technique titles (the line after the header's blank line) and Galvana's names."""

_REFUSED: Final[dict[str, str]] = {
    "peis": "an impedance spectrum (PEIS)",
    "geis": "an impedance spectrum (GEIS)",
    "zir": "an impedance measurement (ZIR)",
    "ocv": "an open-circuit voltage recording (OCV), without current",
    "wait": "a wait step, without data to import",
}
_ACCEPTED: Final = "Galvana imports voltammetry, amperometry and potentiometry with a current"
_DEFAULT_AREA_CM2: Final = 0.001
_AREA: Final = re.compile(r"^\s*([-+]?\d+(?:[.,]\d*)?(?:[eE][-+]?\d+)?)\s*(\S*)")
_DATE: Final = re.compile(r"^(\d\d?)[/.\-](\d\d?)[/.\-](\d{2,4})\s+(\d\d?:\d\d:\d\d(?:\.\d+)?)$")


def _date(text: str) -> datetime | None:
    """EC-Lab's dates: month, day, year, whatever the separator (the PC's locale)."""
    match = _DATE.match(text.strip())
    if match is None:
        return None
    month, day, year, clock = match.groups()
    if len(year) == 2:
        year = "20" + year
    try:
        return datetime.strptime(f"{year}-{month}-{day} {clock}", "%Y-%m-%d %H:%M:%S.%f")
    except ValueError:
        try:
            return datetime.strptime(f"{year}-{month}-{day} {clock}", "%Y-%m-%d %H:%M:%S")
        except ValueError:
            return None


def _area(text: str, file: str, where: str) -> tuple[float | None, str]:
    """The electrode area (m^2) of an EC-Lab header value, or None with the reason."""
    match = _AREA.match(text)
    if match is None:
        raise UnitError(file, "expected an area such as 0.196 cm²", where=where)
    value = float(match.group(1).replace(",", "."))
    unit = match.group(2)
    # EC-Lab writes cm² always; a file re-encoded elsewhere may have lost the "²".
    if unit.startswith("cm"):
        area = value * 1e-4
    else:
        try:
            area = quantity_to_si(f"{value} {unit}", "area")
        except ValueError as exc:
            raise UnitError(file, str(exc), where=where) from None
    if area <= 0 or abs(area - _DEFAULT_AREA_CM2 * 1e-4) < 1e-12:
        return None, (
            f"the area in the header ({value:g} cm²) is EC-Lab's placeholder: taken as not given"
        )
    return area, ""


_SETTING_WIDTH: Final = 20


def _setting(line: str) -> tuple[str, list[str]] | None:
    """A technique setting: its name and one value per sequence (``Ns``), each in a
    column of 20 characters, as EC-Lab prints them (``dE/dt               20.000``)."""
    name = line[:_SETTING_WIDTH].strip()
    rest = line[_SETTING_WIDTH:]
    if not name or not rest.strip() or line[:1].isspace():
        return None
    cells = [rest[k : k + _SETTING_WIDTH].strip() for k in range(0, len(rest), _SETTING_WIDTH)]
    return name, [c for c in cells if c]


def _header_metadata(lines: list[str], file: str, fmt: str) -> Metadata:
    header: dict[str, str] = {}
    settings: dict[str, list[str]] = {}
    technique = None
    for line in lines:
        stripped = line.strip()
        if stripped in _TECHNIQUES and technique is None:
            technique = _TECHNIQUES[stripped]
        if " : " in line:
            key, _, value = line.partition(" : ")
            header[key.strip()[:60]] = value.strip()[:200]
        elif stripped.startswith(("EC-Lab for windows", "BT-Lab for windows")):
            header["software"] = stripped[:80]
        elif (setting := _setting(line.rstrip())) is not None:
            name, values_ = setting
            settings.setdefault(name, values_)
            header.setdefault(name[:60], " | ".join(values_)[:200])
    values: dict[str, Any] = {}
    notes = []
    area_text = header.get("Electrode surface area")
    if area_text:
        area, why = _area(area_text, file, "header 'Electrode surface area'")
        if area is None:
            notes.append(why)
        else:
            values["area"] = area
    rates, units = settings.get("dE/dt", []), settings.get("dE/dt unit", [])
    if rates and len(units) == len(rates):
        try:
            found = {
                quantity_to_si(f"{r.replace(',', '.')} {u}", "scan_rate")
                for r, u in zip(rates, units, strict=True)
            }
        except ValueError as exc:
            raise UnitError(file, str(exc), where="header 'dE/dt unit'") from None
        if len(found) == 1:
            values["scan_rate"] = found.pop()
        else:
            # CV Advanced runs one sequence (Ns) per column, each at its own rate.
            notes.append(
                "the sequences run at "
                + ", ".join(f"{r} {u}" for r, u in zip(rates, units, strict=True))
            )
    reference = header.get("Reference electrode")
    if reference:
        values["reference"] = reference
    started = header.get("Acquisition started on")
    if started:
        values["started"] = _date(started)
    if header.get("Comments"):
        notes.append(header["Comments"])
    device = header.get("Device")
    software = header.get("software", "")
    version = re.search(r"v(\d+\.\d+)", software)
    instrument = f"BioLogic {device}" if device else "BioLogic"
    if version:
        instrument += f" (EC-Lab {version.group(1)})"
    metadata = Metadata(
        format=fmt,
        instrument=instrument[:80],
        header=header,
        notes="; ".join(notes),
        sources={"instrument": "header"},
    )
    return metadata.with_values("header", technique=technique, **values)


def _refuse_technique(technique: str | None, file: str, where: str) -> None:
    if technique in _REFUSED:
        raise FileFormatError(file, f"holds {_REFUSED[technique]}; {_ACCEPTED}", where=where)


def _scans(cycle: np.ndarray | None) -> np.ndarray | None:
    """Scan numbers from EC-Lab's ``cycle number``: from 1 in CV files, from 0 in
    galvanostatic cycling (then each is one more)."""
    if cycle is None or len(cycle) == 0 or not np.all(np.isfinite(cycle)):
        return None
    return scan_numbers(cycle, first=0 if float(np.min(cycle)) == 0.0 else 1)


_E_NAMES: Final = ("Ewe", "<Ewe>", "<Ewe", "Ecell")
_I_NAMES: Final = ("<I>", "I")


def _suffix_unit(name: str) -> tuple[str, str]:
    # "<Ewe/V>" puts the unit inside the brackets: its base is "<Ewe", its unit "V".
    base, _, unit = name.rpartition("/")
    return (base, unit.rstrip(">")) if base else (name, "")


class MptReader:
    """Reads EC-Lab ``.mpt`` text exports (see the module docstring)."""

    name = "biologic-mpt"
    title = "BioLogic EC-Lab text export (.mpt)"
    extensions = (".mpt", ".txt")

    def sniff(self, head: bytes) -> bool:
        if head.startswith((b"EC-Lab ASCII FILE", b"BT-Lab ASCII FILE")):
            return True
        first = head.split(b"\n", 1)[0]
        cells = first.rstrip(b"\r\t").split(b"\t")
        return b"time/s" in cells and (
            cells[0] in (b"mode", b"freq/Hz") or any(c.startswith(b"Ewe/") for c in cells)
        )

    def read(self, data: bytes, file: str) -> Recording:
        text = decode_text(data, file)
        lines = text.splitlines()
        if lines and lines[0].startswith(("EC-Lab ASCII FILE", "BT-Lab ASCII FILE")):
            match = re.match(r"Nb header lines\s*:\s*(\d+)", lines[1] if len(lines) > 1 else "")
            if match is None:
                raise FileFormatError(
                    file,
                    "has no 'Nb header lines : N' line; expected an EC-Lab text export",
                    where="line 2",
                )
            n_header = int(match.group(1))
            if not 3 <= n_header <= len(lines):
                raise FileFormatError(
                    file,
                    f"says {n_header} header lines but has {len(lines)} lines",
                    where="line 2",
                )
            metadata = _header_metadata(lines[2 : n_header - 1], file, self.name)
        else:
            n_header = 1  # exported without the header: the column line comes first
            metadata = Metadata(format=self.name, instrument="BioLogic")
        _refuse_technique(metadata.technique, file, "line 4")
        names = [c.strip() for c in lines[n_header - 1].rstrip("\t").split("\t")]
        if "freq/Hz" in names and metadata.technique is None:
            raise FileFormatError(
                file, f"holds an impedance spectrum; {_ACCEPTED}", where=f"line {n_header}"
            )
        body = lines[n_header:]
        while body and not body[-1].strip():
            body.pop()
        first = body[0].split("\t") if body else []
        decimal_comma = any("," in c for c in first) and not any("." in c for c in first)

        def find(candidates: tuple[str, ...]) -> int | None:
            for want in candidates:
                for j, name in enumerate(names):
                    if _suffix_unit(name)[0] == want:
                        return j
            return None

        t_at, e_at, i_at = find(("time",)), find(_E_NAMES), find(_I_NAMES)
        missing = [
            w for w, c in (("time/s", t_at), ("Ewe/V", e_at), ("<I>/mA or I/mA", i_at)) if c is None
        ]
        if missing:
            what = ", ".join(missing)
            if i_at is None and e_at is not None:
                what += " (a recording without current, such as an open-circuit voltage)"
            raise MissingColumnError(file, f"has no column {what}", where=f"line {n_header}")
        values = parse_rows(
            body,
            n_header + 1,
            file,
            delimiter="\t",
            columns=names,
            decimal_comma=decimal_comma,
            trailing_delimiter=True,
        )

        def col(j: int | None, kind: str | None) -> np.ndarray | None:
            if j is None:
                return None
            if kind is None:
                return values[:, j]
            unit = _suffix_unit(names[j])[1]
            try:
                return values[:, j] * scale_to_si(unit, kind)
            except ValueError as exc:
                raise UnitError(
                    file, str(exc), where=f"line {n_header}, column {names[j][:40]!r}"
                ) from None

        t = col(t_at, "time")
        E = col(e_at, "potential")
        current = col(i_at, "current")
        assert t is not None
        assert E is not None
        assert current is not None
        control = names.index("control/V") if "control/V" in names else None
        return Recording(
            t=t,
            E=E,
            I=current,
            metadata=metadata,
            E_applied=col(control, "potential"),
            scan=_scans(col(find(("cycle number",)), None)),
        )


MPR_MAGIC: Final = b"BIO-LOGIC MODULAR FILE\x1a".ljust(48, b" ") + b"\x00" * 4
"""The first 52 bytes of every .mpr file."""

MPR_FLAGS: Final[dict[int, tuple[str, int]]] = {
    1: ("mode", 0x03),
    2: ("ox/red", 0x04),
    3: ("error", 0x08),
    21: ("control changes", 0x10),
    31: ("Ns changes", 0x20),
    65: ("counter inc.", 0x80),
}
"""Flag column ids: their name and bit mask in the shared flags byte."""

MPR_COLUMNS: Final[dict[int, tuple[str, str]]] = {
    4: ("time/s", "<f8"),
    5: ("control/V/mA", "<f4"),
    6: ("Ewe/V", "<f4"),
    7: ("dq/mA.h", "<f8"),
    8: ("I/mA", "<f4"),
    9: ("Ece/V", "<f4"),
    11: ("<I>/mA", "<f8"),
    13: ("(Q-Qo)/mA.h", "<f8"),
    16: ("Analog IN 1/V", "<f4"),
    17: ("Analog IN 2/V", "<f4"),
    19: ("control/V", "<f4"),
    20: ("control/mA", "<f4"),
    23: ("dQ/mA.h", "<f8"),
    24: ("cycle number", "<f8"),
    32: ("freq/Hz", "<f4"),
    33: ("|Ewe|/V", "<f4"),
    34: ("|I|/A", "<f4"),
    35: ("Phase(Z)/deg", "<f4"),
    36: ("|Z|/Ohm", "<f4"),
    37: ("Re(Z)/Ohm", "<f4"),
    38: ("-Im(Z)/Ohm", "<f4"),
    39: ("I Range", "<u2"),
    70: ("P/W", "<f4"),
    74: ("|Energy|/W.h", "<f8"),
    76: ("<I>/mA", "<f4"),
    77: ("<Ewe>/V", "<f4"),
    96: ("|Ece|/V", "<f4"),
    98: ("Phase(Zce)/deg", "<f4"),
    99: ("|Zce|/Ohm", "<f4"),
    100: ("Re(Zce)/Ohm", "<f4"),
    101: ("-Im(Zce)/Ohm", "<f4"),
    123: ("Energy charge/W.h", "<f8"),
    124: ("Energy discharge/W.h", "<f8"),
    125: ("Capacitance charge/µF", "<f8"),
    126: ("Capacitance discharge/µF", "<f8"),
    131: ("Ns", "<u2"),
    168: ("Rcmp/Ohm", "<f4"),
    169: ("Cs/µF", "<f4"),
    172: ("Cp/µF", "<f4"),
    174: ("<Ewe>/V", "<f4"),
    430: ("Phase(Zwe-ce)/deg", "<f4"),
    431: ("|Zwe-ce|/Ohm", "<f4"),
    432: ("Re(Zwe-ce)/Ohm", "<f4"),
    433: ("-Im(Zwe-ce)/Ohm", "<f4"),
    434: ("(Q-Qo)/C", "<f4"),
    435: ("dQ/C", "<f4"),
    438: ("step time/s", "<f8"),
    441: ("<Ece>/V", "<f4"),
    467: ("Q charge/discharge/mA.h", "<f8"),
    468: ("half cycle", "<u4"),
    469: ("z cycle", "<u4"),
    471: ("<Ece>/V", "<f4"),
    473: ("THD Ewe/%", "<f4"),
    474: ("THD I/%", "<f4"),
    476: ("NSD Ewe/%", "<f4"),
    477: ("NSD I/%", "<f4"),
    479: ("NSR Ewe/%", "<f4"),
    480: ("NSR I/%", "<f4"),
    486: ("|Ewe h2|/V", "<f4"),
    487: ("|Ewe h3|/V", "<f4"),
    488: ("|Ewe h4|/V", "<f4"),
    489: ("|Ewe h5|/V", "<f4"),
    490: ("|Ewe h6|/V", "<f4"),
    491: ("|Ewe h7|/V", "<f4"),
    492: ("|I h2|/A", "<f4"),
    493: ("|I h3|/A", "<f4"),
    494: ("|I h4|/A", "<f4"),
    495: ("|I h5|/A", "<f4"),
    496: ("|I h6|/A", "<f4"),
    497: ("|I h7|/A", "<f4"),
    880: ("Energy we/W.h", "<f8"),
    883: ("Energy we charge/W.h", "<f8"),
    884: ("Energy we discharge/W.h", "<f8"),
}
"""Data column ids of the VMP data module: their name and numpy type."""

MPR_TECHNIQUES: Final[dict[int, str]] = {
    0x04: "gcpl",
    0x06: "cv",
    0x0B: "ocv",
    0x18: "ca",
    0x19: "cp",
    0x1C: "wait",
    0x1D: "peis",
    0x1E: "geis",
    0x32: "zir",
    0x33: "cv",  # CV Advanced
    0x6C: "lsv",
    0x75: "ca",  # Constant Voltage
    0x76: "cp",  # Constant Current
    0x7F: "mb",
    0x88: "bcd",
}
"""The technique byte of the settings module and Galvana's name of the technique."""

_MODULE_DATE: Final = re.compile(rb"^\d\d[/.\-]\d\d[/.\-]\d\d$")
_OLD_HEADER: Final = np.dtype(
    [("short", "S10"), ("long", "S25"), ("length", "<u4"), ("version", "<u4"), ("date", "S8")]
)
_NEW_HEADER: Final = np.dtype(
    [
        ("short", "S10"),
        ("long", "S25"),
        ("max_length", "<u4"),
        ("length", "<u4"),
        ("version", "<u4"),
        ("kind", "<u4"),
        ("date", "S8"),
    ]
)
_ROWS_AT: Final = {2: 0x195, 3: 0x196}
_ROWS_AT_NEW: Final = 0x3EF
_OLE_EPOCH: Final = datetime(1899, 12, 30)


class _Module:
    """One module of an .mpr: its short name, header style, version, date and data."""

    __slots__ = ("data", "date", "new", "short", "version")

    def __init__(self, short: str, new: bool, version: int, date: str, data: bytes) -> None:
        self.short, self.new, self.version, self.date, self.data = (
            short,
            new,
            version,
            date,
            data,
        )


def _modules(data: bytes, file: str) -> list[_Module]:
    out = []
    pos = len(MPR_MAGIC)
    while pos < len(data):
        if data[pos : pos + 6] != b"MODULE":
            raise FileFormatError(
                file,
                "expected a module ('MODULE') here; the file is damaged or truncated",
                where=f"byte {pos}",
            )
        pos += 6
        header = None
        new = False
        for dtype in (_OLD_HEADER, _NEW_HEADER):
            if pos + dtype.itemsize > len(data):
                continue
            h = np.frombuffer(data, dtype, count=1, offset=pos)[0]
            if _MODULE_DATE.match(bytes(h["date"])):
                header, new = h, dtype is _NEW_HEADER
                pos += dtype.itemsize
                break
        if header is None:
            raise FileFormatError(
                file, "a module header is malformed or truncated", where=f"byte {pos}"
            )
        length = int(header["length"])
        if pos + length > len(data):
            raise FileFormatError(
                file,
                f"a module of {length} bytes runs past the end of the file (truncated)",
                where=f"byte {pos}",
            )
        out.append(
            _Module(
                bytes(header["short"]).decode("ascii", "replace").strip(),
                new,
                int(header["version"]),
                bytes(header["date"]).decode("ascii"),
                data[pos : pos + length],
            )
        )
        pos += length
    return out


def _pascal(data: bytes, at: int, limit: int) -> str:
    """A length-prefixed Windows-1252 string of the settings or log module."""
    if at >= len(data):
        return ""
    n = min(data[at], limit, len(data) - at - 1)
    return data[at + 1 : at + 1 + n].decode("cp1252", "replace").replace("\x00", "").strip()


def _settings(module: _Module | None) -> dict[str, Any]:
    """What the settings module says: technique, comments, area and reference."""
    out: dict[str, Any] = {}
    if module is None or len(module.data) < 8:
        return out
    body = module.data
    out["technique_id"] = body[0]
    comments = _pascal(body, 7, 255)
    if comments:
        out["comments"] = comments
    if len(body) >= 533:
        area_cm2 = float(np.frombuffer(body, "<f4", count=1, offset=529)[0])
        out["area_cm2"] = area_cm2
    reference = _pascal(body, 533, 64)
    if reference and reference != "(unspecified)":
        out["reference"] = reference
    return out


def _log(module: _Module | None) -> dict[str, Any]:
    """The start of the acquisition and the EC-Lab version, from the log module."""
    out: dict[str, Any] = {}
    if module is None:
        return out
    body = module.data
    for at in (585, 465, 469, 473):  # 585 in every file seen; the others in older notes
        if at + 8 <= len(body):
            days = float(np.frombuffer(body, "<f8", count=1, offset=at)[0])
            if 30_000 < days < 80_000:  # 1982 to 2119: anything else is not a date
                # OLE dates count days from 1899-12-30; milliseconds are all EC-Lab keeps.
                out["started"] = _OLE_EPOCH + timedelta(milliseconds=round(days * 86_400_000))
                break
    version = _pascal(body, 951, 8)
    if re.fullmatch(r"\d+\.\d+", version):
        out["version"] = version
    return out


def _loop_scans(module: _Module | None, n_points: int) -> np.ndarray | None:
    """Scan numbers from the loop module's start indices, or None when it has no loops."""
    if module is None or len(module.data) < 4:
        return None
    count = int.from_bytes(module.data[:4], "little")
    if count < 3 or 4 + 4 * count > len(module.data):
        return None
    starts = np.frombuffer(module.data, "<u4", count=count, offset=4).astype(np.int64)
    if starts[0] != 0 or starts[-1] != n_points or np.any(np.diff(starts) < 0):
        return None
    return np.repeat(np.arange(1, count, dtype=np.int32), np.diff(starts))


def _galvani_data(data: bytes) -> Any:
    """The data of an .mpr through galvani (GPL-3.0, an optional extra), or None."""
    try:
        from galvani import BioLogic  # type: ignore[import-not-found]  # noqa: PLC0415
    except ImportError:
        return None
    return BioLogic.MPRfile(io.BytesIO(data)).data


def _rows_layout(module: _Module, file: str) -> tuple[int, list[int], int]:
    """(points, column ids, offset of the rows) of the data module."""
    body = module.data
    if len(body) < 6:
        raise FileFormatError(file, "the data module is truncated", where="VMP data")
    n_points = int.from_bytes(body[0:4], "little")
    if module.new:
        n_columns, ids_at, rows_at = int.from_bytes(body[4:6], "little"), 6, _ROWS_AT_NEW
    elif module.version in _ROWS_AT:
        n_columns, ids_at, rows_at = body[4], 5, _ROWS_AT[module.version]
    else:
        raise FileFormatError(
            file,
            f"data module version {module.version} is not known; accepted: 2, 3 and the "
            "layout of EC-Lab 11.50 on (export an .mpt from EC-Lab instead)",
            where="VMP data",
        )
    if ids_at + 2 * n_columns > min(len(body), rows_at):
        raise FileFormatError(file, "the column list is truncated", where="VMP data")
    ids = np.frombuffer(body, "<u2", count=n_columns, offset=ids_at).tolist()
    return n_points, ids, rows_at


class MprReader:
    """Reads EC-Lab ``.mpr`` binary files (see the module docstring)."""

    name = "biologic-mpr"
    title = "BioLogic EC-Lab binary (.mpr)"
    extensions = (".mpr",)

    def sniff(self, head: bytes) -> bool:
        return head.startswith(MPR_MAGIC[:23])

    def read(self, data: bytes, file: str) -> Recording:
        if not data.startswith(MPR_MAGIC):
            raise FileFormatError(file, "does not start with the .mpr magic bytes", where="byte 0")
        modules = _modules(data, file)

        def module(short: str) -> _Module | None:
            return next((m for m in modules if m.short == short), None)

        found = module("VMP data")
        if found is None:
            raise MissingColumnError(file, "has no 'VMP data' module; expected EC-Lab data")
        settings = _settings(module("VMP Set"))
        technique = MPR_TECHNIQUES.get(settings.get("technique_id", -1))
        _refuse_technique(technique, file, "VMP settings")
        n_points, ids, rows_at = _rows_layout(found, file)
        if 32 in ids and technique not in ("mb",):  # freq/Hz: an impedance spectrum
            raise FileFormatError(
                file, f"holds an impedance spectrum; {_ACCEPTED}", where="VMP data"
            )
        body = found.data
        unknown = [i for i in ids if i not in MPR_COLUMNS and i not in MPR_FLAGS]
        fields: list[tuple[str, str]] = []
        if unknown:
            records = _galvani_data(data)
            if records is None:
                raise FileFormatError(
                    file,
                    f"has column id(s) {', '.join(map(str, unknown[:5]))} this reader does not "
                    "know; export an .mpt from EC-Lab, or install the optional GPL reader "
                    "(pip install 'galvana[biologic-gpl]')",
                    where="VMP data",
                )
            names = list(records.dtype.names)
        else:
            for i in ids:
                if i in MPR_FLAGS:
                    if ("flags", "u1") not in fields:
                        fields.append(("flags", "u1"))
                    continue
                name, kind = MPR_COLUMNS[i]
                while name in (f[0] for f in fields):
                    name += "'"  # an id that repeats a name (<Ewe>/V as 77 and 174)
                fields.append((name, kind))
            dtype = np.dtype(fields)
            need = rows_at + n_points * dtype.itemsize
            if need > len(body):
                raise FileFormatError(
                    file,
                    f"holds {max(0, (len(body) - rows_at) // dtype.itemsize)} of its "
                    f"{n_points} points (truncated)",
                    where="VMP data",
                )
            if need != len(body):
                raise FileFormatError(
                    file,
                    f"its data module has {len(body)} bytes where {n_points} rows of "
                    f"{dtype.itemsize} bytes from byte {rows_at} need {need}: a layout this "
                    "reader does not know (export an .mpt from EC-Lab instead)",
                    where="VMP data",
                )
            records = np.frombuffer(body, dtype, count=n_points, offset=rows_at)
            names = [f[0] for f in fields]

        def col(candidates: tuple[str, ...], kind: str | None) -> np.ndarray | None:
            for name in candidates:
                if name in names:
                    raw = np.asarray(records[name], dtype=np.float64)
                    if kind is None:
                        return raw
                    return raw * scale_to_si(name.rpartition("/")[2], kind)
            return None

        t = col(("time/s",), "time")
        E = col(("Ewe/V", "<Ewe>/V", "Ecell/V"), "potential")
        current = col(("<I>/mA", "I/mA"), "current")
        missing = [w for w, c in (("time/s", t), ("Ewe/V", E), ("<I>/mA", current)) if c is None]
        if missing:
            what = ", ".join(missing)
            if current is None and E is not None:
                what += (
                    " (galvanostatic techniques keep only the set current in the .mpr: "
                    "export an .mpt, which has <I>/mA)"
                )
            raise MissingColumnError(file, f"has no column {what}", where="VMP data")
        assert t is not None
        assert E is not None
        assert current is not None
        scan = _scans(col(("cycle number",), None))
        if scan is None:
            scan = _loop_scans(module("VMP loop"), len(t))
        log = _log(module("VMP LOG"))
        started = log.get("started")
        if started is None:
            month, day, year = re.split(r"[/.\-]", found.date)
            try:
                started = datetime(2000 + int(year), int(month), int(day))
            except ValueError:
                started = None
        notes = []
        values: dict[str, Any] = {"started": started, "technique": technique}
        if "comments" in settings:
            notes.append(settings["comments"])
        area_cm2 = settings.get("area_cm2")
        if area_cm2 is not None:
            if area_cm2 > 0 and abs(area_cm2 - _DEFAULT_AREA_CM2) > 1e-9:
                values["area"] = area_cm2 * 1e-4
            else:
                notes.append(
                    f"the area in the settings ({area_cm2:g} cm²) is EC-Lab's placeholder: "
                    "taken as not given"
                )
        if "reference" in settings:
            values["reference"] = settings["reference"]
        instrument = "BioLogic (EC-Lab" + (f" {log['version']})" if "version" in log else ")")
        metadata = Metadata(
            format=self.name,
            instrument=instrument,
            notes="; ".join(notes),
            header={
                k: str(v)[:200] for k, v in {**settings, **log}.items() if k not in ("started",)
            },
            sources={"instrument": "header"},
        ).with_values("header", **values)
        return Recording(
            t=t,
            E=E,
            I=current,
            metadata=metadata,
            E_applied=col(("control/V",), "potential"),
            scan=scan,
        )
