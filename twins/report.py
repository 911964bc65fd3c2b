"""A calibration over recorded runs as a scientist reads it: a table, JSON and plots.

:func:`posterior_table` is the text the command prints: each parameter's median and
90 % interval in the units the user chose (:func:`parse_units`: ``k0=cm/s,D=cm2/s,
E0=mV``; SI otherwise), the model's adequacy per run, the scan-rate consistency and the
warnings. :func:`write_report` writes ``calibration.json`` (every number, in SI and in
the chosen units) and three PNG figures made with matplotlib's Agg backend (no display
needed): ``fit.png`` (measured against fitted current with the 90 % predictive band,
one panel per run), ``residuals.png`` (residuals against time with the noise's 90 %
band, each panel titled with its adequacy) and ``posterior.png`` (pairwise marginals
of the posterior, drawn from it).
"""

from __future__ import annotations

import itertools
import json
import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from runtime.units import unit_factor
from twins.experiments import Calibration
from twins.spec import parameter_quantity

__all__ = ["DisplayUnit", "parse_units", "posterior_table", "report_plain", "write_report"]

FloatArray = npt.NDArray[np.float64]

_POSTERIOR_DRAWS = 4000
_MAX_PAIRWISE = 8
_Z90 = 1.6448536269514722


@dataclass(frozen=True, slots=True)
class DisplayUnit:
    """A unit to show a parameter in: its ``label`` and ``factor``, the SI value of one
    of it (shown value = SI value / factor)."""

    label: str
    factor: float


def parse_units(text: str | None, names: Sequence[str]) -> dict[str, DisplayUnit]:
    """Display units per coordinate name from ``KEY=UNIT,...``: a key is a parameter's
    key path (``species.O.D``), its last part (``D``, every such parameter) or
    ``noise``. Raises ``ValueError`` naming the entry when a key matches nothing or a
    unit is not of the parameter's quantity."""
    out: dict[str, DisplayUnit] = {}
    if not text:
        return out
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        key, sep, unit = entry.partition("=")
        key, unit = key.strip(), unit.strip()
        if not sep or not key or not unit:
            raise ValueError(f"--units entry {entry!r} is not KEY=UNIT (e.g. k0=cm/s)")
        matched = [
            n
            for n in names
            if (base := n.split("@", 1)[0]) == key or base.rsplit(".", 1)[-1] == key
        ]
        if not matched:
            bases = sorted({n.split("@", 1)[0] for n in names})
            raise ValueError(
                f"--units {key}: not a calibrated parameter; accepted: {', '.join(bases)} "
                "(or their last part, e.g. k0)"
            )
        quantity = parameter_quantity(matched[0])
        try:
            factor = unit_factor(unit, quantity)
        except ValueError:
            raise ValueError(
                f"--units {key}={unit}: {unit!r} is not a unit of {quantity.name} "
                f"(SI: {quantity.si_unit})"
            ) from None
        for n in matched:
            out[n] = DisplayUnit(unit, factor)
    return out


def _short(name: str) -> str:
    """A coordinate's last key: ``D`` for ``species.O.D@run-1``."""
    return name.split("@", 1)[0].rsplit(".", 1)[-1]


def _unit(name: str, units: Mapping[str, DisplayUnit]) -> DisplayUnit:
    if name in units:
        return units[name]
    si = parameter_quantity(name).si_unit
    return DisplayUnit("" if si == "dimensionless" else si, 1.0)


