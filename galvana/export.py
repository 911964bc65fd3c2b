"""``galvana export``: :class:`runtime.commands.Export` counting a run's samples in the
event log, when no daemon is there to ask, by the runs' own rule
(:func:`actors.run_state.sample_batches`: a run's samples end at its final state)."""

from __future__ import annotations

from actors.run_state import sample_batches
from runtime.commands import Export

__all__ = ["EXPORT"]

EXPORT = Export(sample_batches)
