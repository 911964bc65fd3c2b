"""The column mapping of a plain table as a YAML file (``galvana import --mapping``):
read with the schema library, its errors naming the file, the key, the value and what
is accepted."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from actors.import_cli import ImportError_, _mapping_from_file
from hal.files.table import ColumnMap, ColumnMapDocument
from runtime.schema import json_schema

_GOOD = (
    "delimiter: ','\n"
    "skip: 3\n"
    "columns:\n"
    "  t: {column: time, unit: ms}\n"
    "  E: {column: 2, unit: V}\n"
    "  I: {column: current, unit: uA}\n"
    "  scan: {column: cycle}\n"
    "meta: {scan_rate: 100 mV/s, area: 0.0707 cm2}\n"
)


def _file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "mapping.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_mapping_file_is_read(tmp_path: Path) -> None:
    mapping, meta = _mapping_from_file(_file(tmp_path, _GOOD))
    assert mapping == ColumnMap(
        {"t": ("time", "ms"), "E": (2, "V"), "I": ("current", "uA"), "scan": ("cycle", "")},
        ",",
        3,
        True,
    )
    assert meta == {"scan_rate": "100 mV/s", "area": "0.0707 cm2"}


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ("columns: {x: {column: 1, unit: s}}", "columns.x: not a role; accepted: t, E, I"),
        (
            "columns: {E: {column: 2}}",
            "columns.E.unit: required key is missing (the column's unit)",
        ),
        ("columns: {E: {unit: V}}", "columns.E.column: required key is missing (a column name or"),
        (
            "columns: {E: {column: [2], unit: V}}",
            "columns.E.column: got [2]; accepted: a column name",
        ),
        ("skip: -1", "skip: got -1; accepted: an integer from 0 to 10000"),
        ("meta: [a]", "meta: got ['a']; accepted: a map of metadata (key: value)"),
        ("colour: red", "colour: unknown key; accepted keys here: columns, delimiter, skip"),
    ],
)
def test_a_bad_mapping_file_is_named_by_file_and_key(
    tmp_path: Path, change: str, says: str
) -> None:
    doc = yaml.safe_load(_GOOD)
    doc.update(yaml.safe_load(change))
    path = _file(tmp_path, yaml.safe_dump(doc))
    with pytest.raises(ImportError_) as info:
        _mapping_from_file(path)
    assert str(info.value).startswith(f"--mapping {path}: {says}")


def test_the_json_schema_of_a_mapping_file_agrees() -> None:
    validator = jsonschema.Draft202012Validator(json_schema(ColumnMapDocument))
    assert list(validator.iter_errors(yaml.safe_load(_GOOD))) == []
    bad = yaml.safe_load(_GOOD)
    bad["columns"]["x"] = {"column": 1, "unit": "s"}
    assert list(validator.iter_errors(bad))
