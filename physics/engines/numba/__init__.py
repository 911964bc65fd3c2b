"""The 1D finite-volume engine: expanding grid, implicit BDF2 in time, numba kernels."""
