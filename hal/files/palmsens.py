"""PalmSens: PSTrace CSV exports and ``.pssession`` files.

**PSTrace CSV** (PSTrace 5.x: UTF-16 LE with a byte-order mark, CRLF lines, the last
without one)::

    Date and time:,2024-11-07 14:56:00
    Notes:
    <the note, if any>,,,,,,,,
    Cyclic Voltammetry: CV i vs E Scan 1,,Cyclic Voltammetry: CV i vs E Scan 2,,...
    Date and time measurement:,2024-11-07 14:48:29,Date and time measurement:,...,
    V,µA,V,µA,...
    0.249961853027344,7.15255737304688E-06,0.249961853027344,7.15255737304688E-07,...

``Date and time:`` is when the file was exported, ``Date and time measurement:`` when
each curve was measured (the start used). The note, when there is one, is on the line
after ``Notes:``. Each curve is a pair of columns (x, y) with its units on the units
line; curves of different lengths leave empty cells. Curves of a potential and a
current (``V,µA``) are read, in order, as the file's scans (their titles carry the
scan number); the title names the technique (``Linear Sweep Voltammetry: LSV i vs
E``). The export has no time column and no scan rate: times are made from ``--meta
scan_rate=`` (see :func:`hal.files.analysis.generated_time`) and the run says so.
Amperometry (``s,µA``: no potential), chronopotentiometry (``s,V``: no current) and
impedance exports (``File date:``, ``Measurement:,Impedance Spectroscopy``) are
refused in one line.

**.pssession** is UTF-16 JSON (a stray byte-order mark after the closing brace):
``Measurements[]``, each with a ``Method`` text of ``KEY=VALUE`` lines (``METHOD_ID``,
``SCAN_RATE``, ``E_STEP``, ``FREQ`` for square wave, ``N_SCANS``, ``AREA``), a
``DataSet`` of data arrays (``DataArrayTime``, ``DataArrayPotentials``,
``DataArrayCurrents`` and others, each with its ``Unit`` and ``DataValues[].V``) and
``Curves[]``. What real sessions showed:

- PSTrace 5.0 to 5.8 write the keys in lower case (``measurements``), 5.9 on in
  PascalCase; the oldest keep the data only in the curves (an empty ``DataSet``).
- A unit's prefix is only in its type: ``{"Type": "PalmSens.Units.MicroAmpere",
  "S": "A"}`` holds microamperes.
- A CV of several scans has one potential, current and charge array per scan
  (``scan2channel1``; ``scan2`` before 5.9), per channel on a multi-channel
  instrument (the first channel is read, the notes say so), and one time array
  covering the first scan only, with its ``IntervalTime``: the times of the others
  follow at that interval.
- Amperometry (``METHOD_ID=ad``) holds the applied potential (``potential``) and the
  measured one (``Measured WE potential``).
- ``TimeStamp`` is the measurement's start in .NET ticks (100 ns from 0001-01-01, the
  PC's local time).
- A session holds several measurements (a DPV, a CV, an EIS...): the first that holds
  voltammetry or amperometry is read and the notes name the others; a session of
  impedance or open-circuit measurements only is refused.

PalmSens' own SDK is a .NET wrapper (pythonnet): far too heavy to read two text
formats, so these readers are Galvana's own.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any, Final

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


_CSV_TECHNIQUES: Final = (
    ("Cyclic Voltammetry", "cv"),
    ("Linear Sweep Voltammetry", "lsv"),
    ("Square Wave Voltammetry", "swv"),
    ("Differential Pulse Voltammetry", "dpv"),
    ("Chronoamperometry", "ca"),
    ("Chronopotentiometry", "cp"),
)


class PsTraceCsvReader:
    """Reads PSTrace CSV exports (see the module docstring)."""

    name = "pstrace-csv"
    title = "PalmSens PSTrace CSV export"
    extensions = (".csv",)

    def sniff(self, head: bytes) -> bool:
        text = head_text(head)
        return (
            "Date and time measurement:" in text
            or (text.startswith("Date and time:") and "\n" in text)
            or (text.startswith("File date:") and "\nMeasurement:," in text)
        )

    def read(self, data: bytes, file: str) -> Recording:
        text = decode_text(data, file)
        lines = text.splitlines()
        for k, line in enumerate(lines[:10]):
            if line.startswith("Measurement:,") and "Impedance" in line:
                raise FileFormatError(
                    file,
                    "holds an impedance spectrum (EIS); Galvana imports voltammetry",
                    where=f"line {k + 1}",
                )
        units_at = None
        for k, line in enumerate(lines[:50]):
            if line.startswith("Date and time measurement:"):
                units_at = k + 1
                break
        if units_at is None or units_at >= len(lines) or units_at < 2:
            raise FileFormatError(
                file,
                "has no 'Date and time measurement:' line followed by a units line "
                "(V,µA,...); expected a PSTrace CSV export",
            )
        header: dict[str, str] = {}
        notes: list[str] = []
        in_notes = False
        for line in lines[: units_at - 2]:
            key, _, value = line.partition(",")
            if not line.strip(", "):
                continue
            if key.strip().endswith(":"):
                name = key.strip().rstrip(":")
                header[name[:60]] = value.strip(", ")[:500]
                in_notes = name == "Notes"
                if in_notes and value.strip(", "):
                    notes.append(value.strip(", "))
            elif in_notes:
                # PSTrace writes a note on the lines after "Notes:".
                notes.append(line.strip(", "))
        if notes:
            header["Notes"] = " ".join(notes)[:500]
        units = [u.strip() for u in lines[units_at].split(",")]
        title_line = lines[units_at - 2]
        titles = title_line.split(",")
        dates = lines[units_at - 1].split(",")
        if len(units) % 2:
            units.append("")
        kinds = [_kind(u) if u else None for u in units]
        pairs = [(j, kinds[j], kinds[j + 1]) for j in range(0, len(units), 2)]
        wanted = [j for j, x, y in pairs if x == "potential" and y == "current"]
        if not wanted:
            if any(x == "time" and y == "current" for _, x, y in pairs):
                what = (
                    "amperometry curves (s,µA) without their potential; export the "
                    ".pssession, which has it"
                )
            elif any(x == "time" and y == "potential" for _, x, y in pairs):
                what = "a chronopotentiometry curve (s,V) without its current"
            else:
                what = "no curve of potential and current (units V,µA)"
            raise MissingColumnError(
                file,
                f"holds {what}; Galvana imports voltammetry from PSTrace CSV",
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
        values = parse_rows(
            lines[body_start:body_end],
            body_start + 1,
            file,
            delimiter=",",
            columns=units,
            allow_empty=True,
        )
        Es, Is, scans = [], [], []
        for number, j in enumerate(wanted, start=1):
            x, y = values[:, j], values[:, j + 1]
            keep = np.isfinite(x) & np.isfinite(y)
            try:
                Es.append(x[keep] * scale_to_si(units[j], "potential"))
                Is.append(y[keep] * scale_to_si(units[j + 1], "current"))
            except ValueError as exc:
                raise UnitError(file, str(exc), where=f"line {units_at + 1}") from None
            title = titles[j] if j < len(titles) else ""
            match = _SCAN.search(title)
            scans.append(np.full(len(Es[-1]), int(match.group(1)) if match else number, np.int32))
        # The measurement's own start; "Date and time:" at the top is when it was exported.
        started = _date(dates[1]) if len(dates) > 1 else None
        if started is None and "Date and time" in header:
            started = _date(header["Date and time"])
        technique = next((t for name, t in _CSV_TECHNIQUES if name in title_line), None)
        E = np.concatenate(Es)
        metadata = Metadata(
            format=self.name,
            instrument="PalmSens (PSTrace)",
            notes=" ".join(notes),
            header=header,
            sources={"instrument": "header"},
        ).with_values("header", technique=technique, started=started)
        return Recording(
            t=np.full(len(E), np.nan),
            E=E,
            I=np.concatenate(Is),
            metadata=metadata,
            scan=np.concatenate(scans),
            time_generated=True,
        )


_TECHNIQUES: Final[dict[str, str]] = {
    "cv": "cv",
    "lsv": "lsv",
    "swv": "swv",
    "dpv": "dpv",
    "npv": "npv",
    "ad": "ca",  # amperometric detection: a potential held, the current recorded
    "fam": "ca",  # fast amperometry
    "ma": "ca",  # multistep amperometry
    "pot": "cp",  # chronopotentiometry
}
"""PalmSens' METHOD_ID and Galvana's name of the technique."""

_REFUSED: Final[dict[str, str]] = {
    "eis": "an impedance spectrum (EIS)",
    "gis": "an impedance spectrum (galvanostatic EIS)",
    "ocp": "an open-circuit potential recording, without current",
}

# PalmSens writes the base unit in "S" and the prefix only in the unit's type name:
# {"Type": "PalmSens.Units.MicroAmpere", "S": "A"} holds microamperes.
_UNIT_TYPES: Final[dict[str, tuple[str, float]]] = {
    "Volt": ("potential", 1.0),
    "MilliVolt": ("potential", 1e-3),
    "Ampere": ("current", 1.0),
    "MilliAmpere": ("current", 1e-3),
    "MicroAmpere": ("current", 1e-6),
    "NanoAmpere": ("current", 1e-9),
    "PicoAmpere": ("current", 1e-12),
    "Time": ("time", 1.0),
}
_ROLES: Final[dict[str, str]] = {
    "DataArrayTime": "time",
    "DataArrayPotentials": "potential",
    "DataArrayCurrents": "current",
}
_SCAN_CHANNEL: Final = re.compile(r"^scan(\d+)(?:channel(\d+))?$", re.IGNORECASE)
_TICKS_EPOCH: Final = datetime(1, 1, 1)


def _lower_keys(obj: Any, depth: int = 0) -> Any:
    """``obj`` with every key in lower case: PSTrace up to 5.8 writes them so
    ("measurements"), later versions in PascalCase ("Measurements"). The points of a
    data array (``DataValues``, a list of ``{"V": x}``) are left as they are: they are
    most of the file, and :func:`_values` reads either spelling."""
    if depth > 64:
        raise RecursionError
    if isinstance(obj, dict):
        return {
            k.lower(): v if k.lower() == "datavalues" else _lower_keys(v, depth + 1)
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [_lower_keys(v, depth + 1) for v in obj]
    return obj


def _scale(array: dict[str, Any], role: str, file: str) -> float:
    unit = array.get("unit")
    unit = unit if isinstance(unit, dict) else {}
    kind = str(unit.get("type", "")).rsplit(".", 1)[-1]
    if kind in _UNIT_TYPES and _UNIT_TYPES[kind][0] == role:
        return _UNIT_TYPES[kind][1]
    try:
        return scale_to_si(str(unit.get("s", "")), role)
    except ValueError as exc:
        raise UnitError(
            file, str(exc), where=f"data array {array.get('description', '?')!s:.30}"
        ) from None


def _values(array: dict[str, Any], file: str, role: str) -> np.ndarray:
    raw = array.get("datavalues")
    if not isinstance(raw, list):
        raise FileFormatError(file, "a data array has no DataValues list", where=f"{role} array")
    try:
        values = np.array([float(v["V"] if "V" in v else v["v"]) for v in raw], dtype=np.float64)
    except (TypeError, KeyError, ValueError):
        raise FileFormatError(
            file, "a data value is not a number under 'V'", where=f"{role} array"
        ) from None
    return values * _scale(array, role, file)


def _role(array: Any) -> str | None:
    if not isinstance(array, dict):
        return None
    kind = str(array.get("type", "")).rsplit(".", 1)[-1]
    if kind in _ROLES:
        return _ROLES[kind]
    description = str(array.get("description", "")).strip().lower()
    return description if description in ("time", "potential", "current") else None


def _method(text: str) -> dict[str, str]:
    header: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            header[key.strip()[:60]] = value.strip()[:200]
    return header


def _number(header: dict[str, str], key: str, file: str) -> float | None:
    if key not in header:
        return None
    try:
        value = float(header[key])
    except ValueError:
        raise FileFormatError(file, "expected a number", where=f"Method {key}") from None
    return value if np.isfinite(value) else None


class _Curves:
    """The potential and current of one measurement, scan by scan."""

    def __init__(self) -> None:
        self.E: list[np.ndarray] = []
        self.I: list[np.ndarray] = []
        self.scans: list[int] = []
        self.time: np.ndarray | None = None
        self.interval: float | None = None
        self.E_applied: np.ndarray | None = None
        self.notes: list[str] = []


def _from_dataset(arrays: list[Any], file: str) -> _Curves:
    """Scans from the DataSet: one potential and one current array per scan
    (``scan2channel1``), or a single pair (``potential``, ``current``), and the time."""
    out = _Curves()
    potentials = [a for a in arrays if _role(a) == "potential"]
    currents = [a for a in arrays if _role(a) == "current"]
    times = [a for a in arrays if _role(a) == "time"]
    if times:
        out.time = _values(times[0], file, "time")
        interval = times[0].get("intervaltime")
        out.interval = float(interval) if isinstance(interval, int | float) else None
    by_description = {str(a.get("description", "")).lower(): a for a in currents}
    scanned = [(a, _SCAN_CHANNEL.match(str(a.get("description", "")))) for a in potentials]
    if scanned and all(m is not None for _, m in scanned):
        channels = sorted({int(m.group(2) or 1) for _, m in scanned if m is not None})
        for array, match in scanned:
            assert match is not None
            if int(match.group(2) or 1) != channels[0]:
                continue
            current = by_description.get(str(array.get("description", "")).lower())
            if current is None:
                raise MissingColumnError(
                    file,
                    f"has no current array for {array.get('description')!s:.30}",
                    where="DataSet",
                )
            out.E.append(_values(array, file, "potential"))
            out.I.append(_values(current, file, "current"))
            out.scans.append(int(match.group(1)))
        if len(channels) > 1:
            out.notes.append(
                f"the session holds channels {', '.join(map(str, channels))}; channel "
                f"{channels[0]} was read"
            )
        return out
    if not potentials or not currents:
        return out
    # One curve: the applied potential ("potential") and, in amperometry, the measured
    # one ("Measured WE potential").
    applied = next(
        (a for a in potentials if str(a.get("description", "")).lower() == "potential"),
        potentials[0],
    )
    measured = next((a for a in potentials if a is not applied), None)
    out.E.append(_values(measured if measured is not None else applied, file, "potential"))
    if measured is not None:
        out.E_applied = _values(applied, file, "potential")
    out.I.append(_values(currents[0], file, "current"))
    out.scans.append(1)
    return out


def _from_curves(curves: list[Any], file: str) -> _Curves:
    """Scans from the plotted curves (PSTrace 5.0 to 5.8 sessions whose DataSet is
    empty): each curve of potential (x) and current (y)."""
    out = _Curves()
    for number, curve in enumerate(c for c in curves if isinstance(c, dict)):
        x, y = curve.get("xaxisdataarray"), curve.get("yaxisdataarray")
        if not isinstance(x, dict) or not isinstance(y, dict):
            continue
        x_kind = str((x.get("unit") or {}).get("type", "")).rsplit(".", 1)[-1]
        y_kind = str((y.get("unit") or {}).get("type", "")).rsplit(".", 1)[-1]
        if _UNIT_TYPES.get(x_kind, ("",))[0] != "potential":
            continue
        if _UNIT_TYPES.get(y_kind, ("",))[0] != "current":
            continue
        out.E.append(_values(x, file, "potential"))
        out.I.append(_values(y, file, "current"))
        match = _SCAN.search(str(curve.get("title", "")))
        out.scans.append(int(match.group(1)) if match else number + 1)
    return out


class PsSessionReader:
    """Reads PalmSens ``.pssession`` files (see the module docstring)."""

    name = "pssession"
    title = "PalmSens .pssession"
    extensions = (".pssession",)

    def sniff(self, head: bytes) -> bool:
        if not looks_like_utf16(head):
            return False
        text = head[: len(head) - len(head) % 2].decode("utf-16", errors="ignore")
        text = text.lstrip("\ufeff \r\n")
        return text.startswith("{") and (
            "palmsens.datafiles.sessionfile" in text[:200].lower() or "measurements" in text.lower()
        )

    def read(self, data: bytes, file: str) -> Recording:
        text = decode_text(data, file)
        # PSTrace ends the JSON with stray characters after the last brace.
        end = text.rfind("}")
        try:
            doc = _lower_keys(json.loads(text[: end + 1]))
        except (json.JSONDecodeError, RecursionError) as exc:
            line = getattr(exc, "lineno", None)
            raise FileFormatError(
                file,
                "is not valid JSON; expected a .pssession (JSON in UTF-16)",
                where=f"line {line}" if line else "",
            ) from None
        measurements = doc.get("measurements") if isinstance(doc, dict) else None
        if not isinstance(measurements, list) or not measurements:
            raise FileFormatError(file, "holds no Measurements", where="Measurements")
        titles = [
            str(m.get("title", "?"))[:40] if isinstance(m, dict) else "?" for m in measurements
        ]
        refused: list[str] = []
        for k, m in enumerate(measurements):
            if not isinstance(m, dict):
                raise FileFormatError(
                    file, "a measurement is not an object", where=f"Measurements[{k}]"
                )
            header = _method(str(m.get("method", "")))
            method_id = header.get("METHOD_ID", "").lower()
            if method_id in _REFUSED:
                refused.append(_REFUSED[method_id])
                continue
            dataset = m.get("dataset")
            arrays = dataset.get("values") if isinstance(dataset, dict) else None
            curves = _from_dataset(arrays, file) if isinstance(arrays, list) else _Curves()
            if not curves.E and isinstance(m.get("curves"), list):
                curves = _from_curves(m["curves"], file)
            if not curves.E:
                refused.append(f"a {titles[k]} measurement without potential and current")
                continue
            others = [t for j, t in enumerate(titles) if j != k]
            return self._recording(m, k, header, method_id, curves, others, file)
        raise FileFormatError(
            file,
            f"holds {'; '.join(sorted(set(refused)))}; Galvana imports voltammetry and amperometry",
            where="Measurements",
        )

    def _recording(  # noqa: PLR0917 - one measurement's parts, read above
        self,
        m: dict[str, Any],
        k: int,
        header: dict[str, str],
        method_id: str,
        curves: _Curves,
        others: list[str],
        file: str,
    ) -> Recording:
        where = f"Measurements[{k}].DataSet"
        for E, current in zip(curves.E, curves.I, strict=True):
            if len(E) != len(current):
                raise FileFormatError(file, "its data arrays differ in length", where=where)
        E = np.concatenate(curves.E)
        current = np.concatenate(curves.I)
        n = len(E)
        scan = np.repeat(np.array(curves.scans, dtype=np.int32), [len(e) for e in curves.E]).astype(
            np.int32
        )
        notes = list(curves.notes)
        technique = _TECHNIQUES.get(method_id)
        if technique is None and "cyclic" in str(m.get("title", "")).lower():
            technique = "cv"
        scan_rate = _number(header, "SCAN_RATE", file)
        E_step = _number(header, "E_STEP", file)
        frequency = _number(header, "FREQ", file) or _number(header, "FREQUENCY", file)
        if technique == "swv" and scan_rate is None and frequency and E_step:
            scan_rate = E_step * frequency  # one step per square-wave period
        t = np.full(n, np.nan)
        time_note = ""
        if curves.time is not None and len(curves.time) == n:
            t = curves.time
        elif curves.time is not None and len(curves.time) > 1:
            # Multi-scan sessions keep one scan's times: the others follow at its interval.
            dt = curves.interval or float(np.median(np.diff(curves.time)))
            t = float(curves.time[0]) + dt * np.arange(n, dtype=np.float64)
            time_note = (
                f"the file's time array covers {len(curves.time)} of {n} samples: times "
                f"made at its interval of {dt * 1e3:.4g} ms"
            )
        area_cm2 = _number(header, "AREA", file)
        started = None
        ticks = m.get("timestamp")
        if isinstance(ticks, int) and ticks > 0:
            # .NET ticks (100 ns since 0001-01-01), the PC's local time.
            started = _TICKS_EPOCH + timedelta(microseconds=ticks // 10)
        if others:
            notes.append(
                f"measurement {k + 1} of {len(others) + 1} was read ({m.get('title', '?')!s:.40});"
                f" the others: {', '.join(others)}"
            )
        serial = m.get("deviceserial")
        n_scans = _number(header, "N_SCANS", file)
        metadata = Metadata(
            format=self.name,
            instrument=f"PalmSens {serial}"[:80]
            if isinstance(serial, str) and serial
            else "PalmSens",
            notes="; ".join(notes),
            header=header,
            sources={"instrument": "header"},
        ).with_values(
            "header",
            technique=technique,
            scan_rate=scan_rate,
            E_step=E_step,
            area=area_cm2 * 1e-4 if area_cm2 else None,
            started=started,
            scans_in_programme=int(n_scans) if technique == "cv" and n_scans else None,
        )
        return Recording(
            t=t,
            E=E,
            I=current,
            metadata=metadata,
            E_applied=curves.E_applied,
            scan=scan,
            time_generated=not np.all(np.isfinite(t)),
            time_note=time_note,
        )
