"""The scenario schema: YAML (or a mapping) in, validated frozen objects out.

Bare numbers are SI; strings with units (``"1 mM"``, ``"100 mV/s"``) are converted by
:mod:`runtime.units`. Every problem raises :class:`~physics.errors.ScenarioError`
naming the key path, the value and what is accepted.

Example::

    name: ferrocene-cv
    mechanism: E
    species: {O: {D: 1.0e-9, c_bulk: 1.0}, R: {D: 1.0e-9, c_bulk: 0.0}}
    kinetics: {model: butler-volmer, E0: 0.0, k0: 1.0e-2, alpha: 0.5, n: 1}
    electrode: {geometry: planar, area: 7.07e-6}
    cell: {T: 298.15, Ru: 0.0, Cdl: 0.0}
    waveform: {type: cv, E_start: 0.5, E_vertex: -0.5, scan_rate: 0.1}

A real cell adds, each key optional and each value calibratable (see
:meth:`Scenario.parameters`)::

    bulk: {total: 1 mM, fraction_oxidized: 0.3}   # instead of c_bulk on O and R
    species: {O: {D: 7.2e-10}, R: {D_ratio: 1.0}}  # D_R tied to D_O (ratio fitted or fixed)
    electrode: {geometry: planar, area: 7.07e-6}   # the electroactive area
    cell: {Ru: 50, Cdl: 1 uF, reference_offset: 5 mV}
    background: {offset: 20 nA, slope: 0.1 uA/V, Cdl_slope: 0.5 uF/V, E_pivot: 0.2}
    initial_state: {cycles_before: 2}              # cycles run before the recorded one
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Annotated, Any, Literal, TypeAlias

import msgspec

from physics.errors import ScenarioError
from runtime.constants import STANDARD_TEMPERATURE
from runtime.errors import WaveformError
from runtime.schema import (
    SI,
    UNSET,
    Describe,
    Document,
    ErrorFactory,
    Int,
    Integer,
    Invalid,
    Number,
    Str,
    Text,
    UnsetType,
    decode,
    json_schema,
    listed,
    read,
    read_document,
    show,
)
from runtime.units import Quantity

# Re-exported: a scenario's waveform is one of the shared waveforms.
from runtime.waveforms import (
    CYCLES,
    LIMITS,
    Chronoamperometry,
    CyclicVoltammetry,
    Limit,
    LinearSweep,
    Piecewise,
    PotentialStep,
    SquareWave,
    Staircase,
    Waveform,
    duration,
)

__all__ = [
    "Background",
    "Bulk",
    "Cell",
    "Chemistry",
    "Chronoamperometry",
    "CyclicVoltammetry",
    "Electrode",
    "InitialState",
    "Kinetics",
    "LinearSweep",
    "Numerics",
    "Piecewise",
    "PotentialStep",
    "Scenario",
    "ScenarioDocument",
    "Species",
    "SquareWave",
    "Staircase",
    "Waveform",
    "WaveformDocument",
    "canonical_parameter",
    "load_scenario",
    "scenario_from",
    "scenario_schema",
    "waveform_from",
]

Mechanism: TypeAlias = Literal["E", "EC", "CE", "EC'", "ECE"]
KineticsModel: TypeAlias = Literal["butler-volmer", "marcus-hush-chidsey", "nernst"]
Geometry: TypeAlias = Literal["planar", "sphere", "cylinder", "disk", "ring", "band", "recessed"]
Engine: TypeAlias = Literal["numba", "fenicsx", "auto"]

MECHANISMS: tuple[str, ...] = ("E", "EC", "CE", "EC'", "ECE")
KINETICS_MODELS: tuple[str, ...] = ("butler-volmer", "marcus-hush-chidsey", "nernst")
GEOMETRIES_1D: tuple[str, ...] = ("planar", "sphere", "cylinder")
GEOMETRIES_2D: tuple[str, ...] = ("disk", "ring", "band", "recessed")
ENGINES: tuple[str, ...] = ("numba", "fenicsx", "auto")

# Which species each mechanism involves. Required ones must appear under `species`;
# optional ones default to the diffusion coefficient of the species they are made
# from and to a bulk concentration at chemical equilibrium.
_REQUIRED_SPECIES: dict[str, tuple[str, ...]] = {
    "E": ("O", "R"),
    "EC": ("O", "R"),
    "CE": ("Y", "O", "R"),
    "EC'": ("O", "R"),
    "ECE": ("O", "R", "O2", "R2"),
}

_D = Quantity("diffusion coefficient", "m^2/s", "[length]**2/[time]")
_C = Quantity("concentration", "mol/m^3", "[substance]/[length]**3")
_E = Quantity("potential", "V", "[electric_potential]")
_K0 = Quantity("heterogeneous rate constant", "m/s", "[length]/[time]")
_K1 = Quantity("first-order rate constant", "1/s", "1/[time]")
_K2 = Quantity("second-order rate constant", "m^3/(mol*s)", "[length]**3/[substance]/[time]")
_LAMBDA = Quantity("reorganization energy", "J/mol", "[energy]/[substance]", "[energy]")
_AREA = Quantity("area", "m^2", "[length]**2")
_LENGTH = Quantity("length", "m", "[length]")
_T = Quantity("temperature", "K", "[temperature]")
_RU = Quantity("resistance", "ohm", "[resistance]")
_CDL = Quantity("capacitance", "F", "[capacitance]")
_SCAN = Quantity("scan rate", "V/s", "[electric_potential]/[time]")
_TIME = Quantity("time", "s", "[time]")
_FREQ = Quantity("frequency", "Hz", "1/[time]")
_NONE = Quantity("dimensionless number", "dimensionless", "[]")
_CURRENT = Quantity("current", "A", "[current]")
_CONDUCTANCE = Quantity("conductance", "A/V", "[current]/[electric_potential]")
_CDL_SLOPE = Quantity("capacitance per volt", "F/V", "[capacitance]/[electric_potential]")
_CDL_CURVATURE = Quantity(
    "capacitance per volt squared", "F/V^2", "[capacitance]/[electric_potential]**2"
)


def _limited(quantity: Quantity, limit: Limit) -> Number:
    """A number within one of the shared waveform ranges (:data:`runtime.waveforms.LIMITS`)."""
    return Number(quantity, limit.lo, limit.hi, limit.lo_open, limit.hi_open)


_POTENTIAL = _limited(_E, LIMITS["potential"])


# --------------------------------------------------------------------------- objects


@dataclass(frozen=True, slots=True)
class Species:
    """A dissolved species: diffusion coefficient ``D`` (m^2/s), bulk concentration (mol/m^3).

    ``derived`` marks a bulk concentration that was not given but computed from the
    chemical equilibrium with the species it is made from; it follows the rate
    constants when they change (:meth:`Scenario.with_parameters`). ``D_ratio``, when
    set, ties ``D`` to species O's: ``D = D_ratio * D_O`` (dimensionless), so a change
    of ``species.O.D`` moves both and the ratio itself is the parameter
    ``species.<name>.D_ratio``.
    """

    name: str
    D: float
    c_bulk: float
    derived: bool = False
    D_ratio: float | None = None


@dataclass(frozen=True, slots=True)
class Kinetics:
    """One heterogeneous electron transfer ``O + n e- = R``.

    ``E0`` formal potential (V), ``k0`` standard rate constant (m/s), ``alpha`` transfer
    coefficient (Butler-Volmer), ``reorganization_energy`` (J/mol, Marcus-Hush-Chidsey).
    ``oxidized`` and ``reduced`` name the species of the couple.
    """

    model: KineticsModel
    E0: float
    k0: float
    alpha: float
    n: int
    reorganization_energy: float | None
    oxidized: str
    reduced: str


@dataclass(frozen=True, slots=True)
class Chemistry:
    """One homogeneous step ``reactants = products`` with forward/backward rate constants.

    ``kf`` and ``kb`` are in 1/s for first-order steps and m^3/(mol s) for second-order
    ones (``order`` counts the reactants of the forward direction).
    """

    kf: float
    kb: float
    order: int
    reactants: tuple[str, ...]
    products: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Electrode:
    """The working electrode. ``area`` (m^2); ``radius`` and ``length`` (m) for curved ones.

    The 2D geometries (engine ``fenicsx``) are an inlaid ``disk`` of ``radius``; a
    ``ring`` from ``inner_radius`` to ``radius`` (the outer radius); a ``band`` of
    ``width`` and ``length`` (planar symmetry along its length); a ``recessed`` disk
    of ``radius`` at the bottom of a cylindrical pore ``depth`` deep. Their ``area``
    follows from the dimensions.
    """

    geometry: Geometry
    area: float
    radius: float | None = None
    length: float | None = None
    inner_radius: float | None = None
    width: float | None = None
    depth: float | None = None


class Cell(Document):
    """Temperature ``T`` (K), uncompensated resistance ``Ru`` (ohm), double-layer ``Cdl`` (F).

    ``reference_offset`` (V) is the potential of the measuring reference electrode on the
    scale the model's formal potentials are given on: the model's electrode potential
    is the measured one plus this offset. It shifts the faradaic response along the
    potential axis and nothing else (the background, :class:`Background`, is an
    empirical description of the measured curve and stays on the measured scale).
    """

    T: Annotated[SI, Number(_T, lo=200.0, hi=600.0)] = STANDARD_TEMPERATURE
    Ru: Annotated[SI, Number(_RU, lo=0.0, hi=1e9)] = 0.0
    Cdl: Annotated[SI, Number(_CDL, lo=0.0, hi=1.0)] = 0.0
    reference_offset: Annotated[SI, Number(_E, lo=-2.0, hi=2.0)] = 0.0


class Bulk(Document):
    """The bulk composition of the couple O/R given as a ``total`` concentration
    (mol/m^3) and the ``fraction_oxidized`` (0 to 1): ``c_O = total * fraction``,
    ``c_R = total * (1 - fraction)``. A partly oxidised solution then has its Nernstian
    rest potential ``E0 + RT/(nF) ln(c_O/c_R)``; the fraction is identified by a
    voltammogram even where the area and the total are not (it sets the ratio of the
    anodic and cathodic currents)."""

    total: Annotated[SI, Number(_C, lo=0.0, hi=1e5, lo_open=True)]
    fraction_oxidized: Annotated[SI, Number(_NONE, lo=0.0, hi=1.0)]


class Background(Document):
    """The current the mechanism does not explain, in two parts.

    Capacitive: the double-layer capacitance depends on the electrode potential as
    ``Cdl(E) = cell.Cdl + Cdl_slope (E - E_pivot) + Cdl_curvature (E - E_pivot)^2``
    (F, F/V, F/V^2), and its charging current ``Cdl(E) dE/dt`` follows the scan
    direction and flows through ``Ru`` (E is the interfacial potential). Faradaic-free:
    ``offset + slope (E_applied - E_pivot)`` (A, A/V) is added to the measured current
    (an instrument's current offset, a small leak or a slowly sloping baseline); it
    does not flow through the model's ``Ru``. ``E_pivot`` (V, measured scale) centres
    both polynomials, so that their coefficients stay uncorrelated over a window around
    it; it is not calibrated.
    """

    offset: Annotated[SI, Number(_CURRENT, lo=-1.0, hi=1.0)] = 0.0
    slope: Annotated[SI, Number(_CONDUCTANCE, lo=-1.0, hi=1.0)] = 0.0
    Cdl_slope: Annotated[SI, Number(_CDL_SLOPE, lo=-1.0, hi=1.0)] = 0.0
    Cdl_curvature: Annotated[SI, Number(_CDL_CURVATURE, lo=-1.0, hi=1.0)] = 0.0
    E_pivot: Annotated[SI, _POTENTIAL] = 0.0

    @property
    def faradaic_free(self) -> bool:
        """Whether the offset or the slope is non-zero."""
        return self.offset != 0.0 or self.slope != 0.0

    @property
    def capacitive(self) -> bool:
        """Whether the capacitance depends on the potential."""
        return self.Cdl_slope != 0.0 or self.Cdl_curvature != 0.0


class InitialState(Document):
    """The state the recorded experiment starts from: the cell at rest, after
    ``cycles_before`` cycles of the same waveform (a cyclic voltammogram, sweeping or
    staircase) that were run but not recorded. Results start with the first recorded
    cycle, at t = 0."""

    cycles_before: Annotated[Int, Integer(0, 1000)] = 0


class Numerics(Document):
    """Optional numerical controls; the defaults already meet the documented accuracy.

    ``potential_step`` (V) is the largest change of the applied potential per time step;
    ``refine`` scales every resolution at once (2.0 halves the potential step, the
    first grid spacing and the first time step after a jump, and doubles the number of
    grid points per decade), which is what convergence studies need. ``ranks`` is the
    number of MPI ranks the ``fenicsx`` engine runs on (the numba engine ignores it).
    """

    potential_step: Annotated[SI, Number(_E, lo=1e-5, hi=1e-2)] = 1.0e-3
    refine: Annotated[SI, Number(_NONE, lo=0.25, hi=16.0)] = 1.0
    ranks: Annotated[Int, Integer(1, 256)] = 1


@dataclass(frozen=True, slots=True)
class Scenario:
    """A validated, immutable description of one simulated experiment."""

    name: str
    engine: Engine
    mechanism: Mechanism
    species: tuple[Species, ...]
    kinetics: tuple[Kinetics, ...]
    chemistry: tuple[Chemistry, ...]
    electrode: Electrode
    cell: Cell
    waveform: Waveform
    numerics: Numerics = field(default_factory=Numerics)
    bulk: Bulk | None = None
    background: Background = field(default_factory=Background)
    initial_state: InitialState = field(default_factory=InitialState)

    def species_named(self, name: str) -> Species:
        """The species called ``name``; ``KeyError`` if the scenario has none."""
        for s in self.species:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def duration(self) -> float:
        """Total duration of the waveform (s), the recorded part: cycles run before it
        (``initial_state.cycles_before``) are in :attr:`duration_before`."""
        return duration(self.waveform)

    @property
    def duration_before(self) -> float:
        """Duration (s) of the cycles run before the recorded waveform (0 without any)."""
        n = self.initial_state.cycles_before
        if n == 0:
            return 0.0
        assert isinstance(self.waveform, CyclicVoltammetry | Staircase)
        return n * duration(self.waveform) / self.waveform.cycles

    def parameters(self) -> dict[str, float]:
        """The calibratable parameters by key path (``"kinetics.k0"``), with values in SI.

        Besides the kinetics, transport, Ru, Cdl and homogeneous rate constants: the
        bulk concentrations (``species.<name>.c_bulk`` of the species given one, or
        ``bulk.total`` and ``bulk.fraction_oxidized``), a diffusion coefficient tied to
        O's by its ratio (``species.<name>.D_ratio``), the electroactive area
        (``electrode.area``, 1D geometries), the reference offset
        (``cell.reference_offset``) and the background (``background.*`` but E_pivot).
        """
        out: dict[str, float] = {}
        for prefix, k in _indexed("kinetics", self.kinetics):
            if k.model != "nernst":
                out[f"{prefix}.k0"] = k.k0
            if k.model == "butler-volmer":
                out[f"{prefix}.alpha"] = k.alpha
            out[f"{prefix}.E0"] = k.E0
        for s in self.species:
            if s.D_ratio is None:
                out[f"species.{s.name}.D"] = s.D
            else:
                out[f"species.{s.name}.D_ratio"] = s.D_ratio
        out["cell.Ru"] = self.cell.Ru
        out["cell.Cdl"] = self.cell.Cdl
        for prefix, c in _indexed("chemistry", self.chemistry):
            out[f"{prefix}.kf"] = c.kf
            out[f"{prefix}.kb"] = c.kb
        # The terms a real cell needs, after the mechanism's own.
        if self.bulk is not None:
            out["bulk.total"] = self.bulk.total
            out["bulk.fraction_oxidized"] = self.bulk.fraction_oxidized
        for s in self.species:
            if not s.derived and not (self.bulk is not None and s.name in ("O", "R")):
                out[f"species.{s.name}.c_bulk"] = s.c_bulk
        if self.electrode.geometry in GEOMETRIES_1D:
            out["electrode.area"] = self.electrode.area
        out["cell.reference_offset"] = self.cell.reference_offset
        bg = self.background
        out["background.offset"] = bg.offset
        out["background.slope"] = bg.slope
        out["background.Cdl_slope"] = bg.Cdl_slope
        out["background.Cdl_curvature"] = bg.Cdl_curvature
        return out

    def with_parameters(self, values: Mapping[str, float]) -> Scenario:
        """A copy with the named parameters (key paths, as in :meth:`parameters`) replaced.

        Values are validated like the scenario's own; an unknown name raises
        ``ScenarioError`` listing the accepted ones.
        """
        doc = self.to_mapping()
        known = self.parameters()
        for name, value in values.items():
            canonical = canonical_parameter(self, name)
            if canonical not in known:
                raise ScenarioError(
                    name, f"not a parameter of this scenario; accepted: {', '.join(known)}"
                )
            _set_path(doc, canonical, float(value))
        return load_scenario(doc)

    def to_mapping(self) -> dict[str, Any]:
        """A plain mapping in SI units that :func:`load_scenario` turns back into this scenario."""
        wf = self.waveform
        waveform: dict[str, Any]
        if isinstance(wf, CyclicVoltammetry):
            waveform = {
                "type": "cv",
                "E_start": wf.E_start,
                "E_vertex": list(wf.vertices) if len(wf.vertices) > 1 else wf.vertices[0],
                "E_end": wf.E_end,
                "scan_rate": wf.scan_rate,
                "cycles": wf.cycles,
            }
        elif isinstance(wf, Chronoamperometry):
            waveform = {
                "type": "ca",
                "E_initial": wf.E_initial,
                "steps": [{"E": s.E, "duration": s.duration} for s in wf.steps],
            }
        elif isinstance(wf, Piecewise):
            waveform = {"type": "piecewise", "points": [list(p) for p in wf.points]}
        elif isinstance(wf, Staircase):
            a, b = wf.sample
            waveform = {
                "type": wf.type,
                "E_start": wf.E_start,
                "E_end": wf.E_end,
                "E_step": wf.E_step,
                "t_step": wf.t_step,
                "sample": b if a == b else [a, b],
                "cycles": wf.cycles,
            }
            if wf.vertices:
                waveform["E_vertex"] = list(wf.vertices)
        else:
            waveform = {f.name: getattr(wf, f.name) for f in fields(wf)}
        kinetics = [_kinetics_mapping(k) for k in self.kinetics]
        chemistry = [self._chemistry_mapping(c) for c in self.chemistry]
        doc: dict[str, Any] = {
            "name": self.name,
            "engine": self.engine,
            "mechanism": self.mechanism,
            "species": {s.name: self._species_mapping(s) for s in self.species},
            "kinetics": kinetics[0] if len(kinetics) == 1 else kinetics,
            "electrode": _electrode_mapping(self.electrode),
            "cell": {"T": self.cell.T, "Ru": self.cell.Ru, "Cdl": self.cell.Cdl},
            "waveform": waveform,
            "numerics": {
                "potential_step": self.numerics.potential_step,
                "refine": self.numerics.refine,
                "ranks": self.numerics.ranks,
            },
        }
        if chemistry:
            doc["chemistry"] = chemistry[0] if len(chemistry) == 1 else chemistry
        # The real-cell terms only when set, so that a plain scenario's mapping (which
        # the 2D engine's worker reads too) stays as it was.
        if self.cell.reference_offset != 0.0:
            doc["cell"]["reference_offset"] = self.cell.reference_offset
        if self.bulk is not None:
            doc["bulk"] = {
                "total": self.bulk.total,
                "fraction_oxidized": self.bulk.fraction_oxidized,
            }
        if self.background != Background():
            doc["background"] = msgspec.structs.asdict(self.background)
        if self.initial_state.cycles_before:
            doc["initial_state"] = {"cycles_before": self.initial_state.cycles_before}
        return doc

    def _species_mapping(self, s: Species) -> dict[str, Any]:
        out: dict[str, Any] = {"D": s.D} if s.D_ratio is None else {"D_ratio": s.D_ratio}
        if not s.derived and not (self.bulk is not None and s.name in ("O", "R")):
            out["c_bulk"] = s.c_bulk
        return out

    def _chemistry_mapping(self, c: Chemistry) -> dict[str, Any]:
        out: dict[str, Any] = {"kf": c.kf, "kb": c.kb, "order": c.order}
        if self.mechanism in ("EC", "EC'"):
            out["reactant"] = c.reactants[0]
        return out


def _electrode_mapping(e: Electrode) -> dict[str, Any]:
    if e.geometry in GEOMETRIES_2D:
        # The area of a 2D electrode follows from its dimensions; a ring's outer
        # radius is `radius` inside and `outer_radius` in a scenario.
        keys = {
            "disk": (("radius", e.radius),),
            "ring": (("inner_radius", e.inner_radius), ("outer_radius", e.radius)),
            "band": (("width", e.width), ("length", e.length)),
            "recessed": (("radius", e.radius), ("depth", e.depth)),
        }[e.geometry]
        return {"geometry": e.geometry, **dict(keys)}
    return {
        k: v
        for k, v in (
            ("geometry", e.geometry),
            ("area", e.area),
            ("radius", e.radius),
            ("length", e.length),
        )
        if v is not None
    }


def _kinetics_mapping(k: Kinetics) -> dict[str, Any]:
    out: dict[str, Any] = {"model": k.model, "E0": k.E0, "n": k.n}
    if k.model != "nernst":
        out["k0"] = k.k0
    if k.model == "butler-volmer":
        out["alpha"] = k.alpha
    if k.reorganization_energy is not None:
        out["reorganization_energy"] = k.reorganization_energy
    return out


def _indexed(key: str, items: Sequence[Any]) -> list[tuple[str, Any]]:
    if len(items) == 1:
        return [(key, items[0])]
    return [(f"{key}[{i}]", item) for i, item in enumerate(items)]


_INDEX_ZERO = re.compile(r"^(kinetics|chemistry)\[0\]\.")


def canonical_parameter(scenario: Scenario, name: str) -> str:
    """The canonical key path of a parameter: ``kinetics[0].k0`` is ``kinetics.k0`` when
    the scenario has a single electron transfer (likewise for ``chemistry``)."""
    m = _INDEX_ZERO.match(name)
    if m is not None:
        group = m.group(1)
        count = len(scenario.kinetics) if group == "kinetics" else len(scenario.chemistry)
        if count == 1:
            return group + "." + name[m.end() :]
    return name


def _set_path(doc: dict[str, Any], path: str, value: float) -> None:
    parts = path.split(".")
    head = parts[0]
    m = re.match(r"^(\w+)\[(\d+)\]$", head)
    node: Any
    if m is not None:
        node = doc[m.group(1)][int(m.group(2))]
    else:
        # Sections a plain scenario leaves out (background) are created.
        node = doc.setdefault(head, {})
        if isinstance(node, list):
            node = node[0]
    for part in parts[1:-1]:
        node = node[part]
    node[parts[-1]] = value


# --------------------------------------------------------------------------- the document
#
# The structs below are the scenario as a document says it (runtime.schema reads them:
# unknown keys, kinds, units and ranges); scenario_from() then applies the rules that
# span sections (the species a mechanism needs, the equilibrium of the bulk, ...) and
# builds the Scenario.

_SPECIES_NAMES = ("O", "R", "Z", "Y", "O2", "R2")


class SpeciesDocument(Document):
    """One species under ``species:``; what is left out follows from the mechanism."""

    D: Annotated[SI | UnsetType, Number(_D, lo=1e-14, hi=1e-6)] = UNSET
    c_bulk: Annotated[SI | UnsetType, Number(_C, lo=0.0)] = UNSET
    D_ratio: Annotated[SI | UnsetType, Number(_NONE, lo=1e-3, hi=1e3)] = UNSET

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.c_bulk, UnsetType) and self.c_bulk > 1e5:
            raise Invalid(
                "c_bulk", f"got {self.c_bulk:g}; accepted: a number in [0, 100000] mol/m^3"
            )
        if not isinstance(self.D_ratio, UnsetType) and not isinstance(self.D, UnsetType):
            raise Invalid(
                "D_ratio",
                "given with D; accepted: D (independent) or D_ratio (D = D_ratio * D_O)",
            )


class TransferDocument(Document, kw_only=True):
    """One electron transfer under ``kinetics:``."""

    model: KineticsModel = "butler-volmer"
    E0: Annotated[SI, Number(_E, lo=-10.0, hi=10.0)]
    k0: Annotated[SI | UnsetType, _K0_RANGE] = UNSET
    alpha: Annotated[SI | UnsetType, Number(_NONE, lo=0.0, hi=1.0, lo_open=True, hi_open=True)] = (
        UNSET
    )
    n: Annotated[Int, Integer(1, 6)] = 1
    reorganization_energy: Annotated[SI | UnsetType, _LAMBDA_RANGE] = UNSET

    def __post_init__(self) -> None:
        super().__post_init__()
        given = {k for k in ("k0", "alpha", "reorganization_energy") if getattr(self, k) != UNSET}
        if self.model == "nernst":
            for unused in ("k0", "alpha", "reorganization_energy"):
                if unused in given:
                    raise Invalid(unused, "not used by model nernst (reversible); remove it")
            return
        if "k0" not in given:
            raise Invalid("k0", _K0_RANGE.missing())
        if self.model == "butler-volmer" and "reorganization_energy" in given:
            raise Invalid("reorganization_energy", "only used by model marcus-hush-chidsey")
        if self.model == "marcus-hush-chidsey":
            if "alpha" in given:
                raise Invalid(
                    "alpha",
                    "not used by marcus-hush-chidsey (the reorganization energy sets "
                    "the asymmetry); remove it",
                )
            if self.n != 1:
                raise Invalid(
                    "n",
                    f"got {self.n}; accepted: 1 (marcus-hush-chidsey describes one-electron steps)",
                )
            if "reorganization_energy" not in given:
                raise Invalid("reorganization_energy", _LAMBDA_RANGE.missing())


_K0_RANGE = Number(_K0, lo=1e-15, hi=1e3)
_LAMBDA_RANGE = Number(_LAMBDA, lo=4.8e3, hi=9.7e5)
_RATE = "a rate constant (1/s for order 1, m^3/(mol s) for order 2), or a string with units"


class StepDocument(Document, kw_only=True):
    """The homogeneous step under ``chemistry:``; its rate constants' unit follows ``order``."""

    kf: Annotated[SI | UnsetType, Describe(_RATE)] = UNSET
    kb: Annotated[SI, Describe(_RATE)] = 0.0
    order: Annotated[Int, Integer(1, 2)] = 1
    reactant: Literal["R", "O"] | UnsetType = UNSET

    def __post_init__(self) -> None:
        super().__post_init__()
        rate = Number(_K1 if self.order == 1 else _K2, lo=0.0, hi=1e12)
        if isinstance(self.kf, UnsetType):
            raise Invalid("kf", rate.missing())
        msgspec.structs.force_setattr(self, "kf", read(rate, self.kf, "kf"))
        msgspec.structs.force_setattr(self, "kb", read(rate, self.kb, "kb"))


_LENGTH_RANGE = Number(_LENGTH, lo=1e-8, hi=1.0)
_ELECTRODE_LEAVES = {
    "area": Number(_AREA, lo=0.0, hi=1.0, lo_open=True),
    "radius": _LENGTH_RANGE,
    "length": Number(_LENGTH, lo=1e-8, hi=10.0),
    "inner_radius": _LENGTH_RANGE,
    "outer_radius": _LENGTH_RANGE,
    "width": _LENGTH_RANGE,
    "depth": Number(_LENGTH, lo=0.0, hi=1.0, lo_open=True),
}


class ElectrodeDocument(Document, kw_only=True):
    """The working electrode: which keys a geometry takes is checked by
    :func:`scenario_from` (after the engine, which decides the geometries)."""

    geometry: Geometry = "planar"
    area: Annotated[SI | UnsetType, _ELECTRODE_LEAVES["area"]] = UNSET
    radius: Annotated[SI | UnsetType, _ELECTRODE_LEAVES["radius"]] = UNSET
    length: Annotated[SI | UnsetType, _ELECTRODE_LEAVES["length"]] = UNSET
    inner_radius: Annotated[SI | UnsetType, _ELECTRODE_LEAVES["inner_radius"]] = UNSET
    outer_radius: Annotated[SI | UnsetType, _ELECTRODE_LEAVES["outer_radius"]] = UNSET
    width: Annotated[SI | UnsetType, _ELECTRODE_LEAVES["width"]] = UNSET
    depth: Annotated[SI | UnsetType, _ELECTRODE_LEAVES["depth"]] = UNSET


_GEOMETRY_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # geometry: (the keys it takes, in order; those of them it requires)
    "planar": (("geometry", "area"), ("area",)),
    "sphere": (("geometry", "radius", "area"), ("radius",)),
    "cylinder": (("geometry", "radius", "length", "area"), ("radius", "length")),
    "disk": (("geometry", "radius"), ("radius",)),
    "ring": (("geometry", "inner_radius", "outer_radius"), ("inner_radius", "outer_radius")),
    "band": (("geometry", "width", "length"), ("width", "length")),
    "recessed": (("geometry", "radius", "depth"), ("radius", "depth")),
}


