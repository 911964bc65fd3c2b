"""The FEniCSx/PETSc worker: 2D diffusion with Butler-Volmer or Nernst electrodes.

This file runs as a program under the interpreter that has DOLFINx (Debian's
``/usr/bin/python3``), never inside the project's virtual environment, and so
imports nothing of Galvana: only DOLFINx (with UFL, PETSc, mpi4py, Gmsh), numpy and
msgpack. The parent (:mod:`physics.engines.fenicsx`) starts it, possibly as
``mpirun -n N``, and talks to it in frames: a 4-byte big-endian length, then that
many bytes of msgpack holding one map.

- stdin (rank 0): one job frame ``{"protocol": 1, "scenario": {...}, "steps": {...},
  "snapshots": bytes, "mesh": {...}}``: the scenario as plain SI data (already
  validated by ``physics.load_scenario``), the time steps (``t`` s and ``E`` V at
  each step's end, ``restart`` flags; little-endian float64/uint8 bytes) and the
  step indices at which field snapshots are wanted (int64 bytes).
- stdout (rank 0): ``hello``, ``mesh`` (dof coordinates and triangles), ``samples``
  (t, E, I in batches, ``first`` = index of the first step), ``snapshot`` (the
  concentrations at every dof), ``done``; or ``error`` just before a non-zero exit.

Anything malformed in the job is fatal: one line on stderr naming the field, the
value and what is accepted, an ``error`` frame, exit status 2.

The model: ``dc/dt = D lap c`` for O and R in an axisymmetric (r, z) half-plane (disk,
ring, recessed disk), a planar (x, z) half-plane (band, per unit length), or a strip
(planar electrode, which is one-dimensional and cross-checks the numba engine). At
the electrode ``O + n e- = R`` with the reduction rate ``j = kf c_O - kb c_R``
(mol m^-2 s^-1): Butler-Volmer rate constants, or Nernst equilibrium enforced by
rate constants large enough that the interface is at equilibrium to ~1e-6. The
far boundary is the bulk (Dirichlet), or for axisymmetric cells the exact
monopole condition ``dc/drho = (c_bulk - c)/rho`` so the steady state of a finite
domain is that of the half-space. Time: variable-step BDF2 (backward Euler after
a potential jump), one linear PETSc solve per step (LU: MUMPS when available).
"""

from __future__ import annotations

import contextlib
import math
import os
import struct
import sys
import time
from collections.abc import Mapping
from typing import Any, BinaryIO, NoReturn

import msgpack
import numpy as np
import numpy.typing as npt

PROTOCOL = 1
# runtime.constants' values: this program cannot import Galvana (see above); a test
# holds the two equal.
FARADAY = 96485.33212  # C/mol
GAS_CONSTANT = 8.314462618  # J/(mol K)
STANDARD_TEMPERATURE = 298.15  # K
_HEADER = struct.Struct(">I")
_MAX_JOB_BYTES = 1 << 28

# Facet markers of the Gmsh physical groups.
ELECTRODE, INSULATOR, FAR, AXIS = 1, 2, 3, 4

# Mesh rules (all lengths divided by `refine`): cells at an electrode edge are this
# fraction of the electrode's characteristic size, cells on the electrode this
# fraction of it or of the diffusion length of the shortest time step, and cell
# sizes grow by at most this much per unit distance away from them.
_EDGE_FRACTION = 1.0 / 320.0
_SURFACE_FRACTION = 1.0 / 20.0
_SURFACE_DIFFUSION = 0.3
_GRADING = 0.1
# The domain reaches this many diffusion lengths of the whole experiment beyond
# the electrode, and never less than this many electrode sizes.
_EXTENT = 6.0
_MIN_EXTENT = 20.0
# Nernst (and runaway Butler-Volmer) rate constants: the larger one is capped at
# this multiple of D/h at the electrode, far above any mass-transport rate.
_EQUILIBRIUM_RATE = 1.0e6

GEOMETRIES = ("planar", "disk", "ring", "band", "recessed")
AXISYMMETRIC = ("disk", "ring", "recessed")

FloatArray = npt.NDArray[np.float64]


