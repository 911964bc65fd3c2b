"""The twin spec schema: YAML (or a mapping) in, a validated frozen :class:`TwinSpec` out.

A twin spec says which instrument to measure with, what to apply (the protocol), which
physics scenario models the cell, and what to calibrate with which priors::

    name: ferrocene-twin
    seed: 7                          # seeds every random draw of the run (replays match)
    instrument: sim                  # or a VISA resource string
    protocol:
      waveform: {type: cv, E_start: 0.6, E_vertex: -0.1, scan_rate: 0.2}   # or a list
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
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import yaml

from physics import Scenario, ScenarioError, load_scenario
from physics.reader import Reader, read_document, show
from physics.scenario import CyclicVoltammetry, LinearSweep, Waveform, waveform_duration
from physics.units import Quantity
from physics.waveforms import applied_potential, segments
from twins.errors import TwinSpecError

__all__ = [
    "BetaPrior",
    "Cadence",
    "CalibrationSpec",
    "HalfNormalPrior",
    "LogNormalPrior",
    "NormalPrior",
    "Prior",
    "Protocol",
    "TwinSettings",
    "TwinSpec",
    "UniformPrior",
    "load_twin_spec",
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
    potential, sampled at ``sample_rate`` (Hz). Time 0 is the start of the first cycle."""

    waveforms: tuple[Waveform, ...]
    cycles: int
    rest: float
    sample_rate: float
    # Every cycle's end (s), computed once: the twin asks for the programmed potential
    # at every sample batch.
    _ends: FloatArray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # One duration per waveform, then every cycle's: a protocol's cost is not per cycle.
        each = np.array([waveform_duration(wf) for wf in self.waveforms])
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
        return segments(self.waveforms[0], start_jump=False)[2]

    def max_scan_rate(self) -> float:
        """The fastest sweep (V/s) of the protocol (0 when it has no sweep)."""
        rates = [
            wf.scan_rate for wf in self.waveforms if isinstance(wf, CyclicVoltammetry | LinearSweep)
        ]
        return max(rates, default=0.0)

    def trace_before(self, cycles: int) -> tuple[FloatArray, FloatArray]:
        """The programmed samples ``(t s, E V)`` of ``cycles`` cycles of the first
        waveform run before t = 0, each followed by the protocol's rest: times from
        ``-span`` (the cell at rest) to 0 (the first recorded cycle's start) at
        ``sample_rate``, both ends included. Empty arrays for 0 cycles."""
        if cycles <= 0:
            return np.zeros(0), np.zeros(0)
        one = Protocol(self.waveforms[:1], cycles + 1, self.rest, self.sample_rate)
        span = float(one.cycle_starts()[cycles])
        t, E = one.trace(span)
        # The last sample is the start of the recorded cycle itself, exactly.
        keep = t < span * (1.0 - 1e-12)
        t = np.append(t[keep], span) - span
        E = np.append(E[keep], self.initial_potential())
        return t, E

    def trace(self, t_end: float | None = None) -> tuple[FloatArray, FloatArray]:
        """The programmed samples ``(t s, E V)`` at ``sample_rate`` from 0 to the end (or
        ``t_end``): what a potentiostat running this protocol applies and reports."""
        end = self.duration if t_end is None else float(t_end)
        n = math.floor(end * self.sample_rate + 1e-9) + 1
        t = np.arange(n, dtype=np.float64) / self.sample_rate
        return t, self.potential_at(t)

    def potential_at(self, t: FloatArray) -> FloatArray:
        """The programmed potential (V) at times ``t`` (s), rests included."""
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
            E[hold] = segments(wf, start_jump=False)[2]
            inside = (t >= starts[k]) & (t <= ends[k])
            if k > 0:
                inside &= t > ends[k - 1]
            if np.any(inside):
                E[inside] = applied_potential(wf, t[inside] - starts[k])
        last = t > ends[-1]
        if np.any(last):
            E[last] = applied_potential(self.waveform_of(self.cycles - 1), np.array([1e300]))[0]
        return E


@dataclass(frozen=True, slots=True)
class Cadence:
    """How often the posterior is refreshed: every ``count`` protocol cycles, or every
    ``count`` samples (``unit``). Counted in data, never in wall-clock time, so a replay
    refreshes at exactly the same points."""

    unit: Literal["cycles", "samples"] = "cycles"
    count: int = 1


@dataclass(frozen=True, slots=True)
class CalibrationSpec:
    """What to calibrate and how.

    ``names`` and ``priors``: the calibrated parameters (key paths) and their priors.
    ``noise``: the measurement noise sd (A) when given, or its prior when learned.
    ``drift``: per parameter, the sd (unconstrained units: ln p for positive ones) by
    which it may random-walk between updates. ``forgetting`` divides the prior covariance
    at each update (1: remember everything). ``svi_steps`` refine each update's Laplace
    approximation by stochastic variational inference; ``nuts_warmup``/``nuts_samples``
    size the on-demand NUTS reference.
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
        ends = self.protocol.cycle_ends()
        every = self.calibrate.every.count if self.calibrate is not None else 1
        picked = ends[every - 1 :: every]
        if picked.size == 0 or picked[-1] != ends[-1]:
            picked = np.append(picked, ends[-1])
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
    text = Path(source).read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict):
        raise TwinSpecError("<spec>", "accepted: a mapping")
    doc["model"] = spec.model.to_mapping()
    return doc


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
    r.finish(("parameters", "noise", "every", "forgetting", "drift", "svi_steps", "nuts"))
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
    )


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
    """A weakly informative noise scale (A): 1 % of a Randles-Sevcik-sized peak at 0.1 V/s."""
    c = max(s.c_bulk for s in model.species)
    D = max(s.D for s in model.species)
    # Randles-Sevcik in its customary units: cm^2, mol/cm^3, cm^2/s.
    peak = 2.69e5 * (model.electrode.area * 1e4) * (c * 1e-6) * math.sqrt(D * 1e4 * 0.1)
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
