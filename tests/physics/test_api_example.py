"""The usage example in physics/__init__.py runs as written."""

from __future__ import annotations

import os
from pathlib import Path

import physics


def test_package_docstring_example_runs() -> None:
    doc = physics.__doc__
    assert doc is not None
    code = doc.split("::", 1)[1].split("``physics.analytic``")[0]
    lines = [line[4:] for line in code.splitlines() if line.strip()]
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
