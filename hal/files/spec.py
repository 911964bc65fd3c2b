"""A recording as a run: the spec a ``RunCreated`` of an import carries, and the
metadata a user gives on the command line.

The spec is plain data (SI numbers with their units named beside them)::

    name: cv.txt
    protocol: {waveform: {type: cv, E_start: 0.6, E_vertex: -0.1, ...}, cycles: 2, ...}
    import:
      file: cv.txt
      format: autolab
      sha256: 9f2c...
      rows: 1400
      time: {base: file, offset_s: 0.0, note: ""}
      potential: applied          # which column E holds: applied or measured
      metadata:                   # SI values; units in `units`, origins in `sources`
        technique: cv
        scan_rate: 0.1
        E_step: 0.002
        area: 7.0686e-06
        reference: Ag/AgCl (3 M KCl)
        ...
      units: {scan_rate: V/s, E_step: V, t_step: s, area: m^2, ...}
      sources: {scan_rate: measured, area: user, ...}
      reference: {name: Ag/AgCl (3 M KCl), E_vs_SHE: 0.21}
      scans: [{scan: 3, start: 0, stop: 700}, ...]
      segments: [{start: 0, stop: 350, E_from: 0.6, E_to: -0.1, scan_rate: 0.1}, ...]
      programme: {first_scan: 3, scans_in_file: 2, scans_in_programme: null, note: ...}

``protocol`` is the programme recovered from the data (absent when it cannot be:
``import.protocol_note`` says why); a replay drives a twin along it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import fields, replace
from datetime import datetime
from typing import Any, Final

import numpy as np

from hal.files.analysis import derive_protocol
from hal.files.reader import file_summary
from hal.files.recording import META_KEYS, Metadata, Recording
from hal.files.reference import find_reference
from hal.files.units import quantity_to_si

__all__ = [
    "META_UNITS",
    "given",
    "parse_cycles",
    "parse_meta",
    "run_spec",
    "select_scans",
    "shifted_to_start",
]

META_UNITS: Final[dict[str, str]] = {
    "scan_rate": "V/s",
    "E_step": "V",
    "t_step": "s",
    "sampling": "1",
    "area": "m^2",
}
"""The SI unit of each numeric metadata value."""

_KINDS: Final[dict[str, str]] = {
    "scan_rate": "scan_rate",
    "E_step": "potential",
    "t_step": "time",
    "area": "area",
}
_TEXT: Final = ("instrument", "reference", "notes")
_TECHNIQUES: Final = ("cv", "lsv", "ca", "swv", "dpv", "npv", "cp")
_MAX_SEGMENTS: Final = 2000


def parse_meta(items: Iterable[str]) -> dict[str, Any]:
    """``key=value`` strings (``area=0.0707cm2``, ``scan_rate=100 mV/s``,
    ``reference=Ag/AgCl 3M KCl``) as SI values; raises ``ValueError`` naming the key."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ValueError(f"--meta {item!r}: expected key=value, e.g. area=0.0707cm2")
        if key not in META_KEYS:
            raise ValueError(f"--meta {key}: not a metadata key; accepted: {', '.join(META_KEYS)}")
        try:
            if key in _KINDS:
                number = quantity_to_si(value, _KINDS[key])
                if not number > 0:
                    raise ValueError("expected a positive value")
                out[key] = number
            elif key == "sampling":
                out[key] = float(value)
                if not 0.0 <= out[key] <= 1.0:
                    raise ValueError("expected a fraction of the step from 0 to 1")
            elif key in ("first_scan", "scans_in_programme"):
                out[key] = int(value)
                if out[key] < 1:
                    raise ValueError("expected a whole number >= 1")
            elif key == "current_sign":
                words = {
                    "1": 1.0,
                    "+1": 1.0,
                    "-1": -1.0,
                    "anodic-positive": 1.0,
                    "cathodic-positive": -1.0,
                }
                if value not in words:
                    raise ValueError("expected 1, -1, anodic-positive or cathodic-positive")
                out[key] = words[value]
            elif key == "technique":
                if value.lower() not in _TECHNIQUES:
                    raise ValueError(f"expected one of {', '.join(_TECHNIQUES)}")
                out[key] = value.lower()
            elif key == "started":
                out[key] = datetime.fromisoformat(value)
            else:
                out[key] = value
        except ValueError as exc:
            raise ValueError(f"--meta {key}={value}: {exc}") from None
    return out


_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_cycles(text: str) -> set[int]:
    """``"2-3"``, ``"1,3"``, ``"2"`` as a set of scan numbers; ``ValueError`` otherwise."""
    picked: set[int] = set()
    for part in text.split(","):
        match = _RANGE.match(part)
        if match is None:
            raise ValueError(f"--cycles {text!r}: expected scan numbers such as 2, 2-3 or 1,3")
        lo = int(match.group(1))
        hi = int(match.group(2) or lo)
        if hi < lo:
            raise ValueError(f"--cycles {text!r}: the range {lo}-{hi} is empty")
        picked.update(range(lo, hi + 1))
    return picked


