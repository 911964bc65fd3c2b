"""The one message codec: frozen dataclasses <-> msgpack ``[tag, field, field, ...]``.

A message class is declared with :func:`message`, which makes it a frozen, slotted
dataclass and registers it under a stable tag. Field annotations are the wire
schema; they are compiled once, at registration, into validators that decoding
runs on every field, and that encoding runs before it packs anything (one rule per
type for both directions), so :func:`encode` never produces what :func:`decode` would
refuse. Supported field types:

- ``bool``, ``int``, ``float`` (an int is accepted for a float), ``str``, ``bytes``
- ``datetime`` (timezone-aware; travels as a msgpack timestamp)
- numpy arrays, annotated with :class:`ArraySpec` (``Annotated[np.ndarray, ArraySpec(...)]``)
- ``X | None``, ``tuple[X, ...]``, ``dict[str, X]``, ``Literal[...]`` of strings or ints
- another registered message class (nested as its own ``[tag, ...]`` list)
- :data:`Plain`: free-form data made of the types above, lists and string-keyed maps

Arrays travel as msgpack extension type :data:`ARRAY_EXT` whose payload is itself a
msgpack array ``[dtype, shape, data]``: ``dtype`` a numpy type string (``"<f8"``,
``"<f4"``, ``"<i8"``, ``"<i4"``, ``"|u1"``, ``"|b1"``), ``shape`` a list of
non-negative ints and ``data`` the C-order, little-endian bytes.

A message may grow: a field added at the end with a default can be absent on the wire,
so what was recorded before it existed still decodes (with the default). Encoding
always writes every field.

A message's encoding is made once: :func:`encoded` keeps it with the message object
(messages are immutable), so the recorder that writes it to the event log and the API
server that sends it to clients share the same bytes.

Decoding never executes code and raises only :class:`~runtime.errors.MessageError`,
whose ``field`` names the offending field; encoding raises the same error for a value
that could not be read back (a field of the wrong type, an array of the wrong dtype, a
naive datetime, data nested too deep, a message over the size limit).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, Protocol, TypeVar, cast, dataclass_transform

import msgpack
import numpy as np
import numpy.typing as npt

from runtime.errors import MessageError

__all__ = [
    "ARRAY_DTYPES",
    "ARRAY_EXT",
    "DEFAULT_LIMITS",
    "ArraySpec",
    "Bool1D",
    "DecodeLimits",
    "F64Array1D",
    "F64Array2D",
    "I64Array2D",
    "Message",
    "Plain",
    "U8Array1D",
    "decode",
    "encode",
    "encoded",
    "message",
    "message_from_plain",
    "message_types",
    "pack_plain",
    "pack_plain_with",
    "peek_tag",
    "unpack_plain",
]

ARRAY_EXT = 1
"""The msgpack extension type code that carries a numpy array."""

ARRAY_DTYPES: frozenset[str] = frozenset({"<f4", "<f8", "<i4", "<i8", "|u1", "|b1"})
"""The numpy dtypes an array field may carry, as numpy type strings."""


@dataclass(frozen=True, slots=True)
class ArraySpec:
    """The constraint an array field puts on what it carries.

    ``dtype`` is a numpy type string from :data:`ARRAY_DTYPES` (``None``: any of them);
    ``ndim`` the number of dimensions (``None``: any).
    """

    dtype: str | None = None
    ndim: int | None = None

    def __post_init__(self) -> None:
        if self.dtype is not None and self.dtype not in ARRAY_DTYPES:
            raise ValueError(f"ArraySpec dtype {self.dtype!r} is not one of {sorted(ARRAY_DTYPES)}")


class _PlainMarker:
    """Marks a field that carries free-form plain data."""


Plain = Annotated[object, _PlainMarker()]
"""Free-form data: None, bool, int, float, str, bytes, datetime, arrays, lists, str-keyed maps."""

F64Array1D = Annotated[npt.NDArray[np.float64], ArraySpec("<f8", 1)]
"""A one-dimensional float64 array field."""

F64Array2D = Annotated[npt.NDArray[np.float64], ArraySpec("<f8", 2)]
"""A two-dimensional float64 array field."""

I64Array2D = Annotated[npt.NDArray[np.int64], ArraySpec("<i8", 2)]
"""A two-dimensional int64 array field."""

U8Array1D = Annotated[npt.NDArray[np.uint8], ArraySpec("|u1", 1)]
"""A one-dimensional uint8 array field."""

Bool1D = Annotated[npt.NDArray[np.bool_], ArraySpec("|b1", 1)]
"""A one-dimensional boolean array field."""


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """Upper bounds decoding enforces before it allocates anything large.

    ``max_bytes``: the whole encoded message; ``max_array_bytes``: one array's data;
    ``max_depth``: nesting of plain data, tuples, maps and nested messages.
    """

    max_bytes: int = 64 * 1024 * 1024
    max_array_bytes: int = 64 * 1024 * 1024
    max_depth: int = 32


DEFAULT_LIMITS = DecodeLimits()


class Message(Protocol):
    """What every registered message class provides."""

    __message_tag__: ClassVar[str]
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]


M = TypeVar("M")

# A converter checks one decoded value against its field type and returns the value
# the dataclass holds (a tuple for a msgpack array, a numpy array for the extension).
# Its arguments: the value, the nesting limit, the current depth.
_Converter = Callable[[object, int, int], object]
# A checker does the same for a value about to be encoded (a field of a message object)
# and raises MessageError unless decoding the packed value would accept it.
_Checker = Callable[[object, int, int], None]


@dataclass(frozen=True, slots=True)
class _Rule:
    """What one field type accepts, in both directions."""

    decode: _Converter
    check: _Checker


@dataclass(frozen=True, slots=True)
class _MessageType:
    cls: type[Any]
    tag: str
    names: tuple[str, ...]
    converters: tuple[_Converter, ...]
    checkers: tuple[_Checker, ...]
    required: int  # fields on the wire at least: those after it have defaults


class _Wire:
    """The base of every message class: a slot that keeps the message's encoding once
    :func:`encoded` has made it (not a field: never compared, shown or encoded)."""

    __slots__ = ("_wire",)


_REGISTRY: dict[str, _MessageType] = {}
_BY_CLASS: dict[type[Any], _MessageType] = {}


@dataclass_transform(frozen_default=True)
def message(tag: str) -> Callable[[type[M]], type[M]]:
    """Declare a message class: a frozen, slotted dataclass registered under ``tag``.

    The tag is the wire identity of the class and must never change once messages
    with it have been recorded. Field annotations are validated on encode and decode.

    >>> @message("example.point")
    ... class Point:
    ...     x: float
    ...     y: float
    >>> decode(encode(Point(1.0, 2.5)))
    Point(x=1.0, y=2.5)
    """
    if not tag or not isinstance(tag, str):
        raise ValueError(f"message tag must be a non-empty string, got {tag!r}")

    def register(cls: type[M]) -> type[M]:
        if tag in _REGISTRY:
            raise ValueError(f"message tag {tag!r} is already registered to {_REGISTRY[tag].cls}")
        made = dataclasses.dataclass(frozen=True, slots=True, eq=False)(_wired(cls))
        made.__message_tag__ = tag  # type: ignore[attr-defined]
        made.__eq__ = _message_eq  # type: ignore[method-assign]
        made.__hash__ = None  # type: ignore[assignment]
        hints = typing.get_type_hints(made, include_extras=True)
        fields = dataclasses.fields(made)  # type: ignore[arg-type]
        rules = [_compile(hints[f.name], f"{tag}.{f.name}") for f in fields]
        defaulted = [
            f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            for f in fields
        ]
        required = max((i + 1 for i, d in enumerate(defaulted) if not d), default=0)
        entry = _MessageType(
            made,
            tag,
            tuple(f.name for f in fields),
            tuple(r.decode for r in rules),
            tuple(r.check for r in rules),
            required,
        )
        _REGISTRY[tag] = entry
        _BY_CLASS[made] = entry
        return made

    return register


def _wired(cls: type[M]) -> type[M]:
    """``cls`` remade on :class:`_Wire` (a slotted class cannot take a slot later)."""
    namespace = dict(cls.__dict__)
    namespace.pop("__dict__", None)
    namespace.pop("__weakref__", None)
    bases = (*(b for b in cls.__bases__ if b is not object), _Wire)
    remade = type(cls.__name__, bases, namespace)
    remade.__qualname__ = cls.__qualname__
    return cast("type[M]", remade)


def message_types() -> dict[str, type[Any]]:
    """Every registered message class, by tag."""
    return {tag: entry.cls for tag, entry in _REGISTRY.items()}


def _message_eq(self: object, other: object) -> bool:
    if type(self) is not type(other):
        return NotImplemented  # type: ignore[no-any-return]
    entry = _BY_CLASS[type(self)]
    return all(_values_equal(getattr(self, n), getattr(other, n)) for n in entry.names)


def _values_equal(a: object, b: object) -> bool:
    """Structural equality in which arrays compare by dtype, shape and content, NaN equals NaN."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
            return False
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        return bool(np.array_equal(a, b, equal_nan=bool(a.dtype.kind == "f")))
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(_values_equal, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_values_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


# ---------------------------------------------------------------------------
# Encoding


def encode(msg: object) -> bytes:
    """Encode a registered message as msgpack ``[tag, field, ...]``.

    Every field is checked against its annotation first, with the rules decoding
    applies, so nothing is encoded that :func:`decode` would refuse. Raises
    :class:`MessageError` naming the message type and field (``run.state.reason:
    expected str, got dict``) when a value cannot travel: a field of the wrong type, an
    unregistered class, an array of an unsupported dtype, a naive datetime, data nested
    deeper or a message larger than :class:`DecodeLimits` allows.
    """
    entry = _BY_CLASS.get(type(msg))
    if entry is None:
        raise MessageError(f"{type(msg).__qualname__} is not a registered message class")
    values = [entry.tag, *(getattr(msg, n) for n in entry.names)]
    max_depth = DEFAULT_LIMITS.max_depth
    for check, value in zip(entry.checkers, values[1:], strict=True):
        check(value, max_depth, 1)
    try:
        data = cast(bytes, msgpack.packb(values, default=_pack_default, datetime=True))
    except MessageError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise _locate_encode_error(msg, entry, exc) from exc
    if len(data) > DEFAULT_LIMITS.max_bytes:
        raise MessageError(
            f"{entry.tag}: encoded message is {len(data)} bytes; decoding accepts at most "
            f"{DEFAULT_LIMITS.max_bytes}",
            field=entry.tag,
        )
    return data


def encoded(msg: object) -> bytes:
    """:func:`encode` of ``msg``, made once per message object and kept with it.

    Whoever needs a message's bytes first (the recorder writing the event log, the API
    server sending an event) makes them; the others reuse them. Messages are immutable,
    so the bytes stay right for as long as the object lives: a message's arrays must not
    be changed in place once it is published. Raises as :func:`encode` does.
    """
    data = getattr(msg, "_wire", None)
    if data is None:
        data = encode(msg)
        if isinstance(msg, _Wire):
            # A frozen dataclass refuses setattr; the slot is not one of its fields.
            object.__setattr__(msg, "_wire", data)
    return cast(bytes, data)


def _check_fields(msg: object, entry: _MessageType, depth: int) -> None:
    """Raise MessageError unless every field of ``msg`` would decode (depth as decode counts)."""
    max_depth = DEFAULT_LIMITS.max_depth
    if depth > max_depth:
        raise MessageError(f"{entry.tag}: nested deeper than {max_depth}", field=entry.tag)
    for check, name in zip(entry.checkers, entry.names, strict=True):
        check(getattr(msg, name), max_depth, depth + 1)


def _as_list(msg: object, entry: _MessageType) -> list[object]:
    return [entry.tag, *(getattr(msg, n) for n in entry.names)]


def _pack_default(obj: object) -> object:
    if isinstance(obj, np.ndarray):
        return _array_ext(obj)
    entry = _BY_CLASS.get(type(obj))
    if entry is not None:
        return _as_list(obj, entry)
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"{type(obj).__qualname__} cannot be encoded")


