"""A scan-rate series of staircase CVs as a Gamry potentiostat would export them.

The cell is simulated with the full model of ``examples/twins/staircase-series.yaml``
(Galvana's numba engine at twice that spec's resolution): a quasi-reversible couple,
2 mM of which 80 % is oxidised, a background current (an offset that moves from run to
run and a slope in E), 150 ohm and 2 uF, measured as a staircase potentiostat measures
(5 mV steps, the current sampled at the end of each step) at 50, 200 and 1000 mV/s, with
0.2 uA of Gaussian noise. Each CV is written as Framework 7.10 writes a CV ``.DTA``
(``tests/hal/files/writers.py``). Origin and licence of the numbers: this project
(Apache-2.0).

The README's "Your own data" calibrates these files end to end, and
``test_calibrate_import.py`` runs the same commands. To write them::

    python -m tests.actors.staircase_series DIR
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tests.hal.files.writers import Columns, gamry
from twins.spec import TwinSpec, load_twin_spec
from twins.synthetic import true_current

SPEC = Path(__file__).resolve().parents[2] / "examples" / "twins" / "staircase-series.yaml"
RATES = (0.05, 0.2, 1.0)  # V/s
E_STEP = 0.005  # V
NOISE = 2e-7  # A
# The cell's shared parameters, and the background offset (A) of each run.
TRUTH = {
    "kinetics.k0": 5e-5,
    "kinetics.alpha": 0.45,
    "kinetics.E0": 0.25,
    "species.O.D": 7.2e-10,
    "bulk.fraction_oxidized": 0.8,
    "background.slope": 2e-6,
}
OFFSETS = (3e-7, 5e-7, 8e-7)


def file_name(rate: float) -> str:
    """The file of the CV at ``rate`` V/s."""
    return f"cv-{rate * 1e3:.0f}mVs.DTA"


def run_spec(rate: float) -> TwinSpec:
    """The example spec with its protocol the staircase CV at ``rate`` V/s."""
    doc: dict[str, Any] = yaml.safe_load(SPEC.read_text())
    doc["protocol"] = {
        "waveform": {
            "type": "staircase_cv",
            "E_start": 0.6,
            "E_vertex": -0.1,
            "E_step": E_STEP,
            "t_step": E_STEP / rate,
            "sample": 1.0,
        },
        "sample_rate": rate / E_STEP,
    }
    return load_twin_spec(doc)


def write_series(directory: Path) -> list[Path]:
    """Write the series' files into ``directory``; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, rate in enumerate(RATES):
        spec = run_spec(rate)
        truth = {**TRUTH, "background.offset": OFFSETS[k]}
        t, E, current = true_current(spec, truth)
        measured = current + np.random.default_rng(100 + k).normal(0.0, NOISE, t.size)
        # The file starts with the first step's sample (t = 0 is the cell at rest).
        columns = Columns(
            t=t[1:],
            E=E[1:],
            I=measured[1:],
            scan=np.ones(t.size - 1, dtype=np.int32),
            scan_rate=rate,
            E_step=E_STEP,
        )
        path = directory / file_name(rate)
        path.write_bytes(
            gamry(columns, notes=f"simulated: 2 mM, 80 % oxidised, {rate * 1e3:g} mV/s")
        )
        paths.append(path)
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write("usage: python -m tests.actors.staircase_series DIR\n")
        sys.exit(2)
    written = write_series(Path(sys.argv[1]))
    sys.stdout.write("wrote " + ", ".join(str(p) for p in written) + "\n")
