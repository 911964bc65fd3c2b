"""What every reader returns: a :class:`Recording` (columns in SI) and its :class:`Metadata`.

A file is a recorded instrument: the columns are what the instrument measured, the
metadata what it (or the person who ran it) said about the measurement. Values are
SI: t (s), E (V), I (A, anodic positive), scan rates (V/s), areas (m^2).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = ["META_KEYS", "Metadata", "Recording", "scan_numbers"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int32]


@dataclass(frozen=True, slots=True)
class Metadata:
    """What is known about a measurement, in SI units (``None``: the file does not say).

    ``technique``: ``cv``, ``lsv``, ``ca`` (amperometry at a held potential), ``swv``,
    ``dpv``, ``npv``, ``cp`` (chronopotentiometry), another technique by the file's own
    short name (``gcpl``, ``mb``, ``bcd``: EC-Lab's battery techniques), or ``None``.
    ``scan_rate`` (V/s), ``E_step`` (V) and ``t_step`` (s): the staircase a digital
    potentiostat applies; ``sampling``: where in each step the current is sampled, as a
    fraction of the step (1.0: at its end; Autolab's "current integration" is recorded
    as its own note).
    ``area`` (m^2): the working electrode's area; ``reference``: the reference
    electrode as the file (or the user) names it. ``first_scan``: the number of the
    first scan in the file within the instrument's programme (a file that holds cycle 3
    onwards says 3); ``scans_in_programme``: how many the programme ran, when known.
    ``current_sign``: -1 when the file's currents were cathodic positive and were
    turned to Galvana's anodic-positive convention.
    ``header``: the file's own header fields, kept as text (a few hundred at most).
    ``sources``: where each value came from (``header``, ``user``, ``measured``).
    """

    format: str
    instrument: str | None = None
    technique: str | None = None
    scan_rate: float | None = None
    E_step: float | None = None
    t_step: float | None = None
    sampling: float | None = None
    area: float | None = None
    reference: str | None = None
    started: datetime | None = None
    notes: str = ""
    first_scan: int | None = None
    scans_in_programme: int | None = None
    current_sign: float | None = None
    header: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def with_values(self, source: str, **values: Any) -> Metadata:
        """A copy with ``values`` set (``None`` ones skipped), each marked as from ``source``."""
        given = {k: v for k, v in values.items() if v is not None and v != ""}
        if not given:
            return self
        return replace(self, **given, sources={**self.sources, **dict.fromkeys(given, source)})


META_KEYS: Final[tuple[str, ...]] = tuple(
    f.name for f in fields(Metadata) if f.name not in ("format", "header", "sources")
)
"""The metadata a user may give (``--meta key=value``)."""


@dataclass(frozen=True, slots=True, eq=False)
class Recording:
    """Columns of equal length: ``t`` (s, increasing), ``E`` (V, the working electrode's
    potential as recorded), ``I`` (A, anodic positive); optionally ``E_applied`` (V, the
    potential the instrument applied), ``scan`` (1-based scan or cycle number) and
    ``segment`` (0-based sweep number within the file); and the metadata.

    ``time_generated`` is True when the file had no time column and ``t`` was made
    from the scan rate and the potential step (``time_note`` says how).
    """

    t: FloatArray
    E: FloatArray
    I: FloatArray  # noqa: E741 - the electrochemist's name for current
    metadata: Metadata
    E_applied: FloatArray | None = None
    scan: IntArray | None = None
    segment: IntArray | None = None
    time_generated: bool = False
    time_note: str = ""

    def __post_init__(self) -> None:
        n = len(self.t)
        for name in ("E", "I", "E_applied", "scan", "segment"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"column {name} has {len(value)} rows but t has {n}")

    def __len__(self) -> int:
        return len(self.t)

    @property
    def potential(self) -> FloatArray:
        """The potential a model is driven along: the applied one when the file has it."""
        return self.E_applied if self.E_applied is not None else self.E

    def select(self, mask: npt.NDArray[np.bool_]) -> Recording:
        """The rows where ``mask`` is True."""

        def pick(a: Any) -> Any:
            return None if a is None else a[mask]

        return replace(
            self,
            t=self.t[mask],
            E=self.E[mask],
            I=self.I[mask],
            E_applied=pick(self.E_applied),
            scan=pick(self.scan),
            segment=pick(self.segment),
        )


def scan_numbers(values: npt.NDArray[np.float64] | None, *, first: int = 1) -> IntArray | None:
    """A column of scan (cycle) numbers as 1-based integers; ``first`` is the number the
    file gives its first scan (EC-Lab counts from 0). None when the column is absent or
    is not whole numbers from ``first`` to a million (then scans are found from the
    potential)."""
    if values is None or len(values) == 0:
        return None
    if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
        return None
    if values.min() < first or values.max() > 1_000_000 + first:
        return None
    return (values - first + 1).astype(np.int32)
