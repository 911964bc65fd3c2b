"""Every exception the instrument layer raises on purpose, in one hierarchy.

Messages name what was wrong (the field, the value) and what would be accepted.
A malformed waveform raises :class:`~runtime.errors.WaveformError` (re-exported here)
when it is constructed, before any driver sees it: the waveforms are the shared
vocabulary of :mod:`runtime.waveforms`.
A :class:`LinkError` means the wire is unusable (reconnect); an
:class:`InstrumentError` means the instrument understood and refused; a
:class:`SafetyLimitError` means Galvana refused before anything reached the cell.
"""

from __future__ import annotations

from runtime.errors import GalvanaError, WaveformError  # re-exported: see WaveformError

__all__ = [
    "DriverConfigError",
    "HalError",
    "InstrumentError",
    "InstrumentOpenError",
    "InterlockLatched",
    "LinkError",
    "ProtocolError",
    "SafetyLimitError",
    "SimulatorError",
    "UnsupportedWaveformError",
    "WaveformError",
]


class HalError(GalvanaError):
    """Base class of every error the instrument layer raises on purpose."""


class DriverConfigError(HalError, ValueError):
    """A driver's connection options are wrong; ``key`` names the option (``""``: the
    driver's name itself)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.detail = message


class UnsupportedWaveformError(HalError, ValueError):
    """A driver cannot express this waveform in its instrument's language."""


class SafetyLimitError(HalError, ValueError):
    """A waveform or setting would exceed an instrument's safety limits; nothing was programmed.

    ``limit`` names the limit (``"potential_window"``, ``"current_limit"``,
    ``"scan_rate"``, ...), ``value`` the offending value (SI) and ``accepted`` the
    allowed range in words.
    """

    def __init__(self, message: str, *, limit: str, value: float, accepted: str) -> None:
        super().__init__(message)
        self.limit = limit
        self.value = value
        self.accepted = accepted


class InterlockLatched(HalError):
    """The interlock tripped (or was emergency-stopped) and stays latched until reset."""


class InstrumentOpenError(HalError):
    """A VISA resource or serial device could not be opened.

    ``resource`` is what was asked for and ``attempts`` each backend (or path) tried
    with the reason it failed.
    """

    def __init__(self, resource: str, attempts: list[tuple[str, str]]) -> None:
        tried = "; ".join(f"{backend}: {why}" for backend, why in attempts) or "none"
        super().__init__(f"cannot open instrument resource {resource!r}; tried {tried}")
        self.resource = resource
        self.attempts = tuple(attempts)


class LinkError(HalError):
    """The link to an instrument is down or unusable (closed, timed out, out of step)."""


class InstrumentError(HalError):
    """The instrument reported an error (``SYST:ERR?``, a MethodSCRIPT ``!`` line, ...).

    ``code`` is the instrument's own error code (0 when it gave none).
    """

    def __init__(self, message: str, *, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class ProtocolError(HalError, ValueError):
    """A reply does not follow the protocol (garbage, truncated, out of range).

    ``raw`` holds the offending bytes (at most a few hundred) so they can be logged.
    Streaming code counts and drops such replies instead of raising.
    """

    def __init__(self, message: str, *, raw: bytes = b"") -> None:
        super().__init__(message)
        self.raw = raw[:256]


class SimulatorError(HalError, ValueError):
    """The simulated potentiostat was configured with a value it cannot use."""
