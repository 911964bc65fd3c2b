"""Simulation engines. ``numba`` (1D, in-process) is the default; a 2D engine will join it."""
