"""Reaction networks: steps written as text, and the thermodynamics of their cycles.

A step is written as chemists write it::

    O + e = R          an electron transfer (n electrons: "O + 2e = R"), always reversible
    R = P              a reversible chemical step (kf, kb)
    R -> P             an irreversible one (kf only)
    2 R -> D           stoichiometry by repetition: second order in R
    R + Z -> O         second order, two reactants
    O = Oads           adsorption, when Oads is an adsorbed species (physics.scenario)

At most two reactants and two products per chemical step (the orders the engine
integrates), one species on each side of an electron transfer, the oxidised form on the
left. :func:`parse_step` reads one, :func:`split_steps` a compact string of several
(``"O + e = R; R -> P"``), and :func:`cycles` finds the thermodynamic cycles of a network
(a square scheme is one) and how far each is from closing: around a cycle of reversible
steps the standard free energies must add up to zero, which ties one constant of the
cycle to the others (for a square scheme ``K2 / K1 = exp(F (E0_2 - E0_1) / RT)`` in its
usual labelling).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "PRESETS",
    "Cycle",
    "Step",
    "closing_log_k",
    "cycles",
    "describe",
    "parse_step",
    "split_steps",
]

# The named mechanisms as networks (species named as in their scenarios). Their
# scenarios keep the named form; these are what they compile to.
PRESETS: dict[str, tuple[str, ...]] = {
    "E": ("O + e = R",),
    "EC": ("O + e = R", "R = Z"),
    "CE": ("Y = O", "O + e = R"),
    "EC'": ("O + e = R", "R -> O"),
    "ECE": ("O + e = R", "R = O2", "O2 + e = R2"),
}

_NAME = r"[A-Za-z][A-Za-z0-9_]*"
_TERM = re.compile(rf"^\s*(\d+)?\s*({_NAME})\s*$")
_ELECTRONS = re.compile(r"^\s*(\d+)?\s*e-?\s*$")
_ARROWS = (("<=>", True), ("->", False), ("=", True))


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a network: ``reactants`` and ``products`` (a species twice for a
    stoichiometric 2), ``electrons`` taken up by the reactant (0 for a chemical step),
    and whether it is ``reversible``."""

    reactants: tuple[str, ...]
    products: tuple[str, ...]
    electrons: int
    reversible: bool

    @property
    def transfer(self) -> bool:
        """Whether this is an electron transfer ``ox + n e = red``."""
        return self.electrons > 0

    @property
    def species(self) -> tuple[str, ...]:
        """The species of the step, each once, in order of appearance."""
        return tuple(dict.fromkeys(self.reactants + self.products))

    def __str__(self) -> str:
        left = _side(self.reactants)
        if self.electrons:
            left += " + e" if self.electrons == 1 else f" + {self.electrons}e"
        return f"{left} {'=' if self.reversible else '->'} {_side(self.products)}"


def _side(names: tuple[str, ...]) -> str:
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    return " + ".join(n if c == 1 else f"{c} {n}" for n, c in counts.items())


def split_steps(text: str) -> list[str]:
    """The steps of a compact network string: separated by ``;`` or new lines."""
    return [part.strip() for part in re.split(r"[;\n]", text) if part.strip()]


def parse_step(text: str) -> Step:
    """The step written in ``text``; ``ValueError`` saying what is wrong and what is
    accepted."""
    for arrow, reversible in _ARROWS:  # noqa: B007 - the arrow found says which
        if arrow in text:
            left, _, right = text.partition(arrow)
            break
    else:
        raise ValueError(
            f"{text!r} has no '=' (reversible) or '->' (irreversible) between its sides"
        )
    if any(a in right for a, _ in _ARROWS):
        raise ValueError(f"{text!r} has more than one arrow; accepted: one '=' or '->'")
    reactants, electrons = _parse_side(left, text, allow_electrons=True)
    products, stray = _parse_side(right, text, allow_electrons=True)
    if stray:
        raise ValueError(
            f"{text!r}: electrons on the right; write the oxidised form on the left "
            "(accepted: 'O + e = R')"
        )
    overlap = set(reactants) & set(products)
    if overlap:
        raise ValueError(f"{text!r}: {sorted(overlap)[0]} is on both sides")
    if electrons:
        if not reversible:
            raise ValueError(
                f"{text!r}: an electron transfer is written with '=' (its kinetics set how "
                "reversible it is)"
            )
        if len(reactants) != 1 or len(products) != 1:
            raise ValueError(
                f"{text!r}: an electron transfer takes one species on each side "
                "(accepted: 'O + e = R', 'O + 2e = R')"
            )
        if electrons > 6:
            raise ValueError(f"{text!r}: {electrons} electrons; accepted: 1 to 6")
    elif len(reactants) > 2 or len(products) > 2:
        raise ValueError(
            f"{text!r}: {max(len(reactants), len(products))} species on one side; accepted: "
            "at most two (steps of first and second order)"
        )
    return Step(tuple(reactants), tuple(products), electrons, reversible)


