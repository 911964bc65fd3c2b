"""The `galvana` command, run as a real process through its console script."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

GALVANA = Path(sys.executable).with_name("galvana")


def galvana(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GALVANA), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONWARNINGS": "error"},
        check=False,
    )


def test_help_lists_the_subcommands() -> None:
    out = galvana("--help")
    assert out.returncode == 0
    for command in ("demo", "bench", "doctor"):
        assert f"    {command} " in out.stdout


def test_python_m_galvana_is_the_same_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "galvana", "frobnicate"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 2  # main()'s status reaches the shell
    assert "usage: galvana" in out.stderr
    assert "invalid choice: 'frobnicate'" in out.stderr


def test_every_command_of_the_table_has_a_module() -> None:
    from galvana.cli import COMMANDS

    missing = [
        f"{name}: {module}"
        for name, (module, _, _) in COMMANDS.items()
        if importlib.util.find_spec(module) is None
    ]
    assert missing == []


def test_bench_help_lists_the_suites_without_a_traceback() -> None:
    out = galvana("bench", "--help")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    assert "90 % coverage" in " ".join(out.stdout.split())  # a % in a suite's words
    assert "safety (emergency stop to cell off" in " ".join(out.stdout.split())


def test_estop_loads_nothing_heavy_before_the_stop_is_sent(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "galvana.cli", "estop", "--data", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 2  # no daemon there: one line, the stop not confirmed
    lines = out.stderr.splitlines()
    said = [line for line in lines if not line.startswith("import time:")]
    assert len(said) == 1
    assert said[0].startswith("galvana estop: cannot reach the daemon")
    assert "NOT confirmed" in said[0]
    imported = {line.split("|")[-1].strip() for line in lines if line.startswith("import time:")}
    heavy = {"numpy", "trio", "pykka", "yaml", "zarr", "torch", "runtime.codec", "runtime.client"}
    assert imported & heavy == set()


def test_unknown_command_and_bad_options_exit_2_without_traceback() -> None:
    for argv in (("frobnicate",), ("bench", "nope"), ("doctor", "--bogus")):
        out = galvana(*argv)
        assert out.returncode == 2, argv
        assert "Traceback" not in out.stderr
        assert "error:" in out.stderr


def test_doctor_reports_versions() -> None:
    out = galvana("doctor", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["python"].startswith("3.11")
    assert report["pykka"] != "missing"
    assert report["lmdb"] != "missing"


@pytest.mark.slow
def test_bench_runtime_json_has_the_promised_keys() -> None:
    out = galvana("bench", "runtime", "--quick", "--json")
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout)
    for key in (
        "tell_per_s",
        "raw_pykka_tell_per_s",
        "ask_per_s",
        "raw_pykka_ask_per_s",
        "codec_encode_batches_per_s",
        "codec_decode_batches_per_s",
        "store_durable_events_per_s",
        "zarr_append_mb_per_s",
        "recorder_samples_per_s",
        "recorder_cpu_at_1khz",
    ):
        assert isinstance(figures[key], float), key
        assert figures[key] > 0, key
    assert figures["tell_ratio"] == pytest.approx(
        figures["tell_per_s"] / figures["raw_pykka_tell_per_s"]
    )


@pytest.mark.slow
def test_bench_api_json_has_the_promised_keys() -> None:
    out = galvana("bench", "api", "--quick", "--json")
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout)
    for key in (
        "call_rtt_p50_ms",
        "call_rtt_p99_ms",
        "fanout_latency_p99_ms",
        "first_sample_ms",
        "first_sample_cold_ms",
    ):
        assert isinstance(figures[key], float), key
        assert figures[key] > 0, key
    assert figures["call_rtt_p50_ms"] <= figures["call_rtt_p99_ms"]
    assert figures["first_sample_runs"] == 3
    assert figures["samples_published"] >= 1000
    assert figures["samples_lost"] == 0  # ten subscribers at 1 kHz on an idle machine
