"""The differentiable forward model: the numba engine as a ``torch.autograd.Function``.

The current along a chunk of samples is a function of the calibrated parameters (SI);
its Jacobian comes from the engine's forward sensitivities, computed in the same pass,
so the backward pass is one matrix product and Pyro's SVI and NUTS get exact
gradients without finite differences or a second simulation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from twins.stream import ModelStream, StreamState

__all__ = ["EngineCurrent", "ForwardProblem", "engine_current"]

FloatArray = npt.NDArray[np.float64]


class ForwardProblem:
    """The current at samples ``(t, E)`` (after ``start.t``) as a function of the stream's
    parameter values, started from ``start``.

    Calling it returns ``(I, J)``: the current (A) at every sample and dI/dp (samples,
    parameters). The last evaluations are remembered, since inference asks for the same
    point more than once. ``evaluations`` counts engine runs.
    """

    def __init__(
        self, stream: ModelStream, start: StreamState, t: FloatArray, E: FloatArray
    ) -> None:
        self.stream = stream
        self.start = start
        self.t = np.ascontiguousarray(t, dtype=np.float64)
        self.E = np.ascontiguousarray(E, dtype=np.float64)
        self.evaluations = 0
        self._memo: dict[bytes, tuple[FloatArray, FloatArray]] = {}

    def forget(self) -> None:
        """Drop the remembered evaluations (a fresh start: engine runs counted from
        scratch, as a copy in another process counts them)."""
        self._memo = {}

    def __getstate__(self) -> dict[str, Any]:
        # A copy sent to another process (a task of an ensemble) starts without the
        # remembered evaluations: a search capped by engine runs then takes the same
        # steps wherever it runs, whatever this copy was asked before.
        state = dict(self.__dict__)
        state["_memo"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    @property
    def size(self) -> int:
        """Number of samples."""
        return int(self.t.size)

    def __call__(self, values: FloatArray) -> tuple[FloatArray, FloatArray]:
        v = np.ascontiguousarray(values, dtype=np.float64)
        key = v.tobytes()
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        I, J, _ = self.stream.advance(self.start, self.t, self.E, v)  # noqa: E741 - current
        self.evaluations += 1
        if len(self._memo) >= 4:
            self._memo.pop(next(iter(self._memo)))
        self._memo[key] = (I, J)
        return I, J


class EngineCurrent(torch.autograd.Function):
    """``I = EngineCurrent.apply(theta, problem)``: ``theta`` (..., parameters) in SI,
    float64; ``I`` (..., samples). Leading dimensions are a batch of parameter sets."""

    @staticmethod
    def forward(ctx: Any, theta: torch.Tensor, problem: ForwardProblem) -> torch.Tensor:
        batch = theta.shape[:-1]
        flat = theta.detach().reshape(-1, theta.shape[-1]).cpu().numpy()
        currents, jacobians = zip(*(problem(row) for row in flat), strict=True)
        J = torch.from_numpy(np.stack(jacobians))
        ctx.save_for_backward(J)
        ctx.batch = batch
        I = torch.from_numpy(np.stack(currents))  # noqa: E741 - current
        return I.reshape(*batch, problem.size)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (J,) = ctx.saved_tensors
        flat = grad.reshape(-1, grad.shape[-1])
        g = torch.bmm(flat[:, None, :], J)[:, 0, :]
        return g.reshape(*ctx.batch, J.shape[-1]), None


def engine_current(theta: torch.Tensor, problem: ForwardProblem) -> torch.Tensor:
    """The engine's current for parameter sets ``theta`` (see :class:`EngineCurrent`)."""
    out: torch.Tensor = EngineCurrent.apply(theta, problem)  # type: ignore[no-untyped-call]
    return out
