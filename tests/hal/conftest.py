"""Fixtures: a simulated potentiostat on a real loopback socket, and a driver on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hal.drivers.scpi_potentiostat import ScpiPotentiostat
from hal.sim import RandlesModel, ScpiServer, SimPotentiostat


@pytest.fixture
def sim() -> SimPotentiostat:
    """An unpaced simulated potentiostat: every sample is ready as soon as it is fetched."""
    return SimPotentiostat(RandlesModel(), speed=0, seed=1)


@pytest.fixture
def server(sim: SimPotentiostat) -> Iterator[ScpiServer]:
    with ScpiServer(sim, port=0) as srv:
        yield srv


@pytest.fixture
def driver(server: ScpiServer) -> Iterator[ScpiPotentiostat]:
    drv = ScpiPotentiostat(server.resource, timeout_s=0.5, poll_s=0.001)
    drv.connect()
    yield drv
    drv.close()
