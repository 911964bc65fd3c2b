"""Helpers shared by the physics tests: small scenario builders in SI units."""

from __future__ import annotations

from typing import Any

F_RT = 96485.33212 / (8.314462618 * 298.15)  # F/(RT) at 25 C, 1/V


def e_scenario(
    *,
    waveform: dict[str, Any],
    kinetics: dict[str, Any] | None = None,
    D_O: float = 1e-9,
    D_R: float = 1e-9,
    c_O: float = 1.0,
    c_R: float = 0.0,
    electrode: dict[str, Any] | None = None,
    cell: dict[str, Any] | None = None,
    refine: float = 1.0,
) -> dict[str, Any]:
    """A mechanism-E scenario mapping (planar, 1 mm^2 unless told otherwise)."""
    doc: dict[str, Any] = {
        "name": "test",
        "mechanism": "E",
        "species": {"O": {"D": D_O, "c_bulk": c_O}, "R": {"D": D_R, "c_bulk": c_R}},
        "kinetics": kinetics or {"model": "nernst", "E0": 0.0},
        "electrode": electrode or {"geometry": "planar", "area": 1e-6},
        "waveform": waveform,
        "numerics": {"refine": refine},
    }
    if cell is not None:
        doc["cell"] = cell
    return doc
