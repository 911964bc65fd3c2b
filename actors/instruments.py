"""The instruments supervisor: one instrument actor per configured instrument.

The daemon's configuration lists the instruments (``instruments:`` in ``--config``);
without one it has a single simulated potentiostat, ``sim``. Each entry names its
``driver:``: ``sim`` (the default), the simulated potentiostat served by the daemon
itself on a free loopback port and driven through pyvisa like any SCPI instrument, so
a twin run on ``sim`` exercises the whole stack; or a driver of
:mod:`hal.drivers.registry` (``scpi``, ``keithley2450``, ``methodscript``, and any
plug-in) with its connection options. An entry with a ``resource:`` and no
``driver:`` is a ``scpi`` instrument.

``estop`` turns cells off straight through each instrument's interlock: it never
waits in an instrument actor's mailbox. Over the API it does not wait in this
supervisor's mailbox either: the daemon gives the API server an
:class:`EmergencyStop` over the same interlocks as an urgent route, run on threads
reserved for it (``runtime.api.server``), so no busy actor and no other client can
delay it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import msgspec
import pykka

from actors.instrument import InstrumentActor, InstrumentClient, InstrumentConfig
from actors.services import Services
from hal.driver import Driver
from hal.drivers.registry import Option, driver_kind, driver_kinds, read_options
from hal.drivers.scpi_potentiostat import ScpiPotentiostat
from hal.errors import DriverConfigError, HalError
from hal.safety import Interlock, SafetyLimits
from runtime.actor import ADMIN_SCOPE, OPERATE_SCOPE, exposed
from runtime.documents import kind_of
from runtime.errors import CallError, GalvanaError
from runtime.schema import (
    UNSET,
    Describe,
    Document,
    Invalid,
    UnsetType,
    decode,
    hidden_values,
    listed,
)
from runtime.supervisor import ChildSpec, Supervisor, SupervisorSpec

__all__ = [
    "SIM_OPTIONS",
    "EmergencyStop",
    "InstrumentLimits",
    "InstrumentSetup",
    "InstrumentSetupError",
    "Instruments",
    "SimulatorPark",
    "build_instruments",
    "parse_instruments",
]

logger = logging.getLogger("galvana.instruments")

DEFAULT_LIMITS = {"E_min": -2.0, "E_max": 2.0, "I_max": 0.1, "scan_rate_max": 10.0}

SIM = "sim"
"""The driver name of the simulated potentiostat the daemon serves itself."""

SIM_OPTIONS: tuple[Option, ...] = (
    Option("scenario", "text", "the hidden true cell, a physics scenario file", default=None),
    Option("speed", "number", "instrument seconds per wall second (0: unpaced)", 1.0, lo=0.0),
    Option("seed", "integer", "noise seed", 0, lo=0),
    Option("relax", "number", "seconds off before the cell is back at rest (.inf)", 10.0, lo=0),
)
"""The simulated potentiostat's options (besides ``drift``, a map of parameter to
fraction per cycle)."""

_COMMON = ("id", "driver", "limits")


class InstrumentSetupError(GalvanaError):
    """An ``instruments:`` entry of the daemon configuration is wrong."""


@dataclass(frozen=True, slots=True)
class InstrumentSetup:
    """One configured instrument.

    ``driver``: ``sim`` or a name of :func:`hal.drivers.registry.driver_kinds`;
    ``options``: its checked options (for ``sim``: the hidden true ``scenario``, a
    physics scenario file, default the simulated cell; parameter ``drift`` per cycle
    (``kinetics.k0=-0.03``); real-time ``speed`` factor; noise ``seed``; how long
    (instrument s) the cell must sit off to be back at rest, ``relax``; until then an
    acquisition carries on from where the last one left the cell); ``limits``: its
    compliance limits (V, A, V/s).
    """

    id: str
    driver: str = SIM
    options: Mapping[str, Any] = field(
        default_factory=lambda: {**read_options(SIM_OPTIONS, {}), "drift": ()}
    )
    limits: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_LIMITS))


def parse_instruments(entries: object, base: Path) -> list[InstrumentSetup]:
    """The ``instruments:`` list of a configuration (relative paths from ``base``).

    Every key is checked against the entry's driver; the first problem raises
    :class:`InstrumentSetupError` naming it (``instruments[0].timeout: ...``).
    """
    if entries is None:
        return [InstrumentSetup("sim")]
    if not isinstance(entries, list):
        raise InstrumentSetupError(
            f"instruments: got {kind_of(entries)}; expected a list of instruments "
            "(maps with id, driver, limits, ...)"
        )
    out = [_entry(f"instruments[{i}]", entry, base) for i, entry in enumerate(entries)]
    ids = [s.id for s in out]
    if len(set(ids)) != len(ids):
        raise InstrumentSetupError(f"instruments: ids must be unique, got {ids}")
    return out


def _entry(where: str, entry: object, base: Path) -> InstrumentSetup:
    if not isinstance(entry, dict):
        raise InstrumentSetupError(f"{where}: got {kind_of(entry)}; expected a map")
    if not isinstance(entry.get("id"), str):
        raise InstrumentSetupError(f"{where}.id: expected a name such as sim or potentiostat-1")
    entry = dict(entry)
    if "driver" not in entry:
        # Before drivers had names, a resource meant SCPI and `resource: sim` the simulator.
        resource = entry.get("resource", SIM)
        entry["driver"] = SIM if resource == SIM else "scpi"
        if resource == SIM:
            entry.pop("resource", None)
    name = entry["driver"]
    try:
        if name == SIM:
            keys = (*_COMMON, "drift", *(o.name for o in SIM_OPTIONS))
            _refuse_unknown(where, entry, keys, name)
            options = read_options(SIM_OPTIONS, entry)
            if options["scenario"] is not None:
                options["scenario"] = str(base / options["scenario"])
            options["drift"] = _drift(where, entry.get("drift"))
        else:
            kind = driver_kind(name, also=(SIM,))
            _refuse_unknown(where, entry, (*_COMMON, *(o.name for o in kind.options)), name)
            options = kind.read(entry)
    except DriverConfigError as exc:
        raise InstrumentSetupError(f"{where}.{exc}") from None
    return InstrumentSetup(entry["id"], name, options, _limits(where, entry.get("limits")))


def _refuse_unknown(
    where: str, entry: Mapping[str, object], keys: tuple[str, ...], name: str
) -> None:
    unknown = set(entry) - set(keys)
    if unknown:
        raise InstrumentSetupError(
            f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
            f"accepted for driver {name}: {', '.join(sorted(keys))}"
        )


_SI = Describe("a number (SI: V, A, V/s)")


class InstrumentLimits(Document):
    """An instrument's ``limits:``, its compliance (V, A, V/s; see
    :class:`hal.safety.SafetyLimits`, which checks them together)."""

    wording = "expected"

    E_min: Annotated[float, _SI] = DEFAULT_LIMITS["E_min"]
    E_max: Annotated[float, _SI] = DEFAULT_LIMITS["E_max"]
    I_max: Annotated[float, _SI] = DEFAULT_LIMITS["I_max"]
    scan_rate_max: Annotated[float, _SI] = DEFAULT_LIMITS["scan_rate_max"]
    E_margin: Annotated[float | UnsetType, _SI] = UNSET

    @classmethod
    def refuse_unknown(cls, unknown: Sequence[str]) -> Invalid:
        return Invalid(unknown[0], f"unknown limit; accepted: {listed(cls.keys())}")

    def given(self) -> dict[str, float]:
        """The limits, by name (``E_margin`` only when given)."""
        out = msgspec.structs.asdict(self)
        return {k: float(v) for k, v in out.items() if v is not UNSET}


InstrumentLimits.described = f"a map of {listed(InstrumentLimits.keys())} to numbers (SI)"


def _limits(where: str, value: object) -> dict[str, float]:
    if value is None:
        return dict(DEFAULT_LIMITS)

    def error(key: str, message: str) -> InstrumentSetupError:
        return InstrumentSetupError(f"{where}.{key}: {message}")

    with hidden_values():  # the daemon's configuration is never quoted
        return decode(value, InstrumentLimits, error=error, root="limits", path="limits").given()


def _drift(where: str, value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, dict):
        value = [f"{k}={v}" for k, v in value.items()]
    if not isinstance(value, list) or not all(isinstance(d, str) for d in value):
        raise InstrumentSetupError(
            f"{where}.drift: got {kind_of(value)}; expected a map such as {{kinetics.k0: -0.03}} "
            "or a list of NAME=FRACTION strings"
        )
    return tuple(value)


class SimulatorPark:
    """The simulated potentiostats the daemon serves itself; closed at shutdown."""

    def __init__(self) -> None:
        self._servers: list[Any] = []
        self._instruments: dict[str, Any] = {}  # id -> SimPotentiostat

    def serve(self, setup: InstrumentSetup) -> str:
        """Start a simulated potentiostat for ``setup``; returns its VISA resource."""
        from actors.sim_cell import build_model  # noqa: PLC0415 - physics only for a sim
        from hal.sim.potentiostat import DriftSpec, SimPotentiostat  # noqa: PLC0415
        from hal.sim.server import ScpiServer  # noqa: PLC0415

        options = setup.options
        instrument = SimPotentiostat(
            build_model(options["scenario"], "auto"),
            drift=[DriftSpec.parse(d) for d in options["drift"]],
            speed=options["speed"],
            seed=options["seed"],
            relax_s=options["relax"],
        )
        server = ScpiServer(instrument, port=0).start()
        self._servers.append(server)
        self._instruments[setup.id] = instrument
        return str(server.resource)

    def simulator(self, instrument_id: str) -> Any:
        """The simulated potentiostat (``hal.sim.SimPotentiostat``) serving ``instrument_id``,
        None for an instrument that is not simulated: its output shows whether the cell is on."""
        return self._instruments.get(instrument_id)

    def truth(self, instrument_id: str) -> dict[str, float] | None:
        """The simulated cell's parameters now (None for an instrument that is not simulated)."""
        instrument = self._instruments.get(instrument_id)
        return None if instrument is None else dict(instrument.model.parameters())

    def close(self) -> None:
        """Stop every simulated potentiostat."""
        for server in self._servers:
            try:
                server.close()
            except Exception:
                logger.exception("closing a simulated potentiostat failed")
        self._servers.clear()


