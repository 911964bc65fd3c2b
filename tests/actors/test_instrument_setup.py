"""The daemon configuration's ``instruments:`` entries: read, checked, refused by key."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.instruments import InstrumentSetupError, parse_instruments


def test_a_simulated_instrument_s_settings_are_read() -> None:
    (setup,) = parse_instruments(
        [{"id": "sim", "relax": 2.5, "speed": 0, "seed": 4, "drift": {"kinetics.k0": -0.03}}],
        Path("/cfg"),
    )
    assert (setup.relax, setup.speed, setup.seed) == (2.5, 0.0, 4)
    assert setup.drift == ("kinetics.k0=-0.03",)
    (default,) = parse_instruments(None, Path("."))
    assert (default.id, default.resource, default.relax) == ("sim", "sim", 10.0)


@pytest.mark.parametrize(
    ("entries", "says"),
    [
        ([{"id": "sim", "relax": -1}], r"instruments\[0\]\.relax: -1 is not accepted"),
        ([{"id": "sim", "relax": "soon"}], r"instruments\[0\]\.relax"),
        ([{"id": "sim", "colour": "red"}], r"instruments\[0\]: unknown key\(s\) colour"),
        ([{"id": "a"}, {"id": "a"}], "ids must be unique"),
        ({"id": "sim"}, "expected a list"),
    ],
)
def test_bad_entries_are_refused_by_key(entries: object, says: str) -> None:
    with pytest.raises(InstrumentSetupError, match=says):
        parse_instruments(entries, Path("."))