def select_scans(rec: Recording, scans: set[int], file: str) -> Recording:
    """The rows of the chosen scans (a completed recording); ``ValueError`` naming the
    scans the file has when none of the chosen ones is there."""
    assert rec.scan is not None
    have = sorted(set(np.unique(rec.scan).tolist()))
    missing = sorted(scans - set(have))
    if missing:
        raise ValueError(
            f"{file}: has scans {have[0]}-{have[-1]}; --cycles asks for "
            + ", ".join(map(str, missing))
            if have
            else f"{file}: has no scans"
        )
    return rec.select(np.isin(rec.scan, sorted(scans)))


def shifted_to_start(rec: Recording) -> tuple[Recording, float]:
    """The recording on the run's clock, and the offset (s) taken off its times.

    A run's time starts with its first programmed sweep. A file whose first sample
    comes within two sample intervals of its own zero keeps its times (the sample at
    the end of the first step is at one interval); one that starts later (a later
    scan, a file cut from a longer one) is moved so that its first sample is one
    interval after the start.
    """
    if len(rec) < 2:
        return rec, 0.0
    dt = float(np.median(np.diff(rec.t)))
    t0 = float(rec.t[0])
    if 0.0 <= t0 <= 2.0 * dt:
        return rec, 0.0
    offset = t0 - dt
    return replace(rec, t=rec.t - offset), offset


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def run_spec(
    rec: Recording,
    *,
    file: str,
    sha256: str,
    name: str | None = None,
    cycles: str | None = None,
    scans_in_file: Iterable[int] = (),
    time_offset: float = 0.0,
) -> dict[str, Any]:
    """The spec of the run an import creates (see the module docstring).

    ``rec`` is completed (segments and scans known) and already cut to ``cycles``; its
    times start where the run's clock starts (``import.time.offset_s`` says by how much
    they were moved). ``scans_in_file`` lists every scan the file held.
    """
    md = rec.metadata
    summary = file_summary(rec)
    metadata = {
        f.name: _plain(getattr(md, f.name))
        for f in fields(Metadata)
        if f.name in META_KEYS and getattr(md, f.name) not in (None, "")
    }
    reference = None
    if md.reference:
        ref = find_reference(md.reference)
        reference = {
            "given": md.reference,
            "name": ref.name if ref else None,
            "E_vs_SHE": ref.E_vs_SHE if ref else None,
            "note": ""
            if ref
            else "not a reference electrode Galvana knows; potentials are kept as recorded",
        }
    file_scans = sorted(set(scans_in_file)) or [s["scan"] for s in summary["scans"]]
    first = min(s["scan"] for s in summary["scans"])
    notes = []
    if first > 1:
        before = "scan 1" if first == 2 else f"scans 1-{first - 1}"
        notes.append(
            f"the data start at scan {first}: {before} of the programme ran before and "
            f"{'is' if first == 2 else 'are'} not in the run"
        )
    if md.scans_in_programme and md.scans_in_programme > max(file_scans):
        notes.append(
            f"the programme ran {md.scans_in_programme} scans; the file ends at scan "
            f"{max(file_scans)}"
        )
    protocol, why = derive_protocol(rec)
    segments = summary["segments"]
    spec: dict[str, Any] = {
        "name": name or file,
        "import": {
            "file": file,
            "format": md.format,
            "sha256": sha256,
            "rows": len(rec),
            "time": {
                "base": "generated" if rec.time_generated else "file",
                "offset_s": time_offset,
                "note": rec.time_note,
            },
            "potential": "applied" if rec.E_applied is not None else "as recorded",
            "metadata": metadata,
            "units": {k: v for k, v in META_UNITS.items() if k in metadata},
            "sources": {k: v for k, v in md.sources.items() if k in metadata},
            "reference": reference,
            "header": dict(list(md.header.items())[:200]),
            "scans": summary["scans"],
            "segments": segments[:_MAX_SEGMENTS],
            "segments_total": len(segments),
            "programme": {
                "first_scan": first,
                "scans_in_file": file_scans,
                "scans_imported": [s["scan"] for s in summary["scans"]],
                "cycles_selected": cycles,
                "scans_in_programme": md.scans_in_programme,
                "note": "; ".join(notes),
            },
            "protocol_note": why,
        },
    }
    if protocol is not None:
        spec["protocol"] = protocol
    return spec


def given(spec: Mapping[str, Any], key: str) -> Any:
    """A metadata value of an import's spec (SI), or None."""
    imported = spec.get("import")
    if not isinstance(imported, Mapping):
        return None
    metadata = imported.get("metadata")
    return metadata.get(key) if isinstance(metadata, Mapping) else None
