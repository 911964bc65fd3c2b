"""The message codec: every registered type round-trips; hostile bytes only raise MessageError."""

from __future__ import annotations

import contextlib
import types
import typing
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import runtime.messages  # noqa: F401 - registers the messages under test
from runtime.codec import (
    ARRAY_DTYPES,
    ARRAY_EXT,
    ArraySpec,
    DecodeLimits,
    Plain,
    _PlainMarker,
    decode,
    encode,
    encoded,
    message,
    message_types,
    pack_plain,
    pack_plain_with,
    unpack_plain,
)
from runtime.errors import MessageError
from runtime.messages import CalibrationSegment, Lagged, SampleBatch, SystemNote

# --- strategies built from the same annotations the codec compiles ------------------

DATETIMES = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


def arrays(spec: ArraySpec) -> st.SearchStrategy[np.ndarray]:
    dtypes = [spec.dtype] if spec.dtype else sorted(ARRAY_DTYPES)
    ndims = [spec.ndim] if spec.ndim is not None else [0, 1, 2, 3]
    return st.sampled_from(dtypes).flatmap(
        lambda dt: st.sampled_from(ndims).flatmap(
            lambda nd: hnp.arrays(
                np.dtype(dt), hnp.array_shapes(min_dims=nd, max_dims=nd, min_side=0, max_side=6)
            )
        )
    )


PLAIN: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text()
    | st.binary()
    | DATETIMES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def strategy_for(tp: Any) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(tp)
    if origin is Annotated:
        base, *extras = typing.get_args(tp)
        for extra in extras:
            if isinstance(extra, ArraySpec):
                return arrays(extra)
            if isinstance(extra, _PlainMarker):
                return PLAIN
        return strategy_for(base)
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(-(2**63), 2**64 - 1)
    if tp is float:
        return st.floats()
    if tp is str:
        return st.text()
    if tp is bytes:
        return st.binary()
    if tp is datetime:
        return DATETIMES
    if tp is type(None):
        return st.none()
    if origin is Literal:
        return st.sampled_from(typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(strategy_for(a) for a in typing.get_args(tp)))
    if origin is tuple:
        return st.lists(strategy_for(typing.get_args(tp)[0]), max_size=4).map(tuple)
    if origin is dict:
        return st.dictionaries(
            st.text(max_size=8), strategy_for(typing.get_args(tp)[1]), max_size=4
        )
    if isinstance(tp, type) and tp in message_types().values():
        return instances_of(tp)
    raise AssertionError(f"no strategy for {tp!r}")


def instances_of(cls: type[Any]) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f: strategy_for(hints[f]) for f in cls.__dataclass_fields__}
    if cls is SampleBatch:  # its columns must be of one length
        return st.integers(0, 50).flatmap(
            lambda k: st.builds(
                SampleBatch,
                st.text(),
                st.integers(-(2**63), 2**64 - 1),
                *(hnp.arrays(np.float64, k) for _ in range(3)),
                hnp.arrays(np.uint8, k),
                st.integers(0, 2**63 - 1),
            )
        )
    if cls is CalibrationSegment:  # so must a segment's
        return st.integers(0, 50).flatmap(
            lambda k: st.builds(
                CalibrationSegment,
                st.integers(0, 2**63 - 1),
                *(hnp.arrays(np.float64, k) for _ in range(3)),
                hnp.arrays(np.bool_, k),
                st.booleans(),
            )
        )
    return st.builds(cls, **fields)


ALL_TYPES = sorted(message_types().items())


@pytest.mark.parametrize(("tag", "cls"), ALL_TYPES, ids=[t for t, _ in ALL_TYPES])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_registered_type_round_trips(tag: str, cls: type[Any], data: st.DataObject) -> None:
    msg = data.draw(instances_of(cls))
    wire = encode(msg)
    back = decode(wire)
    assert type(back) is cls
    assert back == msg
    assert msgpack.unpackb(wire, ext_hook=lambda c, d: None, timestamp=3)[0] == tag
    assert encode(back) == wire  # canonical: encoding is a function of the value


def test_registry_covers_the_runtime_messages() -> None:
    tags = set(message_types())
    assert {"samples", "actor.started", "actor.exited", "actor.restarting", "bus.lagged"} <= tags