class JobError(Exception):
    """The job is malformed; ``path`` names the offending field."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


# --------------------------------------------------------------------------- frames


def read_frame(stream: BinaryIO) -> object:
    """One frame from ``stream``; :class:`JobError` when it is not a whole msgpack frame."""
    head = stream.read(_HEADER.size)
    if len(head) != _HEADER.size:
        raise JobError("job", f"expected a 4-byte frame length on stdin, got {len(head)} bytes")
    (size,) = _HEADER.unpack(head)
    if not 0 < size <= _MAX_JOB_BYTES:
        raise JobError("job", f"frame length {size} is out of range (1 to {_MAX_JOB_BYTES})")
    body = stream.read(size)
    if len(body) != size:
        raise JobError("job", f"the frame ended after {len(body)} of {size} bytes")
    try:
        return msgpack.unpackb(body, raw=False, strict_map_key=True)
    except Exception as exc:
        raise JobError("job", f"not valid msgpack ({type(exc).__name__}: {exc})") from None


class FrameWriter:
    """Frames to the parent (rank 0 only): length-prefixed msgpack maps."""

    def __init__(self, stream: BinaryIO | None) -> None:
        self.stream = stream

    def send(self, frame: Mapping[str, object]) -> None:
        if self.stream is None:
            return
        body = msgpack.packb(frame, use_bin_type=True)
        self.stream.write(_HEADER.pack(len(body)) + body)
        self.stream.flush()


def _f64(values: npt.ArrayLike) -> bytes:
    return np.ascontiguousarray(values, dtype="<f8").tobytes()


# --------------------------------------------------------------------------- the job


def _node(doc: object, path: str) -> Mapping[str, Any]:
    if not isinstance(doc, Mapping):
        raise JobError(path, f"expected a map, got {type(doc).__name__}")
    return doc


def _number(
    doc: Mapping[str, Any],
    key: str,
    path: str,
    *,
    lo: float,
    hi: float,
    lo_open: bool = False,
    default: float | None = None,
) -> float:
    where = f"{path}.{key}"
    if key not in doc:
        if default is not None:
            return default
        raise JobError(
            where, f"missing; accepted: a number in {'(' if lo_open else '['}{lo:g}, {hi:g}]"
        )
    value = doc[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JobError(where, f"got {value!r}; accepted: a number")
    x = float(value)
    too_low = x <= lo if lo_open else x < lo
    if not math.isfinite(x) or too_low or x > hi:
        bracket = "(" if lo_open else "["
        raise JobError(where, f"got {x!r}; accepted: a number in {bracket}{lo:g}, {hi:g}]")
    return x


def _array(doc: Mapping[str, Any], key: str, path: str, dtype: str) -> npt.NDArray[Any]:
    where = f"{path}.{key}"
    raw = doc.get(key)
    if not isinstance(raw, bytes):
        raise JobError(where, f"got {type(raw).__name__}; accepted: bytes of {dtype}")
    size = np.dtype(dtype).itemsize
    if len(raw) % size:
        raise JobError(where, f"{len(raw)} bytes is not a whole number of {dtype} values")
    return np.frombuffer(raw, dtype=dtype).copy()


class ReadJob:
    """The job as the worker reads and validates it: physics in SI units, time steps and
    requests."""

    def __init__(self, doc: object) -> None:
        top = _node(doc, "job")
        if top.get("protocol") != PROTOCOL:
            raise JobError("job.protocol", f"got {top.get('protocol')!r}; accepted: {PROTOCOL}")
        sc = _node(top.get("scenario"), "job.scenario")
        if sc.get("mechanism", "E") != "E":
            raise JobError("job.scenario.mechanism", f"got {sc.get('mechanism')!r}; accepted: 'E'")
        species = _node(sc.get("species"), "job.scenario.species")
        self.D: dict[str, float] = {}
        self.c_bulk: dict[str, float] = {}
        for name in ("O", "R"):
            path = f"job.scenario.species.{name}"
            node = _node(species.get(name), path)
            self.D[name] = _number(node, "D", path, lo=1e-14, hi=1e-6)
            self.c_bulk[name] = _number(node, "c_bulk", path, lo=0.0, hi=1e5)
        kin = _node(sc.get("kinetics"), "job.scenario.kinetics")
        self.model = kin.get("model")
        if self.model not in ("butler-volmer", "nernst"):
            raise JobError(
                "job.scenario.kinetics.model",
                f"got {self.model!r}; accepted: 'butler-volmer', 'nernst'",
            )
        kp = "job.scenario.kinetics"
        self.E0 = _number(kin, "E0", kp, lo=-10.0, hi=10.0)
        self.n = int(_number(kin, "n", kp, lo=1, hi=6, default=1.0))
        self.k0 = _number(kin, "k0", kp, lo=0.0, hi=1e3, lo_open=True, default=1.0)
        self.alpha = _number(kin, "alpha", kp, lo=0.0, hi=1.0, lo_open=True, default=0.5)
        cell = _node(sc.get("cell", {}), "job.scenario.cell")
        self.T = _number(
            cell, "T", "job.scenario.cell", lo=200.0, hi=600.0, default=STANDARD_TEMPERATURE
        )
        for key in ("Ru", "Cdl"):
            if _number(cell, key, "job.scenario.cell", lo=0.0, hi=1e9, default=0.0) != 0.0:
                raise JobError(f"job.scenario.cell.{key}", "accepted: 0 (not modelled in 2D)")
        self.electrode = _Electrode(_node(sc.get("electrode"), "job.scenario.electrode"))

        steps = _node(top.get("steps"), "job.steps")
        self.t = _array(steps, "t", "job.steps", "<f8")
        self.E = _array(steps, "E", "job.steps", "<f8")
        self.restart = _array(steps, "restart", "job.steps", "|u1").astype(bool)
        if not (self.t.size == self.E.size == self.restart.size) or self.t.size == 0:
            raise JobError(
                "job.steps",
                f"t, E and restart must have one value per step (>= 1); got "
                f"{self.t.size}, {self.E.size}, {self.restart.size}",
            )
        h = np.diff(self.t, prepend=0.0)
        if not (np.all(np.isfinite(self.t)) and np.all(h > 0)):
            raise JobError("job.steps.t", "accepted: finite, strictly increasing times > 0 (s)")
        if not (np.all(np.isfinite(self.E)) and np.all(np.abs(self.E) <= 10.0)):
            raise JobError("job.steps.E", "accepted: finite potentials in [-10, 10] V")
        self.h = h
        self.E_initial = _number(top, "E_initial", "job", lo=-10.0, hi=10.0)
        snaps = _array(top, "snapshots", "job", "<i8") if "snapshots" in top else np.zeros(0, "<i8")
        if snaps.size and (snaps.min() < 0 or snaps.max() >= self.t.size):
            raise JobError("job.snapshots", f"accepted: step indices in [0, {self.t.size - 1}]")
        self.snapshots = set(int(i) for i in snaps)
        mesh = _node(top.get("mesh", {}), "job.mesh")
        self.refine = _number(mesh, "refine", "job.mesh", lo=0.05, hi=64.0, default=1.0)
        self.batch = int(_number(top, "batch", "job", lo=1, hi=1e6, default=500.0))


class _Electrode:
    """The electrode's geometry and dimensions (m)."""

    def __init__(self, node: Mapping[str, Any]) -> None:
        path = "job.scenario.electrode"
        self.geometry = node.get("geometry")
        if self.geometry not in GEOMETRIES:
            raise JobError(
                f"{path}.geometry",
                f"got {self.geometry!r}; accepted: {', '.join(GEOMETRIES)}",
            )
        big = 1.0
        if self.geometry == "planar":
            self.area = _number(node, "area", path, lo=0.0, hi=big, lo_open=True)
            self.size = math.sqrt(self.area)
        elif self.geometry == "disk":
            self.radius = _number(node, "radius", path, lo=1e-9, hi=big)
            self.size = self.radius
        elif self.geometry == "recessed":
            self.radius = _number(node, "radius", path, lo=1e-9, hi=big)
            self.depth = _number(node, "depth", path, lo=0.0, hi=big, lo_open=True)
            self.size = self.radius
        elif self.geometry == "ring":
            self.inner = _number(node, "inner_radius", path, lo=0.0, hi=big, lo_open=True)
            self.outer = _number(node, "outer_radius", path, lo=1e-9, hi=big)
            if self.outer <= self.inner:
                raise JobError(
                    f"{path}.outer_radius",
                    f"got {self.outer!r}; accepted: larger than inner_radius ({self.inner!r})",
                )
            self.size = self.outer - self.inner
        else:  # band
            self.width = _number(node, "width", path, lo=1e-9, hi=big)
            self.length = _number(node, "length", path, lo=1e-9, hi=10.0)
            self.size = self.width

    @property
    def axisymmetric(self) -> bool:
        return self.geometry in AXISYMMETRIC

    @property
    def reach(self) -> float:
        """The largest distance (m) of electrode from the origin of the far boundary."""
        if self.geometry == "ring":
            return self.outer
        if self.geometry == "band":
            return self.width / 2
        if self.geometry == "planar":
            return 0.0
        return self.radius


