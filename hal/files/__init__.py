"""Measurement files as recorded instruments: one reader protocol, one structure.

:func:`read_recording` detects a file's format from its content and returns a
:class:`Recording`: columns t (s), E (V), I (A, anodic positive), optional applied
potential, scan and segment numbers, and :class:`Metadata` (technique, scan rate,
potential step, sampling, electrode area, reference electrode, instrument, start
time, notes) in SI units. Formats: Metrohm Autolab NOVA ASCII, PalmSens PSTrace CSV
and ``.pssession``, Gamry ``.DTA``, BioLogic ``.mpt`` and ``.mpr``, CH Instruments
text, and a plain CSV/TSV with a :class:`~hal.files.table.ColumnMap`. Every problem
is a :class:`FileReadError` that names the file and the line or field.
"""

from hal.files.errors import (
    FileEncodingError,
    FileFormatError,
    FileReadError,
    MissingColumnError,
    MissingMetadataError,
    UnitError,
    UnknownFormatError,
)
from hal.files.reader import READERS, FileReader, detect, digest, read_bytes, read_recording
from hal.files.recording import META_KEYS, Metadata, Recording
from hal.files.table import ColumnMap, TableReader

__all__ = [
    "META_KEYS",
    "READERS",
    "ColumnMap",
    "FileEncodingError",
    "FileFormatError",
    "FileReadError",
    "FileReader",
    "Metadata",
    "MissingColumnError",
    "MissingMetadataError",
    "Recording",
    "TableReader",
    "UnitError",
    "UnknownFormatError",
    "detect",
    "digest",
    "read_bytes",
    "read_recording",
]
