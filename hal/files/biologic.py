"""BioLogic EC-Lab: ``.mpt`` (text export) and ``.mpr`` (the binary file EC-Lab writes).

**.mpt** (Windows-1252 text, tab-separated, decimal point or comma)::

    EC-Lab ASCII FILE
    Nb header lines : 62
    <blank>
    Cyclic Voltammetry
    ...
    Acquisition started on : 12/02/2022 13:59:27.245
    Electrode surface area : 0.001 cm²
    Reference electrode : SCE Saturated Calomel Electrode (0,241 V)
    dE/dt               20.000
    dE/dt unit          mV/s
    ...
    mode	ox/red	error	control changes	counter inc.	time/s	control/V	Ewe/V	<I>/mA	...

``Nb header lines`` counts every line before the data, the column names included;
each column is ``name/unit``. ``Ewe/V`` (or ``<Ewe>/V``) is the working electrode's
potential, ``<I>/mA`` (or ``I/mA``) the current, ``control/V`` the applied
potential, ``cycle number`` the cycle (from 0). EC-Lab's default area, 0.001 cm², is
a placeholder nobody measured: it is taken as not given (and said so in the notes).

**.mpr** is a sequence of modules after a 52-byte magic (``BIO-LOGIC MODULAR FILE``,
0x1A, spaces, four NUL bytes). Each module is ``MODULE``, a header (short name 10
bytes, long name 25, data length u4, version u4, date 8 ASCII ``MM/DD/YY``; files from
EC-Lab 11.50 on insert a u4 maximum length before the length and a u4 after the
version) and its data. The ``VMP data`` module holds the number of points (u4), the
number of columns (u1), the column ids (u2 each), and from byte 0x195 (version 2) or
0x196 (version 3) the rows: one little-endian record per point, the columns in order,
except that every flag column (mode, ox/red, error, control changes, Ns changes,
counter inc.) shares one byte. The ids and their types below are the ones CV, LSV
and CA files use. The layout was documented by reverse engineering in the galvani
project (GPL-3.0); this reader is written from that description, not from its code,
so that it stays under Apache-2.0. A file with a column id this reader does not know
is read by galvani when the optional extra is installed
(``pip install 'galvana[biologic-gpl]'``: galvani is GPL-3.0), and otherwise refused
with the advice to export an ``.mpt``.
"""

from __future__ import annotations

import io
import re
from datetime import datetime
from typing import Any, Final

import numpy as np

from hal.files._text import decode_text, number, parse_rows
from hal.files.errors import FileFormatError, MissingColumnError, UnitError
from hal.files.recording import Metadata, Recording, scan_numbers
from hal.files.units import quantity_to_si, scale_to_si

__all__ = ["MPR_COLUMNS", "MPR_FLAGS", "MPR_MAGIC", "MprReader", "MptReader"]

_TECHNIQUES: Final = {
    "Cyclic Voltammetry": "cv",
    "Linear Sweep Voltammetry": "lsv",
    "Chronoamperometry / Chronocoulometry": "ca",
    "Chronoamperometry": "ca",
    "Square Wave Voltammetry": "swv",
}
_DEFAULT_AREA_CM2: Final = 0.001