def _array_ext(arr: npt.NDArray[Any]) -> msgpack.ExtType:
    dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
    if dt.str not in ARRAY_DTYPES:
        raise TypeError(
            f"array dtype {arr.dtype} is not supported; accepted: {sorted(ARRAY_DTYPES)}"
        )
    data = np.ascontiguousarray(arr, dtype=dt).tobytes()
    payload = msgpack.packb([dt.str, list(arr.shape), data])
    return msgpack.ExtType(ARRAY_EXT, payload)


def _locate_encode_error(msg: object, entry: _MessageType, exc: Exception) -> MessageError:
    """Find which field made packing fail, so the error names it."""
    for name in entry.names:
        try:
            msgpack.packb(getattr(msg, name), default=_pack_default, datetime=True)
        except (TypeError, ValueError, OverflowError) as field_exc:
            return MessageError(f"{entry.tag}.{name}: {field_exc}", field=f"{entry.tag}.{name}")
    return MessageError(f"{entry.tag}: {exc}", field=entry.tag)


def pack_plain(value: object) -> bytes:
    """Encode free-form plain data (maps, lists, scalars, arrays, messages) with msgpack."""
    try:
        return cast(bytes, msgpack.packb(value, default=_pack_default, datetime=True))
    except (TypeError, ValueError, OverflowError) as exc:
        raise MessageError(f"value cannot be encoded: {exc}") from exc