def posterior_table(result: Calibration, units: Mapping[str, DisplayUnit]) -> str:
    """The posterior and the verdicts as text (see the module docstring)."""
    s = result.summary
    d = result.diagnostics
    runs = len(result.runs)
    used = sum(int(r.usable.sum()) for r in result.runs)
    lines = [
        f"posterior of {result.name} (Laplace) over {runs} run{'s' if runs > 1 else ''}, "
        f"{used} samples; {d['convergence']}",
        "",
    ]
    rows = [("parameter", "median", "5 %", "95 %", "unit")]
    for j, name in enumerate(s.names):
        u = _unit(name, units)
        rows.append(
            (
                name,
                f"{s.median[j] / u.factor:.4g}",
                f"{s.q05[j] / u.factor:.4g}",
                f"{s.q95[j] / u.factor:.4g}",
                u.label,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    lines += ["", "model adequacy:"]
    for r in result.runs:
        rate = f" ({r.scan_rate:g} V/s)" if r.scan_rate > 0 else ""
        lines.append(f"  {r.label}{rate}: {r.adequacy.verdict}: {r.adequacy.reason}")
    if result.consistency is not None:
        c = result.consistency
        lines.append(
            f"  across the runs: {'consistent' if c.consistent else 'INCONSISTENT'}: {c.reason}"
        )
    lines.append(f"  verdict: {result.verdict}")
    if result.warnings:
        lines += ["", "warnings:"]
        lines += [f"  - {w}" for w in result.warnings]
    return "\n".join(lines)


def report_plain(result: Calibration, units: Mapping[str, DisplayUnit]) -> dict[str, Any]:
    """``calibration.json``'s content: the result in SI, each parameter also in its
    display unit."""
    plain = result.as_plain()
    for name, entry in plain["parameters"].items():
        u = _unit(name, units)
        entry["display"] = {
            "unit": u.label,
            "median": entry["median"] / u.factor,
            "q05": entry["q05"] / u.factor,
            "q95": entry["q95"] / u.factor,
        }
    plain["units"] = {"si": "every value outside 'display' is in SI units"}
    return plain


def write_report(
    result: Calibration, directory: Path, units: Mapping[str, DisplayUnit], *, seed: int = 0
) -> list[Path]:
    """Write ``calibration.json``, ``fit.png``, ``residuals.png`` and ``posterior.png``
    into ``directory`` (created); returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "calibration.json"
    path.write_text(json.dumps(report_plain(result, units), indent=2, allow_nan=False) + "\n")
    written = [path]
    written.append(_save(_fit_figure(result), directory / "fit.png"))
    written.append(_save(_residual_figure(result), directory / "residuals.png"))
    written.append(_save(_posterior_figure(result, units, seed), directory / "posterior.png"))
    return written


# --------------------------------------------------------------------------- figures


def _save(fig: Any, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415 - heavy

    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120)
    return path


def _figure(panels: int, *, width: float = 4.6, height: float = 3.6) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure  # noqa: PLC0415 - matplotlib loads in seconds

    cols = min(3, panels)
    rows = math.ceil(panels / cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = [fig.add_subplot(rows, cols, k + 1) for k in range(panels)]
    return fig, axes


def _current_scale(values: FloatArray) -> tuple[float, str]:
    """A prefix for currents of this size: (factor, unit)."""
    finite = np.abs(values[np.isfinite(values)])
    top = float(finite.max()) if finite.size else 1.0
    for factor, unit in ((1.0, "A"), (1e-3, "mA"), (1e-6, "\u00b5A"), (1e-9, "nA")):
        if top >= factor:
            return factor, unit
    return 1e-12, "pA"


def _monotone_pieces(E: FloatArray) -> list[slice]:
    """Runs of samples over which the potential moves one way (a CV's sweeps)."""
    direction = np.sign(np.diff(E))
    turns = np.flatnonzero((direction[1:] != direction[:-1]) & (direction[1:] != 0)) + 1
    bounds = [0, *turns.tolist(), E.size - 1]
    return [slice(a, b + 1) for a, b in itertools.pairwise(bounds) if b > a]


def _fit_figure(result: Calibration) -> Any:
    fig, axes = _figure(len(result.runs))
    for ax, r in zip(axes, result.runs, strict=True):
        factor, unit = _current_scale(r.I)
        sweep = r.scan_rate > 0
        x = r.E if sweep else r.t
        measured = np.where(r.usable, r.I, np.nan) / factor
        ax.plot(x, measured, ".", ms=1.5, color="0.45", label="measured", rasterized=True)
        lo, hi = (r.fitted - r.band) / factor, (r.fitted + r.band) / factor
        pieces = _monotone_pieces(r.E) if sweep else [slice(0, r.t.size)]
        for k, piece in enumerate(pieces):
            ax.fill_between(
                x[piece], lo[piece], hi[piece], color="C0", alpha=0.25, lw=0,
                label="90 % predictive band" if k == 0 else None,
            )  # fmt: skip
        ax.plot(x, r.fitted / factor, color="C0", lw=1.0, label="fitted")
        ax.set_xlabel("E / V" if sweep else "t / s")
        ax.set_ylabel(f"I / {unit}")
        rate = f", {r.scan_rate:g} V/s" if sweep else ""
        ax.set_title(f"{r.label}{rate}", fontsize=10)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"{result.name}: measured and fitted current", fontsize=11)
    return fig


def _residual_figure(result: Calibration) -> Any:
    fig, axes = _figure(len(result.runs), height=3.2)
    for ax, r in zip(axes, result.runs, strict=True):
        factor, unit = _current_scale(r.residual)
        ax.plot(r.t, r.residual / factor, lw=0.5, color="C3")
        noise = r.adequacy.rms
        if math.isfinite(noise):
            ax.axhline(_Z90 * noise / factor, color="0.4", lw=0.7, ls="--")
            ax.axhline(-_Z90 * noise / factor, color="0.4", lw=0.7, ls="--")
        ax.axhline(0.0, color="0.2", lw=0.5)
        ax.set_xlabel("t / s")
        ax.set_ylabel(f"residual / {unit}")
        head = f"{r.label}: {r.adequacy.verdict}"
        detail = (
            f"RMS {100 * r.adequacy.rms_relative:.2g} % of peak, "
            f"lag-1 {r.adequacy.lag1:.2f}, PPC p = {r.adequacy.ppc_lag1_p:.2f}"
        )
        ax.set_title(head + "\n" + textwrap.shorten(detail, 80), fontsize=9)
    fig.suptitle(f"{result.name}: residuals (dashed: 90 % of the residual spread)", fontsize=11)
    return fig


def _posterior_figure(result: Calibration, units: Mapping[str, DisplayUnit], seed: int) -> Any:
    from matplotlib.figure import Figure  # noqa: PLC0415 - see _figure

    param = result.param
    picked = [j for j in range(param.dim) if "@" not in param.names[j]][:_MAX_PAIRWISE]
    picked += [j for j in range(param.count) if "@" in param.names[j]][
        : max(0, _MAX_PAIRWISE - len(picked))
    ]
    g = result.gaussian
    rng = np.random.default_rng(seed)
    z = g.loc[None, :] + rng.standard_normal((_POSTERIOR_DRAWS, param.dim)) @ g.scale_tril.T
    values, _ = param.values(z)
    k = len(picked)
    fig = Figure(figsize=(1.9 * k + 1.0, 1.9 * k + 1.0), layout="constrained")
    labels = []
    for j in picked:
        u = _unit(param.names[j], units)
        labels.append(f"{param.names[j]}\n/ {u.label}" if u.label else param.names[j])
    shown = [values[:, j] / _unit(param.names[j], units).factor for j in picked]
    for a in range(k):
        for b in range(a + 1):
            ax = fig.add_subplot(k, k, a * k + b + 1)
            if a == b:
                ax.hist(shown[a], bins=40, color="C0", alpha=0.8)
                ax.set_yticks([])
            else:
                ax.hist2d(shown[b], shown[a], bins=40, cmap="Blues")
            if a == k - 1:
                ax.set_xlabel(labels[b], fontsize=7)
            else:
                ax.set_xticklabels([])
            if b == 0 and a != b:
                ax.set_ylabel(labels[a], fontsize=7)
            elif a != b:
                ax.set_yticklabels([])
            ax.tick_params(labelsize=6)
            ax.tick_params(axis="x", labelrotation=45)
    fig.suptitle(f"{result.name}: posterior ({_POSTERIOR_DRAWS} draws)", fontsize=11)
    return fig
