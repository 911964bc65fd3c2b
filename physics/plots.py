"""Figures of simulated results (PNG, matplotlib's Agg backend: no display needed):
the current against the potential, Nyquist and Bode plots of an impedance spectrum, and
the harmonics of AC voltammetry."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from physics.impedance import ImpedanceSpectrum

__all__ = ["save_harmonics", "save_impedance", "save_voltammogram"]

FloatArray = npt.NDArray[np.float64]


def _figure(panels: int, *, width: float = 5.0, height: float = 4.0) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure  # noqa: PLC0415 - matplotlib loads in seconds

    cols = min(4, panels)
    rows = -(-panels // cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    return fig, [fig.add_subplot(rows, cols, k + 1) for k in range(panels)]


def _save(fig: Any, path: str | Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415 - heavy

    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120)


def save_impedance(spectrum: ImpedanceSpectrum, path: str | Path, title: str = "") -> None:
    """A Nyquist plot (-Z'' against Z', equal axes) and a Bode plot (|Z| and the phase
    against the frequency) side by side."""
    fig, (nyquist, bode) = _figure(2)
    nyquist.plot(spectrum.real, -spectrum.imag, "o-", ms=3)
    nyquist.set_xlabel("Z' (ohm)")
    nyquist.set_ylabel("-Z'' (ohm)")
    nyquist.set_aspect("equal", adjustable="datalim")
    nyquist.set_title(f"{title} Nyquist".strip())
    bode.loglog(spectrum.frequency, spectrum.modulus, "o-", ms=3, color="C0")
    bode.set_xlabel("f (Hz)")
    bode.set_ylabel("|Z| (ohm)", color="C0")
    phase = bode.twinx()
    phase.semilogx(spectrum.frequency, -spectrum.phase, "s-", ms=3, color="C1")
    phase.set_ylabel("-phase (deg)", color="C1")
    bode.set_title(f"{title} Bode".strip())
    _save(fig, path)


def save_voltammogram(E: FloatArray, I: FloatArray, path: str | Path, title: str = "") -> None:  # noqa: E741
    """The current (A) against the applied potential (V)."""
    fig, (ax,) = _figure(1)
    ax.plot(E, I)
    ax.set_xlabel("E (V)")
    ax.set_ylabel("I (A)")
    ax.set_title(title)
    _save(fig, path)


def save_harmonics(
    E: FloatArray, envelopes: Mapping[int, FloatArray], path: str | Path, title: str = ""
) -> None:
    """Each harmonic's envelope (A) against the DC potential (V), one panel each."""
    fig, axes = _figure(len(envelopes), width=3.6, height=3.0)
    for ax, (k, envelope) in zip(axes, envelopes.items(), strict=True):
        ax.plot(E, envelope)
        ax.set_xlabel("E_dc (V)")
        ax.set_ylabel("I (A)" if k == 0 else f"|I_{k}| (A)")
        ax.set_title("DC" if k == 0 else f"harmonic {k}")
    fig.suptitle(title)
    _save(fig, path)
