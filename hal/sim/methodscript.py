"""A simulated PalmSens MethodSCRIPT instrument on a pseudo-terminal.

:class:`MethodScriptDevice` opens a pty pair and behaves, on the master side, like
a MethodSCRIPT instrument on a serial line; the driver opens the slave device file
(``/dev/pts/N``) exactly as it would open ``/dev/ttyUSB0``. It runs scripts with the
same :class:`~hal.sim.potentiostat.SimPotentiostat` (same true cell, noise, ranges
and faults) as the SCPI server, one measurement loop after another with the cell's
history carried over.

Device commands (one line each): ``t`` firmware version (two lines, the second
ending in ``*``), ``i`` serial number, ``v`` MethodSCRIPT version, ``e`` followed by
a script ending with an empty line (echo ``e``, then output, then an empty line),
``Z`` abort (echo ``Z``, then what is left of the output; ``Z!0006`` when no script
runs). Script commands understood: ``var``, ``set_pgstat_chan``,
``set_pgstat_mode``, ``set_max_bandwidth``, ``set_range_minmax``, ``set_range``,
``set_autoranging``, ``set_e``, ``cell_on``, ``cell_off``, ``wait``, ``timer_start``,
``timer_get``, ``meas_loop_cv`` (with ``nscans(n)``), ``meas_loop_lsv``,
``meas_loop_ca``, ``pck_start``, ``pck_add``, ``pck_end``, ``endloop``,
``on_finished:`` and ``#`` comments. Anything else is refused before the script
runs with ``!4003: Line n, Col 1`` (the simulator's own error codes:
0x0001 unknown device command, 0x0005 busy, 0x0006 no script running,
0x4003 unknown script command, 0x4004 invalid argument).

Packets carry the variables in ``pck_add`` order: ``eb`` time, ``da`` applied
potential, ``ba`` current with status and current-range metadata. The instrument's
``faults.garbage_replies`` garbles that many packets on the line (from the middle of
the next packets sent), as a line error would: the driver must drop them as lost.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import select
import threading
import tty
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from hal.methodscript import CURRENT_RANGE_CODES, encode_packets, parse_literal
from hal.sim.potentiostat import SimPotentiostat
from runtime.sample_flags import Flag

__all__ = ["MethodScriptDevice"]

logger = logging.getLogger("galvana.hal.sim.methodscript")

ERR_UNKNOWN_DEVICE_COMMAND = 0x0001
ERR_BUSY = 0x0005
ERR_NOT_RUNNING = 0x0006
ERR_UNKNOWN_COMMAND = 0x4003
ERR_BAD_ARGUMENT = 0x4004

_CHUNK = 256  # packets per write: bounded latency, few system calls


class _ScriptError(Exception):
    def __init__(self, code: int, line: int) -> None:
        super().__init__(f"!{code:04X}: Line {line}, Col 1")
        self.code = code
        self.line = line


@dataclass(slots=True)
class _Loop:
    kind: str
    args: list[float]
    scans: int
    potential_var: str
    current_var: str
    packet: list[str] = field(default_factory=list)
    timer_var: str = ""


@dataclass(slots=True)
class _Script:
    steps: list[tuple[str, object]]
    on_finished: list[tuple[str, object]]


class MethodScriptDevice:
    """A MethodSCRIPT instrument on a pty, backed by ``instrument`` (see the module)."""

    def __init__(
        self,
        instrument: SimPotentiostat,
        *,
        firmware: str = "galvsim1.0",
        serial: str = "GMS-0001",
    ) -> None:
        self.instrument = instrument
        self.firmware = firmware
        self.serial = serial
        self.scripts: list[str] = []
        """Every script received, as text (tests read what the driver sent)."""
        self._master = -1
        self._slave = -1
        self.path = ""
        self._closed = threading.Event()
        self._abort = threading.Event()
        self._active = threading.Event()
        self._write_lock = threading.Lock()
        self._inject: deque[bytes] = deque()
        self._runner: threading.Thread | None = None
        self._reader = threading.Thread(target=self._read_loop, name="mscript-dev", daemon=True)

    # --- lifecycle ---------------------------------------------------------------

    def open(self) -> str:
        """Create the pty pair and start answering; returns the device file's path."""
        self._master, self._slave = os.openpty()
        # Raw: no echo, no line editing, no newline translation, as on a serial line.
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self._reader.start()
        return self.path

    @property
    def running(self) -> bool:
        """Whether a script is running (until its last line, the empty one, is sent)."""
        return self._active.is_set()

    def inject(self, data: bytes) -> None:
        """Send ``data`` before the next packets (garbage, error lines: tests)."""
        self._inject.append(data)

    def hangup(self) -> None:
        """Close the device side, as when the cable is pulled."""
        self._abort.set()
        self._closed.set()
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._master = self._slave = -1

    def close(self) -> None:
        """Stop the device (aborting a running script) and release the pty."""
        self._abort.set()
        runner = self._runner
        self.hangup()
        if runner is not None:
            runner.join(timeout=5.0)
        if self._reader.is_alive():
            self._reader.join(timeout=5.0)

    def __enter__(self) -> MethodScriptDevice:
        if not self.path:
            self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the wire ------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        with self._write_lock:
            view = memoryview(data)
            while view and not self._closed.is_set():
                try:
                    _, ready, _ = select.select([], [self._master], [], 0.1)
                    if ready:
                        view = view[os.write(self._master, view) :]
                except (OSError, ValueError):
                    return  # hung up

    def _read_loop(self) -> None:
        buffer = b""
        script: list[str] | None = None
        while not self._closed.is_set():
            try:
                ready, _, _ = select.select([self._master], [], [], 0.1)
                if not ready:
                    continue
                data = os.read(self._master, 4096)
            except (OSError, ValueError):
                return
            if not data:
                continue
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            for raw in lines:
                line = raw.rstrip(b"\r").decode("ascii", errors="replace")
                if script is not None:
                    if line == "":
                        self._start_script(script)
                        script = None
                    else:
                        script.append(line)
                    continue
                script = self._command(line.strip())

    def _command(self, line: str) -> list[str] | None:
        if line == "":
            return None
        if line == "Z":
            if self.running:
                self._abort.set()
            else:
                self._write(f"Z!{ERR_NOT_RUNNING:04X}\n".encode())
            return None
        if self.running:
            self._write(f"!{ERR_BUSY:04X}\n".encode())
            return None
        if line == "e":
            self._write(b"e\n")
            return []
        if line == "t":
            self._write(f"t{self.firmware}\nGalvana MethodSCRIPT simulator*\n".encode())
        elif line == "i":
            self._write(f"i{self.serial}\n".encode())
        elif line == "v":
            self._write(b"v0100\n")
        else:
            self._write(f"!{ERR_UNKNOWN_DEVICE_COMMAND:04X}\n".encode())
        return None

    # --- scripts -------------------------------------------------------------------------

    def _start_script(self, lines: list[str]) -> None:
        self.scripts.append("\n".join(lines))
        try:
            script = _compile(lines)
        except _ScriptError as exc:
            self._write(f"{exc}\n\n".encode())
            return
        self._abort.clear()
        self._active.set()
        self._runner = threading.Thread(
            target=self._run, args=(script,), name="mscript-run", daemon=True
        )
        self._runner.start()

    def _run(self, script: _Script) -> None:
        inst = self.instrument
        state = {"E": 0.0, "first": True}
        aborted = False
        try:
            for op, arg in script.steps:
                if self._abort.is_set():
                    aborted = True
                    break
                if not self._step(op, arg, state):
                    aborted = True
                    break
        finally:
            inst.abort()
            if aborted or self._abort.is_set():
                self._write(b"Z\n")
            for op, arg in script.on_finished:
                self._step(op, arg, state)
            # Idle before the last line: a client that reads it may send the next command.
            self._active.clear()
            self._write(b"\n")

    def _step(self, op: str, arg: object, state: dict[str, float | bool]) -> bool:
        """Run one step; False if the script was aborted during it."""
        inst = self.instrument
        if op == "set_e":
            assert isinstance(arg, float)
            state["E"] = arg
            inst.set_dc(arg)
        elif op == "cell_on":
            inst.set_output(True)
        elif op == "cell_off":
            inst.set_output(False)
        elif op == "set_range":
            assert isinstance(arg, float)
            inst.set_current_range(arg)
        elif op == "wait":
            assert isinstance(arg, float)
            if inst.speed > 0:
                return not self._abort.wait(arg / inst.speed)
        elif op == "meas":
            assert isinstance(arg, _Loop)
            return self._measure(arg, state)
        return True

    def _measure(self, loop: _Loop, state: dict[str, float | bool]) -> bool:
        inst = self.instrument
        t, E, rate, cycle = _loop_program(loop)
        inst.set_sample_rate(rate)
        inst.set_program(t, E)
        inst.E_initial = float(state["E"])
        inst.period = cycle
        inst.initiate(keep_cell=not state["first"])
        state["first"] = False
        self._write(b"M0000\n")
        sources = {loop.timer_var: "eb", loop.potential_var: "da", loop.current_var: "ba"}
        columns = [sources[v] for v in loop.packet if v in sources]
        while True:
            if self._abort.is_set():
                return False
            records, _ = inst.fetch(_CHUNK)
            while self._inject:
                self._write(self._inject.popleft())
            if records.size:
                self._write(self._packets(records, columns))
                continue
            if inst.status()[0] != "running":
                break
            self._abort.wait(0.002)
        state["E"] = float(E[-1])
        self._write(b"*\n")
        return True

    def _packets(self, records: npt.NDArray[np.void], columns: list[str]) -> bytes:
        if not columns:
            return b""
        source = {"eb": records["t"], "da": records["E"], "ba": records["I"]}
        flags = records["flags"]
        status = np.zeros(records.size, dtype=np.uint8)
        status[(flags & np.uint8(Flag.OVERLOAD | Flag.COMPLIANCE)) != 0] |= 0x2
        status[(flags & np.uint8(Flag.TIMING)) != 0] |= 0x1
        code = min(
            CURRENT_RANGE_CODES,
            key=lambda c: abs(CURRENT_RANGE_CODES[c] - self.instrument.current_range),
        )
        with_meta = columns[-1] == "ba"
        data = encode_packets(
            [(c, source[c]) for c in columns],
            status=status if with_meta else None,
            range_code=code if with_meta else None,
        )
        with self.instrument.lock:
            faults = self.instrument.faults
            garbled = min(faults.garbage_replies, records.size)
            faults.garbage_replies -= garbled
        return _garbled(data, garbled) if garbled else data


