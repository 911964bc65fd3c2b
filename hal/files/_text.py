"""Bytes to text and text to numbers, with errors that say where in the file.

Instruments write text in UTF-16 with a byte-order mark (PalmSens), UTF-8, or the
Windows code page of the PC they ran on (Gamry, EC-Lab, CH Instruments write
Windows-1252: ``µ``, ``²``, ``°`` as single bytes). Numbers may use a decimal comma
(EC-Lab and Gamry under a European Windows locale).
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from hal.files.errors import FileEncodingError, FileFormatError

__all__ = ["decode_text", "head_text", "looks_like_utf16", "number", "parse_rows"]

FloatArray = npt.NDArray[np.float64]


def looks_like_utf16(data: bytes) -> bool:
    """Whether ``data`` starts like UTF-16 text (a BOM, or ASCII with every other byte NUL)."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return True
    head = data[:512]
    return len(head) >= 8 and head[1::2].count(0) > 0.9 * (len(head) // 2)


def head_text(head: bytes) -> str:
    """The first bytes of a file as text for recognising its format: never raises (a
    character cut at the end, or a bad byte, becomes U+FFFD)."""
    if looks_like_utf16(head):
        even = head[: len(head) - len(head) % 2]
        return even.decode("utf-16", errors="replace").removeprefix("\ufeff")
    return head.decode("utf-8", errors="replace").removeprefix("\ufeff")


def decode_text(data: bytes, file: str) -> str:
    """``data`` as text: UTF-16 (BOM or NUL pattern), UTF-8, else Windows-1252.

    Raises :class:`FileEncodingError` for bytes that are none of these, or that hold
    NUL characters (a binary file).
    """
    try:
        if data.startswith(codecs.BOM_UTF16_LE) or data.startswith(codecs.BOM_UTF16_BE):
            text = data.decode("utf-16")
        elif looks_like_utf16(data):
            text = data.decode("utf-16-le")
        elif data.startswith(codecs.BOM_UTF8):
            text = data[3:].decode("utf-8")
        else:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = data.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise FileEncodingError(
            file,
            f"is not text: byte {exc.start} cannot be decoded; expected UTF-8, UTF-16 "
            "(with its byte-order mark) or Windows-1252 text",
        ) from None
    if "\x00" in text:
        at = text.index("\x00")
        line = text.count("\n", 0, at) + 1
        raise FileEncodingError(
            file,
            "holds NUL characters (a binary file, or text in another encoding); expected text",
            where=f"line {line}",
        )
    return text.removeprefix("\ufeff")


def number(text: str, file: str, where: str, *, decimal_comma: bool = False) -> float:
    """One number of a header field; raises :class:`FileFormatError` naming ``where``."""
    cleaned = text.strip()
    if decimal_comma:
        cleaned = cleaned.replace(",", ".")
    try:
        return float(cleaned)
    except ValueError:
        raise FileFormatError(file, "expected a number", where=where) from None


def parse_rows(
    lines: Sequence[str],
    first_line: int,
    file: str,
    *,
    delimiter: str | None,
    columns: Sequence[str],
    decimal_comma: bool = False,
    allow_empty: bool = False,
    trailing_delimiter: bool = False,
    use: Sequence[int] | None = None,
) -> FloatArray:
    """Data lines as a float array of shape (rows, len(columns)), or (rows, len(use))
    with only the 0-based columns ``use`` parsed (the others may hold text).

    ``first_line`` is the 1-based line number of ``lines[0]`` (for errors);
    ``delimiter`` None splits on whitespace. Empty cells become NaN when
    ``allow_empty``. A row with a wrong number of cells, or a cell that is not a
    number, raises :class:`FileFormatError` naming the line and the column.
    """
    ncols = len(columns)
    rows: list[list[str]] = []
    for k, line in enumerate(lines):
        cells = line.split(delimiter)
        if trailing_delimiter and cells and cells[-1].strip() == "":
            cells.pop()
        if len(cells) != ncols:
            if allow_empty and len(cells) < ncols:
                cells += [""] * (ncols - len(cells))
            else:
                raise FileFormatError(
                    file,
                    f"has {len(cells)} values; expected {ncols} ({', '.join(columns)[:120]})",
                    where=f"line {first_line + k}",
                )
        rows.append(cells)
    picked = list(range(ncols)) if use is None else list(use)
    if not rows:
        return np.empty((0, len(picked)))
    flat = [c for r in rows for c in r] if use is None else [r[j] for r in rows for j in picked]
    if decimal_comma:
        flat = [c.replace(",", ".") for c in flat]
    if allow_empty:
        flat = [c if c.strip() else "nan" for c in flat]
    try:
        values = np.array(flat, dtype=np.float64)
    except ValueError:
        for k, r in enumerate(rows):
            for j in picked:
                cell = r[j]
                try:
                    float(cell.replace(",", ".") if decimal_comma else cell)
                except ValueError:
                    if allow_empty and not cell.strip():
                        continue
                    raise FileFormatError(
                        file,
                        f"column {j + 1} ({columns[j][:40]}) is not a number; expected a "
                        f"number{' (a decimal comma is accepted)' if decimal_comma else ''}",
                        where=f"line {first_line + k}",
                    ) from None
        raise FileFormatError(file, "holds a value that is not a number") from None
    return values.reshape(len(rows), len(picked))
