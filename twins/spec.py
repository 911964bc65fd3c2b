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

Bare numbers are SI; strings with units are converted by :mod:`physics.units`. Every
problem raises :class:`~twins.errors.TwinSpecError` naming the key path, the value and
what is accepted. The model is validated by :func:`physics.load_scenario`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias, cast

import numpy as np
import numpy.typing as npt

from physics import Scenario, ScenarioError, load_scenario
from physics.reader import Reader, read_document, show
from physics.units import Quantity
from runtime.constants import FARADAY, GAS_CONSTANT
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
    "CalibrationSpec",
    "FitSettings",
    "HalfNormalPrior",
    "LogNormalPrior",
    "NormalPrior",
    "Prior",
    "Protocol",
    "TwinSettings",
    "TwinSpec",
    "UniformPrior",
    "load_twin_spec",
    "parameter_quantity",
    "protocol_waveform",
]

FloatArray = npt.NDArray[np.float64]


# --------------------------------------------------------------------------- priors


@dataclass(frozen=True, slots=True)
class LogNormalPrior:
    """ln p ~ Normal(ln ``median``, ``scale``): ``median`` in the parameter's SI unit,
    ``scale`` the standard deviation of ln p (dimensionless)."""

    median: float
    scale: float
    dist: Literal["lognormal"] = "lognormal"


@dataclass(frozen=True, slots=True)
class NormalPrior:
    """p ~ Normal(``mean``, ``sd``), both in the parameter's SI unit."""

    mean: float
    sd: float
    dist: Literal["normal"] = "normal"


@dataclass(frozen=True, slots=True)
class BetaPrior:
    """p ~ Beta(``a``, ``b``) on (0, 1) (the transfer coefficient)."""

    a: float
    b: float
    dist: Literal["beta"] = "beta"


@dataclass(frozen=True, slots=True)
class UniformPrior:
    """p ~ Uniform(``low``, ``high``) in the parameter's SI unit (a bounded prior)."""

    low: float
    high: float
    dist: Literal["uniform"] = "uniform"


@dataclass(frozen=True, slots=True)
class HalfNormalPrior:
    """p ~ |Normal(0, ``scale``)|, ``scale`` in the parameter's SI unit (Ru, Cdl, noise)."""

    scale: float
    dist: Literal["halfnormal"] = "halfnormal"


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


@dataclass(frozen=True, slots=True)
class Protocol:
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
        durations = np.array([duration(self.waveform_of(k)) for k in range(self.cycles)])
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

    def _before(self, cycles: int) -> tuple[Protocol, float, FloatArray, FloatArray]:
        """The protocol of ``cycles`` cycles before t = 0 (and the recorded one), their
        span (s) and their samples ``(t, E)`` from 0 to the span."""
        before = Protocol(self.waveforms[:1], cycles + 1, self.rest, self.sample_rate)
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
                    inside = (t > starts[k]) & (t <= self._ends[k])
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
            inside = (t > starts[k]) & (t <= self._ends[k])
            if not isinstance(wf, Staircase) or not np.any(inside):
                continue
            u = t[inside] - starts[k]
            j = np.clip(np.ceil(u / wf.t_step - 1e-9) - 1, 0, wf.steps - 1)
            jumped = starts[k] + j * wf.t_step
            jump_at[inside] = np.where(jumped >= before[inside], jumped, np.nan)
            a, b = wf.sample
            at_end = np.abs(u - (j + b) * wf.t_step) <= 1e-6 * wf.t_step
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
                j = np.clip(np.ceil(u / wf.t_step - 1e-9) - 1, 0, wf.steps - 1).astype(np.int64)
                E[inside] = wf.levels()[j]
            elif np.any(inside):
                E[inside] = potential(wf, t[inside] - starts[k])
        last = t > ends[-1]
        if np.any(last):
            E[last] = potential(self.waveform_of(self.cycles - 1), np.array([1e300]))[0]
        return E


