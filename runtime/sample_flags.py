"""The per-sample status bits a ``SampleBatch`` carries in its ``flags`` column.

Drivers set them (``hal``), the recorder stores them, the twin masks what they mark
(``twins``): one definition for all. The values are written into recorded runs, so a
bit never changes meaning; add new ones.
"""

from __future__ import annotations

import enum

__all__ = ["KNOWN_FLAGS", "Flag"]


class Flag(enum.IntFlag):
    """Per-sample status bits, as carried in ``SampleBatch.flags`` (one byte)."""

    OVERLOAD = 0x01
    """The current exceeded the range's full scale; the reading is clipped."""
    COMPLIANCE = 0x02
    """The instrument hit its current compliance and could not hold the potential."""
    UNDERLOAD = 0x04
    """The current is below the range's useful resolution (a finer range would do)."""
    TIMING = 0x08
    """The instrument could not keep the sample timing."""
    GAP = 0x10
    """Samples were lost right before this one (instrument buffer or link)."""


KNOWN_FLAGS = int(Flag.OVERLOAD | Flag.COMPLIANCE | Flag.UNDERLOAD | Flag.TIMING | Flag.GAP)
"""Every bit a driver may set; any other bit in a reply makes it out of range."""
