"""The twin spec schema: YAML (or a mapping) in, a validated frozen :class:`TwinSpec` out.

A twin spec says which instrument to measure with, what to apply (the protocol), which
physics scenario models the cell, and what to calibrate with which priors::

    name: ferrocene-twin
    seed: 7                          # seeds every random draw of the run (replays match)
    instrument: sim                  # or a VISA resource string
    protocol:
      waveform: {type: cv, E_start: 0.6, E_vertex: -0.1, scan_rate: 0.2}   # or a list;
                                     # a staircase_cv is sampled once per step
      cycles: 10
      rest: 2 s                      # held at the next cycle's first potential
      sample_rate: 200 Hz
    model: quasi-reversible-ru-cdl.yaml   # a scenario file (relative to this file) or inline
    calibrate:
      parameters:
        kinetics.k0: {dist: lognormal, median: 5e-5, scale: 1.0}    # scale: sd of ln k0
        kinetics.alpha: {dist: beta, a: 4, b: 4}
        kinetics.E0: {dist: normal, mean: 0.25 V, sd: 20 mV}
        cell.Ru: {dist: halfnormal, scale: 500 ohm}
      noise: {dist: halfnormal, scale: 100 nA}   # learned; or a number: the given sd (A)
      every: {cycles: 1}             # or {samples: 5000}
      forgetting: 1.0                # prior covariance / forgetting between updates
      drift: {kinetics.k0: 0.03}     # random-walk sd per update (unconstrained units)
      fit: {max_evaluations: 200, step_tolerance: 1e-3, objective_tolerance: 1e-6, starts: 4}
      per_run: [cell.Ru, noise]      # over several runs: these differ per run, the rest shared
    twin: {band: 0.9, drift_window: 400, drift_fraction: 0.5, potential_window: 32}

Bare numbers are SI; strings with units are converted by :mod:`runtime.units`. Every
problem raises :class:`~twins.errors.TwinSpecError` naming the key path, the value and
what is accepted. The model is validated by :func:`physics.load_scenario`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias, cast

import msgspec
import numpy as np
import numpy.typing as npt

from physics import Scenario, ScenarioError, load_scenario
from physics.scenario import ScenarioDocument, WaveformDocument, scenario_from, waveform_from
from runtime.constants import FARADAY, GAS_CONSTANT
from runtime.schema import (
    SI,
    UNSET,
    Custom,
    Describe,
    Document,
    Int,
    Integer,
    Invalid,
    Number,
    Str,
    Text,
    UnsetType,
    decode,
    json_schema,
    read,
    read_document,
    show,
)
from runtime.units import Quantity
from runtime.waveforms import (
    Piecewise,
    Staircase,
    Waveform,
    breakpoints,
    duration,
    initial_potential,
    max_scan_rate,
    potential,
)
from twins.errors import TwinSpecError

__all__ = [
    "BetaPrior",
    "Cadence",
    "CalibrateDocument",
    "CalibrationSpec",
    "FitSettings",
    "HalfNormalPrior",
    "LogNormalPrior",
    "MeasurementProtocol",
    "NormalPrior",
    "Nuts",
    "Prior",
    "ProtocolDocument",
    "TwinSettings",
    "TwinSpec",
    "TwinSpecDocument",
    "UniformPrior",
    "load_twin_spec",
    "parameter_quantity",
    "prior_median",
    "protocol_waveform",
    "resolve_document",
    "si_units",
    "twin_spec_from",
    "twin_spec_schema",
]

FloatArray = npt.NDArray[np.float64]

_V = Quantity("potential", "V", "[electric_potential]")
_S = Quantity("time", "s", "[time]")
_HZ = Quantity("frequency", "Hz", "1/[time]")
_A = Quantity("current", "A", "[current]")
_NONE = Quantity("dimensionless number", "dimensionless", "[]")

_CONCENTRATION = Quantity("concentration", "mol/m^3", "[substance]/[length]**3")


# --------------------------------------------------------------------------- priors
#
# A prior's values are in the SI unit of the parameter it describes: they are read with
# decode(..., units=) once that parameter is known (a Number without a quantity).


class LogNormalPrior(Document, tag="lognormal", tag_field="dist"):
    """ln p ~ Normal(ln ``median``, ``scale``): ``median`` in the parameter's SI unit,
    ``scale`` the standard deviation of ln p (dimensionless)."""

    median: Annotated[SI, Number(None, lo=0.0, lo_open=True)]
    scale: Annotated[SI, Number(_NONE, lo=0.0, hi=20.0, lo_open=True)]


class NormalPrior(Document, tag="normal", tag_field="dist"):
    """p ~ Normal(``mean``, ``sd``), both in the parameter's SI unit."""

    mean: Annotated[SI, Number(None)]
    sd: Annotated[SI, Number(None, lo=0.0, lo_open=True)]


