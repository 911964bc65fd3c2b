"""One reader protocol, one registry, one entry point: :func:`read_recording`.

Each format is recognised by its content (the first kilobytes), not only by its
extension, so a renamed export is still read by the right reader. After the reader,
:func:`complete` fills in what the columns themselves tell (sweep segments, scan
numbers, the scan rate of each segment, a time base for a file without one) and the
metadata the user gave, which wins over the file's.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np

from hal.files.analysis import generated_time, scans_of, segment_summary, segments_of
from hal.files.errors import (
    FileFormatError,
    FileReadError,
    MissingMetadataError,
    UnknownFormatError,
)
from hal.files.recording import Recording

__all__ = ["MAX_FILE_BYTES", "READERS", "FileReader", "complete", "detect", "read_recording"]

MAX_FILE_BYTES: Final = 2 * 1024**3
"""The largest file read (2 GiB); a bigger one is refused rather than exhausting memory."""

_HEAD: Final = 64 * 1024


class FileReader(Protocol):
    """A reader of one instrument format.

    ``name`` is the format's short name (``autolab``), ``title`` its name in words,
    ``extensions`` the usual file name endings (lower case, with the dot).
    """

    @property
    def name(self) -> str:
        """The format's short name."""

    @property
    def title(self) -> str:
        """The format's name in words."""

    @property
    def extensions(self) -> tuple[str, ...]:
        """Usual file name endings."""

    def sniff(self, head: bytes) -> bool:
        """Whether the file's first bytes (up to 64 KiB) are of this format."""

    def read(self, data: bytes, file: str) -> Recording:
        """The recording in ``data`` (the whole file); ``file`` names it in errors.

        Raises :class:`~hal.files.errors.FileReadError` (or a subclass) and nothing else.
        A file without a time column returns ``time_generated=True`` and times of NaN:
        :func:`complete` makes them from the scan rate.
        """


def _readers() -> tuple[FileReader, ...]:
    from hal.files.autolab import AutolabReader  # noqa: PLC0415 - the registry below
    from hal.files.biologic import MprReader, MptReader  # noqa: PLC0415
    from hal.files.chi import ChiReader  # noqa: PLC0415
    from hal.files.gamry import GamryReader  # noqa: PLC0415
    from hal.files.palmsens import PsSessionReader, PsTraceCsvReader  # noqa: PLC0415

    return (
        MprReader(),
        PsSessionReader(),
        PsTraceCsvReader(),
        GamryReader(),
        MptReader(),
        ChiReader(),
        AutolabReader(),
    )


READERS: Final[tuple[FileReader, ...]] = _readers()
"""Every reader, in the order detection tries them (most specific content first)."""


def detect(head: bytes) -> FileReader | None:
    """The reader whose format the file's first bytes are in, or None."""
    for reader in READERS:
        try:
            if reader.sniff(head):
                return reader
        except Exception:  # noqa: S112 - a sniffer that trips on odd bytes does not match
            continue
    return None