@dataclass(frozen=True, slots=True)
class _Vertices:
    """``E_vertex``: a potential, or a non-empty list of them (read as a tuple)."""

    def read(self, value: object) -> float | tuple[float, ...]:
        if not isinstance(value, list):
            return float(_VERTEX.read(value))
        if not value:
            raise Invalid("", "got an empty list; accepted: " + self.accepted())
        return tuple(read(_VERTEX, v, f"[{i}]") for i, v in enumerate(value))

    def accepted(self) -> str:
        return "a potential or a list of potentials (V)"

    def missing(self) -> str:
        return "required key is missing"

    def json_schema(self) -> dict[str, Any]:
        one = _VERTEX.json_schema()
        return {"anyOf": [one, {"type": "array", "items": one, "minItems": 1}]}


_VERTEX = Number(_E, lo=LIMITS["potential"].lo, hi=LIMITS["potential"].hi)
_SCAN_RATE = _limited(_SCAN, LIMITS["scan_rate"])
_DURATION = _limited(_TIME, LIMITS["duration"])


class CvWaveform(Document, tag="cv", tag_field="type", kw_only=True):
    """``type: cv``: a cyclic voltammogram."""

    E_start: Annotated[SI, _POTENTIAL]
    E_vertex: Annotated[Any, _Vertices()]
    E_end: Annotated[SI | UnsetType, _POTENTIAL] = UNSET
    scan_rate: Annotated[SI, _SCAN_RATE]
    cycles: Annotated[Int, Integer(*CYCLES)] = 1