class BetaPrior(Document, tag="beta", tag_field="dist"):
    """p ~ Beta(``a``, ``b``) on (0, 1) (the transfer coefficient)."""

    a: Annotated[SI, Number(_NONE, lo=0.0, hi=1e4, lo_open=True)]
    b: Annotated[SI, Number(_NONE, lo=0.0, hi=1e4, lo_open=True)]


class UniformPrior(Document, tag="uniform", tag_field="dist"):
    """p ~ Uniform(``low``, ``high``) in the parameter's SI unit (a bounded prior)."""

    low: Annotated[SI, Number(None)]
    high: Annotated[SI, Number(None)]

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.high > self.low:
            raise Invalid("high", f"got {self.high:g}; accepted: a value above low ({self.low:g})")


class HalfNormalPrior(Document, tag="halfnormal", tag_field="dist"):
    """p ~ |Normal(0, ``scale``)|, ``scale`` in the parameter's SI unit (Ru, Cdl, noise)."""

    scale: Annotated[SI, Number(None, lo=0.0, lo_open=True)]


Prior: TypeAlias = LogNormalPrior | NormalPrior | BetaPrior | UniformPrior | HalfNormalPrior

PRIOR_KINDS: tuple[str, ...] = ("lognormal", "normal", "beta", "uniform", "halfnormal")

# Which priors suit which support: a prior must put no mass where the parameter cannot be.
_POSITIVE = ("lognormal", "halfnormal", "uniform")
_UNIT = ("beta", "uniform")
_REAL = ("normal", "uniform")


def prior_median(prior: Prior) -> float:
    """The prior's median (SI): where the twin starts before any data."""
    if isinstance(prior, LogNormalPrior):
        return prior.median
    if isinstance(prior, NormalPrior):
        return prior.mean
    if isinstance(prior, UniformPrior):
        return 0.5 * (prior.low + prior.high)
    if isinstance(prior, HalfNormalPrior):
        return prior.scale * 0.6744897501960817  # the median of |N(0, 1)|
    # Beta: the mean is a close, closed-form stand-in for the median when a, b >= 1.
    return prior.a / (prior.a + prior.b)


# --------------------------------------------------------------------------- spec objects

# Times within this fraction of a staircase step of one of its boundaries are on it:
# times read back from a file are rounded to a few digits (Gamry writes six).
_STEP_ROUNDING = 1e-3


