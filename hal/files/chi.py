"""CH Instruments: the text export of the CHI software (``.txt``).

A date line, the technique, then ``key: value`` lines and the parameters as
``Name (unit) = value``, an optional ``Results:`` block, and the data under a line
naming the columns with their units::

    Feb. 8, 2019   13:05:12
    Cyclic Voltammetry
    File: C:\\CHI\\cv1.bin
    Data Source: Experiment
    Instrument Model:  CHI660E
    Header:
    Note:

    Init E (V) = 0.5
    High E (V) = 0.5
    Low E (V) = -0.2
    Init P/N = N
    Scan Rate (V/s) = 0.1
    Segment = 2
    Sample Interval (V) = 0.001
    Quiet Time (sec) = 2
    Sensitivity (A/V) = 1e-5

    Potential/V, Current/A

    0.500, 1.234e-7
    ...

CV data have ``Potential/V, Current/A``; amperometry ``Time/sec, Current/A`` (no
potential column: the steps' potentials come from the header). The CHI software
plots and, by default, saves currents with the cathodic-positive ("US") convention:
``--meta current_sign=-1`` turns such a file to Galvana's anodic-positive one. The
reader cannot tell from the file, so it does not guess; it says so in the notes. No
maintained library reads these files; the format is plain enough to read here.
"""

from __future__ import annotations

import re
from datetime import datetime

import numpy as np

from hal.files._text import decode_text, number, parse_rows
from hal.files.errors import FileFormatError, MissingColumnError, UnitError
from hal.files.recording import Metadata, Recording
from hal.files.units import scale_to_si

__all__ = ["ChiReader"]

_PARAM = re.compile(r"^(.*?)\s*(?:\(([^()]*)\))?\s*=\s*(.*)$")
_TECHNIQUE = {
    "Cyclic Voltammetry": "cv",
    "Linear Sweep Voltammetry": "lsv",
    "Chronoamperometry": "ca",
    "Square Wave Voltammetry": "swv",
}
_UNIT_ALIASES = {"sec": "s"}


class ChiReader:
    """Reads CH Instruments text exports (see the module docstring)."""

    name = "chi"
    title = "CH Instruments text export"
    extensions = (".txt", ".csv")

    def sniff(self, head: bytes) -> bool:
        text = head.decode("cp1252", errors="replace")
        return ("Instrument Model:" in text[:2000] and "CHI" in text[:2000]) or (
            re.search(r"^(Potential/V|Time/sec), Current/A", text, re.M) is not None
        )

    def read(self, data: bytes, file: str) -> Recording:
        text = decode_text(data, file)
        lines = text.splitlines()
        header: dict[str, str] = {}
        params: dict[str, tuple[str, str]] = {}
        technique = None
        data_at = None
        for k, line in enumerate(lines):
            stripped = line.strip()
            if re.match(r"^[A-Za-z][\w ]*/[\w]+\s*,", stripped) and "Current/" in stripped:
                data_at = k
                break
            if stripped in _TECHNIQUE and technique is None:
                technique = _TECHNIQUE[stripped]
            match = _PARAM.match(stripped)
            if match and "=" in stripped:
                params[match.group(1).strip()] = (match.group(3).strip(), match.group(2) or "")
                header[match.group(1).strip()[:60]] = match.group(3).strip()[:200]
            elif ":" in stripped:
                key, _, value = stripped.partition(":")
                header[key.strip()[:60]] = value.strip()[:200]
        if data_at is None:
            raise MissingColumnError(
                file,
                "has no data header line ('Potential/V, Current/A'); expected a CHI text export",
            )
        names = [c.strip() for c in lines[data_at].split(",")]
        body = [ln for ln in lines[data_at + 1 :] if ln.strip()]
        values = parse_rows(body, data_at + 3, file, delimiter=",", columns=names)

        def col(base: str, kind: str) -> np.ndarray | None:
            for j, name in enumerate(names):
                b, _, unit = name.partition("/")
                if b.strip() == base:
                    try:
                        return values[:, j] * scale_to_si(_UNIT_ALIASES.get(unit, unit), kind)
                    except ValueError as exc:
                        raise UnitError(
                            file, str(exc), where=f"line {data_at + 1}, column {name[:40]!r}"
                        ) from None
            return None

        E = col("Potential", "potential")
        current = col("Current", "current")
        t = col("Time", "time")
        if current is None or (E is None and t is None):
            raise MissingColumnError(
                file,
                "needs a Current column and a Potential or Time column",
                where=f"line {data_at + 1}",
            )
        found: dict[str, float] = {}
        for key, field, kind in (
            ("Scan Rate", "scan_rate", "scan_rate"),
            ("Sample Interval", "E_step", "potential"),
        ):
            if key in params:
                value, unit = params[key]
                x = number(value, file, f"header {key!r}")
                try:
                    found[field] = x * scale_to_si(unit or "V/s", kind)
                except ValueError as exc:
                    raise UnitError(file, str(exc), where=f"header {key!r}") from None
        started = None
        first = lines[0].strip() if lines else ""
        for fmt in ("%b. %d, %Y %H:%M:%S", "%b %d, %Y %H:%M:%S", "%B %d, %Y %H:%M:%S"):
            try:
                started = datetime.strptime(re.sub(r"\s+", " ", first), fmt)
                break
            except ValueError:
                continue
        if E is None:
            if "Init E" not in params:
                raise MissingColumnError(
                    file,
                    "amperometry data without a potential: the header has no 'Init E (V)'",
                )
            E = np.full(len(current), number(params["Init E"][0], file, "header 'Init E'"))
        model = header.get("Instrument Model", "")
        metadata = Metadata(
            format=self.name,
            instrument=f"CH Instruments {model}".strip()[:80],
            technique=technique,
            header=header,
            notes="current sign as saved by the CHI software (its default is cathodic positive;"
            " --meta current_sign=-1 turns it)",
        ).with_values("header", started=started, **found)
        if t is None:
            if "scan_rate" not in found:
                raise FileFormatError(
                    file, "has no time column and no 'Scan Rate (V/s)' in its header"
                )
            return Recording(
                t=np.full(len(E), np.nan), E=E, I=current, metadata=metadata, time_generated=True
            )
        return Recording(t=t, E=E, I=current, metadata=metadata)
