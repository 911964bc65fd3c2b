"""The harmonics of an AC voltammogram, as Fourier-transformed AC voltammetry (FT-ACV)
reports them.

The current is sampled evenly (interpolated if it is not), tapered at both ends (a Tukey
window, so that the large DC current does not leak into the harmonics' bands), and
Fourier transformed; each harmonic k is the band ``k f +- bandwidth / 2`` (flat with
raised-cosine edges), transformed back as an analytic signal. Its modulus is the
harmonic's envelope: the amplitude (A) of the k-th harmonic sine as the DC potential
moves. Harmonic 0 is the DC component (the band below ``bandwidth / 2``). Near the ends
of the record the envelopes carry the taper and the band's start-up: read them away
from there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from physics.errors import ParameterError

__all__ = ["Harmonics", "harmonics"]

FloatArray = npt.NDArray[np.float64]
ComplexArray = npt.NDArray[np.complex128]

_TAPER = 0.05  # the fraction of the record tapered at each end


@dataclass(frozen=True, slots=True)
class Harmonics:
    """Harmonics of a current: the even times ``t`` (s) they are given at, the applied
    potential ``E`` there (V), the ``frequency`` (Hz) of the perturbation and, per
    harmonic number, the band-limited analytic signal (complex, A; harmonic 0 is real)."""

    t: FloatArray
    E: FloatArray
    frequency: float
    bandwidth: float
    components: Mapping[int, ComplexArray]

    def envelope(self, k: int) -> FloatArray:
        """The amplitude (A) of harmonic ``k`` at each time (for 0: the DC current)."""
        z = self.components[k]
        out: FloatArray = z.real.copy() if k == 0 else np.abs(z)
        return out

    def signal(self, k: int) -> FloatArray:
        """Harmonic ``k`` as a real current (A): the band's part of the measured one."""
        out: FloatArray = self.components[k].real.copy()
        return out


def harmonics(
    t: npt.ArrayLike,
    I: npt.ArrayLike,  # noqa: E741 - the electrochemical symbol for current
    frequency: float,
    *,
    count: int = 6,
    bandwidth: float | None = None,
    E: npt.ArrayLike | None = None,
) -> Harmonics:
    """Harmonics 0 to ``count`` of the current ``I`` (A) sampled at ``t`` (s) under a
    perturbation of ``frequency`` (Hz). ``bandwidth`` (Hz) is each band's width
    (default: half the frequency: envelopes that change over a few periods are
    followed, and neighbouring bands stay apart); ``E`` (V), when given, is carried
    along (the potential at the even times).
    """
    ta = np.asarray(t, dtype=np.float64)
    Ia = np.asarray(I, dtype=np.float64)
    if ta.ndim != 1 or ta.shape != Ia.shape or ta.size < 16:
        raise ParameterError("t and I must be 1-D arrays of equal length (16 or more)")
    if not np.all(np.diff(ta) > 0):
        raise ParameterError("t must be strictly increasing")
    if not frequency > 0 or count < 0:
        raise ParameterError(f"frequency must be > 0 Hz and count >= 0; got {frequency}, {count}")
    band = 0.5 * frequency if bandwidth is None else float(bandwidth)
    if not 0 < band <= frequency:
        raise ParameterError(
            f"bandwidth {band:g} Hz; accepted: above 0 and at most the frequency "
            f"({frequency:g} Hz), so that the bands do not overlap"
        )
    dt = float(np.median(np.diff(ta)))
    if (count + 0.5 * band / frequency) * frequency >= 0.5 / dt:
        raise ParameterError(
            f"harmonic {count} of {frequency:g} Hz is above the sampling's Nyquist frequency "
            f"({0.5 / dt:.4g} Hz); sample faster or ask for fewer"
        )
    n = math.floor((ta[-1] - ta[0]) / dt) + 1
    even = ta[0] + dt * np.arange(n)
    current = np.interp(even, ta, Ia)
    potential = (
        np.interp(even, ta, np.asarray(E, dtype=np.float64)) if E is not None else np.zeros(n)
    )
    spectrum = np.fft.rfft(current * _tukey(n, _TAPER))
    freqs: FloatArray = np.fft.rfftfreq(n, dt).astype(np.float64)
    components: dict[int, ComplexArray] = {}
    for k in range(count + 1):
        weight = _band(freqs, k * frequency, band)
        if k == 0:
            components[0] = np.fft.irfft(spectrum * weight, n).astype(np.complex128)
            continue
        # The analytic signal: the positive frequencies alone, doubled.
        full = np.zeros(n, dtype=np.complex128)
        full[: freqs.size] = 2.0 * spectrum * weight
        components[k] = np.fft.ifft(full)
    return Harmonics(even, potential, float(frequency), band, components)


def _tukey(n: int, fraction: float) -> FloatArray:
    """1 in the middle, raised-cosine tapers over ``fraction`` of ``n`` at each end."""
    w = np.ones(n)
    m = max(1, int(fraction * n))
    ramp = 0.5 * (1 - np.cos(np.pi * (np.arange(m) + 0.5) / m))
    w[:m] = ramp
    w[n - m :] = ramp[::-1]
    return w


def _band(freqs: FloatArray, centre: float, width: float) -> FloatArray:
    """Flat over the inner half of ``centre +- width/2``, raised-cosine edges outside it."""
    half = width / 2
    x = np.abs(freqs - centre) / half  # 0 at the centre, 1 at the band's edge
    w = np.where(x <= 0.5, 1.0, 0.5 * (1 + np.cos(np.pi * (x - 0.5) / 0.5)))
    out: FloatArray = np.where(x >= 1.0, 0.0, w)
    return out