@dataclass(frozen=True, slots=True)
class MeasurementProtocol:
    """What the instrument applies: ``waveforms`` run one per cycle in turn (a single one
    repeats), ``cycles`` in all, ``rest`` (s) held between cycles at the next cycle's first
    potential, sampled at ``sample_rate`` (Hz). Time 0 is the start of the first cycle.

    A staircase cycle is sampled as staircase instruments sample it: one sample per step,
    at the end of its sampling window, with the step's potential (see
    :class:`runtime.waveforms.Staircase`); the rests are sampled at ``sample_rate``."""

    waveforms: tuple[Waveform, ...]
    cycles: int
    rest: float
    sample_rate: float
    # Every cycle's end (s), computed once: the twin asks for the programmed potential
    # at every sample batch.
    _ends: FloatArray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # One duration per waveform, then every cycle's: a protocol's cost is not per cycle.
        each = np.array([duration(wf) for wf in self.waveforms])
        durations = each[np.arange(self.cycles) % len(self.waveforms)]
        ends = np.cumsum(durations + self.rest) - self.rest
        ends.flags.writeable = False
        object.__setattr__(self, "_ends", ends)

    def waveform_of(self, cycle: int) -> Waveform:
        """The waveform of cycle ``cycle`` (0-based)."""
        return self.waveforms[cycle % len(self.waveforms)]

    def cycle_starts(self) -> FloatArray:
        """Start time (s) of every cycle."""
        return np.concatenate([[0.0], self._ends[:-1] + self.rest])

    def cycle_ends(self) -> FloatArray:
        """End time (s) of every cycle (the rest that follows belongs to the next one)."""
        return self._ends.copy()

    @property
    def duration(self) -> float:
        """Total duration (s): every cycle and the rests between them."""
        return float(self.cycle_ends()[-1])

    def initial_potential(self) -> float:
        """The potential (V) of the cell at t = 0."""
        return initial_potential(self.waveforms[0])

    def max_scan_rate(self) -> float:
        """The fastest sweep (V/s) of the protocol (0 when it has no sweep)."""
        return max(max_scan_rate(wf) for wf in self.waveforms)

    @property
    def staircases(self) -> bool:
        """Whether any cycle is a staircase (sampled once per step)."""
        return any(isinstance(wf, Staircase) for wf in self.waveforms)

    def sample_interval(self) -> float:
        """The longest nominal time (s) between two samples: ``1 / sample_rate``, or a
        staircase's step time when that is longer."""
        steps = [wf.t_step for wf in self.waveforms if isinstance(wf, Staircase)]
        return max([1.0 / self.sample_rate, *steps])

    def cycle_closes(self) -> FloatArray:
        """For every cycle, a time (s) from which a sample closes it: half a sample
        interval before its end, or half a step before a staircase's last sample."""
        closes = self._ends - 0.5 / self.sample_rate
        if self.staircases:
            starts = self.cycle_starts()
            for k in range(self.cycles):
                wf = self.waveform_of(k)
                if isinstance(wf, Staircase):
                    last = (wf.steps - 1 + wf.sample[1]) * wf.t_step
                    closes[k] = starts[k] + last - 0.5 * wf.t_step
        return closes

    def trace_before(self, cycles: int) -> tuple[FloatArray, FloatArray]:
        """The programmed samples ``(t s, E V)`` of ``cycles`` cycles of the first
        waveform run before t = 0, each followed by the protocol's rest: times from
        ``-span`` (the cell at rest) to 0 (the first recorded cycle's start) at
        ``sample_rate`` (once per step in a staircase), both ends included. Empty arrays
        for 0 cycles."""
        if cycles <= 0:
            return np.zeros(0), np.zeros(0)
        _, span, t, E = self._before(cycles)
        return t - span, E

    def sampling_before(self, cycles: int) -> tuple[FloatArray, FloatArray] | None:
        """How a staircase instrument applied and sampled the samples of
        :meth:`trace_before` after the first: their jump times (s, on its time scale) and
        sampling windows, as :meth:`sampling` gives them. None for 0 cycles or a first
        waveform that is no staircase."""
        if cycles <= 0 or not isinstance(self.waveforms[0], Staircase):
            return None
        before, span, t, _ = self._before(cycles)
        # On the cycles' own time scale, where the jumps and samples were laid out.
        how = before.sampling(float(t[0]), t[1:])
        assert how is not None
        return how[0] - span, how[1]

    def _before(self, cycles: int) -> tuple[MeasurementProtocol, float, FloatArray, FloatArray]:
        """The protocol of ``cycles`` cycles before t = 0 (and the recorded one), their
        span (s) and their samples ``(t, E)`` from 0 to the span."""
        before = MeasurementProtocol(self.waveforms[:1], cycles + 1, self.rest, self.sample_rate)
        span = float(before.cycle_starts()[cycles])
        t, E = before.trace(span)
        # The last sample is the start of the recorded cycle itself, exactly.
        keep = t < span * (1.0 - 1e-12)
        t = np.append(t[keep], span)
        E = np.append(E[keep], self.initial_potential())
        return before, span, t, E

    def trace(self, t_end: float | None = None) -> tuple[FloatArray, FloatArray]:
        """The programmed samples ``(t s, E V)`` at ``sample_rate`` from 0 to the end (or
        ``t_end``): what a potentiostat running this protocol applies and reports. A
        staircase cycle is sampled once per step (see the class docstring)."""
        end = self.duration if t_end is None else float(t_end)
        n = math.floor(end * self.sample_rate + 1e-9) + 1
        t = np.arange(n, dtype=np.float64) / self.sample_rate
        if self.staircases:
            starts = self.cycle_starts()
            for k in range(self.cycles):
                wf = self.waveform_of(k)
                if isinstance(wf, Staircase):
                    # A sample of the rate's grid within rounding of the last step's end
                    # is that step's sample, not another one a femtosecond later.
                    end_k = self._ends[k] + 1e-9 * wf.t_step
                    inside = (t > starts[k]) & (t <= end_k)
                    steps = starts[k] + wf.sample_times()
                    t = np.sort(np.concatenate([t[~inside], steps[steps <= end]]))
        return t, self.potential_at(t)

    def sampling(self, t_before: float, t: FloatArray) -> tuple[FloatArray, FloatArray] | None:
        """How a staircase instrument applied and sampled the samples at ``t`` (s), the
        sample before them at ``t_before``: for each, when the potential jumped to its
        step's (NaN: not since the sample before) and the sampling window whose mean it
        reports (s; 0: the value at ``t``), as :meth:`physics.Simulator.advance` takes
        them. A sample at a step's end belongs to that step. None when no cycle is a
        staircase."""
        if not self.staircases:
            return None
        t = np.asarray(t, dtype=np.float64)
        jump_at = np.full(t.size, np.nan)
        window = np.zeros(t.size)
        starts = self.cycle_starts()
        before = np.concatenate([[t_before], t[:-1]])
        for k in range(self.cycles):
            wf = self.waveform_of(k)
            if not isinstance(wf, Staircase):
                continue
            tol = _STEP_ROUNDING * wf.t_step
            inside = (t > starts[k]) & (t <= self._ends[k] + tol)
            if not np.any(inside):
                continue
            u = t[inside] - starts[k]
            j = np.clip(np.ceil(u / wf.t_step - _STEP_ROUNDING) - 1, 0, wf.steps - 1)
            jumped = starts[k] + j * wf.t_step
            # A jump at the sample before up to rounding is at that sample: neither
            # missed (the step taken for a ramp) nor a sliver of a hold after it.
            at_before = np.abs(jumped - before[inside]) <= tol
            jumped = np.where(at_before, before[inside], jumped)
            jump_at[inside] = np.where(jumped >= before[inside], jumped, np.nan)
            a, b = wf.sample
            at_end = np.abs(u - (j + b) * wf.t_step) <= tol
            width = (b - a) * wf.t_step
            fits = at_end & (width <= t[inside] - before[inside])
            window[inside] = np.where(fits, width, 0.0)
        return jump_at, window

    def potential_at(self, t: FloatArray) -> FloatArray:
        """The programmed potential (V) at times ``t`` (s), rests included. Within a
        staircase, the potential of the step a sample at ``t`` belongs to (a sample at a
        step's end reports that step's potential)."""
        t = np.asarray(t, dtype=np.float64)
        starts, ends = self.cycle_starts(), self._ends
        E = np.empty_like(t)
        E.fill(self.initial_potential())
        if t.size == 0:
            return E
        # Only the cycles the times fall in (or in the rest before): a batch spans a few.
        k_first = int(np.searchsorted(ends, np.nanmin(t), side="left"))
        k_last = min(int(np.searchsorted(ends, np.nanmax(t), side="left")), self.cycles - 1)
        for k in range(k_first, k_last + 1):
            wf = self.waveform_of(k)
            # The rest before cycle k (k > 0) holds that cycle's first potential.
            lo = ends[k - 1] if k > 0 else -math.inf
            hold = (t > lo) & (t < starts[k])
            E[hold] = initial_potential(wf)
            inside = (t >= starts[k]) & (t <= ends[k])
            if k > 0:
                inside &= t > ends[k - 1]
            if np.any(inside) and isinstance(wf, Staircase):
                u = t[inside] - starts[k]
                j = np.ceil(u / wf.t_step - _STEP_ROUNDING) - 1
                E[inside] = wf.levels()[np.clip(j, 0, wf.steps - 1).astype(np.int64)]
            elif np.any(inside):
                E[inside] = potential(wf, t[inside] - starts[k])
        last = t > ends[-1]
        if np.any(last):
            E[last] = potential(self.waveform_of(self.cycles - 1), np.array([1e300]))[0]
        return E