# --------------------------------------------------------------------------- the mesh


def build_mesh(job: ReadJob, comm: Any) -> tuple[Any, Any, float, float]:
    """The Gmsh mesh, distributed over ``comm``: (mesh, facet tags, far radius, width).

    ``far radius`` (m) is the radius of the far boundary around the electrode (the
    height of the strip for a planar electrode); ``width`` (m) the strip's width.
    """
    import gmsh  # noqa: PLC0415 - after stdout is redirected (Gmsh prints on it)
    from dolfinx.io import gmshio  # noqa: PLC0415

    el = job.electrode
    D_max = max(job.D.values())
    D_min = min(job.D.values())
    t_end = float(job.t[-1])
    # The shortest step that matters: steps after a jump start very small, and their
    # first few currents need no resolution finer than a thousandth of the horizon.
    h_min = max(float(job.h.min()), 1e-4 * t_end)
    r = job.refine
    reach = _EXTENT * math.sqrt(D_max * t_end)
    surface = _SURFACE_DIFFUSION * math.sqrt(D_min * h_min) / r
    width = 0.0
    if comm.rank == 0:
        gmsh.initialize()
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.model.add("cell")
    if el.geometry == "planar":
        far = reach
        width = surface
        if comm.rank == 0:
            _planar_strip(gmsh, far, width, surface, r)
    else:
        far = max(el.reach + reach, _MIN_EXTENT * max(el.reach, el.size))
        h_edge = el.size * _EDGE_FRACTION / r
        h_surface = min(el.size * _SURFACE_FRACTION / r, surface)
        if comm.rank == 0:
            _half_plane(
                gmsh,
                el,
                far=far,
                h_edge=h_edge,
                h_surface=h_surface,
                grading=_GRADING / math.sqrt(r),
            )
    msh, _, facets = gmshio.model_to_mesh(gmsh.model, comm, 0, gdim=2)
    if comm.rank == 0:
        gmsh.finalize()
    return msh, facets, far, width


