"""A Keithley 2450 SourceMeter as a two-electrode potentiostat, over VISA (SCPI).

Wiring. Two electrodes: FORCE HI to the working electrode, FORCE LO to the counter
electrode (with the reference, or a quasi-reference, tied to it). The 2450 sources
the cell voltage E (working vs counter/reference) and measures the current into HI,
positive when current leaves HI into the working electrode, i.e. oxidation there:
the IUPAC sign Galvana uses, so no sign is flipped. With ``four_wire=True`` the
SENSE HI lead goes to the working electrode and SENSE LO to a reference electrode:
the 2450 then regulates E between working and reference through its sense inputs
(input impedance > 10 GOhm, so the reference carries no current), which is as close
to a three-electrode potentiostat as an SMU gets. Without it, E includes the whole
cell's iR drop: fine for microelectrodes, two-electrode cells and circuit tests.

Running a waveform. The waveform is sampled at ``settings.sample_rate`` into a
source configuration list (``:SOUR:LIST:VOLT``, 100 values a line, ``:APP`` for
more) and run as a list sweep with one current reading per point into
``defbuffer1``. The 2450 paces the sweep by a source delay plus the measurement time
(``nplc`` power-line cycles), so the point rate is approximate; each reading's own
relative timestamp is reported as its time, so the data are honest about it.

Streaming polls ``:TRAC:ACT? "defbuffer1"`` and fetches the readings it has not
fetched yet with ``:TRAC:DATA? <first>, <last>, "defbuffer1", REL, SOUR, READ``
(three numbers per reading, decoded at once). Readings at the current limit are
flagged ``COMPLIANCE``.

The dialogue is tested against a pyvisa-sim device (``tests/hal/keithley2450.yaml``)
that refuses any command it does not list.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from hal.driver import Capabilities, Identity, LatencyProfile, Samples, Settings
from hal.drivers._scpi import ScpiLink
from hal.errors import ProtocolError, UnsupportedWaveformError
from runtime.sample_flags import Flag
from runtime.waveforms import Waveform, potential, potential_bounds, sample_times

__all__ = ["CAPABILITIES", "Keithley2450"]

logger = logging.getLogger("galvana.hal.keithley2450")

CAPABILITIES = Capabilities(
    E_min=-200.0,
    E_max=200.0,
    current_ranges=(10e-9, 100e-9, 1e-6, 10e-6, 100e-6, 1e-3, 10e-3, 100e-3, 1.0),
    compliance=1.05,
    max_sample_rate=3000.0,
    techniques=frozenset({"cv", "lsv", "ca", "swv", "piecewise"}),
)
"""What a 2450 can do (reference manual): +-200 V, 10 nA to 1 A ranges, about 3000
readings per second to the buffer at the shortest integration time."""

_VOLTAGE_RANGES = (0.02, 0.2, 2.0, 20.0, 200.0)
_PER_LINE = 100
_BUFFER = '"defbuffer1"'
_LINE_FREQUENCY = 50.0  # Hz; the 2450 measures it, this only sizes the source delay


class Keithley2450:
    """Keithley 2450 driver (see the module docstring).

    ``nplc`` is the current integration time in power-line cycles; ``max_points`` the
    longest source list accepted (raise it for firmware that holds more).
    """

    def __init__(
        self,
        resource: str,
        *,
        backends: Sequence[str] = ("@py",),
        timeout_s: float = 5.0,
        poll_s: float = 0.05,
        nplc: float = 0.01,
        four_wire: bool = False,
        max_points: int = 2500,
        cell_off_wait_s: float = 0.25,
        on_drop: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self.resource = resource
        self.poll_s = float(poll_s)
        self.nplc = float(nplc)
        self.four_wire = four_wire
        self.max_points = int(max_points)
        self.on_drop = on_drop
        self._link = ScpiLink(
            resource,
            backends=backends,
            timeout_s=float(timeout_s),
            cell_off_wait_s=cell_off_wait_s,
            on_drop=self._drop,
        )
        self._stopping = threading.Event()
        self._read = 0
        self._points = 0
        self._limit = math.inf
        self._dropped = 0

    @property
    def latency(self) -> LatencyProfile:
        """Poll interval and the cost of a cell-off."""
        return LatencyProfile(
            command_s=0.002,
            poll_s=self.poll_s,
            max_batch=self.max_points,
            cell_off_s=self._link.cell_off_wait_s + 2 * self._link.timeout_s,
            notes="buffer polled with :TRAC:ACT?, read as ASCII with :TRAC:DATA?",
        )

    @property
    def dropped_replies(self) -> int:
        """Garbage or malformed replies dropped so far."""
        return self._dropped

    def connect(self) -> None:
        """Open the session and check it answers ``*IDN?``."""
        self._link.open()
        self.identify()

    def identify(self) -> Identity:
        """``*IDN?``: ``KEITHLEY INSTRUMENTS,MODEL 2450,<serial>,<firmware>``."""
        reply = self._link.query("*IDN?")
        parts = [p.strip() for p in reply.split(",")]
        if len(parts) != 4:
            self._drop("*IDN? reply does not have 4 fields", reply.encode())
            raise ProtocolError(f"*IDN? reply {reply!r} is not accepted", raw=reply.encode())
        if "2450" not in parts[1]:
            logger.warning("%s identifies as %s, not a 2450", self.resource, parts[1])
        return Identity(parts[0], parts[1], parts[2], parts[3])

    def capabilities(self) -> Capabilities:
        """The 2450's ranges and limits (fixed by the model)."""
        return CAPABILITIES

    def program(self, waveform: Waveform, settings: Settings) -> None:
        """Load the sampled waveform as a list sweep into ``defbuffer1`` (see module)."""
        CAPABILITIES.check(waveform, settings)
        t = sample_times(waveform, settings.sample_rate)
        if t.size > self.max_points:
            raise UnsupportedWaveformError(
                f"the waveform needs {t.size} points at {settings.sample_rate:g} Hz; "
                f"accepted: at most {self.max_points} (lower the sample rate)"
            )
        values = potential(waveform, t)
        limit = settings.current_limit if settings.current_limit is not None else 0.105
        # The 2450 measures on fixed ranges and takes the one covering what it is told:
        # the dialogue names that range, as its :SENS:CURR:RANG? would answer.
        current_range = CAPABILITIES.range_for(settings.current_range or limit)
        span = max(abs(v) for v in potential_bounds(waveform))
        source_range = next(r for r in _VOLTAGE_RANGES if r >= span)
        # The sweep's point period is the source delay plus the integration time.
        delay = max(0.0, 1.0 / settings.sample_rate - self.nplc / _LINE_FREQUENCY)
        lines = [
            "*RST",
            ":SOUR:FUNC VOLT",
            f":SOUR:VOLT:RANG {source_range:g}",
            f":SOUR:VOLT:ILIM {limit:.6g}",
            ':SENS:FUNC "CURR"',
            f":SENS:CURR:RANG {current_range:.6g}",
            f":SENS:CURR:NPLC {self.nplc:.6g}",
            f":SENS:CURR:RSEN {'ON' if self.four_wire else 'OFF'}",
            f":TRAC:CLE {_BUFFER}",
            f":TRAC:POIN {max(10, t.size)}, {_BUFFER}",
        ]
        for i in range(0, values.size, _PER_LINE):
            chunk = ",".join(f"{v:.6g}" for v in values[i : i + _PER_LINE])
            lines.append(f":SOUR:LIST:VOLT{'' if i == 0 else ':APP'} {chunk}")
        lines.append(f":SOUR:SWE:VOLT:LIST 1, {delay:.6g}, 1, OFF, {_BUFFER}")
        with self._link.lock:
            for line in lines:
                self._link.write(line)
            self._link.raise_errors("the list sweep", ":SYST:ERR:NEXT?")
        self._points = int(t.size)
        self._limit = limit

    def start(self) -> None:
        """``:INIT``: the sweep runs, the output turns on."""
        with self._link.lock:
            self._stopping.clear()
            self._read = 0
            self._link.write(":INIT")
            self._link.raise_errors("starting the sweep", ":SYST:ERR:NEXT?")

    def stream(self) -> Iterator[Samples]:
        """New buffer readings until the sweep is done or stopped."""
        while not self._stopping.is_set():
            batch = self._fetch()
            if len(batch) == 0 and self._read >= self._points:
                state = self._trigger_state()
                if state in ("IDLE", "ABORTED", "FAILED", "EMPTY"):
                    return
            yield batch
            self._stopping.wait(self.poll_s)

    def stop(self) -> None:
        """Abort the sweep and turn the output off."""
        self._stopping.set()
        with self._link.lock:
            self._link.write(":ABOR")
            self._link.write(":OUTP OFF")

    def cell_off(self) -> None:
        """Turn the output off now, from any thread; idempotent."""
        self._stopping.set()
        self._link.cell_off(":ABOR;:OUTP OFF", ":OUTP?", "0")

    def close(self) -> None:
        """Close the session (idempotent)."""
        self._link.close()

    # --- beyond the contract -------------------------------------------------------

    def write(self, command: str) -> None:
        """Send one raw command line (diagnostics)."""
        self._link.write(command)

    def raise_errors(self, what: str = "the last commands") -> None:
        """Raise InstrumentError if the error queue holds anything."""
        self._link.raise_errors(what, ":SYST:ERR:NEXT?")

    def _fetch(self) -> Samples:
        with self._link.lock:
            try:
                count = int(self._link.query(f":TRAC:ACT? {_BUFFER}"))
            except ProtocolError:
                return Samples.empty()
            except ValueError:
                self._drop(":TRAC:ACT? reply is not a count", b"")
                return Samples.empty()
            if count <= self._read:
                return Samples.empty()
            first, last = self._read + 1, count
            try:
                reply = self._link.query(f":TRAC:DATA? {first}, {last}, {_BUFFER}, REL, SOUR, READ")
            except ProtocolError:
                return Samples.empty(lost=0)
        try:
            values = np.array(reply.split(","), dtype=np.float64).reshape(-1, 3)
        except ValueError:
            self._drop(":TRAC:DATA? reply is not triples of numbers", reply.encode())
            return Samples.empty()
        if values.shape[0] != last - first + 1 or not np.isfinite(values).all():
            self._drop(":TRAC:DATA? reply has the wrong count or non-finite values", reply.encode())
            return Samples.empty()
        self._read = last
        t, E, I = values[:, 0].copy(), values[:, 1].copy(), values[:, 2].copy()  # noqa: E741
        flags = np.where(np.abs(I) >= 0.999 * self._limit, np.uint8(Flag.COMPLIANCE), np.uint8(0))
        return Samples(t, E, I, flags.astype(np.uint8))

    def _trigger_state(self) -> str:
        try:
            reply = self._link.query(":TRIG:STAT?")
        except ProtocolError:
            return ""
        return reply.split(";")[0].strip().upper()

    def _drop(self, reason: str, raw: bytes) -> None:
        self._dropped += 1
        logger.warning("%s: dropped a reply (%s); raw bytes %r", self.resource, reason, raw[:96])
        if self.on_drop is not None:
            self.on_drop(reason, raw[:256])
