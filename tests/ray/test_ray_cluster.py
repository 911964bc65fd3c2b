"""A Ray cluster started apart, as a lab runs one (``ray start --head``, with a token),
and joined by its address: the executor joins it with the cluster's token and refuses
in one line without it; a daemon configured with it runs calibration jobs on it, and
when the cluster goes away its jobs fail with ``unavailable`` while the daemon carries
on.

The head runs in a process group of its own with its own temporary directory, so the
test kills the whole cluster (control service, raylet, workers) and nothing else, and
leaves no address behind for ``--ray-address auto`` elsewhere on the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from runtime.errors import ApiError, ExecutorError
from runtime.executor import ExecutorSettings
from runtime.ray_executor import RayExecutor
from tests.actors.test_calibrate import SPEC, galvana, record_series
from tests.ray.conftest import requires_ray
from tests.runtime.test_daemon import Daemon

pytestmark = requires_ray


@dataclass
class Head:
    """The head of a one-node Ray cluster (2 CPUs) in its own process group."""

    address: str
    token: str
    proc: subprocess.Popen[str]

    def kill(self) -> None:
        """The whole cluster gone at once, as a lost head node."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def head() -> Iterator[Head]:
    token = secrets.token_hex(32)  # as `ray get-auth-token --generate` makes one
    port = _free_port()
    # Ray's socket paths must stay short: a directory directly under /tmp.
    temp = tempfile.mkdtemp(prefix="galvana-ray-", dir="/tmp")
    ray = Path(sys.executable).with_name("ray")
    argv = [
        str(ray), "start", "--head", f"--port={port}", "--num-cpus=2",
        "--include-dashboard=false", "--node-ip-address=127.0.0.1", f"--temp-dir={temp}",
        "--disable-usage-stats", "--block",
    ]  # fmt: skip
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    running = Head(f"127.0.0.1:{port}", token, proc)
    try:
        assert proc.stdout is not None
        said = []
        # `ray start --block` says "--block" once its processes are up.
        for line in proc.stdout:
            said.append(line)
            if "--block" in line:
                break
        else:
            raise AssertionError("ray start --head failed:\n" + "".join(said[-20:]))
        # What it says later must not fill the pipe and stall it.
        drain = threading.Thread(target=proc.stdout.read, daemon=True)
        drain.start()
        yield running
        running.kill()
        drain.join()
    finally:
        running.kill()
        if proc.stdout is not None:
            proc.stdout.close()
        shutil.rmtree(temp, ignore_errors=True)


def test_a_cluster_is_joined_by_its_address_with_its_token(
    head: Head, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    with pytest.raises(ExecutorError) as refused:
        RayExecutor(ExecutorSettings(kind="ray", address=head.address))
    assert str(refused.value) == (
        f"cannot start or reach Ray at {head.address}: the cluster refused this machine's "
        "token: set RAY_AUTH_MODE=token where galvana runs, with the cluster's token in "
        "RAY_AUTH_TOKEN or ~/.ray/auth_token"
    )
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", head.token)
    with RayExecutor(ExecutorSettings(kind="ray", address=head.address)) as ex:
        assert ex.cpus == 2
        assert ex.describe() == f"ray at {head.address} (2 CPUs)"
        assert ex.map(pow, [(2, 5), (3, 3)]) == [32, 27]


def test_an_address_where_nothing_answers_is_said_at_once() -> None:
    address = f"127.0.0.1:{_free_port()}"
    with pytest.raises(ExecutorError) as refused:
        RayExecutor(ExecutorSettings(kind="ray", address=address))
    assert str(refused.value) == (
        f"cannot start or reach Ray at {address}: nothing answers there (is the cluster's "
        "head running?)"
    )


def test_the_daemon_carries_on_when_its_ray_cluster_goes_away(
    head: Head, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daemon configured with the cluster: a calibration job runs on it (the posterior
    of the command's own process); the cluster killed, the next job fails with
    ``unavailable`` naming the cluster, and the daemon carries on."""
    data = tmp_path / "data"
    data.mkdir()
    record_series(data)
    model = tmp_path / "twin.yaml"
    model.write_text(yaml.safe_dump(SPEC))
    config = tmp_path / "ray.yaml"
    config.write_text(yaml.safe_dump({"executor": {"kind": "ray", "address": head.address}}))
    runs = ["cv-0", "cv-2"]
    here = galvana("calibrate", *runs, "--model", str(model), "--data", str(data), "--json")
    assert here.returncode == 0, here.stderr
    expected = json.loads(here.stdout)["parameters"]
    # The cluster's token, where the daemon runs (the driver it starts inherits it).
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", head.token)
    daemon = Daemon(data, ("--config", str(config)))
    daemon.start()
    try:
        with daemon.client() as client:
            job = client.call("runs", "calibrate", runs, SPEC)
            result = client.call(job["path"], "result", timeout=300)
            for name, entry in expected.items():
                got = result["parameters"][name]
                for key in ("median", "q05", "q95"):
                    assert got[key] == pytest.approx(entry[key], rel=1e-9), name
        head.kill()
        with daemon.client() as client:
            job = client.call("runs", "calibrate", runs, SPEC)
            with pytest.raises(ApiError) as lost:
                client.call(job["path"], "result", timeout=300)
            assert lost.value.code == "unavailable"
            assert str(lost.value).endswith(
                f"the calibration's executor: cannot start or reach Ray at {head.address}: "
                "nothing answers there (is the cluster's head running?)"
            )
            # The daemon carries on: it answers, and the runs are all there.
            assert {r["id"] for r in client.call("runs", "list")} >= set(runs)
        assert daemon.proc is not None
        assert daemon.proc.poll() is None
    finally:
        assert daemon.signal(signal.SIGTERM) == 0
