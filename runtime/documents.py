"""Reading a document file (a run spec, a scenario, a configuration) without trusting it.

Every file that Galvana reads as a document goes through :func:`read_text`: it is
opened without blocking and read only when it is a regular file no larger than a
cap, so ``/dev/zero``, a FIFO with no writer, a directory or a 1 GB file is one
clear error instead of a hang or an exhausted memory. The text must be UTF-8 (a
UTF-16 or Latin-1 file is named as such). :func:`parse_yaml` parses YAML text, and
:func:`check_shape` bounds what it expands to (YAML aliases can make a small file
expand to billions of values).

No error here quotes the document: a message names the file, the line and column
and what was expected, never the text there, so a file that was not meant to be
read (a password file, a key) is never echoed back to whoever named it.

>>> from pathlib import Path
>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     (Path(d) / "a.yaml").write_text("rate: 100 Hz\\n")
...     read_yaml(Path(d) / "a.yaml")
13
{'rate': '100 Hz'}
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import yaml

from runtime.errors import GalvanaError

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "MAX_DOCUMENT_DEPTH",
    "MAX_DOCUMENT_VALUES",
    "DocumentError",
    "check_shape",
    "decode_text",
    "kind_of",
    "parse_yaml",
    "read_text",
    "read_yaml",
    "yaml_problem",
]

MAX_DOCUMENT_BYTES: Final = 4 * 1024 * 1024
"""The largest document file read by default (bytes): a spec or scenario is a few kB."""

MAX_DOCUMENT_VALUES: Final = 1_000_000
"""The most values (mappings, lists, scalars, aliases counted each time) a document may hold."""

MAX_DOCUMENT_DEPTH: Final = 64
"""The deepest nesting of mappings and lists a document may have."""


class DocumentError(GalvanaError):
    """A document cannot be read: not a regular file, too large, not UTF-8, not YAML.

    ``source`` names the document (a path, or a description such as ``<spec>``) and
    ``problem`` says what is wrong with it; the message is ``"<source>: <problem>"``.
    """

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


def read_text(path: str | os.PathLike[str], *, max_bytes: int = MAX_DOCUMENT_BYTES) -> str:
    """The UTF-8 text of the regular file ``path``, at most ``max_bytes`` bytes long.

    Raises :class:`DocumentError` for a missing or unreadable file, anything that is not
    a regular file (a device, a FIFO, a socket, a directory), a file over the cap, and
    text that is not UTF-8. Never blocks: a FIFO is refused without waiting for a writer.
    """
    shown = str(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise DocumentError(shown, "no such file") from None
    except OSError as exc:
        raise DocumentError(shown, f"cannot open it ({exc.strerror or exc})") from None
    try:
        mode = os.fstat(fd)
        if not stat.S_ISREG(mode.st_mode):
            raise DocumentError(
                shown, f"is {_kind(mode.st_mode)}, not a regular file; accepted: a YAML file"
            )
        if mode.st_size > max_bytes:
            raise DocumentError(
                shown,
                f"is {mode.st_size:,} bytes long; accepted: at most {max_bytes:,} bytes",
            )
        chunks: list[bytes] = []
        size = 0
        while size <= max_bytes:  # the file may grow while it is read
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise DocumentError(shown, f"cannot read it ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if size > max_bytes:
        raise DocumentError(shown, f"is over {max_bytes:,} bytes long; accepted: at most that")
    return decode_text(b"".join(chunks), shown)


def decode_text(raw: bytes, source: str) -> str:
    """``raw`` as UTF-8 text (a UTF-8 byte-order mark is dropped); a :class:`DocumentError`
    naming the encoding it seems to be in, or the line and column of the first byte that
    is not UTF-8, otherwise."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DocumentError(
            source, "is UTF-16 text (it starts with a UTF-16 byte-order mark); accepted: UTF-8"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        hint = " (it looks like UTF-16)" if b"\x00" in raw[:64] else ""
        raise DocumentError(
            source,
            f"is not UTF-8 text{hint}: the byte at line {line}, column {column} is not "
            "valid UTF-8; accepted: UTF-8 (save the file as UTF-8)",
        ) from None


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a file"


# What PyYAML quotes in a problem: token names ('<block end>') and punctuation (',')
# stay; anything else (an alias, a tag, a character of the text) is the document's.
_QUOTED = re.compile(r"'([^']*)'")


def _unquoted(match: re.Match[str]) -> str:
    text = match.group(1)
    kept = text.startswith("<") or (len(text) == 1 and not text.isalnum() and not text.isspace())
    return match.group(0) if kept else ""


def yaml_problem(exc: yaml.YAMLError) -> str:
    """Where and what a YAML error is, in words that never quote the document:
    ``"at line 3, column 7: could not find expected ':'"``.

    PyYAML's own message shows the offending line, and its problems quote characters,
    aliases and tags from it; those quotes are dropped (token names such as
    ``'<block end>'`` and single punctuation marks such as ``','`` stay).
    """
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"at line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or "invalid YAML"
    problem = " ".join(_QUOTED.sub(_unquoted, str(problem)).split())
    return f"not valid YAML {where}{problem}"


def parse_yaml(text: str, source: str) -> object:
    """The plain data of YAML ``text`` (safe loading: no tags that build objects), bounded
    by :func:`check_shape`; a :class:`DocumentError` naming ``source`` otherwise."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DocumentError(source, yaml_problem(exc)) from None
    except RecursionError:
        raise DocumentError(
            source, f"nests too deeply; accepted: at most {MAX_DOCUMENT_DEPTH} levels"
        ) from None
    check_shape(doc, source)
    return doc


def check_shape(
    doc: object,
    source: str,
    *,
    max_values: int = MAX_DOCUMENT_VALUES,
    max_depth: int = MAX_DOCUMENT_DEPTH,
) -> None:
    """Refuse a document that holds more than ``max_values`` values or nests deeper than
    ``max_depth``, counting a value reached twice (a YAML alias) twice: that is what
    encoding or walking it would cost."""
    stack: list[tuple[object, int]] = [(doc, 1)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > max_values:
            raise DocumentError(
                source,
                f"expands to more than {max_values:,} values (YAML aliases repeat what they "
                "name); accepted: a smaller document",
            )
        if isinstance(node, dict | list):
            if depth > max_depth:
                raise DocumentError(
                    source, f"nests deeper than {max_depth} levels; accepted: at most that"
                )
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, value in items:
                stack.append((value, depth + 1))
                if isinstance(node, dict):
                    stack.append((key, depth + 1))


def kind_of(value: object) -> str:
    """What a value read from a document is, in words, without quoting it: ``"a string"``,
    ``"a number"``, ``"a list"``, ``"a map"``, ``"a boolean"``, ``"nothing"``."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a map"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def read_yaml(path: str | os.PathLike[str], *, max_bytes: int = MAX_DOCUMENT_BYTES) -> object:
    """The plain data of the YAML file ``path``: :func:`read_text` then :func:`parse_yaml`."""
    return parse_yaml(read_text(path, max_bytes=max_bytes), str(Path(path)))
