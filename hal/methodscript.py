"""MethodSCRIPT, the scripting language of PalmSens instruments: scripts out, packets in.

Writing: :func:`script_for` turns a Galvana waveform (CV, LSV, CA, piecewise linear)
into a MethodSCRIPT that measures time, applied potential and current at every step.

Reading: the instrument answers with lines. A data packet is ``P`` followed by
variables separated by ``;``; each variable is a two-letter type (``da`` applied
potential, ``ba`` WE current, ``eb`` time, ...), seven hexadecimal digits holding
the value plus 2**27, and one SI prefix character (``a f p n u m`` space ``k M G T P
E``, ``i`` for integers); metadata follow, comma-separated: ``1X`` a status nibble
(1 timing error, 2 overload, 4 underload, 8 overload warning) and ``2XX`` the current
range code. ``     nan`` stands for a value that is not a number. Other lines: ``e``
(script started), ``M....``/``*`` (measurement loop start/end), ``C....``/``-``
(scan start/end), ``L``/``+`` (loop start/end), ``!XXXX`` (an error, hex code,
optionally ``: Line n, Col m``), ``Z`` (abort acknowledged; ``Z!0006``: nothing was
running) and an empty line (the script ended).

:class:`PacketParser` decodes whole chunks with array operations: every packet
line with the common layout is decoded at once (lookup tables for the hex digits
and prefixes); only odd lines (NaN, another layout, garbage) take the slow path.
The format is PalmSens' published one (MethodSCRIPT documentation, "data package");
the tests build packets from it by hand.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from hal.driver import Settings
from hal.errors import UnsupportedWaveformError
from runtime.sample_flags import Flag
from runtime.waveforms import (
    Chronoamperometry,
    CyclicVoltammetry,
    LinearSweep,
    Piecewise,
    Waveform,
    initial_potential,
    potential_bounds,
)

__all__ = [
    "CURRENT_RANGE_CODES",
    "CURRENT_TYPES",
    "OFFSET",
    "POTENTIAL_TYPES",
    "SI_PREFIXES",
    "STATUS_FLAGS",
    "TIME_TYPES",
    "PacketParser",
    "Parsed",
    "ScriptEvent",
    "encode_packets",
    "literal",
    "parse_literal",
    "script_for",
    "status_flags",
]

FloatArray = npt.NDArray[np.float64]

OFFSET = 1 << 27
"""Packet values are stored as value + 2**27 in seven hexadecimal digits."""

SI_PREFIXES: dict[str, float] = {
    "a": 1e-18,
    "f": 1e-15,
    "p": 1e-12,
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    " ": 1.0,
    "i": 1.0,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
}
"""SI prefix characters of packet values and script literals (``i``: an integer)."""

_PREFIX_BY_EXPONENT = {-18: "a", -15: "f", -12: "p", -9: "n", -6: "u", -3: "m", 0: " "}
_PREFIX_BY_EXPONENT.update({3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"})

CURRENT_RANGE_CODES: dict[int, float] = {
    3: 1e-9,
    6: 10e-9,
    9: 100e-9,
    12: 1e-6,
    15: 10e-6,
    18: 100e-6,
    21: 1e-3,
    24: 10e-3,
    27: 100e-3,
}
"""Current range codes of the ``2XX`` metadata (EmStat4 numbering), full scale in A."""

STATUS_FLAGS: dict[int, Flag] = {0x1: Flag.TIMING, 0x2: Flag.OVERLOAD, 0x4: Flag.UNDERLOAD}
"""Metadata status bits and the Galvana flags they become (overload warning: none)."""

# Variable types a potentiostat driver maps to sample columns.
TIME_TYPES = ("eb",)
POTENTIAL_TYPES = ("da", "ab")
CURRENT_TYPES = ("ba",)


# --- literals -----------------------------------------------------------------


def literal(value: float) -> str:
    """A MethodSCRIPT numeric literal: an integer with an SI prefix (``0.1`` -> ``100m``).

    The largest prefix that represents ``value`` exactly (to 1e-9 relative) is used;
    a value no prefix represents exactly is rounded with the finest prefix whose
    integer still fits in 32 bits (nine or ten significant digits).

    >>> [literal(v) for v in (0.1, -0.5, 1.0, 2.5e-3, 1e-7, 0.0, 1e-9, 2.9312345678e-4)]
    ['100m', '-500m', '1', '2500u', '100n', '0', '1n', '293123457p']
    """
    if not math.isfinite(value):
        raise UnsupportedWaveformError(f"{value!r} cannot be written as a MethodSCRIPT literal")
    if value == 0:
        return "0"
    finest = ""
    for exponent in (0, -3, -6, -9, -12, -15):
        mantissa = value / 10.0**exponent
        rounded = round(mantissa)
        if abs(rounded) >= 2**31:
            break
        finest = f"{rounded}{_PREFIX_BY_EXPONENT[exponent].strip()}"
        if abs(mantissa - rounded) <= 1e-9 * abs(mantissa):
            return finest
    if not finest:
        raise UnsupportedWaveformError(f"{value!r} is too large for a MethodSCRIPT literal")
    return finest


def parse_literal(text: str) -> float:
    """The value of a script literal (``100m`` -> 0.1; decimals are accepted too)."""
    text = text.strip()
    if not text:
        raise ValueError("empty literal")
    factor = 1.0
    if text[-1] in SI_PREFIXES and not text[-1].isdigit() and text[-1] not in " i":
        factor = SI_PREFIXES[text[-1]]
        text = text[:-1]
    return float(text) * factor


# --- scripts --------------------------------------------------------------------


def script_for(waveform: Waveform, settings: Settings, *, current_range: float) -> str:
    """A MethodSCRIPT running ``waveform`` at ``settings.sample_rate``, one packet
    (time, applied potential, current) per step, the cell off when it ends or aborts.

    CV maps onto ``meas_loop_cv`` (``E_begin -> E_vtx1 -> E_vtx2 -> E_begin``, so the
    CV must end where it starts, with one or two vertices), LSV onto
    ``meas_loop_lsv``, CA onto one ``meas_loop_ca`` per step, and a piecewise-linear
    waveform (a twin run's cycle with the rest before it) onto one loop per piece: a
    sweep is a ``meas_loop_lsv`` at its own scan rate, a hold a ``meas_loop_ca``, a jump
    the next loop starting at its potential. The script's timer runs on across the
    loops, so the samples' times are the waveform's. Other waveforms raise
    :class:`UnsupportedWaveformError`.
    """
    interval = 1.0 / settings.sample_rate
    lo, hi = potential_bounds(waveform)
    lines = [
        "e",
        "var t",
        "var p",
        "var c",
        "set_pgstat_chan 0",
        "set_pgstat_mode 2",
        f"set_max_bandwidth {literal(float(round(4 * settings.sample_rate)))}",
        f"set_range_minmax da {literal(lo)} {literal(hi)}",
        f"set_range ba {literal(current_range)}",
        f"set_autoranging ba {literal(current_range)} {literal(current_range)}",
        f"set_e {literal(initial_potential(waveform))}",
        "cell_on",
        "timer_start",
    ]
    packet = ["\ttimer_get t", "\tpck_start", "\tpck_add t", "\tpck_add p", "\tpck_add c"]
    packet += ["\tpck_end", "endloop"]
    if isinstance(waveform, CyclicVoltammetry):
        begin, v1, v2 = _cv_corners(waveform)
        step = waveform.scan_rate * interval
        scans = f" nscans({waveform.cycles})" if waveform.cycles > 1 else ""
        lines.append(
            f"meas_loop_cv p c {literal(begin)} {literal(v1)} {literal(v2)} "
            f"{literal(step)} {literal(waveform.scan_rate)}{scans}"
        )
        lines += packet
    elif isinstance(waveform, LinearSweep):
        step = waveform.scan_rate * interval
        lines.append(
            f"meas_loop_lsv p c {literal(waveform.E_start)} {literal(waveform.E_end)} "
            f"{literal(step)} {literal(waveform.scan_rate)}"
        )
        lines += packet
    elif isinstance(waveform, Chronoamperometry):
        for s in waveform.steps:
            lines.append(
                f"meas_loop_ca p c {literal(s.E)} {literal(interval)} {literal(s.duration)}"
            )
            lines += packet
    elif isinstance(waveform, Piecewise):
        for (t0, E0), (t1, E1) in itertools.pairwise(waveform.points):
            span = t1 - t0
            if span <= 0:
                continue  # a jump: the next loop starts at its potential
            if E1 == E0:
                lines.append(f"meas_loop_ca p c {literal(E0)} {literal(interval)} {literal(span)}")
            else:
                rate = abs(E1 - E0) / span
                lines.append(
                    f"meas_loop_lsv p c {literal(E0)} {literal(E1)} {literal(rate * interval)} "
                    f"{literal(rate)}"
                )
            lines += packet
    else:
        raise UnsupportedWaveformError(
            f"MethodSCRIPT driver cannot run a {waveform.type!r} waveform; "
            "accepted: cv, lsv, ca, piecewise"
        )
    lines += ["on_finished:", "cell_off", ""]
    return "\n".join(lines) + "\n"


def _cv_corners(cv: CyclicVoltammetry) -> tuple[float, float, float]:
    if cv.E_end != cv.E_start or len(cv.vertices) not in (1, 2):
        raise UnsupportedWaveformError(
            f"MethodSCRIPT's meas_loop_cv runs E_begin -> E_vtx1 -> E_vtx2 -> E_begin; a CV with "
            f"{len(cv.vertices)} vertices ending at {cv.E_end:g} V (start {cv.E_start:g} V) "
            "does not fit; accepted: one or two vertices and E_end == E_start"
        )
    if len(cv.vertices) == 1:
        return cv.E_start, cv.vertices[0], cv.E_start
    return cv.E_start, cv.vertices[0], cv.vertices[1]


# --- packets out (the simulated device) ----------------------------------------------

_HEX = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)


def _hex_digits(values: npt.NDArray[np.int64], width: int) -> npt.NDArray[np.uint8]:
    shifts = np.arange(width - 1, -1, -1, dtype=np.int64) * 4
    nibbles = (values[:, None] >> shifts[None, :]) & 0xF
    out: npt.NDArray[np.uint8] = _HEX[nibbles]
    return out


def _encode_values(values: FloatArray) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """Seven hex digits and a prefix character per value, with the finest prefix that fits."""
    magnitude = np.abs(values)
    with np.errstate(divide="ignore"):
        need = np.log10(np.where(magnitude > 0, magnitude, 1e-30) / (OFFSET - 1))
    exponent = np.clip(np.ceil(need / 3.0) * 3.0, -18, 18).astype(np.int64)
    exponent = np.where(magnitude > 0, exponent, -9)
    mantissa = np.round(values / 10.0 ** exponent.astype(np.float64)).astype(np.int64)
    mantissa = np.clip(mantissa, -OFFSET, OFFSET - 1)
    prefixes = np.frombuffer(
        "".join(_PREFIX_BY_EXPONENT[e] for e in range(-18, 19, 3)).encode(), dtype=np.uint8
    )
    return _hex_digits(mantissa + OFFSET, 7), prefixes[(exponent + 18) // 3][:, None]


def encode_packets(
    columns: list[tuple[str, FloatArray]],
    *,
    status: npt.NDArray[np.uint8] | None = None,
    range_code: int | None = None,
) -> bytes:
    """Data packet lines for many samples at once (what the simulated device sends).

    ``columns``: ``(type, values)`` in packet order; the last column gets the
    metadata (``status`` per sample, ``range_code``) when given.
    """
    n = len(columns[0][1])
    blocks: list[npt.NDArray[np.uint8]] = [np.full((n, 1), ord("P"), dtype=np.uint8)]
    for i, (var_type, values) in enumerate(columns):
        if i:
            blocks.append(np.full((n, 1), ord(";"), dtype=np.uint8))
        blocks.append(np.tile(np.frombuffer(var_type.encode(), dtype=np.uint8), (n, 1)))
        digits, prefix = _encode_values(np.asarray(values, dtype=np.float64))
        blocks += [digits, prefix]
    if status is not None:
        blocks.append(np.tile(np.frombuffer(b",1", dtype=np.uint8), (n, 1)))
        blocks.append(_hex_digits(status.astype(np.int64) & 0xF, 1))
    if range_code is not None:
        blocks.append(
            np.tile(np.frombuffer(f",2{range_code:02X}".encode(), dtype=np.uint8), (n, 1))
        )
    blocks.append(np.full((n, 1), ord("\n"), dtype=np.uint8))
    return np.hstack(blocks).tobytes()


# --- packets in (the driver) -----------------------------------------------------------

_NIBBLE = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789ABCDEF"):
    _NIBBLE[_c] = _i
for _i, _c in enumerate(b"abcdef"):
    _NIBBLE[_c] = 10 + _i
_FACTOR = np.full(256, np.nan)
for _p, _f in SI_PREFIXES.items():
    _FACTOR[ord(_p)] = _f
_WEIGHTS = (16 ** np.arange(6, -1, -1)).astype(np.int64)


@dataclass(frozen=True, slots=True)
class ScriptEvent:
    """A non-packet line: ``kind`` is ``started``, ``loop``, ``loop_end``, ``error``,
    ``aborted``, ``not_running``, ``ended`` or ``reply`` (t/i/v answers); ``code``
    the error code (hex in the line); ``text`` the line."""

    kind: str
    text: str
    code: int = 0


@dataclass(slots=True)
class Parsed:
    """What one chunk held: decoded columns by variable type, per-sample metadata,
    events in order, and lines dropped as garbage with their raw bytes.

    ``lines`` is the line (of the chunk) of each decoded packet, ``dropped`` the line of
    each packet line that could not be used (garbled, NaN, another layout), both in
    order: a sample was lost wherever one of ``dropped`` lies between two of ``lines``."""

    values: dict[str, FloatArray] = field(default_factory=dict)
    status: npt.NDArray[np.uint8] = field(default_factory=lambda: np.zeros(0, dtype=np.uint8))
    range_code: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    events: list[ScriptEvent] = field(default_factory=list)
    garbage: list[bytes] = field(default_factory=list)
    lines: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    dropped: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    _data: bytes = b""
    _starts: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    _ends: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def count(self) -> int:
        """Number of packets decoded."""
        return int(self.status.size)

    def raw(self, row: int) -> bytes:
        """The bytes of decoded packet ``row`` as received (for logs of dropped samples)."""
        line = int(self.lines[row])
        return self._data[int(self._starts[line]) : int(self._ends[line])]


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where the fields of a packet line of one shape sit (offsets into the line)."""

    length: int
    types: tuple[str, ...]
    value_at: tuple[int, ...]
    status_at: int
    range_at: int
    fixed_at: npt.NDArray[np.int64]
    fixed: npt.NDArray[np.uint8]


def _layout(line: bytes) -> _Layout | None:
    """The layout of a well-formed packet line, or None."""
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        return None
    if not text.startswith("P"):
        return None
    types: list[str] = []
    value_at: list[int] = []
    fixed: list[int] = [0]
    status_at = range_at = -1
    pos = 1
    for i, var in enumerate(text[1:].split(";")):
        if i:
            fixed.append(pos - 1)  # the ';'
        head, *meta = var.split(",")
        if len(head) != 10 or not head[:2].isalpha():
            return None
        if any(_NIBBLE[ord(c)] == 255 for c in head[2:9]) or head[9] not in SI_PREFIXES:
            return None
        types.append(head[:2])
        fixed += [pos, pos + 1]
        value_at.append(pos + 2)
        at = pos + 10
        for m in meta:
            fixed.append(at)  # the ','
            fixed.append(at + 1)  # the metadata id
            if m[:1] == "1" and len(m) == 2:
                status_at = at + 2
            elif m[:1] == "2" and len(m) == 3:
                range_at = at + 2
            else:
                return None
            at += 1 + len(m)
        pos = at + 1
    return _Layout(
        len(line),
        tuple(types),
        tuple(value_at),
        status_at,
        range_at,
        np.array(fixed, dtype=np.int64),
        np.frombuffer(line, dtype=np.uint8)[fixed].copy(),
    )


class PacketParser:
    """Decodes the instrument's output chunk by chunk (see the module docstring).

    Lines split across chunks are kept until their end arrives.
    """

    def __init__(self) -> None:
        self._rest = b""
        self._layout: _Layout | None = None

    def feed(self, chunk: bytes) -> Parsed:
        """Decode every complete line in ``self``'s pending bytes plus ``chunk``."""
        data = self._rest + chunk
        cut = data.rfind(b"\n") + 1
        self._rest = data[cut:]
        out = Parsed()
        if cut == 0:
            return out
        buf = np.frombuffer(data, dtype=np.uint8, count=cut)
        ends = np.flatnonzero(buf == 10)
        starts = np.concatenate([[0], ends[:-1] + 1])
        lengths = ends - starts
        first = np.where(lengths > 0, buf[np.minimum(starts, cut - 1)], 0)
        is_packet = first == ord("P")
        rows = np.flatnonzero(is_packet)
        fast = np.zeros(0, dtype=np.int64)
        if rows.size:
            layout = self._layout
            first_line = data[starts[rows[0]] : ends[rows[0]]].rstrip(b"\r")
            if layout is None or layout.length != len(first_line):
                layout = _layout(first_line) or layout
                self._layout = layout
            if layout is not None:
                fast = self._decode_fast(
                    buf, starts=starts, lengths=lengths, rows=rows, layout=layout, out=out
                )
        slow = np.setdiff1d(np.arange(starts.size), fast, assume_unique=True)
        extra: list[tuple[int, dict[str, float], int, int]] = []
        dropped: list[int] = []
        for i in slow:
            line = data[int(starts[i]) : int(ends[i])].rstrip(b"\r")
            packet = self._line(line, out)
            if packet is not None:
                extra.append((int(i), *packet))
            elif line.startswith(b"P"):
                dropped.append(int(i))
        out.lines = fast
        if extra:
            dropped += _merge(out, fast, extra)
        out.dropped = np.array(sorted(dropped), dtype=np.int64)
        out._data, out._starts, out._ends = data, starts, ends
        return out

    def _decode_fast(
        self,
        buf: npt.NDArray[np.uint8],
        *,
        starts: npt.NDArray[np.int64],
        lengths: npt.NDArray[np.int64],
        rows: npt.NDArray[np.int64],
        layout: _Layout,
        out: Parsed,
    ) -> npt.NDArray[np.int64]:
        """Decode every packet line of ``layout`` at once; returns the line indices done."""
        same = np.asarray(rows[lengths[rows] == layout.length], dtype=np.int64)
        if same.size == 0:
            return same
        matrix = buf[starts[same][:, None] + np.arange(layout.length)[None, :]]
        ok = (matrix[:, layout.fixed_at] == layout.fixed[None, :]).all(axis=1)
        columns: list[npt.NDArray[np.int64]] = []
        factors: list[FloatArray] = []
        for at in layout.value_at:
            nib = _NIBBLE[matrix[:, at : at + 7]]
            ok &= (nib != 255).all(axis=1)
            factor = _FACTOR[matrix[:, at + 7]]
            ok &= np.isfinite(factor)
            columns.append(nib.astype(np.int64) @ _WEIGHTS - OFFSET)
            factors.append(factor)
        status = np.zeros(same.size, dtype=np.uint8)
        if layout.status_at >= 0:
            nib = _NIBBLE[matrix[:, layout.status_at]]
            ok &= nib != 255
            status = nib
        code = np.full(same.size, -1, dtype=np.int64)
        if layout.range_at >= 0:
            hi = _NIBBLE[matrix[:, layout.range_at]]
            lo = _NIBBLE[matrix[:, layout.range_at + 1]]
            ok &= (hi != 255) & (lo != 255)
            code = hi.astype(np.int64) * 16 + lo
        for name, col, factor in zip(layout.types, columns, factors, strict=True):
            out.values[name] = (col[ok] * factor[ok]).astype(np.float64)
        out.status = status[ok].astype(np.uint8)
        out.range_code = code[ok]
        done: npt.NDArray[np.int64] = same[ok]
        return done

    def _line(self, line: bytes, out: Parsed) -> tuple[dict[str, float], int, int] | None:
        """One line the fast path did not take; a packet's values are returned."""
        if line.startswith(b"P"):
            packet = _slow_packet(line)
            # A NaN carries no sample: such a packet is dropped like garbage, with its bytes.
            if (
                packet is None
                or any(math.isnan(v) for v in packet[0].values())
                or (out.values and set(packet[0]) != set(out.values))
            ):
                out.garbage.append(line)
                return None
            return packet
        text = line.decode("ascii", errors="replace")
        head = text[:1]
        if text == "":
            out.events.append(ScriptEvent("ended", text))
        elif text == "e":
            out.events.append(ScriptEvent("started", text))
        elif text.startswith("Z!"):
            out.events.append(ScriptEvent("not_running", text, _hex_code(text[2:])))
        elif text == "Z":
            out.events.append(ScriptEvent("aborted", text))
        elif head == "!":
            out.events.append(ScriptEvent("error", text, _hex_code(text[1:])))
        elif text == "L" or (
            head in "MC" and len(text) == 5 and all(_NIBBLE[ord(c)] != 255 for c in text[1:])
        ):
            out.events.append(ScriptEvent("loop", text))
        elif text in ("*", "-", "+"):
            out.events.append(ScriptEvent("loop_end", text))
        elif head in "tiv" and text.isprintable():
            out.events.append(ScriptEvent("reply", text))
        else:
            out.garbage.append(line)
        return None


def _merge(
    out: Parsed,
    fast: npt.NDArray[np.int64],
    extra: list[tuple[int, dict[str, float], int, int]],
) -> list[int]:
    """Put packets decoded one by one among the fast ones, in line order; returns the
    lines of those dropped."""
    names = list(out.values) or list(extra[0][1])
    dropped = [e[0] for e in extra if set(e[1]) != set(names)]
    if dropped:
        # A chunk mixing layouts: keep the majority layout, drop the rest as garbage.
        extra = [e for e in extra if set(e[1]) == set(names)]
    index = np.concatenate([fast, np.array([e[0] for e in extra], dtype=np.int64)])
    order = np.argsort(index, kind="stable")
    out.lines = index[order]
    for name in names:
        column = np.concatenate(
            [out.values.get(name, np.zeros(fast.size)), np.array([e[1][name] for e in extra])]
        )
        out.values[name] = column[order]
    out.status = np.concatenate([out.status, np.array([e[2] for e in extra], dtype=np.uint8)])[
        order
    ]
    out.range_code = np.concatenate(
        [out.range_code, np.array([e[3] for e in extra], dtype=np.int64)]
    )[order]
    return dropped


def _hex_code(text: str) -> int:
    digits = text[:4]
    try:
        return int(digits, 16)
    except ValueError:
        return -1


def _slow_packet(line: bytes) -> tuple[dict[str, float], int, int] | None:
    """Decode one packet line by hand (NaN values, unusual layouts); None if garbage."""
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        return None
    values: dict[str, float] = {}
    status, code = 0, -1
    for var in text[1:].split(";"):
        head, *meta = var.split(",")
        if len(head) != 10 or not head[:2].isalpha():
            return None
        body = head[2:]
        if body == "     nan":
            values[head[:2]] = math.nan
        else:
            if body[7] not in SI_PREFIXES:
                return None
            try:
                raw = int(body[:7], 16)
            except ValueError:
                return None
            values[head[:2]] = (raw - OFFSET) * SI_PREFIXES[body[7]]
        for m in meta:
            try:
                if m[:1] == "1" and len(m) == 2:
                    status = int(m[1], 16)
                elif m[:1] == "2" and len(m) == 3:
                    code = int(m[1:], 16)
                else:
                    return None
            except ValueError:
                return None
    return values, status, code


def status_flags(status: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Galvana :class:`~runtime.sample_flags.Flag` bits for metadata status nibbles."""
    flags = np.zeros(status.shape, dtype=np.uint8)
    for bit, flag in STATUS_FLAGS.items():
        flags[(status & bit) != 0] |= np.uint8(flag)
    return flags
