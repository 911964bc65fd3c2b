"""Gamry Framework ``.DTA`` files (EXPLAIN format): CV, LSV, CHRONOA, SQUARE WAVE, ...

A DTA file is tab-separated text in the PC's code page (Windows-1252), CRLF::

    EXPLAIN
    TAG	CV
    TITLE	LABEL	ECSA	Test Identifier
    DATE	LABEL	17.7.2024	Date
    TIME	LABEL	10:16:43	Time
    NOTES	NOTES	1	Notes...
        <one line per note line>
    PSTAT	PSTAT	IFC1010-34090	Potentiostat
    VINIT	POTEN	1.00000E-001	F	A Potential (V)
    SCANRATE	QUANT	1.00000E+001	A Real Number
    STEPSIZE	QUANT	1.00000E+000	Step Size (mV)
    CYCLES	IQUANT	3	Cycles (#)
    AREA	QUANT	1.00000E+000	Sample Area (cm^2)
    ...
    FRAMEWORKVERSION	LABEL	7.10.3	Framework Version
    CURVE1	TABLE
        Pt	T	Vf	Im	Vu	Sig	Ach	IERange	Over	Temp
        #	s	V vs. Ref.	A	V	V	V	#	bits	deg C
        0	0.1	1.00264E-001	-4.80078E-006	0.00000E+000	9.99950E-002	...

A header line is ``KEY<tab>TYPE<tab>value<tab>label``; a QUANT's unit is in its label's
brackets, and when the label has none (Framework 7.10 writes "A Real Number" for the
scan rate) the quantity's usual unit is taken (mV/s, mV, cm², s). The date is the
PC's format (``3/6/2019``, ``17.7.2024``). Each ``CURVE`` table (``CURVE<tab>TABLE<tab>
rows``; the row count may be missing or a placeholder such as 99999, so rows are read
while they start with a tab) has the column names and units on its first two lines. A
CV holds one curve per cycle and, after the last cycle, a curve of the sweep to the
final potential (one point when that is the last vertex): it is read as part of the
last cycle. Other tables (``OCVCURVE``) are skipped. ``T`` is time (s, negative during
a chronoamperometry's pre-step), ``Vf`` the measured potential, ``Im`` the current,
``Sig`` the applied signal; a square-wave curve has ``Vstep`` and the difference
current ``Idif`` instead, and its scan rate is the step times ``FREQUENCY``. A
European Windows writes decimal commas; they are read too. Impedance (``EISPOT``,
``EISGALV``) and open-circuit (``CORPOT``) files are refused in one line.

gamry-parser (MIT) reads the format into pandas, but reports problems with asserts
and reads with ``errors="ignore"``; this reader says which line is wrong instead.
"""

from __future__ import annotations

import re
from datetime import datetime

import numpy as np

from hal.files._text import decode_text, number, parse_rows
from hal.files.errors import FileFormatError, MissingColumnError, UnitError
from hal.files.recording import Metadata, Recording, scan_numbers
from hal.files.units import scale_to_si

__all__ = ["GamryReader"]

_TECHNIQUE = {
    "CV": "cv",
    "CHRONOA": "ca",
    "CHRONOP": "cp",
    "SQUARE_WAVE": "swv",
    "SQUARE WAVE": "swv",
    "LSV": "lsv",
    "DPV": "dpv",
}
_REFUSED = {
    "EISPOT": "an impedance spectrum (EISPOT)",
    "EISGALV": "an impedance spectrum (EISGALV)",
    "CORPOT": "an open-circuit potential recording (CORPOT), without current",
}
_LABEL_UNIT = re.compile(r"\(([^()]*)\)\s*$")
_CURVE = re.compile(r"^CURVE\d*$")


