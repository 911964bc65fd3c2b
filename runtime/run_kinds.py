"""The kinds of run and how a run spec says which it is.

A run spec (what ``runs.start`` takes, recorded in the run's ``run.created``) is one of:

- a **simulation**: ``{"procedure": "simulate", "scenario": {...}, ...options}``, or a
  bare scenario document (a map with a ``waveform`` and none of the keys below), which
  the daemon wraps so;
- an **acquisition**: a twin spec (``protocol``, ``model``, ...) on an instrument, or on
  :data:`SIMULATED_INSTRUMENT` (its model's own simulation is the measurement);
- a **replay** (``replay: {run, speed}``) or an **import** (``import: {...}``).

>>> run_kind({"procedure": "simulate", "scenario": {}})
'simulation'
>>> run_kind(simulation_spec({"name": "cv", "waveform": {"type": "cv"}}))
'simulation'
>>> run_kind({"instrument": "sim", "protocol": {}, "model": {}})
'acquisition'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

__all__ = [
    "SIMULATE",
    "SIMULATED_INSTRUMENT",
    "RunKind",
    "is_scenario",
    "run_kind",
    "simulation_spec",
]

RunKind = Literal["simulation", "acquisition", "replay", "import"]

SIMULATE: Final = "simulate"
"""The ``procedure`` of a simulation run."""

SIMULATED_INSTRUMENT: Final = "simulation"
"""The ``instrument`` of a twin spec whose measurement is its own model's simulation."""

# Keys that make a map something other than a bare scenario.
_RUN_KEYS: Final = frozenset({"procedure", "replay", "import", "protocol", "model"})


def is_scenario(doc: object) -> bool:
    """Whether ``doc`` is a bare scenario given as a run spec: a map with a
    ``waveform`` and none of the keys of the other specs."""
    return isinstance(doc, Mapping) and "waveform" in doc and not (_RUN_KEYS & doc.keys())


def simulation_spec(scenario: Any, **options: Any) -> dict[str, Any]:
    """The run spec of a simulation of ``scenario`` (a map, or a file the daemon may
    read) with ``options`` (``speed``, ``snapshots``, ``tolerance``; None: the default)."""
    spec: dict[str, Any] = {"procedure": SIMULATE, "scenario": scenario}
    if isinstance(scenario, Mapping) and isinstance(scenario.get("name"), str):
        spec["name"] = scenario["name"]
    spec.update({k: v for k, v in options.items() if v is not None})
    return spec


def run_kind(spec: object) -> RunKind:
    """The kind of the run ``spec`` starts (see the module docstring)."""
    if not isinstance(spec, Mapping):
        return "acquisition"
    if "replay" in spec:
        return "replay"
    if "import" in spec:
        return "import"
    if spec.get("procedure") == SIMULATE or is_scenario(spec):
        return "simulation"
    return "acquisition"
