"""The 2D engine's parent side, with no DOLFINx needed: frames, bad input, garbage workers.

These run everywhere; the numerics themselves are in test_validation.py.
"""

from __future__ import annotations

import io
import struct
import sys
import textwrap
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest

import physics
from physics.engines import fenicsx
from physics.engines.fenicsx import _launcher
from physics.errors import (
    EngineUnavailableError,
    ParameterError,
    ScenarioError,
    WorkerCrashed,
    WorkerError,
    WorkerProtocolError,
)
from physics.simulation import engine_of
from tests.fenicsx.conftest import disk_doc

FAKE_INFO = fenicsx.WorkerInfo(
    python=sys.executable,
    dolfinx="0.5.2",
    petsc="3.18.5",
    mpi4py="3.1.4",
    mpi="fake",
    gmsh="4.8.0",
    mumps=False,
    mpirun=None,
)


def _frame(doc: Any) -> bytes:
    body = msgpack.packb(doc, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


def _f64(*values: float) -> bytes:
    return np.array(values, dtype="<f8").tobytes()


HELLO = {"type": "hello", "protocol": 1, "dolfinx": "0.5.2", "petsc": "3.18.5", "ranks": 1}
MESH = {
    "type": "mesh",
    "dofs": 6,
    "nodes": 3,
    "cells": 1,
    "axes": ["r", "z"],
    "x": _f64(0.0, 1.0, 0.0),
    "y": _f64(0.0, 0.0, 1.0),
    "triangles": np.array([[0, 1, 2]], dtype="<i8").tobytes(),
    "far": 1.0,
}


def _samples(first: int, *t: float) -> dict[str, Any]:
    return {"type": "samples", "first": first, "t": _f64(*t), "E": _f64(*t), "I": _f64(*t)}


def _read_all(data: bytes) -> list[object]:
    reader = fenicsx.FrameReader(io.BytesIO(data))
    frames = []
    while (frame := reader.next()) is not None:
        frames.append(frame)
    return frames


def test_a_well_formed_stream_is_read_and_checked() -> None:
    snapshot = {
        "type": "snapshot",
        "step": 1,
        "t": 0.2,
        "species": ["O", "R"],
        "c": _f64(1, 1, 1, 0, 0, 0),
    }
    done = {
        "type": "done",
        "steps": 3,
        "setup_s": 0.1,
        "stepping_s": 0.2,
        "assemble_s": 0.1,
        "solve_s": 0.1,
    }
    data = b"".join(
        _frame(f) for f in (HELLO, MESH, _samples(0, 0.1, 0.2), snapshot, _samples(2, 0.3), done)
    )
    frames = _read_all(data)
    assert [type(f).__name__ for f in frames] == [
        "HelloFrame",
        "MeshFrame",
        "SamplesFrame",
        "SnapshotFrame",
        "SamplesFrame",
        "Done",
    ]
    snap = frames[3]
    assert isinstance(snap, fenicsx.SnapshotFrame)
    assert snap.c.shape == (2, 3)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"Info : Meshing curve 1 (Line)\n", "announced a frame of"),
        (struct.pack(">I", 1 << 30) + b"x", "announced a frame of"),
        (b"\x00\x00", "ended inside a frame header"),
        (struct.pack(">I", 10) + b"abc", "ended after 3 of a frame's 10 bytes"),
        (struct.pack(">I", 2) + b"\xc1\xc1", "is not msgpack"),
        (_frame([1, 2, 3]), "is a list, not a map"),
        (_frame({"type": "samples"}), "first frame is 'samples', not 'hello'"),
        (_frame(HELLO) + _frame({"type": "telemetry"}), "has type 'telemetry'"),
        (_frame({**HELLO, "protocol": 2}), "speaks protocol 2"),
        (_frame(HELLO) + _frame(_samples(0, 0.1)), "'samples' before the mesh"),
        (_frame(HELLO) + _frame(MESH) + _frame(_samples(1, 0.1)), "samples.first: got 1"),
        (
            _frame(HELLO) + _frame({**MESH, "triangles": np.array([[0, 1, 7]]).tobytes()}),
            "node indices outside",
        ),
        (
            _frame(HELLO) + _frame(MESH) + _frame({**_samples(0, 0.1), "I": _f64(float("nan"))}),
            "non-finite",
        ),
        (
            _frame(HELLO) + _frame(MESH) + _frame({**_samples(0, 0.1, 0.2), "E": _f64(0.1)}),
            "samples.E: got 1 values; expected 2",
        ),
    ],
)
def test_garbage_is_a_protocol_error(data: bytes, fragment: str) -> None:
    with pytest.raises(WorkerProtocolError) as info:
        _read_all(data)
    assert fragment in str(info.value)


