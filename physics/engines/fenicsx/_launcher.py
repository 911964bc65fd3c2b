"""Finding the interpreter that has DOLFINx, checking it, and starting the worker.

DOLFINx, PETSc, mpi4py and Gmsh come from Debian's packages and live under the
system interpreter, not in the project's virtual environment; the worker runs there.
The interpreter is ``$GALVANA_FENICSX_PYTHON`` when set, else ``/usr/bin/python3``.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from physics.errors import EngineUnavailableError

__all__ = [
    "INSTALL_HINT",
    "WORKER_PATH",
    "WorkerInfo",
    "find_worker",
    "worker_argv",
    "worker_env",
]

WORKER_PATH = Path(__file__).with_name("worker.py")
"""The worker program, run by the DOLFINx interpreter (never imported here)."""

INSTALL_HINT = (
    "install it with `apt-get install python3-dolfinx python3-petsc4py python3-mpi4py "
    "python3-gmsh python3-msgpack openmpi-bin gcc` (Debian 12), or set "
    "GALVANA_FENICSX_PYTHON to a Python that has DOLFINx 0.5"
)

SUPPORTED_DOLFINX = (0, 5)
"""The worker is written against DOLFINx 0.5's API (Debian 12's), which later ones changed."""

_DEFAULT_PYTHON = "/usr/bin/python3"
_PROBE_TIMEOUT_S = 120.0
# Imports what the worker needs and prints the versions as one JSON line; a missing
# module is reported by name.
_PROBE = """
import json, shutil, sys
out = {}
try:
    import msgpack, numpy, mpi4py, gmsh, ufl, dolfinx
    from petsc4py import PETSc
    from mpi4py import MPI
except ImportError as exc:
    print(json.dumps({"missing": exc.name or str(exc)}))
    sys.exit(0)
out["dolfinx"] = dolfinx.__version__
out["petsc"] = ".".join(map(str, PETSc.Sys.getVersion()))
out["mumps"] = bool(PETSc.Sys.hasExternalPackage("mumps"))
out["mpi4py"] = mpi4py.__version__
out["mpi"] = MPI.Get_library_version().splitlines()[0].strip()
out["gmsh"] = gmsh.__version__
out["numpy"] = numpy.__version__
out["msgpack"] = ".".join(map(str, msgpack.version))
out["python"] = sys.version.split()[0]
out["cc"] = shutil.which("cc") or shutil.which("gcc") or ""
print(json.dumps(out))
"""


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A usable worker: the interpreter, the versions it reported, and ``mpirun``.

    ``mpirun`` is ``None`` when no MPI launcher was found (one rank only then).
    """

    python: str
    dolfinx: str
    petsc: str
    mpi4py: str
    mpi: str
    gmsh: str
    mumps: bool
    mpirun: str | None

    def describe(self) -> str:
        """One line for ``galvana doctor``."""
        ranks = f"mpirun {self.mpirun}" if self.mpirun else "no mpirun (1 rank only)"
        return (
            f"DOLFINx {self.dolfinx}, PETSc {self.petsc}{' + MUMPS' if self.mumps else ''}, "
            f"Gmsh {self.gmsh}, mpi4py {self.mpi4py} under {self.python}; {ranks}"
        )


def _interpreter() -> str:
    return os.environ.get("GALVANA_FENICSX_PYTHON") or _DEFAULT_PYTHON


def find_worker() -> WorkerInfo:
    """The checked worker interpreter; :class:`EngineUnavailableError` naming the fix if none.

    The check runs once per interpreter path and process (it imports DOLFINx: ~1 s).
    """
    return _probe(_interpreter())


@functools.cache
def _probe(python: str) -> WorkerInfo:
    where = f"engine fenicsx needs DOLFINx under {python}"
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise EngineUnavailableError(f"{where}, which does not exist; {INSTALL_HINT}")
    try:
        done = subprocess.run(
            [python, "-I", "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT_S,
            env=worker_env(),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EngineUnavailableError(
            f"{where}, which could not be run ({exc}); {INSTALL_HINT}"
        ) from None
    lines = done.stdout.strip().splitlines()
    try:
        report = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        report = None
    if not isinstance(report, dict) or done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise EngineUnavailableError(f"{where}, whose check failed ({tail}); {INSTALL_HINT}")
    if "missing" in report:
        raise EngineUnavailableError(
            f"{where}, which has no module {report['missing']!r}; {INSTALL_HINT}"
        )
    if not report.get("cc"):
        # DOLFINx compiles its forms at run time (the FFCx JIT) with the C compiler.
        raise EngineUnavailableError(f"{where} and a C compiler, which is missing; {INSTALL_HINT}")
    version = str(report["dolfinx"])
    if tuple(int(p) for p in version.split(".")[:2] if p.isdigit()) != SUPPORTED_DOLFINX:
        wanted = ".".join(map(str, SUPPORTED_DOLFINX))
        raise EngineUnavailableError(
            f"{where}: found DOLFINx {version}, the worker is written for {wanted}; {INSTALL_HINT}"
        )
    return WorkerInfo(
        python=python,
        dolfinx=version,
        petsc=str(report["petsc"]),
        mpi4py=str(report["mpi4py"]),
        mpi=str(report["mpi"]),
        gmsh=str(report["gmsh"]),
        mumps=bool(report["mumps"]),
        mpirun=shutil.which("mpirun") or shutil.which("mpiexec"),
    )


def worker_env() -> dict[str, str]:
    """The worker's environment: the caller's, made safe for MPI and the system Python.

    Open MPI refuses to run as root unless told (containers and CI run as root); the
    project's ``PYTHONPATH`` must not leak into the system interpreter; BLAS threads
    would fight the MPI ranks for cores.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
        OMPI_MCA_rmaps_base_oversubscribe="1",
        # Ranks sharing cores (with each other or anything else) must not spin while
        # they wait for a message: under load that halves the speed or worse.
        OMPI_MCA_mpi_yield_when_idle="1",
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
    )
    # The FFCx JIT compiles forms into a cache under the home directory.
    if not os.access(os.path.expanduser("~"), os.W_OK):
        env.setdefault("XDG_CACHE_HOME", os.path.join(tempfile.gettempdir(), "galvana-fenicsx"))
    return env


def worker_argv(info: WorkerInfo, ranks: int) -> list[str]:
    """The command line that starts the worker on ``ranks`` MPI ranks."""
    program = [info.python, "-I", str(WORKER_PATH)]
    if ranks == 1:
        return program  # MPI's singleton mode: no launcher needed
    if info.mpirun is None:
        raise EngineUnavailableError(
            f"{ranks} ranks need mpirun, which is not on PATH; install it with "
            "`apt-get install openmpi-bin`, or run on 1 rank"
        )
    # `--oversubscribe` lets ranks share cores (a laptop, a CI runner); Open MPI only.
    extra = ["--oversubscribe"] if "Open MPI" in info.mpi else []
    return [info.mpirun, "-n", str(ranks), *extra, *program]