def _header_metadata(lines: list[str], file: str, fmt: str) -> Metadata:
    header: dict[str, str] = {}
    technique = None
    for line in lines:
        stripped = line.strip()
        if stripped in _TECHNIQUES and technique is None:
            technique = _TECHNIQUES[stripped]
        if " : " in line:
            key, _, value = line.partition(" : ")
            header[key.strip()[:60]] = value.strip()[:200]
        else:
            parts = re.split(r"\s{2,}", stripped, maxsplit=1)
            if len(parts) == 2 and parts[0] not in header:
                header[parts[0][:60]] = parts[1][:200]
    values: dict[str, Any] = {}
    notes = []
    area_text = header.get("Electrode surface area")
    if area_text:
        try:
            area = quantity_to_si(area_text.replace(",", "."), "area")
        except ValueError as exc:
            raise UnitError(file, str(exc), where="header 'Electrode surface area'") from None
        if abs(area - _DEFAULT_AREA_CM2 * 1e-4) < 1e-12:
            notes.append(
                "the area in the header is EC-Lab's default (0.001 cm²): taken as not given"
            )
        else:
            values["area"] = area
    rate, unit = header.get("dE/dt"), header.get("dE/dt unit")
    if rate and unit:
        try:
            values["scan_rate"] = quantity_to_si(f"{rate.replace(',', '.')} {unit}", "scan_rate")
        except ValueError as exc:
            raise UnitError(file, str(exc), where="header 'dE/dt unit'") from None
    reference = header.get("Reference electrode")
    if reference:
        values["reference"] = reference
    started = header.get("Acquisition started on")
    if started:
        for fmt_ in ("%m/%d/%Y %H:%M:%S.%f", "%m/%d/%Y %H:%M:%S", "%d/%m/%Y %H:%M:%S"):
            try:
                values["started"] = datetime.strptime(started, fmt_)
                break
            except ValueError:
                continue
    if header.get("Comments"):
        notes.append(header["Comments"])
    device = header.get("Device")
    metadata = Metadata(
        format=fmt,
        instrument=f"BioLogic {device}"[:80] if device else "BioLogic",
        technique=technique,
        header=header,
        notes="; ".join(notes),
    )
    return metadata.with_values("header", **values)


def _suffix_unit(name: str) -> tuple[str, str]:
    base, _, unit = name.rpartition("/")
    return (base, unit) if base else (name, "")


class MptReader:
    """Reads EC-Lab ``.mpt`` text exports (see the module docstring)."""

    name = "biologic-mpt"
    title = "BioLogic EC-Lab text export (.mpt)"
    extensions = (".mpt", ".txt")

    def sniff(self, head: bytes) -> bool:
        return head.startswith((b"EC-Lab ASCII FILE", b"BT-Lab ASCII FILE"))

    def read(self, data: bytes, file: str) -> Recording:
        text = decode_text(data, file)
        lines = text.splitlines()
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
                file, f"says {n_header} header lines but has {len(lines)} lines", where="line 2"
            )
        metadata = _header_metadata(lines[2 : n_header - 1], file, self.name)
        names = [c.strip() for c in lines[n_header - 1].rstrip("\t").split("\t")]
        body = lines[n_header:]
        while body and not body[-1].strip():
            body.pop()
        first = body[0].split("\t") if body else []
        decimal_comma = any("," in c for c in first) and not any("." in c for c in first)
        values = parse_rows(
            body,
            n_header + 1,
            file,
            delimiter="\t",
            columns=names,
            decimal_comma=decimal_comma,
            trailing_delimiter=True,
        )

        def col(candidates: tuple[str, ...], kind: str | None) -> np.ndarray | None:
            for j, name in enumerate(names):
                base, unit = _suffix_unit(name)
                if base in candidates:
                    if kind is None:
                        return values[:, j]
                    try:
                        return values[:, j] * scale_to_si(unit, kind)
                    except ValueError as exc:
                        raise UnitError(
                            file, str(exc), where=f"line {n_header}, column {name[:40]!r}"
                        ) from None
            return None

        t = col(("time",), "time")
        E = col(("Ewe", "<Ewe>"), "potential")
        current = col(("<I>", "I"), "current")
        missing = [w for w, c in (("time/s", t), ("Ewe/V", E), ("<I>/mA", current)) if c is None]
        if missing:
            raise MissingColumnError(
                file, f"has no column {', '.join(missing)}", where=f"line {n_header}"
            )
        assert t is not None
        assert E is not None
        assert current is not None
        applied = (
            col(("control",), "potential")
            if any(n.startswith("control/V") and n != "control/V/mA" for n in names)
            else None
        )
        cycle = col(("cycle number",), None)
        return Recording(
            t=t,
            E=E,
            I=current,
            metadata=metadata,
            E_applied=applied,
            scan=scan_numbers(cycle, first=0),
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
    19: ("control/V", "<f4"),
    20: ("control/mA", "<f4"),
    23: ("dQ/mA.h", "<f8"),
    24: ("cycle number", "<f8"),
    26: ("Rapp/Ohm", "<f4"),
    39: ("I Range", "<u2"),
    70: ("P/W", "<f4"),
    74: ("Energy/W.h", "<f8"),
    76: ("<I>/mA", "<f4"),
    77: ("<Ewe>/V", "<f4"),
    131: ("Ns", "<u2"),
}
"""Data column ids of the VMP data module: their name and numpy type."""

