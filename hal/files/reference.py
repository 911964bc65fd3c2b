"""Reference electrodes and their potentials against the standard hydrogen electrode.

Files and users name the reference in many ways ("Ag/AgCl (3M KCl)", "SCE Saturated
Calomel Electrode (0,241 V)", "Ag/AgCl sat. KCl"); :func:`find_reference` maps them to
one entry of :data:`REFERENCES`, whose ``E_vs_SHE`` (V, 25 °C) converts potentials::

    E_vs_SHE = E_vs_reference + reference.E_vs_SHE

>>> find_reference("Ag/AgCl (3 M KCl)").E_vs_SHE
0.21
>>> round(convert(0.0, "SCE", "Ag/AgCl (3 M KCl)"), 3)
0.031
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = ["REFERENCES", "Reference", "convert", "find_reference"]


@dataclass(frozen=True, slots=True)
class Reference:
    """A reference electrode: its canonical ``name``, its potential against SHE (V, 25 °C),
    or ``None`` for a redox couple in the solution itself (Fc/Fc+), whose potential
    depends on the solvent, and where the number comes from."""

    name: str
    E_vs_SHE: float | None
    source: str


# One table. Sources:
# [B] A. J. Bard, L. R. Faulkner, Electrochemical Methods, 2nd ed. (Wiley, 2001),
#     Table C.2 and the inside back cover (SCE 0.241, Ag/AgCl sat. KCl 0.197 V vs SHE).
# [S] D. T. Sawyer, A. Sobkowiak, J. L. Roberts, Electrochemistry for Chemists, 2nd ed.
#     (Wiley, 1995), Table 5.1 (Ag/AgCl 3 M KCl 0.210, 3.5 M 0.205, 1 M 0.235; Hg/HgO
#     1 M NaOH 0.140; Hg/Hg2SO4 sat. K2SO4 0.640; SSCE 0.236 V vs SHE).
# [G] G. Gritzner, J. Kuta, Pure Appl. Chem. 56 (1984) 461 (IUPAC): report potentials in
#     non-aqueous solvents against Fc/Fc+, whose potential against SHE depends on the
#     solvent; hence None here.
REFERENCES: Final[tuple[Reference, ...]] = (
    Reference("SHE", 0.0, "definition"),
    Reference("NHE", 0.0, "taken equal to SHE [B]"),
    Reference("RHE", None, "pH-dependent: 0 V at pH 0, -0.059 V per pH unit [B]"),
    Reference("SCE", 0.241, "saturated KCl [B]"),
    Reference("SSCE", 0.236, "saturated NaCl [S]"),
    Reference("Ag/AgCl (sat. KCl)", 0.197, "[B]"),
    Reference("Ag/AgCl (3.5 M KCl)", 0.205, "[S]"),
    Reference("Ag/AgCl (3 M KCl)", 0.210, "[S]"),
    Reference("Ag/AgCl (1 M KCl)", 0.235, "[S]"),
    Reference("Hg/HgO (1 M NaOH)", 0.140, "[S]"),
    Reference("Hg/Hg2SO4 (sat. K2SO4)", 0.640, "[S]"),
    Reference("Fc/Fc+", None, "solvent-dependent; IUPAC's internal standard [G]"),
    Reference("Ag/Ag+", None, "depends on the Ag+ concentration and solvent"),
    Reference("pseudo", None, "a quasi-reference wire: no fixed potential"),
)

_BY_NAME: Final = {r.name: r for r in REFERENCES}


def _squash(text: str) -> str:
    return (
        re.sub(r"[\s._()\-]+", "", text.lower()).replace("saturated", "sat").replace("mol/l", "m")
    )


def find_reference(text: str) -> Reference | None:
    """The reference electrode ``text`` names, or None when it names none that is known.

    Tolerant of spelling: case, spaces, dots and brackets are ignored, and a bare
    "Ag/AgCl" with a KCl concentration anywhere in the text finds that entry.
    """
    s = _squash(text)
    if not s:
        return None
    if "calomel" in s or s.startswith("sce") or s == "hg/hg2cl2":
        return _BY_NAME["SSCE" if "nacl" in s or s.startswith("ssce") else "SCE"]
    if "agcl" in s:
        for conc, name in (("35m", "3.5 M"), ("3m", "3 M"), ("1m", "1 M")):
            if conc in s:
                return _BY_NAME[f"Ag/AgCl ({name} KCl)"]
        if "sat" in s:
            return _BY_NAME["Ag/AgCl (sat. KCl)"]
        return None  # the filling matters (up to 40 mV): not guessed
    if "hgo" in s:
        return _BY_NAME["Hg/HgO (1 M NaOH)"]
    if "hg2so4" in s or s == "mse":
        return _BY_NAME["Hg/Hg2SO4 (sat. K2SO4)"]
    if s.startswith(("fc", "ferrocen")):
        return _BY_NAME["Fc/Fc+"]
    if s.startswith("ag/ag+") or s == "agag+":
        return _BY_NAME["Ag/Ag+"]
    for name in ("SHE", "NHE", "RHE"):
        if s == name.lower():
            return _BY_NAME[name]
    if "pseudo" in s or "quasi" in s:
        return _BY_NAME["pseudo"]
    return None


def convert(E: float, from_ref: str, to_ref: str) -> float:
    """A potential ``E`` (V) against ``from_ref`` as it reads against ``to_ref``.

    Raises ``ValueError`` when either is unknown or has no fixed potential vs SHE.
    """
    refs = []
    for text in (from_ref, to_ref):
        ref = find_reference(text)
        if ref is None or ref.E_vs_SHE is None:
            raise ValueError(
                f"reference {text!r} has no fixed potential against SHE; known ones: "
                + ", ".join(r.name for r in REFERENCES if r.E_vs_SHE is not None)
            )
        refs.append(ref.E_vs_SHE)
    return E + refs[0] - refs[1]
