"""The differentiable forward model: gradients against finite differences, batches."""

from __future__ import annotations

import numpy as np
import torch

from twins.forward import ForwardProblem, engine_current
from twins.spec import TwinSpec
from twins.stream import stream_for

NAMES = (
    "kinetics.k0",
    "kinetics.alpha",
    "kinetics.E0",
    "species.O.D",
    "cell.Ru",
    "cell.Cdl",
)


def _problem(spec: TwinSpec) -> tuple[ForwardProblem, np.ndarray]:
    """The current over the second half of a cycle, from the state the first half left
    (with other values than the candidates': the state is moved, not restarted)."""
    stream = stream_for(spec, NAMES)
    t, E = spec.protocol.trace(7.0)
    state = stream.start(float(t[0]), float(E[0]))
    _, _, state = stream.advance(state, t[1:300], E[1:300])
    problem = ForwardProblem(stream, state, t[300:500], E[300:500])
    values = stream.nominal * np.array([1.4, 1.1, 1.0, 0.9, 1.2, 0.8])
    values[2] += 0.01
    return problem, values


def test_gradient_matches_finite_differences(small_spec: TwinSpec) -> None:
    problem, values = _problem(small_spec)
    weights = torch.from_numpy(np.random.default_rng(0).normal(size=problem.size))
    theta = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    loss = (weights * engine_current(theta, problem)).sum()
    loss.backward()
    assert theta.grad is not None
    exact = theta.grad.numpy()
    for q in range(values.size):
        h = 1e-5 * abs(values[q])
        up, down = values.copy(), values.copy()
        up[q] += h
        down[q] -= h
        fd = (weights.numpy() @ (problem(up)[0] - problem(down)[0])) / (2 * h)
        assert abs(fd - exact[q]) <= 1e-5 * abs(exact[q]) + 1e-12, NAMES[q]


def test_batches_of_parameter_sets(small_spec: TwinSpec) -> None:
    problem, values = _problem(small_spec)
    sets = np.stack([values * s for s in (0.95, 1.0, 1.05, 1.1)]).reshape(2, 2, -1)
    theta = torch.tensor(sets, dtype=torch.float64, requires_grad=True)
    current = engine_current(theta, problem)
    assert current.shape == (2, 2, problem.size)
    # Each set on its own gives the same current and the same gradient.
    for i in range(2):
        for j in range(2):
            alone = problem(sets[i, j])[0]
            np.testing.assert_array_equal(current[i, j].detach().numpy(), alone)
    current.sum().backward()
    assert theta.grad is not None
    single = torch.tensor(sets[1, 0], dtype=torch.float64, requires_grad=True)
    engine_current(single, problem).sum().backward()
    assert single.grad is not None
    np.testing.assert_allclose(theta.grad[1, 0].numpy(), single.grad.numpy(), rtol=1e-12)


def test_repeated_points_are_not_simulated_twice(small_spec: TwinSpec) -> None:
    problem, values = _problem(small_spec)
    problem(values)
    problem(values.copy())
    assert problem.evaluations == 1