def protocol_waveform(
    protocol: Protocol, first_cycle: int = 0, count: int | None = None
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


@dataclass(frozen=True, slots=True)
class FitSettings:
    """How the posterior mode is searched for (see :func:`twins.calibration.laplace_fit`).

    The search has converged when the Newton step is shorter than ``step_tolerance``
    posterior standard deviations, or when a step lowers the objective (the negative log
    posterior, nats) by less than ``objective_tolerance`` while the step is within a
    tenth of a posterior sd. It gives up after ``max_evaluations`` engine runs. When the
    first start fails or ends at a poor fit, up to ``starts`` starts in all are tried,
    the others drawn from the prior (seeded: the same data give the same fit).
    """

    max_evaluations: int = 200
    step_tolerance: float = 1e-3
    objective_tolerance: float = 1e-6
    starts: int = 4


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


@dataclass(frozen=True, slots=True)
class TwinSettings:
    """The twin's own settings: the predictive ``band`` probability, and drift detection:
    drift is declared when more than ``drift_fraction`` of the last ``drift_window``
    samples fall outside the band. A time step over ``gap`` times the nominal sample
    interval is a gap in the data. The measured potential's noise is filtered by a
    running median over ``potential_window`` samples (1: none; see
    :mod:`twins.samples`)."""

    band: float = 0.9
    drift_window: int = 400
    drift_fraction: float = 0.5
    gap: float = 5.0
    potential_window: int = 32


@dataclass(frozen=True, slots=True)
class TwinSpec:
    """A validated twin spec; see the module docstring for the YAML form."""

    name: str
    seed: int
    instrument: str
    protocol: Protocol
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
        a sample closes it (:meth:`Protocol.cycle_closes` of its last cycle)."""
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

_V = Quantity("potential", "V", "[electric_potential]")
_S = Quantity("time", "s", "[time]")
_HZ = Quantity("frequency", "Hz", "1/[time]")
_A = Quantity("current", "A", "[current]")
_NONE = Quantity("dimensionless number", "dimensionless", "[]")

_CONCENTRATION = Quantity("concentration", "mol/m^3", "[substance]/[length]**3")

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


def _reader(node: object, path: str) -> Reader:
    return Reader(node, path, error=TwinSpecError, root="<spec>")


def load_twin_spec(source: str | os.PathLike[str] | Mapping[str, Any] | TwinSpec) -> TwinSpec:
    """Load and validate a twin spec from a YAML file path, a YAML string or a mapping.

    A ``model:`` given as a path is read relative to the spec file's directory (or the
    working directory for a mapping). Raises :class:`TwinSpecError` naming the key.
    """
    if isinstance(source, TwinSpec):
        return source
    doc, path = read_document(source, error=TwinSpecError, root="<spec>")
    if path is None:
        return _parse(doc, Path.cwd(), "twin")
    return _parse(doc, path.resolve().parent, path.stem)


def resolve_document(source: str | os.PathLike[str]) -> dict[str, Any]:
    """A twin spec file as plain data with its model inlined (SI mapping), so it can be
    sent to a daemon whose working directory differs from the caller's."""
    spec = load_twin_spec(source)
    doc, _ = read_document(source, error=TwinSpecError, root="<spec>")
    resolved = dict(cast(Mapping[str, Any], doc))
    resolved["model"] = spec.model.to_mapping()
    return resolved


def _parse(doc: object, base: Path, default_name: str) -> TwinSpec:
    top = _reader(doc, "")
    name = top.text("name", default=default_name)
    seed = top.integer("seed", default=0, lo=0, hi=2**63 - 1)
    instrument = "sim"
    if top.has("instrument"):
        raw = top.raw("instrument")
        if not isinstance(raw, str) or not raw.strip():
            raise TwinSpecError(
                "instrument",
                f"got {show(raw)}; accepted: 'sim' or an instrument resource string",
            )
        instrument = raw
    if not top.has("model"):
        raise TwinSpecError("model", "required key is missing (a scenario file or mapping)")
    model = _parse_model(top.raw("model"), base)
    protocol = _parse_protocol(top.child("protocol"), model)
    calibrate_reader = top.optional_child("calibrate")
    calibrate = None if calibrate_reader is None else _parse_calibrate(calibrate_reader, model)
    twin_reader = top.optional_child("twin")
    twin = TwinSettings() if twin_reader is None else _parse_twin(twin_reader)
    for key in ("procedure", "replay", "import"):
        if top.has(key):
            top.raw(key)
    top.finish(_TOP_KEYS)
    return TwinSpec(name, seed, instrument, protocol, model, calibrate, twin)


def _parse_model(raw: object, base: Path) -> Scenario:
    try:
        if isinstance(raw, str):
            path = Path(raw) if Path(raw).is_absolute() else base / raw
            if not path.is_file():
                raise TwinSpecError("model", f"no such scenario file: {str(path)!r}")
            return load_scenario(path)
        if isinstance(raw, Mapping):
            return load_scenario(raw)
    except ScenarioError as exc:
        where = "model" if exc.path == "<scenario>" else f"model.{exc.path}"
        raise TwinSpecError(where, str(exc).split(": ", 1)[-1]) from None
    raise TwinSpecError("model", f"got {show(raw)}; accepted: a scenario file path or mapping")


