"""``galvana daemon``: the daemon (:mod:`runtime.daemon`) hosting Galvana's actor tree.

The tree (ARCHITECTURE.md)::

    root (one_for_one)
    +-- recorder      permanent   sole writer of the event and field stores
    +-- instruments   one_for_one the instrument actors of the configuration
    +-- runs          one_for_one the runs (dynamic children)
    +-- api           permanent   the actor message API (trio, in a thread)
    +-- http          permanent   the HTTP gateway (when the configuration has http:)

:func:`tree` assembles it from the concrete actors of ``actors``: the services they
share, the instruments of the configuration (the simulated ones served by the daemon
itself), the run procedures, and the API with its urgent routes. A further child of
the root is one more entry in its ``children``.
"""

from __future__ import annotations

import argparse
import os
from functools import partial
from importlib import metadata

from actors.api import ApiActor
from actors.instruments import (
    EmergencyStop,
    Instruments,
    SimulatorPark,
    build_instruments,
    parse_instruments,
)
from actors.recorder import Recorder
from actors.run_limits import parse_run_limits
from actors.runs import RunAbort, Runs, acquire_procedure, replay_procedure
from actors.services import Services
from physics.errors import PhysicsError
from runtime import daemon
from runtime.api import ApiConfig
from runtime.daemon import DaemonError, Host
from runtime.errors import GalvanaError
from runtime.executor import ExecutorSettings
from runtime.supervisor import ChildSpec, SupervisorSpec

__all__ = ["configure", "run", "tree"]

configure = daemon.configure


def run(args: argparse.Namespace) -> int:
    """Start the daemon in the foreground; SIGTERM or SIGINT stops it cleanly."""
    return daemon.run(args, tree)


def tree(host: Host, park: SimulatorPark | None = None) -> SupervisorSpec:
    """The daemon's actor tree on ``host`` (see the module docstring); a configuration
    the actors refuse is a :class:`~runtime.daemon.DaemonError` naming it.

    The simulated potentiostats of the configuration are served from ``park``: by
    default a new one, which ``host`` closes after the tree has stopped; a caller that
    gives its own (to reach the simulators, in a test) closes it.
    """
    config, store, bus = host.config, host.store, host.bus
    if park is None:
        park = SimulatorPark()
        host.resources.callback(park.close)
    services = Services(store, bus, paths=config.readable())
    services.procedures["replay"] = partial(replay_procedure, store=store)
    services.procedures["acquire"] = partial(acquire_procedure, services=services)
    try:
        services.limits = parse_run_limits(config.run_limits)
        services.executor = ExecutorSettings.parse(config.executor)
        setups = parse_instruments(config.instruments, config.config_dir)
        instruments, interlocks, described = build_instruments(
            setups, park, stall_timeout_s=config.stall_timeout_s
        )
    except (GalvanaError, PhysicsError) as exc:
        raise DaemonError(f"{config.source}: {exc}") from None
    services.interlocks.update(interlocks)
    services.truth = park.truth
    api = ApiConfig(
        socket_path=config.socket,
        tcp=config.tcp,
        token=config.token,
        admin_token=config.admin_token,
    )
    info = {"version": metadata.version("galvana"), "data": str(config.data), "pid": os.getpid()}
    # The emergency stop, and a run's abort, are served by the API server itself, on
    # threads of its own, straight through the interlocks: no mailbox and no other client
    # in the way of the cell going off.
    urgent = {
        ("instruments", "estop"): EmergencyStop(interlocks),
        ("runs", "abort"): RunAbort(services),
    }
    gateway: tuple[ChildSpec, ...] = ()
    if config.http is not None:
        # The web stack (hypercorn, Starlette, GraphQL) loads only for a daemon that serves it.
        from actors.gateway import GatewayActor  # noqa: PLC0415
        from runtime.api_keys import KEY_FILE  # noqa: PLC0415
        from runtime.http import GatewayConfig  # noqa: PLC0415

        # The socket API's limits, for both front ends.
        http = GatewayConfig(
            host=config.http[0],
            port=config.http[1],
            call_timeout_s=api.call_timeout_s,
            max_threads=api.max_threads,
            max_calls_per_key=api.max_calls_in_flight,
            urgent_threads=api.urgent_threads,
            **(config.http_options or {}),  # type: ignore[arg-type]
        )
        keys = config.data / KEY_FILE
        gateway = (
            ChildSpec("http", GatewayActor, (http, bus, store, keys, urgent), shutdown_s=15),
        )
    # In start order; the root stops them in reverse.
    children = (
        ChildSpec("recorder", Recorder, (store, host.fields, bus, services), shutdown_s=60),
        ChildSpec(
            "instruments",
            Instruments,
            (SupervisorSpec(children=instruments),),
            {"interlocks": interlocks, "services": services, "described": described},
            shutdown_s=None,
        ),
        ChildSpec(
            "runs",
            Runs,
            (SupervisorSpec(max_restarts=10, max_seconds=60),),
            {"services": services},
            shutdown_s=None,
        ),
        ChildSpec("api", ApiActor, (api, bus, info, urgent), shutdown_s=15),
        *gateway,
    )
    return SupervisorSpec(strategy="one_for_one", max_restarts=5, max_seconds=30, children=children)