def _known_formats() -> str:
    return "; ".join(f"{r.title} ({', '.join(r.extensions)})" for r in READERS)


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a file, refusing a directory, an unreadable or an oversized file."""
    p = Path(path)
    name = p.name or str(p)
    try:
        size = p.stat().st_size
        if p.is_dir():
            raise FileReadError(name, "is a directory; expected a measurement file")
        if size > MAX_FILE_BYTES:
            raise FileReadError(
                name,
                f"is {size / 1024**3:.1f} GiB; files over "
                f"{MAX_FILE_BYTES // 1024**3} GiB are not read",
            )
        return p.read_bytes()
    except OSError as exc:
        raise FileReadError(name, f"cannot be read: {exc.strerror or exc}") from None


def digest(data: bytes) -> str:
    """The content hash that identifies a file (SHA-256, hex): the same file imported
    twice is found by it, whatever its name."""
    return hashlib.sha256(data).hexdigest()


def read_recording(
    path: str | os.PathLike[str],
    *,
    data: bytes | None = None,
    reader: FileReader | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Recording:
    """Read a measurement file: detect its format, read it, :func:`complete` it.

    ``data`` are its bytes when already read; ``reader`` forces a format (a plain
    table needs a :class:`~hal.files.table.TableReader` with its column mapping);
    ``meta`` (SI values, see :data:`~hal.files.recording.META_KEYS`) overrides the
    file's metadata. Raises :class:`~hal.files.errors.FileReadError` and nothing else.
    """
    name = Path(path).name or str(path)
    if data is None:
        data = read_bytes(path)
    if not data.strip():
        raise FileFormatError(name, "is empty; expected a measurement export")
    if reader is None:
        reader = detect(data[:_HEAD])
    if reader is None:
        raise UnknownFormatError(
            name,
            "is in no format Galvana reads; accepted: " + _known_formats() + "; or a plain "
            "CSV/TSV with --map (see `galvana import --help`)",
        )
    try:
        # Values a damaged file makes overflow become inf, flagged below, not warnings.
        with np.errstate(all="ignore"):
            recording = reader.read(data, name)
    except FileReadError:
        raise
    except (ValueError, KeyError, IndexError, TypeError, OverflowError, RecursionError) as exc:
        # A reader's own checks raise FileReadError; anything else is a malformed file
        # that a check missed. Said in one line, never as a traceback.
        raise FileFormatError(
            name, f"is not a valid {reader.title} ({type(exc).__name__})"
        ) from None
    with np.errstate(all="ignore"):
        return complete(recording, name, meta or {})


def complete(recording: Recording, file: str, meta: Mapping[str, Any]) -> Recording:
    """``recording`` with the user's metadata applied and what its columns say filled in:
    a time base when the file has none (from the scan rate), sweep segments, scan
    numbers, and the scan rate measured when the header lacks it."""
    md = recording.metadata.with_values("user", **dict(meta))
    rec = replace(recording, metadata=md)
    if md.sources.get("current_sign") == "user" and md.current_sign is not None:
        if md.current_sign not in (1.0, -1.0):
            raise MissingMetadataError(
                file, "current_sign must be 1 or -1", where="--meta current_sign"
            )
        rec = replace(rec, I=rec.I * md.current_sign)
    if len(rec) == 0:
        raise FileFormatError(file, "holds no data rows; expected at least one sample")
    if rec.time_generated and not np.all(np.isfinite(rec.t)):
        if md.scan_rate is None:
            raise MissingMetadataError(
                file,
                "has no time column and does not give its scan rate; give it with "
                "--meta scan_rate=100mV/s",
            )
        try:
            t, how = generated_time(rec.potential, md.scan_rate, md.E_step)
        except ValueError:
            raise MissingMetadataError(
                file,
                "has no time column and its potential does not step; give "
                "--meta E_step=2mV (and scan_rate)",
            ) from None
        rec = replace(rec, t=t, time_note=how)
    finite = np.isfinite(rec.t)
    if not np.all(finite):
        raise FileFormatError(file, f"time column has {np.count_nonzero(~finite)} missing values")
    if len(rec) > 1 and not np.all(np.diff(rec.t) > 0):
        bad = int(np.flatnonzero(np.diff(rec.t) <= 0)[0]) + 1
        raise FileFormatError(
            file, f"time does not increase at data row {bad + 1}; expected increasing times"
        )
    segment = rec.segment if rec.segment is not None else segments_of(rec.potential)
    scan = rec.scan if rec.scan is not None else scans_of(rec.potential, segment)
    rec = replace(rec, segment=segment, scan=scan)
    if md.technique is None and int(segment[-1]) >= 1:
        md = md.with_values("measured", technique="cv")
    elif md.technique is None and len(rec) > 1 and np.ptp(rec.potential) > 0.01:
        md = md.with_values("measured", technique="lsv")
    if md.scan_rate is None and md.technique in ("cv", "lsv"):
        rates = [s["scan_rate"] for s in segment_summary(rec.t, rec.potential, segment)]
        rates = [r for r in rates if r]
        if rates:
            md = md.with_values("measured", scan_rate=float(np.median(rates)))
    if md.first_scan is None:
        md = md.with_values("measured", first_scan=int(scan[0]))
    steps = np.abs(np.diff(rec.potential))
    steps = steps[np.isfinite(steps) & (steps > 1e-7)]
    if md.E_step is None and steps.size and md.technique in ("cv", "lsv"):
        md = md.with_values("measured", E_step=float(np.median(steps)))
    if md.t_step is None and len(rec) > 1:
        md = md.with_values("measured", t_step=float(np.median(np.diff(rec.t))))
    return replace(rec, metadata=md)


def file_summary(rec: Recording) -> dict[str, Any]:
    """Scans and segments of a completed recording: rows, potentials and scan rates."""
    assert rec.segment is not None
    assert rec.scan is not None
    segments = segment_summary(rec.t, rec.potential, rec.segment)
    scans = []
    for number in np.unique(rec.scan).tolist():
        rows = np.flatnonzero(rec.scan == number)
        scans.append({"scan": int(number), "start": int(rows[0]), "stop": int(rows[-1]) + 1})
    return {"scans": scans, "segments": segments}
