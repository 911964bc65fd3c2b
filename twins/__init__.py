"""Twin logic: lockstep prediction, residuals, drift, online calibration and experiment design.

The public API::

    import twins
    spec = twins.load_twin_spec("examples/twins/quasi-reversible.yaml")
    twin = twins.LockstepTwin(spec, run_id)            # predict(batch) -> prediction, events
    calibrator = twins.OnlineCalibrator(spec, run_id)  # update(segment) -> posterior | why not
    twins.suggest_next_experiment(spec, candidates, parameters=["kinetics.k0"])
    twins.calibrate_experiments(spec, [twins.experiment(run_id, t, E, I, flags, spec=spec)])

Everything here is a pure function of the samples it is fed, in order: the actors
(``actors.twin``, ``actors.calibrator``) only move messages in and out.
"""

from twins.calibration import OnlineCalibrator, Outcome
from twins.design import Suggestion, suggest_next_experiment
from twins.errors import (
    DesignError,
    ExperimentError,
    ForwardModelError,
    InferenceError,
    TwinError,
    TwinSpecError,
)
from twins.experiments import Calibration, Experiment, calibrate_experiments, experiment
from twins.forward import EngineCurrent, ForwardProblem, engine_current
from twins.lockstep import LockstepTwin
from twins.samples import SampleCleaner, Segmenter
from twins.spec import TwinSpec, load_twin_spec, resolve_document
from twins.stream import ModelStream, StreamState, stream_for
from twins.synthetic import synthetic_batches, true_current

__all__ = [
    "Calibration",
    "DesignError",
    "EngineCurrent",
    "Experiment",
    "ExperimentError",
    "ForwardModelError",
    "ForwardProblem",
    "InferenceError",
    "LockstepTwin",
    "ModelStream",
    "OnlineCalibrator",
    "Outcome",
    "SampleCleaner",
    "Segmenter",
    "StreamState",
    "Suggestion",
    "TwinError",
    "TwinSpec",
    "TwinSpecError",
    "calibrate_experiments",
    "engine_current",
    "experiment",
    "load_twin_spec",
    "resolve_document",
    "stream_for",
    "suggest_next_experiment",
    "synthetic_batches",
    "true_current",
]
