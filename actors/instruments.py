"""The instruments supervisor: one instrument actor per configured instrument.

The daemon's configuration lists the instruments (``instruments:`` in ``--config``);
without one it has a single simulated potentiostat, ``sim``. A ``resource: sim``
instrument is the simulated potentiostat served by the daemon itself on a free
loopback port and driven through pyvisa like any SCPI instrument, so a twin run on
``sim`` exercises the whole stack.

``estop`` turns cells off straight through each instrument's interlock: it never
waits in an instrument actor's mailbox. Over the API it does not wait in this
supervisor's mailbox either: the daemon gives the API server an
:class:`EmergencyStop` over the same interlocks as an urgent route, run on threads
reserved for it (``runtime.api.server``), so no busy actor and no other client can
delay it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pykka

from actors.instrument import InstrumentActor, InstrumentClient, InstrumentConfig
from actors.services import Services
from hal.driver import Driver
from hal.drivers.scpi_potentiostat import ScpiPotentiostat
from hal.errors import HalError
from hal.safety import Interlock, SafetyLimits
from runtime.actor import ADMIN_SCOPE, OPERATE_SCOPE, exposed
from runtime.documents import kind_of
from runtime.errors import CallError, GalvanaError
from runtime.supervisor import ChildSpec, Supervisor, SupervisorSpec

__all__ = [
    "EmergencyStop",
    "InstrumentSetup",
    "Instruments",
    "SimulatorPark",
    "parse_instruments",
]

logger = logging.getLogger("galvana.instruments")

DEFAULT_LIMITS = {"E_min": -2.0, "E_max": 2.0, "I_max": 0.1, "scan_rate_max": 10.0}


class InstrumentSetupError(GalvanaError):
    """An ``instruments:`` entry of the daemon configuration is wrong."""


@dataclass(frozen=True, slots=True)
class InstrumentSetup:
    """One configured instrument.

    ``resource``: ``sim`` or a VISA resource string; ``limits``: its compliance
    limits (V, A, V/s). For ``sim``: the hidden true ``scenario`` (a physics scenario
    file; default: the simulated cell), parameter ``drift`` per cycle
    (``kinetics.k0=-0.03``), real-time ``speed`` factor, noise ``seed``, and how long
    (instrument s) the cell must sit off to be back at rest (``relax``; until then an
    acquisition carries on from where the last one left the cell).
    """

    id: str
    resource: str = "sim"
    limits: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    scenario: str | None = None
    drift: tuple[str, ...] = ()
    speed: float = 1.0
    seed: int = 0
    relax: float = 10.0


_KEYS = {"id", "resource", "limits", "scenario", "drift", "speed", "seed", "relax"}
_LIMIT_KEYS = ("E_min", "E_max", "I_max", "scan_rate_max", "E_margin")


def parse_instruments(entries: object, base: Path) -> list[InstrumentSetup]:
    """The ``instruments:`` list of a configuration (relative paths from ``base``).

    Every key's type and value is checked; a bad one raises
    :class:`InstrumentSetupError` naming it (``instruments[0].limits.I_max: ...``).
    """
    if entries is None:
        return [InstrumentSetup("sim")]
    if not isinstance(entries, list):
        raise InstrumentSetupError(
            f"instruments: got {kind_of(entries)}; expected a list of instruments "
            "(maps with id, resource, limits, ...)"
        )
    out: list[InstrumentSetup] = []
    for i, entry in enumerate(entries):
        where = f"instruments[{i}]"
        if not isinstance(entry, dict):
            raise InstrumentSetupError(f"{where}: got {kind_of(entry)}; expected a map")
        unknown = set(entry) - _KEYS
        if unknown:
            raise InstrumentSetupError(
                f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                f"accepted: {', '.join(sorted(_KEYS))}"
            )
        if not isinstance(entry.get("id"), str):
            raise InstrumentSetupError(f"{where}.id: expected a name such as sim or potentiostat-1")
        scenario = _text(where, entry, "scenario", None)
        out.append(
            InstrumentSetup(
                id=entry["id"],
                resource=_text(where, entry, "resource", "sim") or "sim",
                limits=_limits(where, entry.get("limits")),
                scenario=str(base / scenario) if scenario else None,
                drift=_drift(where, entry.get("drift")),
                speed=_number(where, entry, "speed", 1.0, "a real-time factor >= 0 (0: unpaced)"),
                seed=_seed(where, entry.get("seed", 0)),
                relax=_relax(where, entry.get("relax", 10.0)),
            )
        )
    ids = [s.id for s in out]
    if len(set(ids)) != len(ids):
        raise InstrumentSetupError(f"instruments: ids must be unique, got {ids}")
    return out


def _text(where: str, entry: dict[str, Any], key: str, default: str | None) -> str | None:
    value = entry.get(key, default)
    if value is not None and not (isinstance(value, str) and value.strip()):
        raise InstrumentSetupError(f"{where}.{key}: got {kind_of(value)}; expected a string")
    return value


def _number(where: str, entry: dict[str, Any], key: str, default: float, accepted: str) -> float:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise InstrumentSetupError(f"{where}.{key}: got {kind_of(value)}; expected {accepted}")
    return float(value)


def _seed(where: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InstrumentSetupError(f"{where}.seed: got {kind_of(value)}; expected an integer >= 0")
    return value


def _limits(where: str, value: object) -> dict[str, float]:
    limits: dict[str, float] = dict(DEFAULT_LIMITS)
    if value is None:
        return limits
    accepted = ", ".join(_LIMIT_KEYS)
    if not isinstance(value, dict):
        raise InstrumentSetupError(
            f"{where}.limits: got {kind_of(value)}; expected a map of {accepted} to numbers"
        )
    for key, number in value.items():
        if key not in _LIMIT_KEYS:
            raise InstrumentSetupError(f"{where}.limits.{key}: unknown limit; accepted: {accepted}")
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise InstrumentSetupError(
                f"{where}.limits.{key}: got {kind_of(number)}; expected a number (SI: V, A, V/s)"
            )
        limits[key] = float(number)
    return limits


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


def _relax(where: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise InstrumentSetupError(
            f"{where}.relax: {value!r} is not accepted; expected seconds >= 0 (.inf: never)"
        )
    return float(value)


class SimulatorPark:
    """The simulated potentiostats the daemon serves itself; closed at shutdown."""

    def __init__(self) -> None:
        self._servers: list[Any] = []
        self._instruments: dict[str, Any] = {}  # id -> SimPotentiostat

    def serve(self, setup: InstrumentSetup) -> str:
        """Start a simulated potentiostat for ``setup``; returns its VISA resource."""
        from hal.cli import build_model  # noqa: PLC0415 - physics loads only when a sim is used
        from hal.sim.potentiostat import DriftSpec, SimPotentiostat  # noqa: PLC0415
        from hal.sim.server import ScpiServer  # noqa: PLC0415

        instrument = SimPotentiostat(
            build_model(setup.scenario, "auto"),
            drift=[DriftSpec.parse(d) for d in setup.drift],
            speed=setup.speed,
            seed=setup.seed,
            relax_s=setup.relax,
        )
        server = ScpiServer(instrument, port=0).start()
        self._servers.append(server)
        self._instruments[setup.id] = instrument
        return str(server.resource)

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
    setups: list[InstrumentSetup], park: SimulatorPark
) -> tuple[tuple[ChildSpec, ...], dict[str, Interlock]]:
    """The instrument actors' child specs and their interlocks (which outlive restarts)."""
    children: list[ChildSpec] = []
    interlocks: dict[str, Interlock] = {}
    for setup in setups:
        resource = park.serve(setup) if setup.resource == "sim" else setup.resource
        driver: Driver = ScpiPotentiostat(resource)
        try:
            interlock = Interlock(driver, SafetyLimits(**setup.limits))  # type: ignore[arg-type]
        except (HalError, TypeError) as exc:
            raise InstrumentSetupError(f"instrument {setup.id}: limits: {exc}") from None
        interlocks[setup.id] = interlock
        config = InstrumentConfig(setup.id, interlock)
        children.append(ChildSpec(setup.id, InstrumentActor, (config,), shutdown_s=10.0))
    return tuple(children), interlocks


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
        self, spec: SupervisorSpec, *, interlocks: dict[str, Interlock], services: Services
    ) -> None:
        super().__init__(spec)
        self.interlocks = interlocks
        self.services = services

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
        """Each instrument's state, link, samples and trip."""
        out = []
        for instrument_id in self.interlocks:
            try:
                status = self.client(instrument_id).status(timeout=5)
                out.append(
                    {
                        "id": instrument_id,
                        "state": status.state,
                        "link_up": status.link_up,
                        "run": status.run_id,
                        "identity": status.identity,
                        "samples": status.samples,
                        "trip": status.trip.detail if status.trip is not None else "",
                    }
                )
            except (CallError, pykka.Timeout, pykka.ActorDeadError) as exc:
                out.append({"id": instrument_id, "state": "unavailable", "error": str(exc)})
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
