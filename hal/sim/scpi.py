"""The simulated potentiostat's SCPI dialect: one line in, at most one reply out.

Commands follow SCPI-99 conventions: long or short mnemonics (``SOURce`` or ``SOUR``,
any case), several commands per line separated by ``;`` (a command that does not
start with ``:`` continues the previous one's path), queries end in ``?``, the
replies of one line are joined by ``;``, every line ends with ``\\n``. Errors go to
the queue read by ``SYSTem:ERRor?`` (a failing query sends no reply, as on real
instruments). Numbers are SI: volts, amperes, seconds, hertz.

==================================  =======================================================
Command                             Meaning
==================================  =======================================================
``*IDN?``                           ``Galvana,SimPotentiostat,<serial>,<version>``
``*RST``                            output off, acquisition dropped, defaults, program cleared
``*CLS``                            clear the error queue
``*OPC?``                           ``1`` (commands complete in order)
``SYSTem:ERRor[:NEXT]?``            ``<code>,"<text>"``; ``0,"No error"`` when empty
``SYSTem:CAPability?``              ``<E_min>,<E_max>,<compliance>,<max rate>,<n>,<range 1..n>``
``SYSTem:CAPability:TECHniques?``   ``"CV,LSV,CA,SWV,PIECEWISE"``
``SOURce:VOLTage <V>`` / ``?``      potential held while no waveform runs
``SOURce:LIST:POINts <t,E,...>``    the waveform's corners (t from 0 s, non-decreasing);
                                    two corners at one time make a jump
``SOURce:LIST:APPend <t,E,...>``    more corners (long waveforms span several lines)
``SOURce:LIST:POINts?``             number of corners
``SOURce:LIST:INITial <V>``         rest potential before t = 0 (default: first corner)
``SOURce:LIST:PERiod <s>``          one cycle's duration (drift is counted in cycles)
``SENSe:CURRent:RANGe <A>`` / ``?`` current range: the smallest full scale >= the value
``SENSe:CURRent:PROTection <A>``    compliance: the largest current delivered (``?``)
``SAMPle:RATE <Hz>`` / ``?``        sample rate of the next acquisition
``OUTPut[:STATe] ON|OFF|1|0`` / ``?`` cell on or off; OFF aborts a running waveform
``INITiate``                        start the waveform (turns the output on)
``ABORt``                           stop the waveform; the output stays as it is
``STATus:ACQuisition?``             ``<IDLE|RUNNING|DONE|ABORTED>,<measured>,<total>``
``FETCh:NEW? [<max>]``              samples not fetched yet, at most ``max`` (65536), as a
                                    definite-length block ``#<d><len><records>``; each
                                    record is 29 bytes little-endian: ``u4`` sample
                                    number (from 1), ``f8`` t (s), ``f8`` E (V), ``f8`` I
                                    (A), ``u1`` flags (1 overload, 2 compliance)
``FETCh:LOST?``                     samples lost from the buffer since ``INIT``
``FETCh:EPOCh?``                    UNIX time (s) of t = 0 (same host only: latency)
``SIMulation:FAULt:<KIND> [<arg>]`` fault injection: ``STALl <s>``, ``HANG <s>``, ``DROP
                                    [<s>]``, ``GARBage [<n>]``, ``TRUNcate [<n>]``,
                                    ``RANGe [<n>]``, ``SHORt <ohm>`` (0: none),
                                    ``OFFSet <V>``, ``CLEar``
``SIMulation:TRUTh? <name>``        a hidden model parameter (tests and demos only)
==================================  =======================================================
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hal.errors import SimulatorError
from hal.records import ieee_block
from hal.sim.potentiostat import (
    CURRENT_RANGES,
    E_LIMIT,
    MAX_COMPLIANCE,
    MAX_SAMPLE_RATE,
    SimPotentiostat,
)

__all__ = ["GARBAGE", "VERSION", "ScpiSession", "ServerHooks", "is_truncated"]

logger = logging.getLogger("galvana.hal.sim")

VERSION = "1.0"
DEFAULT_FETCH = 65536
GARBAGE = b"\x8f\x00GARBAGE\xfe\x12zz!!\r\x7f"
"""What a garbage reply looks like (then ``\\n``): no block header, bytes no parser takes."""


@dataclass(slots=True)
class ServerHooks:
    """What a session asks of the server that hosts it (connection-level faults)."""

    drop: Callable[[float], None]
    hang: Callable[[float], None]


class _ScpiCommandError(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


_Handler = Callable[["ScpiSession", list[str]], "str | bytes | None"]

# Each spec: mnemonics with the short form in capitals; [:NODE] is optional.
_SPECS: dict[str, str] = {}
_TABLE: dict[tuple[tuple[str, ...], bool], str] = {}


def _command(*specs: str) -> Callable[[_Handler], _Handler]:
    def register(fn: _Handler) -> _Handler:
        for spec in specs:
            query = spec.endswith("?")
            body = spec.rstrip("?")
            for variant in _expand_optional(body):
                nodes = tuple(_canonical_node(n) for n in variant.split(":") if n)
                _TABLE[(nodes, query)] = fn.__name__
        return fn

    return register


def _expand_optional(spec: str) -> list[str]:
    m = re.search(r"\[(:?[A-Za-z]+)\]", spec)
    if m is None:
        return [spec]
    without = spec[: m.start()] + spec[m.end() :]
    with_ = spec[: m.start()] + m.group(1) + spec[m.end() :]
    return _expand_optional(without) + _expand_optional(with_)


def _canonical_node(node: str) -> str:
    """Register a mnemonic's long and short forms; returns its short form (upper case)."""
    if node.startswith("*"):
        _SPECS[node.upper()] = node.upper()
        return node.upper()
    short = "".join(c for c in node if c.isupper() or c.isdigit())
    _SPECS[short] = short
    _SPECS[node.upper()] = short
    return short


