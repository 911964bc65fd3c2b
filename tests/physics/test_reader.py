"""The document reader shared by the scenario schema and the twin spec: errors are the
caller's own and name the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from physics.reader import Reader, read_document
from physics.units import Quantity

_RATE = Quantity("scan rate", "V/s", "[electric_potential]/[time]")


class _DocError(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


def _reader(node: object) -> Reader:
    return Reader(node, "", error=_DocError, root="<doc>")


def test_values_are_converted_to_si_and_checked() -> None:
    r = _reader({"waveform": {"scan_rate": "100 mV/s", "cycles": 2.0}})
    w = r.child("waveform")
    assert w.number("scan_rate", _RATE, lo=0.0, lo_open=True) == pytest.approx(0.1)
    assert w.integer("cycles", default=1, lo=1, hi=10) == 2
    w.finish(("scan_rate", "cycles"))
    assert r.optional_child("numerics") is None


def test_errors_are_the_callers_and_name_the_key_path() -> None:
    w = _reader({"waveform": {"scan_rate": "-5 mV/s", "colour": 1}}).child("waveform")
    with pytest.raises(
        _DocError, match=r"got '-5 mV/s' \(= -0.005 V/s\); accepted: a number > 0"
    ) as info:
        w.number("scan_rate", _RATE, lo=0.0, lo_open=True)
    assert info.value.path == "waveform.scan_rate"
    with pytest.raises(_DocError, match="required key is missing") as info:
        w.number("E_start", _RATE)
    assert info.value.path == "waveform.E_start"
    with pytest.raises(_DocError, match="unknown key; accepted keys here: scan_rate") as info:
        w.finish(("scan_rate",))
    assert info.value.path == "waveform.colour"


def test_a_document_that_is_not_a_mapping_is_named_by_its_root() -> None:
    with pytest.raises(_DocError, match="got \\[1, 2\\]; accepted: a mapping") as info:
        _reader([1, 2])
    assert info.value.path == "<doc>"


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