def _parse_protocol(r: Reader, model: Scenario) -> Protocol:
    if not r.has("waveform"):
        raise TwinSpecError(r.key("waveform"), "required key is missing (a waveform or a list)")
    raw = r.raw("waveform")
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise TwinSpecError(r.key("waveform"), "got []; accepted: a waveform or a non-empty list")
    waveforms = []
    base = model.to_mapping()
    # The cycles before the recorded ones are the protocol's own first waveform.
    base.pop("initial_state", None)
    for i, item in enumerate(items):
        path = r.key("waveform") + (f"[{i}]" if isinstance(raw, list) else "")
        try:
            waveforms.append(load_scenario({**base, "waveform": item}).waveform)
        except ScenarioError as exc:
            sub = exc.path.removeprefix("waveform")
            raise TwinSpecError(path + sub, str(exc).split(": ", 1)[-1]) from None
    cycles = r.integer("cycles", default=len(waveforms), lo=1, hi=100_000)
    rest = r.number("rest", _S, default=0.0, lo=0.0, hi=1e6)
    rate = r.number("sample_rate", _HZ, default=100.0, lo=0.0, hi=1e7, lo_open=True)
    r.finish(("waveform", "cycles", "rest", "sample_rate"))
    return Protocol(tuple(waveforms), cycles, rest, rate)


def _parse_calibrate(r: Reader, model: Scenario) -> CalibrationSpec:
    known = model.parameters()
    params = r.child("parameters")
    if not params.node:
        raise TwinSpecError(
            params.path, "no parameters; accepted: at least one of " + ", ".join(known)
        )
    names: list[str] = []
    priors: list[Prior] = []
    for key in list(params.node):
        path = params.key(str(key))
        if not isinstance(key, str) or key not in known:
            raise TwinSpecError(
                path,
                f"{key!r} is not a parameter of model {model.name!r}; accepted: {', '.join(known)}",
            )
        suffix = key.rsplit(".", 1)[-1]
        quantity, support = _PARAMETER_QUANTITY[suffix]
        priors.append(_parse_prior(params.child(key), quantity, support))
        names.append(key)
    params.finish(tuple(known))
    noise: float | Prior
    if not r.has("noise"):
        noise = HalfNormalPrior(_noise_scale(model))
    else:
        raw = r.raw("noise")
        if isinstance(raw, Mapping):
            noise = _parse_prior(r.nested(raw, r.key("noise")), _A, "positive")
        else:
            noise = r.number("noise", _A, lo=0.0, lo_open=True)
    every = _parse_cadence(r.raw("every"), r.key("every")) if r.has("every") else Cadence()
    forgetting = r.number("forgetting", _NONE, default=1.0, lo=0.0, hi=1.0, lo_open=True)
    drift = [0.0] * len(names)
    dr = r.optional_child("drift")
    if dr is not None:
        for key in list(dr.node):
            if key not in names:
                raise TwinSpecError(
                    dr.key(str(key)),
                    f"not a calibrated parameter; accepted: {', '.join(names)}",
                )
            drift[names.index(key)] = dr.number(key, _NONE, lo=0.0, hi=10.0)
        dr.finish(tuple(names))
    svi_steps = r.integer("svi_steps", default=20, lo=0, hi=100_000)
    nuts_warmup, nuts_samples = 200, 200
    nr = r.optional_child("nuts")
    if nr is not None:
        nuts_warmup = nr.integer("warmup", default=200, lo=1, hi=1_000_000)
        nuts_samples = nr.integer("samples", default=200, lo=2, hi=1_000_000)
        nr.finish(("warmup", "samples"))
    fit = FitSettings()
    fr = r.optional_child("fit")
    if fr is not None:
        fit = FitSettings(
            fr.integer("max_evaluations", default=fit.max_evaluations, lo=2, hi=100_000),
            fr.number("step_tolerance", _NONE, default=fit.step_tolerance, lo=1e-8, hi=1.0),
            fr.number(
                "objective_tolerance", _NONE, default=fit.objective_tolerance, lo=0.0, hi=1e3
            ),
            fr.integer("starts", default=fit.starts, lo=1, hi=100),
        )
        fr.finish(("max_evaluations", "step_tolerance", "objective_tolerance", "starts"))
    per_run = _parse_per_run(r, names)
    r.finish(
        (
            "parameters",
            "noise",
            "every",
            "forgetting",
            "drift",
            "svi_steps",
            "nuts",
            "fit",
            "per_run",
        )
    )
    return CalibrationSpec(
        tuple(names),
        tuple(priors),
        noise,
        every,
        forgetting,
        tuple(drift),
        svi_steps,
        nuts_warmup,
        nuts_samples,
        fit,
        per_run,
    )


