"""The hidden true cell from the physics engine, and `galvana instrument serve`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import physics
from hal.cli import build_model
from hal.driver import Samples, Settings
from hal.drivers.scpi_potentiostat import ScpiPotentiostat
from hal.errors import SimulatorError
from hal.sim import DriftSpec, NoiseSpec, RandlesModel, ScpiServer, SimPotentiostat
from hal.sim.physics_model import DEFAULT_SCENARIO, PhysicsModel
from runtime.waveforms import CyclicVoltammetry

ROOT = Path(__file__).resolve().parents[2]
CV = CyclicVoltammetry(E_start=0.5, vertices=(-0.1,), E_end=0.5, scan_rate=0.2)  # 6 s


@pytest.fixture(scope="module")
def model() -> PhysicsModel:
    return PhysicsModel(DEFAULT_SCENARIO)


def test_the_streamed_current_is_the_physics_engines(model: PhysicsModel) -> None:
    quiet = NoiseSpec(current_rms=0.0, range_rms=0.0, potential_rms=0.0, adc_bits=24)
    sim = SimPotentiostat(model, speed=0, noise=quiet, sample_rate=200.0)
    with ScpiServer(sim, port=0) as server:
        driver = ScpiPotentiostat(server.resource, timeout_s=5.0)
        driver.connect()
        driver.program(CV, Settings(sample_rate=200.0, current_range=1e-4))
        driver.start()
        got = Samples.concat(list(driver.stream()))
        driver.close()
    assert len(got) == 1200
    # The same trace through the physics engine directly, from rest at E_start. The
    # two differ by the reading's 10 uV potential resolution and their grids (the
    # instrument's is sized for any acquisition): within 1e-5 of the peak.
    t = np.concatenate([[0.0], got.t])
    E = np.concatenate([[0.5], got.E])
    truth = physics.simulate_trace(DEFAULT_SCENARIO, t, E).I[1:]
    assert np.max(np.abs(got.I - truth)) < 1e-5 * np.max(np.abs(truth))
    # A reduction wave: cathodic (negative) peak of some microamperes.
    assert -1e-4 < got.I.min() < -1e-6


def test_k0_drifts_through_the_physics_engine(model: PhysicsModel) -> None:
    sim = SimPotentiostat(model, speed=0, sample_rate=100.0, drift=[DriftSpec("kinetics.k0", -0.2)])
    k0 = sim.truth()["kinetics.k0"]
    sim.set_program([0.0, 3.0, 6.0], [0.5, -0.1, 0.5])
    sim.period = 6.0
    sim.initiate()
    sim.fetch(10_000)
    assert k0 * 0.8 <= sim.truth()["kinetics.k0"] <= k0 * 0.8**0.98


def test_drift_that_would_change_the_scales_is_refused(model: PhysicsModel) -> None:
    with pytest.raises(SimulatorError, match="scales"):
        model.set_parameters({"species.O.D": 1e-9})
    with pytest.raises(SimulatorError, match="drift"):
        model.set_parameters({"kinetics.nonsense": 1.0})


def test_serve_defaults_to_the_physics_engine_on_the_example_scenario() -> None:
    assert DEFAULT_SCENARIO == ROOT / "examples" / "simulated-cell.yaml"
    assert isinstance(build_model(None, "auto"), PhysicsModel)
    assert isinstance(build_model(None, "randles"), RandlesModel)
    with pytest.raises(SimulatorError, match="--scenario"):
        build_model("x.yaml", "randles")
    with pytest.raises(SimulatorError, match="nope.yaml"):
        build_model(str(ROOT / "nope.yaml"), "physics")


def test_galvana_instrument_serve_on_a_real_port() -> None:
    argv = ["instrument", "serve", "--port", "0", "--speed", "0", "--drift", "kinetics.k0=-0.03"]
    main = "import sys; from runtime.cli import main; sys.exit(main())"
    with subprocess.Popen(
        [sys.executable, "-c", main, *argv], stdout=subprocess.PIPE, text=True, cwd=ROOT
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert "listening on 127.0.0.1:" in line
            resource = line.rsplit("(", 1)[1].rstrip(")\n")
            driver = ScpiPotentiostat(resource, timeout_s=10.0)
            driver.connect()
            assert driver.identify().model == "SimPotentiostat"
            assert float(driver.query('SIM:TRUTH? "kinetics.k0"')) == pytest.approx(1e-4)
            driver.close()
        finally:
            proc.terminate()
