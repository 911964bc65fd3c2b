"""Bad files: one FileReadError naming the file and where, never anything else.

Each class of bad input (unreadable, truncated, mis-encoded, empty, unknown, a missing
column, a unit that does not parse) on a real file, then hypothesis mutating every
format's file (bytes flipped, cut short, lines dropped): only the readers' own error
type ever comes out.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hal.files import (
    FileEncodingError,
    FileFormatError,
    FileReadError,
    MissingColumnError,
    MissingMetadataError,
    UnitError,
    UnknownFormatError,
    read_recording,
)

from . import writers as w
from .conftest import simulated_cv
from .writers import Columns


def test_unreadable(tmp_path: Path) -> None:
    with pytest.raises(FileReadError, match=r"^nope\.txt: cannot be read"):
        read_recording(tmp_path / "nope.txt")
    with pytest.raises(FileReadError, match="is a directory"):
        read_recording(tmp_path)


def test_empty(tmp_path: Path) -> None:
    (tmp_path / "e.txt").write_bytes(b"")
    with pytest.raises(FileFormatError, match=r"^e\.txt: is empty"):
        read_recording(tmp_path / "e.txt")


def test_unknown(tmp_path: Path) -> None:
    (tmp_path / "x.bin").write_bytes(b"hello world\nthis is no export\n")
    with pytest.raises(UnknownFormatError, match=r"x\.bin: is in no format.*Gamry.*--map"):
        read_recording(tmp_path / "x.bin")


def test_truncated_text_names_the_line(tmp_path: Path, cv: Columns) -> None:
    data = w.gamry(cv)
    cut = data[: data.rindex(b"\t", 0, len(data) // 2)]  # mid-row
    (tmp_path / "cut.DTA").write_bytes(cut)
    with pytest.raises(FileFormatError, match=r"cut\.DTA, line \d+: has \d+ values; expected 10"):
        read_recording(tmp_path / "cut.DTA")


def test_truncated_binary(tmp_path: Path, cv: Columns) -> None:
    (tmp_path / "cut.mpr").write_bytes(w.mpr(cv)[:-1000])
    with pytest.raises(FileFormatError, match=r"cut\.mpr.*(truncated|runs past the end)"):
        read_recording(tmp_path / "cut.mpr")


def test_mis_encoded(tmp_path: Path, cv: Columns) -> None:
    data = w.pstrace_csv(cv)
    (tmp_path / "odd.csv").write_bytes(data[:-1])  # half a UTF-16 code unit at the end
    with pytest.raises(FileEncodingError, match=r"odd\.csv: is not text"):
        read_recording(tmp_path / "odd.csv")
    (tmp_path / "nul.txt").write_bytes(w.autolab(cv)[:200] + b"\x00\x01\x02" + b"0" * 10)
    with pytest.raises(FileEncodingError, match=r"nul\.txt, line \d+: holds NUL"):
        read_recording(tmp_path / "nul.txt")


def test_missing_column(tmp_path: Path, cv: Columns) -> None:
    text = w.autolab(cv).decode().replace("WE(1).Current (A)", "WE(1).Charge (C)")
    (tmp_path / "q.txt").write_text(text)
    with pytest.raises(
        MissingColumnError, match=r"q\.txt, line 1: has no column WE\(1\)\.Current \(A\)"
    ):
        read_recording(tmp_path / "q.txt")


def test_unit_that_does_not_parse(tmp_path: Path, cv: Columns) -> None:
    text = w.autolab(cv).decode().replace("WE(1).Current (A)", "WE(1).Current (furlongs)")
    (tmp_path / "u.txt").write_text(text)
    with pytest.raises(
        UnitError, match=r"u\.txt, column 'WE\(1\)\.Current \(furlongs\)': unit 'furlongs'"
    ):
        read_recording(tmp_path / "u.txt")


def test_a_value_that_is_not_a_number_names_line_and_column(tmp_path: Path, cv: Columns) -> None:
    lines = w.mpt(cv).decode("cp1252").split("\r\n")
    n_header = int(lines[1].split(":")[1])
    lines[n_header + 5] = lines[n_header + 5].replace("E-", "Q-", 1)
    (tmp_path / "bad.mpt").write_bytes("\r\n".join(lines).encode("cp1252"))
    with pytest.raises(
        FileFormatError, match=rf"bad\.mpt, line {n_header + 6}: column \d+ \(\S+\) is not a number"
    ):
        read_recording(tmp_path / "bad.mpt")


def test_no_scan_rate_for_a_file_without_time(tmp_path: Path, cv: Columns) -> None:
    (tmp_path / "ps.csv").write_bytes(w.pstrace_csv(cv))
    with pytest.raises(
        MissingMetadataError, match=r"ps\.csv: has no time column.*--meta scan_rate=100mV/s"
    ):
        read_recording(tmp_path / "ps.csv")


def test_pstrace_csv_is_utf16_with_bom(cv: Columns) -> None:
    assert w.pstrace_csv(cv).startswith(codecs.BOM_UTF16_LE)


_SMALL = simulated_cv(points_per_step=1)
_FILES: dict[str, bytes] = {
    "cv.txt": w.autolab(_SMALL),
    "cv.csv": w.pstrace_csv(_SMALL),
    "cv.pssession": w.pssession(_SMALL),
    "cv.DTA": w.gamry(_SMALL),
    "cv.mpt": w.mpt(_SMALL),
    "cv.mpr": w.mpr(_SMALL),
    "cv-chi.txt": w.chi(_SMALL),
}


def _flip(data: bytes, positions: list[int], value: int) -> bytes:
    out = bytearray(data)
    for p in positions:
        out[p % len(out)] = value
    return bytes(out)


def _drop_lines(data: bytes, which: list[int]) -> bytes:
    lines = data.split(b"\n")
    keep = set(range(len(lines))) - {i % len(lines) for i in which}
    return b"\n".join(lines[i] for i in sorted(keep))


MUTATIONS: dict[str, Callable[..., bytes]] = {"flip": _flip, "drop": _drop_lines}


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.sampled_from(sorted(_FILES)),
    mutation=st.sampled_from(["flip", "truncate", "drop"]),
    positions=st.lists(st.integers(min_value=0, max_value=10**7), min_size=1, max_size=8),
    value=st.integers(min_value=0, max_value=255),
    keep=st.floats(min_value=0.0, max_value=1.0),
)
def test_mutated_files_raise_only_the_readers_error(
    tmp_path: Path, name: str, mutation: str, positions: list[int], value: int, keep: float
) -> None:
    data = _FILES[name]
    if mutation == "flip":
        mutated = _flip(data, positions, value)
    elif mutation == "truncate":
        mutated = data[: int(len(data) * keep)]
    else:
        mutated = _drop_lines(data, positions)
    path = tmp_path / name
    path.write_bytes(mutated)
    message = None
    try:
        read_recording(path, meta={"scan_rate": 0.1})
    except FileReadError as exc:
        message = str(exc)
    if message is not None:
        assert message.startswith(name), message
        assert "\n" not in message
