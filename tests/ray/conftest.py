"""The Ray executor's tests: one local Ray per module (2 CPUs, no dashboard, loopback).

Ray is the optional extra ``galvana[ray]``: where it is missing these tests skip, saying
how to install it. ``.ci/run`` installs it and sets ``GALVANA_REQUIRE_RAY=1``, so in CI
a missing Ray fails them instead of skipping them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest

from runtime.ray_executor import ray_available

_MISSING = ray_available()

requires_ray = pytest.mark.skipif(
    _MISSING is not None and not os.environ.get("GALVANA_REQUIRE_RAY"),
    reason=f"Ray is not installed: {_MISSING}",
)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    """A Ray started in this process for the module's tests (its executors reuse it)."""
    import ray

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        logging_level=logging.WARNING,
        configure_logging=False,
    )
    try:
        yield ray
    finally:
        ray.shutdown()