def _planar_strip(gmsh: Any, height: float, width: float, first: float, refine: float) -> None:
    """A strip one cell wide, graded geometrically up from the electrode."""
    geo = gmsh.model.geo
    p = [geo.addPoint(0, 0, 0), geo.addPoint(width, 0, 0)]
    p += [geo.addPoint(width, height, 0), geo.addPoint(0, height, 0)]
    bottom, right = geo.addLine(p[0], p[1]), geo.addLine(p[1], p[2])
    top, left = geo.addLine(p[2], p[3]), geo.addLine(p[3], p[0])
    surface = geo.addPlaneSurface([geo.addCurveLoop([bottom, right, top, left])])
    growth = 1.0 + 0.08 / refine
    # Number of cells so that geometric sizes from `first` reach the height.
    cells = max(8, math.ceil(math.log(1 + height * (growth - 1) / first) / math.log(growth)))
    geo.synchronize()
    gmsh.model.mesh.setTransfiniteCurve(bottom, 2)
    gmsh.model.mesh.setTransfiniteCurve(top, 2)
    gmsh.model.mesh.setTransfiniteCurve(right, cells + 1, "Progression", growth)
    gmsh.model.mesh.setTransfiniteCurve(left, cells + 1, "Progression", 1.0 / growth)
    gmsh.model.mesh.setTransfiniteSurface(surface)
    gmsh.model.addPhysicalGroup(1, [bottom], ELECTRODE)
    gmsh.model.addPhysicalGroup(1, [right, left], INSULATOR)
    gmsh.model.addPhysicalGroup(1, [top], FAR)
    gmsh.model.addPhysicalGroup(2, [surface], 1)
    gmsh.model.mesh.generate(2)


def _half_plane(
    gmsh: Any, el: _Electrode, *, far: float, h_edge: float, h_surface: float, grading: float
) -> None:
    """The quarter disk r, z >= 0 of radius ``far`` (above a pore for a recessed disk),
    with cells of ``h_edge`` at the electrode edges and ``h_surface`` on the electrode."""
    electrode, edges = _outline(gmsh, el, far)
    _size_field(gmsh, electrode, ((edges, h_edge), (None, h_surface)), far / 6.0, grading)
    gmsh.model.mesh.generate(2)


def _outline(gmsh: Any, el: _Electrode, far: float) -> tuple[list[int], list[int]]:
    """The domain's boundary and surface with their physical groups; returns the
    electrode's curves and the points where the flux is singular (edges, corners)."""
    geo = gmsh.model.geo
    depth = el.depth if el.geometry == "recessed" else 0.0
    origin = geo.addPoint(0, 0, 0)
    electrode: list[int] = []
    insulator: list[int] = []
    if el.geometry == "ring":
        inner = geo.addPoint(el.inner, 0, 0)
        outer = geo.addPoint(el.outer, 0, 0)
        insulator.append(geo.addLine(origin, inner))
        electrode.append(geo.addLine(inner, outer))
        edges = [inner, outer]
    else:
        rim = el.radius if el.geometry in ("disk", "recessed") else el.width / 2
        edges = [geo.addPoint(rim, 0, 0)]
        electrode.append(geo.addLine(origin, edges[0]))
        if el.geometry == "recessed":
            # The pore's mouth is a re-entrant corner: the flux is singular there too.
            edges.append(geo.addPoint(rim, depth, 0))
            insulator.append(geo.addLine(edges[0], edges[1]))
    centre = geo.addPoint(0, depth, 0) if depth else origin
    start = geo.addPoint(far, depth, 0)
    top = geo.addPoint(0, depth + far, 0)
    insulator.append(geo.addLine(edges[-1], start))
    arc = geo.addCircleArc(start, centre, top)
    axis = [geo.addLine(top, centre)] + ([geo.addLine(centre, origin)] if depth else [])
    loop = geo.addCurveLoop([*electrode, *insulator, arc, *axis])
    surface = geo.addPlaneSurface([loop])
    geo.synchronize()
    gmsh.model.addPhysicalGroup(1, electrode, ELECTRODE)
    gmsh.model.addPhysicalGroup(1, insulator, INSULATOR)
    gmsh.model.addPhysicalGroup(1, [arc], FAR)
    gmsh.model.addPhysicalGroup(1, axis, AXIS)
    gmsh.model.addPhysicalGroup(2, [surface], 1)
    return electrode, edges


def _size_field(
    gmsh: Any,
    electrode: list[int],
    targets: tuple[tuple[list[int] | None, float], ...],
    h_far: float,
    grading: float,
) -> None:
    """Cell sizes growing linearly (by ``grading`` per unit distance) from each target
    (points, or the electrode's curves for ``None``) up to ``h_far``."""
    fields = gmsh.model.mesh.field
    thresholds = []
    for points, size in targets:
        distance = fields.add("Distance")
        if points is None:
            fields.setNumbers(distance, "CurvesList", electrode)
            fields.setNumber(distance, "NumPointsPerCurve", 200)
        else:
            fields.setNumbers(distance, "PointsList", points)
        th = fields.add("Threshold")
        fields.setNumber(th, "InField", distance)
        fields.setNumber(th, "SizeMin", size)
        fields.setNumber(th, "SizeMax", h_far)
        fields.setNumber(th, "DistMin", 0.0)
        fields.setNumber(th, "DistMax", (h_far - size) / grading)
        thresholds.append(th)
    smallest = fields.add("Min")
    fields.setNumbers(smallest, "FieldsList", thresholds)
    fields.setAsBackgroundMesh(smallest)
    for option in ("MeshSizeExtendFromBoundary", "MeshSizeFromPoints", "MeshSizeFromCurvature"):
        gmsh.option.setNumber(f"Mesh.{option}", 0)


# --------------------------------------------------------------------------- the solver