def _garbled(data: bytes, count: int) -> bytes:
    """``data`` (packet lines) with ``count`` lines from the middle on garbled: their
    first value's digits are no longer hexadecimal."""
    lines = data.split(b"\n")
    first = (len(lines) - 1 - count) // 2
    for i in range(first, first + count):
        lines[i] = lines[i][:3] + b"#" * 7 + lines[i][10:]
    return b"\n".join(lines)


def _loop_program(loop: _Loop) -> tuple[list[float], list[float], float, float]:
    """Corners ``(t, E)``, sample rate (Hz) and cycle duration (s) of a measurement loop."""
    if loop.kind == "ca":
        level, interval, run = loop.args
        return [0.0, run], [level, level], 1.0 / interval, run
    if loop.kind == "lsv":
        begin, end, step, rate = loop.args
        return [0.0, abs(end - begin) / rate], [begin, end], rate / step, abs(end - begin) / rate
    begin, v1, v2, step, rate = loop.args
    path = [begin, v1, v2, begin]
    times = [0.0]
    for a, b in itertools.pairwise(path):
        times.append(times[-1] + abs(b - a) / rate)
    t: list[float] = [0.0]
    potentials: list[float] = [begin]
    for scan in range(loop.scans):
        offset = scan * times[-1]
        t += [offset + x for x in times[1:]]
        potentials += path[1:]
    return t, potentials, rate / step, times[-1]


