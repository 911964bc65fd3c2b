"""Every exception the file readers raise on purpose, in one hierarchy.

A message names the file, where in it (a line, a column, a header field) and what
was expected there; it never quotes more of the file than a column's name.
"""

from __future__ import annotations

from hal.errors import HalError

__all__ = [
    "FileEncodingError",
    "FileFormatError",
    "FileReadError",
    "MissingColumnError",
    "MissingMetadataError",
    "UnitError",
    "UnknownFormatError",
]


class FileReadError(HalError):
    """A measurement file cannot be read as a recording.

    ``file`` is the file's name, ``where`` the line (``"line 12"``), column or header
    field the problem is in (``""`` for the whole file).
    """

    def __init__(self, file: str, message: str, *, where: str = "") -> None:
        self.file = file
        self.where = where
        self.detail = message
        super().__init__(f"{file}, {where}: {message}" if where else f"{file}: {message}")


class UnknownFormatError(FileReadError):
    """No reader recognises the file's content."""


class FileEncodingError(FileReadError):
    """The file's bytes are not text in any encoding its format is written in."""


class FileFormatError(FileReadError):
    """The file is of a known format but breaks it (truncated, a malformed line, ...)."""


class MissingColumnError(FileFormatError):
    """A column the recording needs (time, potential, current) is not in the file."""


class UnitError(FileFormatError):
    """A column's or a value's unit does not parse, or is not of the expected dimension."""


class MissingMetadataError(FileReadError):
    """Something essential the file does not say (a scan rate, an electrode area)."""
