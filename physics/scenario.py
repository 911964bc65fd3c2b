"""The scenario schema: YAML (or a mapping) in, validated frozen objects out.

Bare numbers are SI; strings with units (``"1 mM"``, ``"100 mV/s"``) are converted by
:mod:`physics.units`. Every problem raises :class:`~physics.errors.ScenarioError`
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
:mod:`physics.network` for how steps are written)::

    reactions:
      - {step: A + e = B, E0: 0.0, k0: 1e-4, alpha: 0.5}
      - {step: C + e = D, E0: -0.2, model: nernst}
      - {step: A = C, kf: 10, kb: 1}
      - B = D, kf = 1e3, kb = 4.3           # the compact form of a step
    species: {A: {D: 1e-9, c_bulk: 1.0}, B: {D: 1e-9}, C: {D: 1e-9}, D: {D: 1e-9}}
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypeAlias

from physics import network
from physics.errors import ScenarioError
from physics.reader import Reader, listed, number, read_document, show
from physics.units import Quantity
from runtime.constants import FARADAY, GAS_CONSTANT, STANDARD_TEMPERATURE
from runtime.errors import WaveformError

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
    "AcPerturbation",
    "Adsorption",
    "Background",
    "Bulk",
    "Cell",
    "Chemistry",
    "Chronoamperometry",
    "CyclicVoltammetry",
    "Electrode",
    "Impedance",
    "InitialState",
    "Kinetics",
    "LinearSweep",
    "Numerics",
    "Piecewise",
    "PotentialStep",
    "Reaction",
    "Scenario",
    "Species",
    "SquareWave",
    "Staircase",
    "Surface",
    "Waveform",
    "canonical_parameter",
    "load_scenario",
]

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
_GAMMA = Quantity("surface concentration", "mol/m^2", "[substance]/[length]**2")
_VISCOSITY = Quantity("kinematic viscosity", "m^2/s", "[length]**2/[time]")
_NONE = Quantity("dimensionless number", "dimensionless", "[]")
_CURRENT = Quantity("current", "A", "[current]")
_CONDUCTANCE = Quantity("conductance", "A/V", "[current]/[electric_potential]")
_CDL_SLOPE = Quantity("capacitance per volt", "F/V", "[capacitance]/[electric_potential]")
_CDL_CURVATURE = Quantity(
    "capacitance per volt squared", "F/V^2", "[capacitance]/[electric_potential]**2"
)


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
class Surface:
    """The adsorption sites: ``Gamma_max`` (mol/m^2) in all, shared by every adsorbed
    species, and the ``isotherm`` (``langmuir``, or ``frumkin`` with the interaction
    ``g``: > 0 attraction, < 0 repulsion; below 2, where the isotherm stays monotonic)."""

    Gamma_max: float
    isotherm: Literal["langmuir", "frumkin"] = "langmuir"
    g: float = 0.0


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


@dataclass(frozen=True, slots=True)
class Cell:
    """Temperature ``T`` (K), uncompensated resistance ``Ru`` (ohm), double-layer ``Cdl`` (F).

    ``reference_offset`` (V) is the potential of the measuring reference electrode on the
    scale the model's formal potentials are given on: the model's electrode potential
    is the measured one plus this offset. It shifts the faradaic response along the
    potential axis and nothing else (the background, :class:`Background`, is an
    empirical description of the measured curve and stays on the measured scale).
    """

    T: float = STANDARD_TEMPERATURE
    Ru: float = 0.0
    Cdl: float = 0.0
    reference_offset: float = 0.0
    viscosity: float = KINEMATIC_VISCOSITY
    """Kinematic viscosity of the solution (m^2/s); it sets the flow to a rotating disk
    (:attr:`Scenario.rotation_rate`) and nothing else."""


@dataclass(frozen=True, slots=True)
class Bulk:
    """The bulk composition of the couple O/R given as a ``total`` concentration
    (mol/m^3) and the ``fraction_oxidized`` (0 to 1): ``c_O = total * fraction``,
    ``c_R = total * (1 - fraction)``. A partly oxidised solution then has its Nernstian
    rest potential ``E0 + RT/(nF) ln(c_O/c_R)``; the fraction is identified by a
    voltammogram even where the area and the total are not (it sets the ratio of the
    anodic and cathodic currents)."""

    total: float
    fraction_oxidized: float


@dataclass(frozen=True, slots=True)
class Background:
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

    offset: float = 0.0
    slope: float = 0.0
    Cdl_slope: float = 0.0
    Cdl_curvature: float = 0.0
    E_pivot: float = 0.0

    @property
    def faradaic_free(self) -> bool:
        """Whether the offset or the slope is non-zero."""
        return self.offset != 0.0 or self.slope != 0.0

    @property
    def capacitive(self) -> bool:
        """Whether the capacitance depends on the potential."""
        return self.Cdl_slope != 0.0 or self.Cdl_curvature != 0.0


@dataclass(frozen=True, slots=True)
class InitialState:
    """The state the recorded experiment starts from: the cell at rest, after
    ``cycles_before`` cycles of the same waveform (a cyclic voltammogram, sweeping or
    staircase) that were run but not recorded. Results start with the first recorded
    cycle, at t = 0."""

    cycles_before: int = 0


@dataclass(frozen=True, slots=True)
class AcPerturbation:
    """A sine added to the waveform's potential (``waveform.ac``), as AC and Fourier-
    transformed AC voltammetry apply it: ``amplitude`` (V) and ``frequency`` (Hz)."""

    amplitude: float
    frequency: float


@dataclass(frozen=True, slots=True)
class Impedance:
    """An impedance spectrum to take after the waveform (at its last potential, on the
    state it leaves): frequencies from ``f_max`` down to ``f_min`` (Hz), ``per_decade``
    of them per decade (see :mod:`physics.impedance`)."""

    f_max: float
    f_min: float
    per_decade: int = 10


@dataclass(frozen=True, slots=True)
class Numerics:
    """Optional numerical controls; the defaults already meet the documented accuracy.

    ``potential_step`` (V) is the largest change of the applied potential per time step;
    ``refine`` scales every resolution at once (2.0 halves the potential step, the
    first grid spacing and the first time step after a jump, and doubles the number of
    grid points per decade), which is what convergence studies need. ``ranks`` is the
    number of MPI ranks the ``fenicsx`` engine runs on (the numba engine ignores it).
    """

    potential_step: float = 1.0e-3
    refine: float = 1.0
    ranks: int = 1


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
    ac: AcPerturbation | None = None
    """A sinusoidal perturbation on the waveform (``waveform.ac``)."""
    impedance: Impedance | None = None
    """An impedance spectrum to take at the end of the waveform (``impedance:``)."""
    rotation_rate: float = 0.0
    """Angular velocity (rad/s) of a rotating disk electrode (``waveform.rotation_rate``):
    the solution flows to the face of the disk as von Karman found, and species reach it
    by convective diffusion (Levich). 0: a stationary electrode."""

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
            surface = self.surface
            doc["surface"] = {"Gamma_max": surface.Gamma_max, "isotherm": surface.isotherm}
            if surface.isotherm == "frumkin":
                doc["surface"]["g"] = surface.g
        # The real-cell terms only when set, so that a plain scenario's mapping (which
        # the 2D engine's worker reads too) stays as it was.
        if self.cell.reference_offset != 0.0:
            doc["cell"]["reference_offset"] = self.cell.reference_offset
        if self.cell.viscosity != KINEMATIC_VISCOSITY:
            doc["cell"]["viscosity"] = self.cell.viscosity
        if self.rotation_rate:
            doc["waveform"]["rotation_rate"] = self.rotation_rate
        if self.ac is not None:
            doc["waveform"]["ac"] = {"amplitude": self.ac.amplitude, "frequency": self.ac.frequency}
        if self.impedance is not None:
            doc["impedance"] = {f.name: getattr(self.impedance, f.name) for f in fields(Impedance)}
        if self.bulk is not None:
            doc["bulk"] = {
                "total": self.bulk.total,
                "fraction_oxidized": self.bulk.fraction_oxidized,
            }
        if self.background != Background():
            doc["background"] = {
                f.name: getattr(self.background, f.name) for f in fields(Background)
            }
        if self.initial_state.cycles_before:
            doc["initial_state"] = {"cycles_before": self.initial_state.cycles_before}
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
        """The key path of a parameter among the scenario's kinetics and chemistry: a
        network step's constant (``reactions[2].kf``) is its chemistry's or kinetics'
        (``chemistry[1].kf``); other names are returned as they are."""
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


# --------------------------------------------------------------------------- reading


def _reader(node: object, path: str) -> Reader:
    return Reader(node, path, error=ScenarioError, root="<scenario>")


def load_scenario(source: str | os.PathLike[str] | Mapping[str, Any] | Scenario) -> Scenario:
    """Load and validate a scenario from a YAML file path, a YAML string or a mapping.

    A string that names an existing file is read as a file; any other string is parsed
    as YAML text. Raises :class:`~physics.errors.ScenarioError` on any problem.
    """
    if isinstance(source, Scenario):
        return source
    doc, path = read_document(source, error=ScenarioError, root="<scenario>")
    return _parse(doc, "scenario" if path is None else path.stem)


_TOP_KEYS = (
    "name",
    "reactions",
    "surface",
    "impedance",
    "engine",
    "mechanism",
    "species",
    "kinetics",
    "chemistry",
    "electrode",
    "cell",
    "waveform",
    "numerics",
    "bulk",
    "background",
    "initial_state",
)


def _parse(doc: object, default_name: str) -> Scenario:
    top = _reader(doc, "")
    name = top.text("name", default=default_name)
    engine = top.choice("engine", ENGINES, default="numba")
    reactions: tuple[Reaction, ...] = ()
    adsorption: tuple[Adsorption, ...] = ()
    surface: Surface | None = None
    if top.has("reactions"):
        mechanism = "network"
        net = _parse_network(top)
        reactions, kinetics, chemistry = net.reactions, net.kinetics, net.chemistry
        adsorption, surface = net.adsorption, net.surface
        bulk = _parse_bulk(top, net.dissolved)
        species = _complete_network_species(net)
    else:
        mechanism = top.choice("mechanism", MECHANISMS, default="E")
        species_raw = _parse_species(top, mechanism)
        bulk = _parse_bulk(top, species_raw)
        kinetics = _parse_kinetics(top, mechanism)
        chemistry = _parse_chemistry(top, mechanism)
        species = _complete_species(species_raw, mechanism, chemistry)
    electrode = _parse_electrode(top, engine)
    cell = _parse_cell(top)
    waveform = _parse_waveform(top)
    rotation_rate = _parse_rotation(top, electrode)
    ac = _parse_ac(top, waveform)
    spectrum = _parse_impedance(top)
    numerics = _parse_numerics(top)
    background = _parse_background(top)
    initial_state = _parse_initial_state(top, waveform)
    top.finish(_TOP_KEYS)
    scenario = Scenario(
        name=name,
        engine=engine,  # type: ignore[arg-type]
        mechanism=mechanism,  # type: ignore[arg-type]
        species=species,
        kinetics=kinetics,
        chemistry=chemistry,
        electrode=electrode,
        cell=cell,
        waveform=waveform,
        numerics=numerics,
        bulk=bulk,
        background=background,
        initial_state=initial_state,
        reactions=reactions,
        adsorption=adsorption,
        surface=surface,
        rotation_rate=rotation_rate,
        impedance=spectrum,
        ac=ac,
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
    if surface is not None and sum(s.Gamma for s in species) > surface.Gamma_max * (1 + 1e-9):
        raise ScenarioError(
            "surface.Gamma_max",
            f"got {surface.Gamma_max:g} mol/m^2, less than the adsorbed species' "
            f"{sum(s.Gamma for s in species):g} mol/m^2 in all; accepted: room for them",
        )
    return scenario


# Raw species entries: D, c_bulk and D_ratio as given (None when left out).
_RawSpecies: TypeAlias = tuple[float | None, float | None, float | None]


def _parse_species(top: Reader, mechanism: str) -> dict[str, _RawSpecies]:
    reader = top.child("species")
    allowed = _mechanism_species(mechanism)
    out: dict[str, _RawSpecies] = {}
    for required in _REQUIRED_SPECIES[mechanism]:
        if not reader.has(required):
            raise ScenarioError(
                reader.key(required),
                f"required for mechanism {mechanism} (species: {listed(allowed)})",
            )
    for key in list(reader.node):
        if key not in allowed:
            raise ScenarioError(
                reader.key(str(key)),
                f"unknown species for mechanism {mechanism}; accepted: {listed(allowed)}",
            )
        sp = reader.child(key)
        D = sp.optional_number("D", _D, lo=1e-14, hi=1e-6)
        c = sp.optional_number("c_bulk", _C, lo=0.0)
        if c is not None and c > 1e5:
            raise ScenarioError(
                sp.key("c_bulk"), f"got {c:g}; accepted: a number in [0, 100000] mol/m^3"
            )
        ratio = None
        if sp.has("D_ratio"):
            if key == "O":
                raise ScenarioError(
                    sp.key("D_ratio"),
                    "D_ratio is relative to species O's D; give O its D and the ratio to "
                    "the other species",
                )
            if D is not None:
                raise ScenarioError(
                    sp.key("D_ratio"),
                    "given with D; accepted: D (independent) or D_ratio (D = D_ratio * D_O)",
                )
            ratio = sp.number("D_ratio", _NONE, lo=1e-3, hi=1e3)
        sp.finish(("D", "c_bulk", "D_ratio"))
        out[key] = (D, c, ratio)
    return out


def _parse_bulk(top: Reader, raw: dict[str, _RawSpecies]) -> Bulk | None:
    """The couple's bulk as total and fraction oxidised; filled into O's and R's c_bulk."""
    r = top.optional_child("bulk")
    if r is None:
        return None
    total = r.number("total", _C, lo=0.0, hi=1e5, lo_open=True)
    fraction = r.number("fraction_oxidized", _NONE, lo=0.0, hi=1.0)
    r.finish(("total", "fraction_oxidized"))
    for name, c in (("O", total * fraction), ("R", total * (1.0 - fraction))):
        D, given, ratio = raw[name]
        if given is not None:
            raise ScenarioError(
                f"species.{name}.c_bulk",
                "given twice: bulk (total, fraction_oxidized) sets it; remove one",
            )
        raw[name] = (D, c, ratio)
    return Bulk(total, fraction)


