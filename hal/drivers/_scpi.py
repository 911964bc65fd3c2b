"""One SCPI session over VISA, shared by the SCPI drivers.

:class:`ScpiLink` owns the pyvisa resource and serialises calls on it with a lock;
replies are decoded by hand so that garbage is counted and dropped (with its raw
bytes) rather than raising from deep inside pyvisa; the error queue is read with
``SYSTem:ERRor?``; and :meth:`ScpiLink.cell_off` reaches the instrument even while
another thread is stuck inside a call, through a second session if it must.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from pyvisa.resources import MessageBasedResource

from hal.drivers._visa import VISA_ERRORS, open_resource, visa_errors_as_link_errors
from hal.errors import InstrumentError, InstrumentOpenError, LinkError, ProtocolError

__all__ = ["ScpiLink"]

logger = logging.getLogger("galvana.hal.scpi")


class ScpiLink:
    """A SCPI session to ``resource`` (see the module docstring).

    ``on_drop(reason, raw)`` is called for every reply dropped as garbage.
    """

    def __init__(
        self,
        resource: str,
        *,
        backends: Sequence[str],
        timeout_s: float,
        cell_off_wait_s: float,
        on_drop: Callable[[str, bytes], None],
    ) -> None:
        self.resource = resource
        self.backends = tuple(backends)
        self.timeout_s = timeout_s
        self.cell_off_wait_s = cell_off_wait_s
        self.on_drop = on_drop
        self.lock = threading.RLock()
        self._res: MessageBasedResource | None = None

    @property
    def is_open(self) -> bool:
        """Whether a session is open (it may still turn out to be dead)."""
        return self._res is not None

    def open(self) -> None:
        """(Re)open the session."""
        with self.lock:
            self.close()
            self._res = open_resource(self.resource, self.backends, timeout_s=self.timeout_s)
            self._res.chunk_size = 1 << 20

    def close(self) -> None:
        """Close the session (idempotent)."""
        with self.lock:
            res, self._res = self._res, None
            if res is not None:
                try:
                    res.close()
                except VISA_ERRORS:
                    logger.debug("closing %s failed", self.resource, exc_info=True)

    def session(self) -> MessageBasedResource:
        """The open resource; LinkError when there is none."""
        if self._res is None:
            raise LinkError(f"{self.resource}: not connected")
        return self._res

    def write(self, command: str) -> None:
        """Send one command line."""
        with self.lock:
            res = self.session()
            with visa_errors_as_link_errors(f"{self.resource}: writing {command[:40]!r}"):
                res.write(command)

    def query(self, command: str) -> str:
        """Send a query and return its reply line; garbage raises ProtocolError (dropped)."""
        with self.lock:
            res = self.session()
            with visa_errors_as_link_errors(f"{self.resource}: query {command[:40]!r}"):
                res.write(command)
                raw = bytes(res.read_raw())
        # Decoded by hand: pyvisa's own decoding raises on the first non-ASCII byte.
        reply = raw.decode("ascii", errors="replace").strip()
        if "\ufffd" in reply or any(ord(c) < 32 and c != "\t" for c in reply):
            self.on_drop(f"reply to {command[:40]!r} is garbage", raw)
            raise ProtocolError(f"reply to {command[:40]!r} is garbage: {raw[:60]!r}", raw=raw)
        return reply

    def raise_errors(self, what: str, query: str = "SYST:ERR?") -> None:
        """Read the error queue; raise InstrumentError listing what the instrument refused."""
        errors: list[str] = []
        first_code = 0
        for _ in range(32):
            reply = self.query(query)
            code_text, _, text = reply.partition(",")
            try:
                code = int(code_text)
            except ValueError:
                self.on_drop(f"{query} reply has no error code", reply.encode())
                break
            if code == 0:
                break
            first_code = first_code or code
            errors.append(f"{code} {text.strip().strip(chr(34))}")
        if errors:
            raise InstrumentError(
                f"{self.resource} refused {what}: {'; '.join(errors)}", code=first_code
            )

    def cell_off(self, command: str, confirm: str, expected: str) -> None:
        """Send ``command`` and check ``confirm`` answers ``expected``, from any thread.

        Waits ``cell_off_wait_s`` for the session; if it stays busy or fails, a second
        session sends the same. LinkError if neither reached the instrument.
        """
        failures: list[str] = []
        if self.lock.acquire(timeout=self.cell_off_wait_s):
            try:
                if self._res is not None:
                    try:
                        if self._confirmed(self._res, command, confirm, expected):
                            return
                        failures.append("the output stayed on")
                    except VISA_ERRORS as exc:
                        failures.append(f"main session: {exc}")
                else:
                    failures.append("main session closed")
            finally:
                self.lock.release()
        else:
            failures.append("main session busy")
        try:
            side = open_resource(
                self.resource, self.backends, timeout_s=self.timeout_s, open_timeout_s=1.0
            )
        except InstrumentOpenError as exc:
            failures.append(f"second session: {exc}")
        else:
            try:
                if self._confirmed(side, command, confirm, expected):
                    return
                failures.append("second session: the output stayed on")
            except VISA_ERRORS as exc:
                failures.append(f"second session: {exc}")
            finally:
                try:
                    side.close()
                except VISA_ERRORS:
                    logger.debug("closing the second session failed", exc_info=True)
        raise LinkError(f"{self.resource}: could not turn the cell off ({'; '.join(failures)})")

    @staticmethod
    def _confirmed(res: MessageBasedResource, command: str, confirm: str, expected: str) -> bool:
        res.write(command)
        return res.query(confirm).strip() == expected