class LsvWaveform(Document, tag="lsv", tag_field="type"):
    """``type: lsv``: a linear sweep."""

    E_start: Annotated[SI, _POTENTIAL]
    E_end: Annotated[SI, _POTENTIAL]
    scan_rate: Annotated[SI, _SCAN_RATE]


class CaStep(Document):
    """One potential step of ``type: ca``."""

    E: Annotated[SI, _POTENTIAL]
    duration: Annotated[SI, _DURATION]


_STEPS = "a non-empty list of {E, duration}"


class CaWaveform(Document, tag="ca", tag_field="type"):
    """``type: ca``: chronoamperometry, potential steps from ``E_initial``."""

    steps: Annotated[list[CaStep], Describe(_STEPS)]
    E_initial: Annotated[SI | UnsetType, _POTENTIAL] = UNSET

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.steps:
            raise Invalid("steps", f"got []; accepted: {_STEPS}")


class SwvWaveform(Document, tag="swv", tag_field="type"):
    """``type: swv``: square-wave voltammetry."""

    E_start: Annotated[SI, _POTENTIAL]
    E_end: Annotated[SI, _POTENTIAL]
    E_step: Annotated[SI, _limited(_E, LIMITS["E_step"])]
    amplitude: Annotated[SI, _limited(_E, LIMITS["amplitude"])]
    frequency: Annotated[SI, _limited(_FREQ, LIMITS["frequency"])]


