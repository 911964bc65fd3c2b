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

Any mechanism is a reaction network: ``reactions`` instead of ``mechanism``,
``kinetics`` and ``chemistry``, each step with its own constants (see
:mod:`physics.network` for how steps are written); species given a ``Gamma`` are
adsorbed (``surface:`` holds their sites and isotherm)::

    reactions:
      - {step: A + e = B, E0: 0.0, k0: 1e-4, alpha: 0.5}
      - {step: C + e = D, E0: -0.2, model: nernst}
      - {step: A = C, kf: 10, kb: 1}
      - B = D, kf = 1e3, kb = 4.3           # the compact form of a step
    species: {A: {D: 1e-9, c_bulk: 1.0}, B: {D: 1e-9}, C: {D: 1e-9}, D: {D: 1e-9}}

The experiment around the mechanism: ``waveform.rotation_rate`` (a rotating disk),
``waveform.ac`` (a sine on the waveform) and ``impedance`` (a spectrum after it).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Annotated, Any, Literal, TypeAlias

import msgspec

from physics import network
from physics.errors import ScenarioError
from runtime.constants import FARADAY, GAS_CONSTANT, STANDARD_TEMPERATURE
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
    "ENGINES",
    "GEOMETRIES_1D",
    "GEOMETRIES_2D",
    "KINETICS_MODELS",
    "MECHANISMS",
    "AcPerturbation",
    "Adsorption",
    "Background",
    "Bulk",
    "CaStep",
    "CaWaveform",
    "Cell",
    "Chemistry",
    "Chronoamperometry",
    "CvWaveform",
    "CyclicVoltammetry",
    "Electrode",
    "ElectrodeDocument",
    "Engine",
    "Geometry",
    "Impedance",
    "InitialState",
    "Kinetics",
    "KineticsModel",
    "LinearSweep",
    "LsvWaveform",
    "Mechanism",
    "Numerics",
    "Piecewise",
    "PiecewiseWaveform",
    "PotentialStep",
    "Reaction",
    "ReactionDocument",
    "Scenario",
    "ScenarioDocument",
    "Species",
    "SpeciesDocument",
    "SquareWave",
    "Staircase",
    "StaircaseCvWaveform",
    "StaircaseLsvWaveform",
    "StepDocument",
    "Surface",
    "SwvWaveform",
    "TransferDocument",
    "Waveform",
    "WaveformDocument",
    "canonical_parameter",
    "equilibrium_coverage",
    "load_scenario",
    "scenario_from",
    "scenario_schema",
    "waveform_from",
    "with_numerics",
]

NamedMechanism: TypeAlias = Literal["E", "EC", "CE", "EC'", "ECE"]
Mechanism: TypeAlias = Literal["E", "EC", "CE", "EC'", "ECE", "network"]
KineticsModel: TypeAlias = Literal["butler-volmer", "marcus-hush-chidsey", "nernst"]
Geometry: TypeAlias = Literal["planar", "sphere", "cylinder", "disk", "ring", "band", "recessed"]
Engine: TypeAlias = Literal["numba", "fenicsx", "auto"]

MECHANISMS: tuple[str, ...] = ("E", "EC", "CE", "EC'", "ECE")
ISOTHERMS: tuple[str, ...] = ("langmuir", "frumkin")
# A dilute aqueous solution near room temperature: 0.01 cm^2/s (water at 25 C: 0.0089).
KINEMATIC_VISCOSITY = 1.0e-6
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
_ROTATION = Quantity("rotation rate", "rad/s", "1/[time]")
_VISCOSITY = Quantity("kinematic viscosity", "m^2/s", "[length]**2/[time]")
_GAMMA = Quantity("surface concentration", "mol/m^2", "[substance]/[length]**2")
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
    derived_by: int | None = None
    """In a reaction network, the chemistry step (index) whose equilibrium gives a
    ``derived`` bulk concentration."""
    adsorbed: bool = False
    """An adsorbed (surface-confined) species: no ``D`` or ``c_bulk`` (both 0), an
    initial surface concentration ``Gamma`` (mol/m^2) instead; ``derived`` when it
    starts at equilibrium with the bulk (the isotherm's value)."""
    Gamma: float = 0.0


@dataclass(frozen=True, slots=True)
class Reaction:
    """One step of a reaction network as the scenario gives it: the ``step``, its
    ``kind`` (``transfer``, ``chemical`` or ``adsorption``) and its ``index`` among the
    scenario's :attr:`Scenario.kinetics`, :attr:`Scenario.chemistry` or
    :attr:`Scenario.adsorption`, where its constants are."""

    step: network.Step
    kind: Literal["transfer", "chemical", "adsorption"]
    index: int


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
    surface: bool = False
    """Both species adsorbed: ``k0`` is then the surface rate constant ks (1/s)."""


@dataclass(frozen=True, slots=True)
class Adsorption:
    """The dissolved species ``dissolved`` adsorbs as ``adsorbed`` on the sites of
    :class:`Surface`: rate (mol/m^2/s) ``kf c (Gamma_max - Gamma_total) exp(g theta) -
    kb Gamma exp(-g theta)`` with ``theta = Gamma_total / Gamma_max``, ``c`` the
    dissolved species' concentration at the electrode, ``kf`` in m^3/(mol s) and ``kb``
    in 1/s; at equilibrium ``theta_i = (kf/kb) c (1 - theta) exp(2 g theta)`` (Frumkin;
    Langmuir at g = 0)."""

    kf: float
    kb: float
    dissolved: str
    adsorbed: str


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
    viscosity: Annotated[SI, Number(_VISCOSITY, lo=1e-8, hi=1e-2)] = KINEMATIC_VISCOSITY
    """Kinematic viscosity of the solution (m^2/s); it sets the flow to a rotating disk
    (:attr:`Scenario.rotation_rate`) and nothing else."""


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