class DiscreteCell:
    """The discretized cell: forms, matrix, solver, and the state of O and R."""

    def __init__(self, job: ReadJob, comm: Any) -> None:
        from dolfinx import fem  # noqa: PLC0415
        from dolfinx.fem import petsc as fem_petsc  # noqa: PLC0415
        from petsc4py import PETSc  # noqa: PLC0415

        self.job = job
        self.comm = comm
        self.PETSc = PETSc
        self.fem = fem
        self.fem_petsc = fem_petsc
        msh, facets, far, width = build_mesh(job, comm)
        self.mesh = msh
        self.far = far
        self._forms(facets)
        el = job.electrode
        if el.geometry == "planar":
            self.flux_to_current = -job.n * FARADAY * el.area / width
        elif el.geometry == "band":
            self.flux_to_current = -job.n * FARADAY * 2.0 * el.length  # both halves
        else:
            self.flux_to_current = -job.n * FARADAY * 2.0 * math.pi
        # Moles per unit of a domain or boundary integral of these forms: the current is
        # -nF times the reduction rate's integral.
        self.form_to_mol = self.flux_to_current / (-job.n * FARADAY)
        self.b = fem_petsc.create_vector(self.L)
        if self.residual is not None:
            self.residual_vector = fem_petsc.create_vector(self.residual)
        self.rate = 0.0
        # The operator's parts (transport, mass, forward and backward rates), each
        # assembled once from the full form with one coefficient on: a step then only
        # adds them up with its a0/h, kf and kb. Every part has the full form's
        # sparsity (zeros included), so they add up entry by entry. The Dirichlet
        # rows' one on the diagonal comes with the transport part.
        self.matrices = {}
        constants = (self.ks, self.a0, self.kf, self.kb)
        for i, name in enumerate(("K", "M", "Bf", "Bb")):
            for j, constant in enumerate(constants):
                constant.value = 1.0 if i == j else 0.0
            part = fem_petsc.create_matrix(self.a)
            fem_petsc.assemble_matrix(part, self.a, bcs=self.bcs, diagonal=1.0 if i == 0 else 0.0)
            part.assemble()
            self.matrices[name] = part
        self.ks.value = 1.0
        self.A = self.matrices["K"].duplicate(copy=True)
        self.ksp = PETSc.KSP().create(comm)
        self.ksp.setOperators(self.A)
        self.ksp.setType("preonly")
        pc = self.ksp.getPC()
        pc.setType("lu")
        # MUMPS (Debian's PETSc has it) factors in parallel and pivots; PETSc's own LU
        # does neither and meets zero pivots in this coupled system.
        for package in ("mumps", "superlu_dist"):
            if PETSc.Sys.hasExternalPackage(package):
                pc.setFactorSolverType(package)
                break
        self._operator: tuple[float, float, float] | None = None
        # Species O and R as separate scalar spaces, for snapshots.
        self.V, self.maps = zip(*(self.W.sub(i).collapse() for i in range(2)), strict=True)
        for fn in (self.w, self.w1, self.w2):
            fn.x.array[self.maps[0]] = job.c_bulk["O"]
            fn.x.array[self.maps[1]] = job.c_bulk["R"]
        # Rate-constant cap (m/s): far above D/h at the finest electrode cell.
        self.k_cap = _EQUILIBRIUM_RATE * max(job.D.values()) / self._finest_cell()
        self.f = job.n * FARADAY / (GAS_CONSTANT * job.T)
        self.assemble_s = 0.0
        self.solve_s = 0.0

    def _forms(self, facets: Any) -> None:
        """The BDF bilinear and linear forms, the boundary conditions and the flux."""
        import ufl  # noqa: PLC0415

        fem, msh, job = self.fem, self.mesh, self.job
        el = job.electrode
        P1 = ufl.FiniteElement("Lagrange", msh.ufl_cell(), 1)
        W = fem.FunctionSpace(msh, ufl.MixedElement([P1, P1]))
        self.W = W
        self.w = fem.Function(W)  # the new state
        self.w1 = fem.Function(W)  # one step back
        self.w2 = fem.Function(W)  # two steps back
        uO, uR = ufl.TrialFunctions(W)
        vO, vR = ufl.TestFunctions(W)
        x = ufl.SpatialCoordinate(msh)
        weight = x[0] if el.axisymmetric else fem.Constant(msh, 1.0)
        dx = ufl.Measure("dx", domain=msh)
        ds = ufl.Measure("ds", domain=msh, subdomain_data=facets)
        scalar = self.PETSc.ScalarType
        self.a0 = fem.Constant(msh, scalar(1.0))  # a0/h (1/s)
        self.b1 = fem.Constant(msh, scalar(1.0))  # -a1/h
        self.b2 = fem.Constant(msh, scalar(0.0))  # -a2/h
        self.kf = fem.Constant(msh, scalar(0.0))  # m/s
        self.kb = fem.Constant(msh, scalar(0.0))
        DO, DR = job.D["O"], job.D["R"]
        cOb, cRb = job.c_bulk["O"], job.c_bulk["R"]
        grad, inner = ufl.grad, ufl.inner
        self.ks = fem.Constant(msh, scalar(1.0))  # switches transport off to assemble parts
        a = (
            self.a0 * (uO * vO + uR * vR)
            + self.ks * (DO * inner(grad(uO), grad(vO)) + DR * inner(grad(uR), grad(vR)))
        ) * weight * dx + (self.kf * uO - self.kb * uR) * (vO - vR) * weight * ds(ELECTRODE)
        w1O, w1R = ufl.split(self.w1)
        w2O, w2R = ufl.split(self.w2)
        L = (self.b1 * (w1O * vO + w1R * vR) + self.b2 * (w2O * vO + w2R * vR)) * weight * dx
        self.bcs = []
        if el.axisymmetric:
            # The monopole of the far field: c - c_bulk ~ 1/rho, exact at steady state.
            a += self.ks * (DO * uO * vO + DR * uR * vR) / self.far * weight * ds(FAR)
            L += (DO * cOb * vO + DR * cRb * vR) / self.far * weight * ds(FAR)
        else:
            far_facets = facets.indices[facets.values == FAR]
            for i, c in ((0, cOb), (1, cRb)):
                sub = W.sub(i)
                dofs = fem.locate_dofs_topological(sub, 1, far_facets)
                self.bcs.append(fem.dirichletbc(scalar(c), dofs, sub))
        self.a = fem.form(a)
        self.L = fem.form(L)
        wO, wR = ufl.split(self.w)
        self.flux = fem.form((self.kf * wO - self.kb * wR) * weight * ds(ELECTRODE))
        self._balance_forms(a, L, weight, (dx, ds), facets)

    def _balance_forms(
        self, a: Any, L: Any, weight: Any, measures: tuple[Any, Any], facets: Any
    ) -> None:
        """The mass balance's forms: each species' amount in the domain, and what enters
        through the far boundary (the monopole condition's flux; at a Dirichlet boundary
        the residual of the unconstrained equations at its dofs, which is its flux)."""
        import ufl  # noqa: PLC0415

        fem, job, W = self.fem, self.job, self.W
        dx, ds = measures
        wO, wR = ufl.split(self.w)
        self.amounts = [fem.form(c * weight * dx) for c in (wO, wR)]
        self.inflow_forms = []
        self.residual = None
        self.far_dofs: list[Any] = []
        if job.electrode.axisymmetric:
            self.inflow_forms = [
                fem.form(job.D[s] * (job.c_bulk[s] - c) / self.far * weight * ds(FAR))
                for s, c in (("O", wO), ("R", wR))
            ]
        else:
            self.residual = fem.form(ufl.action(a, self.w) - L)
            owned = W.dofmap.index_map.size_local * W.dofmap.index_map_bs
            far_facets = facets.indices[facets.values == FAR]
            for i in range(2):
                dofs = fem.locate_dofs_topological(W.sub(i), 1, far_facets)
                self.far_dofs.append(dofs[dofs < owned])

    def _finest_cell(self) -> float:
        """The shortest cell edge (m) anywhere in the mesh."""
        x = self.mesh.geometry.x[:, :2]
        tri = self.mesh.geometry.dofmap.array.reshape(-1, 3)
        local = math.inf
        if tri.size:
            edges = [
                np.linalg.norm(x[tri[:, i]] - x[tri[:, j]], axis=1)
                for i, j in ((0, 1), (1, 2), (2, 0))
            ]
            local = float(np.min(edges))
        return float(self.comm.allreduce(local, op=_mpi_min()))

    def rates(self, E: float) -> tuple[float, float]:
        """Reduction and oxidation rate constants (m/s) at potential ``E`` (V)."""
        job = self.job
        eta = self.f * (E - job.E0)
        if job.model == "nernst":
            # Equal exponents: only their ratio (the Nernst equation) matters.
            log_kf, log_kb = -0.5 * eta, 0.5 * eta
            log_k0 = math.log(self.k_cap)
        else:
            log_kf, log_kb = -job.alpha * eta, (1.0 - job.alpha) * eta
            log_k0 = math.log(job.k0)
        # Scale both down together when the larger exceeds the cap: the interface is
        # at equilibrium then anyway, and the matrix stays well conditioned.
        shift = min(0.0, math.log(self.k_cap) - (log_k0 + max(log_kf, log_kb)))
        return math.exp(log_k0 + log_kf + shift), math.exp(log_k0 + log_kb + shift)

    def step(self, h: float, h_prev: float, E: float, bdf2: bool) -> float:
        """Advance by ``h`` (s) to potential ``E`` (V); returns the current (A)."""
        a0, a1, a2 = bdf_coefficients(h, h_prev, bdf2)
        kf, kb = self.rates(E)
        self.b1.value = -a1 / h
        self.b2.value = -a2 / h
        start = time.perf_counter()
        operator = (a0 / h, kf, kb)
        if operator != self._operator:
            self.a0.value, self.kf.value, self.kb.value = operator  # for the lifting
            same = self.PETSc.Mat.Structure.SAME_NONZERO_PATTERN
            parts = self.matrices
            parts["K"].copy(self.A, structure=same)
            for name, factor in zip(("M", "Bf", "Bb"), operator, strict=True):
                self.A.axpy(factor, parts[name], structure=same)
            self._operator = operator
        self.w2.x.array[:] = self.w1.x.array
        self.w1.x.array[:] = self.w.x.array
        b = self.b
        with b.localForm() as local:
            local.set(0.0)
        self.fem_petsc.assemble_vector(b, self.L)
        self.fem_petsc.apply_lifting(b, [self.a], bcs=[self.bcs])
        b.ghostUpdate(addv=self.PETSc.InsertMode.ADD, mode=self.PETSc.ScatterMode.REVERSE)
        self.fem_petsc.set_bc(b, self.bcs)
        self.assemble_s += time.perf_counter() - start
        start = time.perf_counter()
        self.ksp.solve(b, self.w.vector)
        if self.ksp.getConvergedReason() < 0:
            raise ArithmeticError(
                f"the PETSc solve failed (reason {self.ksp.getConvergedReason()})"
            )
        self.w.x.scatter_forward()
        self.solve_s += time.perf_counter() - start
        local_flux = self.fem.assemble_scalar(self.flux)
        self.rate = float(self.comm.allreduce(local_flux))
        return self.rate * self.flux_to_current

    def amount(self) -> FloatArray:
        """The amount of O and R in the domain, in units of the forms (see form_to_mol)."""
        local = [self.fem.assemble_scalar(form) for form in self.amounts]
        return np.array([float(self.comm.allreduce(v)) for v in local])

    def inflow(self) -> FloatArray:
        """The rate at which O and R enter through the far boundary (units of the forms
        per second), at the state just solved."""
        if self.residual is None:
            local = [self.fem.assemble_scalar(form) for form in self.inflow_forms]
        else:
            r = self.residual_vector
            with r.localForm() as part:
                part.set(0.0)
            self.fem_petsc.assemble_vector(r, self.residual)
            r.ghostUpdate(addv=self.PETSc.InsertMode.ADD, mode=self.PETSc.ScatterMode.REVERSE)
            values = r.array
            local = [float(values[dofs].sum()) for dofs in self.far_dofs]
        return np.array([float(self.comm.allreduce(v)) for v in local])

    # -- output gathered on rank 0, in DOLFINx's global dof order -------------------

    def mesh_frame(self) -> dict[str, object] | None:
        V = self.V[0]
        imap = V.dofmap.index_map
        owned = imap.size_local
        coords = V.tabulate_dof_coordinates()[:owned, :2]
        local_cells = V.dofmap.list.array.reshape(-1, 3)
        tdim = self.mesh.topology.dim
        n_cells = self.mesh.topology.index_map(tdim).size_local
        cells = imap.local_to_global(local_cells[:n_cells].ravel()).reshape(-1, 3)
        gathered = self.comm.gather((coords, cells), root=0)
        if gathered is None:
            return None
        xy = np.concatenate([g[0] for g in gathered])
        tri = np.concatenate([g[1] for g in gathered]).astype("<i8")
        el = self.job.electrode
        return {
            "type": "mesh",
            "dofs": int(xy.shape[0]) * 2,
            "nodes": int(xy.shape[0]),
            "cells": int(tri.shape[0]),
            "axes": ["r", "z"] if el.axisymmetric else ["x", "z"],
            "x": _f64(xy[:, 0]),
            "y": _f64(xy[:, 1]),
            "triangles": tri.tobytes(),
            "far": self.far,
        }

    def snapshot_frame(self, index: int, t: float) -> dict[str, object] | None:
        parts = []
        for i in range(2):
            owned = self.V[i].dofmap.index_map.size_local
            parts.append(self.w.x.array[self.maps[i]][:owned])
        gathered = self.comm.gather(parts, root=0)
        if gathered is None:
            return None
        values = np.stack([np.concatenate([g[i] for g in gathered]) for i in range(2)])
        return {
            "type": "snapshot",
            "step": index,
            "t": t,
            "species": ["O", "R"],
            "c": _f64(values.ravel()),
        }


