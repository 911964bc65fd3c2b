"""The worker's frames, read and checked: anything malformed means the worker crashed.

A frame is a 4-byte big-endian length, then that many bytes of msgpack holding one
map with a ``type``. The reader trusts nothing: the length is bounded, the map's
keys and value types are checked per type, array byte counts must match the mesh,
and sample batches must continue exactly where the last one ended.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any, Final

import msgpack
import numpy as np
import numpy.typing as npt

from physics.errors import WorkerProtocolError
from physics.result import MassBalance
from runtime.constants import FARADAY

__all__ = [
    "MAX_FRAME_BYTES",
    "PROTOCOL",
    "Done",
    "Frame",
    "FrameReader",
    "HelloFrame",
    "MeshFrame",
    "SamplesFrame",
    "SnapshotFrame",
    "WorkerFailed",
    "encode_frame",
]

PROTOCOL: Final = 1
HEADER: Final = struct.Struct(">I")
MAX_FRAME_BYTES: Final = 1 << 28
"""256 MiB: a snapshot of a few million dofs; a longer announced frame is garbage."""

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class HelloFrame:
    """The worker started: its protocol, versions and number of MPI ranks."""

    dolfinx: str
    petsc: str
    ranks: int


@dataclass(frozen=True, slots=True)
class MeshFrame:
    """The mesh: node coordinates (m; ``axes`` names them, ``r, z`` or ``x, z``),
    triangles (node indices), degrees of freedom (two species per node), and ``far``
    the radius (m) of the far boundary."""

    axes: tuple[str, str]
    x: FloatArray
    y: FloatArray
    triangles: npt.NDArray[np.int64]
    dofs: int
    far: float

    @property
    def nodes(self) -> int:
        """Number of mesh nodes."""
        return int(self.x.size)


@dataclass(frozen=True, slots=True)
class SamplesFrame:
    """Currents of consecutive steps from ``first``: ``t`` (s), ``E`` (V), ``I`` (A)."""

    first: int
    t: FloatArray
    E: FloatArray
    I: FloatArray  # noqa: E741 - the electrochemical symbol for current


@dataclass(frozen=True, slots=True)
class SnapshotFrame:
    """Concentrations (mol/m^3) at every mesh node after step ``step`` (time ``t``, s):
    ``c`` has shape (species, nodes)."""

    step: int
    t: float
    species: tuple[str, ...]
    c: FloatArray


@dataclass(frozen=True, slots=True)
class Done:
    """The worker finished ``steps`` steps; timings in seconds; the run's mass balance
    (None when the worker could not evaluate it, or sent none)."""

    steps: int
    setup_s: float
    stepping_s: float
    assemble_s: float
    solve_s: float
    balance: MassBalance | None = None


@dataclass(frozen=True, slots=True)
class WorkerFailed:
    """The worker reported an error it could not get past (it exits non-zero next)."""

    message: str


Frame = HelloFrame | MeshFrame | SamplesFrame | SnapshotFrame | Done | WorkerFailed


def encode_frame(doc: Mapping[str, Any]) -> bytes:
    """One frame holding ``doc`` (plain data; bytes for arrays)."""
    body: bytes = msgpack.packb(doc, use_bin_type=True)
    return HEADER.pack(len(body)) + body


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    chunks = []
    left = size
    while left:
        chunk = stream.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class FrameReader:
    """Reads and checks the frames a worker writes on ``stream``.

    :meth:`next` returns the next frame, or ``None`` at a clean end of the stream
    (between frames); anything else raises :class:`WorkerProtocolError`.
    """

    def __init__(self, stream: IO[bytes], *, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self.stream = stream
        self.max_frame_bytes = max_frame_bytes
        self.mesh: MeshFrame | None = None
        self.hello: HelloFrame | None = None
        self.next_step = 0  # the step the next sample batch must start at
        self.frames = 0

    def next(self) -> Frame | None:
        """The next checked frame, or ``None`` at the end of the stream."""
        head = _read_exactly(self.stream, HEADER.size)
        if not head:
            return None
        if len(head) < HEADER.size:
            raise WorkerProtocolError(f"the worker's output ended inside a frame header ({head!r})")
        (size,) = HEADER.unpack(head)
        if not 0 < size <= self.max_frame_bytes:
            raise WorkerProtocolError(
                f"the worker announced a frame of {size} bytes (accepted: 1 to "
                f"{self.max_frame_bytes}); its output is not frames: {head!r}"
            )
        body = _read_exactly(self.stream, size)
        if len(body) != size:
            raise WorkerProtocolError(
                f"the worker's output ended after {len(body)} of a frame's {size} bytes"
            )
        try:
            doc = msgpack.unpackb(body, raw=False, strict_map_key=True, use_list=True)
        except Exception as exc:
            raise WorkerProtocolError(
                f"frame {self.frames} from the worker is not msgpack ({type(exc).__name__})"
            ) from None
        if not isinstance(doc, dict):
            raise WorkerProtocolError(
                f"frame {self.frames} from the worker is a {type(doc).__name__}, not a map"
            )
        frame = self._check(doc)
        self.frames += 1
        return frame

    # -- per type --------------------------------------------------------------------

    def _check(self, doc: dict[str, Any]) -> Frame:
        kind = doc.get("type")
        if self.hello is None and kind not in ("hello", "error"):
            raise WorkerProtocolError(f"the worker's first frame is {kind!r}, not 'hello'")
        if kind == "hello":
            return self._hello(doc)
        if kind == "mesh":
            return self._mesh(doc)
        if self.mesh is None and kind in ("samples", "snapshot", "done"):
            raise WorkerProtocolError(f"the worker sent {kind!r} before the mesh")
        if kind == "samples":
            return self._samples(doc)
        if kind == "snapshot":
            return self._snapshot(doc)
        if kind == "done":
            steps = _int(doc, "steps", kind, lo=1)
            if steps != self.next_step:
                raise WorkerProtocolError(
                    f"the worker says it finished {steps} steps but sent {self.next_step}"
                )
            return Done(
                steps,
                setup_s=_float(doc, "setup_s", kind),
                stepping_s=_float(doc, "stepping_s", kind),
                assemble_s=_float(doc, "assemble_s", kind),
                solve_s=_float(doc, "solve_s", kind),
                balance=_balance(doc.get("balance")),
            )
        if kind == "error":
            return WorkerFailed(_str(doc, "message", kind))
        raise WorkerProtocolError(
            f"frame {self.frames} from the worker has type {kind!r}; accepted: hello, mesh, "
            "samples, snapshot, done, error"
        )

    def _hello(self, doc: dict[str, Any]) -> HelloFrame:
        if self.hello is not None:
            raise WorkerProtocolError("the worker said hello twice")
        if doc.get("protocol") != PROTOCOL:
            raise WorkerProtocolError(
                f"the worker speaks protocol {doc.get('protocol')!r}; accepted: {PROTOCOL}"
            )
        self.hello = HelloFrame(
            _str(doc, "dolfinx", "hello"),
            _str(doc, "petsc", "hello"),
            _int(doc, "ranks", "hello", lo=1),
        )
        return self.hello

    def _mesh(self, doc: dict[str, Any]) -> MeshFrame:
        if self.mesh is not None:
            raise WorkerProtocolError("the worker sent the mesh twice")
        nodes = _int(doc, "nodes", "mesh", lo=3)
        cells = _int(doc, "cells", "mesh", lo=1)
        axes = doc.get("axes")
        if axes not in (["r", "z"], ["x", "z"]):
            raise WorkerProtocolError(f"mesh.axes: got {axes!r}; accepted: ['r', 'z'], ['x', 'z']")
        x = _floats(doc, "x", "mesh", nodes)
        y = _floats(doc, "y", "mesh", nodes)
        raw = doc.get("triangles")
        if not isinstance(raw, bytes) or len(raw) != cells * 3 * 8:
            raise WorkerProtocolError(f"mesh.triangles: expected {cells * 3 * 8} bytes of int64")
        triangles = np.frombuffer(raw, dtype="<i8").reshape(cells, 3).astype(np.int64)
        if triangles.min() < 0 or triangles.max() >= nodes:
            raise WorkerProtocolError(f"mesh.triangles: node indices outside [0, {nodes})")
        self.mesh = MeshFrame(
            (str(axes[0]), str(axes[1])),
            x,
            y,
            triangles,
            _int(doc, "dofs", "mesh", lo=1),
            _float(doc, "far", "mesh"),
        )
        return self.mesh

    def _samples(self, doc: dict[str, Any]) -> SamplesFrame:
        first = _int(doc, "first", "samples", lo=0)
        if first != self.next_step:
            raise WorkerProtocolError(
                f"samples.first: got {first}; expected {self.next_step} (batches must follow on)"
            )
        t = _floats(doc, "t", "samples", None)
        E = _floats(doc, "E", "samples", t.size)
        current = _floats(doc, "I", "samples", t.size)
        if t.size == 0:
            raise WorkerProtocolError("samples: an empty batch")
        self.next_step = first + t.size
        return SamplesFrame(first, t, E, current)

    def _snapshot(self, doc: dict[str, Any]) -> SnapshotFrame:
        assert self.mesh is not None  # checked in _check
        species = doc.get("species")
        if not (isinstance(species, list) and species and all(isinstance(s, str) for s in species)):
            raise WorkerProtocolError(f"snapshot.species: got {species!r}; accepted: names")
        c = _floats(doc, "c", "snapshot", len(species) * self.mesh.nodes)
        return SnapshotFrame(
            _int(doc, "step", "snapshot", lo=0),
            _float(doc, "t", "snapshot"),
            tuple(species),
            c.reshape(len(species), self.mesh.nodes),
        )


def _balance(doc: object) -> MassBalance | None:
    """The ``done`` frame's ``balance`` (charges in C, amounts in mol), checked."""
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise WorkerProtocolError(f"done.balance: got {type(doc).__name__}; accepted: a map")
    kind = "done.balance"
    charge, gross = _float(doc, "charge", kind), _float(doc, "gross_charge", kind)
    electrons = _float(doc, "electrons", kind)
    species = doc.get("species")
    if species != ["O", "R"]:
        raise WorkerProtocolError(f"{kind}.species: got {species!r}; accepted: ['O', 'R']")
    columns = {}
    for key in ("start", "end", "inflow"):
        value = doc.get(key)
        if not (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, int | float) and math.isfinite(v) for v in value)
        ):
            raise WorkerProtocolError(f"{kind}.{key}: got {value!r}; accepted: two numbers")
        columns[key] = np.array(value, dtype=np.float64)
    if not electrons > 0:
        raise WorkerProtocolError(f"{kind}.electrons: got {electrons!r}; accepted: > 0")
    # O is made by oxidation (anodic charge), R consumed.
    expected = np.array([1.0, -1.0]) * charge / (electrons * FARADAY)
    change = columns["end"] - columns["start"]
    imbalance = np.abs(change - expected - columns["inflow"])
    scale = abs(gross) / (electrons * FARADAY)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = imbalance / scale if scale > 0 else np.where(imbalance == 0, 0.0, np.inf)
    return MassBalance(
        charge=charge,
        gross_charge=abs(gross),
        electrons=electrons,
        species=("O", "R"),
        expected=expected,
        boundary=columns["inflow"],
        change=change,
        relative_error=np.asarray(relative, dtype=np.float64),
    )


def _int(doc: Mapping[str, Any], key: str, kind: str, *, lo: int) -> int:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise WorkerProtocolError(f"{kind}.{key}: got {value!r}; accepted: an integer >= {lo}")
    return value


def _float(doc: Mapping[str, Any], key: str, kind: str) -> float:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise WorkerProtocolError(f"{kind}.{key}: got {value!r}; accepted: a finite number")
    return float(value)


def _str(doc: Mapping[str, Any], key: str, kind: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str):
        raise WorkerProtocolError(f"{kind}.{key}: got {value!r}; accepted: a string")
    return value


def _floats(doc: Mapping[str, Any], key: str, kind: str, count: int | None) -> FloatArray:
    raw = doc.get(key)
    if not isinstance(raw, bytes) or len(raw) % 8:
        raise WorkerProtocolError(f"{kind}.{key}: expected bytes of float64")
    values = np.frombuffer(raw, dtype="<f8").astype(np.float64)
    if count is not None and values.size != count:
        raise WorkerProtocolError(f"{kind}.{key}: got {values.size} values; expected {count}")
    if not np.all(np.isfinite(values)):
        raise WorkerProtocolError(f"{kind}.{key}: holds non-finite values")
    return values
