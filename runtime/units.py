"""Unit conversion for document values: the one place where strings with units become SI.

Bare numbers are taken to be SI already. Strings such as ``"1 mM"``, ``"1e-5 cm^2/s"``
or ``"25 degC"`` are parsed with pint and converted to the SI unit of the quantity the
key expects; a string whose dimension does not match is rejected.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from runtime.constants import AVOGADRO

__all__ = ["Quantity", "to_si", "unit_factor"]


@dataclass(frozen=True, slots=True)
class Quantity:
    """A physical quantity a scenario key expects: its SI unit and pint dimensionality.

    ``per_particle`` names an alternative dimensionality (energy per particle, e.g.
    ``"0.8 eV"``) that is accepted and multiplied by the Avogadro constant.
    """

    name: str
    si_unit: str
    dimensionality: str
    per_particle: str | None = None


# "cm2/s" as people write it: pint needs "cm^2/s".
_EXPONENT = re.compile(r"(?<=[A-Za-z\u00b5\u03bc])(-?\d+)")

_NUMBER_THEN_UNIT = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")


@functools.cache
def _registry() -> Any:
    # pint takes a noticeable fraction of a second to build its registry, and most
    # scenarios use bare SI numbers, so it is only loaded when a string needs it.
    import pint  # noqa: PLC0415 - deliberately lazy, see above

    return pint.UnitRegistry()


def to_si(value: str, quantity: Quantity) -> float:
    """Convert a string with units (``"100 mV/s"``) to a float in ``quantity.si_unit``.

    Raises ``ValueError`` with a message naming the accepted unit when the string is
    not a number followed by a unit of the expected dimension.
    """
    match = _NUMBER_THEN_UNIT.match(value)
    if match is None:
        raise ValueError(
            f"{value!r} is not a number followed by a unit; expected e.g. '1.0 {quantity.si_unit}'"
        )
    number = float(match.group(1))
    unit_text = match.group(2) or "dimensionless"
    ureg = _registry()
    try:
        # Quantity(number, unit) rather than parsing "25 degC" as a product, which
        # pint refuses for offset units such as degC.
        q = ureg.Quantity(number, unit_text)
        if q.check(quantity.dimensionality):
            return float(q.to(quantity.si_unit).magnitude)
        if quantity.per_particle is not None and q.check(quantity.per_particle):
            return float(q.to("J").magnitude) * AVOGADRO
    except Exception as exc:  # pint raises several unrelated types for bad units
        raise ValueError(f"{value!r}: unit {unit_text!r} is not understood ({exc})") from None
    raise ValueError(
        f"{value!r} is not a {quantity.name}; expected a value in {quantity.si_unit} "
        f"(a bare number) or a string with compatible units"
    )


@functools.cache
def unit_factor(unit: str, quantity: Quantity) -> float:
    """The SI value of one ``unit`` of ``quantity``: what a value in SI is divided by to
    be shown in ``unit`` (``"cm/s"`` of a rate constant: 0.01).

    Exponents may be written bare (``cm2/s``), with ``^`` or as superscripts (``cm²/s``).
    Raises ``ValueError`` naming the unit and the quantity when ``unit`` is not one of it.

    >>> unit_factor("cm2/s", Quantity("diffusion coefficient", "m^2/s", "[length]**2/[time]"))
    0.0001
    """
    return to_si("1 " + _EXPONENT.sub(r"^\1", unit.strip()), quantity)