class Surface(Document):
    """The adsorption sites: ``Gamma_max`` (mol/m^2) in all, shared by every adsorbed
    species, and the ``isotherm`` (``langmuir``, or ``frumkin`` with the interaction
    ``g``: > 0 attraction, < 0 repulsion; below 2, where the isotherm stays monotonic)."""

    Gamma_max: Annotated[SI, Number(_GAMMA, lo=0.0, hi=1.0, lo_open=True)]
    isotherm: Literal["langmuir", "frumkin"] = "langmuir"
    g: Annotated[SI, Number(_NONE, lo=-10.0, hi=2.0, hi_open=True)] = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.isotherm == "langmuir" and self.g != 0.0:
            raise Invalid("g", "used only by isotherm frumkin; remove it")


class AcPerturbation(Document):
    """A sine added to the waveform's potential (``waveform.ac``), as AC and Fourier-
    transformed AC voltammetry apply it: ``amplitude`` (V) and ``frequency`` (Hz)."""

    amplitude: Annotated[SI, Number(_E, lo=0.0, hi=1.0, lo_open=True)]
    frequency: Annotated[SI, Number(_FREQ, lo=0.0, hi=1e6, lo_open=True)]


class Impedance(Document):
    """An impedance spectrum to take after the waveform (at its last potential, on the
    state it leaves): frequencies from ``f_max`` down to ``f_min`` (Hz), ``per_decade``
    of them per decade (see :mod:`physics.impedance`)."""

    f_max: Annotated[SI, Number(_FREQ, lo=0.0, hi=1e7, lo_open=True)] = 1e5
    f_min: Annotated[SI, Number(_FREQ, lo=0.0, hi=1e7, lo_open=True)] = 1e-2
    per_decade: Annotated[Int, Integer(1, 1000)] = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.f_min >= self.f_max:
            raise Invalid(
                "f_min", f"got {self.f_min:g} Hz; accepted: below f_max ({self.f_max:g} Hz)"
            )


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
    reactions: tuple[Reaction, ...] = ()
    """The steps of a reaction network (``mechanism == "network"``), in the order given;
    empty for a named mechanism."""
    adsorption: tuple[Adsorption, ...] = ()
    """A network's adsorption steps (``X = Xads``)."""
    surface: Surface | None = None
    """The adsorption sites and isotherm, with adsorption steps."""
    rotation_rate: float = 0.0
    """Angular velocity (rad/s) of a rotating disk electrode (``waveform.rotation_rate``):
    the solution flows to the face of the disk as von Karman found, and species reach it
    by convective diffusion (Levich). 0: a stationary electrode."""
    ac: AcPerturbation | None = None
    """A sinusoidal perturbation on the waveform (``waveform.ac``)."""
    impedance: Impedance | None = None
    """An impedance spectrum to take at the end of the waveform (``impedance:``)."""

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
        transfers = _indexed("kinetics", self.kinetics)
        if self.reactions:
            transfers = [
                (f"reactions[{i}]", self.kinetics[r.index])
                for i, r in enumerate(self.reactions)
                if r.kind == "transfer"
            ]
        for prefix, k in transfers:
            if k.model != "nernst":
                out[f"{prefix}.{'ks' if k.surface else 'k0'}"] = k.k0
            if k.model == "butler-volmer":
                out[f"{prefix}.alpha"] = k.alpha
            out[f"{prefix}.E0"] = k.E0
        for i, r in enumerate(self.reactions):
            if r.kind in ("chemical", "adsorption"):
                steps = self.chemistry if r.kind == "chemical" else self.adsorption
                out[f"reactions[{i}].kf"] = steps[r.index].kf
                if r.step.reversible:
                    out[f"reactions[{i}].kb"] = steps[r.index].kb
        for s in self.species:
            if s.adsorbed:
                continue
            if s.D_ratio is None:
                out[f"species.{s.name}.D"] = s.D
            else:
                out[f"species.{s.name}.D_ratio"] = s.D_ratio
        out["cell.Ru"] = self.cell.Ru
        out["cell.Cdl"] = self.cell.Cdl
        for prefix, c in [] if self.reactions else _indexed("chemistry", self.chemistry):
            out[f"{prefix}.kf"] = c.kf
            out[f"{prefix}.kb"] = c.kb
        # The terms a real cell needs, after the mechanism's own.
        if self.bulk is not None:
            out["bulk.total"] = self.bulk.total
            out["bulk.fraction_oxidized"] = self.bulk.fraction_oxidized
        for s in self.species:
            if s.adsorbed:
                if not s.derived:
                    out[f"species.{s.name}.Gamma"] = s.Gamma
            elif not s.derived and not (self.bulk is not None and s.name in ("O", "R")):
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

    def entries(self) -> dict[str, float]:
        """Every numeric entry that :meth:`with_values` can set, by key path, with its
        value (SI): the :meth:`parameters`, and the other numbers of the scenario
        (``waveform.scan_rate``, ``waveform.E_vertex``, ``electrode.radius``,
        ``cell.T``, ``numerics.refine``, ...)."""
        out = dict(self.parameters())

        def walk(node: Any, path: str) -> None:
            if isinstance(node, Mapping):
                for key, value in node.items():
                    walk(value, f"{path}.{key}" if path else str(key))
            elif isinstance(node, list) and path in ("kinetics", "chemistry"):
                for i, item in enumerate(node):
                    walk(item, f"{path}[{i}]")
            elif isinstance(node, int | float) and not isinstance(node, bool):
                out.setdefault(path, float(node))

        walk(self.to_mapping(), "")
        return out

    def with_values(self, values: Mapping[str, float]) -> Scenario:
        """A copy with any of its :meth:`entries` replaced (key paths; SI units).

        Values are validated like the scenario's own (an integer entry such as
        ``waveform.cycles`` takes whole numbers only); an unknown key raises
        ``ScenarioError`` listing the accepted ones."""
        known = self.entries()
        params = self.parameters()
        doc = self.to_mapping()
        for name, value in values.items():
            canonical = canonical_parameter(self, name)
            if canonical not in known:
                raise ScenarioError(
                    name, f"not a numeric entry of this scenario; accepted: {', '.join(known)}"
                )
            v = float(value)
            if canonical not in params and isinstance(_get_path(doc, canonical), int):
                if not v.is_integer():
                    raise ScenarioError(canonical, f"got {v!r}; accepted: a whole number")
                _set_path(doc, canonical, int(v))
            else:
                _set_path(doc, canonical, v)
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
        if self.reactions:
            for key in ("mechanism", "kinetics", "chemistry"):
                doc.pop(key, None)
            doc["reactions"] = [self._reaction_mapping(r) for r in self.reactions]
        if self.surface is not None:
            doc["surface"] = msgspec.structs.asdict(self.surface)
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
        if self.cell.viscosity != KINEMATIC_VISCOSITY:
            doc["cell"]["viscosity"] = self.cell.viscosity
        if self.rotation_rate:
            doc["waveform"]["rotation_rate"] = self.rotation_rate
        if self.ac is not None:
            doc["waveform"]["ac"] = msgspec.structs.asdict(self.ac)
        if self.impedance is not None:
            doc["impedance"] = msgspec.structs.asdict(self.impedance)
        return doc

    def _species_mapping(self, s: Species) -> dict[str, Any]:
        if s.adsorbed:
            return {"Gamma": "equilibrium" if s.derived else s.Gamma}
        out: dict[str, Any] = {"D": s.D} if s.D_ratio is None else {"D_ratio": s.D_ratio}
        if not s.derived and not (self.bulk is not None and s.name in ("O", "R")):
            out["c_bulk"] = s.c_bulk
        return out

    def _reaction_mapping(self, r: Reaction) -> dict[str, Any]:
        out: dict[str, Any] = {"step": str(r.step)}
        if r.kind == "transfer":
            k = _kinetics_mapping(self.kinetics[r.index])
            k.pop("n")  # written in the step
            if self.kinetics[r.index].surface and "k0" in k:
                k["ks"] = k.pop("k0")
            return out | k
        c = self.chemistry[r.index] if r.kind == "chemical" else self.adsorption[r.index]
        out["kf"] = c.kf
        if r.step.reversible:
            out["kb"] = c.kb
        return out

    def internal_parameter(self, name: str) -> str:
        """The key path of a parameter among the scenario's kinetics, chemistry and
        adsorption: a network step's constant (``reactions[2].kf``) is its chemistry's,
        kinetics' or adsorption's (``chemistry[1].kf``; a surface couple's ``ks`` is its
        kinetics' ``k0``); other names are returned as they are."""
        m = _REACTION_PARAMETER.match(name)
        if m is None:
            return name
        r = self.reactions[int(m.group(1))]
        group = {"transfer": "kinetics", "chemical": "chemistry", "adsorption": "adsorption"}
        key = "k0" if m.group(2) == "ks" else m.group(2)
        return f"{group[r.kind]}[{r.index}].{key}"

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
_REACTION_PARAMETER = re.compile(r"^reactions\[(\d+)\]\.(\w+)$")


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


