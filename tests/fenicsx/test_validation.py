"""The 2D engine against theory and against the numba engine, in the real DOLFINx worker.

Small meshes and few steps: the whole module takes about a minute on two cores.
"""

from __future__ import annotations

import io
import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import physics
from physics.engines import fenicsx
from physics.engines.fenicsx import _launcher
from runtime.constants import FARADAY
from tests.fenicsx.conftest import disk_doc, requires_dolfinx

pytestmark = requires_dolfinx

D = 1.0e-9  # m^2/s
C = 1.0  # mol/m^3
A = 5.0e-6  # m, disk radius
SAITO = 4 * FARADAY * D * C * A  # A, steady-state current at an inlaid disk (n = 1)


def _steady_state_doc(duration: float = 1000.0) -> dict[str, Any]:
    # A diffusion-limited step held for 1.6e5 a^2/(4D): within 0.2 % of steady state.
    # Coarse time steps: only the end matters, and BDF2 reaches it unconditionally.
    return disk_doc(
        waveform={"type": "ca", "E_initial": 0.5, "steps": [{"E": -0.5, "duration": duration}]},
        numerics={"refine": 0.25},
    )


@pytest.fixture(scope="module")
def disk_steady_state() -> dict[float, fenicsx.FieldResult]:
    """The steady-state disk on three meshes, each twice as fine as the one before."""
    scenario = physics.load_scenario(_steady_state_doc())
    return {r: fenicsx.simulate_fields(scenario, mesh_refine=r) for r in (0.5, 1.0, 2.0)}


def _shoup_szabo_long_time(t: float) -> float:
    """I(t)/I_ss at a disk for long times (Shoup and Szabo 1982): 1 + 0.71835 tau^-1/2."""
    tau = 4 * D * t / A**2
    return 1 + 0.71835 / math.sqrt(tau)


def test_steady_state_current_at_an_inlaid_disk_is_saitos(
    disk_steady_state: dict[float, fenicsx.FieldResult],
) -> None:
    result = disk_steady_state[1.0].result  # the default mesh
    current = -result.I[-1]  # a reduction: cathodic, negative
    assert current / SAITO == pytest.approx(1.0, abs=0.01)
    # Closer still once the remaining transient (0.18 %) is accounted for.
    expected = SAITO * _shoup_szabo_long_time(float(result.t[-1]))
    assert current / expected == pytest.approx(1.0, abs=0.005)


def test_the_disk_current_converges_with_the_mesh(
    disk_steady_state: dict[float, fenicsx.FieldResult],
) -> None:
    t_end = float(disk_steady_state[1.0].result.t[-1])
    expected = SAITO * _shoup_szabo_long_time(t_end)
    errors = {r: -fr.result.I[-1] / expected - 1 for r, fr in disk_steady_state.items()}
    dofs = {r: fr.mesh.dofs for r, fr in disk_steady_state.items()}
    assert dofs[0.5] < dofs[1.0] < dofs[2.0]
    # The edge singularity limits P1 elements to first order: each halving of the
    # cell sizes about halves the error, which shrinks towards zero from above.
    assert errors[0.5] > errors[1.0] > errors[2.0] > 0
    assert errors[0.5] / errors[2.0] > 2.5
    assert errors[2.0] < 0.002


@pytest.mark.parametrize(
    "kinetics",
    [
        {"model": "nernst", "E0": 0.0},
        {"model": "butler-volmer", "E0": 0.0, "k0": 1.0e-5, "alpha": 0.4},
    ],
    ids=["nernst", "butler-volmer"],
)
def test_planar_electrode_matches_the_numba_engine_along_a_whole_cv(
    kinetics: dict[str, Any],
) -> None:
    doc = {
        "name": "planar",
        "engine": "fenicsx",
        "mechanism": "E",
        "species": {"O": {"D": 1.0e-9, "c_bulk": 1.0}, "R": {"D": 2.0e-9, "c_bulk": 0.0}},
        "kinetics": kinetics,
        "electrode": {"geometry": "planar", "area": 1.0e-6},
        "waveform": {"type": "cv", "E_start": 0.4, "E_vertex": -0.4, "scan_rate": 0.1},
        "numerics": {"potential_step": 2.0e-3},
    }
    fem = physics.simulate(doc)  # engine fenicsx, through the public API
    ref = physics.simulate({**doc, "engine": "numba"})
    assert fem.t.shape == ref.t.shape
    np.testing.assert_array_equal(fem.t, ref.t)  # the same time steps
    deviation = np.abs(fem.I - ref.I).max() / np.abs(ref.I).max()
    assert deviation < 0.005
    assert fem.I.min() < 0 < fem.I.max()  # a reduction wave, then the reoxidation


@pytest.mark.parametrize(
    "electrode",
    [{"geometry": "disk", "radius": 5.0e-6}, {"geometry": "planar", "area": 1.0e-6}],
    ids=["disk (monopole far boundary)", "planar (Dirichlet far boundary)"],
)
def test_the_mass_balance_closes_in_2d(electrode: dict[str, Any]) -> None:
    doc = disk_doc(electrode=electrode, numerics={"potential_step": 1.0e-2})
    done = fenicsx.simulate_fields(physics.load_scenario(doc), mesh_refine=0.5).done
    balance = done.balance
    assert balance is not None  # the worker evaluated it
    assert balance.species == ("O", "R")
    assert balance.charge < 0  # a reduction wave, then a partial reoxidation
    # The amounts changed by what the charge says, plus what the far boundary let in,
    # to the direct solver's rounding.
    assert balance.max_relative_error < 1e-6, balance
    np.testing.assert_allclose(balance.expected[0], -balance.expected[1])


