"""The schema library of the YAML documents (runtime.schema): structs read by msgspec,
unit-aware leaves, errors that are the caller's own and name the key path, value and
what is accepted, and the JSON Schema of the same structs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import jsonschema
import pytest

from runtime.schema import (
    SI,
    UNSET,
    Document,
    Int,
    Integer,
    Number,
    UnsetType,
    decode,
    hidden_values,
    json_schema,
    read_document,
)
from runtime.units import Quantity

_RATE = Quantity("scan rate", "V/s", "[electric_potential]/[time]")


class _DocError(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


class _Sweep(Document, kw_only=True):
    scan_rate: Annotated[SI, Number(_RATE, lo=0.0, lo_open=True)]
    cycles: Annotated[Int, Integer(1, 10)] = 1
    E_start: Annotated[SI | UnsetType, Number(_RATE)] = UNSET


class _Doc(Document):
    waveform: _Sweep
    kind: Literal["cv", "lsv"] = "cv"
    limits: dict[str, Annotated[SI, Number(_RATE, lo=0.0)]] = {}  # noqa: RUF012 - msgspec copies it


def _read(raw: object) -> _Doc:
    return decode(raw, _Doc, error=_DocError, root="<doc>")


def _refused(raw: object) -> _DocError:
    with pytest.raises(_DocError) as info:
        _read(raw)
    return info.value


def test_values_are_converted_to_si_and_checked() -> None:
    doc = _read({"waveform": {"scan_rate": "100 mV/s", "cycles": 2.0}})
    assert doc.waveform.scan_rate == pytest.approx(0.1)
    assert doc.waveform.cycles == 2
    assert doc.waveform.E_start is UNSET
    assert doc.limits == {}
    assert _read({"waveform": {"scan_rate": 1}, "limits": {"a": "2 V/s"}}).limits == {"a": 2.0}


def test_errors_are_the_callers_and_name_the_key_path() -> None:
    error = _refused({"waveform": {"scan_rate": "-5 mV/s"}})
    assert error.path == "waveform.scan_rate"
    assert "got '-5 mV/s' (= -0.005 V/s); accepted: a number > 0" in str(error)
    error = _refused({"waveform": {"cycles": 2}})
    assert error.path == "waveform.scan_rate"
    assert "required key is missing (a number > 0 V/s" in str(error)
    error = _refused({"waveform": {"scan_rate": 1, "colour": 1}})
    assert error.path == "waveform.colour"
    assert "unknown key; accepted keys here: scan_rate, cycles, E_start" in str(error)
    error = _refused({"waveform": {"scan_rate": 1, "cycles": 11}})
    assert (error.path, str(error)) == (
        "waveform.cycles",
        "waveform.cycles: got 11; accepted: an integer from 1 to 10",
    )
    error = _refused({"waveform": {"scan_rate": 1}, "kind": "ca"})
    assert str(error) == "kind: got 'ca'; accepted: cv, lsv"
    error = _refused({"waveform": {"scan_rate": 1}, "limits": {"a": 1, "b": "3 V"}})
    assert error.path == "limits.b"
    assert "'3 V' is not a scan rate" in str(error)


def test_a_document_that_is_not_a_mapping_is_named_by_its_root() -> None:
    error = _refused([1, 2])
    assert error.path == "<doc>"
    assert "got [1, 2]; accepted: a mapping" in str(error)


def test_hidden_values_are_named_by_their_kind_only() -> None:
    with hidden_values():
        error = _refused({"waveform": {"scan_rate": "secret mV/s"}})
    assert "secret" not in str(error)
    assert error.path == "waveform.scan_rate"
    with hidden_values():
        error = _refused({"waveform": {"scan_rate": 1, "cycles": 99}})
    assert str(error) == "waveform.cycles: got a number above 10; accepted: an integer from 1 to 10"


def test_read_document_accepts_a_file_text_or_mapping(tmp_path: Path) -> None:
    path = tmp_path / "doc.yaml"
    path.write_text("name: x\n", encoding="utf-8")
    assert read_document(path, error=_DocError, root="<doc>") == ({"name": "x"}, path)
    assert read_document("name: y\n", error=_DocError, root="<doc>") == ({"name": "y"}, None)
    assert read_document({"name": "z"}, error=_DocError, root="<doc>") == ({"name": "z"}, None)
    with pytest.raises(_DocError, match="not valid YAML at line 2, column 4") as info:
        read_document("name: [unclosed\nfoo: 1\n", error=_DocError, root="<doc>")
    assert info.value.path == "<doc>"
    with pytest.raises(_DocError, match="missing.yaml: no such file"):
        read_document("missing.yaml", error=_DocError, root="<doc>")


def test_the_json_schema_says_what_the_reader_accepts() -> None:
    schema = json_schema(_Doc, title="doc")
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    good: dict[str, Any] = {"waveform": {"scan_rate": "100 mV/s", "cycles": 2}, "limits": {"a": 1}}
    assert list(validator.iter_errors(good)) == []
    _read(good)
    for bad in (
        {"waveform": {"scan_rate": 0}},  # not > 0
        {"waveform": {"scan_rate": 1, "cycles": 11}},
        {"waveform": {"scan_rate": 1}, "kind": "ca"},
        {"waveform": {"scan_rate": 1, "colour": 1}},
        {"waveform": {"cycles": 1}},
        {"waveform": {"scan_rate": 1}, "limits": {"a": -1}},
        {"waveform": {"scan_rate": "fast"}},
    ):
        assert list(validator.iter_errors(bad)), bad
        _refused(bad)