def _mechanism_species(mechanism: str) -> tuple[str, ...]:
    return {
        "E": ("O", "R"),
        "EC": ("O", "R", "Z"),
        "CE": ("Y", "O", "R"),
        "EC'": ("O", "R", "Z"),
        "ECE": ("O", "R", "O2", "R2"),
    }[mechanism]


_KINETICS_KEYS = ("model", "E0", "k0", "alpha", "n", "reorganization_energy")


def _parse_kinetics(top: Reader, mechanism: str) -> tuple[Kinetics, ...]:
    raw = top.require("kinetics")
    couples = [("O", "R"), ("O2", "R2")] if mechanism == "ECE" else [("O", "R")]
    items: list[tuple[object, str]]
    if isinstance(raw, list):
        items = [(item, f"kinetics[{i}]") for i, item in enumerate(raw)]
    else:
        items = [(raw, "kinetics")]
    if len(items) != len(couples):
        need = (
            "a list of two electron transfers (O/R, then O2/R2)"
            if len(couples) == 2
            else "one mapping"
        )
        raise ScenarioError("kinetics", f"mechanism {mechanism} takes {need}; got {len(items)}")
    return tuple(
        _parse_transfer(top.nested(node, path), ox, red)
        for (node, path), (ox, red) in zip(items, couples, strict=True)
    )