# --- arrays -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64, np.uint8, np.bool_])
def test_arrays_of_every_supported_dtype_travel(dtype: type) -> None:
    arr = (
        np.arange(24).reshape(2, 3, 4) % 2 if dtype is np.bool_ else np.arange(24).reshape(2, 3, 4)
    ).astype(dtype)
    back = unpack_plain(pack_plain({"a": arr}))
    assert isinstance(back, dict)
    assert back["a"].dtype == arr.dtype
    assert back["a"].shape == (2, 3, 4)
    np.testing.assert_array_equal(back["a"], arr)


def test_non_contiguous_and_big_endian_arrays_are_sent_c_order_little_endian() -> None:
    base = np.arange(12.0).reshape(3, 4)
    strided = base.T  # Fortran-ordered view
    big = base.astype(">f8")
    back = unpack_plain(pack_plain([strided, big]))
    assert isinstance(back, list)
    np.testing.assert_array_equal(back[0], strided)
    np.testing.assert_array_equal(back[1], base)
    assert back[1].dtype.str == "<f8"


def test_unsupported_dtype_is_refused_at_encode_naming_the_field() -> None:
    bad = SampleBatch(
        "r", 0, np.zeros(2), np.zeros(2), np.zeros(2, np.complex128), np.zeros(2, np.uint8)
    )  # type: ignore[arg-type]
    with pytest.raises(
        MessageError, match=r"samples\.I: array dtype complex128 is not supported"
    ) as info:
        encode(bad)
    assert info.value.field == "samples.I"


def test_naive_datetime_is_refused_at_encode() -> None:
    note = SystemNote("info", "x", "y", None, datetime(2026, 1, 1))
    with pytest.raises(MessageError, match="system.note.at"):
        encode(note)


# --- encoding validates with the rules decoding applies --------------------------------


def test_a_field_of_the_wrong_type_is_refused_at_encode_naming_type_field_and_value() -> None:
    from runtime.messages import RunCreated, RunStateChanged

    now = datetime.now(UTC)
    with pytest.raises(MessageError, match=r"^run\.state\.reason: expected str, got dict$") as info:
        encode(RunStateChanged("r", "stopped", "running", {"why": 1}, now))  # type: ignore[arg-type]
    assert info.value.field == "run.state.reason"
    with pytest.raises(MessageError, match=r"^run\.created\.source: expected str, got list$"):
        encode(RunCreated("r", now, {}, ["x"]))  # type: ignore[arg-type]
    with pytest.raises(MessageError, match=r"run\.state\.state: expected one of 'idle'"):
        encode(RunStateChanged("r", "bogus", "running", "", now))  # type: ignore[arg-type]
    with pytest.raises(MessageError, match=r"samples\.t: expected <f8 array"):
        encode(
            SampleBatch(
                "r", 0, np.zeros(2, np.float32), np.zeros(2), np.zeros(2), np.zeros(2, np.uint8)
            )
        )  # type: ignore[arg-type]
    with pytest.raises(MessageError, match=r"samples\.seq: expected int, got 1\.5"):
        encode(SampleBatch("r", 1.5, np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(2, np.uint8)))  # type: ignore[arg-type]
    with pytest.raises(MessageError, match=r"system\.note\.data: expected plain data, got set"):
        encode(SystemNote("info", "s", "t", {"a": {1, 2}}, now))
    with pytest.raises(MessageError, match=r"system\.note\.data key: expected str, got 1"):
        encode(SystemNote("info", "s", "t", {1: "a"}, now))
    with pytest.raises(MessageError, match=r"system\.note\.at: expected a timezone-aware"):
        encode(SystemNote("info", "s", "t", None, datetime(2026, 1, 1)))
    with pytest.raises(
        MessageError, match=r"bus\.lagged\.lost: expected int, got 18446744073709551616"
    ):
        encode(Lagged("t", 2**64))


def test_what_decoding_would_refuse_is_never_encoded() -> None:
    deep: Any = 1
    for _ in range(40):
        deep = [deep]
    now = datetime.now(UTC)
    with pytest.raises(MessageError, match="nested deeper than 32"):
        encode(SystemNote("info", "s", "t", deep, now))
    big = np.zeros(9 * 1024 * 1024)  # 72 MiB of float64: over the array limit
    with pytest.raises(MessageError, match="exceeds the limit"):
        encode(SampleBatch("r", 0, big, big, big, np.zeros(len(big), np.uint8)))


