"""A plain CSV/TSV with a column mapping: for any instrument Galvana has no reader for.

The mapping names, for each role (``t``, ``E``, ``I``, optionally ``E_applied``,
``scan``), the column (its header name, or its 1-based number) and the unit of its
values::

    galvana import run.csv --map t=time:ms --map E=potential:V --map I=current:uA

or in a small YAML file (``--mapping FILE``)::

    delimiter: ","        # optional: found from the header line otherwise
    skip: 3               # lines before the header line
    columns:
      t: {column: time, unit: ms}
      E: {column: 2, unit: V}
      I: {column: current, unit: uA}
    meta: {scan_rate: 100 mV/s, area: 0.0707 cm2}

Without a ``t`` column, times are made from the scan rate (``--meta scan_rate=``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec
import numpy as np

from hal.files._text import decode_text, parse_rows
from hal.files.errors import FileFormatError, MissingColumnError, UnitError
from hal.files.recording import Metadata, Recording, scan_numbers
from hal.files.units import scale_to_si
from runtime.schema import UNSET, Describe, Document, Int, Integer, Invalid, Str, Text, UnsetType

__all__ = ["ROLES", "ColumnDocument", "ColumnMap", "ColumnMapDocument", "TableReader"]

ROLES: dict[str, str | None] = {
    "t": "time",
    "E": "potential",
    "I": "current",
    "E_applied": "potential",
    "scan": None,
}
"""The roles a column can play, and the kind of unit each takes (None: a count)."""


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """Which column plays which role: ``columns[role] = (name or 1-based number, unit)``."""

    columns: dict[str, tuple[str | int, str]]
    delimiter: str | None = None
    skip: int = 0
    header: bool = True
    meta: dict[str, str] = field(default_factory=dict)


class ColumnDocument(Document):
    """One column of a mapping file: its header name or 1-based number, and its unit."""

    column: Annotated[str | int, Describe("a column name or a 1-based number")]
    unit: Annotated[Str | UnsetType, Text("the column's unit")] = UNSET


class ColumnMapDocument(Document, kw_only=True):
    """A column mapping as its YAML file (``--mapping FILE``) says it; see the module
    docstring."""

    columns: Annotated[
        dict[str, ColumnDocument],
        msgspec.Meta(extra_json_schema={"propertyNames": {"enum": list(ROLES)}}),
    ]
    delimiter: str | None = None
    skip: Annotated[Int, Integer(0, 10_000)] = 0
    header: bool = True
    meta: Annotated[dict[str, Any], Describe("a map of metadata (key: value)")] = msgspec.field(
        default_factory=dict
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        for role, column in self.columns.items():
            if role not in ROLES:
                raise Invalid(f"columns.{role}", f"not a role; accepted: {', '.join(ROLES)}")
            if ROLES[role] is not None and column.unit is UNSET:
                raise Invalid(f"columns.{role}.unit", "required key is missing (the column's unit)")

    def column_map(self) -> ColumnMap:
        """The mapping (its ``meta`` apart)."""
        columns = {
            role: (c.column, "" if isinstance(c.unit, UnsetType) else c.unit)
            for role, c in self.columns.items()
        }
        return ColumnMap(columns, self.delimiter, self.skip, self.header)


class TableReader:
    """Reads a plain table with a :class:`ColumnMap` (see the module docstring)."""

    name = "table"
    title = "plain CSV/TSV with a column mapping"
    extensions = (".csv", ".tsv", ".txt", ".dat")

    def __init__(self, mapping: ColumnMap) -> None:
        self.mapping = mapping

    def sniff(self, head: bytes) -> bool:
        return True

    def read(self, data: bytes, file: str) -> Recording:
        m = self.mapping
        lines = decode_text(data, file).splitlines()
        if len(lines) <= m.skip:
            raise FileFormatError(file, f"has {len(lines)} lines; the mapping skips {m.skip}")
        first = lines[m.skip]
        delimiter = m.delimiter
        if delimiter is None:
            delimiter = max(("\t", ";", ","), key=first.count)
            if first.count(delimiter) == 0:
                delimiter = None  # whitespace-separated
        names = [c.strip() for c in first.split(delimiter)] if m.header else []
        body_start = m.skip + (1 if m.header else 0)
        body = lines[body_start:]
        while body and not body[-1].strip():
            body.pop()
        width = len(names) if names else len((body[0] if body else "").split(delimiter))
        columns = names or [f"column {j + 1}" for j in range(width)]
        values = parse_rows(body, body_start + 1, file, delimiter=delimiter, columns=columns)
        picked: dict[str, np.ndarray] = {}
        for role, (which, unit) in m.columns.items():
            if isinstance(which, int):
                j = which - 1
                if not 0 <= j < width:
                    raise MissingColumnError(
                        file,
                        f"has {width} columns; the mapping asks for column {which} as {role}",
                        where=f"line {m.skip + 1}",
                    )
            else:
                if which not in columns:
                    raise MissingColumnError(
                        file,
                        f"has no column {which!r} (for {role}); its columns are "
                        + ", ".join(repr(c[:30]) for c in columns[:12]),
                        where=f"line {m.skip + 1}",
                    )
                j = columns.index(which)
            kind = ROLES[role]
            if kind is None:
                picked[role] = values[:, j]
                continue
            try:
                picked[role] = values[:, j] * scale_to_si(unit, kind)
            except ValueError as exc:
                raise UnitError(file, str(exc), where=f"mapping of {role}") from None
        for role in ("E", "I"):
            if role not in picked:
                raise MissingColumnError(file, f"the mapping names no column for {role}")
        n = len(picked["I"])
        scan = picked.get("scan")
        return Recording(
            t=picked.get("t", np.full(n, np.nan)),
            E=picked["E"],
            I=picked["I"],
            metadata=Metadata(format=self.name),
            E_applied=picked.get("E_applied"),
            scan=scan_numbers(scan),
            time_generated="t" not in picked,
        )