def protocol_waveform(
    protocol: MeasurementProtocol, first_cycle: int = 0, count: int | None = None
) -> Piecewise:
    """Cycles ``first_cycle`` .. (``count`` of them, default all) as one piecewise waveform
    starting at 0 s, the rest before ``first_cycle`` (if any) included: what an
    instrument is programmed with to run them."""
    t0 = 0.0 if first_cycle == 0 else float(protocol.cycle_ends()[first_cycle - 1])
    starts = protocol.cycle_starts() - t0
    last = protocol.cycles if count is None else min(protocol.cycles, first_cycle + count)
    points: list[tuple[float, float]] = []

    def corner(t: float, E: float) -> None:
        if not points or points[-1] != (t, E):
            points.append((t, E))

    for k in range(first_cycle, last):
        wf = protocol.waveform_of(k)
        E_rest = initial_potential(wf)
        # The rest before a cycle holds its first potential.
        corner(points[-1][0] if points else 0.0, E_rest)
        corner(float(starts[k]), E_rest)
        tb, Eb = breakpoints(wf)
        for t, E in zip((tb + starts[k]).tolist(), Eb.tolist(), strict=True):
            corner(t, E)
    return Piecewise(tuple(points))


@dataclass(frozen=True, slots=True)
class Cadence:
    """How often the posterior is refreshed: every ``count`` protocol cycles, or every
    ``count`` samples (``unit``). Counted in data, never in wall-clock time, so a replay
    refreshes at exactly the same points."""

    unit: Literal["cycles", "samples"] = "cycles"
    count: int = 1


class FitSettings(Document):
    """How the posterior mode is searched for (see :func:`twins.calibration.laplace_fit`).

    The search has converged when the Newton step is shorter than ``step_tolerance``
    posterior standard deviations, or when a step lowers the objective (the negative log
    posterior, nats) by less than ``objective_tolerance`` while the step is within a
    tenth of a posterior sd. It gives up after ``max_evaluations`` engine runs. When the
    first start fails or ends at a poor fit, up to ``starts`` starts in all are tried,
    the others drawn from the prior (seeded: the same data give the same fit).
    """

    max_evaluations: Annotated[Int, Integer(2, 100_000)] = 200
    step_tolerance: Annotated[SI, Number(_NONE, lo=1e-8, hi=1.0)] = 1e-3
    objective_tolerance: Annotated[SI, Number(_NONE, lo=0.0, hi=1e3)] = 1e-6
    starts: Annotated[Int, Integer(1, 100)] = 4


