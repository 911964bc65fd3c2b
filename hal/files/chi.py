"""CH Instruments: the text export of the CHI software (``.txt``, ``.csv``).

A date line, the technique, the file information, the parameters as ``Name (unit) =
value``, the results of each segment, then the data under a line naming the columns
with their units (a CHI600C export; CRLF, Windows-1252)::

    Oct. 26, 2023   15:07:46
    Cyclic Voltammetry
    File: g:\\data\\ff015cva.csv
    Data Source:  Experiment
    Instrument Model:  CHI600C
    Header:
    Note:

    Init E (V) = -0.01
    High E (V) = 1.2
    Low E (V) = -2.4
    Init P/N = N
    Scan Rate (V/s) = 0.05
    Segment = 6
    Sample Interval (V) = 0.001
    Quiet Time (sec) = 2
    Sensitivity (A/V) = 1e-6

    Segment 1:
    Ep = -0.141V
    ip = -1.036e-3A
    Ah = -6.457e-3C

    Segment 2:
    ...
    Potential/V, Current/A

    -0.010, -9.816e-8
    ...

Saved without the file information, the text starts at the parameters and its
columns may be tab-separated (``Potential/V<tab>Current/A``). A bipotentiostat (CHI760E
with a ring-disk electrode) writes ``Potential/V, i1/A, i2/A``: the first electrode's
current is read. CV data have ``Potential/V, Current/A`` (no time: times are made from
the scan rate and the sample interval); amperometry ``Time/sec, Current/A`` (no
potential column: the potential is the header's ``Init E``). Impedance (``A.C.
Impedance``), open-circuit and chronopotentiometry files are refused in one line. The
CHI software plots and, by default, saves currents with the cathodic-positive ("US")
convention: ``--meta current_sign=-1`` turns such a file to Galvana's anodic-positive
one. The file does not say which convention it was saved with, so the reader does not
guess; it says so in the notes. No maintained library reads these files; the format is
plain enough to read here.
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
    "Amperometric i-t Curve": "ca",
    "Square Wave Voltammetry": "swv",
    "Differential Pulse Voltammetry": "dpv",
    "Normal Pulse Voltammetry": "npv",
}
_REFUSED = {
    "A.C. Impedance": "an impedance spectrum (A.C. Impedance)",
    "Open Circuit Potential - Time": "an open-circuit potential recording, without current",
    "Chronopotentiometry": "a chronopotentiometry (potential against time), without current",
}
_UNIT_ALIASES = {"sec": "s"}
# The column line: "Potential/V, Current/A", "Time/sec, Current/A", a bipotentiostat's
# "Potential/V, i1/A, i2/A", comma- or tab-separated.
_COLUMNS = re.compile(r"^(Potential/V|Time/sec)\s*[,\t]\s*(Current/A|i1/A)", re.M)


class ChiReader:
    """Reads CH Instruments text exports (see the module docstring)."""

    name = "chi"
    title = "CH Instruments text export"
    extensions = (".txt", ".csv")

    def sniff(self, head: bytes) -> bool:
        text = head.decode("cp1252", errors="replace")
        return ("Instrument Model:" in text[:2000] and "CHI" in text[:2000]) or (
            _COLUMNS.search(text) is not None
        )

    def read(self, data: bytes, file: str) -> Recording:
        text = decode_text(data, file)
        lines = text.splitlines()
        header: dict[str, str] = {}
        params: dict[str, tuple[str, str]] = {}
        technique = None
        data_at = None
        in_results = False
        for k, line in enumerate(lines):
            stripped = line.strip()
            if _COLUMNS.match(stripped) or (
                re.match(r"^[A-Za-z][\w ]*/\w+\s*[,\t]", stripped) and "/ohm" in stripped
            ):
                data_at = k
                break
            if stripped in _REFUSED:
                raise FileFormatError(
                    file,
                    f"holds {_REFUSED[stripped]}; Galvana imports voltammetry and amperometry",
                    where=f"line {k + 1}",
                )
            if stripped in _TECHNIQUE and technique is None:
                technique = _TECHNIQUE[stripped]
            # After the parameters come the results ("Segment 1:", "Ep = -0.141V"): kept
            # out of the parameters.
            in_results = in_results or re.match(r"^(Results|Segment \d+):$", stripped) is not None
            match = _PARAM.match(stripped)
            if match and "=" in stripped and not in_results:
                params[match.group(1).strip()] = (match.group(3).strip(), match.group(2) or "")
                header[match.group(1).strip()[:60]] = match.group(3).strip()[:200]
            elif ":" in stripped and not in_results:
                key, _, value = stripped.partition(":")
                header[key.strip()[:60]] = value.strip()[:200]
        if data_at is None:
            raise MissingColumnError(
                file,
                "has no data header line ('Potential/V, Current/A'); expected a CHI text export",
            )
        delimiter = "\t" if "\t" in lines[data_at] else ","
        names = [c.strip() for c in lines[data_at].split(delimiter)]
        if "Freq/Hz" in names:
            raise FileFormatError(
                file,
                "holds an impedance spectrum; Galvana imports voltammetry and amperometry",
                where=f"line {data_at + 1}",
            )
        first_row = data_at + 1
        while first_row < len(lines) and not lines[first_row].strip():
            first_row += 1
        body = lines[first_row:]
        while body and not body[-1].strip():
            body.pop()
        values = parse_rows(body, first_row + 1, file, delimiter=delimiter, columns=names)

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
        notes = [
            "current sign as saved by the CHI software (its default is cathodic positive;"
            " --meta current_sign=-1 turns it)"
        ]
        if current is None:
            current = col("i1", "current")  # a bipotentiostat: i1 is the first electrode's
            if current is not None and "i2/A" in names:
                notes.append("a bipotentiostat file: the current of electrode 1 (i1) was read")
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
                if key == "Sample Interval" and unit in ("s", "sec"):
                    found["t_step"] = x  # amperometry samples in time
                    continue
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
            header=header,
            notes="; ".join(notes),
            sources={"instrument": "header"},
        ).with_values("header", technique=technique, started=started, **found)
        if t is None:
            if "scan_rate" not in found:
                raise FileFormatError(
                    file, "has no time column and no 'Scan Rate (V/s)' in its header"
                )
            return Recording(
                t=np.full(len(E), np.nan), E=E, I=current, metadata=metadata, time_generated=True
            )
        return Recording(t=t, E=E, I=current, metadata=metadata)
