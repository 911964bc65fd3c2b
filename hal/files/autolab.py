"""Metrohm Autolab: the ASCII export of NOVA (``.txt``/``.csv``, ``;``-, tab- or
comma-separated).

NOVA writes one header line naming each exported column with its unit in brackets,
then one line per sample, in UTF-8 (NOVA 2.1, a public export of a linear sweep)::

    Potential applied (V);Time (s);WE(1).Current (A);WE(1).Potential (V);Index;Current range
    -1.09954833984375;1503.68315220356;-7.55615234375E-05;-1.0986328125;1;100 µA

The columns are the ones the user ticked: a CV adds ``Scan`` (from 1) and ``Q+``,
``Q-``; ``Current range`` is text (``100 µA``) and is not read; an export may leave out
``Time (s)`` (``WE(1).Current (A);WE(1).Potential (V);Scan``): then times are made from
``--meta scan_rate=``, as for any file without a time column. Under a European Windows
the separator is ``;`` and the decimal mark a comma. ``WE(2)`` columns of a second
working electrode are not read (the notes say so). No library reads it better than a
dozen lines do (ixdat's reader asks for a timestamp on the terminal), so this reader
is Galvana's own. The export says nothing about the electrode, the reference or the
procedure's settings: those come from ``--meta``.
"""

from __future__ import annotations

import re

import numpy as np

from hal.files._text import decode_text, head_text, parse_rows
from hal.files.errors import MissingColumnError, UnitError
from hal.files.recording import Metadata, Recording, scan_numbers
from hal.files.units import scale_to_si

__all__ = ["AutolabReader"]

_MARKERS = ("WE(1).Current", "WE(1).Potential", "Potential applied (", "WE(1).Charge")
_UNIT = re.compile(r"^(.*?)\s*\(([^()]*)\)\s*$")


def _split_header(line: str) -> tuple[str, list[str]]:
    for delimiter in ("\t", ";", ","):
        cells = line.split(delimiter)
        if len(cells) >= 2:
            return delimiter, [c.strip() for c in cells]
    return "\t", [line.strip()]


class AutolabReader:
    """Reads NOVA ASCII exports (see the module docstring)."""

    name = "autolab"
    title = "Metrohm Autolab NOVA ASCII export"
    extensions = (".txt", ".csv", ".ascii")

    def sniff(self, head: bytes) -> bool:
        first = head_text(head).split("\n", 1)[0]
        return any(m in first for m in _MARKERS)

    def read(self, data: bytes, file: str) -> Recording:
        text = decode_text(data, file)
        lines = text.splitlines()
        delimiter, names = _split_header(lines[0])
        body = lines[1:]
        while body and not body[-1].strip():
            body.pop()

        def find(*wanted: str) -> int | None:
            for want in wanted:
                for j, name in enumerate(names):
                    match = _UNIT.match(name)
                    if (match.group(1) if match else name) == want:
                        return j
            return None

        roles = {
            "t": find("Time", "Corrected time"),
            "I": find("WE(1).Current"),
            "E": find("WE(1).Potential"),
            "E_applied": find("Potential applied"),
            "scan": find("Scan"),
        }
        if roles["I"] is None or (roles["E"] is None and roles["E_applied"] is None):
            missing = [
                what
                for what, j in (
                    ("WE(1).Current (A)", roles["I"]),
                    (
                        "WE(1).Potential (V) or Potential applied (V)",
                        roles["E"] or roles["E_applied"],
                    ),
                )
                if j is None
            ]
            raise MissingColumnError(
                file,
                f"has no column {', '.join(missing)}; the header line names {len(names)} columns",
                where="line 1",
            )
        # Only the columns read are parsed: others may be text ("Current range": 100 µA).
        picked = [j for j in roles.values() if j is not None]
        sample = body[0].split(delimiter) if body else []
        cells = [sample[j] for j in picked if j < len(sample)]
        decimal_comma = (
            delimiter != "," and any("," in c for c in cells) and not any("." in c for c in cells)
        )
        values = parse_rows(
            body,
            2,
            file,
            delimiter=delimiter,
            columns=names,
            decimal_comma=decimal_comma,
            use=picked,
        )

        def column(role: str, kind: str | None) -> np.ndarray | None:
            j = roles[role]
            if j is None:
                return None
            data = values[:, picked.index(j)]
            if kind is None:
                return data
            match = _UNIT.match(names[j])
            unit = match.group(2) if match else ""
            try:
                return data * scale_to_si(unit, kind)
            except ValueError as exc:
                raise UnitError(file, str(exc), where=f"column {names[j][:40]!r}") from None

        t = column("t", "time")
        current = column("I", "current")
        measured = column("E", "potential")
        applied = column("E_applied", "potential")
        assert current is not None
        E = measured if measured is not None else applied
        assert E is not None
        notes = []
        if any(name.startswith("WE(2).") for name in names):
            notes.append("the file has a second working electrode (WE(2)); WE(1) was read")
        metadata = Metadata(
            format=self.name,
            instrument="Metrohm Autolab (NOVA)",
            notes="; ".join(notes),
            header={"columns": ", ".join(names)[:500]},
            sources={"instrument": "header"},
        )
        return Recording(
            t=np.ascontiguousarray(t) if t is not None else np.full(len(E), np.nan),
            E=np.ascontiguousarray(E),
            I=np.ascontiguousarray(current),
            metadata=metadata,
            E_applied=None
            if applied is None or measured is None
            else np.ascontiguousarray(applied),
            scan=scan_numbers(column("scan", None)),
            time_generated=t is None,
        )