def test_values_that_pack_into_the_wire_type_are_accepted() -> None:
    from runtime.messages import DriftDetected

    msg = DriftDetected("r", np.float64(1.0), 2, np.float32(0.5), np.int64(400), 0.9)  # type: ignore[arg-type]
    back = decode(encode(msg))
    assert (back.t_start, back.t, back.fraction, back.window) == (1.0, 2.0, 0.5, 400)
    note = SystemNote(
        "info", "s", "t", {"n": np.int64(3), "x": (1, 2), "b": np.bool_(True)}, datetime.now(UTC)
    )
    assert decode(encode(note)).data == {"n": 3, "x": [1, 2], "b": True}
    big_endian = SampleBatch(
        "r", 0, np.zeros(2, ">f8"), np.zeros(2), np.zeros(2), np.zeros(2, np.uint8)
    )
    assert decode(encode(big_endian)).t.dtype.str == "<f8"


WRONG_VALUES: st.SearchStrategy[Any] = (
    PLAIN
    | st.sets(st.integers(), max_size=2)
    | st.tuples(st.integers())
    | st.datetimes()
    | st.integers(-(2**70), 2**70)
    | st.builds(np.float32, st.floats(width=32))
    | st.builds(np.int64, st.integers(-(2**63), 2**63 - 1))
    | st.just(np.zeros(2, np.complex64))
    | st.just(np.zeros(2, np.int16))
    | st.just(np.zeros((2, 2)))
    | st.just(object())
)


@pytest.mark.parametrize(("tag", "cls"), ALL_TYPES, ids=[t for t, _ in ALL_TYPES])
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_encode_either_refuses_or_produces_what_decode_reads(
    tag: str, cls: type[Any], data: st.DataObject
) -> None:
    hints = typing.get_type_hints(cls, include_extras=True)
    values = {
        name: data.draw(strategy_for(hints[name]) | WRONG_VALUES, label=name)
        for name in cls.__dataclass_fields__
    }
    try:
        msg = cls(**values)
    except (MessageError, TypeError, ValueError):
        return  # the class itself refused (SampleBatch checks its column lengths)
    refused: MessageError | None = None
    try:
        wire = encode(msg)
    except MessageError as exc:
        refused = exc
    if refused is not None:
        assert refused.field.startswith(tag), refused.field
        return
    assert type(decode(wire)) is cls


def test_peek_tag_reads_the_tag_alone() -> None:
    from runtime.codec import peek_tag

    wire = encode(SampleBatch("r", 0, np.zeros(3), np.zeros(3), np.zeros(3), np.zeros(3, np.uint8)))
    assert peek_tag(wire) == "samples"
    assert peek_tag(msgpack.packb(["x" * 40, 1])) == "x" * 40  # str 8
    for bad in (b"", b"\x91", b"\x92\x01\x02", b"\xa3abc", b"\x92\xa5ab"):
        with pytest.raises(MessageError):
            peek_tag(bad)


# --- decoding validates ---------------------------------------------------------------


def frame(*items: Any) -> bytes:
    return msgpack.packb(list(items), datetime=True)


def array_ext(dtype: str, shape: list[int], data: bytes) -> msgpack.ExtType:
    return msgpack.ExtType(ARRAY_EXT, msgpack.packb([dtype, shape, data]))


GOOD_F8 = array_ext("<f8", [2], np.zeros(2).tobytes())
GOOD_U1 = array_ext("|u1", [2], b"\x00\x01")