def pack_plain_with(head: dict[str, object], key: str, message: bytes) -> bytes:
    """:func:`pack_plain` of the map ``head`` with one entry more, last: ``key`` and a
    message already encoded (``message``, as :func:`encoded` made it), spliced in rather
    than encoded again. Byte for byte what ``pack_plain({**head, key: msg})`` makes."""
    if len(head) >= 15 or key in head:
        raise ValueError(f"a map of {len(head)} keys with {key!r} is not a fixmap of new keys")
    packed = pack_plain(head)
    # A fixmap's first byte holds its size: 0x80 | entries.
    return bytes([0x80 | (len(head) + 1)]) + packed[1:] + pack_plain(key) + message


# ---------------------------------------------------------------------------
# Decoding


def _unpack(data: bytes, limits: DecodeLimits) -> object:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MessageError(f"expected bytes to decode, got {type(data).__qualname__}")
    if len(data) > limits.max_bytes:
        raise MessageError(f"message of {len(data)} bytes exceeds the limit of {limits.max_bytes}")

    def ext_hook(code: int, payload: bytes) -> object:
        if code != ARRAY_EXT:
            raise MessageError(f"unknown msgpack extension type {code}; only {ARRAY_EXT} (array)")
        return _decode_array(payload, limits)

    try:
        return msgpack.unpackb(
            data, ext_hook=ext_hook, timestamp=3, raw=False, strict_map_key=True, use_list=True
        )
    except MessageError:
        raise
    except Exception as exc:
        # The trust boundary: whatever msgpack makes of hostile bytes becomes one error type.
        raise MessageError(f"malformed msgpack: {type(exc).__name__}: {exc}") from exc