def _parse_side(side: str, text: str, *, allow_electrons: bool) -> tuple[list[str], int]:
    names: list[str] = []
    electrons = 0
    for term in side.split("+"):
        e = _ELECTRONS.match(term)
        if e is not None and allow_electrons:
            electrons += int(e.group(1) or 1)
            continue
        m = _TERM.match(term)
        if m is None:
            raise ValueError(
                f"{text!r}: {term.strip()!r} is not a species; accepted: a name (a letter, "
                "then letters, digits or _), optionally after a count ('2 R')"
            )
        count = int(m.group(1) or 1)
        if not 1 <= count <= 2:
            raise ValueError(f"{text!r}: a count of {count}; accepted: 1 or 2")
        names.extend([m.group(2)] * count)
    if not names:
        raise ValueError(f"{text!r}: a side without species")
    return names, electrons


@dataclass(frozen=True, slots=True)
class Cycle:
    """A thermodynamic cycle of a network: ``coefficients`` (one per step; the steps
    with a non-zero one form the cycle, taken forwards or backwards by its sign) and
    ``mismatch``, the sum of the standard free energies around it in units of RT
    (0 for a consistent network)."""

    coefficients: tuple[float, ...]
    mismatch: float

    @property
    def steps(self) -> tuple[int, ...]:
        """The indices of the steps the cycle goes through."""
        return tuple(i for i, c in enumerate(self.coefficients) if c != 0.0)


def cycles(steps: Sequence[Step], log_k: Sequence[float | None]) -> list[Cycle]:
    """The independent cycles of the reversible steps and their free-energy mismatch.

    ``log_k[i]`` is step i's ``ln K`` (``ln(kf/kb)`` for a chemical step,
    ``n F E0 / RT`` for an electron transfer: its equilibrium constant with the electrode
    at 0 V), ``None`` for an irreversible step, which closes no cycle. A cycle is a
    combination of steps in which every species cancels; its mismatch is the same
    combination of the ``ln K``: 0 when the constants are consistent.
    """
    used = [i for i, k in enumerate(log_k) if k is not None]
    if not used:
        return []
    names = sorted({s for i in used for s in steps[i].species})
    index = {n: j for j, n in enumerate(names)}
    # Stoichiometry: products +, reactants - (electrons are the reference: 0 V).
    A = np.zeros((len(used), len(names)))
    for row, i in enumerate(used):
        for n in steps[i].products:
            A[row, index[n]] += 1.0
        for n in steps[i].reactants:
            A[row, index[n]] -= 1.0
    # The left null space of A: combinations of steps that leave every species as it was.
    u, s, _ = np.linalg.svd(A)
    rank = int(np.sum(s > 1e-9 * max(1.0, float(s.max(initial=0.0)))))
    basis = u[:, rank:].T
    if basis.size == 0:
        return []
    basis = _echelon(basis)
    out = []
    g = np.array([log_k[i] for i in used], dtype=np.float64)
    for y in basis:
        coeffs = [0.0] * len(steps)
        for row, i in enumerate(used):
            coeffs[i] = float(y[row])
        out.append(Cycle(tuple(coeffs), float(y @ g)))
    return out


def _echelon(basis: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The cycle basis in reduced row echelon form, each row scaled so that its entries
    are small integers where they can be (+1 and -1 for a square scheme)."""
    m = basis.copy()
    rows, cols = m.shape
    r = 0
    for c in range(cols):
        if r == rows:
            break
        pivot = r + int(np.argmax(np.abs(m[r:, c])))
        if abs(m[pivot, c]) < 1e-9:
            continue
        m[[r, pivot]] = m[[pivot, r]]
        m[r] /= m[r, c]
        for other in range(rows):
            if other != r:
                m[other] -= m[other, c] * m[r]
        r += 1
    m[np.abs(m) < 1e-9] = 0.0
    for k in range(rows):
        nonzero = np.abs(m[k][m[k] != 0.0])
        if nonzero.size:
            m[k] /= nonzero.min()
            rounded = np.round(m[k])
            if np.allclose(m[k], rounded, atol=1e-9):
                m[k] = rounded
    return m


def closing_log_k(cycle: Cycle, step: int, log_k: float) -> float:
    """The ``ln K`` of ``step`` (one of the cycle's) that closes the cycle."""
    c = cycle.coefficients[step]
    return log_k - cycle.mismatch / c


def describe(cycle: Cycle, labels: Sequence[str]) -> str:
    """The cycle as a signed sum of step labels: ``reactions[0] - reactions[1] + ...``."""
    parts = []
    for i in cycle.steps:
        c = cycle.coefficients[i]
        size = abs(c)
        factor = "" if math.isclose(size, 1.0) else f"{size:g} "
        sign = "-" if c < 0 else "+"
        parts.append(f"{sign} {factor}{labels[i]}")
    text = " ".join(parts)
    return text[2:] if text.startswith("+ ") else "-" + text[1:]
