"""Calibration and design ensembles on Ray give the numbers of the in-process path:
NUTS chains one per task (R-hat across them), the starts of the mode search, runs
fitted alone and candidate experiments (the checks of ``tests/twins/test_ensembles``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from runtime.executor import Executor, ExecutorSettings
from runtime.ray_executor import RayExecutor
from tests.ray.conftest import requires_ray
from tests.twins.test_ensembles import (
    check_design,
    check_experiments,
    check_multi_start,
    check_nuts_chains,
)

pytestmark = requires_ray


@pytest.fixture(scope="module")
def on_ray(ray_cluster: Any) -> Iterator[Executor]:
    with RayExecutor(ExecutorSettings(kind="ray")) as ex:
        yield ex


def test_nuts_chains_on_ray(on_ray: Executor) -> None:
    check_nuts_chains(on_ray)


def test_multi_start_on_ray(on_ray: Executor) -> None:
    check_multi_start(on_ray)


def test_experiments_on_ray(on_ray: Executor) -> None:
    check_experiments(on_ray)


def test_design_on_ray(on_ray: Executor) -> None:
    check_design(on_ray)
