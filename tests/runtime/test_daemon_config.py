"""``galvana daemon --config FILE``: a bad configuration is one line naming the file and
the key, exit status 2, never a traceback (the daemon as a real process)."""

from __future__ import annotations

import argparse
import contextlib
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from galvana.daemon import tree
from runtime.daemon import Host, configure, load_config
from runtime.event_bus import EventBus
from runtime.event_store import EventStore
from runtime.field_store import FieldStore

from .test_daemon import GALVANA


def daemon_with(tmp_path: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GALVANA), "daemon", "--data", str(tmp_path / "d"), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def one_line(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith("galvana daemon: --config ")
    return out.stderr


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        ({"instruments": 5}, "instruments: got a number; expected a list of instruments"),
        ({"instruments": [{"id": "sim", "limits": [1]}]}, "instruments[0].limits: got a list"),
        (
            {"instruments": [{"id": "sim", "limits": {"I_max": "lots"}}]},
            "instruments[0].limits.I_max: got a string; expected a number",
        ),
        (
            {"instruments": [{"id": "sim", "limits": {"I_min": 1}}]},
            "instruments[0].limits.I_min: unknown limit",
        ),
        ({"instruments": [{"id": "sim", "speed": "fast"}]}, "instruments[0].speed: got a string"),
        ({"instruments": [{"id": "sim", "seed": 1.5}]}, "instruments[0].seed: got 1.5; expected"),
        ({"instruments": [{"id": "sim", "drift": 5}]}, "instruments[0].drift: got a number"),
        ({"instruments": [{"id": "sim", "scenario": 5}]}, "instruments[0].scenario: got a number"),
        (
            {"instruments": [{"id": "sim", "scenario": "missing.yaml"}]},
            "missing.yaml: no such file",
        ),
        ({"socket": 5}, "socket: got a number; expected a string"),
        ({"token_file": ["a"]}, "token_file: got a list; expected a string"),
        ({"token": "secret"}, "token: a token is not kept in the configuration"),
        ({"log_level": "loud"}, "log_level: not a level; accepted: DEBUG, INFO"),
        ({"allowed_paths": 7}, "allowed_paths: got a number; expected a list of directories"),
        ({"allowed_paths": ["no/such/dir"]}, "allowed_paths[0]: 'no/such/dir' is not a directory"),
        ({"run_limits": [1]}, "run_limits: got a list; accepted: a map of samples"),
        ({"run_limits": {"samples": -1}}, "run_limits.samples: got a number below 1"),
        ({"run_limits": {"pixels": 1}}, "run_limits.pixels: unknown key"),
        ({"executor": {"kind": "dask"}}, "executor.kind: got 'dask'; accepted: local, ray"),
        ({"executor": [1]}, "executor: got list; accepted: a mapping"),
        ({"executor": {"kind": "ray", "workers": 0}}, "executor.workers: got 0"),
        ({"http": 7341}, "http: got a number; expected a string or a mapping"),
        ({"http": "7341"}, "http: expected HOST:PORT"),
        ({"http": {"listen": "somewhere"}}, "http.listen: expected HOST:PORT"),
        ({"http": {"listen": "127.0.0.1:0", "colour": "red"}}, "http.colour: unknown key"),
        ({"http": {"max_streams": 0}}, "http.max_streams: got a number below 1"),
        ({"http": {"keepalive_s": "2 V"}}, "http.keepalive_s: got a string; expected a number"),
        ({"stall_timeout_s": 0}, "stall_timeout_s: got a number <= 0; expected a number > 0 s"),
        ([1, 2], "the file must hold a map of settings"),
    ],
)
def test_a_bad_configuration_is_one_line_naming_the_file_and_key(
    tmp_path: Path, doc: Any, says: str
) -> None:
    config = tmp_path / "daemon.yaml"
    config.write_text(yaml.safe_dump(doc))
    line = one_line(daemon_with(tmp_path, config))
    assert str(config) in line
    assert says in line


@pytest.mark.parametrize(
    ("encoding", "says"),
    [
        ("utf-16", "is UTF-16 text"),
        ("latin-1", "is not UTF-8 text: the byte at line 1, column 20 is not valid UTF-8"),
    ],
)
def test_a_configuration_not_in_utf8_is_one_line(tmp_path: Path, encoding: str, says: str) -> None:
    config = tmp_path / "daemon.yaml"
    config.write_bytes("# laboratoire de l'été\nlog_level: INFO\n".encode(encoding))
    line = one_line(daemon_with(tmp_path, config))
    assert f"{config}: {says}" in line
    assert "été" not in line


def test_a_configuration_that_is_no_regular_file_is_one_line(tmp_path: Path) -> None:
    for config, says in (
        (Path("/dev/zero"), "is a character device"),
        (tmp_path, "is a directory"),
    ):
        assert says in one_line(daemon_with(tmp_path, config))


def test_a_yaml_error_names_the_line_and_column_and_never_quotes_the_file(tmp_path: Path) -> None:
    config = tmp_path / "daemon.yaml"
    config.write_text("token: hunter2-secret\nsocket: [unclosed *hunter2-alias\n")
    line = one_line(daemon_with(tmp_path, config))
    assert "not valid YAML at line 3, column 1: expected ',' or ']'" in line
    assert "hunter2" not in line


def test_the_stall_timeout_is_every_instrument_s_watchdog(tmp_path: Path) -> None:
    config = tmp_path / "daemon.yaml"
    instrument = {"id": "pico", "driver": "methodscript", "port": str(tmp_path / "no-tty")}
    config.write_text(yaml.safe_dump({"stall_timeout_s": "250 ms", "instruments": [instrument]}))
    parser = argparse.ArgumentParser()
    configure(parser)
    data = tmp_path / "d"
    assert load_config(parser.parse_args(["--data", str(data)])).stall_timeout_s == 2.0
    loaded = load_config(parser.parse_args(["--data", str(data), "--config", str(config)]))
    assert loaded.stall_timeout_s == 0.25
    # The daemon's tree, as it assembles it (nothing started, no instrument touched).
    with contextlib.ExitStack() as resources:
        store = resources.enter_context(EventStore(tmp_path / "events.lmdb"))
        fields = FieldStore(tmp_path / "fields")
        resources.callback(fields.close)
        spec = tree(Host(loaded, store, fields, EventBus(), resources))
        instruments = next(c for c in spec.children if c.id == "instruments")
        (pico,) = instruments.args[0].children
        assert pico.args[0].stall_timeout_s == 0.25
