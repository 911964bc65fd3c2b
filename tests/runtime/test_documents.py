"""runtime.documents: document files read without trusting them (real files, a real FIFO)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from runtime.documents import DocumentError, parse_yaml, read_text, read_yaml, yaml_problem


def test_a_regular_utf8_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_bytes("\ufeffname: café\n".encode())  # a UTF-8 byte-order mark is dropped
    assert read_yaml(path) == {"name": "café"}


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (os.mkfifo, "is a FIFO"),
        (lambda p: p.mkdir(), "is a directory, not a regular file"),
        (lambda p: p.write_bytes(b"x" * 101), "is 101 bytes long; accepted: at most 100 bytes"),
        (lambda p: p.write_bytes("a: é".encode("utf-16")), "is UTF-16 text"),
        (lambda p: p.write_bytes(b"a: 1\nb: caf\xe9\n"), "the byte at line 2, column 7"),
        (lambda p: None, "no such file"),
    ],
)
def test_what_is_not_a_small_utf8_file_is_refused_at_once(
    tmp_path: Path, make: object, says: str
) -> None:
    path = tmp_path / "doc"
    make(path)  # type: ignore[operator]
    with pytest.raises(DocumentError) as info:
        read_text(path, max_bytes=100)  # a FIFO without a writer: refused, never waited on
    assert says in info.value.problem
    assert info.value.source == str(path)


def test_a_character_device_is_refused() -> None:
    with pytest.raises(DocumentError, match="/dev/zero: is a character device"):
        read_text("/dev/zero")


@pytest.mark.parametrize(
    ("text", "says", "secret"),
    [
        ("a: *hunter2\n", "at line 1, column 4: found undefined alias", "hunter2"),
        ("a: !!python/object:os.system x\n", "could not determine a constructor", "os.system"),
        ('a: "\\q hunter2"\n', "found unknown escape character", "q'"),
        ("key: [hunter2\n", "expected ',' or ']', but got '<stream end>'", "hunter2"),
    ],
)
def test_yaml_errors_say_where_and_what_never_the_text(text: str, says: str, secret: str) -> None:
    with pytest.raises(DocumentError) as info:
        parse_yaml(text, "doc.yaml")
    assert says in str(info.value)
    assert str(info.value).startswith("doc.yaml: not valid YAML at line ")
    assert secret not in str(info.value)
    with pytest.raises(yaml.YAMLError) as raw:
        yaml.safe_load(text)
    assert yaml_problem(raw.value) in str(info.value)


def test_aliases_that_expand_past_the_cap_and_deep_nesting_are_refused() -> None:
    laughs = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 8):  # 10**8 values once expanded, from a few hundred bytes
        prev = chr(ord("a") + i - 1)
        name = chr(ord("a") + i)
        laughs.append(f"{name}: &{name} [{', '.join(['*' + prev] * 10)}]")
    with pytest.raises(DocumentError, match="expands to more than 1,000,000 values"):
        parse_yaml("\n".join(laughs) + "\n", "bomb.yaml")
    with pytest.raises(DocumentError, match="nests deeper than 64 levels"):
        parse_yaml("[" * 100 + "]" * 100, "deep.yaml")
    with pytest.raises(DocumentError, match="nests too deeply|nests deeper"):
        parse_yaml("[" * 100_000, "deeper.yaml")