def _decode_array(payload: bytes, limits: DecodeLimits) -> npt.NDArray[Any]:
    try:
        header = msgpack.unpackb(payload, raw=False, use_list=True, strict_map_key=True)
    except Exception as exc:
        raise MessageError(f"array payload is not valid msgpack: {exc}") from exc
    if not (isinstance(header, list) and len(header) == 3):
        raise MessageError("array payload must be [dtype, shape, data]")
    dtype_str, shape, raw = header
    if not isinstance(dtype_str, str) or dtype_str not in ARRAY_DTYPES:
        raise MessageError(f"array dtype {dtype_str!r} is not one of {sorted(ARRAY_DTYPES)}")
    if not (
        isinstance(shape, list)
        and len(shape) <= 32
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
    ):
        raise MessageError(f"array shape {shape!r} must be a list of non-negative integers")
    if not isinstance(raw, bytes):
        raise MessageError("array data must be bytes")
    dtype = np.dtype(dtype_str)
    count = math.prod(shape)
    if count * dtype.itemsize > limits.max_array_bytes:
        raise MessageError(
            f"array of {count} x {dtype_str} exceeds the limit of {limits.max_array_bytes} bytes"
        )
    if len(raw) != count * dtype.itemsize:
        raise MessageError(
            f"array data is {len(raw)} bytes but dtype {dtype_str} and shape {shape} need "
            f"{count * dtype.itemsize}"
        )
    if dtype.kind == "b" and raw.translate(None, b"\x00\x01"):
        raise MessageError("bool array holds bytes other than 0 and 1")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def decode(data: bytes, *, limits: DecodeLimits = DEFAULT_LIMITS) -> Any:
    """Decode bytes made by :func:`encode` into the registered message object.

    Raises :class:`MessageError` (with ``field`` set) on anything malformed: not msgpack,
    an unknown tag, a wrong number of fields, a field of the wrong type, an inconsistent
    or oversized array, trailing bytes.
    """
    obj = _unpack(data, limits)
    return _to_message(obj, "<frame>", 0, limits.max_depth)


