"""Instrument drivers by name: what an instrument entry's ``driver:`` chooses.

Each :class:`DriverKind` names a driver, says what it drives, lists its connection
options (:class:`Option`: type, default, what is accepted) and builds the driver from
options already checked by :meth:`DriverKind.read`. The built-in kinds:

==============  ====================================================================
``scpi``        any potentiostat speaking Galvana's SCPI dialect over VISA
                (:class:`~hal.drivers.scpi_potentiostat.ScpiPotentiostat`)
``keithley2450`` a Keithley 2450 SourceMeter as a two-electrode potentiostat, over
                VISA (:class:`~hal.drivers.keithley2450.Keithley2450`)
``methodscript`` a PalmSens instrument speaking MethodSCRIPT on a serial device file
                (:class:`~hal.drivers.methodscript.MethodScriptPotentiostat`)
==============  ====================================================================

Drivers from other packages plug in by name: a distribution declares an entry point
in the group ``galvana.drivers`` whose object is a :class:`DriverKind`, e.g. in its
``pyproject.toml``::

    [project.entry-points."galvana.drivers"]
    autolab = "my_lab.autolab:AUTOLAB"

Bare numbers are SI (timeouts in seconds); an option's error names the option, the
value and what is accepted (:class:`~hal.errors.DriverConfigError`).

Example::

    kind = driver_kind("scpi")
    options = kind.read({"resource": "TCPIP0::127.0.0.1::5025::SOCKET", "timeout": 1.0})
    driver = kind.build(options)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Literal

from hal.driver import Driver
from hal.drivers._serial import BAUD_RATES
from hal.errors import DriverConfigError
from runtime.documents import kind_of

__all__ = [
    "ENTRY_POINT_GROUP",
    "DriverKind",
    "Option",
    "driver_kind",
    "driver_kinds",
    "read_options",
    "register",
]

logger = logging.getLogger("galvana.hal.drivers")

ENTRY_POINT_GROUP = "galvana.drivers"
"""The entry-point group through which other packages add drivers."""

OptionType = Literal["text", "texts", "number", "integer", "flag"]


@dataclass(frozen=True, slots=True)
class Option:
    """One connection option of a driver.

    ``type``: ``text`` (a non-empty string), ``texts`` (a list of them; one string
    counts as a list of one), ``number`` (a real number within ``lo``..``hi``, in SI
    units), ``integer`` (within ``lo``..``hi``) or ``flag`` (true or false).
    ``choices``, when given, are the only values accepted. ``default`` ``None`` with
    ``required`` makes the option mandatory. ``help`` says
    what it is, with its unit.
    """

    name: str
    type: OptionType
    help: str
    default: Any = None
    required: bool = False
    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False
    choices: tuple[Any, ...] = ()

    def accepted(self) -> str:
        """What the option accepts, in words (for error messages)."""
        if self.choices:
            return "one of " + ", ".join(str(c) for c in self.choices)
        if self.type == "text":
            return "a non-empty string"
        if self.type == "texts":
            return "a string or a list of non-empty strings"
        if self.type == "flag":
            return "true or false"
        what = "an integer" if self.type == "integer" else "a number"
        lo, hi = _shown(self.lo), _shown(self.hi)
        if math.isfinite(self.lo) and math.isfinite(self.hi):
            return f"{what} from {lo} to {hi}"
        if math.isfinite(self.lo):
            return f"{what} {'>' if self.lo_open else '>='} {lo}"
        if math.isfinite(self.hi):
            return f"{what} <= {hi}"
        return what

    def read(self, value: object) -> Any:
        """``value`` checked and converted; :class:`DriverConfigError` if it is not accepted."""
        ok: Any = None
        if self.type == "text":
            ok = value if isinstance(value, str) and value.strip() else None
        elif self.type == "texts":
            items = [value] if isinstance(value, str) else value
            if isinstance(items, list) and items and all(_text(x) for x in items):
                ok = tuple(items)
        elif self.type == "flag":
            ok = value if isinstance(value, bool) else None
        elif self.type == "integer":
            number = int(value) if isinstance(value, float) and value.is_integer() else value
            if isinstance(number, int) and not isinstance(number, bool) and self._within(number):
                ok = number
        elif isinstance(value, int | float) and not isinstance(value, bool):
            ok = float(value) if self._within(float(value)) else None
        if ok is None or (self.choices and ok not in self.choices):
            raise DriverConfigError(
                self.name, f"got {self._described(value)}; expected {self.accepted()}"
            )
        return ok

    def _described(self, value: object) -> str:
        """The value when it is of the option's kind (a number out of range, a name not
        offered), else only its kind: a configuration's other contents are not echoed."""
        numeric = self.type in ("number", "integer")
        if numeric and isinstance(value, int | float) and not isinstance(value, bool):
            return _show(value)
        if not numeric and self.type != "flag" and isinstance(value, str):
            return _show(value)
        return kind_of(value)

    def _within(self, value: float) -> bool:
        if math.isnan(value):
            return False
        above = value > self.lo if self.lo_open else value >= self.lo
        return above and value <= self.hi


