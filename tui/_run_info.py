"""What kind of run a record is, and what a scientist wants to know of it at a glance.

Read from the record ``runs.show`` gives (its ``source`` and ``spec``), defensively: a
key a daemon does not send is left out, never guessed.

- an **import** (source ``import:FILE``): the file and its format, the instrument,
  technique, reference electrode, scan rate and the scans it holds;
- a **simulation**: its progress, estimated time to completion and the conservation
  check (charge passed against the change in the species' amounts), from the record's
  ``progress`` (fraction), ``eta_s`` (s), ``eta_basis`` and ``summary.conservation``
  (``max_relative_error``, ``passed``, ``tolerance``), once the daemon reports them;
- a **replay** (source ``replay:RUN``): what it replays;
- a **twin** run on an instrument: the instrument and the protocol's waveform.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from tui._format import format_duration, format_si, progress_bar

__all__ = ["RunKind", "run_details", "run_kind"]

RunKind = Literal["import", "simulation", "replay", "twin"]


def run_kind(record: dict[str, Any]) -> RunKind:
    """Which kind of run ``record`` is."""
    source = str(record.get("source", ""))
    spec = record.get("spec")
    if source.startswith("import:"):
        return "import"
    if source.startswith("replay:"):
        return "replay"
    kind = record.get("kind")  # the daemon's (runtime.run_kinds)
    if kind == "simulation" or (isinstance(spec, dict) and "scenario" in spec):
        return "simulation"
    if isinstance(spec, dict) and not spec.get("instrument") and "progress" in record:
        return "simulation"
    return "twin"


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _scans(scans: object) -> str:
    if not isinstance(scans, list) or not scans:
        return ""
    numbers = [s.get("scan") for s in scans if isinstance(s, dict)]
    rows = sum(
        int(s.get("stop", 0)) - int(s.get("start", 0))
        for s in scans
        if isinstance(s, dict)
        and isinstance(s.get("stop"), int)
        and isinstance(s.get("start"), int)
    )
    listed = ", ".join(str(n) for n in numbers if n is not None)
    return f"{listed} ({rows:,} samples)" if rows else listed


def _import(spec: dict[str, Any]) -> list[tuple[str, str]]:
    imported = spec.get("import")
    if not isinstance(imported, dict):
        return []
    metadata = imported.get("metadata") if isinstance(imported.get("metadata"), dict) else {}
    assert isinstance(metadata, dict)
    out = [("file", f"{imported.get('file', '?')} ({imported.get('format', '?')})")]
    for key in ("instrument", "technique"):
        if metadata.get(key):
            out.append((key, str(metadata[key])))
    reference = imported.get("reference")
    if isinstance(reference, dict):
        name = reference.get("name") or reference.get("given")
        against = _number(reference.get("E_vs_SHE"))
        shown = f"{name} ({against:+.3f} V vs SHE)" if against is not None else str(name)
        out.append(("reference", shown))
    else:
        out.append(("reference", "not given"))
    rate = _number(metadata.get("scan_rate"))
    if rate is not None:
        out.append(("scan rate", format_si(rate, "V/s")))
    scans = _scans(imported.get("scans"))
    if scans:
        out.append(("scans", scans))
    return out


def _simulation(record: dict[str, Any]) -> list[tuple[str, str]]:
    progress = _number(record.get("progress"))
    out = [("progress", progress_bar(progress, 12) if progress is not None else "not reported")]
    eta = format_duration(_number(record.get("eta_s")))
    basis = record.get("eta_basis")
    out.append(("ETA", f"{eta} (from the {basis})" if basis and record.get("eta_s") else eta))
    summary = record.get("summary") if isinstance(record.get("summary"), dict) else {}
    assert isinstance(summary, dict)
    check = summary.get("conservation")
    if isinstance(check, dict):
        error = _number(check.get("max_relative_error"))
        passed = check.get("passed")
        verdict = "" if passed is None else (" ok" if passed else " FAILED")
        tolerance = _number(check.get("tolerance"))
        within = f" (tolerance {tolerance:.0e})" if tolerance is not None else ""
        shown = f"{error:.1e} relative{verdict}{within}" if error is not None else "not reported"
        out.append(("conservation", shown))
    else:
        out.append(("conservation", "not reported yet"))
    return out


def run_details(record: dict[str, Any]) -> list[tuple[str, str]]:
    """The lines of the run panel: ``(label, value)`` for ``record``'s kind (see the module)."""
    spec = record.get("spec") if isinstance(record.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    kind = run_kind(record)
    out: list[tuple[str, str]] = [("kind", kind)]
    if kind == "import":
        out += _import(spec)
    elif kind == "simulation":
        out += _simulation(record)
    elif kind == "replay":
        out.append(("replays", str(record.get("source", "")).removeprefix("replay:")))
    elif spec.get("instrument"):
        out.append(("instrument", str(spec["instrument"])))
    protocol = spec.get("protocol")
    waveform = protocol.get("waveform") if isinstance(protocol, dict) else None
    if isinstance(waveform, dict) and kind != "import":
        described = ", ".join(f"{k} {v}" for k, v in waveform.items() if k != "type")
        out.append(("waveform", f"{waveform.get('type', '?')}: {described}"))
    return out