_OLD_HEADER = np.dtype(
    [("short", "S10"), ("long", "S25"), ("length", "<u4"), ("version", "<u4"), ("date", "S8")]
)
_NEW_HEADER = np.dtype(
    [
        ("short", "S10"),
        ("long", "S25"),
        ("max_length", "<u4"),
        ("length", "<u4"),
        ("version", "<u4"),
        ("unknown", "<u4"),
        ("date", "S8"),
    ]
)
_DATE = re.compile(rb"^\d\d/\d\d/\d\d$")


def _modules(data: bytes, file: str) -> list[tuple[str, int, bytes, str]]:
    """(short name, version, data, date) of each module."""
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
        for dtype in (_OLD_HEADER, _NEW_HEADER):
            if pos + dtype.itemsize > len(data):
                continue
            h = np.frombuffer(data, dtype, count=1, offset=pos)[0]
            if _DATE.match(bytes(h["date"])):
                header = h
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
        short = bytes(header["short"]).decode("ascii", "replace").strip()
        out.append(
            (
                short,
                int(header["version"]),
                data[pos : pos + length],
                bytes(header["date"]).decode("ascii"),
            )
        )
        pos += length
    return out


def _galvani_data(data: bytes) -> Any:
    """The data of an .mpr through galvani (GPL-3.0, an optional extra), or None."""
    try:
        from galvani import BioLogic  # type: ignore[import-not-found]  # noqa: PLC0415
    except ImportError:
        return None
    return BioLogic.MPRfile(io.BytesIO(data)).data


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
        found = [m for m in modules if m[0] == "VMP data"]
        if not found:
            raise MissingColumnError(file, "has no 'VMP data' module; expected EC-Lab data")
        _, version, body, date = found[0]
        if len(body) < 5:
            raise FileFormatError(file, "the data module is truncated", where="VMP data")
        n_points = int.from_bytes(body[0:4], "little")
        n_columns = body[4]
        ids = (
            np.frombuffer(body, "<u2", count=n_columns, offset=5).tolist()
            if len(body) >= 5 + 2 * n_columns
            else None
        )
        if ids is None:
            raise FileFormatError(file, "the column list is truncated", where="VMP data")
        offset = {2: 0x195, 3: 0x196}.get(version)
        if offset is None:
            raise FileFormatError(
                file,
                f"data module version {version} is not known; accepted: 2, 3 "
                "(export an .mpt from EC-Lab instead)",
                where="VMP data",
            )
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
                else:
                    fields.append(MPR_COLUMNS[i])
            dtype = np.dtype(fields)
            need = offset + n_points * dtype.itemsize
            if need > len(body):
                raise FileFormatError(
                    file,
                    f"holds {max(0, (len(body) - offset) // dtype.itemsize)} of its "
                    f"{n_points} points (truncated)",
                    where="VMP data",
                )
            records = np.frombuffer(body, dtype, count=n_points, offset=offset)
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
        E = col(("Ewe/V", "<Ewe>/V"), "potential")
        current = col(("<I>/mA", "I/mA"), "current")
        missing = [w for w, c in (("time/s", t), ("Ewe/V", E), ("<I>/mA", current)) if c is None]
        if missing:
            raise MissingColumnError(file, f"has no column {', '.join(missing)}", where="VMP data")
        assert t is not None
        assert E is not None
        assert current is not None
        cycle = col(("cycle number",), None)
        started = None
        try:
            started = datetime.strptime(date, "%m/%d/%y")
        except ValueError:
            started = None
        metadata = Metadata(format=self.name, instrument="BioLogic (EC-Lab)").with_values(
            "header", started=started
        )
        return Recording(
            t=t,
            E=E,
            I=current,
            metadata=metadata,
            E_applied=col(("control/V",), "potential"),
            scan=scan_numbers(cycle, first=0),
        )


_ = number  # the header numbers of .mpt go through quantity_to_si