def _mpi_min() -> Any:
    from mpi4py import MPI  # noqa: PLC0415

    return MPI.MIN


# --------------------------------------------------------------------------- main


def run(job: ReadJob, comm: Any, out: FrameWriter) -> None:
    """Solve the job, streaming frames to ``out`` (which only rank 0 writes)."""
    import dolfinx  # noqa: PLC0415
    from petsc4py import PETSc  # noqa: PLC0415

    out.send(
        {
            "type": "hello",
            "protocol": PROTOCOL,
            "dolfinx": dolfinx.__version__,
            "petsc": ".".join(map(str, PETSc.Sys.getVersion())),
            "ranks": comm.size,
        }
    )
    started = time.perf_counter()
    cell = DiscreteCell(job, comm)
    setup_s = time.perf_counter() - started
    frame = cell.mesh_frame()
    if frame is not None:
        out.send(frame)
    M = job.t.size
    current = np.zeros(M)
    first = 0
    last_flush = time.monotonic()
    h_prev = job.h[0]
    balance = _Balance(cell)
    stepping = time.perf_counter()
    for i in range(M):
        # BDF2 needs two smooth steps behind it: backward Euler after a jump.
        bdf2 = i > 0 and not job.restart[i] and not (i == 1 and job.restart[0])
        current[i] = cell.step(float(job.h[i]), float(h_prev), float(job.E[i]), bdf2)
        if not math.isfinite(current[i]):
            raise ArithmeticError(f"the current became non-finite at t = {job.t[i]:.6g} s")
        balance.step(float(job.h[i]), float(h_prev), bdf2)
        h_prev = job.h[i]
        if i in job.snapshots:
            snap = cell.snapshot_frame(i, float(job.t[i]))
            if snap is not None:
                out.send(snap)
        now = time.monotonic()
        if i + 1 == M or i + 1 - first >= job.batch or now - last_flush > 0.5:
            out.send(
                {
                    "type": "samples",
                    "first": first,
                    "t": _f64(job.t[first : i + 1]),
                    "E": _f64(job.E[first : i + 1]),
                    "I": _f64(current[first : i + 1]),
                }
            )
            first = i + 1
            last_flush = now
    stepping_s = time.perf_counter() - stepping
    out.send(
        {
            "type": "done",
            "steps": M,
            "setup_s": setup_s,
            "stepping_s": stepping_s,
            "assemble_s": cell.assemble_s,
            "solve_s": cell.solve_s,
            "balance": balance.frame(),
        }
    )