def _parse_per_run(r: Reader, names: list[str]) -> tuple[str, ...]:
    """``per_run``: a list of calibrated parameters, ``noise`` among them or not."""
    if not r.has("per_run"):
        return ("noise",)
    raw = r.raw("per_run")
    accepted = [*names, "noise"]
    if not isinstance(raw, list):
        raise TwinSpecError(
            r.key("per_run"), f"got {show(raw)}; accepted: a list of {', '.join(accepted)}"
        )
    out: list[str] = []
    for i, item in enumerate(raw):
        if item not in accepted:
            raise TwinSpecError(
                f"{r.key('per_run')}[{i}]",
                f"got {show(item)}; accepted: one of {', '.join(accepted)}",
            )
        if item not in out:
            out.append(str(item))
    return tuple(out)


def _parse_cadence(raw: object, path: str) -> Cadence:
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 1:
        return Cadence("cycles", raw)
    er = _reader(raw, path)
    if len(er.node) != 1 or not (er.has("cycles") or er.has("samples")):
        raise TwinSpecError(
            path, f"got {show(raw)}; accepted: N, {{cycles: N}} or {{samples: N}} (N >= 1)"
        )
    unit: Literal["cycles", "samples"] = "cycles" if er.has("cycles") else "samples"
    return Cadence(unit, er.integer(unit, default=1, lo=1, hi=10**9))


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


def _parse_prior(r: Reader, quantity: Quantity, support: str) -> Prior:
    if not r.has("dist"):
        raise TwinSpecError(
            r.key("dist"), f"required key is missing; accepted: {', '.join(PRIOR_KINDS)}"
        )
    kind = r.raw("dist")
    if kind not in PRIOR_KINDS:
        raise TwinSpecError(r.key("dist"), f"got {show(kind)}; accepted: {', '.join(PRIOR_KINDS)}")
    fitting = {"positive": _POSITIVE, "unit": _UNIT, "real": _REAL}[support]
    if kind not in fitting:
        where = {"positive": "positive", "unit": "in (0, 1)", "real": "real"}[support]
        raise TwinSpecError(
            r.key("dist"),
            f"got {kind!r}, which does not fit a parameter that is {where}; "
            f"accepted: {', '.join(fitting)}",
        )
    prior: Prior
    if kind == "lognormal":
        prior = LogNormalPrior(
            r.number("median", quantity, lo=0.0, lo_open=True),
            r.number("scale", _NONE, lo=0.0, hi=20.0, lo_open=True),
        )
        keys: tuple[str, ...] = ("dist", "median", "scale")
    elif kind == "normal":
        prior = NormalPrior(
            r.number("mean", quantity), r.number("sd", quantity, lo=0.0, lo_open=True)
        )
        keys = ("dist", "mean", "sd")
    elif kind == "beta":
        prior = BetaPrior(
            r.number("a", _NONE, lo=0.0, hi=1e4, lo_open=True),
            r.number("b", _NONE, lo=0.0, hi=1e4, lo_open=True),
        )
        keys = ("dist", "a", "b")
    elif kind == "uniform":
        low = r.number("low", quantity)
        high = r.number("high", quantity)
        if not high > low:
            raise TwinSpecError(
                r.key("high"), f"got {high:g}; accepted: a value above low ({low:g})"
            )
        if support == "positive" and low < 0:
            raise TwinSpecError(
                r.key("low"), f"got {low:g}; accepted: >= 0 (the parameter is positive)"
            )
        if support == "unit" and (low < 0 or high > 1):
            raise TwinSpecError(
                r.key("low" if low < 0 else "high"), "accepted: bounds within [0, 1]"
            )
        prior = UniformPrior(low, high)
        keys = ("dist", "low", "high")
    else:
        prior = HalfNormalPrior(r.number("scale", quantity, lo=0.0, lo_open=True))
        keys = ("dist", "scale")
    r.finish(keys)
    return prior


def _parse_twin(r: Reader) -> TwinSettings:
    band = r.number("band", _NONE, default=0.9, lo=0.5, hi=0.999)
    window = r.integer("drift_window", default=400, lo=10, hi=10**8)
    fraction = r.number("drift_fraction", _NONE, default=0.5, lo=0.0, hi=1.0, lo_open=True)
    if fraction <= 1.0 - band:
        raise TwinSpecError(
            r.key("drift_fraction"),
            f"got {fraction:g}; accepted: above {1.0 - band:g}, the fraction outside the "
            "band expected without drift",
        )
    gap = r.number("gap", _NONE, default=5.0, lo=1.0, hi=1e6, lo_open=True)
    potential_window = r.integer("potential_window", default=32, lo=1, hi=100_000)
    r.finish(("band", "drift_window", "drift_fraction", "gap", "potential_window"))
    return TwinSettings(band, window, fraction, gap, potential_window)