def _misbehaving_worker(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_a_worker_printing_garbage_is_killed_and_treated_as_crashed() -> None:
    argv = _misbehaving_worker(
        """
        import sys, time
        sys.stdin.buffer.read()
        sys.stderr.write("about to misbehave\\n")
        sys.stderr.flush()
        sys.stdout.write("PETSc WARNING: this is not a frame\\n" * 50)
        sys.stdout.flush()
        time.sleep(60)
        """
    )
    with fenicsx.WorkerProcess(FAKE_INFO, b"job", argv=argv) as worker:
        with pytest.raises(WorkerCrashed) as info:
            list(worker.frames())
        assert isinstance(info.value, WorkerProtocolError)
        assert "treated as crashed" in str(info.value)
        assert worker.returncode is not None  # killed, not left running
        assert "about to misbehave" in info.value.stderr


def test_a_worker_dying_midway_is_a_crash_with_its_status_and_stderr() -> None:
    hello, mesh = _frame(HELLO), _frame(MESH)
    argv = _misbehaving_worker(
        f"""
        import os, sys
        sys.stdin.buffer.read()
        sys.stdout.buffer.write({hello!r} + {mesh!r})
        sys.stdout.flush()
        sys.stderr.write("segmentation fault in the solver\\n")
        os._exit(139)
        """
    )
    lines: list[str] = []
    with fenicsx.WorkerProcess(FAKE_INFO, b"job", argv=argv, on_stderr=lines.append) as worker:
        frames = []
        with pytest.raises(WorkerCrashed) as info:
            frames.extend(worker.frames())
    assert [type(f).__name__ for f in frames] == ["HelloFrame", "MeshFrame"]
    assert info.value.status == 139
    assert "exited with status 139 after 0 steps" in str(info.value)
    assert "segmentation fault" in str(info.value)
    assert lines == ["segmentation fault in the solver"]


def test_a_worker_error_frame_is_a_worker_error_not_a_crash() -> None:
    hello = _frame(HELLO)
    error = _frame({"type": "error", "message": "ArithmeticError: the PETSc solve failed"})
    argv = _misbehaving_worker(
        f"""
        import sys
        sys.stdin.buffer.read()
        sys.stdout.buffer.write({hello!r} + {error!r})
        sys.exit(1)
        """
    )
    with (
        fenicsx.WorkerProcess(FAKE_INFO, b"job", argv=argv) as worker,
        pytest.raises(WorkerError, match="PETSc solve failed") as info,
    ):
        list(worker.frames())
    assert not isinstance(info.value, WorkerCrashed)


# --- bad input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        (
            {"engine": "numba"},
            "electrode.geometry: got 'disk', a 2D geometry; accepted by engine numba: planar, "
            "sphere, cylinder; set engine: fenicsx (or auto)",
        ),
        (
            {"electrode": {"geometry": "sphere", "radius": 5e-6}},
            "electrode.geometry: got 'sphere'; accepted by engine fenicsx: planar, disk, ring, "
            "band, recessed; set engine: numba (or auto) for sphere",
        ),
        ({"electrode": {"geometry": "disk"}}, "electrode.radius: required key is missing"),
        (
            {"electrode": {"geometry": "ring", "inner_radius": 5e-6, "outer_radius": 4e-6}},
            "electrode.outer_radius: got 4e-06 m; accepted: larger than inner_radius",
        ),
        ({"electrode": {"geometry": "band", "width": 1e-6}}, "electrode.length: required"),
        ({"electrode": {"geometry": "recessed", "radius": 5e-6}}, "electrode.depth: required"),
        (
            {"electrode": {"geometry": "disk", "radius": 5e-6, "area": 1e-10}},
            "electrode.area: unknown key; accepted keys here: geometry, radius",
        ),
        ({"numerics": {"ranks": 0}}, "numerics.ranks: got 0; accepted: an integer from 1"),
    ],
)
def test_scenarios_the_engine_cannot_run_name_the_fix(
    changes: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ScenarioError) as info:
        physics.load_scenario(disk_doc(**changes))
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        (
            {
                "mechanism": "EC",
                "chemistry": {"kf": 1.0},
            },
            "mechanism: got 'EC'; accepted by engine fenicsx: E; use engine: numba",
        ),
        (
            {
                "kinetics": {
                    "model": "marcus-hush-chidsey",
                    "E0": 0,
                    "k0": 1e-3,
                    "reorganization_energy": "0.8 eV",
                }
            },
            "kinetics.model: got 'marcus-hush-chidsey'; accepted by engine fenicsx: "
            "butler-volmer, nernst",
        ),
        ({"cell": {"Ru": 100.0}}, "cell.Ru: got 100; accepted by engine fenicsx: 0"),
    ],
)
def test_physics_the_2d_engine_does_not_model_is_refused(
    changes: dict[str, Any], fragment: str
) -> None:
    scenario = physics.load_scenario(disk_doc(**changes))
    with pytest.raises(ScenarioError) as info:
        fenicsx.prepare_job(scenario)
    assert fragment in str(info.value)


