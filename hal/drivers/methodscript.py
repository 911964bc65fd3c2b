"""A driver for PalmSens instruments speaking MethodSCRIPT over a serial line.

EmStat Pico, EmStat4 and Sensit devices run MethodSCRIPT: the driver writes a
script (see :func:`hal.methodscript.script_for`) and reads data packets back while
it runs. The line is a serial device file (USB CDC: ``/dev/ttyACM0``, FTDI:
``/dev/ttyUSB0``; the simulator: a pty) at 230400 baud, opened with :mod:`termios`
(no pyserial needed).

Streaming reads whatever arrived, decodes all complete packet lines at once
(:class:`hal.methodscript.PacketParser`) and yields them as one batch. Lines that
are garbage, packets with NaN or implausible values are counted, logged with their
raw bytes and dropped. A dropped packet is a lost sample, and the driver says where:
the next sample kept is flagged ``GAP`` and its batch counts the samples lost before
it in ``lost`` (losses after a batch's last sample go with the next batch, or with the
last one when the script ends). A ``!`` error line ends the stream with
:class:`~hal.errors.InstrumentError` (the device stops the script); an abort (``Z``)
or the script's end (an empty line) ends it normally.

The line is full duplex, so :meth:`MethodScriptPotentiostat.cell_off` writes the
abort command (``Z``; the script's ``on_finished:`` turns the cell off) while the
streaming thread is blocked reading, and, when no script runs, a one-line script
``cell_off``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import numpy.typing as npt

from hal.driver import Capabilities, Identity, LatencyProfile, Samples, Settings
from hal.drivers._serial import SerialLine
from hal.errors import InstrumentError, LinkError, ProtocolError
from hal.methodscript import (
    CURRENT_RANGE_CODES,
    CURRENT_TYPES,
    POTENTIAL_TYPES,
    TIME_TYPES,
    PacketParser,
    Parsed,
    script_for,
    status_flags,
)
from runtime.sample_flags import Flag
from runtime.waveforms import Waveform

__all__ = ["DEVICES", "MethodScriptPotentiostat"]

logger = logging.getLogger("galvana.hal.methodscript")

_ALL_RANGES = tuple(sorted(CURRENT_RANGE_CODES.values()))
# What hal.methodscript.script_for can write: a piecewise-linear waveform is a loop per piece.
_TECHNIQUES = frozenset({"cv", "lsv", "ca", "piecewise"})

DEVICES: dict[str, tuple[str, Capabilities]] = {
    # firmware prefix: (model, capabilities). Potential windows and ranges from the
    # vendors' datasheets (rounded inwards); sample rates limited by 230400 baud and
    # ~40-byte packets (about 500 packets per second).
    "espico": (
        "EmStat Pico",
        Capabilities(
            -1.7,
            2.0,
            (100e-9, 1e-6, 10e-6, 100e-6, 1e-3, 5e-3),
            3e-3,
            500.0,
            _TECHNIQUES,
        ),
    ),
    "es4_hr": (
        "EmStat4 HR",
        Capabilities(-6.0, 6.0, _ALL_RANGES[2:], 0.2, 500.0, _TECHNIQUES),
    ),
    "es4_lr": (
        "EmStat4 LR",
        Capabilities(-3.0, 3.0, _ALL_RANGES[:-1], 0.03, 500.0, _TECHNIQUES),
    ),
    "galvsim": (
        "Galvana MethodSCRIPT simulator",
        Capabilities(-3.0, 3.0, _ALL_RANGES, 0.1, 500.0, _TECHNIQUES),
    ),
}
"""Known devices by firmware prefix, with what they can do."""

_E_PLAUSIBLE = 1.0e3
_I_PLAUSIBLE = 10.0


class MethodScriptPotentiostat:
    """Driver for a MethodSCRIPT instrument on serial device ``port`` (see the module)."""

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 230400,
        timeout_s: float = 2.0,
        poll_s: float = 0.005,
        on_drop: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self.port = port
        self.timeout_s = float(timeout_s)
        self.poll_s = float(poll_s)
        self.on_drop = on_drop
        self._line = SerialLine(port, baudrate=baudrate)
        self._lock = threading.RLock()  # commands; cell_off only needs the line's write lock
        self._stopping = threading.Event()
        self._running = False
        self._script = ""
        self._dropped = 0
        self._device: tuple[str, Capabilities] | None = None
        self._parser = PacketParser()
        self._lost_since = 0  # samples lost since the last one kept (they flag the next)
        self.current_range: float | None = None
        """The current range (A) the last packet reported."""

    # --- the contract ---------------------------------------------------------------

    @property
    def latency(self) -> LatencyProfile:
        """Poll interval and the cost of a cell-off (one short write)."""
        return LatencyProfile(
            command_s=0.005,
            poll_s=self.poll_s,
            max_batch=65536,
            cell_off_s=0.05,
            notes="packets streamed by the instrument; cell_off writes Z while reading",
        )

    @property
    def dropped_replies(self) -> int:
        """Garbage lines and packets with unusable values dropped so far."""
        return self._dropped

    def connect(self) -> None:
        """Open the line and bring the device to a known state (abort a stale script)."""
        with self._lock:
            self._line.close()
            self._line.open()
            self._line.write(b"\nZ\n")
            deadline = time.monotonic() + self.timeout_s
            while True:
                reply = self._line.readline(max(0.01, deadline - time.monotonic()))
                if reply.startswith(b"Z"):
                    break
            if reply == b"Z":
                self._drain_script(deadline)  # a previous script is winding down
            self._running = False
            self.identify()

    def identify(self) -> Identity:
        """Firmware (``t``) and serial number (``i``)."""
        with self._lock:
            self._line.flush_input()
            self._line.write(b"t\n")
            first = self._line.readline(self.timeout_s)
            second = self._line.readline(self.timeout_s)
            if not (first.startswith(b"t") and second.endswith(b"*")):
                self._drop("firmware reply is not t...\\n...*", first + b"\n" + second)
                raise ProtocolError(
                    f"{self.port}: firmware reply {first + second!r} is not accepted; expected "
                    "'t<firmware>' then a line ending in '*'",
                    raw=first + second,
                )
            firmware = first[1:].decode("ascii", errors="replace").strip()
            self._line.write(b"i\n")
            serial = self._line.readline(self.timeout_s)
            if not serial.startswith(b"i"):
                self._drop("serial number reply does not start with i", serial)
                raise ProtocolError(f"{self.port}: serial reply {serial!r} is not accepted")
        model, caps = next(
            (v for prefix, v in DEVICES.items() if firmware.startswith(prefix)),
            ("MethodSCRIPT device", DEVICES["espico"][1]),
        )
        self._device = (model, caps)
        return Identity("PalmSens", model, serial[1:].decode("ascii", errors="replace"), firmware)

    def capabilities(self) -> Capabilities:
        """What the connected device model can do (from :data:`DEVICES`)."""
        if self._device is None:
            self.identify()
        assert self._device is not None
        return self._device[1]

    def program(self, waveform: Waveform, settings: Settings) -> None:
        """Prepare the MethodSCRIPT for ``waveform`` (sent by :meth:`start`)."""
        caps = self.capabilities()
        caps.check(waveform, settings)
        limit = settings.current_limit if settings.current_limit is not None else caps.compliance
        # The device measures on fixed ranges: the script names the one covering the request.
        current_range = caps.range_for(settings.current_range or limit)
        self._script = script_for(waveform, settings, current_range=current_range)

    @property
    def script(self) -> str:
        """The MethodSCRIPT :meth:`start` sends."""
        return self._script

    def start(self) -> None:
        """Send the script and wait for the device to start it (its ``e`` echo)."""
        if not self._script:
            raise InstrumentError(f"{self.port}: no waveform programmed")
        with self._lock:
            self._line.flush_input()
            self._stopping.clear()
            self._parser = PacketParser()
            self._lost_since = 0
            self._line.write(self._script.encode("ascii"))
            echo = self._line.readline(self.timeout_s)
            if echo != b"e":
                self._drop("the script was not acknowledged with 'e'", echo)
                raise InstrumentError(f"{self.port}: script not started (reply {echo!r})")
            self._running = True

    def stream(self) -> Iterator[Samples]:
        """Batches of packets until the script ends, is aborted, or reports an error."""
        error: InstrumentError | None = None
        while self._running:
            chunk = self._line.read(self.poll_s)
            parsed = self._parser.feed(chunk) if chunk else Parsed()
            for event in parsed.events:
                if event.kind == "error":
                    error = InstrumentError(
                        f"{self.port}: the instrument stopped the script: {event.text}",
                        code=event.code,
                    )
                elif event.kind == "ended":
                    self._running = False
            # The script's last batch also carries what was lost after its last sample.
            yield self._samples(parsed, last=error is not None or not self._running)
            if error is not None:
                self._running = False
                raise error

    def stop(self) -> None:
        """Abort the script (its ``on_finished:`` turns the cell off)."""
        self.cell_off()

    def cell_off(self) -> None:
        """Turn the cell off now; callable from any thread, idempotent."""
        if self._running:
            if not self._stopping.is_set():
                self._stopping.set()
                self._line.write(b"Z\n")  # the streaming thread reads the acknowledgement
            return
        self._stopping.set()
        # No script runs, so no thread reads: a one-line script makes sure the cell is
        # off, and its output is read here so it cannot be mistaken for a later run's.
        if not self._lock.acquire(timeout=0.25):
            self._line.write(b"Z\n")  # a command is stuck; the abort is all we can send
            return
        try:
            self._line.flush_input()
            self._line.write(b"e\ncell_off\n\n")
            deadline = time.monotonic() + self.timeout_s
            # Late answers to earlier aborts (Z!0006) may still be on their way.
            while (reply := self._line.readline(self.timeout_s)) != b"e":
                if not reply.startswith(b"Z") or time.monotonic() > deadline:
                    raise LinkError(
                        f"{self.port}: the cell-off script was not acknowledged ({reply!r})"
                    )
            self._drain_script(deadline)
        finally:
            self._lock.release()

    def close(self) -> None:
        """Close the serial line (idempotent)."""
        self._running = False
        self._line.close()

    # --- internals ------------------------------------------------------------------

    def _samples(self, parsed: Parsed, *, last: bool = False) -> Samples:
        """The samples of a chunk, gaps flagged; ``last``: the script's final batch."""
        for raw in parsed.garbage:
            self._drop("not a MethodSCRIPT line, or a packet without a number", raw)
        values = parsed.values
        t = _column(values, TIME_TYPES)
        E = _column(values, POTENTIAL_TYPES)
        I = _column(values, CURRENT_TYPES)  # noqa: E741 - current
        if t is None or E is None or I is None:
            if parsed.count:
                what = f"packets carry {sorted(values)}; expected time, potential and current"
                self._drop(what, b"")
            self._lost_since += parsed.dropped.size + parsed.count
            return self._nothing_kept(last)
        good = (np.abs(E) <= _E_PLAUSIBLE) & (np.abs(I) <= _I_PLAUSIBLE)
        if not good.all():
            for row in np.flatnonzero(~good)[:8]:
                self._drop("packet value out of range", parsed.raw(int(row)))
            self._dropped += max(0, int((~good).sum()) - 8)
        kept = np.flatnonzero(good)
        if kept.size == 0:
            self._lost_since += parsed.dropped.size + parsed.count
            return self._nothing_kept(last)
        # Samples lost before each packet of the chunk: dropped lines before its line,
        # implausible packets before it, and what the previous chunks left unflagged.
        before = (
            np.searchsorted(parsed.dropped, parsed.lines)
            + np.concatenate([[0], np.cumsum(~good)[:-1]])
            + self._lost_since
        )
        at_kept = before[kept]
        gap = np.diff(at_kept, prepend=0) > 0
        lost = int(at_kept[-1])
        # What was lost after the last sample kept waits for the next one.
        self._lost_since += parsed.dropped.size + int((~good).sum()) - lost
        flags = status_flags(parsed.status[kept])
        flags[gap] |= np.uint8(Flag.GAP)
        codes = parsed.range_code[kept]
        if codes.size and codes[-1] in CURRENT_RANGE_CODES:
            self.current_range = CURRENT_RANGE_CODES[int(codes[-1])]
        if last:
            lost, self._lost_since = lost + self._lost_since, 0
        return Samples(t[kept].copy(), E[kept].copy(), I[kept].copy(), flags, lost=lost)

    def _nothing_kept(self, last: bool) -> Samples:
        """A chunk without a usable sample: its losses wait for the next one kept (or
        are reported now, with the script's final batch)."""
        if not last:
            return Samples.empty()
        lost, self._lost_since = self._lost_since, 0
        return Samples.empty(lost=lost)

    def _drain_script(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self._line.readline(max(0.01, deadline - time.monotonic())) == b"":
                return
        raise LinkError(f"{self.port}: a stale script did not end after its abort")

    def _drop(self, reason: str, raw: bytes) -> None:
        self._dropped += 1
        logger.warning("%s: dropped (%s); raw bytes %r", self.port, reason, raw[:96])
        if self.on_drop is not None:
            self.on_drop(reason, raw[:256])


def _column(
    values: dict[str, npt.NDArray[np.float64]], types: tuple[str, ...]
) -> npt.NDArray[np.float64] | None:
    for name in types:
        if name in values:
            return values[name]
    return None
