"""Simulation engines: ``numba`` (1D, in-process, the default) and ``fenicsx`` (2D,
DOLFINx and PETSc in a worker process, optionally on MPI ranks)."""