_PAIR = "a pair [t (s), E (V)]"
_POINTS = "a list of at least two [t, E] pairs"


class PiecewiseWaveform(Document, tag="piecewise", tag_field="type"):
    """``type: piecewise``: straight lines through ``[t, E]`` points."""

    points: Annotated[list[Annotated[list[Any], Describe(_PAIR)]], Describe(_POINTS)]

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.points) < 2:
            raise Invalid("points", f"got {show(self.points)}; accepted: {_POINTS}")
        time, potential = LIMITS["time"], LIMITS["potential"]
        at_time = Number(_TIME, lo=time.lo, hi=time.hi)
        at_potential = Number(_E, lo=potential.lo, hi=potential.hi)
        points = []
        for i, p in enumerate(self.points):
            if len(p) != 2:
                raise Invalid(f"points[{i}]", f"got {show(p)}; accepted: {_PAIR}")
            t = read(at_time, p[0], f"points[{i}][0]")
            points.append([t, read(at_potential, p[1], f"points[{i}][1]")])
        msgspec.structs.force_setattr(self, "points", points)


_STAIR_STEP = _limited(_E, LIMITS["staircase_step"])


class StaircaseCvWaveform(Document, tag="staircase_cv", tag_field="type", kw_only=True):
    """``type: staircase_cv``: a cyclic voltammogram in potential steps."""

    E_start: Annotated[SI, _POTENTIAL]
    E_vertex: Annotated[Any, _Vertices()]
    E_end: Annotated[SI | UnsetType, _POTENTIAL] = UNSET
    E_step: Annotated[SI, _STAIR_STEP]
    t_step: Annotated[SI | UnsetType, _DURATION] = UNSET
    scan_rate: Annotated[SI | UnsetType, _SCAN_RATE] = UNSET
    sample: Annotated[Any, Describe("a fraction of the step, or a window [a, b]")] = UNSET
    cycles: Annotated[Int, Integer(*CYCLES)] = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_staircase(self)