class GamryReader:
    """Reads Gamry ``.DTA`` files (see the module docstring)."""

    name = "gamry"
    title = "Gamry Framework DTA"
    extensions = (".dta",)

    def sniff(self, head: bytes) -> bool:
        return head.lstrip(b"\xef\xbb\xbf").startswith(b"EXPLAIN") and b"\nTAG" in head[:4096]

    def read(self, data: bytes, file: str) -> Recording:
        text = decode_text(data, file)
        lines = text.splitlines()
        header: dict[str, str] = {}
        quantities: dict[str, tuple[str, str]] = {}  # key -> (value, label)
        tables: list[tuple[int, int, int]] = []  # (line of the names, first data, end)
        notes = ""
        k = 1
        while k < len(lines):
            cells = lines[k].split("\t")
            key = cells[0].strip()
            if key == "NOTES" or (len(cells) > 1 and cells[1] == "NOTES"):
                try:
                    count = int(cells[2])
                except (IndexError, ValueError):
                    count = 0
                notes = "\n".join(ln.strip() for ln in lines[k + 1 : k + 1 + count])[:2000]
                k += 1 + max(count, 0)
                continue
            if len(cells) > 1 and cells[1] == "TABLE":
                start = k + 3
                end = start
                while end < len(lines) and lines[end].startswith("\t"):
                    end += 1
                if _CURVE.match(key):
                    tables.append((k + 1, start, end))
                k = end
                continue
            if key == "TAG" and len(cells) > 1:
                header["TAG"] = cells[1].strip()
            elif len(cells) >= 3 and key:
                header[key[:60]] = cells[2].strip()[:200]
                quantities[key] = (cells[2].strip(), cells[-1] if len(cells) > 3 else "")
            k += 1
        tag = header.get("TAG", "")
        if tag.upper() in _REFUSED:
            raise FileFormatError(
                file,
                f"holds {_REFUSED[tag.upper()]}; Galvana imports voltammetry and amperometry",
                where="line 2",
            )
        if not tables:
            raise MissingColumnError(
                file, "holds no CURVE table; expected the data of a Gamry experiment"
            )
        cycles = None
        if "CYCLES" in header and header["CYCLES"].isdigit():
            cycles = int(header["CYCLES"])
        decimal_comma = False
        ts: list[np.ndarray] = []
        Es: list[np.ndarray] = []
        Is: list[np.ndarray] = []
        Eapps: list[np.ndarray | None] = []
        scans: list[np.ndarray] = []
        for number_of_curve, (names_at, start, end) in enumerate(tables, start=1):
            names = [c.strip() for c in lines[names_at].split("\t")[1:]]
            units = (
                [c.strip() for c in lines[names_at + 1].split("\t")[1:]]
                if names_at + 1 < len(lines)
                else []
            )
            body = [ln[1:] for ln in lines[start:end]]
            keep = [j for j, name in enumerate(names) if name not in ("Over",)]
            if not decimal_comma and body:
                first = body[0].split("\t")
                cells = [first[j] for j in keep if j < len(first)]
                comma = any("," in c for c in cells)
                decimal_comma = comma and not any("." in c for c in cells)
            rows = [ln.split("\t") for ln in body]
            cleaned = ["\t".join(r[j] if j < len(r) else "" for j in keep) for r in rows]
            if any(len(r) != len(names) for r in rows):
                bad = next(i for i, r in enumerate(rows) if len(r) != len(names))
                raise FileFormatError(
                    file,
                    f"has {len(rows[bad])} values; expected {len(names)} "
                    f"({', '.join(names)[:100]})",
                    where=f"line {start + bad + 1}",
                )
            kept_names = [names[j] for j in keep]
            values = parse_rows(
                cleaned,
                start + 1,
                file,
                delimiter="\t",
                columns=kept_names,
                decimal_comma=decimal_comma,
            )

            def col(  # noqa: PLR0917 - the loop's own values bound as defaults
                name: str,
                kind: str | None,
                kept_names: list[str] = kept_names,
                values: np.ndarray = values,
                units: list[str] = units,
                keep: list[int] = keep,
                names_at: int = names_at,
            ) -> np.ndarray | None:
                if name not in kept_names:
                    return None
                j = kept_names.index(name)
                if kind is None:
                    return values[:, j]
                unit = units[keep[j]] if keep[j] < len(units) else ""
                try:
                    return values[:, j] * scale_to_si(unit, kind)
                except ValueError as exc:
                    raise UnitError(
                        file, str(exc), where=f"line {names_at + 2}, column {name}"
                    ) from None

            t = col("T", "time")
            swv = "Idif" in kept_names
            E = col("Vstep", "potential") if swv else col("Vf", "potential")
            current = col("Idif", "current") if swv else col("Im", "current")
            missing = [
                n
                for n, c in (
                    ("T", t),
                    ("Vstep" if swv else "Vf", E),
                    ("Idif" if swv else "Im", current),
                )
                if c is None
            ]
            if missing:
                raise MissingColumnError(
                    file,
                    f"curve {number_of_curve} has no column {', '.join(missing)}",
                    where=f"line {names_at + 1}",
                )
            assert t is not None
            assert E is not None
            assert current is not None
            if ts and len(t) and len(ts[-1]) > 1 and t[0] <= ts[-1][-1]:
                # A curve whose clock restarted: it follows the one before it.
                t = t - t[0] + ts[-1][-1] + float(np.median(np.diff(ts[-1])))
            ts.append(t)
            Es.append(E)
            Is.append(current)
            sig = None if swv else col("Sig", "potential")
            Eapps.append(sig)
            cycle = col("Cycle", None)
            from_file = scan_numbers(cycle, first=0)
            # A CV of N cycles ends with a curve N+1 of the sweep to the final potential
            # (one point when it equals the last vertex): it belongs to the last cycle.
            scan = number_of_curve if cycles is None else min(number_of_curve, cycles)
            scans.append(from_file if from_file is not None else np.full(len(t), scan, np.int32))
        instrument = "Gamry " + header["PSTAT"] if "PSTAT" in header else "Gamry"
        if "FRAMEWORKVERSION" in header:
            instrument += f" (Framework {header['FRAMEWORKVERSION']})"
        metadata = Metadata(
            format=self.name,
            instrument=instrument[:80],
            header=header,
            notes=notes,
            sources={"instrument": "header"},
        ).with_values("header", technique=_TECHNIQUE.get(tag.upper()))
        found: dict[str, float] = {}
        for key, field, kind in (
            ("SCANRATE", "scan_rate", "scan_rate"),
            ("STEPSIZE", "E_step", "potential"),
            ("AREA", "area", "area"),
            ("SAMPLETIME", "t_step", "time"),
        ):
            if key not in quantities:
                continue
            value, label = quantities[key]
            where = f"header {key}"
            x = number(value, file, where, decimal_comma=decimal_comma)
            match = _LABEL_UNIT.search(label)
            unit = (
                match.group(1)
                if match
                else {"scan_rate": "mV/s", "potential": "mV", "area": "cm^2", "time": "s"}[kind]
            )
            try:
                found[field] = x * scale_to_si(unit, kind)
            except ValueError as exc:
                raise UnitError(file, str(exc), where=where) from None
        frequency = quantities.get("FREQUENCY")
        if "scan_rate" not in found and "E_step" in found and frequency is not None:
            # Square wave: one step per period.
            found["scan_rate"] = found["E_step"] * number(
                frequency[0], file, "header FREQUENCY", decimal_comma=decimal_comma
            )
        started = None
        if "DATE" in header and "TIME" in header:
            for fmt in ("%m/%d/%Y %H:%M:%S", "%d.%m.%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S"):
                try:
                    started = datetime.strptime(f"{header['DATE']} {header['TIME']}", fmt)
                    break
                except ValueError:
                    continue
        metadata = metadata.with_values("header", started=started, **found)
        has_sig = all(e is not None for e in Eapps)
        return Recording(
            t=np.concatenate(ts),
            E=np.concatenate(Es),
            I=np.concatenate(Is),
            metadata=metadata,
            E_applied=np.concatenate([e for e in Eapps if e is not None]) if has_sig else None,
            scan=np.concatenate(scans),
        )
