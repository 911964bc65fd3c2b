"""The usage example in physics/__init__.py runs as written."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

import physics


def test_package_docstring_example_runs() -> None:
    doc = physics.__doc__
    assert doc is not None
    # The literal block: the indented lines after "::", up to the first unindented one.
    block = doc.split("::", 1)[1].splitlines()[1:]
    lines: list[str] = []
    for line in block:
        if line.strip() and not line.startswith("    "):
            break
        if line.strip():
            lines.append(line[4:])
    root = Path(__file__).resolve().parents[2]
    cwd = Path.cwd()
    os.chdir(root)
    try:
        namespace: dict[str, object] = {}
        exec("\n".join(lines), namespace)
    finally:
        os.chdir(cwd)
    chunk = namespace["chunk"]
    batch = namespace["batch"]
    assert isinstance(chunk, physics.SimulationResult)
    assert chunk.I.shape == (2,)
    assert isinstance(batch, physics.BatchResult)
    assert batch.I.shape[0] == 2
    acv = namespace["acv"]
    envelope_2 = namespace["envelope_2"]
    assert isinstance(acv, physics.SimulationResult)
    assert isinstance(envelope_2, np.ndarray)
    assert envelope_2.shape == (acv.t.size - 1,)
    assert np.all(envelope_2 >= 0)
    assert envelope_2.max() > 0