class StaircaseLsvWaveform(Document, tag="staircase_lsv", tag_field="type", kw_only=True):
    """``type: staircase_lsv``: a linear sweep in potential steps."""

    E_start: Annotated[SI, _POTENTIAL]
    E_end: Annotated[SI, _POTENTIAL]
    E_step: Annotated[SI, _STAIR_STEP]
    t_step: Annotated[SI | UnsetType, _DURATION] = UNSET
    scan_rate: Annotated[SI | UnsetType, _SCAN_RATE] = UNSET
    sample: Annotated[Any, Describe("a fraction of the step, or a window [a, b]")] = UNSET

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_staircase(self)


def _check_staircase(doc: StaircaseCvWaveform | StaircaseLsvWaveform) -> None:
    """Exactly one of ``t_step`` and ``scan_rate``; ``sample`` a point or a window."""
    has_t, has_rate = doc.t_step is not UNSET, doc.scan_rate is not UNSET
    if has_t == has_rate:
        raise Invalid(
            "t_step",
            "give either t_step (the step time) or scan_rate (E_step / t_step), not "
            + ("both" if has_t else "neither"),
        )
    sample: object = (1.0, 1.0)
    if isinstance(doc.sample, list):
        within = Number(_NONE, lo=0.0, hi=1.0)
        sample = tuple(read(within, x, f"sample[{i}]") for i, x in enumerate(doc.sample))
    elif doc.sample is not UNSET:
        sample = read(Number(_NONE, lo=0.0, hi=1.0, lo_open=True), doc.sample, "sample")
    msgspec.structs.force_setattr(doc, "sample", sample)


