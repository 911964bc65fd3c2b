"""The daemon configuration's ``instruments:`` entries: read, checked, refused by key."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from actors.instruments import InstrumentSetupError, build_instruments, parse_instruments
from hal.drivers.keithley2450 import Keithley2450
from hal.drivers.methodscript import MethodScriptPotentiostat
from hal.drivers.registry import driver_kinds
from hal.drivers.scpi_potentiostat import ScpiPotentiostat


def test_a_simulated_instrument_s_settings_are_read() -> None:
    (setup,) = parse_instruments(
        [{"id": "sim", "relax": 2.5, "speed": 0, "seed": 4, "drift": {"kinetics.k0": -0.03}}],
        Path("/cfg"),
    )
    assert setup.driver == "sim"
    assert (setup.options["relax"], setup.options["speed"], setup.options["seed"]) == (2.5, 0, 4)
    assert setup.options["drift"] == ("kinetics.k0=-0.03",)
    (default,) = parse_instruments(None, Path("."))
    assert (default.id, default.driver, default.options["relax"]) == ("sim", "sim", 10.0)
    (scenario,) = parse_instruments([{"id": "s", "scenario": "cell.yaml"}], Path("/cfg"))
    assert scenario.options["scenario"] == "/cfg/cell.yaml"  # from the config's directory


def test_each_driver_s_options_are_read_with_their_defaults() -> None:
    scpi, k2450, pico = parse_instruments(
        [
            {"id": "a", "driver": "scpi", "resource": "TCPIP0::10.0.0.2::5025::SOCKET"},
            {
                "id": "b",
                "driver": "keithley2450",
                "resource": "USB0::0x05E6::0x2450::04512345::INSTR",
                "backends": "@ivi",
                "nplc": 1,
                "four_wire": True,
                "limits": {"I_max": 0.02},
            },
            {"id": "c", "driver": "methodscript", "port": "/dev/ttyACM0", "baud": 115200},
        ],
        Path("."),
    )
    assert scpi.options == {
        "resource": "TCPIP0::10.0.0.2::5025::SOCKET",
        "backends": ("@py",),
        "timeout": 2.0,
        "poll": 0.002,
        "max_batch": 65536,
    }
    assert k2450.options["backends"] == ("@ivi",)
    assert (k2450.options["nplc"], k2450.options["four_wire"]) == (1.0, True)
    assert k2450.limits["I_max"] == 0.02
    assert pico.options == {"port": "/dev/ttyACM0", "baud": 115200, "timeout": 2.0, "poll": 0.005}


def test_a_resource_without_a_driver_is_scpi_as_before() -> None:
    (setup,) = parse_instruments([{"id": "x", "resource": "TCPIP0::h::5025::SOCKET"}], Path("."))
    assert setup.driver == "scpi"
    (sim,) = parse_instruments([{"id": "x", "resource": "sim", "speed": 0}], Path("."))
    assert sim.driver == "sim"


def test_the_drivers_are_built_without_touching_an_instrument(tmp_path: Path) -> None:
    setups = parse_instruments(
        [
            {"id": "a", "driver": "scpi", "resource": "TCPIP0::192.0.2.1::5025::SOCKET"},
            {"id": "b", "driver": "keithley2450", "resource": "TCPIP0::192.0.2.2::5025::SOCKET"},
            {"id": "c", "driver": "methodscript", "port": str(tmp_path / "no-such-tty")},
        ],
        Path("."),
    )
    _, interlocks, described = build_instruments(setups, park=None)  # type: ignore[arg-type]
    kinds = [type(interlocks[i].driver) for i in "abc"]
    assert kinds == [ScpiPotentiostat, Keithley2450, MethodScriptPotentiostat]
    assert described["b"] == {
        "driver": "keithley2450",
        "connection": "TCPIP0::192.0.2.2::5025::SOCKET",
    }
    assert described["c"]["connection"].endswith("no-such-tty")


@pytest.mark.parametrize(
    ("entries", "says"),
    [
        ([{"id": "sim", "relax": -1}], r"^instruments\[0\]\.relax: got -1; expected a number >= 0"),
        ([{"id": "sim", "relax": "soon"}], r"instruments\[0\]\.relax: got a string"),
        (
            [{"id": "sim", "colour": "red"}],
            r"instruments\[0\]: unknown key\(s\) colour; accepted for driver sim: ",
        ),
        ([{"id": "a"}, {"id": "a"}], "ids must be unique"),
        ({"id": "sim"}, "expected a list"),
        (
            [{"id": "k", "driver": "keithley-2450"}],
            r"^instruments\[0\]\.driver: got 'keithley-2450'; "
            r"accepted: keithley2450, methodscript, scpi, sim$",
        ),
        (
            [{"id": "k", "driver": "keithley2450"}],
            r"^instruments\[0\]\.resource: required for this driver; expected a non-empty string$",
        ),
        (
            [{"id": "k", "driver": "keithley2450", "resource": "x", "port": "/dev/ttyS0"}],
            r"^instruments\[0\]: unknown key\(s\) port; accepted for driver keithley2450: "
            r"backends, driver, four_wire, id, limits, max_points, nplc, poll, resource, timeout$",
        ),
        (
            [{"id": "k", "driver": "keithley2450", "resource": "x", "nplc": 50}],
            r"^instruments\[0\]\.nplc: got 50; expected a number from 0.01 to 10$",
        ),
        (
            [{"id": "k", "driver": "keithley2450", "resource": "x", "four_wire": "yes"}],
            r"^instruments\[0\]\.four_wire: got a string; expected true or false$",
        ),
        (
            [{"id": "m", "driver": "methodscript", "port": "/dev/ttyACM0", "baud": 9601}],
            r"^instruments\[0\]\.baud: got 9601; expected one of 9600, 19200, 38400, 57600, "
            r"115200, 230400$",
        ),
        (
            [{"id": "m", "driver": "methodscript", "port": "/dev/ttyACM0", "timeout": 0}],
            r"^instruments\[0\]\.timeout: got 0; expected a number > 0$",
        ),
        (
            [{"id": "s", "driver": "scpi", "resource": "x", "backends": []}],
            r"^instruments\[0\]\.backends: got a list; expected a string or a list",
        ),
        (
            [{"id": "s", "driver": "scpi", "resource": "x", "limits": {"I_maximum": 1}}],
            r"^instruments\[0\]\.limits\.I_maximum: unknown limit; accepted: E_min, E_max",
        ),
    ],
)
def test_bad_entries_are_refused_by_key(entries: object, says: str) -> None:
    with pytest.raises(InstrumentSetupError, match=says):
        parse_instruments(entries, Path("."))


def test_relax_may_be_infinite() -> None:
    (setup,) = parse_instruments([{"id": "sim", "relax": math.inf}], Path("."))
    assert setup.options["relax"] == math.inf


def test_a_driver_plugs_in_by_name_through_an_entry_point(tmp_path: Path) -> None:
    # A distribution on the path that declares a driver in the galvana.drivers group,
    # as a lab's own package would; a fresh interpreter finds it by name.
    (tmp_path / "labdrivers.py").write_text(
        textwrap.dedent(
            """
            from hal.drivers.registry import DriverKind, Option
            from hal.drivers.scpi_potentiostat import ScpiPotentiostat

            BENCH = DriverKind(
                "bench",
                "the lab's bench potentiostat",
                (Option("resource", "text", "VISA resource", required=True),),
                lambda options: ScpiPotentiostat(options["resource"]),
            )
            BROKEN = 1
            """
        )
    )
    info = tmp_path / "labdrivers-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: labdrivers\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[galvana.drivers]\nbench = labdrivers:BENCH\nbroken = labdrivers:BROKEN\n"
    )
    script = textwrap.dedent(
        """
        from pathlib import Path
        from actors.instruments import InstrumentSetupError, build_instruments, parse_instruments
        from hal.drivers.registry import driver_kinds

        print(sorted(driver_kinds()))
        setups = parse_instruments([{"id": "b", "driver": "bench", "resource": "R"}], Path("."))
        print(build_instruments(setups, None)[2])
        try:
            parse_instruments([{"id": "x", "driver": "broken"}], Path("."))
        except InstrumentSetupError as exc:
            print(exc)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": f"{tmp_path}:{Path(__file__).resolve().parents[2]}"},
    ).stdout.splitlines()
    assert out[0] == "['bench', 'keithley2450', 'methodscript', 'scpi']"
    assert out[1] == "{'b': {'driver': 'bench', 'connection': 'R'}}"
    assert out[2] == (
        "instruments[0].driver: 'broken' did not load: "
        "labdrivers:BROKEN is not a DriverKind named 'broken'"
    )
    assert "bench" not in driver_kinds()  # this process has no such distribution