def bdf_coefficients(h: float, h_prev: float, bdf2: bool) -> tuple[float, float, float]:
    """``(a0, a1, a2)`` of the step: ``(a0 y_n + a1 y_n-1 + a2 y_n-2) / h`` is dy/dt at
    its end (variable-step BDF2, or backward Euler)."""
    if not bdf2:
        return 1.0, -1.0, 0.0
    omega = h / h_prev
    return (1 + 2 * omega) / (1 + omega), -(1 + omega), omega * omega / (1 + omega)


class _Balance:
    """The mass balance over the run: the reduction rate at the electrode, its magnitude
    and the far boundary's inflows, integrated with the steps' own BDF weights (so
    that, with the amounts at the start and the end, it closes to the solver's
    residual). A balance whose forms cannot be evaluated is reported missing (a line
    on stderr); the simulation itself goes on."""

    def __init__(self, cell: DiscreteCell) -> None:
        self.cell = cell
        self.failed = ""
        # Histories (newest first, two levels) of the integrals: rate, |rate|, inflows.
        self.hist = np.zeros((2, 4))
        try:
            self.start = cell.amount()
        except Exception as exc:  # a diagnostic must not end the run
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        self.failed = f"{type(exc).__name__}: {exc}"
        sys.stderr.write(f"galvana fenicsx worker: no mass balance: {self.failed}\n")
        sys.stderr.flush()

    def step(self, h: float, h_prev: float, bdf2: bool) -> None:
        if self.failed:
            return
        try:
            inflow = self.cell.inflow()
        except Exception as exc:  # see the class docstring
            self._fail(exc)
            return
        rate = self.cell.rate
        a0, a1, a2 = bdf_coefficients(h, h_prev, bdf2)
        f = np.array([rate, abs(rate), inflow[0], inflow[1]])
        new = (h * f - a1 * self.hist[0] - a2 * self.hist[1]) / a0
        self.hist = np.stack([new, self.hist[0]])

    def frame(self) -> dict[str, object] | None:
        """The ``balance`` of the ``done`` frame (SI), or None without one."""
        if self.failed:
            return None
        try:
            end = self.cell.amount()
        except Exception as exc:  # see the class docstring
            self._fail(exc)
            return None
        to_mol = self.cell.form_to_mol
        rate, gross, in_o, in_r = self.hist[0]
        return {
            "charge": rate * self.cell.flux_to_current,
            "gross_charge": gross * abs(self.cell.flux_to_current),
            "electrons": float(self.cell.job.n),
            "species": ["O", "R"],
            "start": [float(v) * to_mol for v in self.start],
            "end": [float(v) * to_mol for v in end],
            "inflow": [in_o * to_mol, in_r * to_mol],
        }