@dataclass(frozen=True, slots=True)
class CalibrationSpec:
    """What to calibrate and how.

    ``names`` and ``priors``: the calibrated parameters (key paths) and their priors.
    ``noise``: the measurement noise sd (A) when given, or its prior when learned.
    ``drift``: per parameter, the sd (unconstrained units: ln p for positive ones) by
    which it may random-walk between updates. ``forgetting`` divides the prior covariance
    at each update (1: remember everything). ``svi_steps`` refine each update's Laplace
    approximation by stochastic variational inference; ``nuts_warmup``/``nuts_samples``
    size the on-demand NUTS reference. ``fit``: the mode search's tolerances and cap
    on engine runs. ``per_run``: in a calibration over several runs, the parameters
    (and ``noise``) that take a value of their own in each run; every other one is
    shared by all runs.
    """

    names: tuple[str, ...]
    priors: tuple[Prior, ...]
    noise: float | Prior
    every: Cadence = field(default_factory=Cadence)
    forgetting: float = 1.0
    drift: tuple[float, ...] = ()
    svi_steps: int = 20
    nuts_warmup: int = 200
    nuts_samples: int = 200
    fit: FitSettings = field(default_factory=FitSettings)
    per_run: tuple[str, ...] = ("noise",)

    @property
    def learns_noise(self) -> bool:
        """True when the noise sd is inferred rather than given."""
        return not isinstance(self.noise, float)


class TwinSettings(Document):
    """The twin's own settings: the predictive ``band`` probability, and drift detection:
    drift is declared when more than ``drift_fraction`` of the last ``drift_window``
    samples fall outside the band. A time step over ``gap`` times the nominal sample
    interval is a gap in the data. The measured potential's noise is filtered by a
    running median over ``potential_window`` samples (1: none; see
    :mod:`twins.samples`)."""

    band: Annotated[SI, Number(_NONE, lo=0.5, hi=0.999)] = 0.9
    drift_window: Annotated[Int, Integer(10, 10**8)] = 400
    drift_fraction: Annotated[SI, Number(_NONE, lo=0.0, hi=1.0, lo_open=True)] = 0.5
    gap: Annotated[SI, Number(_NONE, lo=1.0, hi=1e6, lo_open=True)] = 5.0
    potential_window: Annotated[Int, Integer(1, 100_000)] = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.drift_fraction <= 1.0 - self.band:
            raise Invalid(
                "drift_fraction",
                f"got {self.drift_fraction:g}; accepted: above {1.0 - self.band:g}, the "
                "fraction outside the band expected without drift",
            )


@dataclass(frozen=True, slots=True)
class TwinSpec:
    """A validated twin spec; see the module docstring for the YAML form."""

    name: str
    seed: int
    instrument: str
    protocol: MeasurementProtocol
    model: Scenario
    calibrate: CalibrationSpec | None
    twin: TwinSettings

    def initial_values(self) -> dict[str, float]:
        """The model parameters the twin starts from: prior medians for the calibrated
        ones, the scenario's values for the rest."""
        values = dict(self.model.parameters())
        if self.calibrate is not None:
            for name, prior in zip(self.calibrate.names, self.calibrate.priors, strict=True):
                values[name] = prior_median(prior)
        return values

    def segment_ends(self) -> FloatArray:
        """With a cadence in cycles: the end time (s) of every calibration segment."""
        return self._per_segment(self.protocol.cycle_ends())

    def segment_closes(self) -> FloatArray:
        """With a cadence in cycles: for every calibration segment, a time (s) from which
        a sample closes it (:meth:`MeasurementProtocol.cycle_closes` of its last cycle)."""
        return self._per_segment(self.protocol.cycle_closes())

    def _per_segment(self, per_cycle: FloatArray) -> FloatArray:
        every = self.calibrate.every.count if self.calibrate is not None else 1
        picked = per_cycle[every - 1 :: every]
        if picked.size == 0 or (per_cycle.size - 1) % every != every - 1:
            picked = np.append(picked, per_cycle[-1])
        return picked


# --------------------------------------------------------------------------- reading

_TOP_KEYS = (
    "name",
    "seed",
    "instrument",
    "protocol",
    "model",
    "calibrate",
    "twin",
    # Read by the runs supervisor, not by the twin: which procedure runs, what it replays,
    # and what an imported run recorded about its file.
    "procedure",
    "replay",
    "import",
)

# Parameter (last key) -> its quantity and its support.
_PARAMETER_QUANTITY: dict[str, tuple[Quantity, str]] = {
    "k0": (Quantity("heterogeneous rate constant", "m/s", "[length]/[time]"), "positive"),
    "ks": (Quantity("surface rate constant", "1/s", "1/[time]"), "positive"),
    "Gamma": (Quantity("surface concentration", "mol/m^2", "[substance]/[length]**2"), "positive"),
    "alpha": (_NONE, "unit"),
    "E0": (_V, "real"),
    "D": (Quantity("diffusion coefficient", "m^2/s", "[length]**2/[time]"), "positive"),
    "Ru": (Quantity("resistance", "ohm", "[resistance]"), "positive"),
    "Cdl": (Quantity("capacitance", "F", "[capacitance]"), "positive"),
    "kf": (_NONE, "positive"),
    "kb": (_NONE, "positive"),
    # The terms of a real cell (physics.scenario: bulk, background, reference offset).
    "D_ratio": (_NONE, "positive"),
    "c_bulk": (_CONCENTRATION, "positive"),
    "total": (_CONCENTRATION, "positive"),
    "fraction_oxidized": (_NONE, "unit"),
    "area": (Quantity("area", "m^2", "[length]**2"), "positive"),
    "reference_offset": (_V, "real"),
    "offset": (_A, "real"),
    "slope": (Quantity("conductance", "A/V", "[current]/[electric_potential]"), "real"),
    "Cdl_slope": (
        Quantity("capacitance per volt", "F/V", "[capacitance]/[electric_potential]"),
        "real",
    ),
    "Cdl_curvature": (
        Quantity("capacitance per volt squared", "F/V^2", "[capacitance]/[electric_potential]**2"),
        "real",
    ),
}


