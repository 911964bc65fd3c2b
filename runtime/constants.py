"""Physical constants and defaults every package shares, in SI units.

One home for them: the physics engine, the simulated cells of ``hal`` and the
analytic references all read these, so they cannot drift apart.
"""

from __future__ import annotations

__all__ = ["AVOGADRO", "FARADAY", "GAS_CONSTANT", "STANDARD_TEMPERATURE"]

FARADAY = 96485.33212
"""Faraday constant F (C/mol); exact by the 2019 SI (CODATA 2018)."""

GAS_CONSTANT = 8.314462618
"""Molar gas constant R (J/(mol K)); CODATA 2018."""

AVOGADRO = 6.02214076e23
"""Avogadro constant (1/mol); exact by the 2019 SI."""

STANDARD_TEMPERATURE = 298.15
"""The temperature T (K) a cell is at when nothing says otherwise (25 degC)."""
