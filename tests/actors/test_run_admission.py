"""What a run spec may make the daemon do, checked before a run exists: a real daemon
process with its simulated potentiostat, driven through the API and the CLI.

- the whole protocol against the instrument's compliance limits, before the cell is on;
- files a spec names only under the daemon's directories, never echoed back;
- the sizes a spec implies, bounded before anything is allocated;
- a latched interlock refuses runs until `galvana instrument reset`.
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import physics
from actors.acquire import check_protocol, expected_current
from actors.run_limits import RunLimits, check_run_limits, waveform_segments
from hal.safety import SafetyLimits
from runtime.client import Client
from runtime.errors import ApiError, CallError
from twins.spec import load_twin_spec

from ..runtime._actors import wait_until
from ..runtime.test_daemon import Daemon, record_source_run
from .test_twin_runs import twin_spec

LIMITS = {"E_min": -1.0, "E_max": 1.0, "I_max": 0.01, "scan_rate_max": 2.0}


def start_daemon(tmp_path: Path, **config: Any) -> Daemon:
    """A daemon on DATA = tmp_path/d with the simulated potentiostat ``sim`` under
    ``LIMITS`` (or ``limits=``), configured by tmp_path/daemon.yaml."""
    data = tmp_path / "d"
    data.mkdir(exist_ok=True)
    limits = config.pop("limits", LIMITS)
    doc = {"instruments": [{"id": "sim", "speed": 1.0, "seed": 5, "limits": limits}], **config}
    path = tmp_path / "daemon.yaml"
    path.write_text(yaml.safe_dump(doc))
    daemon = Daemon(data, extra=("--config", str(path)))
    daemon.start()
    with daemon.client() as client:
        wait_until(lambda: sim_status(client)["link_up"], timeout=30, what="the instrument link")
    return daemon


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    with start_daemon(tmp_path) as running:
        yield running


def sim_status(client: Client) -> dict[str, Any]:
    (sim,) = client.call("instruments", "list")
    return dict(sim)


def cv(scan_rate: str, E_vertex: str = "-100 mV") -> dict[str, str]:
    return {"type": "cv", "E_start": "500 mV", "E_vertex": E_vertex, "scan_rate": scan_rate}


def write_spec(path: Path, spec: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(spec))
    return path


def one_line(out: Any) -> str:
    """The CLI's stderr, which must be a single line and no traceback."""
    assert "Traceback" not in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1, out.stderr
    return str(out.stderr)


# --- compliance over the whole protocol --------------------------------------------------


def test_a_protocol_beyond_the_scan_rate_limit_in_cycle_2_is_refused_before_the_cell_is_on(
    daemon: Daemon, tmp_path: Path
) -> None:
    spec = twin_spec(cycles=2)
    spec["protocol"]["waveform"] = [cv("1 V/s"), cv("5 V/s")]  # the limit is 2 V/s
    out = daemon.cli("run", "start", str(write_spec(tmp_path / "fast.yaml", spec)))
    assert out.returncode == 2
    assert out.stdout == ""  # no "running"
    line = one_line(out)
    assert "cycle 2 of 2 (protocol.waveform[1])" in line
    assert "scan rate 5 V/s" in line
    assert "scan_rate_max 2 V/s" in line
    with daemon.client() as client:
        with pytest.raises(ApiError) as info:
            client.call("runs", "start", spec)
        assert info.value.code == "refused"
        # From the instrument's side: nothing was ever programmed or started.
        sim = sim_status(client)
        assert (sim["state"], sim["samples"], sim["run"]) == ("idle", 0, "")
        assert client.call("runs", "list") == []  # no run was created either


def test_the_potential_window_and_the_expected_current_are_checked_up_front(
    tmp_path: Path,
) -> None:
    daemon = start_daemon(tmp_path, limits={**LIMITS, "I_max": 1e-7})
    try:
        with daemon.client() as client:
            wide = twin_spec(cycles=3)
            wide["protocol"]["waveform"] = [cv("1 V/s"), cv("1 V/s", E_vertex="-1.2 V")]
            with pytest.raises(ApiError) as info:
                client.call("runs", "start", wide)
            assert info.value.code == "refused"
            assert "cycle 2 of 3 (protocol.waveform[1]): potential -1.2 V is outside" in str(
                info.value
            )
            # The simulated cell's peak current is about 46 uA: above an I_max of 100 nA.
            with pytest.raises(ApiError) as info:
                client.call("runs", "start", twin_spec(cycles=3))
            assert info.value.code == "refused"
            assert "cycle 1 of 3 (protocol.waveform): the model expects a current of" in str(
                info.value
            )
            assert "I_max 1e-07 A" in str(info.value)
            sim = sim_status(client)
            assert (sim["state"], sim["samples"]) == ("idle", 0)
            assert client.call("runs", "list") == []
    finally:
        daemon.signal(signal.SIGTERM)