def parameter_quantity(name: str) -> Quantity:
    """The physical quantity (its SI unit) of a calibrated parameter's key path
    (``kinetics.k0``, ``species.O.D``) or of ``noise`` (a current); ``KeyError`` for a
    name this schema does not know."""
    if name.split("@", 1)[0] == "noise":
        return _A
    return _PARAMETER_QUANTITY[name.split("@", 1)[0].rsplit(".", 1)[-1]][0]


def si_units(names: Sequence[str]) -> dict[str, str]:
    """Each calibrated parameter's SI unit (``""`` for a dimensionless one), by name.

    >>> si_units(["kinetics.k0", "kinetics.alpha", "noise"])
    {'kinetics.k0': 'm/s', 'kinetics.alpha': '', 'noise': 'A'}
    """
    out = {}
    for name in names:
        unit = parameter_quantity(name).si_unit
        out[name] = "" if unit == "dimensionless" else unit
    return out


# --------------------------------------------------------------------------- the document
#
# The structs below are the spec as a document says it (runtime.schema reads them);
# twin_spec_from() then reads what depends on the model (the calibrated parameters, their
# priors' units) and builds the TwinSpec.


def _cadence(value: object) -> Cadence:
    """``every``: N, ``{cycles: N}`` or ``{samples: N}`` (N >= 1)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return Cadence("cycles", value)
    if not (isinstance(value, Mapping) and len(value) == 1 and set(value) & {"cycles", "samples"}):
        raise Invalid("", f"got {show(value)}; accepted: {_CADENCE.text}")
    unit: Literal["cycles", "samples"] = "cycles" if "cycles" in value else "samples"
    return Cadence(unit, read(Integer(1, 10**9), value[unit], unit))


class _Every(msgspec.Struct, forbid_unknown_fields=True):
    """``{cycles: N}`` or ``{samples: N}`` (only what the JSON Schema says of ``every``)."""

    cycles: Annotated[int, msgspec.Meta(ge=1)] | UnsetType = UNSET
    samples: Annotated[int, msgspec.Meta(ge=1)] | UnsetType = UNSET


_CADENCE = Custom(
    Annotated[int, msgspec.Meta(ge=1)] | _Every,
    "N, {cycles: N} or {samples: N} (N >= 1)",
    _cadence,
)


class Nuts(Document):
    """The on-demand NUTS reference: ``warmup`` and ``samples`` draws."""

    warmup: Annotated[Int, Integer(1, 1_000_000)] = 200
    samples: Annotated[Int, Integer(2, 1_000_000)] = 200


class CalibrateDocument(Document, kw_only=True):
    """``calibrate:`` as a document gives it (see :class:`CalibrationSpec`)."""

    parameters: Annotated[
        dict[str, Any], Custom(dict[str, Prior], "a mapping of parameter names to priors")
    ]
    noise: Annotated[Any, Custom(float | str | Prior, "a number (A) or a prior")] = UNSET
    every: Annotated[Any, _CADENCE] = UNSET
    forgetting: Annotated[SI, Number(_NONE, lo=0.0, hi=1.0, lo_open=True)] = 1.0
    drift: dict[str, Annotated[SI, Number(_NONE, lo=0.0, hi=10.0)]] = msgspec.field(
        default_factory=dict
    )
    svi_steps: Annotated[Int, Integer(0, 100_000)] = 20
    nuts: Nuts = msgspec.field(default_factory=Nuts)
    fit: FitSettings = msgspec.field(default_factory=FitSettings)
    per_run: Annotated[Any, Custom(list[str], "a list of calibrated parameters and noise")] = UNSET


class ProtocolDocument(Document):
    """``protocol:`` as a document gives it (see :class:`MeasurementProtocol`)."""

    waveform: Annotated[WaveformDocument | list[WaveformDocument], Describe("a waveform or a list")]
    cycles: Annotated[Int | UnsetType, Integer(1, 100_000)] = UNSET
    rest: Annotated[SI, Number(_S, lo=0.0, hi=1e6)] = 0.0
    sample_rate: Annotated[SI, Number(_HZ, lo=0.0, hi=1e7, lo_open=True)] = 100.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.waveform == []:
            raise Invalid("waveform", "got []; accepted: a waveform or a non-empty list")


class TwinSpecDocument(Document, kw_only=True):
    """A twin spec as its YAML says it (see the module docstring)."""

    name: Annotated[Str | UnsetType, Text()] = UNSET
    seed: Annotated[Int, Integer(0, 2**63 - 1)] = 0
    instrument: Annotated[Str, Text("'sim' or an instrument resource string")] = "sim"
    protocol: ProtocolDocument
    model: Annotated[str | ScenarioDocument, Describe("a scenario file path or mapping")]
    calibrate: CalibrateDocument | UnsetType = UNSET
    twin: TwinSettings = msgspec.field(default_factory=TwinSettings)
    # Read by the runs supervisor, not by the twin: which procedure runs, what it replays,
    # and what an imported run recorded about its file.
    procedure: Any = UNSET
    replay: Any = UNSET
    import_: Any = msgspec.field(default=UNSET, name="import")


def twin_spec_schema() -> dict[str, Any]:
    """The JSON Schema of a twin spec document (what ``galvana schema twin`` prints)."""
    return json_schema(TwinSpecDocument, title="Galvana twin spec")


# --------------------------------------------------------------------------- reading


def load_twin_spec(source: str | os.PathLike[str] | Mapping[str, Any] | TwinSpec) -> TwinSpec:
    """Load and validate a twin spec from a YAML file path, a YAML string or a mapping.

    A ``model:`` given as a path is read relative to the spec file's directory (or the
    working directory for a mapping). Raises :class:`TwinSpecError` naming the key.
    """
    if isinstance(source, TwinSpec):
        return source
    doc, path = read_document(source, error=TwinSpecError, root="<spec>")
    document = decode(doc, TwinSpecDocument, error=TwinSpecError, root="<spec>")
    if path is None:
        return twin_spec_from(document, Path.cwd(), "twin")
    return twin_spec_from(document, path.resolve().parent, path.stem)


def resolve_document(source: str | os.PathLike[str]) -> dict[str, Any]:
    """A twin spec file as plain data with its model inlined (SI mapping), so it can be
    sent to a daemon whose working directory differs from the caller's."""
    spec = load_twin_spec(source)
    doc, _ = read_document(source, error=TwinSpecError, root="<spec>")
    resolved = dict(cast(Mapping[str, Any], doc))
    resolved["model"] = spec.model.to_mapping()
    return resolved