def _get_path(doc: dict[str, Any], path: str) -> Any:
    node: Any = doc
    for part in path.split("."):
        m = re.match(r"^(\w+)\[(\d+)\]$", part)
        if m is not None:
            node = node.get(m.group(1))
            node = node[int(m.group(2))] if isinstance(node, list) else None
        elif isinstance(node, Mapping):
            node = node.get(part)
            if isinstance(node, list) and part in ("kinetics", "chemistry"):
                node = node[0]
        else:
            return None
    return node


# --------------------------------------------------------------------------- the document
#
# The structs below are the scenario as a document says it (runtime.schema reads them:
# unknown keys, kinds, units and ranges); scenario_from() then applies the rules that
# span sections (the species a mechanism needs, the equilibrium of the bulk, ...) and
# builds the Scenario.

# A named mechanism's species are some of these; a network's are any names.
_SPECIES_NAMES = ("O", "R", "Z", "Y", "O2", "R2")
_SPECIES_NAME = r"^[A-Za-z][A-Za-z0-9_]*$"
_REACTIONS = (
    "a non-empty list of steps ('O + e = R, E0 = 0.1 V', {step: O + e = R, E0: 0.1 V} or "
    "{O + e = R: {E0: 0.1 V}}), or one string of steps separated by ';'"
)


@dataclass(frozen=True, slots=True)
class _Coverage:
    """``Gamma``: an initial surface concentration, or ``equilibrium`` (the isotherm's)."""

    def read(self, value: object) -> float | str:
        if value == "equilibrium":
            return "equilibrium"
        return float(_GAMMA_RANGE.read(value))

    def accepted(self) -> str:
        return f"{_GAMMA_RANGE.accepted()}; or equilibrium"

    def missing(self) -> str:
        return "required key is missing"

    def json_schema(self) -> dict[str, Any]:
        return {"anyOf": [_GAMMA_RANGE.json_schema(), {"const": "equilibrium"}]}


_GAMMA_RANGE = Number(_GAMMA, lo=0.0, hi=1.0)


