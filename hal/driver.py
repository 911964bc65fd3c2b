"""The driver contract every potentiostat driver meets, and the values it trades in.

A driver is a plain class that owns one link to one instrument (a VISA session, a
serial line). The instrument actor owns one driver and is its only user, with one
exception: :meth:`Driver.cell_off` may be called from any thread at any time, also
while another call is in progress, because the safety interlock must be able to cut
the cell off when the actor is stuck waiting for the instrument.

The life of an acquisition::

    driver.connect()
    driver.identify(), driver.capabilities()
    driver.program(waveform, settings)   # after the interlock checked it
    driver.start()
    for samples in driver.stream():      # until the waveform ends or stop()
        ...
    driver.stop()                        # or driver.cell_off() at any time
    driver.close()

Samples travel in batches (:class:`Samples`: columnar ``t, E, I, flags``); a driver
never hands out one sample at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from hal.errors import SafetyLimitError
from runtime.sample_flags import Flag  # re-exported: the flags are part of the driver contract
from runtime.waveforms import Waveform, potential_bounds

__all__ = [
    "Capabilities",
    "Driver",
    "Flag",
    "Identity",
    "LatencyProfile",
    "Samples",
    "Settings",
]

FloatArray = npt.NDArray[np.float64]
U8Array = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True, eq=False)
class Samples:
    """A batch of samples, columnar: ``t`` since the acquisition started (s), ``E``
    applied potential (V), ``I`` current (A, anodic positive), ``flags`` (:class:`Flag`).

    ``lost`` counts samples the instrument or the link lost before this batch.
    """

    t: FloatArray
    E: FloatArray
    I: FloatArray  # noqa: E741 - the electrochemist's name for current
    flags: U8Array
    lost: int = 0

    def __post_init__(self) -> None:
        n = self.t.shape[0]
        if self.E.shape != (n,) or self.I.shape != (n,) or self.flags.shape != (n,):
            raise ValueError(
                f"Samples columns differ in length: t {self.t.shape}, E {self.E.shape}, "
                f"I {self.I.shape}, flags {self.flags.shape}; expected equal 1-D columns"
            )

    def __len__(self) -> int:
        return int(self.t.shape[0])

    @classmethod
    def empty(cls, lost: int = 0) -> Samples:
        """A batch with no samples (a poll that found nothing new)."""
        return cls(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.uint8), lost=lost)

    @classmethod
    def concat(cls, parts: list[Samples]) -> Samples:
        """One batch holding ``parts`` in order (their ``lost`` summed)."""
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.t for p in parts]),
            np.concatenate([p.E for p in parts]),
            np.concatenate([p.I for p in parts]),
            np.concatenate([p.flags for p in parts]),
            lost=sum(p.lost for p in parts),
        )


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the instrument says it is (``*IDN?`` or its equivalent)."""

    vendor: str
    model: str
    serial: str
    firmware: str

    def __str__(self) -> str:
        return f"{self.vendor} {self.model} (serial {self.serial}, firmware {self.firmware})"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an instrument can do.

    ``E_min``/``E_max`` the potential it can apply (V); ``current_ranges`` its
    current ranges, full scale (A, ascending); ``compliance`` the largest current it
    can deliver (A); ``max_sample_rate`` (Hz); ``techniques`` the waveform types it
    can run (``"cv"``, ``"lsv"``, ``"ca"``, ``"swv"``, ``"piecewise"``).
    """

    E_min: float
    E_max: float
    current_ranges: tuple[float, ...]
    compliance: float
    max_sample_rate: float
    techniques: frozenset[str]

    def range_for(self, current: float) -> float:
        """The smallest current range (A) whose full scale covers ``current`` (A)."""
        for r in self.current_ranges:
            if r >= abs(current):
                return r
        return self.current_ranges[-1]

    def check(self, waveform: Waveform, settings: Settings) -> None:
        """Raise :class:`SafetyLimitError` if the instrument cannot run this at all."""
        if waveform.type not in self.techniques:
            raise SafetyLimitError(
                f"technique {waveform.type!r} is not supported by this instrument; "
                f"accepted: {', '.join(sorted(self.techniques))}",
                limit="technique",
                value=float("nan"),
                accepted=", ".join(sorted(self.techniques)),
            )
        lo, hi = potential_bounds(waveform)
        if lo < self.E_min or hi > self.E_max:
            bad = lo if lo < self.E_min else hi
            raise SafetyLimitError(
                f"potential {bad:g} V is outside what the instrument can apply; "
                f"accepted: {self.E_min:g} V to {self.E_max:g} V",
                limit="instrument_potential",
                value=bad,
                accepted=f"{self.E_min:g} V to {self.E_max:g} V",
            )
        if settings.sample_rate > self.max_sample_rate:
            raise SafetyLimitError(
                f"sample_rate {settings.sample_rate:g} Hz is above the instrument's maximum; "
                f"accepted: up to {self.max_sample_rate:g} Hz",
                limit="sample_rate",
                value=settings.sample_rate,
                accepted=f"<= {self.max_sample_rate:g} Hz",
            )


@dataclass(frozen=True, slots=True)
class Settings:
    """How to measure while a waveform runs.

    ``sample_rate`` (Hz); ``current_range`` full scale (A; None: the instrument's
    largest, or the one covering ``current_limit``); ``current_limit`` the
    instrument's own compliance (A; None: the interlock's current limit).
    """

    sample_rate: float = 1000.0
    current_range: float | None = None
    current_limit: float | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.sample_rate, int | float) and self.sample_rate > 0):
            raise SafetyLimitError(
                f"sample_rate {self.sample_rate!r} Hz is not accepted; expected > 0",
                limit="sample_rate",
                value=float("nan"),
                accepted="> 0 Hz",
            )
        for name in ("current_range", "current_limit"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int | float) and value > 0):
                raise SafetyLimitError(
                    f"{name} {value!r} A is not accepted; expected > 0 or None",
                    limit=name,
                    value=float("nan"),
                    accepted="> 0 A or None",
                )


@dataclass(frozen=True, slots=True)
class LatencyProfile:
    """How quickly a driver talks to its instrument, for watchdogs and planners.

    ``command_s``: a typical command round trip (s); ``poll_s``: how often
    :meth:`Driver.stream` asks for new samples (s); ``max_batch``: the most samples
    one fetch returns; ``cell_off_s``: the worst case between :meth:`Driver.cell_off`
    being called and the cell being off (s).
    """

    command_s: float
    poll_s: float
    max_batch: int
    cell_off_s: float
    notes: str = field(default="")


@runtime_checkable
class Driver(Protocol):
    """The contract of a potentiostat driver (see the module docstring for its life).

    ``on_drop``, when set, is called with ``(reason, raw bytes)`` for every reply the
    driver dropped as garbage, truncated or out of range (the actor logs and
    publishes them); it runs in the thread that read the reply and must not block.
    """

    on_drop: Callable[[str, bytes], None] | None

    @property
    def latency(self) -> LatencyProfile:
        """This driver's latency profile."""
        ...

    def connect(self) -> None:
        """Open the link (again, after :meth:`close` or a :class:`LinkError`)."""
        ...

    def identify(self) -> Identity:
        """Ask the instrument who it is."""
        ...

    def capabilities(self) -> Capabilities:
        """What the instrument can do (ranges, compliance, rates, techniques)."""
        ...

    def program(self, waveform: Waveform, settings: Settings) -> None:
        """Load a waveform and its measurement settings; the cell stays as it is."""
        ...

    def start(self) -> None:
        """Turn the cell on and start the programmed waveform."""
        ...

    def stream(self) -> Iterator[Samples]:
        """Batches of new samples until the waveform ends or :meth:`stop` is called.

        A poll that found nothing yields an empty batch, so the consumer regains
        control at least every ``latency.poll_s``. Raises :class:`LinkError` when
        the link becomes unusable; replies that are garbage are counted and dropped.
        """
        ...

    def stop(self) -> None:
        """End the acquisition cleanly and turn the cell off."""
        ...

    def cell_off(self) -> None:
        """Turn the cell off now. Callable from any thread, also during another call;
        idempotent. Raises :class:`LinkError` if the instrument cannot be reached."""
        ...

    def close(self) -> None:
        """Release the link (idempotent)."""
        ...

    @property
    def dropped_replies(self) -> int:
        """How many garbage, truncated or out-of-range replies were dropped so far."""
        ...