# --- files a spec names ---------------------------------------------------------------------


def test_files_outside_the_daemon_s_directories_are_forbidden_and_never_echoed(
    daemon: Daemon, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    passwd = [line for line in Path("/etc/passwd").read_text().splitlines() if len(line) > 6]
    assert passwd
    link = daemon.data / "cell.yaml"
    link.symlink_to("/etc/passwd")  # inside the data directory, pointing out of it
    outside = tmp_path_factory.mktemp("outside")
    record_source_run(outside, "lab-7")
    said: list[str] = []
    with daemon.client() as client:
        for model in ("/etc/passwd", "../../../../../../../../etc/passwd", str(link)):
            spec = twin_spec()
            spec["model"] = model
            with pytest.raises(ApiError) as info:
                client.call("runs", "start", spec)
            assert info.value.code == "forbidden", info.value
            assert "/etc/passwd" in str(info.value)
            assert str(daemon.data) in str(info.value)  # the roots are named
            said.append(str(info.value))
        for call in (
            ("replay_log", str(outside)),
            ("replay_log", "/etc"),
            ("start", {"name": "x", "replay": {"run": "lab-7", "log": str(outside)}}),
        ):
            with pytest.raises(ApiError) as info:
                client.call("runs", *call)
            assert info.value.code == "forbidden", info.value
            said.append(str(info.value))
        assert client.call("runs", "list") == []
    out = daemon.cli("replay", str(outside))
    assert out.returncode == 2
    said.append(one_line(out) + out.stdout)
    daemon.signal(signal.SIGTERM)
    log = (daemon.data / "logs" / "daemon.log").read_text()
    for line in passwd:
        assert all(line not in text for text in said), line
        assert line not in log, line


def test_a_model_file_under_the_daemon_s_directories_is_read_in_and_never_quoted(
    daemon: Daemon,
) -> None:
    model = twin_spec()["model"]
    (daemon.data / "models").mkdir()
    (daemon.data / "models" / "cell.yaml").write_text(yaml.safe_dump(model))
    secret = "TOPSECRET-0xC0FFEE"
    (daemon.data / "models" / "bad.yaml").write_text(
        yaml.safe_dump({**model, "kinetics": {**model["kinetics"], "k0": secret}})
    )
    (daemon.data / "models" / "broken.yaml").write_text(f"name: x\nkinetics: [{secret}\n")
    os.mkfifo(daemon.data / "models" / "fifo.yaml")
    with daemon.client() as client:
        spec = twin_spec(cycles=2)
        spec["model"] = str(daemon.data / "models" / "cell.yaml")
        run = client.call("runs", "start", spec)
        client.call("runs", "abort", run["id"])
        recorded = client.call("runs", "show", run["id"])["spec"]["model"]
        assert recorded == model  # read in: the record holds what the run ran with
        client.call("instruments", "reset", "sim")  # an abort latches the interlock
        spec["model"] = "d/models/cell.yaml"  # relative: from the config file's directory
        run = client.call("runs", "start", spec)
        client.call("runs", "abort", run["id"])
        assert client.call("runs", "show", run["id"])["spec"]["model"] == model
        for name, says in (
            ("bad.yaml", "kinetics.k0: got a string"),
            ("broken.yaml", "not valid YAML at line 3, column 1"),
            ("fifo.yaml", "is a FIFO (named pipe), not a regular file"),
        ):
            spec["model"] = str(daemon.data / "models" / name)
            with pytest.raises(ApiError) as info:
                client.call("runs", "start", spec)
            assert info.value.code == "bad_request"
            assert says in str(info.value)
            assert secret not in str(info.value)


# --- sizes a spec implies -------------------------------------------------------------------


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/PID/status")


def test_a_10_mhz_spec_is_refused_before_anything_is_allocated(daemon: Daemon) -> None:
    assert daemon.proc is not None
    with daemon.client() as client:
        # A run first, so the daemon has loaded and compiled everything a run needs.
        run_id = client.call("runs", "start", twin_spec(cycles=1))["id"]
        client.call("runs", "abort", run_id)
        before = _peak_rss_kib(daemon.proc.pid)
        spec = twin_spec(cycles=3)
        spec["protocol"]["sample_rate"] = "10 MHz"  # within the schema's range
        with pytest.raises(ApiError) as info:
            client.call("runs", "start", spec)
        after = _peak_rss_kib(daemon.proc.pid)
    assert info.value.code == "limit"
    message = str(info.value)
    # 3 cycles of 1.2 s and 2 rests of 0.2 s at 10 MHz (4 s, give or take rounding)
    assert re.search(r"protocol\.sample_rate: the spec implies 40,000,00[01] samples", message)
    assert "10,000,000 (run_limits.samples" in message
    # 40 million samples are 320 MB per array; the refusal allocated none of them.
    assert after - before < 64 * 1024, (before, after)


def test_run_limits_come_from_the_configuration(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path, run_limits={"samples": 500, "nuts_draws": 10})
    try:
        with daemon.client() as client:
            with pytest.raises(ApiError) as info:
                client.call("runs", "start", twin_spec(cycles=3))  # 801 samples
            assert info.value.code == "limit"
            assert "implies 801 samples" in str(info.value)
            assert "limit is 500 (run_limits.samples" in str(info.value)
            spec = twin_spec(cycles=1)
            spec["calibrate"]["nuts"] = {"warmup": 10, "samples": 10}
            with pytest.raises(ApiError) as info:
                client.call("runs", "start", spec)
            assert "calibrate.nuts: the spec implies 20 NUTS draws" in str(info.value)
    finally:
        daemon.signal(signal.SIGTERM)


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "huge", "directory", "model /dev/zero"])
def test_a_spec_that_is_no_regular_file_is_one_line(
    daemon: Daemon, tmp_path: Path, kind: str
) -> None:
    if kind == "fifo":
        path = tmp_path / "spec.fifo"
        os.mkfifo(path)  # nobody writes to it: a reader that waited would wait forever
        says = "is a FIFO (named pipe), not a regular file"
    elif kind == "huge":
        path = tmp_path / "huge.yaml"
        with path.open("wb") as f:
            f.truncate(1 << 30)  # 1 GiB, sparse
        says = "is 1,073,741,824 bytes long; accepted: at most 4,194,304 bytes"
    elif kind == "directory":
        path, says = tmp_path, "is a directory, not a regular file"
    elif kind == "model /dev/zero":
        spec = twin_spec()
        spec["model"] = "/dev/zero"
        path = write_spec(tmp_path / "spec.yaml", spec)
        says = "model: /dev/zero: is a character device, not a regular file"
    else:
        path, says = Path(kind), "/dev/zero: is a character device, not a regular file"
    out = daemon.cli("run", "start", str(path))
    assert out.returncode == 2
    assert says in one_line(out)


