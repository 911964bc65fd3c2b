"""The 1D engine: compact fourth-order differences on an expanding grid, implicit BDF
(order up to 3) in time, numba kernels."""
