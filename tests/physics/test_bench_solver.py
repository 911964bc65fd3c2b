"""``galvana bench solver`` runs and reports the documented keys (no timing asserts)."""

from __future__ import annotations

import argparse

from bench import solver


def test_quick_bench_without_peers_reports_its_keys() -> None:
    parser = argparse.ArgumentParser()
    solver.configure(parser)
    report = solver.run(parser.parse_args(["--quick", "--no-peers"]))
    for key in ("steps_per_s", "ms_per_cv", "batch_steps_per_s", "ip_rel_err", "peers"):
        assert key in report
    assert isinstance(report["ip_rel_err"], float)
    assert report["ip_rel_err"] < 5e-3  # the accuracy the benchmark claims to run at
    peers = report["peers"]
    assert isinstance(peers, dict)
    assert set(peers) == {"cvsim", "electrokitty"}
    # --no-peers skips them whether or not they are installed, and says so.
    assert all(p == {"unavailable": "skipped (--no-peers)"} for p in peers.values())
    # The square scheme through the network kernel, against its own finer run.
    assert report["ms_per_cv_network"] > 0
    network = report["network"]
    assert isinstance(network, dict)
    assert network["ip_rel_diff"] < 5e-3
    assert network["electrokitty"] == {"unavailable": "skipped (--no-peers)"}