_IGNORED = {"set_pgstat_chan", "set_pgstat_mode", "set_max_bandwidth", "set_range_minmax"}
_IGNORED |= {"set_autoranging", "pck_start", "pck_end"}


def _compile(lines: list[str]) -> _Script:
    """Parse a script into steps; raises _ScriptError naming the offending line."""
    steps: list[tuple[str, object]] = []
    finished: list[tuple[str, object]] = []
    target = steps
    loop: _Loop | None = None
    variables: set[str] = set()
    for number, raw in enumerate(lines, start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        cmd, args = words[0], words[1:]
        try:
            if loop is not None:
                if cmd == "endloop":
                    target.append(("meas", loop))
                    loop = None
                elif cmd == "timer_get" and len(args) == 1:
                    loop.timer_var = args[0]
                elif cmd == "pck_add" and len(args) == 1:
                    if args[0] not in variables:
                        raise _ScriptError(ERR_BAD_ARGUMENT, number)
                    loop.packet.append(args[0])
                elif cmd not in _IGNORED:
                    raise _ScriptError(ERR_UNKNOWN_COMMAND, number)
                continue
            if cmd == "var" and len(args) == 1:
                variables.add(args[0])
            elif cmd == "on_finished:":
                target = finished
            elif cmd in ("cell_on", "cell_off", "timer_start") and not args:
                target.append((cmd, None))
            elif cmd in ("set_e", "wait") and len(args) == 1:
                target.append((cmd, parse_literal(args[0])))
            elif cmd == "set_range" and len(args) == 2:
                target.append(("set_range", parse_literal(args[1])))
            elif cmd.startswith("meas_loop_"):
                loop = _parse_loop(cmd[len("meas_loop_") :], args, variables, number)
            elif cmd in _IGNORED:
                for a in args[1:] if cmd in ("set_range_minmax", "set_autoranging") else args:
                    parse_literal(a)
            else:
                raise _ScriptError(ERR_UNKNOWN_COMMAND, number)
        except ValueError:
            raise _ScriptError(ERR_BAD_ARGUMENT, number) from None
    if loop is not None:
        raise _ScriptError(ERR_UNKNOWN_COMMAND, len(lines))
    return _Script(steps, finished)


def _parse_loop(kind: str, args: list[str], variables: set[str], number: int) -> _Loop:
    counts = {"cv": 7, "lsv": 6, "ca": 5}
    if kind not in counts:
        raise _ScriptError(ERR_UNKNOWN_COMMAND, number)
    scans = 1
    if kind == "cv" and args and args[-1].startswith("nscans("):
        scans = int(args.pop()[len("nscans(") : -1])
    if len(args) != counts[kind] or args[0] not in variables or args[1] not in variables:
        raise _ScriptError(ERR_BAD_ARGUMENT, number)
    values = [parse_literal(a) for a in args[2:]]
    if any(v <= 0 for v in values[-2:]) or scans < 1:
        raise _ScriptError(ERR_BAD_ARGUMENT, number)
    return _Loop(kind, values, scans, args[0], args[1])