def peek_tag(data: bytes) -> str:
    """The tag of an encoded message, read from its first bytes without decoding the rest
    (to find messages of one kind in a long log cheaply). Raises :class:`MessageError`
    if ``data`` does not start like ``[tag, ...]``."""
    view = memoryview(data)
    if len(view) < 2:
        raise MessageError("too short to hold a message")
    head = view[0]
    # The array header: fixarray, array 16 or array 32.
    pos = 1 if 0x90 <= head <= 0x9F else 3 if head == 0xDC else 5 if head == 0xDD else 0
    if pos == 0 or len(view) <= pos:
        raise MessageError("a message is an array [tag, fields...]")
    kind = view[pos]
    if 0xA0 <= kind <= 0xBF:  # fixstr
        start, size = pos + 1, kind & 0x1F
    elif kind == 0xD9 and len(view) > pos + 1:  # str 8
        start, size = pos + 2, view[pos + 1]
    elif kind == 0xDA and len(view) > pos + 2:  # str 16
        start, size = pos + 3, int.from_bytes(view[pos + 1 : pos + 3], "big")
    else:
        raise MessageError("message tag must be a string")
    if len(view) < start + size:
        raise MessageError("message tag is truncated")
    try:
        return bytes(view[start : start + size]).decode("utf-8")
    except UnicodeDecodeError:
        raise MessageError("message tag is not UTF-8") from None


def _to_message(obj: object, where: str, depth: int, max_depth: int) -> Any:
    if depth > max_depth:
        raise MessageError(f"{where}: nested deeper than {max_depth}", field=where)
    if not isinstance(obj, list) or not obj:
        raise MessageError(
            f"{where}: a message is a non-empty array [tag, fields...], got {_kind(obj)}",
            field=where,
        )
    tag = obj[0]
    if not isinstance(tag, str):
        raise MessageError(f"{where}: message tag must be a string, got {_kind(tag)}", field=where)
    entry = _REGISTRY.get(tag)
    if entry is None:
        raise MessageError(f"unknown message tag {tag!r}", field=where)
    given = len(obj) - 1
    if not entry.required <= given <= len(entry.names):
        expected = f"{entry.required} fields ({', '.join(entry.names[: entry.required])})"
        if entry.required < len(entry.names):
            later = entry.names[entry.required :]
            expected += f", or up to {len(entry.names)} with {', '.join(later)}"
        raise MessageError(f"{tag}: expected {expected}, got {given}", field=tag)
    # Fields absent from the end (a message recorded before they were added) keep
    # their defaults.
    values = [
        conv(v, max_depth, depth + 1)
        for conv, v in zip(entry.converters[:given], obj[1:], strict=True)
    ]
    try:
        return entry.cls(*values)
    except MessageError:
        raise
    except (TypeError, ValueError) as exc:
        raise MessageError(f"{tag}: {exc}", field=tag) from exc


def message_from_plain(value: object, *, limits: DecodeLimits = DEFAULT_LIMITS) -> Any:
    """Build the message that ``value`` (an unpacked ``[tag, field, ...]`` list) encodes.

    For messages that arrive nested in plain data, such as the API's event frames.
    """
    return _to_message(value, "<message>", 0, limits.max_depth)


