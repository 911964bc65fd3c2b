"""Metrohm Autolab: the ASCII export of NOVA (``.txt``/``.csv``, tab- or ``;``-separated).

NOVA writes one header line naming each column with its unit in brackets
(``Index``, ``Time (s)``, ``Potential applied (V)``, ``WE(1).Current (A)``,
``WE(1).Potential (V)``, ``Scan``), then one line per sample. No library reads it
better than a dozen lines do (ixdat's reader asks for a timestamp on the terminal),
so this reader is Galvana's own. The export says nothing about the electrode, the
reference or the procedure's settings: those come from ``--meta``.
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
        body = [ln for ln in lines[1:]]
        while body and not body[-1].strip():
            body.pop()
        sample = body[0] if body else ""
        decimal_comma = delimiter != "," and "," in sample and "." not in sample
        values = parse_rows(
            body, 2, file, delimiter=delimiter, columns=names, decimal_comma=decimal_comma
        )

        def column(*wanted: str, kind: str | None = None) -> np.ndarray | None:
            for want in wanted:
                for j, name in enumerate(names):
                    match = _UNIT.match(name)
                    bare = match.group(1) if match else name
                    if bare != want:
                        continue
                    if kind is None:
                        return values[:, j]
                    unit = match.group(2) if match else ""
                    try:
                        return values[:, j] * scale_to_si(unit, kind)
                    except ValueError as exc:
                        raise UnitError(file, str(exc), where=f"column {name[:40]!r}") from None
            return None

        t = column("Time", kind="time")
        current = column("WE(1).Current", kind="current")
        measured = column("WE(1).Potential", kind="potential")
        applied = column("Potential applied", kind="potential")
        scan = column("Scan")
        missing = [
            what
            for what, col in (
                ("Time (s)", t),
                ("WE(1).Current (A)", current),
                (
                    "WE(1).Potential (V) or Potential applied (V)",
                    measured if measured is not None else applied,
                ),
            )
            if col is None
        ]
        if missing:
            raise MissingColumnError(
                file,
                f"has no column {', '.join(missing)}; the header line names {len(names)} columns",
                where="line 1",
            )
        assert t is not None
        assert current is not None
        E = measured if measured is not None else applied
        assert E is not None
        metadata = Metadata(
            format=self.name,
            instrument="Metrohm Autolab (NOVA)",
            header={"columns": ", ".join(names)[:500]},
            sources={"instrument": "header"},
        )
        return Recording(
            t=np.ascontiguousarray(t),
            E=np.ascontiguousarray(E),
            I=np.ascontiguousarray(current),
            metadata=metadata,
            E_applied=None
            if applied is None or measured is None
            else np.ascontiguousarray(applied),
            scan=scan_numbers(scan),
        )
