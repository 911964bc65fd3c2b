"""A driver for potentiostats speaking Galvana's SCPI dialect, over VISA.

The dialect is documented in :mod:`hal.sim.scpi`; Galvana's simulated potentiostat
speaks it (``galvana instrument serve``), over a raw TCP socket that pyvisa reaches
with the pyvisa-py backend as ``TCPIP0::127.0.0.1::<port>::SOCKET``. Nothing stands
between this driver and the instrument but pyvisa and the socket.

Streaming: each poll sends ``FETCh:NEW?`` and reads one definite-length binary block
holding every sample measured since the previous poll (29-byte records). A block is
checked as a whole (length, finite values, plausible ranges, known flag bits,
increasing sample numbers) with array operations; one that fails is counted, logged
with its raw bytes and dropped, and its samples are counted as lost (the next
block's sample numbers show the gap). A reply that times out half-way (truncated)
is dropped the same way, after which the driver resynchronises (device clear,
``*OPC?``); if that fails too the link is unusable and :class:`LinkError` is raised.

:meth:`ScpiPotentiostat.cell_off` may run while another thread is inside a call:
it waits briefly for the session, and if the session stays busy (an instrument
that stopped answering) it opens a second session to send ``ABOR;:OUTP OFF``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import numpy.typing as npt
from pyvisa.resources import MessageBasedResource

from hal.driver import Capabilities, Identity, LatencyProfile, Samples, Settings
from hal.drivers._scpi import ScpiLink
from hal.drivers._visa import VISA_ERRORS, drain, visa_errors_as_link_errors
from hal.errors import InstrumentError, LinkError, ProtocolError
from hal.records import RECORD
from runtime.sample_flags import KNOWN_FLAGS, Flag
from runtime.waveforms import Waveform, breakpoints, initial_potential, period

__all__ = ["ScpiPotentiostat"]

logger = logging.getLogger("galvana.hal.scpi")


# Replies outside these are out of range, whatever the instrument: no potentiostat
# applies a kilovolt or passes ten amperes through a cell.
_E_PLAUSIBLE = 1.0e3
_I_PLAUSIBLE = 10.0
_CORNERS_PER_LINE = 512


class ScpiPotentiostat:
    """Driver for the SCPI dialect of :mod:`hal.sim.scpi` (see the module docstring).

    ``resource`` is a VISA resource string; ``backends`` the pyvisa backends to try
    in order; ``timeout_s`` the reply timeout; ``poll_s`` the pause between fetches
    while streaming; ``max_batch`` the most samples one fetch may return.
    """

    def __init__(
        self,
        resource: str,
        *,
        backends: Sequence[str] = ("@py",),
        timeout_s: float = 2.0,
        poll_s: float = 0.002,
        max_batch: int = 65536,
        cell_off_wait_s: float = 0.25,
        on_drop: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self.resource = resource
        self.timeout_s = float(timeout_s)
        self.poll_s = float(poll_s)
        self.max_batch = int(max_batch)
        self.on_drop = on_drop
        self._link = ScpiLink(
            resource,
            backends=backends,
            timeout_s=self.timeout_s,
            cell_off_wait_s=cell_off_wait_s,
            on_drop=self._drop,
        )
        self._lock = self._link.lock
        self._stopping = threading.Event()
        self._last_n = 0
        self._dropped = 0
        self._caps: Capabilities | None = None
        self.epoch: float | None = None
        """UNIX time (s) of t = 0 of the running acquisition (same host: latency)."""

    # --- the contract -----------------------------------------------------------

    @property
    def latency(self) -> LatencyProfile:
        """Poll interval, batch size and worst-case cell-off time of this driver."""
        return LatencyProfile(
            command_s=0.001,
            poll_s=self.poll_s,
            max_batch=self.max_batch,
            cell_off_s=self._link.cell_off_wait_s + 2 * self.timeout_s,
            notes="binary block per poll; cell_off falls back to a second session",
        )

    @property
    def dropped_replies(self) -> int:
        """Garbage, truncated or out-of-range replies dropped so far."""
        return self._dropped

    @property
    def connected(self) -> bool:
        """Whether a session is open (it may still turn out to be dead)."""
        return self._link.is_open

    def connect(self) -> None:
        """Open the session and check the instrument answers (``*IDN?``)."""
        with self._lock:
            self._link.open()
            self.identify()

    def identify(self) -> Identity:
        """``*IDN?`` as vendor, model, serial and firmware."""
        reply = self._query("*IDN?")
        parts = [p.strip() for p in reply.split(",")]
        if len(parts) != 4:
            self._drop("*IDN? reply does not have 4 fields", reply.encode())
            raise ProtocolError(
                f"*IDN? reply {reply!r} is not accepted; expected vendor,model,serial,firmware",
                raw=reply.encode(),
            )
        return Identity(*parts)

    def capabilities(self) -> Capabilities:
        """Ranges, compliance, rate and techniques, from ``SYSTem:CAPability?``."""
        if self._caps is not None:
            return self._caps
        reply = self._query("SYST:CAP?")
        techniques = self._query("SYST:CAP:TECH?").strip('"')
        try:
            values = [float(v) for v in reply.split(",")]
            count = int(values[4])
            ranges = tuple(values[5 : 5 + count])
            if len(ranges) != count or count == 0:
                raise ValueError("range count")
        except (ValueError, IndexError):
            self._drop("SYST:CAP? reply is malformed", reply.encode())
            raise ProtocolError(
                f"SYST:CAP? reply {reply!r} is not accepted; expected "
                "E_min,E_max,compliance,max_rate,n,range_1..range_n",
                raw=reply.encode(),
            ) from None
        self._caps = Capabilities(
            E_min=values[0],
            E_max=values[1],
            current_ranges=tuple(sorted(ranges)),
            compliance=values[2],
            max_sample_rate=values[3],
            techniques=frozenset(t.strip().lower() for t in techniques.split(",") if t.strip()),
        )
        return self._caps

    def program(self, waveform: Waveform, settings: Settings) -> None:
        """Send the waveform as list corners with its sample rate, range and compliance."""
        caps = self.capabilities()
        caps.check(waveform, settings)
        limit = settings.current_limit if settings.current_limit is not None else caps.compliance
        current_range = settings.current_range or caps.range_for(limit)
        tb, Eb = breakpoints(waveform)
        corners = np.stack([tb, Eb], axis=1)
        lines = [
            "*CLS",
            "ABOR",
            f"SAMP:RATE {settings.sample_rate:.12g}",
            f"SENS:CURR:PROT {limit:.12g}",
            f"SENS:CURR:RANG {current_range:.12g}",
            f"SOUR:LIST:INIT {initial_potential(waveform):.12g}",
            f"SOUR:LIST:PER {period(waveform):.12g}",
        ]
        for i in range(0, len(corners), _CORNERS_PER_LINE):
            chunk = corners[i : i + _CORNERS_PER_LINE].ravel()
            verb = "SOUR:LIST:POIN" if i == 0 else "SOUR:LIST:APP"
            lines.append(f"{verb} " + ",".join(f"{v:.12g}" for v in chunk))
        with self._lock:
            for line in lines:
                self._write(line)
            count = self._query("SOUR:LIST:POIN?")
            self._raise_instrument_errors("programming the waveform")
        if count.strip() != str(len(corners)):
            raise InstrumentError(
                f"the instrument holds {count!r} corners after programming; expected {len(corners)}"
            )

    def start(self) -> None:
        """``INIT``: the cell turns on and the waveform starts."""
        with self._lock:
            self._stopping.clear()
            self._last_n = 0
            self._write("INIT")
            self._raise_instrument_errors("starting the waveform")
            epoch = self._query("FETC:EPOC?")
        try:
            self.epoch = float(epoch)
        except ValueError:
            self._drop("FETC:EPOC? reply is not a number", epoch.encode())
            self.epoch = None

    def stream(self) -> Iterator[Samples]:
        """Batches of new samples until the waveform ends or :meth:`stop` (see module)."""
        while not self._stopping.is_set():
            batch = self.fetch()
            if len(batch) or batch.lost:
                yield batch
                if len(batch) >= self.max_batch:
                    continue  # more is waiting: no pause
            else:
                state = self.acquisition_state()
                if state in ("DONE", "ABORTED", "IDLE"):
                    # Everything measured before the end may still be buffered.
                    while len(last := self.fetch()) or last.lost:
                        yield last
                    return
                yield batch
            self._stopping.wait(self.poll_s)

    def stop(self) -> None:
        """Stop the waveform and turn the cell off; the stream ends."""
        self._stopping.set()
        with self._lock:
            self._write("ABOR;:OUTP OFF")
            self._query("*OPC?")

    def cell_off(self) -> None:
        """Turn the cell off now, from any thread (see the module docstring); idempotent."""
        self._stopping.set()
        self._link.cell_off("ABOR;:OUTP OFF", "OUTP?", "0")

    def close(self) -> None:
        """Close the session (idempotent); an acquisition on the instrument goes on."""
        self._link.close()

    # --- beyond the contract ---------------------------------------------------------

    def acquisition_state(self) -> str | None:
        """``IDLE``, ``RUNNING``, ``DONE`` or ``ABORTED``; None if the reply was garbage."""
        try:
            reply = self._query("STAT:ACQ?")
        except ProtocolError:
            return None  # dropped and counted by _query
        state = reply.split(",")[0].strip()
        if state not in ("IDLE", "RUNNING", "DONE", "ABORTED"):
            self._drop("STAT:ACQ? reply is not a known state", reply.encode())
            return None
        return state

    def write(self, command: str) -> None:
        """Send one raw command line (fault injection in tests, diagnostics)."""
        with self._lock:
            self._write(command)

    def query(self, command: str) -> str:
        """Send one raw query and return its reply line."""
        with self._lock:
            return self._query(command)

    def fetch(self) -> Samples:
        """One ``FETCh:NEW?``: the samples measured since the previous one (maybe none).

        A bad reply is dropped (counted, logged) and an empty batch returned.
        """
        with self._lock:
            res = self._link.session()
            with visa_errors_as_link_errors(f"{self.resource}: FETC:NEW?"):
                res.write(f"FETC:NEW? {self.max_batch}")
            try:
                data = self._read_block(res)
            except ProtocolError as exc:
                self._drop(str(exc), exc.raw)
                return Samples.empty()
        return self._decode(data)

    # --- internals ---------------------------------------------------------------------

    def _write(self, command: str) -> None:
        self._link.write(command)

    def _query(self, command: str) -> str:
        return self._link.query(command)

    def _raise_instrument_errors(self, what: str) -> None:
        self._link.raise_errors(what)

    def _read_block(self, res: MessageBasedResource) -> bytes:
        """Read one ``#<d><len><data>\\n`` block; ProtocolError (resynchronised) if bad."""
        with visa_errors_as_link_errors(f"{self.resource}: reading a block header"):
            head = res.read_bytes(2)
        if head[:1] != b"#" or not head[1:2].isdigit() or head[1:2] == b"0":
            rest = head if head.endswith(b"\n") else head + self._read_line(res)
            raise ProtocolError(
                f"fetch reply is not a definite-length block: {rest[:40]!r}", raw=rest
            )
        digits_count = int(head[1:2])
        try:
            digits = res.read_bytes(digits_count)
            if not digits.isdigit():
                raise ProtocolError(f"block length {digits!r} is not a number", raw=head + digits)
            length = int(digits)
            body = res.read_bytes(length + 1)
        except VISA_ERRORS as exc:
            self._resync(head)
            raise ProtocolError(
                f"fetch reply truncated after its header ({type(exc).__name__})", raw=head
            ) from exc
        except ProtocolError:
            self._resync(head)
            raise
        if body[-1:] != b"\n":
            self._resync(head)
            raise ProtocolError("fetch reply does not end where its header says", raw=head + body)
        return body[:-1]

    def _read_line(self, res: MessageBasedResource) -> bytes:
        try:
            return bytes(res.read_raw())
        except VISA_ERRORS:
            return b""

    def _resync(self, raw: bytes) -> None:
        """After a bad block: drain whatever is in flight and prove the link answers."""
        res = self._link.session()
        with visa_errors_as_link_errors(
            f"{self.resource}: no answer after a truncated reply {raw[:20]!r}"
        ):
            drain(res)
            reply = res.query("*OPC?")
        if reply.strip() != "1":
            raise LinkError(f"{self.resource}: out of step after a bad reply (got {reply!r})")

    def _decode(self, data: bytes) -> Samples:
        if len(data) % RECORD.itemsize:
            self._drop(
                f"fetch block of {len(data)} bytes is not a whole number of "
                f"{RECORD.itemsize}-byte records",
                data,
            )
            return Samples.empty()
        if not data:
            return Samples.empty()
        rec = np.frombuffer(data, dtype=RECORD)
        n = rec["n"].astype(np.int64)
        t, E, I = rec["t"], rec["E"], rec["I"]  # noqa: E741 - current
        flags = rec["flags"]
        bad = _implausible(rec, self._last_n)
        if bad:
            self._drop(f"fetch block out of range: {bad}", data)
            return Samples.empty()
        gaps = np.diff(n, prepend=self._last_n) - 1
        lost = int(gaps.sum())
        flags = flags.copy()
        flags[gaps > 0] |= np.uint8(Flag.GAP)
        self._last_n = int(n[-1])
        return Samples(t.copy(), E.copy(), I.copy(), flags, lost=lost)

    def _drop(self, reason: str, raw: bytes) -> None:
        self._dropped += 1
        logger.warning("%s: dropped a reply (%s); raw bytes %r", self.resource, reason, raw[:96])
        if self.on_drop is not None:
            self.on_drop(reason, raw[:256])


def _implausible(rec: npt.NDArray[np.void], last_n: int) -> str:
    """Why a block of records cannot be real ('' if it can), checked on whole arrays."""
    n = rec["n"].astype(np.int64)
    t, E, I, flags = rec["t"], rec["E"], rec["I"], rec["flags"]  # noqa: E741 - current
    if not (np.isfinite(t).all() and np.isfinite(E).all() and np.isfinite(I).all()):
        return "non-finite values"
    if np.abs(E).max() > _E_PLAUSIBLE:
        return f"|E| up to {np.abs(E).max():g} V (accepted <= {_E_PLAUSIBLE:g} V)"
    if np.abs(I).max() > _I_PLAUSIBLE:
        return f"|I| up to {np.abs(I).max():g} A (accepted <= {_I_PLAUSIBLE:g} A)"
    if (flags & np.uint8(~KNOWN_FLAGS & 0xFF)).any():
        return "unknown flag bits"
    if n[0] <= last_n or (np.diff(n) <= 0).any():
        return "sample numbers not increasing"
    if (np.diff(t) <= 0).any() or t[0] < 0 or math.isnan(float(t[0])):
        return "times not increasing"
    return ""
