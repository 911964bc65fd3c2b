"""``galvana bench calibration``: accuracy, coverage, tracking and speed of online calibration.

Synthetic data with a known truth, measured the way a run measures: the simulated
potentiostat (:class:`hal.sim.SimPotentiostat`, unpaced) behind its SCPI server on a
local socket, driven by the project's SCPI driver over pyvisa, one acquisition per
cycle programmed exactly as a run programs it (:mod:`actors.acquire`). Its hidden cell
is the numba engine at twice the twin's resolution (``refine = 2``, so the model is
not the data generator bit for bit), and its measurement chain adds what hardware
adds: current noise (a floor of ``NOISE`` plus a fraction of the range), the 16-bit
quantisation of the current range the run chooses, noise and 10 µV resolution on the
reported potential, and for (c) the electrode's drift, applied by the instrument as
it measures. Noise seeds are the instrument's.

- (a) accuracy: posterior medians of k0, alpha, E0, D, Ru and Cdl (and the noise sd)
  after a three-scan-rate CV protocol, relative to the truth (``median_rel_err``, seed
  0; ``median_rel_err_worst`` over every seed);
- (b) coverage: over ``--seeds`` independent noise draws, how often each 90 % credible
  interval covers the truth (``coverage_90``);
- (c) tracking: the instrument's k0 grows by 3 % per cycle over ``--cycles`` CV cycles
  (continuously, as the cell is measured); the fraction of cycles whose online 90 %
  interval covers that cycle's k0 (``tracking_fraction``, mean over
  ``--tracking-seeds`` noise draws; ``tracking_fraction_min`` the worst). A cycle's k0
  is its value at the time the update says its estimate is of (``t_informative`` in
  its diagnostics: where the cycle's data inform k0 most, by the peaks;
  ``tracking_informative_at``, the median fraction of the way through the
  acquisition); ``tracking_fraction_midcycle`` is the same against k0 in the middle of
  the acquisition;
- (d) speed: the wall time of each posterior refresh after a CV cycle with four
  parameters (plus the noise sd) on one core (``refresh_s``, the median after the
  first; ``refresh_s_p95``, ``refresh_cpu_s`` the process CPU time).
- (e) convergence: the fraction of every update of (a), (b) and (c) whose mode search
  converged (``converged_fraction``; a diverged update counts as not converged);
- (f) consistency over several runs (:mod:`twins.experiments`): series of runs, each a
  data-generator function (``SERIES``) that measures its runs on the instrument and
  says which verdict a calibration should reach. ``scan_rates``: one CV at each of
  five scan rates (0.1 to 2 V/s) of the right model, fitted jointly (k0, alpha, E0, D
  shared, the noise sd per run) and each alone: whether the runs agree
  (``scan_rate_consistency``: ``consistent``, the smallest p-value ``p_min``, chi-square
  per degree of freedom and spread per parameter, the joint 90 % intervals' coverage of
  the truth, the verdict); ``missing_resistance``: the same cell fitted by a model that
  lacks its 150 ohm, which the check should flag. ``series_verdicts_correct``: the
  fraction of series whose verdict is the expected one;
- (g) misspecified data (``misspecified``): what real cells add and simple models lack,
  calibrated by the full model (:mod:`twins.experiments`, as ``galvana calibrate`` does).
  The cell has a background current (an offset and a slope in E), a partly oxidised
  bulk (80 % of 2 mM oxidised) and is measured as staircase potentiostats measure (5 mV
  steps, the current sampled at the end of each); the model calibrates k0, alpha, E0,
  D, the fraction oxidised and the background. Over ``--seeds`` noise draws (at least
  50 unless ``--quick``), each one CV at one of five scan rates in turn (0.1 to 2 V/s):
  ``median_rel_err`` (each posterior median's relative error, the median over the
  seeds; ``median_rel_err_worst`` the largest), ``coverage_90``, ``converged_fraction``
  (of these fits and the series' below; goal 1.0) and ``adequate_fraction`` (fits whose
  model the adequacy check passes).
  Intervals are the Laplace approximation at the mode that ``galvana calibrate``
  reports (NUTS on 50 staircase fits would take hours). ``scan_rate_consistency``: the
  five rates of one noise draw fitted jointly (the background offset and the noise sd
  per run) and each alone: the spread of k0, D and E0 across the rates relative to
  their intervals (chi-square per degree of freedom, the worst run in sds, p-values),
  the joint intervals' coverage and the verdict, which must be ``adequate``. The data
  are the engine's at twice the model's resolution along the staircase as applied and
  sampled, with Gaussian current noise of ``NOISE`` (not the simulated potentiostat,
  which samples at a fixed rate, not once per step);
- with ``--nuts``: the reference. NUTS on all of seed 0's data from rest with the spec's
  priors, against the online posterior: ``nuts_width_ratio`` (online 90 % interval width
  over NUTS's), ``nuts_median_shift`` (online median minus NUTS median, in online
  interval widths), ``nuts_r_hat_max``, ``nuts_s``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import torch

from actors.acquire import cycle_origin, expected_current_range
from actors.sim_cell import PhysicsModel
from hal.driver import Samples, Settings
from hal.drivers.scpi_potentiostat import ScpiPotentiostat
from hal.sim import ScpiServer, SimPotentiostat
from hal.sim.potentiostat import DriftSpec, NoiseSpec
from physics.scenario import load_scenario, with_numerics
from runtime.messages import PosteriorUpdate, SampleBatch
from twins.calibration import OnlineCalibrator
from twins.experiments import calibrate_experiments, experiment
from twins.samples import SampleCleaner, Segmenter
from twins.spec import TwinSpec, load_twin_spec, protocol_waveform
from twins.synthetic import true_current

SCENARIO: dict[str, Any] = {
    "name": "quasi-reversible-ru-cdl",
    "mechanism": "E",
    "species": {"O": {"D": 7.2e-10, "c_bulk": 2.0}, "R": {"D": 6.5e-10, "c_bulk": 0.0}},
    "kinetics": {"model": "butler-volmer", "E0": 0.25, "k0": 5e-5, "alpha": 0.45, "n": 1},
    "electrode": {"geometry": "planar", "area": 7.07e-6},
    "cell": {"T": 298.15, "Ru": 150.0, "Cdl": 2e-6},
    "waveform": {"type": "cv", "E_start": 0.6, "E_vertex": -0.1, "scan_rate": 0.2},
}
TRUTH = {
    "kinetics.k0": 5e-5,
    "kinetics.alpha": 0.45,
    "kinetics.E0": 0.25,
    "species.O.D": 7.2e-10,
    "cell.Ru": 150.0,
    "cell.Cdl": 2e-6,
}
PRIORS: dict[str, Any] = {
    "kinetics.k0": {"dist": "lognormal", "median": 3e-5, "scale": 1.0},
    "kinetics.alpha": {"dist": "beta", "a": 5, "b": 5},
    "kinetics.E0": {"dist": "normal", "mean": 0.24, "sd": 0.03},
    "species.O.D": {"dist": "lognormal", "median": 6e-10, "scale": 0.5},
    "cell.Ru": {"dist": "halfnormal", "scale": 500.0},
    "cell.Cdl": {"dist": "halfnormal", "scale": 1e-5},
}
NOISE = 2e-7  # A: the instrument's current noise floor, about 0.1 % of the largest peak
CHAIN = NoiseSpec(current_rms=NOISE)  # the rest of the measurement chain as the instrument's
SHORT = {
    "kinetics.k0": "k0",
    "kinetics.alpha": "alpha",
    "kinetics.E0": "E0",
    "species.O.D": "D",
    "cell.Ru": "Ru",
    "cell.Cdl": "Cdl",
    "noise": "noise",
    "bulk.fraction_oxidized": "fraction_oxidized",
    "background.offset": "offset",
    "background.slope": "slope",
}


def _short(name: str) -> str:
    """A parameter's short name (``k0``, ``offset@0.1V/s``)."""
    base, _, run = name.partition("@")
    return SHORT.get(base, base) + (f"@{run}" if run else "")


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of this suite."""
    parser.add_argument("--seeds", type=int, default=100, help="noise draws for coverage")
    parser.add_argument("--cycles", type=int, default=30, help="CV cycles for tracking")
    parser.add_argument("--tracking-seeds", type=int, default=5, help="noise draws for tracking")
    parser.add_argument(
        "--nuts", action="store_true", help="also compare with a NUTS reference (minutes)"
    )
    parser.add_argument(
        "--misspecified-seeds", type=int, default=50, help="noise draws for misspecified data"
    )
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"the parts to run, of {','.join(PARTS)} (default: all)",
    )


def identifiable_spec() -> TwinSpec:
    """(a), (b): CVs at 0.2, 1 and 5 V/s, six parameters and the noise sd learned."""
    return load_twin_spec(
        {
            "name": "bench-identifiable",
            "model": SCENARIO,
            "protocol": {
                "waveform": [
                    {"type": "cv", "E_start": 0.6, "E_vertex": -0.1, "scan_rate": rate}
                    for rate in (0.2, 1.0, 5.0)
                ],
                "rest": 1.0,
                "sample_rate": 500.0,
            },
            "calibrate": {
                "parameters": PRIORS,
                "noise": {"dist": "halfnormal", "scale": 1e-6},
            },
        }
    )


def tracking_spec(cycles: int) -> TwinSpec:
    """(c), (d): repeated CVs at 0.2 V/s; k0, alpha, E0, D and the noise sd learned, k0
    allowed a random walk of 5 % per cycle (Ru and Cdl known)."""
    names = ("kinetics.k0", "kinetics.alpha", "kinetics.E0", "species.O.D")
    return load_twin_spec(
        {
            "name": "bench-tracking",
            "model": SCENARIO,
            "protocol": {
                "waveform": {"type": "cv", "E_start": 0.6, "E_vertex": -0.1, "scan_rate": 0.2},
                "cycles": cycles,
                "rest": 1.0,
                "sample_rate": 200.0,
            },
            "calibrate": {
                "parameters": {n: PRIORS[n] for n in names},
                "noise": {"dist": "halfnormal", "scale": 1e-6},
                "drift": {"kinetics.k0": 0.05},
            },
        }
    )


@dataclass(frozen=True, slots=True)
class Measured:
    """One protocol measured by the simulated potentiostat: the sample batches as a run
    publishes them (protocol time), each cycle's true parameters at its start and end
    and the span of its acquisition (protocol time, s), and the sd (A) of the current
    noise the instrument added (quantisation included)."""

    batches: list[SampleBatch]
    truth_start: list[dict[str, float]]
    truth_end: list[dict[str, float]]
    truth_span: list[tuple[float, float]]
    noise_sd: float

    def truth_of(self, cycle: int, name: str, t: float | None = None) -> float:
        """Parameter ``name`` during cycle ``cycle``, which drifts (compounding) while the
        cell is measured: its value at protocol time ``t`` (default: the middle of the
        cycle's acquisition)."""
        start, end = self.truth_start[cycle][name], self.truth_end[cycle][name]
        t0, t1 = self.truth_span[cycle]
        at = 0.5 if t is None else (t - t0) / (t1 - t0)
        return float(start * (end / start) ** at)


class Bench:
    """The simulated potentiostat behind its SCPI server, the SCPI driver connected."""

    def __init__(self) -> None:
        self.server: ScpiServer | None = None
        self.driver: ScpiPotentiostat | None = None

    def measure(
        self,
        spec: TwinSpec,
        truth: dict[str, float],
        *,
        seed: int,
        drift: Sequence[DriftSpec] = (),
        noise: NoiseSpec = CHAIN,
        batch_size: int = 250,
    ) -> Measured:
        """Measure ``spec``'s protocol on a cell with parameters ``truth`` (the spec's
        model otherwise), the instrument's ``noise`` drawn from ``seed``; see the module
        docstring."""
        protocol = spec.protocol
        cell = with_numerics(load_scenario(spec.model).with_parameters(truth), refine=2.0)
        model = PhysicsModel(cell, horizon=protocol.duration)
        # relax_s = inf: the cell is never left alone long enough to go back to rest.
        sim = SimPotentiostat(
            model, noise=noise, drift=drift, speed=0.0, seed=seed, relax_s=math.inf
        )
        self.close()
        self.server = ScpiServer(sim, port=0).start()
        self.driver = ScpiPotentiostat(self.server.resource, timeout_s=5.0, poll_s=0.001)
        self.driver.max_batch = batch_size
        self.driver.connect()
        current_range = expected_current_range(protocol, spec.model)
        settings = Settings(sample_rate=protocol.sample_rate, current_range=current_range)
        batches: list[SampleBatch] = []
        starts, ends = [], []
        for cycle in range(protocol.cycles):
            self.driver.program(protocol_waveform(protocol, cycle, 1), settings)
            starts.append(sim.truth())
            self.driver.start()
            offset = cycle_origin(protocol, cycle)
            for got in self.driver.stream():
                if len(got):
                    batches.append(_batch(len(batches), got, offset))
            self.driver.stop()
            ends.append(sim.truth())
        lsb = sim.current_range / 2.0 ** (noise.adc_bits - 1)
        sd = math.hypot(noise.current_rms + noise.range_rms * sim.current_range, lsb / 12**0.5)
        spans = [
            (cycle_origin(protocol, k), float(protocol.cycle_ends()[k]))
            for k in range(protocol.cycles)
        ]
        return Measured(batches, starts, ends, spans, sd)

    def close(self) -> None:
        """Disconnect and stop the server."""
        if self.driver is not None:
            self.driver.close()
            self.driver = None
        if self.server is not None:
            self.server.close()
            self.server = None


def _when(update: PosteriorUpdate) -> float:
    """The time (s) the update's k0 estimate is of (see the module docstring)."""
    when = update.diagnostics["t_informative"]
    assert isinstance(when, dict)
    return float(when["kinetics.k0"])


def _batch(seq: int, got: Samples, offset: float) -> SampleBatch:
    return SampleBatch("bench", seq, got.t + offset, got.E, got.I, got.flags)


def online(
    spec: TwinSpec, batches: list[SampleBatch]
) -> tuple[list[PosteriorUpdate | Any], list[float], list[float]]:
    """Every outcome of an online calibration, with each refresh's wall and CPU time."""
    cleaner = SampleCleaner.for_spec(spec)
    segmenter = Segmenter(spec)
    calibrator = OnlineCalibrator(spec, "bench")
    outcomes, wall, cpu = [], [], []
    for b in batches:
        for segment in segmenter.feed(cleaner.clean(b.seq, b.t, b.E, b.I, b.flags)):
            w0, c0 = time.perf_counter(), time.process_time()
            outcomes.append(calibrator.update(segment))
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
    return outcomes, wall, cpu


def _progress(text: str) -> None:
    """A line on stderr (this suite takes minutes; stdout keeps the figures alone)."""
    print(f"  calibration: {text}", file=sys.stderr, flush=True)


PARTS = ("accuracy", "tracking", "series", "misspecified")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the suite; returns the figures."""
    seeds = 10 if args.quick else args.seeds
    cycles = 10 if args.quick else args.cycles
    tracking_seeds = 1 if args.quick else args.tracking_seeds
    parts = [p.strip() for p in str(getattr(args, "parts", ",".join(PARTS))).split(",")]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise SystemExit(f"--parts: {unknown[0]!r} is not a part; accepted: {', '.join(PARTS)}")
    # One core: the engine, numba and torch all single-threaded.
    numba.set_num_threads(1)
    torch.set_num_threads(1)
    figures: dict[str, Any] = {
        "data_source": (
            "simulated potentiostat (SCPI over a local socket, pyvisa driver): physics "
            "engine at refine 2, current noise and range quantisation, potential noise"
        ),
        "noise_A": NOISE,
        "seeds": seeds,
    }
    bench = Bench()
    try:
        fits: list[bool] = []
        if "accuracy" in parts:
            figures.update(_accuracy_and_coverage(bench, seeds))
            fits += figures.pop("_fits")
        if "tracking" in parts:
            figures.update(_tracking(bench, cycles, tracking_seeds))
            fits += figures.pop("_tracking_fits")
        if fits:
            figures["converged_fraction"] = float(np.mean(fits))
            figures["converged_fits"] = f"{int(np.sum(fits))} of {len(fits)}"
        if "series" in parts:
            figures.update(_series(bench))
        if "misspecified" in parts:
            count = 10 if args.quick else getattr(args, "misspecified_seeds", 50)
            figures["misspecified"] = out = _misspecified(count)
            series = figures.get("series", {}).get("misspecified")
            if series is None:
                series, _ = _series_figures("misspecified", misspecified_series(bench, 2000))
            out["scan_rate_consistency"] = series
            # Every fit of (g): one per seed, the series' joint one and its runs alone.
            fits = [*out.pop("_converged"), series["converged"]]
            fits += [True] * series["alone_converged"]
            fits += [False] * (len(SERIES_RATES) - series["alone_converged"])
            out["converged_fraction"] = float(np.mean(fits))
            out["converged_fits"] = f"{int(np.sum(fits))} of {len(fits)}"
        if getattr(args, "nuts", False):
            figures.update(_nuts_reference(bench, quick=args.quick))
    finally:
        bench.close()
    return figures


def _nuts_reference(bench: Bench, *, quick: bool) -> dict[str, Any]:
    spec = identifiable_spec()
    measured = bench.measure(spec, TRUTH, seed=0)
    cleaner = SampleCleaner.for_spec(spec)
    segmenter = Segmenter(spec)
    calibrator = OnlineCalibrator(spec, "bench")
    online = None
    for b in measured.batches:
        for segment in segmenter.feed(cleaner.clean(b.seq, b.t, b.E, b.I, b.flags)):
            online = calibrator.update(segment)
    assert isinstance(online, PosteriorUpdate)
    draws = 30 if quick else 150
    _progress(f"NUTS reference: 2 chains of {draws} warm-up and {draws} draws")
    start = time.perf_counter()
    ref = calibrator.reference(warmup=draws, samples=draws, chains=2)
    elapsed = time.perf_counter() - start
    names = [SHORT[n] for n in online.parameters]
    width = online.q95 - online.q05
    r_hat = ref.diagnostics["r_hat"]
    assert isinstance(r_hat, dict)
    return {
        "nuts_width_ratio": {
            n: float(w / (r1 - r0))
            for n, w, r0, r1 in zip(names, width, ref.q05, ref.q95, strict=True)
        },
        "nuts_median_shift": {
            n: float((m - r) / w)
            for n, m, r, w in zip(names, online.median, ref.median, width, strict=True)
        },
        "nuts_r_hat_max": max(float(v) for v in r_hat.values()),
        "nuts_divergences": ref.diagnostics["divergences"],
        "nuts_draws": 2 * draws,
        "nuts_s": elapsed,
    }


def _accuracy_and_coverage(bench: Bench, seeds: int) -> dict[str, Any]:
    spec = identifiable_spec()
    names = [SHORT[n] for n in (*TRUTH, "noise")]
    rel_errors, covered, failures = [], [], 0
    first_wall = []
    fits: list[bool] = []
    for seed in range(seeds):
        measured = bench.measure(spec, TRUTH, seed=seed)
        truth = np.array([*TRUTH.values(), measured.noise_sd])
        outcomes, wall, _ = online(spec, measured.batches)
        fits += [_converged(o) for o in outcomes]
        first_wall.append(sum(wall))
        last = outcomes[-1]
        if not isinstance(last, PosteriorUpdate):
            failures += 1
            continue
        rel_errors.append(np.abs(last.median / truth - 1.0))
        covered.append((last.q05 <= truth) & (truth <= last.q95))
        if (seed + 1) % 10 == 0 or seed + 1 == seeds:
            _progress(f"accuracy and coverage: {seed + 1} of {seeds} seeds")
    rel = np.array(rel_errors)
    cov = np.array(covered)
    return {
        "median_rel_err": {n: float(rel[0, j]) for j, n in enumerate(names)},
        "median_rel_err_worst": {n: float(rel[:, j].max()) for j, n in enumerate(names)},
        "coverage_90": {n: float(cov[:, j].mean()) for j, n in enumerate(names)},
        "coverage_failed_fits": failures,
        "identifiable_run_s": float(np.median(first_wall)),
        "_fits": fits,
    }


def _tracking(bench: Bench, cycles: int, seeds: int) -> dict[str, Any]:
    spec = tracking_spec(cycles)
    drift = [DriftSpec("kinetics.k0", 0.03)]
    fractions: list[float] = []
    middle: list[float] = []
    at: list[float] = []
    wall_all, cpu_all, first = [], [], []
    fits: list[bool] = []
    for seed in range(seeds):
        measured = bench.measure(spec, TRUTH, seed=1000 + seed, drift=drift)
        outcomes, wall, cpu = online(spec, measured.batches)
        fits += [_converged(o) for o in outcomes]
        for informative, out in ((True, fractions), (False, middle)):
            hits = [
                isinstance(o, PosteriorUpdate)
                and o.q05[0]
                <= measured.truth_of(o.segment, "kinetics.k0", _when(o) if informative else None)
                <= o.q95[0]
                for o in outcomes
            ]
            out.append(float(np.mean(hits)))
        at.extend(
            (_when(o) - measured.truth_span[o.segment][0])
            / (measured.truth_span[o.segment][1] - measured.truth_span[o.segment][0])
            for o in outcomes
            if isinstance(o, PosteriorUpdate)
        )
        first.append(wall[0])
        wall_all.extend(wall[1:])
        cpu_all.extend(cpu[1:])
        _progress(f"tracking: {seed + 1} of {seeds} seeds, {fractions[-1]:.2f} of cycles inside")
    return {
        "tracking_fraction": float(np.mean(fractions)),
        "tracking_fraction_min": float(np.min(fractions)),
        "tracking_fractions": fractions,
        "tracking_fraction_midcycle": float(np.mean(middle)),
        "tracking_informative_at": float(np.median(at)),
        "tracking_cycles": cycles,
        "refresh_s": float(np.median(wall_all)),
        "refresh_s_p95": float(np.quantile(wall_all, 0.95)),
        "refresh_cpu_s": float(np.median(cpu_all)),
        "refresh_first_s": float(np.median(first)),
        "refresh_parameters": 4,
        "_tracking_fits": fits,
    }


def _converged(outcome: object) -> bool:
    """Whether an online outcome is an update whose mode search converged."""
    return isinstance(outcome, PosteriorUpdate) and outcome.diagnostics.get("converged") is True


# --------------------------------------------------------------------------- (f) series

SERIES_RATES = (0.1, 0.2, 0.5, 1.0, 2.0)  # V/s
SERIES_SHARED = ("kinetics.k0", "kinetics.alpha", "kinetics.E0", "species.O.D")


@dataclass(frozen=True, slots=True)
class Series:
    """Runs for one calibration over several runs, and what it should conclude: the
    ``spec`` they are fitted with, each run's ``label``, own spec (its protocol) and
    measurement, the ``truth`` of the shared parameters, and the ``expected`` verdict
    (``adequate`` when the spec's model is the instrument's cell, ``misfit`` when not)."""

    spec: TwinSpec
    runs: list[tuple[str, TwinSpec, Measured]]
    truth: dict[str, float]
    expected: str


def _series_spec(rate: float, model: dict[str, Any]) -> TwinSpec:
    """One CV at ``rate`` V/s, sampled so that every rate gives about 1400 samples; the
    shared kinetics and D calibrated, the noise sd per run."""
    return load_twin_spec(
        {
            "name": "bench-series",
            "seed": 5,
            "model": model,
            "protocol": {
                "waveform": {"type": "cv", "E_start": 0.6, "E_vertex": -0.1, "scan_rate": rate},
                "sample_rate": 1000.0 * rate,
            },
            "calibrate": {
                "parameters": {n: PRIORS[n] for n in SERIES_SHARED},
                "noise": {"dist": "halfnormal", "scale": 1e-6},
                "per_run": ["noise"],
            },
        }
    )


def _measured_series(bench: Bench, seed: int, model: dict[str, Any], expected: str) -> Series:
    runs = []
    for k, rate in enumerate(SERIES_RATES):
        own = _series_spec(rate, SCENARIO)  # the instrument's cell is SCENARIO's
        runs.append((f"{rate:g}V/s", own, bench.measure(own, TRUTH, seed=seed + k)))
    truth = {n: TRUTH[n] for n in SERIES_SHARED}
    return Series(_series_spec(SERIES_RATES[0], model), runs, truth, expected)


def scan_rate_series(bench: Bench, seed: int) -> Series:
    """Five scan rates, fitted by the instrument's own model: the runs should agree."""
    return _measured_series(bench, seed, SCENARIO, "adequate")


def missing_resistance_series(bench: Bench, seed: int) -> Series:
    """The same five rates fitted by a model without the cell's 150 ohm: flagged."""
    model = {**SCENARIO, "cell": {**SCENARIO["cell"], "Ru": 0.0}}
    return _measured_series(bench, seed, model, "misfit")


# --------------------------------------------------------------------------- (g) misspecified

E_STEP = 0.005  # V: the staircase's step, sampled at its end
MISSPECIFIED_CELL: dict[str, Any] = {
    **SCENARIO,
    "name": "background-staircase-partly-oxidised",
    "species": {"O": {"D": 7.2e-10}, "R": {"D": 6.5e-10}},
    "bulk": {"total": 2.0, "fraction_oxidized": 0.8},
    "background": {"offset": 5e-7, "slope": 2e-6, "E_pivot": 0.25},
}
MISSPECIFIED_TRUTH = {
    **{n: TRUTH[n] for n in SERIES_SHARED},
    "bulk.fraction_oxidized": 0.8,
    "background.offset": 5e-7,
    "background.slope": 2e-6,
}
MISSPECIFIED_PRIORS: dict[str, Any] = {
    **{n: PRIORS[n] for n in SERIES_SHARED},
    "bulk.fraction_oxidized": {"dist": "beta", "a": 2, "b": 2},
    "background.offset": {"dist": "normal", "mean": 0.0, "sd": 2e-6},
    "background.slope": {"dist": "normal", "mean": 0.0, "sd": 5e-6},
}
# The background offset of each run of the series (A): it moves from run to run.
SERIES_OFFSETS = (3e-7, 5e-7, 8e-7, 4e-7, 6e-7)


def misspecified_spec(rate: float) -> TwinSpec:
    """One staircase CV at ``rate`` V/s (5 mV steps, the current sampled at the end of
    each) of the cell with a background and a partly oxidised bulk; the full model
    calibrated, the background offset and the noise sd per run in a series."""
    return load_twin_spec(
        {
            "name": "bench-misspecified",
            "seed": 5,
            "model": MISSPECIFIED_CELL,
            "protocol": {
                "waveform": {
                    "type": "staircase_cv",
                    "E_start": 0.6,
                    "E_vertex": -0.1,
                    "E_step": E_STEP,
                    "t_step": E_STEP / rate,
                    "sample": 1.0,
                },
                "sample_rate": rate / E_STEP,
            },
            "calibrate": {
                "parameters": MISSPECIFIED_PRIORS,
                "noise": {"dist": "halfnormal", "scale": 1e-6},
                "per_run": ["background.offset", "noise"],
            },
        }
    )


def staircase_data(spec: TwinSpec, truth: dict[str, float], seed: int) -> Measured:
    """The engine's current (at twice the model's resolution) along ``spec``'s staircase
    as applied and sampled, for ``truth``, with Gaussian noise of ``NOISE`` drawn from
    ``seed``."""
    t, E, current = true_current(spec, truth)
    y = current + np.random.default_rng(seed).normal(0.0, NOISE, t.size)
    batch = SampleBatch("bench", 0, t, E, y, np.zeros(t.size, dtype=np.uint8))
    return Measured([batch], [truth], [truth], [(0.0, spec.protocol.duration)], NOISE)


def misspecified_series(_bench: Bench, seed: int) -> Series:
    """Five staircase CVs (0.1 to 2 V/s) of the cell with a background (its offset
    moving from run to run) and a partly oxidised bulk, fitted by the full model: the
    runs should agree."""
    runs = []
    truth = {n: v for n, v in MISSPECIFIED_TRUTH.items() if n != "background.offset"}
    for k, rate in enumerate(SERIES_RATES):
        label = f"{rate:g}V/s"
        own = misspecified_spec(rate)
        offset = SERIES_OFFSETS[k]
        cell = {**MISSPECIFIED_TRUTH, "background.offset": offset}
        runs.append((label, own, staircase_data(own, cell, seed + k)))
        truth[f"background.offset@{label}"] = offset
    return Series(misspecified_spec(SERIES_RATES[0]), runs, truth, "adequate")


def _misspecified(seeds: int) -> dict[str, Any]:
    """(g): one staircase CV per noise draw, the scan rates in turn."""
    names = [*MISSPECIFIED_TRUTH, "noise"]
    rel_errors, covered, converged, adequate, walls = [], [], [], [], []
    start = time.perf_counter()
    for seed in range(seeds):
        rate = SERIES_RATES[seed % len(SERIES_RATES)]
        spec = misspecified_spec(rate)
        measured = staircase_data(spec, MISSPECIFIED_TRUTH, 3000 + seed)
        (b,) = measured.batches
        run = experiment("run", b.t, b.E, b.I, b.flags, spec=spec, protocol=spec.protocol)
        w0 = time.perf_counter()
        result = calibrate_experiments(spec, [run])
        walls.append(time.perf_counter() - w0)
        s = result.summary
        assert list(s.names) == names
        truth = np.array([*MISSPECIFIED_TRUTH.values(), NOISE])
        rel_errors.append(np.abs(s.median / truth - 1.0))
        covered.append((s.q05 <= truth) & (truth <= s.q95))
        converged.append(result.converged)
        adequate.append(result.verdict == "adequate")
        if (seed + 1) % 10 == 0 or seed + 1 == seeds:
            _progress(f"misspecified data: {seed + 1} of {seeds} seeds")
    rel, cov = np.array(rel_errors), np.array(covered)
    return {
        "data_source": (
            "physics engine at refine 2 along a staircase CV (5 mV steps, sampled at the end "
            "of each) with a background (offset 0.5 uA, slope 2 uA/V) and 80 % of 2 mM "
            f"oxidised, Gaussian current noise {NOISE:g} A"
        ),
        "posterior": "laplace (the mode search and Laplace approximation of galvana calibrate)",
        "seeds": seeds,
        "rates": list(SERIES_RATES),
        "median_rel_err": {_short(n): float(np.median(rel[:, j])) for j, n in enumerate(names)},
        "median_rel_err_worst": {_short(n): float(rel[:, j].max()) for j, n in enumerate(names)},
        "coverage_90": {_short(n): float(cov[:, j].mean()) for j, n in enumerate(names)},
        "_converged": converged,
        "adequate_fraction": float(np.mean(adequate)),
        "fit_s": float(np.median(walls)),
        "run_s": time.perf_counter() - start,
    }


# name -> data generator. A new suite (a chronoamperogram beside the CVs, a drifting
# electrode) is one more function returning a Series.
SERIES: dict[str, Callable[[Bench, int], Series]] = {
    "scan_rates": scan_rate_series,
    "missing_resistance": missing_resistance_series,
    "misspecified": misspecified_series,
}


def _series(bench: Bench) -> dict[str, Any]:
    out: dict[str, Any] = {}
    correct = []
    for name, generate in SERIES.items():
        out[name], right = _series_figures(name, generate(bench, 2000))
        correct.append(right)
    return {
        "scan_rate_consistency": out["scan_rates"],
        "series": out,
        "series_verdicts_correct": float(np.mean(correct)),
    }


def _series_figures(name: str, series: Series) -> tuple[dict[str, Any], bool]:
    """One series calibrated jointly and run by run: its figures, and whether its
    verdict is the expected one."""
    experiments = []
    for label, own, measured in series.runs:
        t, E, I, flags = (  # noqa: E741 - current
            np.concatenate([getattr(b, f) for b in measured.batches])
            for f in ("t", "E", "I", "flags")
        )
        experiments.append(
            experiment(label, t, E, I, flags, spec=series.spec, protocol=own.protocol)
        )
    start = time.perf_counter()
    result = calibrate_experiments(series.spec, experiments)
    elapsed = time.perf_counter() - start
    check = result.consistency
    assert check is not None
    s = result.summary
    covered = {
        _short(n): bool(s.q05[j] <= series.truth[n] <= s.q95[j])
        for j, n in enumerate(s.names)
        if n in series.truth
    }
    figures = {
        "rates": list(SERIES_RATES),
        "consistent": check.consistent,
        "p_min": min(p.p for p in check.parameters),
        "p": {_short(p.name): p.p for p in check.parameters},
        "chi2_dof": {_short(p.name): p.chi2_dof for p in check.parameters},
        "worst_sd": {_short(p.name): p.worst for p in check.parameters},
        "spread": {_short(p.name): p.spread for p in check.parameters},
        "adequate_runs": sum(r.adequacy.verdict == "adequate" for r in result.runs),
        "covered_90": covered,
        "converged": result.converged,
        "alone_converged": sum(r.alone_converged for r in result.runs),
        "verdict": result.verdict,
        "expected": series.expected,
        "run_s": elapsed,
    }
    _progress(f"series {name}: verdict {result.verdict} (expected {series.expected})")
    return figures, result.verdict == series.expected
