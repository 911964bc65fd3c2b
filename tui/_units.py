"""The units the TUI shows estimates in: the user's (a config file) or SI, one key apart.

A posterior names each parameter's SI unit (``diagnostics.units``; a calibration's
plain form, ``unit``); the user names the unit to show it in by the parameter's key
path or its last part (``species.O.D`` or ``D``), as ``galvana calibrate --units``
does. The conversion is :func:`runtime.units.unit_factor`'s (the one place). Potentials
are against the run's reference electrode, which their unit says when the run names
it (``mV vs Ag/AgCl (3 M KCl)``).

The config file (``galvana tui --config FILE``, else ``$XDG_CONFIG_HOME/galvana/tui.yaml``
when there is one)::

    units:            # shown in these; `u` switches to SI and back
      k0: cm/s
      D: cm^2/s
      E0: mV
      noise: nA
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from runtime.schema import UNSET, Document, UnsetType, decode, read_document
from runtime.units import Quantity, unit_factor
from tui.errors import ConfigError

__all__ = [
    "DEFAULT_UNITS",
    "Shown",
    "TuiConfig",
    "Units",
    "default_config_path",
    "load_units",
    "pretty_unit",
]

DEFAULT_UNITS: Final[Mapping[str, str]] = {
    "k0": "cm/s",
    "D": "cm^2/s",
    "E0": "mV",
    "reference_offset": "mV",
}
"""What an electrochemist reads without converting: used unless the config says otherwise."""

_PRETTY: Final = (("^2", "²"), ("^3", "³"), ("^-1", "⁻¹"), ("ohm", "Ω"), ("degC", "°C"))


def pretty_unit(unit: str) -> str:
    """A unit as printed: ``cm²/s`` for ``cm^2/s``, ``Ω`` for ``ohm``.

    >>> pretty_unit("m^2/s"), pretty_unit("kohm")
    ('m²/s', 'kΩ')
    """
    for plain, shown in _PRETTY:
        unit = unit.replace(plain, shown)
    return unit


@dataclass(frozen=True, slots=True)
class Shown:
    """How one parameter is shown: its unit's ``label`` and ``scale`` (the SI value of one
    of it: shown value = SI value / scale), and ``problem``, why the chosen unit could
    not be used (then it is shown in SI)."""

    label: str
    scale: float = 1.0
    problem: str = ""


class TuiConfig(Document):
    """The TUI's config file (see the module docstring)."""

    units: dict[str, str] | UnsetType = UNSET


def _check(unit: str) -> None:
    """Raise ValueError unless ``unit`` is a unit at all."""
    unit_factor(unit, Quantity(unit, unit, unit))


@dataclass
class Units:
    """The display units: ``chosen`` per parameter key (or last part), shown unless ``si``."""

    chosen: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_UNITS))
    si: bool = False
    source: str = "defaults"
    """Where the choice came from (a file, or the defaults), for the help."""

    def toggle(self) -> None:
        """Chosen units to SI, or back."""
        self.si = not self.si

    def choice(self, name: str) -> str | None:
        """The unit chosen for a parameter (``species.O.D@run-2``: by key path or last part)."""
        base = name.split("@", 1)[0]
        return self.chosen.get(base) or self.chosen.get(base.rsplit(".", 1)[-1])

    def shown(self, name: str, si_unit: str | None, reference: str = "") -> Shown:
        """How to show parameter ``name`` whose SI unit is ``si_unit`` (None: not known,
        a recording made before posteriors said; ``""``: dimensionless)."""
        if si_unit is None:
            return Shown("SI")
        vs = f" vs {reference}" if reference and si_unit == "V" else ""
        chosen = None if self.si or not si_unit else self.choice(name)
        if chosen is None or chosen == si_unit:
            return Shown(pretty_unit(si_unit) + vs)
        try:
            scale = unit_factor(chosen, Quantity(si_unit, si_unit, si_unit))
        except ValueError:
            problem = f"{chosen!r} is not a unit of {name} ({si_unit}): shown in SI"
            return Shown(pretty_unit(si_unit) + vs, 1.0, problem)
        return Shown(pretty_unit(chosen) + vs, scale)


def default_config_path() -> Path:
    """``$XDG_CONFIG_HOME/galvana/tui.yaml`` (``~/.config`` when it is not set)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "galvana" / "tui.yaml"


def load_units(path: str | os.PathLike[str] | None) -> Units:
    """The display units from the config file ``path`` (None: the default one if it
    exists, else :data:`DEFAULT_UNITS`); :class:`ConfigError` in one line naming the
    file and the key when it is unreadable or names something that is not a unit."""
    given = path is not None
    file = Path(path) if path is not None else default_config_path()
    if not given and not file.is_file():
        return Units()
    where = f"--config {file}" if given else str(file)

    def error(key: str, message: str) -> ConfigError:
        return ConfigError(f"{where}: {key}: {message}" if key else f"{where}: {message}")

    plain, _ = read_document(file, error=error, root="")
    config = decode(plain, TuiConfig, error=error, root="")
    chosen = dict(DEFAULT_UNITS)
    if not isinstance(config.units, UnsetType):
        for key, unit in config.units.items():
            try:
                _check(unit)
            except ValueError:
                message = f"{unit!r} is not a unit (e.g. cm/s, cm^2/s, mV)"
                raise error(f"units.{key}", message) from None
            chosen[key] = unit
    return Units(chosen, source=str(file))