def build_instruments(
    setups: list[InstrumentSetup], park: SimulatorPark, *, stall_timeout_s: float = 2.0
) -> tuple[tuple[ChildSpec, ...], dict[str, Interlock], dict[str, dict[str, str]]]:
    """The instrument actors' child specs, their interlocks (which outlive restarts) and
    what each is (``{"driver", "connection"}``, for listings). ``stall_timeout_s``: how
    long (s) a stream may bring no sample before its watchdog calls it stalled (the
    configuration's ``stall_timeout_s``)."""
    children: list[ChildSpec] = []
    interlocks: dict[str, Interlock] = {}
    described: dict[str, dict[str, str]] = {}
    for setup in setups:
        driver: Driver
        if setup.driver == SIM:
            resource = park.serve(setup)
            driver = ScpiPotentiostat(resource)
            connection = f"served by the daemon at {resource}"
        else:
            kind = driver_kinds()[setup.driver]
            driver = kind.build(setup.options)
            connection = kind.connection(setup.options)
        try:
            interlock = Interlock(driver, SafetyLimits(**setup.limits))  # type: ignore[arg-type]
        except (HalError, TypeError) as exc:
            raise InstrumentSetupError(f"instrument {setup.id}: limits: {exc}") from None
        interlocks[setup.id] = interlock
        described[setup.id] = {"driver": setup.driver, "connection": connection}
        config = InstrumentConfig(setup.id, interlock, stall_timeout_s=stall_timeout_s)
        children.append(ChildSpec(setup.id, InstrumentActor, (config,), shutdown_s=10.0))
    return tuple(children), interlocks, described


