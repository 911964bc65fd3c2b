"""The shared constants, and the one copy that cannot import them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import physics.engines.fenicsx
from runtime import constants


def test_the_fenicsx_worker_uses_the_same_constants() -> None:
    # The worker runs under the system interpreter and imports nothing of Galvana, so it
    # carries its own copy; read it without importing DOLFINx.
    worker = Path(physics.engines.fenicsx.__file__).with_name("worker.py")
    values: dict[str, object] = {}
    assigned = [
        node
        for node in ast.parse(worker.read_text(encoding="utf-8")).body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
    ]
    for node in assigned:
        names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        values.update(dict.fromkeys(names, node.value.value))
    for name in ("FARADAY", "GAS_CONSTANT", "STANDARD_TEMPERATURE"):
        assert values[name] == getattr(constants, name), name


def test_constants_are_the_2019_si_values() -> None:
    assert constants.FARADAY == 96485.33212
    assert constants.GAS_CONSTANT == 8.314462618
    # F = e N_A, both exact by the 2019 SI; F is given to 10 significant digits.
    e = constants.FARADAY / constants.AVOGADRO
    assert e == pytest.approx(1.602176634e-19, rel=1e-10)