@dataclass(frozen=True, slots=True)
class DriverKind:
    """A driver offered by name: ``name`` (what ``driver:`` says), ``summary`` (what it
    drives, one line), ``options`` (its connection options) and ``build`` (the driver
    from options read by :meth:`read`; it must not touch the instrument: connecting is
    the instrument actor's job)."""

    name: str
    summary: str
    options: tuple[Option, ...]
    build: Callable[[Mapping[str, Any]], Driver]

    def read(self, entry: Mapping[str, object]) -> dict[str, Any]:
        """Every option from ``entry`` (defaults for those it lacks), checked; keys that
        are not options of this driver are the caller's business."""
        return read_options(self.options, entry)

    def connection(self, options: Mapping[str, Any]) -> str:
        """Where the instrument is (the first text option: a resource, a device file)."""
        first = next((o.name for o in self.options if o.type == "text" and o.required), "")
        return str(options.get(first, "")) if first else ""


def read_options(options: Iterable[Option], entry: Mapping[str, object]) -> dict[str, Any]:
    """Each of ``options`` read from ``entry`` (or its default); the first problem raises
    :class:`DriverConfigError` naming the option."""
    out: dict[str, Any] = {}
    for option in options:
        if option.name in entry:
            out[option.name] = option.read(entry[option.name])
        elif option.required:
            raise DriverConfigError(
                option.name, f"required for this driver; expected {option.accepted()}"
            )
        else:
            out[option.name] = option.default
    return out


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _shown(value: float) -> str:
    return f"{value:g}"


# --- the built-in drivers -------------------------------------------------------------

_BACKENDS = Option(
    "backends",
    "texts",
    "pyvisa backends tried in order: @py (pyvisa-py), @ivi (a vendor VISA library), "
    "FILE.yaml@sim (pyvisa-sim)",
    default=("@py",),
)


def _visa_resource(example: str) -> Option:
    return Option("resource", "text", f"the VISA resource string ({example})", required=True)


def _timeout(default: float) -> Option:
    return Option("timeout", "number", "reply timeout (s)", default=default, lo=0.0, lo_open=True)


def _poll(default: float) -> Option:
    return Option("poll", "number", "pause between fetches while streaming (s)", default, lo=0.0)


def _scpi(options: Mapping[str, Any]) -> Driver:
    from hal.drivers.scpi_potentiostat import ScpiPotentiostat  # noqa: PLC0415

    return ScpiPotentiostat(
        options["resource"],
        backends=options["backends"],
        timeout_s=options["timeout"],
        poll_s=options["poll"],
        max_batch=options["max_batch"],
    )


def _keithley2450(options: Mapping[str, Any]) -> Driver:
    from hal.drivers.keithley2450 import Keithley2450  # noqa: PLC0415

    return Keithley2450(
        options["resource"],
        backends=options["backends"],
        timeout_s=options["timeout"],
        poll_s=options["poll"],
        nplc=options["nplc"],
        four_wire=options["four_wire"],
        max_points=options["max_points"],
    )