class EmergencyStop:
    """Turns cells off through the interlocks, in the calling thread, from any state.

    What ``instruments.estop`` does, callable from any thread: the API server runs it
    on its reserved threads. Idempotent; each call cuts the cell again.
    """

    def __init__(self, interlocks: dict[str, Interlock]) -> None:
        self.interlocks = interlocks

    def __call__(
        self, instrument_id: str | None = None, reason: str = "emergency stop"
    ) -> list[dict[str, Any]]:
        """Cell off on ``instrument_id`` (None: every instrument); one entry per instrument
        with ``cell_off`` (confirmed by the instrument) and the trip's detail."""
        if instrument_id is not None and instrument_id not in self.interlocks:
            known = ", ".join(sorted(self.interlocks)) or "none"
            raise CallError("not_found", f"no instrument {instrument_id!r}; configured: {known}")
        chosen = [instrument_id] if instrument_id is not None else list(self.interlocks)
        out = []
        for name in chosen:
            trip = self.interlocks[name].emergency_stop(reason)
            out.append({"instrument": name, "cell_off": trip.cell_off, "detail": trip.detail})
        return out


class Instruments(Supervisor):
    """Supervises the instrument actors; finds them for runs; emergency stop for all."""

    def __init__(
        self,
        spec: SupervisorSpec,
        *,
        interlocks: dict[str, Interlock],
        services: Services,
        described: dict[str, dict[str, str]] | None = None,
    ) -> None:
        super().__init__(spec)
        self.interlocks = interlocks
        self.services = services
        self.described = described or {}

    def on_start(self) -> None:
        super().on_start()
        self.services.instruments = self.actor_ref

    def client(self, instrument_id: str) -> InstrumentClient:
        """A client of the running instrument ``instrument_id`` (its current incarnation)."""
        child = self._find(instrument_id)
        if child is None:
            known = ", ".join(sorted(self.interlocks)) or "none"
            raise CallError("not_found", f"no instrument {instrument_id!r}; configured: {known}")
        if child.ref is None:
            raise CallError("unavailable", f"instrument {instrument_id} is {child.state}")
        return InstrumentClient(child.ref, self.interlocks[instrument_id])

    @exposed(name="list")
    def list_instruments(self) -> list[dict[str, Any]]:
        """Each instrument: its driver and connection, state, link (``up``/``down``),
        interlock (``ok``, ``latched``, ``latched, cell-off unconfirmed``), the trip that
        latched it, samples, identity."""
        out = []
        for instrument_id, interlock in self.interlocks.items():
            item: dict[str, Any] = {"id": instrument_id, **self.described.get(instrument_id, {})}
            trip = interlock.trip_record
            item["interlock"] = (
                "ok"
                if trip is None
                else "latched" + ("" if interlock.cell_off_confirmed else ", cell-off unconfirmed")
            )
            item["trip"] = "" if trip is None else f"{trip.limit}: {trip.detail}"
            item["limits"] = {
                name: getattr(interlock.limits, name) for name in ("E_min", "E_max", "I_max")
            }
            try:
                status = self.client(instrument_id).status(timeout=5)
            except (CallError, pykka.Timeout, pykka.ActorDeadError) as exc:
                item.update(state="unavailable", link="down", link_up=False, error=str(exc))
                out.append(item)
                continue
            item.update(
                state=status.state,
                link="up" if status.link_up else "down",
                link_up=status.link_up,
                run=status.run_id,
                identity=status.identity,
                samples=status.samples,
            )
            out.append(item)
        return out

    @exposed(scope=OPERATE_SCOPE)
    def estop(
        self, instrument_id: str | None = None, reason: str = "emergency stop"
    ) -> list[dict[str, Any]]:
        """Turn the cell off at once (one instrument, or all); idempotent, from any state.
        (Over the API the daemon serves this without this actor: see :class:`EmergencyStop`.)"""
        return EmergencyStop(self.interlocks)(instrument_id, reason)

    @exposed(scope=ADMIN_SCOPE)
    def reset(self, instrument_id: str) -> dict[str, Any]:
        """Unlatch an instrument's interlock after a trip was dealt with."""
        try:
            self.client(instrument_id).reset_interlock(timeout=10)
        except HalError as exc:
            raise CallError("conflict", str(exc)) from None
        return {"instrument": instrument_id, "latched": self.interlocks[instrument_id].latched}