class SpeciesDocument(Document):
    """One species under ``species:``; what is left out follows from the mechanism."""

    D: Annotated[SI | UnsetType, Number(_D, lo=1e-14, hi=1e-6)] = UNSET
    c_bulk: Annotated[SI | UnsetType, Number(_C, lo=0.0)] = UNSET
    D_ratio: Annotated[SI | UnsetType, Number(_NONE, lo=1e-3, hi=1e3)] = UNSET
    Gamma: Annotated[Any, _Coverage()] = UNSET

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


class ReactionDocument(Document, kw_only=True):
    """One step of ``reactions:`` and its constants; which ones it takes follows from
    the step (a transfer: ``model``, ``E0``, ``k0`` or, between adsorbed species,
    ``ks``, ``alpha``, ``reorganization_energy``; otherwise ``kf`` and ``kb``)."""

    step: Annotated[Str, Text()]
    model: KineticsModel | UnsetType = UNSET
    E0: Annotated[SI | UnsetType, Number(_E, lo=-10.0, hi=10.0)] = UNSET
    k0: Annotated[SI | UnsetType, _K0_RANGE] = UNSET
    ks: Annotated[SI | UnsetType, _KS_RANGE] = UNSET
    alpha: Annotated[SI | UnsetType, _ALPHA_RANGE] = UNSET
    reorganization_energy: Annotated[SI | UnsetType, _LAMBDA_RANGE] = UNSET
    kf: Annotated[SI | UnsetType, Describe(_RATE)] = UNSET
    kb: Annotated[SI | UnsetType, Describe(_RATE)] = UNSET


_KS_RANGE = Number(_K1, lo=1e-9, hi=1e12)
_ALPHA_RANGE = Number(_NONE, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
_TRANSFER_KEYS = ("step", "model", "E0", "k0", "alpha", "reorganization_energy")
_CHEMICAL_KEYS = ("step", "kf", "kb")


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
_ROTATION_RANGE = Number(_ROTATION, lo=0.0, hi=1e4)
_SCAN_RATE = _limited(_SCAN, LIMITS["scan_rate"])
_DURATION = _limited(_TIME, LIMITS["duration"])


class CvWaveform(Document, tag="cv", tag_field="type", kw_only=True):
    """``type: cv``: a cyclic voltammogram."""

    E_start: Annotated[SI, _POTENTIAL]
    E_vertex: Annotated[Any, _Vertices()]
    E_end: Annotated[SI | UnsetType, _POTENTIAL] = UNSET
    scan_rate: Annotated[SI, _SCAN_RATE]
    cycles: Annotated[Int, Integer(*CYCLES)] = 1
    rotation_rate: Annotated[SI, _ROTATION_RANGE] = 0.0
    ac: AcPerturbation | UnsetType = UNSET


class LsvWaveform(Document, tag="lsv", tag_field="type"):
    """``type: lsv``: a linear sweep."""

    E_start: Annotated[SI, _POTENTIAL]
    E_end: Annotated[SI, _POTENTIAL]
    scan_rate: Annotated[SI, _SCAN_RATE]
    rotation_rate: Annotated[SI, _ROTATION_RANGE] = 0.0
    ac: AcPerturbation | UnsetType = UNSET


class CaStep(Document):
    """One potential step of ``type: ca``."""

    E: Annotated[SI, _POTENTIAL]
    duration: Annotated[SI, _DURATION]


_STEPS = "a non-empty list of {E, duration}"


class CaWaveform(Document, tag="ca", tag_field="type"):
    """``type: ca``: chronoamperometry, potential steps from ``E_initial``."""

    steps: Annotated[list[CaStep], Describe(_STEPS)]
    E_initial: Annotated[SI | UnsetType, _POTENTIAL] = UNSET
    rotation_rate: Annotated[SI, _ROTATION_RANGE] = 0.0
    ac: AcPerturbation | UnsetType = UNSET

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
    rotation_rate: Annotated[SI, _ROTATION_RANGE] = 0.0


_PAIR = "a pair [t (s), E (V)]"
_POINTS = "a list of at least two [t, E] pairs"


class PiecewiseWaveform(Document, tag="piecewise", tag_field="type"):
    """``type: piecewise``: straight lines through ``[t, E]`` points."""

    points: Annotated[list[Annotated[list[Any], Describe(_PAIR)]], Describe(_POINTS)]
    rotation_rate: Annotated[SI, _ROTATION_RANGE] = 0.0
    ac: AcPerturbation | UnsetType = UNSET

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
    rotation_rate: Annotated[SI, _ROTATION_RANGE] = 0.0

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
    rotation_rate: Annotated[SI, _ROTATION_RANGE] = 0.0

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
    mechanism: NamedMechanism | UnsetType = UNSET
    species: Annotated[
        dict[str, SpeciesDocument],
        msgspec.Meta(extra_json_schema={"propertyNames": {"pattern": _SPECIES_NAME}}),
    ]
    kinetics: TransferDocument | list[TransferDocument] | UnsetType = UNSET
    chemistry: StepDocument | list[StepDocument] | UnsetType = UNSET
    reactions: Annotated[Any, Describe(_REACTIONS)] = UNSET
    surface: Surface | UnsetType = UNSET
    impedance: Impedance | UnsetType = UNSET
    electrode: ElectrodeDocument
    cell: Cell = msgspec.field(default_factory=Cell)
    waveform: WaveformDocument
    numerics: Numerics = msgspec.field(default_factory=Numerics)
    bulk: Bulk | UnsetType = UNSET
    background: Background = msgspec.field(default_factory=Background)
    initial_state: InitialState = msgspec.field(default_factory=InitialState)


def scenario_schema() -> dict[str, Any]:
    """The JSON Schema of a scenario document (what ``galvana schema scenario`` prints)."""
    schema = json_schema(ScenarioDocument, title="Galvana scenario")
    # The mechanism is a named one with its kinetics, or a reaction network: one of two
    # keys, which a struct's fields alone cannot say.
    schema["$defs"]["ScenarioDocument"]["oneOf"] = [
        {"required": ["kinetics"]},
        {"required": ["reactions"]},
    ]
    return schema


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
    mechanism: Mechanism
    reactions: tuple[Reaction, ...] = ()
    adsorption: tuple[Adsorption, ...] = ()
    surface: Surface | None = None
    if doc.reactions is not UNSET:
        mechanism = "network"
        net = _network(doc)
        reactions, kinetics, chemistry = net.reactions, net.kinetics, net.chemistry
        adsorption, surface = net.adsorption, net.surface
        bulk = _bulk(doc.bulk, net.dissolved)
        species = _complete_network_species(net)
    else:
        mechanism = "E" if isinstance(doc.mechanism, UnsetType) else doc.mechanism
        species_raw = _species(doc, mechanism)
        bulk = _bulk(doc.bulk, species_raw)
        kinetics = _kinetics(doc, mechanism)
        chemistry = _chemistry(doc, mechanism)
        species = _complete_species(species_raw, mechanism, chemistry)
    electrode = _electrode(doc.electrode, doc.engine)
    waveform = waveform_from(doc.waveform, "waveform")
    initial_state = _initial_state(doc.initial_state, waveform)
    rotation_rate = float(doc.waveform.rotation_rate)
    if rotation_rate > 0 and electrode.geometry != "planar":
        raise ScenarioError(
            "waveform.rotation_rate",
            f"got {rotation_rate:g} rad/s with electrode.geometry {electrode.geometry!r}; "
            "accepted: a rotation rate with a planar electrode (the face of a rotating disk)",
        )
    ac = getattr(doc.waveform, "ac", UNSET)
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
        reactions=reactions,
        adsorption=adsorption,
        surface=surface,
        rotation_rate=rotation_rate,
        ac=None if isinstance(ac, UnsetType) else ac,
        impedance=None if isinstance(doc.impedance, UnsetType) else doc.impedance,
    )
    _check_bulk_equilibrium(scenario)
    if reactions:
        _check_cycles(scenario)
    if not any(s.c_bulk > 0 or s.Gamma > 0 for s in species):
        raise ScenarioError(
            "species",
            "every c_bulk is 0; accepted: at least one species with c_bulk > 0 (or an "
            "adsorbed one with Gamma > 0)",
        )
    total = sum(s.Gamma for s in species)
    if surface is not None and total > surface.Gamma_max * (1 + 1e-9):
        raise ScenarioError(
            "surface.Gamma_max",
            f"got {surface.Gamma_max:g} mol/m^2, less than the adsorbed species' "
            f"{total:g} mol/m^2 in all; accepted: room for them",
        )
    return scenario