WaveformDocument: TypeAlias = (
    CvWaveform
    | LsvWaveform
    | CaWaveform
    | SwvWaveform
    | PiecewiseWaveform
    | StaircaseCvWaveform
    | StaircaseLsvWaveform
)
"""A waveform as a document gives it, by ``type``."""


class ScenarioDocument(Document, kw_only=True):
    """A scenario as its YAML says it (see the module docstring)."""

    name: Annotated[Str | UnsetType, Text()] = UNSET
    engine: Engine = "numba"
    mechanism: Mechanism = "E"
    species: Annotated[
        dict[str, SpeciesDocument],
        msgspec.Meta(extra_json_schema={"propertyNames": {"enum": list(_SPECIES_NAMES)}}),
    ]
    kinetics: TransferDocument | list[TransferDocument]
    chemistry: StepDocument | list[StepDocument] | UnsetType = UNSET
    electrode: ElectrodeDocument
    cell: Cell = msgspec.field(default_factory=Cell)
    waveform: WaveformDocument
    numerics: Numerics = msgspec.field(default_factory=Numerics)
    bulk: Bulk | UnsetType = UNSET
    background: Background = msgspec.field(default_factory=Background)
    initial_state: InitialState = msgspec.field(default_factory=InitialState)


def scenario_schema() -> dict[str, Any]:
    """The JSON Schema of a scenario document (what ``galvana schema scenario`` prints)."""
    return json_schema(ScenarioDocument, title="Galvana scenario")


# --------------------------------------------------------------------------- reading


def load_scenario(source: str | os.PathLike[str] | Mapping[str, Any] | Scenario) -> Scenario:
    """Load and validate a scenario from a YAML file path, a YAML string or a mapping.

    A string that names an existing file is read as a file; any other string is parsed
    as YAML text. Raises :class:`~physics.errors.ScenarioError` on any problem.
    """
    if isinstance(source, Scenario):
        return source
    doc, path = read_document(source, error=ScenarioError, root="<scenario>")
    document = decode(doc, ScenarioDocument, error=ScenarioError, root="<scenario>")
    return scenario_from(document, "scenario" if path is None else path.stem)


def scenario_from(doc: ScenarioDocument, default_name: str) -> Scenario:
    """The scenario a read document describes (``default_name`` when it names none):
    the rules that span its sections are checked here, each problem a
    :class:`~physics.errors.ScenarioError` naming the key."""
    mechanism = doc.mechanism
    species_raw = _species(doc)
    bulk = _bulk(doc.bulk, species_raw)
    kinetics = _kinetics(doc)
    chemistry = _chemistry(doc)
    species = _complete_species(species_raw, mechanism, chemistry)
    electrode = _electrode(doc.electrode, doc.engine)
    waveform = waveform_from(doc.waveform, "waveform")
    initial_state = _initial_state(doc.initial_state, waveform)
    scenario = Scenario(
        name=default_name if isinstance(doc.name, UnsetType) else doc.name,
        engine=doc.engine,
        mechanism=mechanism,
        species=species,
        kinetics=kinetics,
        chemistry=chemistry,
        electrode=electrode,
        cell=doc.cell,
        waveform=waveform,
        numerics=doc.numerics,
        bulk=bulk,
        background=doc.background,
        initial_state=initial_state,
    )
    _check_bulk_equilibrium(scenario)
    if not any(s.c_bulk > 0 for s in species):
        raise ScenarioError(
            "species", "every c_bulk is 0; accepted: at least one species with c_bulk > 0"
        )
    return scenario


# Raw species entries: D, c_bulk and D_ratio as given (None when left out).
_RawSpecies: TypeAlias = tuple[float | None, float | None, float | None]


def _given(value: float | UnsetType) -> float | None:
    return None if isinstance(value, UnsetType) else value


def _species(doc: ScenarioDocument) -> dict[str, _RawSpecies]:
    mechanism = doc.mechanism
    allowed = _mechanism_species(mechanism)
    for required in _REQUIRED_SPECIES[mechanism]:
        if required not in doc.species:
            raise ScenarioError(
                f"species.{required}",
                f"required for mechanism {mechanism} (species: {listed(allowed)})",
            )
    out: dict[str, _RawSpecies] = {}
    for key, sp in doc.species.items():
        if key not in allowed:
            raise ScenarioError(
                f"species.{key}",
                f"unknown species for mechanism {mechanism}; accepted: {listed(allowed)}",
            )
        if key == "O" and not isinstance(sp.D_ratio, UnsetType):
            raise ScenarioError(
                "species.O.D_ratio",
                "D_ratio is relative to species O's D; give O its D and the ratio to "
                "the other species",
            )
        out[key] = (_given(sp.D), _given(sp.c_bulk), _given(sp.D_ratio))
    return out


def _bulk(doc: Bulk | UnsetType, raw: dict[str, _RawSpecies]) -> Bulk | None:
    """The couple's bulk as total and fraction oxidised; filled into O's and R's c_bulk."""
    if isinstance(doc, UnsetType):
        return None
    total, fraction = doc.total, doc.fraction_oxidized
    for name, c in (("O", total * fraction), ("R", total * (1.0 - fraction))):
        D, given, ratio = raw[name]
        if given is not None:
            raise ScenarioError(
                f"species.{name}.c_bulk",
                "given twice: bulk (total, fraction_oxidized) sets it; remove one",
            )
        raw[name] = (D, c, ratio)
    return doc