def twin_spec_from(doc: TwinSpecDocument, base: Path, default_name: str) -> TwinSpec:
    """The twin spec a read document describes (a ``model:`` path relative to ``base``;
    ``default_name`` when it names none): what depends on the model is read here, each
    problem a :class:`TwinSpecError` naming the key."""
    model = _model(doc.model, base)
    protocol = _protocol(doc.protocol)
    calibrate = None
    if not isinstance(doc.calibrate, UnsetType):
        calibrate = _calibration(doc.calibrate, model)
    name = default_name if isinstance(doc.name, UnsetType) else doc.name
    return TwinSpec(name, doc.seed, doc.instrument, protocol, model, calibrate, doc.twin)


def _model(doc: str | ScenarioDocument, base: Path) -> Scenario:
    try:
        if isinstance(doc, str):
            path = Path(doc) if Path(doc).is_absolute() else base / doc
            if not path.is_file():
                raise TwinSpecError("model", f"no such scenario file: {str(path)!r}")
            return load_scenario(path)
        return scenario_from(doc, "scenario")
    except ScenarioError as exc:
        where = "model" if exc.path == "<scenario>" else f"model.{exc.path}"
        raise TwinSpecError(where, str(exc).split(": ", 1)[-1]) from None


def _protocol(doc: ProtocolDocument) -> MeasurementProtocol:
    items = doc.waveform if isinstance(doc.waveform, list) else [doc.waveform]
    for i, w in enumerate(items):
        # What the cell does besides the potential programme is the model's to say:
        # an instrument programmed with a protocol applies only its potentials.
        where = f"protocol.waveform[{i}]" if isinstance(doc.waveform, list) else "protocol.waveform"
        if w.rotation_rate:
            raise TwinSpecError(
                f"{where}.rotation_rate",
                "a protocol's waveform is what the instrument applies; give the rotation "
                "rate in the model's waveform (model.waveform.rotation_rate)",
            )
        if getattr(w, "ac", UNSET) is not UNSET:
            raise TwinSpecError(
                f"{where}.ac",
                "not followed by the twin: AC voltammetry is simulated from a scenario "
                "(galvana simulate), not yet acquired by instruments",
            )
    if isinstance(doc.waveform, list):
        waveforms = tuple(
            waveform_from(w, f"protocol.waveform[{i}]", TwinSpecError)
            for i, w in enumerate(doc.waveform)
        )
    else:
        waveforms = (waveform_from(doc.waveform, "protocol.waveform", TwinSpecError),)
    cycles = len(waveforms) if isinstance(doc.cycles, UnsetType) else doc.cycles
    return MeasurementProtocol(waveforms, cycles, doc.rest, doc.sample_rate)