def _parse_transfer(
    r: Reader, ox: str, red: str, electrons: int | None = None, *, surface: bool = False
) -> Kinetics:
    """One electron transfer's constants; ``electrons`` when a network step sets n;
    ``surface`` for a couple of adsorbed species (rate constant ``ks``, 1/s)."""
    model = r.choice("model", KINETICS_MODELS, default="butler-volmer")
    E0 = r.number("E0", _E, lo=-10.0, hi=10.0)
    n = r.integer("n", default=1, lo=1, hi=6) if electrons is None else electrons
    k0 = 1.0
    alpha = 0.5
    lam: float | None = None
    rate = "ks" if surface else "k0"
    if model == "nernst":
        for unused in (rate, "alpha", "reorganization_energy"):
            if r.has(unused):
                raise ScenarioError(
                    r.key(unused), "not used by model nernst (reversible); remove it"
                )
    elif surface:
        if r.has("k0"):
            raise ScenarioError(
                r.key("k0"),
                "a couple of adsorbed species takes ks, the surface rate constant (1/s)",
            )
        k0 = r.number("ks", _K1, lo=1e-9, hi=1e12)
    else:
        k0 = r.number("k0", _K0, lo=1e-15, hi=1e3)
    if model == "butler-volmer":
        alpha = r.number("alpha", _NONE, default=0.5, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        if r.has("reorganization_energy"):
            raise ScenarioError(
                r.key("reorganization_energy"), "only used by model marcus-hush-chidsey"
            )
    if model == "marcus-hush-chidsey":
        if r.has("alpha"):
            raise ScenarioError(
                r.key("alpha"),
                "not used by marcus-hush-chidsey (the reorganization energy sets "
                "the asymmetry); remove it",
            )
        if n != 1:
            raise ScenarioError(
                r.key("n" if electrons is None else "step"),
                f"got {n}; accepted: 1 (marcus-hush-chidsey describes one-electron steps)",
            )
        lam = r.number("reorganization_energy", _LAMBDA, lo=4.8e3, hi=9.7e5)
    if electrons is None:
        r.finish(_KINETICS_KEYS)
    else:
        r.finish(tuple(k if k != "k0" else rate for k in _TRANSFER_KEYS))
    return Kinetics(model, E0, k0, alpha, n, lam, ox, red, surface)  # type: ignore[arg-type]


_CHEMISTRY_KEYS = ("kf", "kb", "order", "reactant")


def _parse_chemistry(top: Reader, mechanism: str) -> tuple[Chemistry, ...]:
    if mechanism == "E":
        if top.has("chemistry"):
            raise ScenarioError(
                "chemistry",
                "mechanism E has no homogeneous step; remove it or choose EC, CE, EC' or ECE",
            )
        return ()
    raw = top.require("chemistry")
    node: object = raw
    path = "chemistry"
    if isinstance(raw, list):
        if len(raw) != 1:
            raise ScenarioError(
                "chemistry", f"mechanism {mechanism} has one homogeneous step; got {len(raw)}"
            )
        node, path = raw[0], "chemistry[0]"
    r = top.nested(node, path)
    order = r.integer("order", default=1, lo=1, hi=2)
    k_quantity = _K1 if order == 1 else _K2
    kf = r.number("kf", k_quantity, lo=0.0, hi=1e12)
    kb = r.number("kb", k_quantity, default=0.0, lo=0.0, hi=1e12)
    reactant = "R"
    if mechanism in ("EC", "EC'"):
        reactant = r.choice("reactant", ("R", "O"), default="R")
    product = "O" if reactant == "R" else "R"
    if mechanism in ("CE", "ECE") and order != 1:
        raise ScenarioError(r.key("order"), f"got {order}; accepted for mechanism {mechanism}: 1")
    chem: Chemistry
    if mechanism == "EC":
        reactants = (reactant,) * order
        chem = Chemistry(kf, kb, order, reactants, ("Z",))
    elif mechanism == "CE":
        chem = Chemistry(kf, kb, 1, ("Y",), ("O",))
    elif mechanism == "EC'":
        if kb != 0.0:
            raise ScenarioError(
                r.key("kb"),
                f"got {kb:g}; accepted for mechanism EC' "
                "(catalytic regeneration is irreversible): 0",
            )
        reactants = (reactant,) if order == 1 else (reactant, "Z")
        chem = Chemistry(kf, 0.0, order, reactants, (product,))
    else:  # ECE
        chem = Chemistry(kf, kb, 1, ("R",), ("O2",))
    r.finish(_CHEMISTRY_KEYS if mechanism in ("EC", "EC'") else ("kf", "kb", "order"))
    return (chem,)


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

_TRANSFER_KEYS = ("step", "model", "E0", "k0", "alpha", "reorganization_energy")
_CHEMICAL_KEYS = ("step", "kf", "kb")
_NETWORK_SPECIES_KEYS = ("D", "c_bulk", "D_ratio")


@dataclass(frozen=True, slots=True)
class _Network:
    """What ``reactions`` (and the species and surface they need) parse to."""

    reactions: tuple[Reaction, ...]
    kinetics: tuple[Kinetics, ...]
    chemistry: tuple[Chemistry, ...]
    adsorption: tuple[Adsorption, ...]
    dissolved: dict[str, _RawSpecies]
    adsorbed: dict[str, float | None]  # the initial Gamma; None: at equilibrium
    surface: Surface | None


def _parse_network(top: Reader) -> _Network:
    """The steps of ``reactions`` with their constants, and the species they name."""
    for key in ("mechanism", "kinetics", "chemistry"):
        if top.has(key):
            raise ScenarioError(
                key,
                "not used with reactions (each step carries its own constants); give either "
                "a named mechanism with kinetics and chemistry, or reactions",
            )
    raw = top.raw("reactions")
    if isinstance(raw, str):
        items: list[object] = list(network.split_steps(raw))
    elif isinstance(raw, list):
        items = list(raw)
    else:
        items = []
    if not items:
        raise ScenarioError(
            "reactions",
            f"got {show(raw)}; accepted: a non-empty list of steps ('O + e = R, E0 = 0.1 V', "
            "or {step: O + e = R, E0: 0.1 V}), or one string of steps separated by ';'",
        )
    parsed: list[tuple[network.Step, Reader]] = []
    for i, item in enumerate(items):
        path = f"reactions[{i}]"
        text, node = _step_item(item, path)
        try:
            step = network.parse_step(text)
        except ValueError as exc:
            raise ScenarioError(f"{path}.step", str(exc)) from None
        r = top.nested(node, path)
        r.used.add("step")
        parsed.append((step, r))
    named = tuple(dict.fromkeys(n for step, _ in parsed for n in step.species))
    dissolved, adsorbed = _parse_network_species(top, named, [step for step, _ in parsed])
    reactions: list[Reaction] = []
    kinetics: list[Kinetics] = []
    chemistry: list[Chemistry] = []
    adsorption: list[Adsorption] = []
    for step, r in parsed:
        on_surface = [n in adsorbed for n in step.species]
        if step.transfer:
            surface = all(on_surface)
            if any(on_surface) and not surface:
                raise ScenarioError(
                    r.key("step"),
                    f"{str(step)!r} joins an adsorbed and a dissolved species; accepted: a "
                    "transfer between two dissolved or two adsorbed species (adsorb or "
                    "desorb with a step of its own: 'O = Oads')",
                )
            ox, red = step.reactants[0], step.products[0]
            kinetics.append(_parse_transfer(r, ox, red, step.electrons, surface=surface))
            reactions.append(Reaction(step, "transfer", len(kinetics) - 1))
        elif any(on_surface):
            adsorption.append(_parse_adsorption_step(r, step, adsorbed))
            reactions.append(Reaction(step, "adsorption", len(adsorption) - 1))
        else:
            chemistry.append(_parse_chemical_step(r, step))
            reactions.append(Reaction(step, "chemical", len(chemistry) - 1))
    if not kinetics:
        raise ScenarioError(
            "reactions", "has no electron transfer; accepted: at least one step 'O + e = R'"
        )
    sites = _parse_surface(top, needed=bool(adsorption))
    return _Network(
        tuple(reactions),
        tuple(kinetics),
        tuple(chemistry),
        tuple(adsorption),
        dissolved,
        adsorbed,
        sites,
    )


def _step_item(item: object, path: str) -> tuple[str, Mapping[str, object]]:
    """A step's text and its constants from a list item: ``{step: TEXT, key: value}``,
    ``{TEXT: {key: value}}`` or ``"TEXT, key = value, ..."``."""
    if isinstance(item, str):
        text, *pairs = [p.strip() for p in item.split(",")]
        node: dict[str, object] = {}
        for pair in pairs:
            key, eq, value = pair.partition("=")
            if not eq or not key.strip() or not value.strip():
                raise ScenarioError(
                    path, f"{pair!r} is not 'key = value' (e.g. 'kf = 10 1/s', 'E0 = 0.1 V')"
                )
            node[key.strip()] = value.strip()
        return text, node
    if isinstance(item, Mapping):
        if "step" in item:
            text = item["step"]
            if not isinstance(text, str):
                raise ScenarioError(f"{path}.step", f"got {show(text)}; accepted: a step as text")
            return text, item
        if len(item) == 1:
            ((text, node_value),) = item.items()
            if isinstance(text, str) and (node_value is None or isinstance(node_value, Mapping)):
                return text, node_value or {}
    raise ScenarioError(
        path,
        f"got {show(item)}; accepted: 'O + e = R, E0 = 0.1 V', {{step: O + e = R, E0: 0.1 V}} "
        "or {O + e = R: {E0: 0.1 V}}",
    )


def _parse_chemical_step(r: Reader, step: network.Step) -> Chemistry:
    def quantity(count: int) -> Quantity:
        return _K1 if count == 1 else _K2

    kf = r.number("kf", quantity(len(step.reactants)), lo=0.0, hi=1e12)
    if step.reversible:
        kb = r.number("kb", quantity(len(step.products)), lo=0.0, hi=1e12)
    else:
        if r.has("kb"):
            raise ScenarioError(
                r.key("kb"), "an irreversible step ('->') has no kb; write '=' for a reversible one"
            )
        kb = 0.0
    r.finish(_CHEMICAL_KEYS)
    return Chemistry(kf, kb, len(step.reactants), step.reactants, step.products)


def _parse_adsorption_step(
    r: Reader, step: network.Step, adsorbed: dict[str, float | None]
) -> Adsorption:
    """``X = Xads``: the dissolved X adsorbs (kf, m^3/(mol s)) and desorbs (kb, 1/s)."""
    if (
        len(step.reactants) != 1
        or len(step.products) != 1
        or step.reactants[0] in adsorbed
        or step.products[0] not in adsorbed
    ):
        raise ScenarioError(
            r.key("step"),
            f"{str(step)!r}: a step with adsorbed species other than an electron transfer "
            "is an adsorption, one dissolved species on the left and one adsorbed on the "
            "right (accepted: 'O = Oads', 'O -> Oads')",
        )
    kf = r.number("kf", _K2, lo=0.0, hi=1e12)
    kb = 0.0
    if step.reversible:
        kb = r.number("kb", _K1, lo=0.0, hi=1e12)
    elif r.has("kb"):
        raise ScenarioError(
            r.key("kb"), "an irreversible step ('->') has no kb; write '=' for a reversible one"
        )
    r.finish(_CHEMICAL_KEYS)
    return Adsorption(kf, kb, step.reactants[0], step.products[0])


_SURFACE_KEYS = ("Gamma_max", "isotherm", "g")


def _parse_surface(top: Reader, *, needed: bool) -> Surface | None:
    r = top.optional_child("surface")
    if r is None:
        if needed:
            raise ScenarioError(
                "surface",
                "required with an adsorption step: the sites species adsorb on "
                "({Gamma_max: ..., isotherm: langmuir or frumkin, g: ...})",
            )
        return None
    if not needed:
        raise ScenarioError(
            "surface", "used only with an adsorption step ('O = Oads'); remove it or add one"
        )
    gmax = r.number("Gamma_max", _GAMMA, lo=0.0, hi=1.0, lo_open=True)
    isotherm = r.choice("isotherm", ISOTHERMS, default="langmuir")
    g = 0.0
    if isotherm == "frumkin":
        g = r.number("g", _NONE, lo=-10.0, hi=2.0, hi_open=True)
    elif r.has("g"):
        raise ScenarioError(r.key("g"), "used only by isotherm frumkin; remove it")
    r.finish(_SURFACE_KEYS)
    return Surface(gmax, isotherm, g)  # type: ignore[arg-type]


def _parse_network_species(
    top: Reader, named: tuple[str, ...], steps: list[network.Step]
) -> tuple[dict[str, _RawSpecies], dict[str, float | None]]:
    """The dissolved species (D, c_bulk, D_ratio) and the adsorbed ones (those given a
    ``Gamma``: the initial surface concentration, or ``equilibrium``)."""
    reader = top.child("species")
    for n in named:
        if not reader.has(n):
            first = next(i for i, step in enumerate(steps) if n in step.species)
            raise ScenarioError(
                reader.key(n), f"required: {n} is in reactions[{first}] ({steps[first]})"
            )
    out: dict[str, _RawSpecies] = {}
    adsorbed: dict[str, float | None] = {}
    for key in list(reader.node):
        if key not in named:
            raise ScenarioError(
                reader.key(str(key)),
                f"not in any reaction; accepted: the species of the reactions ({listed(named)})",
            )
        sp = reader.child(key)
        if sp.has("Gamma"):
            for other in _NETWORK_SPECIES_KEYS:
                if sp.has(other):
                    raise ScenarioError(
                        sp.key(other),
                        "an adsorbed species (given Gamma) has no diffusion coefficient or "
                        "bulk concentration; remove it, or Gamma for a dissolved species",
                    )
            value = sp.raw("Gamma")
            if value == "equilibrium":
                adsorbed[str(key)] = None
            else:
                adsorbed[str(key)] = number(
                    value, sp.key("Gamma"), _GAMMA, error=ScenarioError, lo=0.0, hi=1.0
                )
            sp.finish(("Gamma",))
            continue
        D = sp.optional_number("D", _D, lo=1e-14, hi=1e-6)
        c = sp.optional_number("c_bulk", _C, lo=0.0, hi=1e5)
        ratio = None
        if sp.has("D_ratio"):
            if key == "O" or "O" not in named:
                raise ScenarioError(
                    sp.key("D_ratio"),
                    "D_ratio is relative to species O's D; accepted on species other than O "
                    "when O is one of the reactions' species",
                )
            if D is not None:
                raise ScenarioError(
                    sp.key("D_ratio"),
                    "given with D; accepted: D (independent) or D_ratio (D = D_ratio * D_O)",
                )
            ratio = sp.number("D_ratio", _NONE, lo=1e-3, hi=1e3)
        elif D is None:
            raise ScenarioError(
                sp.key("D"),
                f"required key is missing ({_D.name}, m^2/s; or Gamma for an adsorbed species)",
            )
        sp.finish((*_NETWORK_SPECIES_KEYS, "Gamma"))
        out[str(key)] = (D, c, ratio)
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


def _parse_electrode(top: Reader, engine: str) -> Electrode:
    r = top.child("electrode")
    geometry = r.choice("geometry", GEOMETRIES_1D + GEOMETRIES_2D, default="planar")
    if geometry in GEOMETRIES_2D:
        if engine == "numba":
            raise ScenarioError(
                r.key("geometry"),
                f"got {geometry!r}, a 2D geometry; accepted by engine numba: "
                f"{listed(GEOMETRIES_1D)}; set engine: fenicsx (or auto) for "
                f"{listed(GEOMETRIES_2D)}",
            )
        return _parse_electrode_2d(r, geometry)
    if engine == "fenicsx" and geometry != "planar":
        raise ScenarioError(
            r.key("geometry"),
            f"got {geometry!r}; accepted by engine fenicsx: planar, "
            f"{listed(GEOMETRIES_2D)}; set engine: numba (or auto) for sphere and cylinder",
        )
    radius = length = None
    if geometry == "planar":
        area = r.number("area", _AREA, lo=0.0, hi=1.0, lo_open=True)
        r.finish(("geometry", "area"))
        return Electrode("planar", area)
    radius = r.number("radius", _LENGTH, lo=1e-8, hi=1.0)
    if geometry == "sphere":
        area = r.number(
            "area", _AREA, default=4 * math.pi * radius**2, lo=0.0, hi=1.0, lo_open=True
        )
        r.finish(("geometry", "radius", "area"))
        return Electrode("sphere", area, radius)
    length = r.number("length", _LENGTH, lo=1e-8, hi=10.0)
    area = r.number(
        "area", _AREA, default=2 * math.pi * radius * length, lo=0.0, hi=1.0, lo_open=True
    )
    r.finish(("geometry", "radius", "length", "area"))
    return Electrode("cylinder", area, radius, length)


def _parse_electrode_2d(r: Reader, geometry: str) -> Electrode:
    """Inlaid disk, ring, band and recessed disk: their dimensions set the area."""
    if geometry == "disk":
        radius = r.number("radius", _LENGTH, lo=1e-8, hi=1.0)
        r.finish(("geometry", "radius"))
        return Electrode("disk", math.pi * radius**2, radius)
    if geometry == "ring":
        inner = r.number("inner_radius", _LENGTH, lo=1e-8, hi=1.0)
        outer = r.number("outer_radius", _LENGTH, lo=1e-8, hi=1.0)
        if outer <= inner:
            raise ScenarioError(
                r.key("outer_radius"),
                f"got {outer:g} m; accepted: larger than inner_radius ({inner:g} m)",
            )
        r.finish(("geometry", "inner_radius", "outer_radius"))
        return Electrode("ring", math.pi * (outer**2 - inner**2), outer, inner_radius=inner)
    if geometry == "band":
        width = r.number("width", _LENGTH, lo=1e-8, hi=1.0)
        length = r.number("length", _LENGTH, lo=1e-8, hi=10.0)
        r.finish(("geometry", "width", "length"))
        return Electrode("band", width * length, length=length, width=width)
    radius = r.number("radius", _LENGTH, lo=1e-8, hi=1.0)
    depth = r.number("depth", _LENGTH, lo=0.0, hi=1.0, lo_open=True)
    r.finish(("geometry", "radius", "depth"))
    return Electrode("recessed", math.pi * radius**2, radius, depth=depth)


def _parse_cell(top: Reader) -> Cell:
    r = top.optional_child("cell")
    if r is None:
        return Cell()
    T = r.number("T", _T, default=STANDARD_TEMPERATURE, lo=200.0, hi=600.0)
    Ru = r.number("Ru", _RU, default=0.0, lo=0.0, hi=1e9)
    Cdl = r.number("Cdl", _CDL, default=0.0, lo=0.0, hi=1.0)
    offset = r.number("reference_offset", _E, default=0.0, lo=-2.0, hi=2.0)
    nu = r.number("viscosity", _VISCOSITY, default=KINEMATIC_VISCOSITY, lo=1e-8, hi=1e-2)
    r.finish(("T", "Ru", "Cdl", "reference_offset", "viscosity"))
    return Cell(T, Ru, Cdl, offset, nu)


_BACKGROUND_KEYS = ("offset", "slope", "Cdl_slope", "Cdl_curvature", "E_pivot")


def _parse_background(top: Reader) -> Background:
    r = top.optional_child("background")
    if r is None:
        return Background()
    out = Background(
        offset=r.number("offset", _CURRENT, default=0.0, lo=-1.0, hi=1.0),
        slope=r.number("slope", _CONDUCTANCE, default=0.0, lo=-1.0, hi=1.0),
        Cdl_slope=r.number("Cdl_slope", _CDL_SLOPE, default=0.0, lo=-1.0, hi=1.0),
        Cdl_curvature=r.number("Cdl_curvature", _CDL_CURVATURE, default=0.0, lo=-1.0, hi=1.0),
        E_pivot=_potential(r, "E_pivot", default=0.0),
    )
    r.finish(_BACKGROUND_KEYS)
    return out


def _parse_initial_state(top: Reader, waveform: Waveform) -> InitialState:
    r = top.optional_child("initial_state")
    if r is None:
        return InitialState()
    cycles = r.integer("cycles_before", default=0, lo=0, hi=1000)
    r.finish(("cycles_before",))
    if not cycles:
        return InitialState()
    if not isinstance(waveform, CyclicVoltammetry | Staircase) or waveform.type == "staircase_lsv":
        raise ScenarioError(
            r.key("cycles_before"),
            f"got {cycles} with a {waveform.type} waveform; accepted: 0, or cycles before "
            "a cv or staircase_cv waveform (the cycles run are the waveform's own)",
        )
    if cycles + waveform.cycles > CYCLES[1]:
        raise ScenarioError(
            r.key("cycles_before"),
            f"got {cycles} with {waveform.cycles} recorded; accepted: at most "
            f"{CYCLES[1] - waveform.cycles} (at most {CYCLES[1]} cycles in all)",
        )
    if waveform.E_end != waveform.E_start:
        raise ScenarioError(
            r.key("cycles_before"),
            f"got {cycles} with E_end ({waveform.E_end:g}) != E_start "
            f"({waveform.E_start:g}); accepted: a cycle that ends where it starts",
        )
    return InitialState(cycles)


_WAVEFORM_KEYS: dict[str, tuple[str, ...]] = {
    "cv": ("type", "E_start", "E_vertex", "E_end", "scan_rate", "cycles"),
    "lsv": ("type", "E_start", "E_end", "scan_rate"),
    "ca": ("type", "steps", "E_initial"),
    "swv": ("type", "E_start", "E_end", "E_step", "amplitude", "frequency"),
    "piecewise": ("type", "points"),
    "staircase_cv": (
        "type",
        "E_start",
        "E_vertex",
        "E_end",
        "E_step",
        "t_step",
        "scan_rate",
        "sample",
        "cycles",
    ),
    "staircase_lsv": ("type", "E_start", "E_end", "E_step", "t_step", "scan_rate", "sample"),
}


def _parse_waveform(top: Reader) -> Waveform:
    """The shared waveform the scenario describes: values are read here (units, ranges
    from :data:`runtime.waveforms.LIMITS`), the waveform's own rules are checked by its
    class, and either problem names the scenario's key."""
    r = top.child("waveform")
    kind = r.choice("type", tuple(_WAVEFORM_KEYS))
    r.used.update(_WAVEFORM_EXTRAS)  # read by _parse_waveform_extras
    parsers: dict[str, Callable[[Reader], Waveform]] = {
        "cv": _parse_cv,
        "lsv": _parse_lsv,
        "ca": _parse_ca,
        "swv": _parse_swv,
        "piecewise": _parse_piecewise,
        "staircase_cv": _parse_staircase,
        "staircase_lsv": _parse_staircase,
    }
    try:
        wf = parsers[kind](r)
    except WaveformError as exc:
        raise ScenarioError(_waveform_key(r, exc.field), exc.reason) from None
    r.finish(_WAVEFORM_KEYS[kind] + _WAVEFORM_EXTRAS)
    return wf


# Keys any waveform may carry: what the experiment does besides the potential program.
_WAVEFORM_EXTRAS = ("rotation_rate", "ac")
_AC_WAVEFORMS = ("cv", "lsv", "ca", "piecewise")


def _parse_ac(top: Reader, waveform: Waveform) -> AcPerturbation | None:
    """``waveform.ac: {amplitude, frequency}``: a sine on a sweeping or stepping waveform."""
    w = top.child("waveform")
    r = w.optional_child("ac")
    if r is None:
        return None
    if waveform.type not in _AC_WAVEFORMS:
        raise ScenarioError(
            w.key("ac"),
            f"got one on a {waveform.type} waveform; accepted on {listed(_AC_WAVEFORMS)} "
            "(a square wave or a staircase is a perturbation of its own)",
        )
    amplitude = r.number("amplitude", _E, lo=0.0, hi=1.0, lo_open=True)
    frequency = r.number("frequency", _FREQ, lo=0.0, hi=1e6, lo_open=True)
    r.finish(("amplitude", "frequency"))
    return AcPerturbation(amplitude, frequency)


def _parse_impedance(top: Reader) -> Impedance | None:
    r = top.optional_child("impedance")
    if r is None:
        return None
    f_max = r.number("f_max", _FREQ, default=1e5, lo=0.0, hi=1e7, lo_open=True)
    f_min = r.number("f_min", _FREQ, default=1e-2, lo=0.0, hi=1e7, lo_open=True)
    if f_min >= f_max:
        raise ScenarioError(
            r.key("f_min"), f"got {f_min:g} Hz; accepted: below f_max ({f_max:g} Hz)"
        )
    per_decade = r.integer("per_decade", default=10, lo=1, hi=1000)
    r.finish(("f_max", "f_min", "per_decade"))
    return Impedance(f_max, f_min, per_decade)


def _parse_rotation(top: Reader, electrode: Electrode) -> float:
    """``waveform.rotation_rate`` (rad/s; ``"1600 rpm"``): a rotating disk electrode."""
    r = top.child("waveform")
    rate = r.number("rotation_rate", _ROTATION, default=0.0, lo=0.0, hi=1e4)
    if rate > 0 and electrode.geometry != "planar":
        raise ScenarioError(
            r.key("rotation_rate"),
            f"got {rate:g} rad/s with electrode.geometry {electrode.geometry!r}; accepted: a "
            "rotation rate with a planar electrode (the face of a rotating disk)",
        )
    return rate


def _waveform_key(r: Reader, field: str) -> str:
    """The scenario key of a shared waveform's field: ``cv.vertices[1]`` is
    ``waveform.E_vertex[1]`` (``waveform.E_vertex`` when one vertex was given bare),
    ``piecewise.points[2].t`` is ``waveform.points[2][0]``."""
    name = field.split(".", 1)[1]
    if name.startswith("vertices"):
        name = "E_vertex" + name.removeprefix("vertices")
        if name == "E_vertex[0]" and not isinstance(r.node.get("E_vertex"), list):
            name = "E_vertex"
    name = re.sub(r"^points\[(\d+)\]\.t$", r"points[\1][0]", name)
    name = re.sub(r"^points\[(\d+)\]\.E$", r"points[\1][1]", name)
    return r.key(name)


def _limited(
    r: Reader, name: str, quantity: Quantity, limit: Limit, default: float | None = None
) -> float:
    return r.number(
        name,
        quantity,
        default=default,
        lo=limit.lo,
        hi=limit.hi,
        lo_open=limit.lo_open,
        hi_open=limit.hi_open,
    )


def _potential(r: Reader, name: str, default: float | None = None) -> float:
    return _limited(r, name, _E, LIMITS["potential"], default)


def _parse_cv(r: Reader) -> CyclicVoltammetry:
    E_start = _potential(r, "E_start")
    vertices = _vertices(r)
    E_end = _potential(r, "E_end", default=E_start)
    scan_rate = _limited(r, "scan_rate", _SCAN, LIMITS["scan_rate"])
    cycles = r.integer("cycles", default=1, lo=CYCLES[0], hi=CYCLES[1])
    return CyclicVoltammetry(E_start, vertices, E_end, scan_rate, cycles)


def _vertices(r: Reader) -> tuple[float, ...]:
    raw_vertex = r.require("E_vertex")
    raw_list = raw_vertex if isinstance(raw_vertex, list) else [raw_vertex]
    if not raw_list:
        raise ScenarioError(
            r.key("E_vertex"),
            "got an empty list; accepted: a potential or a list of potentials (V)",
        )
    indexed = isinstance(raw_vertex, list)
    limit = LIMITS["potential"]
    vertices = tuple(
        number(
            v,
            r.key("E_vertex") + (f"[{i}]" if indexed else ""),
            _E,
            error=ScenarioError,
            lo=limit.lo,
            hi=limit.hi,
        )
        for i, v in enumerate(raw_list)
    )
    return vertices


def _parse_lsv(r: Reader) -> LinearSweep:
    E_start = _potential(r, "E_start")
    E_end = _potential(r, "E_end")
    return LinearSweep(E_start, E_end, _limited(r, "scan_rate", _SCAN, LIMITS["scan_rate"]))


def _parse_ca(r: Reader) -> Chronoamperometry:
    raw_steps = r.require("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ScenarioError(
            r.key("steps"),
            f"got {show(raw_steps)}; accepted: a non-empty list of {{E, duration}}",
        )
    steps = []
    for i, node in enumerate(raw_steps):
        s = r.nested(node, f"{r.key('steps')}[{i}]")
        E = _potential(s, "E")
        duration = _limited(s, "duration", _TIME, LIMITS["duration"])
        s.finish(("E", "duration"))
        steps.append(PotentialStep(E, duration))
    E_initial = _potential(r, "E_initial", default=steps[0].E)
    return Chronoamperometry(tuple(steps), E_initial)


def _parse_swv(r: Reader) -> SquareWave:
    E_start = _potential(r, "E_start")
    E_end = _potential(r, "E_end")
    E_step = _limited(r, "E_step", _E, LIMITS["E_step"])
    amplitude = _limited(r, "amplitude", _E, LIMITS["amplitude"])
    frequency = _limited(r, "frequency", _FREQ, LIMITS["frequency"])
    return SquareWave(E_start, E_end, E_step, amplitude, frequency)


def _parse_staircase(r: Reader) -> Staircase:
    kind = r.choice("type", ("staircase_cv", "staircase_lsv"))
    E_start = _potential(r, "E_start")
    vertices = _vertices(r) if kind == "staircase_cv" else ()
    E_end = _potential(r, "E_end", default=E_start if vertices else None)
    E_step = _limited(r, "E_step", _E, LIMITS["staircase_step"])
    if r.has("t_step") == r.has("scan_rate"):
        raise ScenarioError(
            r.key("t_step"),
            "give either t_step (the step time) or scan_rate (E_step / t_step), not "
            + ("both" if r.has("t_step") else "neither"),
        )
    if r.has("t_step"):
        t_step = _limited(r, "t_step", _TIME, LIMITS["duration"])
    else:
        t_step = E_step / _limited(r, "scan_rate", _SCAN, LIMITS["scan_rate"])
    sample: object = (1.0, 1.0)
    if r.has("sample"):
        raw = r.raw("sample")
        path = r.key("sample")
        if isinstance(raw, list):
            sample = tuple(
                number(x, f"{path}[{i}]", _NONE, error=ScenarioError, lo=0.0, hi=1.0)
                for i, x in enumerate(raw)
            )
        else:
            sample = number(raw, path, _NONE, error=ScenarioError, lo=0.0, hi=1.0, lo_open=True)
    cycles = 1
    if kind == "staircase_cv":
        cycles = r.integer("cycles", default=1, lo=CYCLES[0], hi=CYCLES[1])
        return Staircase(E_start, vertices, E_end, E_step, t_step, sample, cycles)  # type: ignore[arg-type]
    return Staircase(E_start, (), E_end, E_step, t_step, sample, 1, "staircase_lsv")  # type: ignore[arg-type]


def _parse_piecewise(r: Reader) -> Piecewise:
    raw = r.require("points")
    path = r.key("points")
    if not isinstance(raw, list) or len(raw) < 2:
        raise ScenarioError(path, f"got {show(raw)}; accepted: a list of at least two [t, E] pairs")
    points: list[tuple[float, float]] = []
    time, potential = LIMITS["time"], LIMITS["potential"]
    for i, p in enumerate(raw):
        if not isinstance(p, list | tuple) or len(p) != 2:
            raise ScenarioError(f"{path}[{i}]", f"got {show(p)}; accepted: a pair [t (s), E (V)]")
        t = number(p[0], f"{path}[{i}][0]", _TIME, error=ScenarioError, lo=time.lo, hi=time.hi)
        E = number(
            p[1], f"{path}[{i}][1]", _E, error=ScenarioError, lo=potential.lo, hi=potential.hi
        )
        points.append((t, E))
    return Piecewise(tuple(points))


def _parse_numerics(top: Reader) -> Numerics:
    r = top.optional_child("numerics")
    if r is None:
        return Numerics()
    dE = r.number("potential_step", _E, default=1e-3, lo=1e-5, hi=1e-2)
    refine = r.number("refine", _NONE, default=1.0, lo=0.25, hi=16.0)
    ranks = r.integer("ranks", default=1, lo=1, hi=256)
    r.finish(("potential_step", "refine", "ranks"))
    return Numerics(dE, refine, ranks)


def with_numerics(scenario: Scenario, **changes: float) -> Scenario:
    """A validated copy of ``scenario`` with numerical controls changed (``refine=2.0``)."""
    doc = scenario.to_mapping()
    doc["numerics"].update(changes)
    return load_scenario(doc)