# Raw species entries: D, c_bulk and D_ratio as given (None when left out).
_RawSpecies: TypeAlias = tuple[float | None, float | None, float | None]


def _given(value: float | UnsetType) -> float | None:
    return None if isinstance(value, UnsetType) else value


def _species(doc: ScenarioDocument, mechanism: str) -> dict[str, _RawSpecies]:
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
        if sp.Gamma is not UNSET:
            raise ScenarioError(
                f"species.{key}.Gamma",
                "adsorbed species are part of a reaction network (reactions:); accepted "
                f"with mechanism {mechanism}: D, c_bulk, D_ratio",
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


def _kinetics(doc: ScenarioDocument, mechanism: str) -> tuple[Kinetics, ...]:
    if isinstance(doc.kinetics, UnsetType):
        raise ScenarioError(
            "kinetics", "required key is missing (one electron transfer, or a list of them)"
        )
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


def _chemistry(doc: ScenarioDocument, mechanism: str) -> tuple[Chemistry, ...]:
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
        step = next(
            (j for j, r in enumerate(s.reactions) if r.kind == "chemical" and r.index == i), i
        )
        cr = math.prod(s.species_named(n).c_bulk for n in chem.reactants)
        cp = math.prod(s.species_named(n).c_bulk for n in chem.products)
        forward, backward = chem.kf * cr, chem.kb * cp
        if abs(forward - backward) > 1e-6 * max(forward, backward):
            path = "chemistry" if len(s.chemistry) == 1 else f"chemistry[{i}]"
            if s.reactions:
                path = f"reactions[{step}]"
            reac = " * ".join(f"c_{n}" for n in chem.reactants)
            prod = " * ".join(f"c_{n}" for n in chem.products)
            raise ScenarioError(
                path,
                f"the bulk is not at chemical equilibrium: kf*{reac} = {forward:g} but "
                f"kb*{prod} = {backward:g} (mol/m^3/s); accepted: bulk concentrations with "
                f"kf*{reac} = kb*{prod}",
            )


# --------------------------------------------------------------------------- networks


@dataclass(frozen=True, slots=True)
class _Network:
    """What ``reactions`` (and the species and surface they need) read to."""

    reactions: tuple[Reaction, ...]
    kinetics: tuple[Kinetics, ...]
    chemistry: tuple[Chemistry, ...]
    adsorption: tuple[Adsorption, ...]
    dissolved: dict[str, _RawSpecies]
    adsorbed: dict[str, float | None]  # the initial Gamma; None: at equilibrium
    surface: Surface | None


def _network(doc: ScenarioDocument) -> _Network:
    """The steps of ``reactions`` with their constants, and the species they name."""
    for key in ("mechanism", "kinetics", "chemistry"):
        if getattr(doc, key) is not UNSET:
            raise ScenarioError(
                key,
                "not used with reactions (each step carries its own constants); give either "
                "a named mechanism with kinetics and chemistry, or reactions",
            )
    raw = doc.reactions
    items: list[object] = []
    if isinstance(raw, str):
        items = list(network.split_steps(raw))
    elif isinstance(raw, list):
        items = list(raw)
    if not items:
        raise ScenarioError("reactions", f"got {show(raw)}; accepted: {_REACTIONS}")
    parsed: list[tuple[network.Step, ReactionDocument, str]] = []
    for i, item in enumerate(items):
        path = f"reactions[{i}]"
        node = _step_item(item, path)
        rd = decode(node, ReactionDocument, error=ScenarioError, root="<scenario>", path=path)
        try:
            step = network.parse_step(rd.step)
        except ValueError as exc:
            raise ScenarioError(f"{path}.step", str(exc)) from None
        parsed.append((step, rd, path))
    named = tuple(dict.fromkeys(n for step, _, _ in parsed for n in step.species))
    dissolved, adsorbed = _network_species(doc, named, [step for step, _, _ in parsed])
    reactions: list[Reaction] = []
    kinetics: list[Kinetics] = []
    chemistry: list[Chemistry] = []
    adsorption: list[Adsorption] = []
    for step, rd, path in parsed:
        on_surface = [n in adsorbed for n in step.species]
        if step.transfer:
            surface = all(on_surface)
            if any(on_surface) and not surface:
                raise ScenarioError(
                    f"{path}.step",
                    f"{str(step)!r} joins an adsorbed and a dissolved species; accepted: a "
                    "transfer between two dissolved or two adsorbed species (adsorb or "
                    "desorb with a step of its own: 'O = Oads')",
                )
            kinetics.append(_transfer(rd, step, path, surface=surface))
            reactions.append(Reaction(step, "transfer", len(kinetics) - 1))
        elif any(on_surface):
            adsorption.append(_adsorption_step(rd, step, path, adsorbed))
            reactions.append(Reaction(step, "adsorption", len(adsorption) - 1))
        else:
            chemistry.append(_chemical_step(rd, step, path))
            reactions.append(Reaction(step, "chemical", len(chemistry) - 1))
    if not kinetics:
        raise ScenarioError(
            "reactions", "has no electron transfer; accepted: at least one step 'O + e = R'"
        )
    sites = None if isinstance(doc.surface, UnsetType) else doc.surface
    if sites is None and adsorption:
        raise ScenarioError(
            "surface",
            "required with an adsorption step: the sites species adsorb on "
            "({Gamma_max: ..., isotherm: langmuir or frumkin, g: ...})",
        )
    if sites is not None and not adsorption:
        raise ScenarioError(
            "surface", "used only with an adsorption step ('O = Oads'); remove it or add one"
        )
    return _Network(
        tuple(reactions),
        tuple(kinetics),
        tuple(chemistry),
        tuple(adsorption),
        dissolved,
        adsorbed,
        sites,
    )


def _step_item(item: object, path: str) -> Mapping[str, object]:
    """A step's text and its constants as a mapping from a list item: ``{step: TEXT,
    key: value}`` as it is, ``{TEXT: {key: value}}`` or ``"TEXT, key = value, ..."``."""
    if isinstance(item, str):
        text, *pairs = [p.strip() for p in item.split(",")]
        node: dict[str, object] = {"step": text}
        for pair in pairs:
            key, eq, value = pair.partition("=")
            if not eq or not key.strip() or not value.strip():
                raise ScenarioError(
                    path, f"{pair!r} is not 'key = value' (e.g. 'kf = 10 1/s', 'E0 = 0.1 V')"
                )
            node[key.strip()] = value.strip()
        return node
    if isinstance(item, Mapping):
        if "step" in item:
            return item
        if len(item) == 1:
            ((text, constants),) = item.items()
            if isinstance(text, str) and (constants is None or isinstance(constants, Mapping)):
                return {"step": text, **(constants or {})}
    raise ScenarioError(
        path,
        f"got {show(item)}; accepted: 'O + e = R, E0 = 0.1 V', {{step: O + e = R, E0: 0.1 V}} "
        "or {O + e = R: {E0: 0.1 V}}",
    )


def _only(rd: ReactionDocument, path: str, keys: Sequence[str]) -> None:
    """Refuse the constants a step of this kind does not take."""
    for name in ReactionDocument.keys():  # noqa: SIM118 - a struct's keys, not a dict's
        if name not in keys and getattr(rd, name) is not UNSET:
            raise ScenarioError(
                f"{path}.{name}", f"unknown key; accepted keys here: {listed(keys)}"
            )


def _transfer(rd: ReactionDocument, step: network.Step, path: str, *, surface: bool) -> Kinetics:
    """An electron transfer's constants; ``surface``: between adsorbed species (``ks``)."""
    rate = "ks" if surface else "k0"
    model = "butler-volmer" if isinstance(rd.model, UnsetType) else rd.model
    if surface and rd.k0 is not UNSET:
        raise ScenarioError(
            f"{path}.k0", "a couple of adsorbed species takes ks, the surface rate constant (1/s)"
        )
    _only(rd, path, tuple(k if k != "k0" else rate for k in _TRANSFER_KEYS))
    if isinstance(rd.E0, UnsetType):
        raise ScenarioError(f"{path}.E0", Number(_E, lo=-10.0, hi=10.0).missing())
    given = {k for k in (rate, "alpha", "reorganization_energy") if getattr(rd, k) is not UNSET}
    k0 = 1.0
    if model == "nernst":
        for unused in (rate, "alpha", "reorganization_energy"):
            if unused in given:
                raise ScenarioError(
                    f"{path}.{unused}", "not used by model nernst (reversible); remove it"
                )
    else:
        if rate not in given:
            raise ScenarioError(f"{path}.{rate}", (_KS_RANGE if surface else _K0_RANGE).missing())
        k0 = float(getattr(rd, rate))
    if model == "butler-volmer" and "reorganization_energy" in given:
        raise ScenarioError(
            f"{path}.reorganization_energy", "only used by model marcus-hush-chidsey"
        )
    lam = None
    if model == "marcus-hush-chidsey":
        if "alpha" in given:
            raise ScenarioError(
                f"{path}.alpha",
                "not used by marcus-hush-chidsey (the reorganization energy sets the "
                "asymmetry); remove it",
            )
        if step.electrons != 1:
            raise ScenarioError(
                f"{path}.step",
                f"{step.electrons} electrons; accepted: 1 (marcus-hush-chidsey describes "
                "one-electron steps)",
            )
        if isinstance(rd.reorganization_energy, UnsetType):
            raise ScenarioError(f"{path}.reorganization_energy", _LAMBDA_RANGE.missing())
        lam = rd.reorganization_energy
    alpha = 0.5 if isinstance(rd.alpha, UnsetType) else rd.alpha
    ox, red = step.reactants[0], step.products[0]
    return Kinetics(model, rd.E0, k0, alpha, step.electrons, lam, ox, red, surface)


def _rates(
    rd: ReactionDocument, step: network.Step, path: str, forward: Number, backward: Number
) -> tuple[float, float]:
    """``kf`` and ``kb`` (0 for an irreversible step) read in the units of their order."""
    _only(rd, path, _CHEMICAL_KEYS)
    if isinstance(rd.kf, UnsetType):
        raise ScenarioError(f"{path}.kf", forward.missing())
    if not step.reversible and rd.kb is not UNSET:
        raise ScenarioError(
            f"{path}.kb", "an irreversible step ('->') has no kb; write '=' for a reversible one"
        )
    if step.reversible and isinstance(rd.kb, UnsetType):
        raise ScenarioError(f"{path}.kb", backward.missing())
    try:
        kf = float(read(forward, rd.kf, "kf"))
        kb = 0.0 if isinstance(rd.kb, UnsetType) else float(read(backward, rd.kb, "kb"))
    except Invalid as exc:
        raise ScenarioError(f"{path}.{exc.key}", exc.message) from None
    return kf, kb


def _order_rate(count: int) -> Number:
    return Number(_K1 if count == 1 else _K2, lo=0.0, hi=1e12)


def _chemical_step(rd: ReactionDocument, step: network.Step, path: str) -> Chemistry:
    forward, backward = _order_rate(len(step.reactants)), _order_rate(len(step.products))
    kf, kb = _rates(rd, step, path, forward, backward)
    return Chemistry(kf, kb, len(step.reactants), step.reactants, step.products)


def _adsorption_step(
    rd: ReactionDocument, step: network.Step, path: str, adsorbed: Mapping[str, float | None]
) -> Adsorption:
    """``X = Xads``: the dissolved X adsorbs (kf, m^3/(mol s)) and desorbs (kb, 1/s)."""
    if (
        len(step.reactants) != 1
        or len(step.products) != 1
        or step.reactants[0] in adsorbed
        or step.products[0] not in adsorbed
    ):
        raise ScenarioError(
            f"{path}.step",
            f"{str(step)!r}: a step with adsorbed species other than an electron transfer "
            "is an adsorption, one dissolved species on the left and one adsorbed on the "
            "right (accepted: 'O = Oads', 'O -> Oads')",
        )
    kf, kb = _rates(rd, step, path, _order_rate(2), _order_rate(1))
    return Adsorption(kf, kb, step.reactants[0], step.products[0])


def _network_species(
    doc: ScenarioDocument, named: tuple[str, ...], steps: list[network.Step]
) -> tuple[dict[str, _RawSpecies], dict[str, float | None]]:
    """The dissolved species (D, c_bulk, D_ratio) and the adsorbed ones (those given a
    ``Gamma``: the initial surface concentration, or ``equilibrium``)."""
    for n in named:
        if n not in doc.species:
            first = next(i for i, step in enumerate(steps) if n in step.species)
            raise ScenarioError(
                f"species.{n}", f"required: {n} is in reactions[{first}] ({steps[first]})"
            )
    out: dict[str, _RawSpecies] = {}
    adsorbed: dict[str, float | None] = {}
    for key, sp in doc.species.items():
        if key not in named:
            raise ScenarioError(
                f"species.{key}",
                f"not in any reaction; accepted: the species of the reactions ({listed(named)})",
            )
        if sp.Gamma is not UNSET:
            for other in ("D", "c_bulk", "D_ratio"):
                if getattr(sp, other) is not UNSET:
                    raise ScenarioError(
                        f"species.{key}.{other}",
                        "an adsorbed species (given Gamma) has no diffusion coefficient or "
                        "bulk concentration; remove it, or Gamma for a dissolved species",
                    )
            adsorbed[key] = None if sp.Gamma == "equilibrium" else float(sp.Gamma)
            continue
        if not isinstance(sp.D_ratio, UnsetType) and (key == "O" or "O" not in named):
            raise ScenarioError(
                f"species.{key}.D_ratio",
                "D_ratio is relative to species O's D; accepted on species other than O "
                "when O is one of the reactions' species",
            )
        if isinstance(sp.D, UnsetType) and isinstance(sp.D_ratio, UnsetType):
            raise ScenarioError(
                f"species.{key}.D",
                f"required key is missing ({_D.name}, m^2/s; or Gamma for an adsorbed species)",
            )
        out[key] = (_given(sp.D), _given(sp.c_bulk), _given(sp.D_ratio))
    return out, adsorbed


def _complete_network_species(net: _Network) -> tuple[Species, ...]:
    """Species of a network: a bulk concentration left out is the equilibrium one with
    the species that a reversible chemical step with one product makes it from (along
    chains of such steps in the order they are given), else 0; an adsorbed species'
    ``Gamma: equilibrium`` is the isotherm's at those bulk concentrations."""
    raw = net.dissolved
    D_O = raw["O"][0] if "O" in raw else None
    known = {n: c for n, (_, c, _) in raw.items() if c is not None}
    derived_by: dict[str, int] = {}
    for rx in net.reactions:
        chem = net.chemistry[rx.index] if rx.kind == "chemical" else None
        if chem is None or chem.kb <= 0 or len(chem.products) != 1:
            continue
        (product,) = chem.products
        if product in known or not all(n in known for n in chem.reactants):
            continue
        known[product] = chem.kf * math.prod(known[n] for n in chem.reactants) / chem.kb
        derived_by[product] = rx.index
    gammas = _initial_coverage(net, known)
    out = []
    for name in dict.fromkeys([*raw, *net.adsorbed]):
        if name in net.adsorbed:
            out.append(
                Species(
                    name, 0.0, 0.0, net.adsorbed[name] is None, adsorbed=True, Gamma=gammas[name]
                )
            )
            continue
        given_D, _, ratio = raw[name]
        D = given_D
        if ratio is not None:
            assert D_O is not None
            D = ratio * D_O
        assert D is not None
        value = known.get(name, 0.0)
        out.append(Species(name, D, value, name in derived_by, ratio, derived_by.get(name)))
    return tuple(out)


def _initial_coverage(net: _Network, bulk: Mapping[str, float]) -> dict[str, float]:
    """Each adsorbed species' initial Gamma (mol/m^2): as given, or at equilibrium with
    the bulk through the isotherm (0 for one no adsorption step makes)."""
    out = {n: (g if g is not None else 0.0) for n, g in net.adsorbed.items()}
    pending = [n for n, g in net.adsorbed.items() if g is None]
    if not pending:
        return out
    surface = net.surface
    K = {a.adsorbed: a.kf / a.kb * bulk.get(a.dissolved, 0.0) for a in net.adsorption if a.kb > 0}
    if surface is None or not any(n in K for n in pending):
        bad = pending[0]
        raise ScenarioError(
            f"species.{bad}.Gamma",
            "equilibrium needs a reversible adsorption step that makes the species ('X = "
            f"{bad}', with kb > 0); accepted: a surface concentration (mol/m^2)",
        )
    fixed = sum(out.values())
    theta = equilibrium_coverage(sum(K.values()), surface.g, fixed / surface.Gamma_max)
    for n in pending:
        # Each adsorbate's share of the equilibrium coverage is its K c.
        share = K.get(n, 0.0) / sum(K.values()) if sum(K.values()) > 0 else 0.0
        out[n] = share * (theta - fixed / surface.Gamma_max) * surface.Gamma_max
    return out


def equilibrium_coverage(Kc: float, g: float, occupied: float = 0.0) -> float:
    """The total coverage theta (0 to 1) at adsorption equilibrium: the root of
    ``theta - occupied = Kc (1 - theta) exp(2 g theta)`` (Frumkin; Langmuir at g = 0),
    with ``Kc`` the sum of ``(kf/kb) c`` over the adsorbates that equilibrate and
    ``occupied`` the coverage of the others; bisection (for g < 2 the isotherm is
    monotonic and the root unique)."""
    lo, hi = occupied, 1.0
    if Kc <= 0.0 or occupied >= 1.0:
        return occupied
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid - occupied - Kc * (1.0 - mid) * math.exp(2.0 * g * mid) < 0.0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _check_cycles(s: Scenario) -> None:
    """Refuse a network whose reversible steps form a cycle that does not close
    thermodynamically, naming the cycle and a value that would close it."""
    f = FARADAY / (GAS_CONSTANT * s.cell.T)
    log_k: list[float | None] = []
    for rx in s.reactions:
        if rx.kind == "transfer":
            k = s.kinetics[rx.index]
            log_k.append(k.n * f * k.E0)
        else:
            c = s.chemistry[rx.index] if rx.kind == "chemical" else s.adsorption[rx.index]
            log_k.append(math.log(c.kf / c.kb) if c.kf > 0 and c.kb > 0 else None)
    labels = [f"reactions[{i}]" for i in range(len(s.reactions))]
    for cycle in network.cycles([rx.step for rx in s.reactions], log_k):
        if abs(cycle.mismatch) <= _CYCLE_TOLERANCE:
            continue
        last = cycle.steps[-1]
        value = log_k[last]
        assert value is not None
        closing = network.closing_log_k(cycle, last, value)
        rx = s.reactions[last]
        if rx.kind == "transfer":
            k = s.kinetics[rx.index]
            fix = f"reactions[{last}].E0 = {closing / (k.n * f):.6g} V"
        else:
            c = s.chemistry[rx.index] if rx.kind == "chemical" else s.adsorption[rx.index]
            fix = f"reactions[{last}].kb = {c.kf / math.exp(closing):.6g}"
        energy = cycle.mismatch * GAS_CONSTANT * s.cell.T
        raise ScenarioError(
            "reactions",
            f"the cycle {network.describe(cycle, labels)} is not thermodynamically "
            f"consistent: its standard free energies add up to {energy / 1e3:.3g} kJ/mol "
            f"({energy / FARADAY * 1e3:.3g} mV) instead of 0; accepted: constants that close "
            f"every cycle of reversible steps (here e.g. {fix})",
        )


# A cycle closes when its free energies add up to less than this (in RT): 26 uV, far
# below what any measurement resolves, yet above the rounding of constants computed
# from one another.
_CYCLE_TOLERANCE = 1e-3


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