# --- a latched interlock ----------------------------------------------------------------------


def test_a_latched_interlock_refuses_runs_until_instrument_reset(
    daemon: Daemon, tmp_path: Path
) -> None:
    spec = write_spec(tmp_path / "twin.yaml", twin_spec(cycles=2))
    assert daemon.cli("estop").returncode == 0
    out = daemon.cli("run", "start", str(spec))
    assert out.returncode == 2
    assert out.stdout == ""
    line = one_line(out)
    assert "instrument sim: its interlock is latched (tripped on emergency_stop" in line
    assert "reset it with `galvana instrument reset sim`" in line
    listed = daemon.cli("instrument", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == daemon.cli("instruments").stdout  # one command, two names
    header, row = listed.stdout.splitlines()[:2]
    shown = dict(zip(header.lower().split(), row.split(), strict=False))
    assert (shown["id"], shown["state"], shown["interlock"]) == ("sim", "tripped", "latched")
    assert "sim: tripped on emergency_stop" in listed.stdout

    unknown = daemon.cli("instrument", "reset", "nope")
    assert unknown.returncode == 2
    assert "no instrument 'nope'" in one_line(unknown)
    reset = daemon.cli("instrument", "reset", "sim")
    assert reset.returncode == 0, reset.stderr
    assert reset.stdout == "sim: interlock reset; runs can start on it again\n"

    started = daemon.cli("run", "start", str(spec), "--json")
    assert started.returncode == 0, started.stderr
    run = json.loads(started.stdout)
    assert run["state"] == "running"
    with daemon.client() as client:
        wait_until(lambda: client.call("runs", "show", run["id"])["samples"] > 0, what="samples")
        assert [r["id"] for r in client.call("runs", "list")] == [run["id"]]
        client.call("runs", "abort", run["id"])


# --- encodings --------------------------------------------------------------------------------


def test_a_spec_in_utf16_or_latin1_is_one_line(daemon: Daemon, tmp_path: Path) -> None:
    spec = twin_spec()
    spec["name"] = "café"
    text = yaml.safe_dump(spec, allow_unicode=True)
    (tmp_path / "utf16.yaml").write_bytes(text.encode("utf-16"))
    (tmp_path / "latin1.yaml").write_bytes(text.encode("latin-1"))
    out = daemon.cli("run", "start", str(tmp_path / "utf16.yaml"))
    assert out.returncode == 2
    assert "utf16.yaml: is UTF-16 text" in one_line(out)
    out = daemon.cli("run", "start", str(tmp_path / "latin1.yaml"))
    assert out.returncode == 2
    line = one_line(out)
    assert "latin1.yaml: is not UTF-8 text: the byte at line" in line
    assert "café" not in line


# --- staircase protocols (no daemon: the checks runs.start makes) ---------------------------


def staircase(E_step: str, t_step: str) -> dict[str, str]:
    return {"type": "staircase_cv", "E_start": "500 mV", "E_vertex": "-100 mV",
            "E_step": E_step, "t_step": t_step, "sample": "1.0"}  # fmt: skip


def test_a_staircase_is_checked_at_its_nominal_scan_rate() -> None:
    """Programmed as a piecewise waveform a staircase is jumps and holds (no sweep): its
    nominal scan rate E_step / t_step is what the instrument's limit applies to."""
    limits = SafetyLimits(**LIMITS)  # scan_rate_max 2 V/s
    spec = twin_spec(cycles=2)
    spec["protocol"]["waveform"] = staircase("10 mV", "2.5 ms")  # 4 V/s
    fast = load_twin_spec(spec)
    with pytest.raises(CallError) as info:
        check_protocol(fast.protocol, fast.model, limits, "sim")
    assert info.value.code == "refused"
    assert "cycle 1 of 2 (protocol.waveform): scan rate 4 V/s" in str(info.value)
    assert "scan_rate_max 2 V/s" in str(info.value)
    spec["protocol"]["waveform"] = staircase("10 mV", "10 ms")  # 1 V/s
    slow = load_twin_spec(spec)
    check_protocol(slow.protocol, slow.model, limits, "sim")


def test_the_expected_current_of_a_staircase_follows_its_steps() -> None:
    """The compliance check's expected current of a staircase is the staircase's (each
    step's jump resolved), not that of a sweep through one sample per step."""
    spec = twin_spec(cycles=1)
    spec["protocol"]["waveform"] = staircase("10 mV", "10 ms")
    twin = load_twin_spec(spec)
    peak, cycle = expected_current(twin.protocol, twin.model)
    model = twin.model.to_mapping()
    model["waveform"] = spec["protocol"]["waveform"]
    engine = physics.simulate(model)
    assert cycle == 0
    assert peak == pytest.approx(float(np.max(np.abs(engine.I))), rel=1e-3)


def test_run_limits_count_a_staircase_s_steps() -> None:
    spec = twin_spec(cycles=1)
    spec["protocol"]["waveform"] = staircase("1 mV", "1 ms")  # 1 V/s, 1201 steps
    twin = load_twin_spec(spec)
    check_run_limits(twin, RunLimits())
    assert waveform_segments(twin.protocol.waveforms[0]) == 1201
    with pytest.raises(CallError) as info:
        check_run_limits(twin, RunLimits(samples=1000))
    assert info.value.code == "limit"
    # 1.2 s at 200 Hz (241 samples) and one sample per step
    assert "the spec implies 1,442 samples" in str(info.value)
    assert "and 1,201 staircase steps" in str(info.value)
    with pytest.raises(CallError) as info:
        check_run_limits(twin, RunLimits(time_steps=100_000))
    assert "model.numerics" in str(info.value)
    assert "in staircase steps graded from their jumps" in str(info.value)
    # A staircase of a billion steps is refused without being laid out.
    spec["protocol"]["waveform"] = staircase("0.6 nV", "1 ms")
    with pytest.raises(CallError) as info:
        check_run_limits(load_twin_spec(spec), RunLimits())
    assert "protocol.waveform: the spec implies 2,000,000,001 segments" in str(info.value)