def unpack_plain(data: bytes, *, limits: DecodeLimits = DEFAULT_LIMITS) -> object:
    """Decode msgpack plain data (as made by :func:`pack_plain`), arrays included."""
    return _to_plain(_unpack(data, limits), "<value>", limits.max_depth, 0)


# ---------------------------------------------------------------------------
# Field validators, compiled from annotations once per message class


def _kind(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"array of {value.dtype.str} {list(value.shape)}"
    return type(value).__name__


def _fail(where: str, expected: str, value: object) -> MessageError:
    shown = repr(value) if isinstance(value, int | float | str | bool | None) else _kind(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return MessageError(f"{where}: expected {expected}, got {shown}", field=where)


def _compile(tp: Any, where: str) -> _Rule:
    origin = typing.get_origin(tp)
    if origin is Annotated:
        base, *extras = typing.get_args(tp)
        for extra in extras:
            if isinstance(extra, ArraySpec):
                return _array_rule(extra, where)
            if isinstance(extra, _PlainMarker):
                return _Rule(
                    lambda v, max_depth, depth: _to_plain(v, where, max_depth, depth),
                    lambda v, max_depth, depth: _check_plain(v, where, max_depth, depth),
                )
        return _compile(base, where)
    if tp is bool:
        return _scalar_rule(where, "bool", lambda v: type(v) is bool, _is_bool)
    if tp is int:
        return _scalar_rule(where, "int", lambda v: type(v) is int, _is_int)
    if tp is float:
        return _float_rule(where)
    if tp is str:
        return _scalar_rule(where, "str", lambda v: type(v) is str, lambda v: isinstance(v, str))
    if tp is bytes:
        return _scalar_rule(
            where, "bytes", lambda v: type(v) is bytes, lambda v: isinstance(v, bytes | bytearray)
        )
    if tp is datetime:
        return _scalar_rule(
            where,
            "timestamp",
            lambda v: isinstance(v, datetime),
            _is_aware_datetime,
            encode_expected="a timezone-aware datetime",
        )
    if tp is type(None):
        return _scalar_rule(where, "nil", lambda v: v is None, lambda v: v is None)
    if origin is Literal:
        return _literal_rule(typing.get_args(tp), where)
    if origin is typing.Union or origin is types.UnionType:
        return _union_rule(typing.get_args(tp), where)
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return _tuple_rule(_compile(args[0], f"{where}[]"), where)
        raise TypeError(f"{where}: only homogeneous tuple[X, ...] fields are supported")
    if origin is dict:
        key, val = typing.get_args(tp)
        if key is not str:
            raise TypeError(f"{where}: map fields need str keys")
        return _dict_rule(_compile(val, f"{where}{{}}"), where)
    if isinstance(tp, type) and tp in _BY_CLASS:
        return _nested_rule(tp, where)
    if isinstance(tp, type) and issubclass(tp, np.ndarray):
        return _array_rule(ArraySpec(), where)
    raise TypeError(f"{where}: field type {tp!r} cannot travel in a message")


# What msgpack packs as each wire type: numpy scalars go through ``_pack_default`` as
# their Python values, and an integer must fit msgpack's 64 bits.
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


def _is_bool(value: object) -> bool:
    return type(value) is bool or type(value) is np.bool_


def _is_int(value: object) -> bool:
    if type(value) is int:
        return _INT_MIN <= value <= _INT_MAX
    return isinstance(value, np.integer)


def _is_number(value: object) -> bool:
    return type(value) is float or _is_int(value) or isinstance(value, np.floating | float)


def _is_aware_datetime(value: object) -> bool:
    return isinstance(value, datetime) and value.utcoffset() is not None


def _scalar_rule(
    where: str,
    expected: str,
    decodes: Callable[[object], bool],
    encodes: Callable[[object], bool],
    *,
    encode_expected: str | None = None,
) -> _Rule:
    """A scalar: ``decodes`` says what decoding accepts (msgpack's exact types),
    ``encodes`` what packs into that (numpy scalars, subclasses)."""
    wanted = encode_expected or expected

    def convert(value: object, max_depth: int, depth: int) -> object:
        if not decodes(value):
            raise _fail(where, expected, value)
        return value

    def check(value: object, max_depth: int, depth: int) -> None:
        if not encodes(value):
            raise _fail(where, wanted, value)

    return _Rule(convert, check)


def _float_rule(where: str) -> _Rule:
    def convert(value: object, max_depth: int, depth: int) -> object:
        if type(value) is float:
            return value
        if type(value) is int:
            return float(value)
        raise _fail(where, "float", value)

    def check(value: object, max_depth: int, depth: int) -> None:
        if type(value) is not float and not _is_number(value):
            raise _fail(where, "float", value)

    return _Rule(convert, check)


def _literal_rule(choices: tuple[object, ...], where: str) -> _Rule:
    accepted = ", ".join(repr(c) for c in choices)

    def convert(value: object, max_depth: int, depth: int) -> object:
        if type(value) in (str, int) and value in choices:
            return value
        raise _fail(where, f"one of {accepted}", value)

    def check(value: object, max_depth: int, depth: int) -> None:
        if not (type(value) in (str, int) and value in choices):
            raise _fail(where, f"one of {accepted}", value)

    return _Rule(convert, check)


def _union_rule(options: tuple[Any, ...], where: str) -> _Rule:
    rules = [_compile(opt, where) for opt in options]
    names = " | ".join(getattr(o, "__name__", repr(o)) for o in options)

    def convert(value: object, max_depth: int, depth: int) -> object:
        for rule in rules:
            try:
                return rule.decode(value, max_depth, depth)
            except MessageError:
                continue
        raise _fail(where, names, value)

    def check(value: object, max_depth: int, depth: int) -> None:
        for rule in rules:
            try:
                rule.check(value, max_depth, depth)
            except MessageError:
                continue
            return
        raise _fail(where, names, value)

    return _Rule(convert, check)


def _too_deep(where: str, max_depth: int) -> MessageError:
    return MessageError(f"{where}: nested deeper than {max_depth}", field=where)


def _tuple_rule(item: _Rule, where: str) -> _Rule:
    decode_item, check_item = item.decode, item.check

    def convert(value: object, max_depth: int, depth: int) -> object:
        if not isinstance(value, list):
            raise _fail(where, "array", value)
        if depth > max_depth:
            raise _too_deep(where, max_depth)
        return tuple(decode_item(v, max_depth, depth + 1) for v in value)

    def check(value: object, max_depth: int, depth: int) -> None:
        if not isinstance(value, tuple | list):
            raise _fail(where, "tuple", value)
        if depth > max_depth:
            raise _too_deep(where, max_depth)
        for v in value:
            check_item(v, max_depth, depth + 1)

    return _Rule(convert, check)


def _dict_rule(item: _Rule, where: str) -> _Rule:
    decode_item, check_item = item.decode, item.check

    def convert(value: object, max_depth: int, depth: int) -> object:
        if not isinstance(value, dict):
            raise _fail(where, "map", value)
        if depth > max_depth:
            raise _too_deep(where, max_depth)
        out: dict[str, object] = {}
        for k, v in value.items():
            if type(k) is not str:
                raise _fail(f"{where} key", "str", k)
            out[k] = decode_item(v, max_depth, depth + 1)
        return out

    def check(value: object, max_depth: int, depth: int) -> None:
        if not isinstance(value, dict):
            raise _fail(where, "map", value)
        if depth > max_depth:
            raise _too_deep(where, max_depth)
        for k, v in value.items():
            if not isinstance(k, str):
                raise _fail(f"{where} key", "str", k)
            check_item(v, max_depth, depth + 1)

    return _Rule(convert, check)


def _nested_rule(cls: type[Any], where: str) -> _Rule:
    def convert(value: object, max_depth: int, depth: int) -> object:
        msg = _to_message(value, where, depth, max_depth)
        if type(msg) is not cls:
            raise _fail(where, f"a {_BY_CLASS[cls].tag} message", msg)
        return msg

    def check(value: object, max_depth: int, depth: int) -> None:
        if type(value) is not cls:
            raise _fail(where, f"a {_BY_CLASS[cls].tag} message", value)
        _check_fields(value, _BY_CLASS[cls], depth)

    return _Rule(convert, check)


def _array_rule(spec: ArraySpec, where: str) -> _Rule:
    expected = f"{spec.dtype or 'any supported'} array" + (
        f" with {spec.ndim} dimension(s)" if spec.ndim is not None else ""
    )

    def convert(value: object, max_depth: int, depth: int) -> object:
        if not isinstance(value, np.ndarray):
            raise _fail(where, expected, value)
        if spec.dtype is not None and value.dtype.str != spec.dtype:
            raise _fail(where, expected, value)
        if spec.ndim is not None and value.ndim != spec.ndim:
            raise _fail(where, expected, value)
        return value

    wanted = np.dtype(spec.dtype) if spec.dtype is not None else None

    def check(value: object, max_depth: int, depth: int) -> None:
        if not isinstance(value, np.ndarray):
            raise _fail(where, expected, value)
        # The common case first (a native array of the wanted dtype): no string is made.
        if wanted is None or value.dtype != wanted:
            wire = _wire_dtype(value, where)
            if spec.dtype is not None and wire != spec.dtype:
                raise _fail(where, expected, value)
        if spec.ndim is not None and value.ndim != spec.ndim:
            raise _fail(where, expected, value)
        if value.nbytes > DEFAULT_LIMITS.max_array_bytes or value.ndim > 32:
            _check_array_size(value, where)

    return _Rule(convert, check)


def _wire_dtype(value: npt.NDArray[Any], where: str) -> str:
    """The dtype an array travels as (little-endian), or MessageError if none."""
    dt = value.dtype
    wire = dt.newbyteorder("<").str if dt.byteorder == ">" else dt.str
    if wire not in ARRAY_DTYPES:
        raise MessageError(
            f"{where}: array dtype {dt} is not supported; accepted: {sorted(ARRAY_DTYPES)}",
            field=where,
        )
    return wire


def _check_array_size(value: npt.NDArray[Any], where: str) -> None:
    if value.ndim > 32:
        raise MessageError(f"{where}: array has {value.ndim} dimensions; at most 32", field=where)
    if value.nbytes > DEFAULT_LIMITS.max_array_bytes:
        raise MessageError(
            f"{where}: array of {value.nbytes} bytes exceeds the limit of "
            f"{DEFAULT_LIMITS.max_array_bytes} bytes",
            field=where,
        )


def _to_plain(value: object, where: str, max_depth: int, depth: int) -> object:
    if depth > max_depth:
        raise _too_deep(where, max_depth)
    if value is None or type(value) in (bool, int, float, str, bytes):
        return value
    if isinstance(value, datetime | np.ndarray):
        return value
    if isinstance(value, list):
        return [_to_plain(v, where, max_depth, depth + 1) for v in value]
    if isinstance(value, dict):
        for k in value:
            if type(k) is not str:
                raise _fail(f"{where} key", "str", k)
        return {k: _to_plain(v, where, max_depth, depth + 1) for k, v in value.items()}
    raise _fail(where, "plain data", value)


def _check_plain(value: object, where: str, max_depth: int, depth: int) -> None:
    """Raise unless ``value`` packs into what :func:`_to_plain` accepts at ``depth``."""
    if depth > max_depth:
        raise _too_deep(where, max_depth)
    if value is None or type(value) in (bool, float, str, bytes):
        return
    if type(value) is int or isinstance(value, np.integer):
        if not _is_int(value):
            raise _fail(where, f"an integer within {_INT_MIN}..{_INT_MAX}", value)
        return
    if isinstance(value, str | bytes | bytearray | float | np.bool_ | np.floating):
        return
    if isinstance(value, datetime):
        if not _is_aware_datetime(value):
            raise _fail(where, "a timezone-aware datetime", value)
        return
    if isinstance(value, np.ndarray):
        _wire_dtype(value, where)
        _check_array_size(value, where)
        return
    if isinstance(value, list | tuple):
        for v in value:
            _check_plain(v, where, max_depth, depth + 1)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise _fail(f"{where} key", "str", k)
            _check_plain(v, where, max_depth, depth + 1)
        return
    entry = _BY_CLASS.get(type(value))
    if entry is not None:  # packed as its [tag, ...] list, read back as plain data
        _check_fields(value, entry, depth)
        return
    raise _fail(where, "plain data", value)
