"""PalmSens: PSTrace CSV exports and ``.pssession`` files.

**PSTrace CSV** (UTF-16 with a byte-order mark, CRLF lines)::

    Date and time:,2024-03-11 13:15:24
    Notes:,
    ,,,
    Cyclic Voltammetry: CV i vs E Scan 1,,Cyclic Voltammetry: CV i vs E Scan 2,
    Date and time measurement:,2024-03-11 13:15:24,Date and time measurement:,2024-03-11 13:15:24
    V,µA,V,µA
    -0.500,1.234,-0.500,1.198
    ...

Each curve is a pair of columns (x, y) with its units on the units line; curves of
different lengths leave empty cells. Curves whose units are a potential and a
current (``V,µA``) are read, in order, as the file's scans (their titles carry the
scan number); other pairs (``V,V`` cell potentials, ``s,µA``) are skipped, except
``s,µA`` when the file has no ``V,µA`` curve (chronoamperometry). The export has no
time column and no scan rate: times are made from ``--meta scan_rate=`` (see
:func:`hal.files.analysis.generated_time`) and the run says so.

**.pssession** is UTF-16 JSON: ``Measurements[]``, each with a ``Method`` text of
``KEY=VALUE`` lines (``SCAN_RATE``, ``E_STEP``, ``E_BEGIN``, ``E_VTX1``,
``E_VTX2``, ``N_SCANS``), a ``DataSet`` of data arrays (``time``, ``potential``,
``current``, each with its ``Unit.S`` and ``DataValues[].V``) and ``Curves[]`` (one
per scan). The time base is the file's own.

PalmSens' own SDK is a .NET wrapper (pythonnet): far too heavy to read two text
formats, so these readers are Galvana's own.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import numpy as np

from hal.files._text import decode_text, head_text, looks_like_utf16, parse_rows
from hal.files.errors import FileFormatError, MissingColumnError, UnitError
from hal.files.recording import Metadata, Recording
from hal.files.units import scale_to_si

__all__ = ["PsSessionReader", "PsTraceCsvReader"]

_SCAN = re.compile(r"[Ss]can\s*(\d+)")
_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%d-%m-%Y %H:%M:%S", "%m/%d/%Y %H:%M:%S", "%Y-%m-%d")


def _date(text: str) -> datetime | None:
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
    return None


def _kind(unit: str) -> str | None:
    for kind in ("potential", "current", "time"):
        try:
            scale_to_si(unit, kind)
        except ValueError:
            continue
        return kind
    return None


class PsTraceCsvReader:
    """Reads PSTrace CSV exports (see the module docstring)."""

    name = "pstrace-csv"
    title = "PalmSens PSTrace CSV export"
    extensions = (".csv",)

    def sniff(self, head: bytes) -> bool:
        text = head_text(head)
        return "Date and time measurement:" in text or (
            text.startswith("Date and time:") and "\n" in text
        )

    def read(self, data: bytes, file: str) -> Recording:
        text = decode_text(data, file)
        lines = text.splitlines()
        units_at = None
        for k, line in enumerate(lines[:50]):
            if line.startswith("Date and time measurement:"):
                units_at = k + 1
                break
        if units_at is None or units_at >= len(lines):
            raise FileFormatError(
                file,
                "has no 'Date and time measurement:' line followed by a units line "
                "(V,µA,...); expected a PSTrace CSV export",
            )
        header: dict[str, str] = {}
        notes = ""
        started = None
        for line in lines[: max(0, units_at - 3)]:
            key, _, value = line.partition(",")
            key = key.strip().rstrip(":")
            if key:
                header[key[:60]] = value.strip(", ")[:500]
            if key == "Notes":
                notes = value.strip(", ")
            if key == "Date and time":
                started = _date(value.strip(", "))
        units = [u.strip() for u in lines[units_at].split(",")]
        titles = lines[units_at - 2].split(",") if units_at >= 2 else []
        dates = lines[units_at - 1].split(",")
        if len(units) % 2:
            units.append("")
        kinds = [_kind(u) if u else None for u in units]
        pairs = [(j, kinds[j], kinds[j + 1]) for j in range(0, len(units), 2)]
        wanted = [j for j, x, y in pairs if x == "potential" and y == "current"]
        chrono = False
        if not wanted:
            wanted = [j for j, x, y in pairs if x == "time" and y == "current"]
            chrono = bool(wanted)
        if not wanted:
            raise MissingColumnError(
                file,
                "has no curve of potential and current (units V,µA) or time and "
                "current (s,µA); expected a voltammetry or amperometry export",
                where=f"line {units_at + 1}",
            )
        body_start = units_at + 1
        body_end = body_start
        while (
            body_end < len(lines)
            and lines[body_end].strip(", \t")
            and (
                lines[body_end].lstrip(" -+")[:1].isdigit()
                or lines[body_end].startswith(",")
                or lines[body_end].lstrip(" -+")[:1] == "."
            )
        ):
            body_end += 1
        names = [f"{u}" for u in units]
        values = parse_rows(
            lines[body_start:body_end],
            body_start + 1,
            file,
            delimiter=",",
            columns=names,
            allow_empty=True,
        )
        ts, Es, Is, scans = [], [], [], []
        for number, j in enumerate(wanted, start=1):
            x, y = values[:, j], values[:, j + 1]
            keep = np.isfinite(x) & np.isfinite(y)
            try:
                xs = x[keep] * scale_to_si(units[j], "time" if chrono else "potential")
                ys = y[keep] * scale_to_si(units[j + 1], "current")
            except ValueError as exc:
                raise UnitError(file, str(exc), where=f"line {units_at + 1}") from None
            title = titles[j] if j < len(titles) else ""
            match = _SCAN.search(title)
            scans.append(np.full(len(xs), int(match.group(1)) if match else number, np.int32))
            if chrono:
                ts.append(xs)
                Es.append(np.full(len(xs), np.nan))
            else:
                Es.append(xs)
            Is.append(ys)
        if started is None and len(dates) > 1:
            started = _date(dates[1])
        technique = "ca" if chrono else ("cv" if "Cyclic" in lines[units_at - 2] else None)
        if not chrono and technique is None and "Linear" in lines[units_at - 2]:
            technique = "lsv"
        E = np.concatenate(Es)
        metadata = Metadata(
            format=self.name,
            instrument="PalmSens (PSTrace)",
            technique=technique,
            started=started,
            notes=notes,
            header=header,
            sources={"instrument": "header", "technique": "header"},
        )
        if chrono:
            raise MissingColumnError(
                file,
                "holds amperometry curves without their potential; Galvana imports "
                "voltammetry from PSTrace CSV (export the .pssession for amperometry)",
                where=f"line {units_at + 1}",
            )
        return Recording(
            t=np.full(len(E), np.nan),
            E=E,
            I=np.concatenate(Is),
            metadata=metadata,
            scan=np.concatenate(scans),
            time_generated=True,
        )


_METHOD_KEYS = {
    "SCAN_RATE": ("scan_rate", "scan_rate"),
    "E_STEP": ("E_step", "potential"),
}


def _values(array: dict[str, Any], file: str, kind: str) -> np.ndarray:
    unit = array.get("Unit") or {}
    symbol = unit.get("S", "") if isinstance(unit, dict) else ""
    try:
        scale = scale_to_si(str(symbol), kind)
    except ValueError as exc:
        raise UnitError(
            file, str(exc), where=f"data array {array.get('Description', '?')!s:.30}"
        ) from None
    raw = array.get("DataValues")
    if not isinstance(raw, list):
        raise FileFormatError(file, "a data array has no DataValues list", where=f"{kind} array")
    try:
        values = np.array([float(v["V"]) for v in raw], dtype=np.float64)
    except (TypeError, KeyError, ValueError):
        raise FileFormatError(
            file, "a data value is not a number under 'V'", where=f"{kind} array"
        ) from None
    return values * scale


def _role(array: dict[str, Any]) -> str | None:
    description = str(array.get("Description", "")).strip().lower()
    kind = str(array.get("Type", ""))
    if description in ("time", "potential", "current"):
        return description
    for role, marker in (
        ("time", "DataArrayTime"),
        ("potential", "DataArrayPotentials"),
        ("current", "DataArrayCurrents"),
    ):
        if kind.endswith(marker):
            return role
    return None


class PsSessionReader:
    """Reads PalmSens ``.pssession`` files (see the module docstring)."""

    name = "pssession"
    title = "PalmSens .pssession"
    extensions = (".pssession",)

    def sniff(self, head: bytes) -> bool:
        if not looks_like_utf16(head):
            return False
        text = head[: len(head) - len(head) % 2].decode("utf-16", errors="ignore")
        return text.lstrip("\ufeff \r\n").startswith("{") and "Measurements" in text[:4096]

    def read(self, data: bytes, file: str) -> Recording:
        text = decode_text(data, file)
        # PSTrace ends the JSON with stray characters after the last brace.
        end = text.rfind("}")
        try:
            doc = json.loads(text[: end + 1])
        except (json.JSONDecodeError, RecursionError) as exc:
            line = getattr(exc, "lineno", None)
            raise FileFormatError(
                file,
                "is not valid JSON; expected a .pssession (JSON in UTF-16)",
                where=f"line {line}" if line else "",
            ) from None
        measurements = doc.get("Measurements") if isinstance(doc, dict) else None
        if not isinstance(measurements, list) or not measurements:
            raise FileFormatError(file, "holds no Measurements", where="Measurements")
        m = measurements[0]
        if not isinstance(m, dict):
            raise FileFormatError(file, "a measurement is not an object", where="Measurements[0]")
        dataset = m.get("DataSet")
        arrays = dataset.get("Values") if isinstance(dataset, dict) else None
        if not isinstance(arrays, list):
            raise MissingColumnError(file, "has no DataSet.Values", where="Measurements[0]")
        found: dict[str, np.ndarray] = {}
        for array in arrays:
            if isinstance(array, dict):
                role = _role(array)
                if role is not None and role not in found:
                    found[role] = _values(array, file, role)
        missing = [r for r in ("potential", "current") if r not in found]
        if missing:
            raise MissingColumnError(
                file, f"has no {' or '.join(missing)} data array", where="Measurements[0].DataSet"
            )
        n = len(found["current"])
        if len(found["potential"]) != n or ("time" in found and len(found["time"]) != n):
            raise FileFormatError(
                file, "its data arrays differ in length", where="Measurements[0].DataSet"
            )
        method = str(m.get("Method", ""))
        header: dict[str, str] = {}
        for line in method.splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() and not key.startswith("#"):
                header[key.strip()[:60]] = value.strip()[:200]
        values: dict[str, float] = {}
        for key, (field, _kind) in _METHOD_KEYS.items():
            if key in header:
                try:
                    values[field] = float(header[key])  # PalmSens methods are in V and V/s
                except ValueError:
                    raise FileFormatError(
                        file, "expected a number", where=f"Method {key}"
                    ) from None
        technique = None
        method_id = header.get("METHOD_ID", "").lower()
        title = str(m.get("Title", ""))
        if method_id in ("cv", "lsv", "ca", "swv"):
            technique = method_id
        elif "Cyclic" in title:
            technique = "cv"
        scan = None
        curves = m.get("Curves")
        if isinstance(curves, list) and curves:
            lengths = []
            for c in curves:
                y = c.get("YAxisDataArray") if isinstance(c, dict) else None
                dv = y.get("DataValues") if isinstance(y, dict) else None
                lengths.append(len(dv) if isinstance(dv, list) else 0)
            if sum(lengths) == n and all(lengths):
                scan = np.repeat(np.arange(1, len(lengths) + 1, dtype=np.int32), lengths)
        notes = ""
        if len(measurements) > 1:
            notes = f"the session holds {len(measurements)} measurements; the first was read"
        serial = m.get("DeviceSerial")
        metadata = Metadata(
            format=self.name,
            instrument=f"PalmSens {serial}"[:80] if isinstance(serial, str) else "PalmSens",
            technique=technique,
            scan_rate=values.get("scan_rate"),
            E_step=values.get("E_step"),
            notes=notes,
            header=header,
            sources={k: "header" for k in ("instrument", "technique", "scan_rate", "E_step")},
        )
        has_time = "time" in found
        return Recording(
            t=found["time"] if has_time else np.full(n, np.nan),
            E=found["potential"],
            I=found["current"],
            metadata=metadata,
            scan=scan,
            time_generated=not has_time,
        )