@pytest.mark.parametrize(
    ("wire", "field", "says"),
    [
        (frame("no.such.tag", 1), "<frame>", "unknown message tag 'no.such.tag'"),
        (frame("bus.lagged", "t"), "bus.lagged", "expected 2 fields (topic, lost), got 1"),
        (
            frame("bus.lagged", "t", "many"),
            "bus.lagged.lost",
            "bus.lagged.lost: expected int, got 'many'",
        ),
        (frame("bus.lagged", 5, 1), "bus.lagged.topic", "expected str, got 5"),
        (frame(7, 1), "<frame>", "message tag must be a string"),
        (msgpack.packb({"a": 1}), "<frame>", "a message is a non-empty array"),
        (
            frame("samples", "r", 0, GOOD_F8, GOOD_F8, array_ext("<i8", [2], bytes(16)), GOOD_U1),
            "samples.I",
            "expected <f8 array with 1 dimension(s), got array of <i8 [2]",
        ),
        (
            frame("samples", "r", 0, GOOD_F8, GOOD_F8, array_ext("<f8", [3], bytes(24)), GOOD_U1),
            "samples.I",
            "samples.I: has 3 points but t has 2",
        ),
        (
            frame("samples", "r", 0, GOOD_F8, GOOD_F8, array_ext("<f8", [3], bytes(16)), GOOD_U1),
            "<frame>",
            "array data is 16 bytes but dtype <f8 and shape [3] need 24",
        ),
        (
            frame("samples", "r", 0, GOOD_F8, GOOD_F8, array_ext("<c16", [1], bytes(16)), GOOD_U1),
            "<frame>",
            "array dtype '<c16' is not one of",
        ),
        (
            frame("samples", "r", 0, GOOD_F8, GOOD_F8, array_ext("<f8", [-1], b""), GOOD_U1),
            "<frame>",
            "must be a list of non-negative integers",
        ),
        (
            frame("samples", "r", 0, GOOD_F8, GOOD_F8, msgpack.ExtType(9, b"x"), GOOD_U1),
            "<frame>",
            "unknown msgpack extension type 9",
        ),
        (
            frame("system.note", "loud", "s", "t", None, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
            "system.note.level",
            "expected one of 'debug', 'info', 'warning', 'error', got 'loud'",
        ),
        (
            frame(
                "system.note", "info", "s", "t", {1: 2}, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
            ),
            "<frame>",
            "malformed msgpack",
        ),
        (frame("bus.lagged", "t", 1) + b"\x00", "<frame>", "malformed msgpack"),
    ],
)
def test_decode_rejects_with_a_named_field(wire: bytes, field: str, says: str) -> None:
    with pytest.raises(MessageError) as info:
        decode(wire)
    assert says in str(info.value)
    assert info.value.field == field


def test_size_limits_are_enforced_before_allocation() -> None:
    batch = SampleBatch(
        "r", 0, np.zeros(1000), np.zeros(1000), np.zeros(1000), np.zeros(1000, np.uint8)
    )
    wire = encode(batch)
    with pytest.raises(
        MessageError, match=f"message of {len(wire)} bytes exceeds the limit of 1000"
    ):
        decode(wire, limits=DecodeLimits(max_bytes=1000))
    with pytest.raises(MessageError, match="array of 1000 x <f8 exceeds the limit of 4096 bytes"):
        decode(wire, limits=DecodeLimits(max_array_bytes=4096))
    huge_shape = frame(
        "samples", "r", 0, array_ext("<f8", [2**40, 2**30], b""), GOOD_F8, GOOD_F8, GOOD_U1
    )
    with pytest.raises(MessageError, match="exceeds the limit"):
        decode(huge_shape)


def test_nesting_depth_is_limited() -> None:
    deep: Any = 1
    for _ in range(50):
        deep = [deep]
    wire = frame("system.note", "info", "s", "t", deep, datetime.now(UTC))
    with pytest.raises(MessageError, match="nested deeper than 32"):
        decode(wire)


def test_decoded_arrays_are_read_only() -> None:
    batch = decode(
        encode(SampleBatch("r", 0, np.zeros(3), np.zeros(3), np.zeros(3), np.zeros(3, np.uint8)))
    )
    with pytest.raises(ValueError, match="read-only"):
        batch.t[0] = 1.0


def test_nested_messages_and_containers() -> None:
    @message("test.envelope")
    class Envelope:
        inner: Lagged
        tags: tuple[str, ...]
        counts: dict[str, int]
        maybe: float | None
        blob: Plain

    env = Envelope(Lagged("run/*", 3), ("a", "b"), {"x": 1}, None, {"k": [1, b"z"]})
    assert decode(encode(env)) == env
    bad = frame("test.envelope", ["bus.lagged", "t", "x"], [], {}, None, None)
    with pytest.raises(MessageError, match="bus.lagged.lost: expected int"):
        decode(bad)
    wrong_kind = frame("test.envelope", ["samples", "r"], [], {}, None, None)
    with pytest.raises(MessageError, match="samples: expected 6 fields"):
        decode(wrong_kind)


def test_a_batch_recorded_before_lost_existed_reads_back_with_none_lost() -> None:
    old = frame("samples", "r", 4, GOOD_F8, GOOD_F8, GOOD_F8, array_ext("|u1", [2], b"\x00\x10"))
    batch = decode(old)
    assert (batch.run_id, batch.seq, batch.lost) == ("r", 4, 0)
    assert batch.flags.tolist() == [0, 0x10]
    now = SampleBatch("r", 4, np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(2, np.uint8), 3)
    assert msgpack.unpackb(encode(now), strict_map_key=False)[-1] == 3  # written, always
    assert decode(encode(now)).lost == 3
    with pytest.raises(MessageError, match=r"samples\.lost: -1 samples lost"):
        SampleBatch("r", 0, np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, np.uint8), -1)
    too_many = frame(
        "samples", "r", 4, GOOD_F8, GOOD_F8, GOOD_F8, array_ext("|u1", [2], b"\0\0"), 0, 1
    )
    with pytest.raises(MessageError, match=r"expected 6 fields .*, or up to 7 with lost, got 8"):
        decode(too_many)