@pytest.fixture(scope="module")
def disk_cv_ranks() -> dict[int, fenicsx.FieldResult]:
    """A quasi-reversible CV at the disk, on 1 and on 2 MPI ranks, with 2 snapshots."""
    doc = disk_doc(
        kinetics={"model": "butler-volmer", "E0": 0.0, "k0": 1.0e-4},
        numerics={"potential_step": 1.0e-2},
    )
    scenario = physics.load_scenario(doc)
    return {
        ranks: fenicsx.simulate_fields(scenario, ranks=ranks, snapshots=2, mesh_refine=0.5)
        for ranks in (1, 2)
    }


def test_two_mpi_ranks_give_the_current_of_one(
    disk_cv_ranks: dict[int, fenicsx.FieldResult],
) -> None:
    one, two = disk_cv_ranks[1], disk_cv_ranks[2]
    assert one.hello.ranks == 1
    assert two.hello.ranks == 2
    assert one.mesh.dofs == two.mesh.dofs
    # A direct solver: the ranks agree to rounding, far inside any solver tolerance.
    scale = np.abs(one.result.I).max()
    assert np.abs(one.result.I - two.result.I).max() / scale < 1e-9


def test_snapshots_are_gathered_from_every_rank(
    disk_cv_ranks: dict[int, fenicsx.FieldResult],
) -> None:
    fields = {}
    for ranks, fr in disk_cv_ranks.items():
        assert [s.step for s in fr.snapshots] == [0, fr.result.steps - 1]
        # The global node order depends on the partition: compare by coordinates.
        order = np.lexsort((fr.mesh.y, fr.mesh.x))
        fields[ranks] = np.stack([s.c[:, order] for s in fr.snapshots])
        last = fr.snapshots[-1].c
        # Equal diffusion coefficients: O + R stays at the bulk everywhere.
        np.testing.assert_allclose(last.sum(axis=0), C, atol=1e-9)
        # P1 elements undershoot a little at the steep front, never more.
        assert last.min() > -1e-4 * C
        assert last.max() < C * (1 + 1e-4)
    np.testing.assert_allclose(fields[1], fields[2], atol=1e-9)


@pytest.mark.parametrize(
    ("electrode", "reference"),
    [
        # Bond, Luscombe and Oldham (1988): 4 pi n F D c a^2 / (4 L + pi a), a few %.
        (
            {"geometry": "recessed", "radius": A, "depth": A},
            4 * math.pi * FARADAY * D * C * A**2 / (4 * A + math.pi * A),
        ),
        # The thin-ring approximation (Szabo et al. 1987):
        # n F D c pi^2 (b + a) / ln(16 (b + a) / (b - a)).
        (
            {"geometry": "ring", "inner_radius": 4.5e-6, "outer_radius": A},
            FARADAY * D * C * math.pi**2 * (A + 4.5e-6) / math.log(16 * (A + 4.5e-6) / 0.5e-6),
        ),
    ],
    ids=["recessed", "ring"],
)
def test_recessed_disk_and_ring_reach_their_steady_states(
    electrode: dict[str, Any], reference: float
) -> None:
    doc = _steady_state_doc()
    doc["electrode"] = electrode
    result = physics.simulate(doc)
    assert -result.I[-1] / reference == pytest.approx(1.0, abs=0.03)


def test_a_band_has_no_steady_state() -> None:
    # In 2D the diffusion field keeps growing: the band's current decays (like 1/ln t).
    doc = _steady_state_doc(duration=100.0)
    doc["electrode"] = {"geometry": "band", "width": 2e-6, "length": 1e-3}
    result = physics.simulate(doc)
    current = -result.I
    assert np.all(np.isfinite(current))
    late = current[result.t > 1.0]
    assert np.all(late > 0)
    assert np.all(np.diff(late) < 0)


def test_a_malformed_job_is_fatal_with_one_clear_line() -> None:
    info = fenicsx.find_worker()
    scenario = physics.load_scenario(disk_doc())
    job = fenicsx.prepare_job(scenario)
    # Corrupt the validated job the way a broken parent could: the radius goes missing.
    bad = job.frame.replace(b"radius\xcb", b"radiuz\xcb")
    done = subprocess.run(
        _launcher.worker_argv(info, 1),
        input=bad,
        capture_output=True,
        env=_launcher.worker_env(),
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    stderr = done.stderr.decode().strip().splitlines()
    assert stderr[-1].startswith("galvana fenicsx worker: bad job: job.scenario.electrode.radius")
    # It said so in a frame too, which the parent turns into a WorkerError.
    reader = fenicsx.FrameReader(io.BytesIO(done.stdout))
    frame = reader.next()
    assert isinstance(frame, fenicsx.WorkerFailed)
    assert "job.scenario.electrode.radius" in frame.message


@pytest.mark.parametrize(
    "path",
    sorted((Path(__file__).resolve().parents[2] / "examples" / "2d").glob("*.yaml")),
    ids=lambda p: p.name,
)
def test_every_2d_example_runs(path: Path) -> None:
    scenario = physics.load_scenario(path)
    result = fenicsx.simulate(scenario, ranks=1)  # one rank: ranks are tested above
    assert result.I.size == result.t.size > 10
    assert np.all(np.isfinite(result.I))
    assert result.I.min() < 0  # every example reduces O