_SEPARATOR = re.compile(r""";(?=(?:[^"]*"[^"]*")*[^"]*$)""")


def _split_commands(line: str) -> list[str]:
    return [c.strip() for c in _SEPARATOR.split(line) if c.strip()]


def _split_args(text: str) -> list[str]:
    text = text.strip()
    if not text:
        return []
    return [a.strip() for a in re.split(r""",(?=(?:[^"]*"[^"]*")*[^"]*$)""", text)]


def _number(args: list[str], i: int, what: str) -> float:
    if len(args) <= i:
        raise _ScpiCommandError(-109, f"Missing parameter;{what}")
    text = args[i].upper()
    special = {"MIN": -math.inf, "MAX": math.inf, "DEF": math.nan}
    if text in special:
        raise _ScpiCommandError(-224, f"Illegal parameter value;{what} must be a number")
    try:
        value = float(text)
    except ValueError:
        raise _ScpiCommandError(
            -104, f"Data type error;{what}: {args[i]!r} is not a number"
        ) from None
    if not math.isfinite(value):
        raise _ScpiCommandError(-224, f"Illegal parameter value;{what} must be finite")
    return value


def _boolean(args: list[str], what: str) -> bool:
    if not args:
        raise _ScpiCommandError(-109, f"Missing parameter;{what}")
    text = args[0].upper()
    if text in ("ON", "1"):
        return True
    if text in ("OFF", "0"):
        return False
    raise _ScpiCommandError(-224, f"Illegal parameter value;{what}: ON, OFF, 1 or 0")