def _fatal(out: FrameWriter, message: str, status: int) -> NoReturn:
    sys.stderr.write(f"galvana fenicsx worker: {message}\n")
    sys.stderr.flush()
    with contextlib.suppress(OSError):
        out.send({"type": "error", "message": message})
    raise SystemExit(status)


def main() -> int:
    """Entry point: read the job on stdin, stream frames on stdout."""
    # Frames get their own descriptor; whatever a library prints on stdout (Gmsh,
    # PETSc, the FFCx JIT) goes to stderr, which the parent keeps as the run's log.
    frames = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import logging  # noqa: PLC0415

    # Warnings only: the FFCx JIT's build logs would bury what matters in the run's log
    # (setuptools lowers the root logger's level, so the handler filters too).
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.WARNING)
    from mpi4py import MPI  # noqa: PLC0415

    comm = MPI.COMM_WORLD
    out = FrameWriter(frames if comm.rank == 0 else None)
    outcome: tuple[str, Any]
    if comm.rank == 0:
        try:
            outcome = ("ok", ReadJob(read_frame(sys.stdin.buffer)))
        except JobError as exc:
            outcome = ("bad", str(exc))
    else:
        outcome = ("", None)
    outcome = comm.bcast(outcome, root=0)
    if outcome[0] == "bad":
        if comm.rank == 0:
            _fatal(out, f"bad job: {outcome[1]}", 2)
        return 2
    job: ReadJob = outcome[1]
    try:
        run(job, comm, out)
    except BrokenPipeError:
        return 3  # the parent is gone; nobody to tell
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        if comm.rank == 0:
            _fatal(out, message, 1)
        sys.stderr.write(f"galvana fenicsx worker (rank {comm.rank}): {message}\n")
        comm.Abort(1)
    with contextlib.suppress(OSError):
        frames.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
