"""A run as a Frictionless data package: ``datapackage.json`` beside a CSV of its samples.

The layout follows the echemdb/unitpackage convention: one tabular resource whose
schema gives every field a ``unit`` (``s``, ``V``, ``A``), the potential its
``reference`` electrode, and whose ``metadata`` holds the measurement's description
under ``echemdb`` (electrodes with their area, the scan rate, the technique) and the
run as Galvana recorded it under ``galvana`` (its id, source, state and spec). Any
Frictionless reader (``frictionless``, ``unitpackage``, pandas on the CSV) reads it.

The JSON is written here by the Data Package specification (v1) rather than through
the ``frictionless`` library, whose dependency tree (pydantic, typer, jinja2,
requests, petl, jsonschema, ...) outweighs one JSON file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["write_datapackage"]

_TECHNIQUE_NAMES = {"cv": "CV", "lsv": "LSV", "ca": "CA", "swv": "SWV"}


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-")
    return slug or "run"


def _echemdb(spec: Mapping[str, Any]) -> dict[str, Any]:
    imported = spec.get("import") if isinstance(spec.get("import"), Mapping) else None
    metadata: Mapping[str, Any] = (imported or {}).get("metadata") or {}
    model: Mapping[str, Any] = spec["model"] if isinstance(spec.get("model"), Mapping) else {}
    electrodes: list[dict[str, Any]] = []
    area = metadata.get("area")
    if area is None and isinstance(model.get("electrode"), Mapping):
        area = (
            model["electrode"].get("area")
            if isinstance(model["electrode"].get("area"), float | int)
            else None
        )
    we: dict[str, Any] = {"name": "WE", "function": "working electrode"}
    if area is not None:
        we["geometric electrolyte contact area"] = {"value": float(area) * 1e4, "unit": "cm2"}
    electrodes.append(we)
    reference = (imported or {}).get("reference")
    if isinstance(reference, Mapping):
        electrodes.append(
            {
                "name": "REF",
                "function": "reference electrode",
                "type": reference.get("name") or reference.get("given"),
            }
        )
    description: dict[str, Any] = {"type": "digitized" if not imported else "raw"}
    technique = metadata.get("technique")
    if technique:
        description["measurement type"] = _TECHNIQUE_NAMES.get(str(technique), str(technique))
    if metadata.get("scan_rate"):
        description["scan rate"] = {"value": float(metadata["scan_rate"]), "unit": "V / s"}
    out: dict[str, Any] = {
        "description": f"{spec.get('name', '')}".strip(),
        "system": {"electrodes": electrodes},
        "figure description": description,
    }
    if imported:
        out["source"] = {
            "file": imported.get("file"),
            "format": imported.get("format"),
            "sha256": imported.get("sha256"),
        }
        if metadata.get("instrument"):
            out["source"]["instrument"] = metadata["instrument"]
    return out


def write_datapackage(
    run: Mapping[str, Any],
    dest: Path,
    write_csv: Callable[[Path], int],
) -> int:
    """Write run ``run`` (its record with ``spec``, as ``runs show`` gives it) as a data
    package in directory ``dest`` (created; must not exist). ``write_csv(path)`` writes
    the samples as CSV with the header ``t,E,I,flags`` and returns the rows."""
    dest.mkdir(parents=True)
    run_id = str(run.get("id", "run"))
    spec = run.get("spec") if isinstance(run.get("spec"), Mapping) else {}
    assert isinstance(spec, Mapping)
    csv_name = f"{run_id}.csv"
    rows = write_csv(dest / csv_name)
    imported = spec.get("import") if isinstance(spec.get("import"), Mapping) else {}
    reference = (imported or {}).get("reference") if imported else None
    ref_name = None
    if isinstance(reference, Mapping):
        ref_name = reference.get("name") or reference.get("given")
    potential: dict[str, Any] = {
        "name": "E",
        "type": "number",
        "unit": "V",
        "description": "the potential the cell was driven along (applied when the "
        "instrument recorded it)",
    }
    if ref_name:
        potential["reference"] = ref_name
    fields = [
        {"name": "t", "type": "number", "unit": "s", "description": "time since the run started"},
        potential,
        {"name": "I", "type": "number", "unit": "A", "description": "current, anodic positive"},
        {
            "name": "flags",
            "type": "integer",
            "unit": "1",
            "description": "sample status bits (overload 1, compliance 2, gap 16)",
        },
    ]
    name = _slug(run_id)
    package = {
        "name": name,
        "title": str(spec.get("name") or run_id),
        "created": run.get("created"),
        "resources": [
            {
                "name": name,
                "type": "table",
                "path": csv_name,
                "scheme": "file",
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "schema": {"fields": fields},
                "metadata": {
                    "echemdb": _echemdb(spec),
                    "galvana": {
                        "run": run_id,
                        "source": run.get("source", ""),
                        "state": run.get("state", ""),
                        "samples": rows,
                        "spec": spec,
                    },
                },
            }
        ],
    }
    (dest / "datapackage.json").write_text(json.dumps(package, indent=2, default=str) + "\n")
    return rows
