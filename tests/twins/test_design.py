"""Experiment design: candidates ranked by expected information gain."""

from __future__ import annotations

import pytest

from tests.twins.conftest import twin_doc
from twins.design import suggest_next_experiment
from twins.errors import DesignError
from twins.spec import load_twin_spec

CANDIDATES = [
    {"type": "cv", "E_start": 0.6, "E_vertex": -0.1, "scan_rate": rate} for rate in (0.02, 0.2, 2.0)
]


def test_candidates_are_ranked_by_information_about_k0() -> None:
    spec = load_twin_spec(twin_doc())
    ranked = suggest_next_experiment(spec, CANDIDATES, parameters=["kinetics.k0"])
    assert [s.eig for s in ranked] == sorted((s.eig for s in ranked), reverse=True)
    assert {s.index for s in ranked} == {0, 1, 2}
    # Kinetics show at fast scans (the couple looks reversible when slow).
    assert ranked[0].waveform["scan_rate"] == 2.0
    assert ranked[-1].waveform["scan_rate"] == 0.02
    for s in ranked:
        assert s.eig > 0
        assert s.expected_sd[0] < s.current_sd[0]
    plain = ranked[0].as_plain()
    assert set(plain["expected_sd"]) == {"kinetics.k0"}


def test_pyro_nested_monte_carlo_agrees_where_it_is_valid() -> None:
    # Noisy data carry little information: nested Monte Carlo is accurate there.
    spec = load_twin_spec(twin_doc(noise=2e-5))
    linear = suggest_next_experiment(spec, CANDIDATES[1:2], parameters=["kinetics.k0"])
    nmc = suggest_next_experiment(
        spec, CANDIDATES[1:2], parameters=["kinetics.k0"], method="nmc", seed=3
    )
    assert 0.3 < linear[0].eig < 4.0
    assert nmc[0].eig == pytest.approx(linear[0].eig, abs=0.25)


def test_bad_requests_are_refused() -> None:
    spec = load_twin_spec(twin_doc())
    with pytest.raises(DesignError, match="candidates"):
        suggest_next_experiment(spec, [])
    with pytest.raises(DesignError, match="not calibrated"):
        suggest_next_experiment(spec, CANDIDATES, parameters=["cell.Ru"])
    with pytest.raises(DesignError, match="scan_rate"):
        suggest_next_experiment(spec, [{"type": "cv", "E_start": 0.6, "E_vertex": -0.1}])