def _methodscript(options: Mapping[str, Any]) -> Driver:
    from hal.drivers.methodscript import MethodScriptPotentiostat  # noqa: PLC0415

    return MethodScriptPotentiostat(
        options["port"],
        baudrate=options["baud"],
        timeout_s=options["timeout"],
        poll_s=options["poll"],
    )


SCPI = DriverKind(
    "scpi",
    "any potentiostat speaking Galvana's SCPI dialect over VISA (the simulated one too)",
    (
        _visa_resource("TCPIP0::192.168.1.20::5025::SOCKET"),
        _BACKENDS,
        _timeout(2.0),
        _poll(0.002),
        Option("max_batch", "integer", "most samples one fetch returns", 65536, lo=1, hi=10**7),
    ),
    _scpi,
)
KEITHLEY2450 = DriverKind(
    "keithley2450",
    "a Keithley 2450 SourceMeter as a two-electrode potentiostat, over VISA",
    (
        _visa_resource("TCPIP0::192.168.1.21::5025::SOCKET, USB0::0x05E6::0x2450::...::INSTR"),
        _BACKENDS,
        _timeout(5.0),
        _poll(0.05),
        Option(
            "nplc", "number", "current integration time (power-line cycles)", 0.01, lo=0.01, hi=10
        ),
        Option("four_wire", "flag", "sense leads on working and reference electrodes", False),
        Option("max_points", "integer", "longest source list it holds", 2500, lo=10, hi=10**6),
    ),
    _keithley2450,
)
METHODSCRIPT = DriverKind(
    "methodscript",
    "a PalmSens instrument (EmStat Pico, EmStat4, Sensit) speaking MethodSCRIPT on a serial line",
    (
        Option(
            "port", "text", "the serial device file (/dev/ttyACM0, /dev/ttyUSB0)", required=True
        ),
        Option("baud", "integer", "line speed (baud)", 230400, choices=BAUD_RATES),
        _timeout(2.0),
        _poll(0.005),
    ),
    _methodscript,
)

_BUILT_IN: dict[str, DriverKind] = {k.name: k for k in (SCPI, KEITHLEY2450, METHODSCRIPT)}
_registered: dict[str, DriverKind] = {}
_plugins: dict[str, DriverKind] | None = None
_broken: dict[str, str] = {}  # plug-in name -> why it did not load


def register(kind: DriverKind) -> None:
    """Offer ``kind`` under its name (a name already offered is refused)."""
    if kind.name in driver_kinds():
        raise DriverConfigError("", f"a driver named {kind.name!r} is already offered")
    _registered[kind.name] = kind


def driver_kinds() -> dict[str, DriverKind]:
    """Every driver offered, by name: the built-in ones, registered ones and plug-ins."""
    return {**_BUILT_IN, **_registered, **_load_plugins()}


def driver_kind(name: object, *, also: Iterable[str] = ()) -> DriverKind:
    """The driver named ``name``; :class:`DriverConfigError` listing the offered names
    (``also``: names the caller offers besides, such as the daemon's own ``sim``)."""
    kinds = driver_kinds()
    if isinstance(name, str) and name in kinds:
        return kinds[name]
    if isinstance(name, str) and name in _broken:
        raise DriverConfigError("driver", f"{name!r} did not load: {_broken[name]}")
    offered = ", ".join(sorted({*kinds, *also}))
    raise DriverConfigError("driver", f"got {_show(name)}; accepted: {offered}")


def _load_plugins() -> dict[str, DriverKind]:
    global _plugins  # noqa: PLW0603 - loaded once per process, on first use
    if _plugins is None:
        found: dict[str, DriverKind] = {}
        for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                kind = entry.load()
            except Exception as exc:  # a broken plug-in must not take the others down
                _broken[entry.name] = f"{type(exc).__name__}: {exc}"
                logger.warning("driver plug-in %s did not load: %s", entry.name, exc)
                continue
            if not isinstance(kind, DriverKind) or kind.name != entry.name:
                _broken[entry.name] = f"{entry.value} is not a DriverKind named {entry.name!r}"
                continue
            if kind.name in _BUILT_IN:
                _broken[entry.name] = "a built-in driver has that name"
                continue
            found[kind.name] = kind
        _plugins = found
    return _plugins