def _calibration(doc: CalibrateDocument, model: Scenario) -> CalibrationSpec:
    known = model.parameters()
    if not doc.parameters:
        raise TwinSpecError(
            "calibrate.parameters", "no parameters; accepted: at least one of " + ", ".join(known)
        )
    names: list[str] = []
    priors: list[Prior] = []
    for key, raw in doc.parameters.items():
        path = f"calibrate.parameters.{key}"
        if key not in known:
            raise TwinSpecError(
                path,
                f"{key!r} is not a parameter of model {model.name!r}; accepted: {', '.join(known)}",
            )
        quantity, support = _PARAMETER_QUANTITY[key.rsplit(".", 1)[-1]]
        priors.append(_prior(raw, path, quantity, support))
        names.append(key)
    noise: float | Prior
    if doc.noise is UNSET:
        noise = HalfNormalPrior(_noise_scale(model))
    elif isinstance(doc.noise, Mapping):
        noise = _prior(doc.noise, "calibrate.noise", _A, "positive")
    else:
        noise = _read(Number(_A, lo=0.0, lo_open=True), doc.noise, "calibrate.noise")
    drift = [0.0] * len(names)
    for key, sd in doc.drift.items():
        if key not in names:
            raise TwinSpecError(
                f"calibrate.drift.{key}",
                f"not a calibrated parameter; accepted: {', '.join(names)}",
            )
        drift[names.index(key)] = sd
    return CalibrationSpec(
        tuple(names),
        tuple(priors),
        noise,
        Cadence() if doc.every is UNSET else doc.every,
        doc.forgetting,
        tuple(drift),
        doc.svi_steps,
        doc.nuts.warmup,
        doc.nuts.samples,
        doc.fit,
        _per_run(doc.per_run, names),
    )


def _read(leaf: Number, value: object, path: str) -> float:
    try:
        return float(read(leaf, value))
    except Invalid as exc:
        raise TwinSpecError(path, exc.message) from None


def _per_run(raw: object, names: list[str]) -> tuple[str, ...]:
    """``per_run``: a list of calibrated parameters, ``noise`` among them or not."""
    if raw is UNSET:
        return ("noise",)
    accepted = [*names, "noise"]
    if not isinstance(raw, list):
        raise TwinSpecError(
            "calibrate.per_run", f"got {show(raw)}; accepted: a list of {', '.join(accepted)}"
        )
    out: list[str] = []
    for i, item in enumerate(raw):
        if item not in accepted:
            raise TwinSpecError(
                f"calibrate.per_run[{i}]",
                f"got {show(item)}; accepted: one of {', '.join(accepted)}",
            )
        if item not in out:
            out.append(str(item))
    return tuple(out)


def _noise_scale(model: Scenario) -> float:
    """A weakly informative noise scale (A): 1 % of a Randles-Sevcik-sized peak at 0.1 V/s,
    or of a surface-confined one (n^2 F^2 A Gamma v / 4RT) when that is larger."""
    c = max(s.c_bulk for s in model.species)
    D = max(s.D for s in model.species)
    # Randles-Sevcik in its customary units: cm^2, mol/cm^3, cm^2/s.
    peak = 2.69e5 * (model.electrode.area * 1e4) * (c * 1e-6) * math.sqrt(D * 1e4 * 0.1)
    gamma = max(s.Gamma for s in model.species)
    f = FARADAY / (GAS_CONSTANT * model.cell.T)
    peak = max(peak, FARADAY * f * model.electrode.area * gamma * 0.1 / 4)
    return max(1e-12, 0.01 * peak)


def _prior(raw: object, path: str, quantity: Quantity, support: str) -> Prior:
    """A prior of a parameter of ``quantity`` whose values must be ``support``."""
    prior = cast(
        Prior,
        decode(raw, Prior, error=TwinSpecError, root=path, path=path, units=quantity),  # type: ignore[arg-type]
    )
    fitting = {"positive": _POSITIVE, "unit": _UNIT, "real": _REAL}[support]
    kind = prior.__struct_config__.tag
    if kind not in fitting:
        where = {"positive": "positive", "unit": "in (0, 1)", "real": "real"}[support]
        raise TwinSpecError(
            f"{path}.dist",
            f"got {kind!r}, which does not fit a parameter that is {where}; "
            f"accepted: {', '.join(fitting)}",
        )
    if isinstance(prior, UniformPrior):
        low, high = prior.low, prior.high
        if support == "positive" and low < 0:
            raise TwinSpecError(
                f"{path}.low", f"got {low:g}; accepted: >= 0 (the parameter is positive)"
            )
        if support == "unit" and (low < 0 or high > 1):
            raise TwinSpecError(
                f"{path}.{'low' if low < 0 else 'high'}", "accepted: bounds within [0, 1]"
            )
    return prior