def test_a_missing_dolfinx_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GALVANA_FENICSX_PYTHON", "/nonexistent/python3")
    with pytest.raises(EngineUnavailableError) as info:
        physics.simulate(disk_doc())
    message = str(info.value)
    assert "/nonexistent/python3, which does not exist" in message
    assert "apt-get install python3-dolfinx python3-petsc4py" in message
    # A Python without DOLFINx (this virtual environment's) says which module it lacks.
    monkeypatch.setenv("GALVANA_FENICSX_PYTHON", sys.executable)
    with pytest.raises(EngineUnavailableError, match="has no module '(dolfinx|mpi4py|gmsh|ufl)'"):
        fenicsx.find_worker()
    assert not fenicsx.available()


def test_auto_picks_fenicsx_for_2d_geometries_only() -> None:
    assert engine_of(physics.load_scenario(disk_doc(engine="auto"))) == "fenicsx"
    planar = disk_doc(engine="auto", electrode={"geometry": "planar", "area": 1e-6})
    assert engine_of(physics.load_scenario(planar)) == "numba"
    assert engine_of(physics.load_scenario({**planar, "engine": "fenicsx"})) == "fenicsx"


def test_2d_scenarios_round_trip() -> None:
    for electrode in (
        {"geometry": "disk", "radius": 5e-6},
        {"geometry": "ring", "inner_radius": 4e-6, "outer_radius": 5e-6},
        {"geometry": "band", "width": 1e-6, "length": 2e-3},
        {"geometry": "recessed", "radius": 5e-6, "depth": 1e-5},
    ):
        scenario = physics.load_scenario(disk_doc(electrode=electrode))
        assert physics.load_scenario(scenario.to_mapping()) == scenario
    ring = physics.load_scenario(
        disk_doc(electrode={"geometry": "ring", "inner_radius": 4e-6, "outer_radius": 5e-6})
    )
    assert ring.electrode.area == pytest.approx(np.pi * (25e-12 - 16e-12))


def test_what_the_2d_engine_does_not_return_is_refused() -> None:
    with pytest.raises(ParameterError, match="sensitivities need engine numba"):
        physics.simulate(disk_doc(), sensitivities=["kinetics.E0"])
    with pytest.raises(EngineUnavailableError, match="lockstep, traces, batches"):
        physics.Simulator(disk_doc())


def test_the_job_carries_the_numba_engines_time_steps() -> None:
    scenario = physics.load_scenario(disk_doc())
    job = fenicsx.prepare_job(scenario, snapshots=3)
    assert job.steps.count == 240  # 1.2 V of sweep at 5 mV per step
    assert job.snapshot_steps == (0, 120, 239)
    assert job.ranks == 1
    doc = msgpack.unpackb(job.frame[4:], raw=False)
    assert doc["scenario"]["electrode"] == {"geometry": "disk", "radius": 5e-6}
    assert np.frombuffer(doc["steps"]["t"], "<f8")[-1] == pytest.approx(12.0)
    with pytest.raises(ParameterError, match="snapshot steps must lie in"):
        fenicsx.prepare_job(scenario, snapshots=[240])


def test_launch_command_lines() -> None:
    assert _launcher.worker_argv(FAKE_INFO, 1) == [
        sys.executable,
        "-I",
        str(fenicsx.WORKER_PATH),
    ]
    with pytest.raises(EngineUnavailableError, match="2 ranks need mpirun"):
        _launcher.worker_argv(FAKE_INFO, 2)
    openmpi = fenicsx.WorkerInfo(
        **{**_info_fields(FAKE_INFO), "mpirun": "/usr/bin/mpirun", "mpi": "Open MPI v4.1.4"}
    )
    assert _launcher.worker_argv(openmpi, 2)[:4] == [
        "/usr/bin/mpirun",
        "-n",
        "2",
        "--oversubscribe",
    ]
    env = _launcher.worker_env()
    assert env["OMPI_ALLOW_RUN_AS_ROOT"] == "1"
    assert not any(k.startswith("PYTHON") for k in env)


def _info_fields(info: fenicsx.WorkerInfo) -> dict[str, Any]:
    return {name: getattr(info, name) for name in info.__dataclass_fields__}


EXAMPLES_2D = sorted((Path(__file__).resolve().parents[2] / "examples" / "2d").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES_2D, ids=lambda p: p.name)
def test_every_2d_example_loads_and_makes_a_job(path: Path) -> None:
    scenario = physics.load_scenario(path)
    assert engine_of(scenario) == "fenicsx"
    job = fenicsx.prepare_job(scenario)
    assert job.steps.count > 10


def test_a_silent_worker_is_killed_after_the_stall_timeout() -> None:
    hello = _frame(HELLO)
    argv = _misbehaving_worker(
        f"""
        import sys, time
        sys.stdin.buffer.read()
        sys.stdout.buffer.write({hello!r})
        sys.stdout.flush()
        time.sleep(60)  # a rank stuck in a collective call
        """
    )
    with (
        fenicsx.WorkerProcess(FAKE_INFO, b"job", argv=argv, stall_s=0.5) as worker,
        pytest.raises(WorkerCrashed, match=r"sent nothing for 0\.5 s and was killed"),
    ):
        list(worker.frames())