def _mechanism_species(mechanism: str) -> tuple[str, ...]:
    return {
        "E": ("O", "R"),
        "EC": ("O", "R", "Z"),
        "CE": ("Y", "O", "R"),
        "EC'": ("O", "R", "Z"),
        "ECE": ("O", "R", "O2", "R2"),
    }[mechanism]


def _kinetics(doc: ScenarioDocument) -> tuple[Kinetics, ...]:
    mechanism = doc.mechanism
    couples = [("O", "R"), ("O2", "R2")] if mechanism == "ECE" else [("O", "R")]
    items = doc.kinetics if isinstance(doc.kinetics, list) else [doc.kinetics]
    if len(items) != len(couples):
        need = (
            "a list of two electron transfers (O/R, then O2/R2)"
            if len(couples) == 2
            else "one mapping"
        )
        raise ScenarioError("kinetics", f"mechanism {mechanism} takes {need}; got {len(items)}")
    return tuple(
        Kinetics(
            k.model,
            k.E0,
            1.0 if isinstance(k.k0, UnsetType) else k.k0,
            0.5 if isinstance(k.alpha, UnsetType) else k.alpha,
            k.n,
            _given(k.reorganization_energy),
            ox,
            red,
        )
        for k, (ox, red) in zip(items, couples, strict=True)
    )


def _chemistry(doc: ScenarioDocument) -> tuple[Chemistry, ...]:
    mechanism = doc.mechanism
    raw = doc.chemistry
    if mechanism == "E":
        if not isinstance(raw, UnsetType):
            raise ScenarioError(
                "chemistry",
                "mechanism E has no homogeneous step; remove it or choose EC, CE, EC' or ECE",
            )
        return ()
    if isinstance(raw, UnsetType):
        raise ScenarioError("chemistry", "required key is missing")
    step, path = raw, "chemistry"
    if isinstance(raw, list):
        if len(raw) != 1:
            raise ScenarioError(
                "chemistry", f"mechanism {mechanism} has one homogeneous step; got {len(raw)}"
            )
        step, path = raw[0], "chemistry[0]"
    assert isinstance(step, StepDocument)
    order, kf, kb = step.order, step.kf, step.kb
    assert not isinstance(kf, UnsetType)  # StepDocument requires it
    if mechanism not in ("EC", "EC'") and not isinstance(step.reactant, UnsetType):
        raise ScenarioError(
            f"{path}.reactant", "unknown key; accepted keys here: " + listed(("kf", "kb", "order"))
        )
    reactant = "R" if isinstance(step.reactant, UnsetType) else step.reactant
    product = "O" if reactant == "R" else "R"
    if mechanism in ("CE", "ECE") and order != 1:
        raise ScenarioError(f"{path}.order", f"got {order}; accepted for mechanism {mechanism}: 1")
    if mechanism == "EC":
        return (Chemistry(kf, kb, order, (reactant,) * order, ("Z",)),)
    if mechanism == "CE":
        return (Chemistry(kf, kb, 1, ("Y",), ("O",)),)
    if mechanism == "EC'":
        if kb != 0.0:
            raise ScenarioError(
                f"{path}.kb",
                f"got {kb:g}; accepted for mechanism EC' "
                "(catalytic regeneration is irreversible): 0",
            )
        reactants = (reactant,) if order == 1 else (reactant, "Z")
        return (Chemistry(kf, 0.0, order, reactants, (product,)),)
    return (Chemistry(kf, kb, 1, ("R",), ("O2",)),)  # ECE


def _complete_species(
    raw: dict[str, _RawSpecies],
    mechanism: str,
    chemistry: tuple[Chemistry, ...],
) -> tuple[Species, ...]:
    """Fill what was left out: a species made by a homogeneous step takes the diffusion
    coefficient of the species it is made from, and a bulk concentration at chemical
    equilibrium with it (0 when the step is irreversible). A ``D_ratio`` gives the
    diffusion coefficient as a multiple of O's."""
    raw = dict(raw)
    D_O = raw["O"][0]
    for name, (_, c, ratio) in list(raw.items()):
        if ratio is not None:
            if D_O is None:
                raise ScenarioError("species.O.D", f"required by species.{name}.D_ratio")
            raw[name] = (ratio * D_O, c, ratio)
    ratios = {name: entry[2] for name, entry in raw.items()}
    done = _complete_bulk({n: (D, c) for n, (D, c, _) in raw.items()}, mechanism, chemistry)
    return tuple(
        s
        if ratios.get(s.name) is None
        else Species(s.name, s.D, s.c_bulk, s.derived, ratios[s.name])
        for s in done
    )


def _complete_bulk(
    raw: dict[str, tuple[float | None, float | None]],
    mechanism: str,
    chemistry: tuple[Chemistry, ...],
) -> tuple[Species, ...]:
    names = list(_mechanism_species(mechanism))
    substrate = any("Z" in c.reactants for c in chemistry)
    if mechanism == "EC'" and not substrate:
        if "Z" in raw:
            raise ScenarioError(
                "species.Z",
                "the first-order EC' step has no substrate; remove it or set chemistry.order: 2",
            )
        names.remove("Z")
    if mechanism == "EC'" and substrate and ("Z" not in raw or None in raw["Z"]):
        raise ScenarioError(
            "species.Z", "the second-order EC' step needs the substrate Z with D and c_bulk"
        )
    out: dict[str, Species] = {}
    pending = []
    for name in names:
        D, c = raw.get(name, (None, None))
        made_by = [chem for chem in chemistry if name in chem.products]
        if D is not None and c is not None:
            out[name] = Species(name, D, c)
        elif not made_by:
            missing = "D" if D is None else "c_bulk"
            raise ScenarioError(f"species.{name}.{missing}", "required key is missing")
        else:
            pending.append((name, made_by[0]))
    for name, chem in pending:
        D_given, c_given = raw.get(name, (None, None))
        source = out[chem.reactants[0]]
        D = D_given if D_given is not None else source.D
        derived = False
        if c_given is not None:
            c = c_given
        elif chem.kb > 0:
            c = chem.kf * math.prod(out[r].c_bulk for r in chem.reactants) / chem.kb
            derived = True
        else:
            c = 0.0
        out[name] = Species(name, D, c, derived)
    return tuple(out[n] for n in names)


def _check_bulk_equilibrium(s: Scenario) -> None:
    for i, chem in enumerate(s.chemistry):
        cr = math.prod(s.species_named(n).c_bulk for n in chem.reactants)
        cp = math.prod(s.species_named(n).c_bulk for n in chem.products)
        forward, backward = chem.kf * cr, chem.kb * cp
        if abs(forward - backward) > 1e-6 * max(forward, backward):
            path = "chemistry" if len(s.chemistry) == 1 else f"chemistry[{i}]"
            reac = " * ".join(f"c_{n}" for n in chem.reactants)
            prod = " * ".join(f"c_{n}" for n in chem.products)
            raise ScenarioError(
                path,
                f"the bulk is not at chemical equilibrium: kf*{reac} = {forward:g} but "
                f"kb*{prod} = {backward:g} (mol/m^3/s); accepted: bulk concentrations with "
                f"kf*{reac} = kb*{prod}",
            )


