"""Units of the columns and values in measurement files, to SI.

Files name their units in many spellings (``µA``, ``uA``, ``mA``, ``V vs. Ref.``,
``cm²``, ``mV/s``). The common ones are looked up in a table (no pint start-up for a
plain file); anything else goes through pint, and must be of the expected dimension.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Final

__all__ = ["DIMENSIONS", "quantity_to_si", "scale_to_si"]

# The dimension of each kind of value, in pint's words, and its SI unit.
DIMENSIONS: Final[dict[str, tuple[str, str]]] = {
    "time": ("[time]", "s"),
    "potential": ("[electric_potential]", "V"),
    "current": ("[current]", "A"),
    "scan_rate": ("[electric_potential]/[time]", "V/s"),
    "area": ("[length]**2", "m^2"),
    "frequency": ("1/[time]", "Hz"),
    "dimensionless": ("[]", ""),
}

_PREFIX: Final[dict[str, float]] = {
    "": 1.0,
    "k": 1e3,
    "m": 1e-3,
    "u": 1e-6,
    "µ": 1e-6,  # micro sign U+00B5
    "μ": 1e-6,  # Greek mu U+03BC
    "n": 1e-9,
    "p": 1e-12,
}
_BASE: Final[dict[str, str]] = {"A": "current", "V": "potential", "s": "time"}
# Compound units that files write most, looked up before pint is loaded.
_COMPOUND: Final[dict[str, tuple[str, float]]] = {
    "V/s": ("scan_rate", 1.0),
    "mV/s": ("scan_rate", 1e-3),
    "m^2": ("area", 1.0),
    "cm^2": ("area", 1e-4),
    "cm2": ("area", 1e-4),
    "mm^2": ("area", 1e-6),
    "mm2": ("area", 1e-6),
    "Hz": ("frequency", 1.0),
}


def _clean(unit: str) -> str:
    text = unit.strip().strip("()[]").strip()
    # Potentials are given against a reference ("V vs. Ref.", "V vs Ag/AgCl"): the
    # reference is metadata, the unit is what comes before it.
    text = re.split(r"\s+vs\.?\s*", text, maxsplit=1)[0].strip()
    return text.replace("²", "^2").replace("³", "^3")


@functools.cache
def _registry() -> Any:
    # pint's registry takes a noticeable fraction of a second to build; most files
    # only use the units in the table above.
    import pint  # noqa: PLC0415 - deliberately lazy, see above

    return pint.UnitRegistry()


def scale_to_si(unit: str, kind: str) -> float:
    """The factor that turns values in ``unit`` into SI values of ``kind`` (a key of
    :data:`DIMENSIONS`). Raises ``ValueError`` naming the expected dimension."""
    text = _clean(unit)
    dimension, si = DIMENSIONS[kind]
    if text in _COMPOUND and _COMPOUND[text][0] == kind:
        return _COMPOUND[text][1]
    if len(text) >= 1 and text[-1] in _BASE and text[:-1] in _PREFIX:
        if _BASE[text[-1]] == kind:
            return _PREFIX[text[:-1]]
        raise ValueError(
            f"unit {unit.strip()[:40]!r} is a unit of {_BASE[text[-1]]}, not of {kind}; "
            f"expected e.g. {si or '1'}"
        )
    if not text:
        raise ValueError(f"no unit given; expected a unit of {kind} such as {si or '1'}")
    ureg = _registry()
    try:
        q = ureg.Quantity(1.0, text.replace("Ohm", "ohm").replace("cm2", "cm^2"))
        ok = q.check(dimension)
    except Exception:  # pint raises several unrelated types for what it cannot parse
        ok = False
    if not ok:
        raise ValueError(
            f"unit {unit.strip()[:40]!r} is not understood as a unit of {kind}; "
            f"expected e.g. {si or '1'}"
        )
    return float(q.to(si or "dimensionless").magnitude)


_NUMBER_THEN_UNIT = re.compile(r"^\s*([-+]?(?:\d+[.,]?\d*|[.,]\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")


def quantity_to_si(text: str, kind: str) -> float:
    """A value with its unit (``"0.0707 cm2"``, ``"100mV/s"``, a bare SI number) in SI
    units of ``kind``. Raises ``ValueError`` naming what was expected."""
    match = _NUMBER_THEN_UNIT.match(text)
    si = DIMENSIONS[kind][1]
    if match is None:
        raise ValueError(f"expected a number with a unit of {kind}, such as '1.0 {si}'")
    number = float(match.group(1).replace(",", "."))
    unit = match.group(2)
    if not unit:
        return number
    return number * scale_to_si(unit, kind)