def test_a_message_is_encoded_once_and_its_bytes_shared() -> None:
    note = SystemNote("info", "x", "y", {"k": [1, 2]}, datetime.now(UTC))
    first = encoded(note)
    assert first == encode(note)
    assert encoded(note) is first  # kept with the message, not made again
    assert decode(first) == note
    assert "_wire" not in repr(note)
    other = SystemNote("info", "x", "z", None, note.at)
    assert encoded(other) == encode(other) != first


def test_a_message_encoded_once_is_spliced_into_a_map_byte_for_byte() -> None:
    batch = SampleBatch("r", 2, np.arange(3.0), np.ones(3), np.zeros(3), np.zeros(3, np.uint8))
    head: dict[str, object] = {"op": "event", "subscription": 7, "topic": "run/r/samples"}
    spliced = pack_plain_with(head, "message", encoded(batch))
    assert spliced == pack_plain({**head, "message": batch})
    assert unpack_plain(spliced)["message"][:3] == ["samples", "r", 2]  # type: ignore[index]
    with pytest.raises(ValueError, match="not a fixmap of new keys"):
        pack_plain_with(head, "op", encoded(batch))


def test_message_classes_are_frozen_and_slotted() -> None:
    note = SystemNote("info", "x", "y", None, datetime.now(UTC))
    with pytest.raises(AttributeError):
        note.text = "z"  # type: ignore[misc]
    assert not hasattr(note, "__dict__")


def test_no_pickle_anywhere() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    offenders = [
        str(p)
        for pkg in ("runtime", "actors", "physics", "hal", "twins", "tui")
        for p in (root / pkg).rglob("*.py")
        if "import pickle" in p.read_text() or "pickle.loads" in p.read_text()
    ]
    assert offenders == []


# --- fuzz -----------------------------------------------------------------------------

VALID_WIRES = [
    encode(
        SampleBatch(
            "run-1", 3, np.linspace(0, 1, 20), np.zeros(20), np.ones(20), np.zeros(20, np.uint8)
        )
    ),
    encode(SystemNote("warning", "src", "text", {"a": [1, 2.5, None, b"x"]}, datetime.now(UTC))),
]


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_fuzz_random_bytes_only_raise_message_error(data: bytes) -> None:
    with contextlib.suppress(MessageError):
        decode(data)


@settings(max_examples=2000, deadline=None)
@given(st.sampled_from(VALID_WIRES), st.data())
def test_fuzz_truncated_and_mutated_frames_only_raise_message_error(
    wire: bytes, data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(wire) - 1))
    mutated = bytearray(wire)
    for _ in range(data.draw(st.integers(0, 4))):
        mutated[data.draw(st.integers(0, len(wire) - 1))] = data.draw(st.integers(0, 255))
    for candidate in (wire[:cut], bytes(mutated)):
        with contextlib.suppress(MessageError):
            decode(candidate)