def _electrode(doc: ElectrodeDocument, engine: str) -> Electrode:
    geometry = doc.geometry
    if geometry in GEOMETRIES_2D and engine == "numba":
        raise ScenarioError(
            "electrode.geometry",
            f"got {geometry!r}, a 2D geometry; accepted by engine numba: "
            f"{listed(GEOMETRIES_1D)}; set engine: fenicsx (or auto) for "
            f"{listed(GEOMETRIES_2D)}",
        )
    if engine == "fenicsx" and geometry in ("sphere", "cylinder"):
        raise ScenarioError(
            "electrode.geometry",
            f"got {geometry!r}; accepted by engine fenicsx: planar, "
            f"{listed(GEOMETRIES_2D)}; set engine: numba (or auto) for sphere and cylinder",
        )
    keys, required = _GEOMETRY_KEYS[geometry]
    for name in ElectrodeDocument.keys():  # noqa: SIM118 - a struct's keys, not a dict's
        value = getattr(doc, name)
        if name not in keys and value is not UNSET:
            raise ScenarioError(
                f"electrode.{name}", f"unknown key; accepted keys here: {listed(keys)}"
            )
        if name in required and value is UNSET:
            raise ScenarioError(f"electrode.{name}", _ELECTRODE_LEAVES[name].missing())
    d = {name: getattr(doc, name) for name in keys[1:]}
    if geometry == "planar":
        return Electrode("planar", d["area"])
    if geometry == "sphere":
        r = d["radius"]
        return Electrode("sphere", _or(d["area"], 4 * math.pi * r**2), r)
    if geometry == "cylinder":
        r, length = d["radius"], d["length"]
        return Electrode("cylinder", _or(d["area"], 2 * math.pi * r * length), r, length)
    if geometry == "disk":
        return Electrode("disk", math.pi * d["radius"] ** 2, d["radius"])
    if geometry == "ring":
        inner, outer = d["inner_radius"], d["outer_radius"]
        if outer <= inner:
            raise ScenarioError(
                "electrode.outer_radius",
                f"got {outer:g} m; accepted: larger than inner_radius ({inner:g} m)",
            )
        return Electrode("ring", math.pi * (outer**2 - inner**2), outer, inner_radius=inner)
    if geometry == "band":
        return Electrode("band", d["width"] * d["length"], length=d["length"], width=d["width"])
    return Electrode("recessed", math.pi * d["radius"] ** 2, d["radius"], depth=d["depth"])


def _or(value: float | UnsetType, default: float) -> float:
    return default if isinstance(value, UnsetType) else value


def _initial_state(doc: InitialState, waveform: Waveform) -> InitialState:
    cycles = doc.cycles_before
    if not cycles:
        return doc
    if not isinstance(waveform, CyclicVoltammetry | Staircase) or waveform.type == "staircase_lsv":
        raise ScenarioError(
            "initial_state.cycles_before",
            f"got {cycles} with a {waveform.type} waveform; accepted: 0, or cycles before "
            "a cv or staircase_cv waveform (the cycles run are the waveform's own)",
        )
    if cycles + waveform.cycles > CYCLES[1]:
        raise ScenarioError(
            "initial_state.cycles_before",
            f"got {cycles} with {waveform.cycles} recorded; accepted: at most "
            f"{CYCLES[1] - waveform.cycles} (at most {CYCLES[1]} cycles in all)",
        )
    if waveform.E_end != waveform.E_start:
        raise ScenarioError(
            "initial_state.cycles_before",
            f"got {cycles} with E_end ({waveform.E_end:g}) != E_start "
            f"({waveform.E_start:g}); accepted: a cycle that ends where it starts",
        )
    return doc


def waveform_from(
    doc: WaveformDocument, path: str, error: ErrorFactory = ScenarioError
) -> Waveform:
    """The shared waveform a read waveform document describes; the waveform's own rules
    are checked by its class (:mod:`runtime.waveforms`) and a problem raises
    ``error(key, message)`` (a :class:`~physics.errors.ScenarioError`) naming the
    document's key below ``path``."""
    try:
        if isinstance(doc, CvWaveform | StaircaseCvWaveform):
            vertices = doc.E_vertex if isinstance(doc.E_vertex, tuple) else (doc.E_vertex,)
            E_end = _or(doc.E_end, doc.E_start)
            if isinstance(doc, CvWaveform):
                return CyclicVoltammetry(doc.E_start, vertices, E_end, doc.scan_rate, doc.cycles)
            t_step = _t_step(doc)
            return Staircase(
                doc.E_start, vertices, E_end, doc.E_step, t_step, doc.sample, doc.cycles
            )
        if isinstance(doc, StaircaseLsvWaveform):
            t_step = _t_step(doc)
            return Staircase(
                doc.E_start, (), doc.E_end, doc.E_step, t_step, doc.sample, 1, "staircase_lsv"
            )
        if isinstance(doc, LsvWaveform):
            return LinearSweep(doc.E_start, doc.E_end, doc.scan_rate)
        if isinstance(doc, CaWaveform):
            steps = tuple(PotentialStep(s.E, s.duration) for s in doc.steps)
            return Chronoamperometry(steps, _or(doc.E_initial, steps[0].E))
        if isinstance(doc, SwvWaveform):
            return SquareWave(doc.E_start, doc.E_end, doc.E_step, doc.amplitude, doc.frequency)
        return Piecewise(tuple((t, E) for t, E in doc.points))
    except WaveformError as exc:
        raise error(_waveform_key(doc, exc.field, path), exc.reason) from None


def _t_step(doc: StaircaseCvWaveform | StaircaseLsvWaveform) -> float:
    if isinstance(doc.t_step, UnsetType):
        assert not isinstance(doc.scan_rate, UnsetType)  # one of the two, checked on reading
        return doc.E_step / doc.scan_rate
    return doc.t_step


def _waveform_key(doc: WaveformDocument, field: str, path: str) -> str:
    """The document key of a shared waveform's field: ``cv.vertices[1]`` is
    ``E_vertex[1]`` (``E_vertex`` when one vertex was given bare),
    ``piecewise.points[2].t`` is ``points[2][0]``; below ``path``."""
    name = field.split(".", 1)[1]
    if name.startswith("vertices"):
        name = "E_vertex" + name.removeprefix("vertices")
        if name == "E_vertex[0]" and not isinstance(getattr(doc, "E_vertex", None), tuple):
            name = "E_vertex"
    name = re.sub(r"^points\[(\d+)\]\.t$", r"points[\1][0]", name)
    name = re.sub(r"^points\[(\d+)\]\.E$", r"points[\1][1]", name)
    return f"{path}.{name}"


def with_numerics(scenario: Scenario, **changes: float) -> Scenario:
    """A validated copy of ``scenario`` with numerical controls changed (``refine=2.0``)."""
    doc = scenario.to_mapping()
    doc["numerics"].update(changes)
    return load_scenario(doc)
