"""Unit conversion: :mod:`runtime.units` (re-exported; the schema library reads with it)."""

from runtime.units import Quantity, to_si

__all__ = ["Quantity", "to_si"]
