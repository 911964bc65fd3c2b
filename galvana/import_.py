"""``galvana import FILE... [--data DIR] [--name N] [--meta key=value ...] [--cycles 2-3]``.

Each file is read whole first (its format found from its content); only when every
file is good is anything recorded, so bad input leaves no run behind. With a daemon
answering on the data directory's socket (or ``--socket``/``--tcp``), the columns go
to it in chunks through ``runs.import_chunk`` and the run is recorded by
``runs.import_commit``; with none, the run is written straight into the data
directory (refused while a daemon holds its pid lock). A file imported before (same
content) is refused, naming the run that holds it, unless ``--force``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
from pathlib import Path
from typing import Any

import numpy as np

from actors.importer import CHUNK_ROWS, Prepared, prepare, record_offline
from hal.files import FileReader, Recording
from hal.files.reader import READERS
from hal.files.spec import parse_cycles, parse_meta
from hal.files.table import ROLES, ColumnMap, ColumnMapDocument, TableReader
from runtime.client import Client, resolve_data_dir
from runtime.commands import connect
from runtime.errors import ApiError, ConnectionLost, GalvanaError
from runtime.schema import decode, read_document

__all__ = ["ImportError_", "configure", "run"]


class ImportError_(GalvanaError):  # noqa: N801 - `ImportError` is Python's own
    """Bad arguments to ``galvana import`` (a mapping, a --meta, a --cycles)."""


def configure(parser: argparse.ArgumentParser) -> None:
    """The options of ``galvana import``."""
    parser.add_argument("files", nargs="+", metavar="FILE", help="instrument exports to import")
    parser.add_argument("--name", help="the run's name (default: the file's name)")
    parser.add_argument(
        "--meta",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="metadata the file lacks or gets wrong: area=0.0707cm2, scan_rate=100mV/s, "
        "reference='Ag/AgCl 3M KCl', E_step=2mV, technique=cv, current_sign=-1, notes=...",
    )
    parser.add_argument("--cycles", help="import only these scans, e.g. 2-3 or 1,3")
    parser.add_argument("--force", action="store_true", help="import a file imported before")
    parser.add_argument(
        "--format",
        choices=[r.name for r in READERS],
        help="read as this format (default: found from the content)",
    )
    parser.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="ROLE=COLUMN:UNIT",
        help="a plain CSV/TSV's columns: t=time:ms E=2:V I=current:uA (roles: "
        + ", ".join(ROLES)
        + "; COLUMN a header name or a 1-based number)",
    )
    parser.add_argument("--mapping", help="the column mapping of a plain table, as YAML")
    parser.add_argument(
        "--data", help="the data directory (default: $GALVANA_HOME or ./galvana-data)"
    )
    parser.add_argument("--socket", help="the daemon's Unix socket (default: DATA/galvana.sock)")
    parser.add_argument("--tcp", help="reach the daemon over TCP at HOST:PORT instead")
    parser.add_argument("--token", help="the daemon's TCP token (or $GALVANA_TOKEN)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _mapping_from_args(items: list[str]) -> ColumnMap:
    columns: dict[str, tuple[str | int, str]] = {}
    for item in items:
        role, sep, rest = item.partition("=")
        column, _, unit = rest.rpartition(":") if ":" in rest else (rest, "", "")
        if not sep or not column or role not in ROLES:
            raise ImportError_(
                f"--map {item!r}: expected ROLE=COLUMN:UNIT with ROLE one of {', '.join(ROLES)}"
            )
        if ROLES[role] is not None and not unit:
            raise ImportError_(f"--map {item!r}: give the column's unit, e.g. {role}={column}:V")
        columns[role] = (int(column) if column.isdigit() else column, unit)
    return ColumnMap(columns)


def _mapping_from_file(path: str) -> tuple[ColumnMap, dict[str, Any]]:

    def error(where: str, message: str) -> Exception:
        return ImportError_(f"--mapping {path}: {where}: {message}")

    doc, _ = read_document(path, error=error, root="<mapping>")
    mapping = decode(doc, ColumnMapDocument, error=error, root="<mapping>")
    return mapping.column_map(), {str(k): str(v) for k, v in mapping.meta.items()}


def _reader(args: argparse.Namespace) -> tuple[FileReader | None, list[str]]:
    extra_meta: list[str] = []
    if args.mapping and args.map:
        raise ImportError_("give the columns with --map or with --mapping, not both")
    if args.mapping:
        mapping, meta = _mapping_from_file(args.mapping)
        extra_meta = [f"{k}={v}" for k, v in meta.items()]
        return TableReader(mapping), extra_meta
    if args.map:
        return TableReader(_mapping_from_args(args.map)), extra_meta
    if args.format:
        return next(r for r in READERS if r.name == args.format), extra_meta
    return None, extra_meta


def _describe(rec: Recording, key: str, shown: str) -> str:
    source = rec.metadata.sources.get(key)
    return f"{shown} ({source})" if source else shown


def _summary(prepared: Prepared, record: dict[str, Any], where: str) -> list[str]:
    rec = prepared.recording
    md = rec.metadata
    spec = prepared.spec["import"]
    scans = spec["programme"]["scans_imported"]
    parts = [
        f"{record['samples']:,} samples",
        f"scans {scans[0]}-{scans[-1]}" if len(scans) > 1 else f"scan {scans[0]}",
    ]
    if md.technique:
        rate = f" at {md.scan_rate * 1e3:.4g} mV/s" if md.scan_rate else ""
        parts.append(_describe(rec, "scan_rate", f"{md.technique}{rate}") if rate else md.technique)
    waveform = (prepared.spec.get("protocol") or {}).get("waveform") or {}
    if str(waveform.get("type", "")).startswith("staircase"):
        at = waveform["sample"][1]
        parts.append(
            f"a staircase of {waveform['E_step'] * 1e3:.4g} mV steps sampled at "
            + ("the end of each" if at == 1.0 else f"{at:g} of each")
        )
    parts.append(
        _describe(rec, "area", f"area {md.area * 1e4:.4g} cm²") if md.area else "area not given"
    )
    reference = spec.get("reference")
    if reference:
        parts.append(
            _describe(rec, "reference", f"reference {reference['name'] or reference['given']}")
        )
    lines = [f"imported {prepared.file} as run {record['id']} ({where}): " + ", ".join(parts)]
    notes = [
        spec["time"]["note"],
        spec["programme"]["note"],
        md.notes,
        spec["protocol_note"]
        if "protocol" in prepared.spec
        else f"no protocol recovered: {spec['protocol_note']}",
        (reference or {}).get("note", ""),
    ]
    lines += [f"  note: {n}" for n in notes if n]
    return lines


def _through_daemon(daemon: Client, prepared: Prepared, force: bool) -> dict[str, Any]:
    token = secrets.token_hex(12)
    try:
        for start in range(0, len(prepared.t), CHUNK_ROWS):
            stop = start + CHUNK_ROWS
            daemon.call(
                "runs",
                "import_chunk",
                token,
                np.ascontiguousarray(prepared.t[start:stop]),
                np.ascontiguousarray(prepared.E[start:stop]),
                np.ascontiguousarray(prepared.I[start:stop]),
                timeout=120,
            )
        record: dict[str, Any] = daemon.call(
            "runs", "import_commit", token, prepared.spec, prepared.source, force, timeout=600
        )
        return record
    except ApiError as exc:
        with contextlib.suppress(ApiError):
            daemon.call("runs", "import_discard", token)
        if isinstance(exc, ConnectionLost):
            raise
        raise GalvanaError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    """Import every file; returns 0, or raises a one-line error (exit status 2)."""
    reader, extra_meta = _reader(args)
    try:
        meta = parse_meta([*extra_meta, *args.meta])
        cycles = parse_cycles(args.cycles) if args.cycles else None
    except ValueError as exc:
        raise ImportError_(str(exc)) from None
    prepared: list[Prepared] = []
    for file in args.files:
        try:
            prepared.append(
                prepare(
                    file,
                    meta=meta,
                    cycles=cycles,
                    cycles_text=args.cycles,
                    name=args.name,
                    reader=reader,
                )
            )
        except ValueError as exc:
            raise ImportError_(str(exc)) from None
    data = resolve_data_dir(args.data)
    daemon: Client | None
    try:
        daemon = connect(args)
    except ConnectionLost:
        if args.tcp or args.socket:
            raise
        daemon = None
    results = []
    if daemon is not None:
        with daemon:
            for p in prepared:
                record = _through_daemon(daemon, p, args.force)
                results.append((p, record, "through the daemon"))
    else:
        for p in prepared:
            record = record_offline(Path(data), p, force=args.force)
            results.append((p, record, f"into {data}"))
    if args.json:
        shown = [{**r, "file": p.file, "spec": p.spec} for p, r, _ in results]
        print(json.dumps(shown, indent=2, default=str))
    else:
        for p, record, where in results:
            for line in _summary(p, record, where):
                print(line)
    return 0
