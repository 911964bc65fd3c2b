"""Reading YAML documents (scenarios, twin specs) with errors that name the key path.

:func:`read_document` turns a file path, YAML text or a mapping into plain data;
:class:`Reader` walks one mapping of it, converts values (bare numbers are SI, strings
with units go through :mod:`physics.units`), checks their ranges and rejects keys it
never read. Every problem raises the caller's own error, made by an
:data:`ErrorFactory` from the key path (``"species.O.D"``, or the document's ``root``
such as ``"<scenario>"`` when the whole document is wrong) and a message that names the
value and what is accepted, so each schema keeps its error class and one wording.

Example::

    r = Reader({"D": "1e-5 cm^2/s"}, "species.O", error=ScenarioError, root="<scenario>")
    r.number("D", Quantity("diffusion coefficient", "m^2/s", "[length]**2/[time]"), lo=0.0)
    r.finish(("D", "c_bulk"))
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

from physics.units import Quantity, to_si
from runtime.documents import MAX_DOCUMENT_BYTES, DocumentError, kind_of, parse_yaml, read_text

__all__ = [
    "ErrorFactory",
    "Reader",
    "hidden_values",
    "listed",
    "number",
    "read_document",
    "show",
]

ErrorFactory: TypeAlias = Callable[[str, str], Exception]
"""Makes the exception to raise from a key path and a message (an error class whose
constructor takes ``(path, message)``, such as :class:`~physics.errors.ScenarioError`)."""


# Set while reading a document that whoever asked may not see (a file the daemon read
# for a client): errors then say what kind of value was there, never the value.
_HIDDEN: contextvars.ContextVar[bool] = contextvars.ContextVar("hidden_values", default=False)


@contextlib.contextmanager
def hidden_values() -> Iterator[None]:
    """Within this block (in this thread), errors name a value's kind instead of quoting
    it: for documents read from a file on someone else's behalf, whose contents must
    never be echoed back to them."""
    token = _HIDDEN.set(True)
    try:
        yield
    finally:
        _HIDDEN.reset(token)


def show(value: object) -> str:
    """``value`` as an error message quotes it: its repr, cut to 60 characters (only its
    kind inside :func:`hidden_values`)."""
    if _HIDDEN.get():
        return kind_of(value)
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def listed(options: Sequence[object]) -> str:
    """``options`` as an error message lists them: comma-separated."""
    return ", ".join(str(o) for o in options)


def read_document(
    source: str | os.PathLike[str] | Mapping[str, Any],
    *,
    error: ErrorFactory,
    root: str,
    max_bytes: int = MAX_DOCUMENT_BYTES,
) -> tuple[object, Path | None]:
    """The plain data of a document given as a YAML file path, YAML text or a mapping,
    and the file it came from (``None`` for text or a mapping).

    A path, or a one-line string that names something existing, is read as a file
    (a regular file of at most ``max_bytes`` bytes, UTF-8: see
    :func:`runtime.documents.read_text`); any other string with a newline or a colon is
    parsed as YAML text. A file must hold a mapping. Problems (no such file, not a
    regular file, too large, not UTF-8, invalid YAML with its line and column) raise
    ``error(root, message)``; no message quotes the file's text.
    """
    if isinstance(source, Mapping):
        return source, None
    path = Path(source)
    is_text = isinstance(source, str) and ("\n" in source or ":" in source)
    try:
        is_path = not isinstance(source, str) or ("\n" not in source and path.exists())
    except (OSError, ValueError):  # a long YAML string is not a valid path on some systems
        is_path = False
    if is_path or not is_text:
        try:
            doc = parse_yaml(read_text(path, max_bytes=max_bytes), str(path))
        except DocumentError as exc:
            raise error(root, str(exc)) from None
        if not isinstance(doc, Mapping):
            raise error(root, f"{path}: holds {kind_of(doc)}; accepted: a mapping of settings")
        return doc, path
    try:
        return parse_yaml(str(source), "YAML text"), None
    except DocumentError as exc:
        raise error(root, exc.problem) from None


class Reader:
    """Walks one mapping of a document, remembering its key path for error messages.

    ``node`` must be a mapping (else ``error(path or root, ...)`` is raised); ``path``
    is its dotted key path (``""`` for the document itself). Readers of nested mappings
    (:meth:`child`, :meth:`nested`) raise the same error.
    """

    def __init__(self, node: object, path: str, *, error: ErrorFactory, root: str) -> None:
        if not isinstance(node, Mapping):
            raise error(path or root, f"got {show(node)}; accepted: a mapping")
        self.node: Mapping[Any, Any] = node
        self.path = path
        self.error = error
        self.root = root
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        """The key path of ``name`` in this mapping."""
        return f"{self.path}.{name}" if self.path else name

    def has(self, name: str) -> bool:
        """Whether the mapping has the key ``name``."""
        return name in self.node

    def raw(self, name: str) -> object:
        """The value under ``name`` as it is, marked as read."""
        self.used.add(name)
        return self.node[name]

    def require(self, name: str) -> object:
        """Like :meth:`raw`, raising when the key is missing."""
        if name not in self.node:
            raise self.error(self.key(name), "required key is missing")
        return self.raw(name)

    def number(
        self,
        name: str,
        quantity: Quantity,
        *,
        default: float | None = None,
        lo: float | None = None,
        hi: float | None = None,
        lo_open: bool = False,
        hi_open: bool = False,
    ) -> float:
        """The number under ``name`` in SI units (see :func:`number`); ``default`` when
        the key is missing, or an error when there is no default."""
        if name not in self.node:
            if default is None:
                accepted = _accepted(quantity, lo, hi, lo_open, hi_open)
                raise self.error(self.key(name), f"required key is missing ({accepted})")
            return default
        return number(
            self.raw(name),
            self.key(name),
            quantity,
            error=self.error,
            lo=lo,
            hi=hi,
            lo_open=lo_open,
            hi_open=hi_open,
        )

    def optional_number(
        self,
        name: str,
        quantity: Quantity,
        *,
        lo: float | None = None,
        hi: float | None = None,
        lo_open: bool = False,
    ) -> float | None:
        """Like :meth:`number`, with ``None`` for a missing key."""
        if name not in self.node:
            return None
        return self.number(name, quantity, lo=lo, hi=hi, lo_open=lo_open)

    def integer(self, name: str, *, default: int, lo: int, hi: int) -> int:
        """The integer in ``[lo, hi]`` under ``name`` (a float with no fraction counts)."""
        if name not in self.node:
            return default
        value = self.raw(name)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.error(
                self.key(name), f"got {show(value)}; accepted: an integer from {lo} to {hi}"
            )
        return value

    def choice(self, name: str, options: Sequence[str], *, default: str | None = None) -> str:
        """The string under ``name``, one of ``options``."""
        if name not in self.node:
            if default is None:
                raise self.error(
                    self.key(name), f"required key is missing; accepted: {listed(options)}"
                )
            return default
        value = self.raw(name)
        if not isinstance(value, str) or value not in options:
            raise self.error(self.key(name), f"got {show(value)}; accepted: {listed(options)}")
        return value

    def text(self, name: str, *, default: str) -> str:
        """The non-empty string under ``name``."""
        if name not in self.node:
            return default
        value = self.raw(name)
        if not isinstance(value, str) or not value.strip():
            raise self.error(self.key(name), f"got {show(value)}; accepted: a non-empty string")
        return value

    def child(self, name: str) -> Reader:
        """A reader of the mapping under ``name``, raising when the key is missing."""
        return self.nested(self.require(name), self.key(name))

    def optional_child(self, name: str) -> Reader | None:
        """Like :meth:`child`, with ``None`` for a missing key."""
        return self.child(name) if name in self.node else None

    def nested(self, node: object, path: str) -> Reader:
        """A reader of ``node`` (a mapping found at key path ``path``, such as a list
        item) that raises the same error as this one."""
        return Reader(node, path, error=self.error, root=self.root)

    def finish(self, accepted: Sequence[str]) -> None:
        """Reject keys that were never read: they are typos or unsupported options."""
        for key in self.node:
            if key not in self.used:
                raise self.error(
                    self.key(str(key)), f"unknown key; accepted keys here: {listed(accepted)}"
                )


def number(
    value: object,
    path: str,
    quantity: Quantity,
    *,
    error: ErrorFactory,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    """``value`` (found at key path ``path``) as a finite number in SI units, within
    ``lo``/``hi`` (open ends when ``lo_open``/``hi_open``).

    A bare number (or a string that parses as one) is SI already; another string is
    converted as a ``quantity`` with units (``"100 mV/s"``), unless the quantity is
    dimensionless. Anything else raises ``error(path, message)``.
    """
    accepted = _accepted(quantity, lo, hi, lo_open, hi_open)
    if isinstance(value, bool):
        raise error(path, f"got {show(value)}; accepted: {accepted}")
    if isinstance(value, int | float):
        x = float(value)
    elif isinstance(value, str):
        try:
            # YAML 1.1 reads "1e-9" (no dot) as a string; a bare number is still SI.
            x = float(value)
        except ValueError:
            if quantity.si_unit == "dimensionless":
                raise error(path, f"got {show(value)}; accepted: {accepted}") from None
            try:
                x = to_si(value, quantity)
            except ValueError as exc:
                # The converter's message quotes the text; hidden, only its kind is named.
                problem = f"got {show(value)}; accepted: {accepted}" if _HIDDEN.get() else str(exc)
                raise error(path, problem) from None
    else:
        raise error(path, f"got {show(value)}; accepted: {accepted}")
    if not math.isfinite(x):
        raise error(path, f"got {show(value)}; accepted: {accepted}")
    too_low = lo is not None and (x <= lo if lo_open else x < lo)
    too_high = hi is not None and (x >= hi if hi_open else x > hi)
    if too_low or too_high:
        shown = show(value) if isinstance(value, str) or _HIDDEN.get() else f"{x:g}"
        if isinstance(value, str) and not _HIDDEN.get():
            shown += f" (= {x:g} {quantity.si_unit})"
        raise error(path, f"got {shown}; accepted: {accepted}")
    return x


def _accepted(
    quantity: Quantity, lo: float | None, hi: float | None, lo_open: bool, hi_open: bool
) -> str:
    unit = "" if quantity.si_unit == "dimensionless" else f" {quantity.si_unit}"
    if lo is not None and hi is not None:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        span = f"a number in {left}{lo:g}, {hi:g}{right}{unit}"
    elif lo is not None:
        span = f"a number {'>' if lo_open else '>='} {lo:g}{unit}"
    else:
        span = f"a number{unit}"
    if quantity.si_unit != "dimensionless":
        span += f", or a string with units (a {quantity.name})"
    return span
