"""The schema library of every YAML document: scenarios, twin specs, the daemon's
configuration, import mappings.

A document's schema is a tree of :class:`Document` structs (msgspec, BSD-3-Clause):
msgspec checks the shape (mappings, lists, ``Literal`` choices, tagged unions, unknown
and missing keys). A field whose ``Annotated`` metadata holds a :class:`Leaf` is read
by that leaf once msgspec has built the struct: :class:`Number` (a number in SI, or a
string with units converted by :mod:`runtime.units` and checked for its dimension),
:class:`Integer`, :class:`Text`, :class:`Custom` (a reader of its own, or a value kept
for code that reads it once it knows its unit); a leaf on a list's or a mapping's
values reads each. Such a field is typed for mypy as what it holds once read
(:data:`SI` is ``float``) and left to the leaf by msgspec. A struct's
``__post_init__`` (calling ``super().__post_init__()`` first) checks the rules that
span fields, raising :class:`Invalid` with the key it blames.

:func:`decode` turns plain data into a struct and every problem into ONE error made by
the caller's :data:`ErrorFactory` from the key path (``species.O.D``,
``instruments[0].limits.I_max``) and a message that names the value (inside
:func:`hidden_values` only its kind: files read for someone else are never quoted)
and what is accepted. :func:`json_schema` describes the same structs as a JSON Schema.

Example::

    class Cell(Document):
        T: Annotated[SI, Number(TEMPERATURE, lo=200.0, hi=600.0)] = 298.15

    decode({"T": "25 degC"}, Cell, error=ScenarioError, root="<scenario>", path="cell")
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import os
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypeAlias, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from runtime.documents import MAX_DOCUMENT_BYTES, DocumentError, kind_of, parse_yaml, read_text
from runtime.units import Quantity, to_si

__all__ = [
    "SI",
    "UNSET",
    "Custom",
    "Describe",
    "Document",
    "ErrorFactory",
    "Int",
    "Integer",
    "Invalid",
    "Leaf",
    "Number",
    "Str",
    "Text",
    "UnsetType",
    "decode",
    "hidden_values",
    "json_schema",
    "listed",
    "read",
    "read_document",
    "show",
]

T = TypeVar("T")

ErrorFactory: TypeAlias = Callable[[str, str], Exception]
"""Makes the exception to raise from a key path and a message (an error class whose
constructor takes ``(path, message)``, such as :class:`~physics.errors.ScenarioError`)."""

if TYPE_CHECKING:
    SI: TypeAlias = float
    Int: TypeAlias = int
    Str: TypeAlias = str
else:
    # What a document may hold there: msgspec leaves it to the field's Leaf, which
    # stores what it read (an SI float, an int, a string).
    SI = Int = Str = Any


# Set while reading a document that whoever asked may not see (a file the daemon read
# for a client, the daemon's configuration): errors then say what kind of value was
# there, never the value.
_HIDDEN: contextvars.ContextVar[bool] = contextvars.ContextVar("hidden_values", default=False)
# How the struct being read introduces what it accepts (Document.wording).
_WORDING: contextvars.ContextVar[str] = contextvars.ContextVar("wording", default="accepted:")
# The quantity of a Number declared without one (a prior's values take the unit of the
# parameter they describe): set by decode(..., units=).
_UNITS: contextvars.ContextVar[Quantity | None] = contextvars.ContextVar("units", default=None)


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


def _refused(shown: str, accepted: str) -> str:
    """The message for a value refused: ``got X; accepted: Y`` (in the words of the
    struct being read: ``got X; expected Y`` in the daemon's configuration)."""
    return f"got {shown}; {_WORDING.get()} {accepted}"


def listed(options: Sequence[object]) -> str:
    """``options`` as an error message lists them: comma-separated."""
    return ", ".join(str(o) for o in options)


class Invalid(ValueError):
    """A value or a combination of values a document may not hold: raised by a
    :class:`Leaf` or a struct's ``__post_init__``. ``key`` is where, below the struct
    (``"D"``, ``"steps[1].E"``; ``""``: the struct itself), ``message`` what is wrong
    and what is accepted."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


def _join(*parts: str) -> str:
    out = ""
    for part in parts:
        if not part:
            continue
        out = part if not out or part.startswith("[") else f"{out}.{part}"
    return out


# --------------------------------------------------------------------------- leaves


class Leaf(Protocol):
    """How a field's value is read, checked and described (``Annotated`` metadata)."""

    def read(self, value: object) -> Any:
        """The value as the struct holds it; :class:`Invalid` (key ``""``) if refused."""
        ...

    def accepted(self) -> str:
        """What is accepted, in words (``"an integer from 1 to 6"``)."""
        ...

    def missing(self) -> str:
        """The message when the field is required and missing."""
        ...

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of what a document may hold here."""
        ...


@dataclass(frozen=True, slots=True)
class Describe:
    """``Annotated`` metadata naming what a field that msgspec checks accepts, in words
    (``"a list of directories"``), for its error messages."""

    text: str


def read(leaf: Leaf, value: object, key: str = "") -> Any:
    """``leaf.read(value)``, a refusal blamed on ``key`` (below the struct being read)."""
    try:
        return leaf.read(value)
    except Invalid as exc:
        raise Invalid(_join(key, exc.key), exc.message) from None


_NUMBER_TEXT = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*"
_BARE = Quantity("number", "dimensionless", "[]")


@dataclass(frozen=True, slots=True)
class Number:
    """A finite number within ``lo``/``hi`` (open ends when ``lo_open``/``hi_open``), in
    SI: a bare number (or a string that parses as one) is SI already; another string is
    converted as a ``quantity`` with units (``"100 mV/s"``), unless the quantity is
    dimensionless. ``quantity`` None: the one given to :func:`decode` as ``units``.
    ``accepted`` replaces the words for what is accepted; ``finite`` False also takes
    infinities."""

    quantity: Quantity | None
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    text: str | None = None
    finite: bool = True

    def _quantity(self) -> Quantity:
        # Without one (a struct built in code, not read): a bare number, taken as SI.
        return self.quantity or _UNITS.get() or _BARE

    def read(self, value: object) -> float:
        q = self._quantity()
        if isinstance(value, bool):
            raise Invalid("", _refused(show(value), self.accepted()))
        if isinstance(value, int | float):
            x = float(value)
        elif isinstance(value, str):
            try:
                # YAML 1.1 reads "1e-9" (no dot) as a string; a bare number is still SI.
                x = float(value)
            except ValueError:
                if q.si_unit == "dimensionless":
                    raise Invalid("", _refused(show(value), self.accepted())) from None
                try:
                    x = to_si(value, q)
                except ValueError as exc:
                    # The converter's message quotes the text; hidden, only its kind is named.
                    problem = _refused(show(value), self.accepted())
                    raise Invalid("", problem if _HIDDEN.get() else str(exc)) from None
        else:
            raise Invalid("", _refused(show(value), self.accepted()))
        if math.isnan(x) or (self.finite and math.isinf(x)):
            raise Invalid("", _refused(show(value), self.accepted()))
        lo, hi = self.lo, self.hi
        too_low = lo is not None and (x <= lo if self.lo_open else x < lo)
        too_high = hi is not None and (x >= hi if self.hi_open else x > hi)
        if too_low or too_high:
            if _HIDDEN.get():
                shown = _beyond(value, x, lo=lo, hi=hi, lo_open=self.lo_open, hi_open=self.hi_open)
            elif isinstance(value, str):
                shown = f"{show(value)} (= {x:g} {q.si_unit})"
            else:
                shown = f"{x:g}"
            raise Invalid("", _refused(shown, self.accepted()))
        return x

    def accepted(self) -> str:
        if self.text is not None:
            return self.text
        q = self._quantity()
        lo, hi = self.lo, self.hi
        unit = "" if q.si_unit == "dimensionless" else f" {q.si_unit}"
        if lo is not None and hi is not None:
            left = "(" if self.lo_open else "["
            right = ")" if self.hi_open else "]"
            span = f"a number in {left}{lo:g}, {hi:g}{right}{unit}"
        elif lo is not None:
            span = f"a number {'>' if self.lo_open else '>='} {lo:g}{unit}"
        else:
            span = f"a number{unit}"
        if q.si_unit != "dimensionless":
            span += f", or a string with units (a {q.name})"
        return span

    def missing(self) -> str:
        return f"required key is missing ({self.accepted()})"

    def json_schema(self) -> dict[str, Any]:
        number: dict[str, Any] = {"type": "number"}
        if self.lo is not None:
            number["exclusiveMinimum" if self.lo_open else "minimum"] = self.lo
        if self.hi is not None:
            number["exclusiveMaximum" if self.hi_open else "maximum"] = self.hi
        q = self.quantity or _UNITS.get()
        if q is not None and q.si_unit == "dimensionless":
            text = {"type": "string", "pattern": _NUMBER_TEXT + "$"}
            what = "a dimensionless number"
        else:
            text = {"type": "string", "pattern": _NUMBER_TEXT}
            what = (
                f"a {q.name} in {q.si_unit}, or a string with units"
                if q is not None
                else "a number in the SI unit of what it describes, or a string with units"
            )
        return {"anyOf": [number, text], "description": what}


def _beyond(
    value: object,
    x: float,
    *,
    lo: float | None,
    hi: float | None,
    lo_open: bool = False,
    hi_open: bool = False,
) -> str:
    """A number out of range described without quoting it: ``"a number below 1"``."""
    if isinstance(value, str):
        return kind_of(value)
    if lo is not None and (x <= lo if lo_open else x < lo):
        return f"a number {'<=' if lo_open else 'below'} {lo:g}"
    return f"a number {'>=' if hi_open else 'above'} {hi:g}"


@dataclass(frozen=True, slots=True)
class Integer:
    """An integer from ``lo`` to ``hi`` (``hi`` None: no upper bound); a float with no
    fraction counts."""

    lo: int
    hi: int | None = None

    def read(self, value: object) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid("", _refused(show(value), self.accepted()))
        if value < self.lo or (self.hi is not None and value > self.hi):
            shown = _beyond(value, value, lo=self.lo, hi=self.hi) if _HIDDEN.get() else str(value)
            raise Invalid("", _refused(shown, self.accepted()))
        return value

    def accepted(self) -> str:
        if self.hi is None:
            return f"an integer >= {self.lo}"
        return f"an integer from {self.lo} to {self.hi}"

    def missing(self) -> str:
        return f"required key is missing ({self.accepted()})"

    def json_schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "integer", "minimum": self.lo}
        if self.hi is not None:
            out["maximum"] = self.hi
        return out


@dataclass(frozen=True, slots=True)
class Text:
    """A string with something other than blanks in it; ``accepted`` names what it is."""

    text: str = "a non-empty string"

    def read(self, value: object) -> str:
        if not isinstance(value, str) or not value.strip():
            raise Invalid("", _refused(show(value), self.text))
        return value

    def accepted(self) -> str:
        return self.text

    def missing(self) -> str:
        return f"required key is missing ({self.text})"

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": r"\S", "description": self.text}


@dataclass(frozen=True, slots=True)
class Custom:
    """A value read by ``reader`` (which raises :class:`Invalid`), or kept as given for
    code that reads it once it knows what it needs (a prior's unit follows from the
    parameter it describes). ``text`` says what is accepted; ``type`` is what the JSON
    Schema says of it (its structs' :class:`Number` leaves without a quantity take
    strings with units)."""

    type: Any
    text: str
    reader: Callable[[object], Any] | None = None

    def read(self, value: object) -> Any:
        return value if self.reader is None else self.reader(value)

    def accepted(self) -> str:
        return self.text

    def missing(self) -> str:
        return f"required key is missing ({self.text})"

    def json_schema(self) -> dict[str, Any]:
        # Made by json_schema(), which puts the type's structs among the definitions.
        raise NotImplementedError


# --------------------------------------------------------------------------- documents


# Given as a mapping: mypy's dataclass_transform would otherwise require every subclass
# to repeat frozen=True (msgspec inherits it).
_DOCUMENT_CONFIG: dict[str, Any] = {"forbid_unknown_fields": True, "frozen": True}


class Document(msgspec.Struct, **_DOCUMENT_CONFIG):
    """The base of every document struct: unknown keys are refused, leaves are read.

    Class variables shape the messages: ``wording`` (``"accepted:"`` or ``"expected"``)
    introduces what is accepted, ``described`` is what a value of this struct is in
    words (when something else was given); :meth:`refuse_unknown` words unknown keys.
    """

    wording: ClassVar[str] = "accepted:"
    described: ClassVar[str] = "a mapping"

    def __post_init__(self) -> None:
        token = _WORDING.set(self.wording)
        try:
            self._read_leaves()
        finally:
            _WORDING.reset(token)

    def _read_leaves(self) -> None:
        for name, key, leaf, holder in _leaves(type(self)):
            value = getattr(self, name)
            if value is UNSET:
                continue
            if holder is list and isinstance(value, list):
                value = [read(leaf, item, f"{key}[{i}]") for i, item in enumerate(value)]
            elif holder is dict and isinstance(value, dict):
                value = {k: read(leaf, item, f"{key}.{k}") for k, item in value.items()}
            elif holder is None:
                value = read(leaf, value, key)
            msgspec.structs.force_setattr(self, name, value)

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The keys a mapping of this struct may have, in order (a tag first)."""
        tag = cls.__struct_config__.tag_field
        names = tuple(f.encode_name for f in msgspec.structs.fields(cls))
        return (tag, *names) if tag else names

    @classmethod
    def refuse_unknown(cls, unknown: Sequence[str]) -> Invalid:
        """The error for the keys in ``unknown`` (in the document's order)."""
        return Invalid(unknown[0], f"unknown key; accepted keys here: {listed(cls.keys())}")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


@functools.cache
def _leaves(cls: type[Document]) -> tuple[tuple[str, str, Leaf, type | None], ...]:
    """The fields of ``cls`` read by a leaf: (name, key, leaf, ``list`` or ``dict`` when
    the leaf reads each item of one, else None)."""
    out = []
    hints = _hints(cls)
    for f in msgspec.structs.fields(cls):
        leaf, holder = _leaf_of(hints[f.name])
        if leaf is not None:
            out.append((f.name, f.encode_name, leaf, holder))
    return tuple(out)


def _leaf_of(annotation: Any) -> tuple[Leaf | None, type | None]:
    base, extras = _unwrap(annotation)
    for extra in extras:
        if hasattr(extra, "read") and hasattr(extra, "json_schema"):
            return extra, None
    origin = typing.get_origin(base)
    if origin is list or origin is dict:
        leaf, _ = _leaf_of(typing.get_args(base)[-1])
        return leaf, origin if leaf is not None else None
    return None, None


def _unwrap(annotation: Any) -> tuple[Any, tuple[Any, ...]]:
    """``Annotated[X, a, b]`` as ``(X, (a, b))``; anything else as ``(it, ())``."""
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        return base, tuple(extras)
    return annotation, ()


def _members(annotation: Any) -> tuple[Any, ...]:
    base, _ = _unwrap(annotation)
    if typing.get_origin(base) in (typing.Union, types.UnionType):
        return tuple(m for m in typing.get_args(base) if m not in (UnsetType, type(None)))
    return (base,)


def _structs(annotation: Any) -> list[type[Document]]:
    return [m for m in _members(annotation) if isinstance(m, type) and issubclass(m, Document)]


def _tags(annotation: Any) -> list[str]:
    return [str(s.__struct_config__.tag) for s in _structs(annotation) if s.__struct_config__.tag]


# --------------------------------------------------------------------------- decoding


def decode(
    raw: object,
    type_: type[T],
    *,
    error: ErrorFactory,
    root: str,
    path: str = "",
    units: Quantity | None = None,
) -> T:
    """``raw`` (plain data: a mapping from YAML) as a ``type_`` struct (or a union of
    them), read and checked; a problem raises ``error(key path, message)``, the key path
    prefixed with ``path`` (``root``, such as ``"<scenario>"``, when the whole document
    is wrong). ``units``: the quantity of the :class:`Number` fields declared without
    one."""
    token = _UNITS.set(units)
    try:
        return msgspec.convert(raw, type_)
    except msgspec.ValidationError as exc:
        where, message = _problem(exc, raw, type_)
        raise error(_join(path, where) or root, message) from None
    finally:
        _UNITS.reset(token)


_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_MISSING = object()


def _problem(exc: msgspec.ValidationError, raw: object, type_: Any) -> tuple[str, str]:
    """Where (a key path) and what (in words) msgspec's refusal of ``raw`` is."""
    text, sep, at = str(exc).rpartition(" - at `")
    if not sep:
        text, at = str(exc), "$`"
    segments: list[str | int] = [
        m.group(1) if m.group(1) is not None else int(m.group(2)) if m.group(2) != "..." else "?"
        for m in _SEGMENT.finditer(at[1:-1])
    ]
    where = "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in segments).lstrip(".")
    if "?" in segments:  # below a mapping's key, which msgspec does not name
        return _in_mapping(segments, raw, type_, text)
    cause = exc.__cause__
    if isinstance(cause, Invalid):
        return _join(where, cause.key), cause.message
    annotation, value, parent = _locate(type_, raw, segments)
    wording = parent.wording if parent is not None else "accepted:"
    field = re.match(r"Object (contains unknown|missing required) field `(.*)`$", text)
    if field is not None and field.group(1) == "contains unknown":
        struct = _struct_for(annotation, value)
        if struct is not None and isinstance(value, Mapping):
            known = struct.keys()
            unknown = [str(k) for k in value if k not in known]
            problem = struct.refuse_unknown(unknown or [field.group(2)])
            return _join(where, problem.key), problem.message
    if field is not None:
        key = field.group(2)
        tag_fields = {s.__struct_config__.tag_field for s in _structs(annotation)}
        if _tags(annotation) and len(_structs(annotation)) > 1 and key in tag_fields:
            tags = listed(_tags(annotation))
            return _join(where, key), f"required key is missing; accepted: {tags}"
        struct = _struct_for(annotation, value)
        hint = _hints(struct).get(key) if struct is not None else None
        return _join(where, key), _missing(hint)
    if segments:
        union, holder, _ = _locate(type_, raw, segments[:-1])
        tag_fields = {s.__struct_config__.tag_field for s in _structs(union)}
        if _tags(union) and segments[-1] in tag_fields and isinstance(holder, Mapping):
            tag = holder.get(segments[-1])
            return where, f"got {show(tag)}; {wording} {listed(_tags(union))}"
    return where, f"got {show(value)}; {wording} {_accepted(annotation, value)}"


def _in_mapping(
    segments: Sequence[str | int], raw: object, type_: Any, text: str
) -> tuple[str, str]:
    """The problem below a mapping's key: found by reading its entries one by one."""
    i = segments.index("?")
    annotation, mapping, _ = _locate(type_, raw, segments[:i])
    where = "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in segments[:i])
    dicts = [m for m in _members(annotation) if typing.get_origin(m) is dict]
    if dicts and isinstance(mapping, Mapping):
        item_type = typing.get_args(dicts[0])[1]
        for key, item in mapping.items():
            try:
                msgspec.convert(item, item_type)
            except msgspec.ValidationError as exc:
                below, message = _problem(exc, item, item_type)
                return _join(where.lstrip("."), str(key), below), message
            if not isinstance(key, str):
                return where.lstrip("."), f"got a key {show(key)}; accepted: names (strings)"
    return where.lstrip("."), text


def _locate(
    type_: Any, raw: object, segments: Sequence[str | int]
) -> tuple[Any, object, type[Document] | None]:
    """The annotation and the value at ``segments`` below ``raw`` (of type ``type_``),
    and the struct that holds them."""
    annotation, value, parent = type_, raw, None
    for segment in segments:
        if isinstance(segment, int):
            lists = [m for m in _members(annotation) if typing.get_origin(m) is list]
            annotation = typing.get_args(lists[0])[0] if lists else Any
            value = value[segment] if isinstance(value, list) and segment < len(value) else None
            continue
        struct = _struct_for(annotation, value)
        if struct is None:
            return Any, _MISSING, parent
        parent = struct
        annotation = _hints(struct).get(segment, Any)
        value = value.get(segment, _MISSING) if isinstance(value, Mapping) else _MISSING
    return annotation, value, parent


def _struct_for(annotation: Any, value: object) -> type[Document] | None:
    """The struct of ``annotation`` that ``value`` (a mapping) is read as."""
    structs = _structs(annotation)
    if len(structs) > 1 and isinstance(value, Mapping):
        for s in structs:
            config = s.__struct_config__
            if config.tag_field is not None and value.get(config.tag_field) == config.tag:
                return s
        return None
    return structs[0] if structs else None


def _missing(annotation: Any) -> str:
    if annotation is None:
        return "required key is missing"
    leaf, holder = _leaf_of(annotation)
    if leaf is not None and holder is None:
        return leaf.missing()
    base, extras = _unwrap(annotation)
    if typing.get_origin(base) is Literal:
        return f"required key is missing; accepted: {listed(typing.get_args(base))}"
    described = [e.text for e in extras if isinstance(e, Describe)]
    return f"required key is missing ({described[0]})" if described else "required key is missing"


def _accepted(annotation: Any, value: object) -> str:
    """What ``annotation`` accepts, in words."""
    base, extras = _unwrap(annotation)
    for extra in extras:
        if isinstance(extra, Describe):
            return extra.text
        if hasattr(extra, "accepted"):
            return str(extra.accepted())
    words = []
    for member in _members(base):
        member_base, _ = _unwrap(member)
        origin = typing.get_origin(member_base)
        if origin is Literal:
            words.append(listed(typing.get_args(member_base)))
        elif origin is list:
            words.append("a list")
        elif isinstance(member_base, type) and issubclass(member_base, Document):
            words.append(member_base.described)
        else:
            words.append(_PLAIN.get(member_base, "a value"))
    return " or ".join(dict.fromkeys(words))


_PLAIN: dict[Any, str] = {
    bool: "true or false",
    str: "a string",
    int: "an integer",
    float: "a number",
    dict: "a mapping",
}


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


# --------------------------------------------------------------------------- JSON Schema


def json_schema(type_: Any, *, title: str | None = None) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of documents of ``type_`` (a struct or a union of
    them): msgspec's for the shape, each leaf's own for the values it reads."""
    structs = _reachable(type_)
    custom = sorted(
        {leaf.type for s in structs for _, _, leaf, _ in _leaves(s) if isinstance(leaf, Custom)},
        key=repr,
    )
    schemas, components = msgspec.json.schema_components(
        (type_, *custom), ref_template="#/$defs/{name}"
    )
    custom_schemas = dict(zip(custom, schemas[1:], strict=True))
    for struct in structs:
        component = components.get(struct.__name__)
        if component is None:
            continue
        for _, key, leaf, holder in _leaves(struct):
            prop = component["properties"][key]
            leaf_schema = (
                custom_schemas[leaf.type] if isinstance(leaf, Custom) else leaf.json_schema()
            )
            if holder is list:
                leaf_schema = {"type": "array", "items": leaf_schema}
            elif holder is dict:
                leaf_schema = {"type": "object", "additionalProperties": leaf_schema}
            kept = {k: v for k, v in prop.items() if k in ("default", "title")}
            prop.clear()
            prop.update(leaf_schema, **kept)
    out: dict[str, Any] = {"$schema": "https://json-schema.org/draft/2020-12/schema"}
    if title:
        out["title"] = title
    out.update(schemas[0])
    out["$defs"] = components
    return out


def _reachable(annotation: Any, seen: set[type[Document]] | None = None) -> set[type[Document]]:
    """The structs ``annotation`` may hold, directly or below (through :class:`Custom` too)."""
    seen = set() if seen is None else seen
    base, extras = _unwrap(annotation)
    for extra in extras:
        if isinstance(extra, Custom):
            _reachable(extra.type, seen)
    if isinstance(base, type) and issubclass(base, Document):
        if base not in seen:
            seen.add(base)
            for hint in _hints(base).values():
                _reachable(hint, seen)
        return seen
    for arg in typing.get_args(base):
        _reachable(arg, seen)
    return seen