class ScpiSession:
    """One client's conversation with a :class:`SimPotentiostat` (one per connection)."""

    def __init__(self, instrument: SimPotentiostat, hooks: ServerHooks | None = None) -> None:
        self.instrument = instrument
        self.hooks = hooks

    def execute(self, line: str) -> bytes | None:
        """Run one line; returns the reply to send (with its ``\\n``), or None."""
        replies: list[bytes] = []
        path: tuple[str, ...] = ()
        for command in _split_commands(line):
            header, _, rest = command.partition(" ")
            header = header.strip()
            try:
                nodes, query, path = self._resolve(header, path)
                handler_name = _TABLE.get((nodes, query))
                if handler_name is None:
                    raise _ScpiCommandError(-113, f"Undefined header;{header}")
                handler: _Handler = getattr(ScpiSession, handler_name)
                reply = handler(self, _split_args(rest))
            except _ScpiCommandError as exc:
                self.instrument.error(exc.code, exc.text)
                continue
            except SimulatorError as exc:
                self.instrument.error(-222, f"Data out of range;{exc}")
                continue
            if isinstance(reply, _Truncated):
                return reply  # the rest of the line is never answered
            if reply is not None:
                replies.append(reply.encode() if isinstance(reply, str) else reply)
        if not replies:
            return None
        with self.instrument.lock:
            faults = self.instrument.faults
            if faults.garbage_replies > 0:
                faults.garbage_replies -= 1
                return GARBAGE + b"\n"
        return b";".join(replies) + b"\n"

    @staticmethod
    def _resolve(
        header: str, path: tuple[str, ...]
    ) -> tuple[tuple[str, ...], bool, tuple[str, ...]]:
        query = header.endswith("?")
        body = header.rstrip("?")
        if body.startswith("*"):
            return (body.upper(),), query, path
        absolute = body.startswith(":")
        tokens = [t for t in body.split(":") if t]
        nodes: list[str] = [] if absolute else list(path)
        for token in tokens:
            short = _SPECS.get(re.sub(r"\d+$", "", token.upper()))
            if short is None:
                raise _ScpiCommandError(-113, f"Undefined header;{header}")
            nodes.append(short)
        return tuple(nodes), query, tuple(nodes[:-1])

    # --- common commands ----------------------------------------------------

    @_command("*IDN?")
    def _idn(self, args: list[str]) -> str:
        return f"Galvana,SimPotentiostat,{self.instrument.serial},{VERSION}"

    @_command("*RST")
    def _rst(self, args: list[str]) -> None:
        self.instrument.reset()

    @_command("*CLS")
    def _cls(self, args: list[str]) -> None:
        self.instrument.errors.clear()

    @_command("*OPC?")
    def _opc(self, args: list[str]) -> str:
        return "1"

    @_command("SYSTem:ERRor[:NEXT]?")
    def _err(self, args: list[str]) -> str:
        with self.instrument.lock:
            if not self.instrument.errors:
                return '0,"No error"'
            code, text = self.instrument.errors.popleft()
        return f'{code},"{text.replace(chr(34), chr(39))}"'

    @_command("SYSTem:CAPability?")
    def _cap(self, args: list[str]) -> str:
        ranges = ",".join(f"{r:g}" for r in CURRENT_RANGES)
        return (
            f"{-E_LIMIT:g},{E_LIMIT:g},{MAX_COMPLIANCE:g},{MAX_SAMPLE_RATE:g},"
            f"{len(CURRENT_RANGES)},{ranges}"
        )

    @_command("SYSTem:CAPability:TECHniques?")
    def _techniques(self, args: list[str]) -> str:
        return '"CV,LSV,CA,SWV,PIECEWISE"'

    # --- source ---------------------------------------------------------------

    @_command("SOURce:VOLTage")
    def _volt(self, args: list[str]) -> None:
        self.instrument.set_dc(_number(args, 0, "potential"))

    @_command("SOURce:VOLTage?")
    def _volt_q(self, args: list[str]) -> str:
        return f"{self.instrument.E_dc:.9g}"

    @_command("SOURce:LIST:POINts")
    def _points_replace(self, args: list[str]) -> None:
        self._program(args, append=False)

    @_command("SOURce:LIST:APPend")
    def _points_append(self, args: list[str]) -> None:
        self._program(args, append=True)

    def _program(self, args: list[str], *, append: bool) -> None:
        if len(args) < 2 or len(args) % 2:
            raise _ScpiCommandError(-109, "Missing parameter;corners come as t,E pairs")
        values = [_number(args, i, "corner") for i in range(len(args))]
        self.instrument.set_program(values[0::2], values[1::2], append=append)

    @_command("SOURce:LIST:POINts?")
    def _points_q(self, args: list[str]) -> str:
        return str(len(self.instrument.corners_t))

    @_command("SOURce:LIST:INITial")
    def _initial(self, args: list[str]) -> None:
        E = _number(args, 0, "initial potential")
        if abs(E) > E_LIMIT:
            raise _ScpiCommandError(-222, f"Data out of range;initial potential {E:g} V")
        self.instrument.E_initial = E

    @_command("SOURce:LIST:PERiod")
    def _period(self, args: list[str]) -> None:
        value = _number(args, 0, "period")
        if value < 0:
            raise _ScpiCommandError(-222, "Data out of range;period must be >= 0 s")
        self.instrument.period = value

    # --- sense -------------------------------------------------------------------

    @_command("SENSe:CURRent:RANGe")
    def _range(self, args: list[str]) -> None:
        self.instrument.set_current_range(_number(args, 0, "current range"))

    @_command("SENSe:CURRent:RANGe?")
    def _range_q(self, args: list[str]) -> str:
        return f"{self.instrument.current_range:g}"

    @_command("SENSe:CURRent:PROTection")
    def _prot(self, args: list[str]) -> None:
        self.instrument.set_compliance(_number(args, 0, "compliance"))

    @_command("SENSe:CURRent:PROTection?")
    def _prot_q(self, args: list[str]) -> str:
        return f"{self.instrument.compliance:g}"

    @_command("SAMPle:RATE")
    def _rate(self, args: list[str]) -> None:
        self.instrument.set_sample_rate(_number(args, 0, "sample rate"))

    @_command("SAMPle:RATE?")
    def _rate_q(self, args: list[str]) -> str:
        return f"{self.instrument.sample_rate:g}"

    # --- output and trigger ----------------------------------------------------

    @_command("OUTPut[:STATe]")
    def _output(self, args: list[str]) -> None:
        self.instrument.set_output(_boolean(args, "output state"))

    @_command("OUTPut[:STATe]?")
    def _output_q(self, args: list[str]) -> str:
        return "1" if self.instrument.output_on else "0"

    @_command("INITiate")
    def _init(self, args: list[str]) -> None:
        try:
            self.instrument.initiate()
        except SimulatorError as exc:
            raise _ScpiCommandError(-221, f"Settings conflict;{exc}") from None

    @_command("ABORt")
    def _abort(self, args: list[str]) -> None:
        self.instrument.abort()

    @_command("STATus:ACQuisition?")
    def _status(self, args: list[str]) -> str:
        state, done, total = self.instrument.status()
        return f"{state.upper()},{done},{total}"

    # --- fetch -------------------------------------------------------------------

    @_command("FETCh:NEW?")
    def _fetch(self, args: list[str]) -> bytes:
        limit = int(_number(args, 0, "max samples")) if args else DEFAULT_FETCH
        if limit < 1:
            raise _ScpiCommandError(-222, "Data out of range;max samples must be >= 1")
        inst = self.instrument
        records, _ = inst.fetch(min(limit, DEFAULT_FETCH))
        with inst.lock:
            faults = inst.faults
            if faults.out_of_range_replies > 0 and records.size:
                faults.out_of_range_replies -= 1
                records = records.copy()
                records["E"] = 1.0e6
                records["I"] = np.nan
            block = ieee_block(records.tobytes())
            if faults.truncated_replies > 0 and records.size:
                faults.truncated_replies -= 1
                # Header and half the data, then silence: the client times out.
                return _Truncated(block[: len(block) - records.nbytes // 2])
        return block

    @_command("FETCh:LOST?")
    def _lost(self, args: list[str]) -> str:
        with self.instrument.lock:
            acq = self.instrument._acq
            return str(acq.lost if acq is not None else 0)

    @_command("FETCh:EPOCh?")
    def _epoch(self, args: list[str]) -> str:
        return f"{self.instrument.epoch:.6f}"

    # --- simulation ------------------------------------------------------------------

    @_command("SIMulation:FAULt:STALl")
    def _stall(self, args: list[str]) -> None:
        seconds = _number(args, 0, "stall seconds")
        with self.instrument.lock:
            self.instrument.faults.stall_until = self.instrument._clock() + seconds

    @_command("SIMulation:FAULt:HANG")
    def _hang(self, args: list[str]) -> None:
        if self.hooks is not None:
            self.hooks.hang(_number(args, 0, "hang seconds"))

    @_command("SIMulation:FAULt:DROP")
    def _drop(self, args: list[str]) -> None:
        if self.hooks is not None:
            self.hooks.drop(_number(args, 0, "refuse seconds") if args else 0.0)

    @_command("SIMulation:FAULt:GARBage")
    def _garbage(self, args: list[str]) -> None:
        self.instrument.faults.garbage_replies += int(_number(args, 0, "replies")) if args else 1

    @_command("SIMulation:FAULt:TRUNcate")
    def _truncate(self, args: list[str]) -> None:
        self.instrument.faults.truncated_replies += int(_number(args, 0, "replies")) if args else 1

    @_command("SIMulation:FAULt:RANGe")
    def _out_of_range(self, args: list[str]) -> None:
        self.instrument.faults.out_of_range_replies += (
            int(_number(args, 0, "replies")) if args else 1
        )

    @_command("SIMulation:FAULt:SHORt")
    def _short(self, args: list[str]) -> None:
        ohm = _number(args, 0, "short resistance")
        self.instrument.faults.short_ohm = ohm if ohm > 0 else None

    @_command("SIMulation:FAULt:OFFSet")
    def _offset(self, args: list[str]) -> None:
        self.instrument.faults.potential_offset = _number(args, 0, "potential offset")

    @_command("SIMulation:FAULt:CLEar")
    def _clear(self, args: list[str]) -> None:
        self.instrument.faults.clear()

    @_command("SIMulation:TRUTh?")
    def _truth(self, args: list[str]) -> str:
        if not args:
            raise _ScpiCommandError(-109, "Missing parameter;parameter name")
        name = args[0].strip('"')
        truth = self.instrument.truth()
        if name not in truth:
            raise _ScpiCommandError(
                -224, f"Illegal parameter value;{name}: accepted {', '.join(truth)}"
            )
        return f"{truth[name]:.9g}"


class _Truncated(bytes):
    """A reply cut short on purpose: sent without its terminating newline."""


def is_truncated(reply: bytes) -> bool:
    """Whether a reply from :meth:`ScpiSession.execute` must go out without its ``\\n``."""
    return isinstance(reply, _Truncated)
