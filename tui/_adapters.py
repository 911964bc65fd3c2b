"""Reading messages whose classes this build may not have yet: instrument, twin, posterior.

The instrument messages (branch ``hal``) and the twin and calibration messages
(branch ``twin``) are built in parallel with the TUI. A message whose tag the local
``runtime.messages`` does not know arrives as its plain ``[tag, field, ...]`` list;
one whose class is known arrives as the object. Everything here accepts both, so
the screens work before and after those branches are merged.

THE HOOKS TO SWITCH once ``hal`` and ``twin`` are merged:

- :data:`PLAIN_FIELDS` lists the field order of the instrument messages (``hal``,
  commit 0947fb0) and of the twin and calibration messages (``twin``, commit
  1702319) as those branches declare them; once merged the objects arrive decoded
  and the table is only a fallback (drop it, or keep it in step, when convenient).
- :data:`TWIN_FIELDS` and :data:`POSTERIOR_FIELDS` name the attributes read from
  the twin's prediction (``TwinPrediction``: ``t``, ``predicted``, ``residual``,
  ``band`` the half-width, ``level``) and the calibrator's posterior
  (``PosteriorUpdate``: ``parameters``, ``median``, ``q05``, ``q95``), by
  candidates, real names first; the rest are for other producers.
- :data:`TAG_HINTS`: live events are told apart by topic (``run/<id>/twin``,
  ``/posterior``, ``/drift``), but a run's recorded history (``runs.events``)
  carries no topic, so there the tag decides: put the real tags here.
- :func:`spec_instrument` reads the instrument a run spec names (``instrument:
  ID`` or ``instrument: {id: ID, ...}``); adjust it to the spec the lead settles on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "PLAIN_FIELDS",
    "POSTERIOR_FIELDS",
    "TAG_HINTS",
    "TWIN_FIELDS",
    "Estimate",
    "TwinPoints",
    "fields_of",
    "kind_of_tag",
    "posterior_estimates",
    "spec_instrument",
    "tag_of",
    "twin_points",
]

FloatArray = npt.NDArray[np.float64]

# Field order of messages that may arrive as plain lists (tag first), from branch `hal`
# (runtime/messages.py there, commit 0947fb0).
PLAIN_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "instrument.link_down": ("instrument_id", "run_id", "reason", "at"),
    "instrument.link_up": ("instrument_id", "run_id", "identity", "attempts", "at"),
    "instrument.stream_stalled": ("instrument_id", "run_id", "silent_s", "at"),
    "instrument.stream_resumed": ("instrument_id", "run_id", "silent_s", "at"),
    "instrument.safety_tripped": (
        "instrument_id",
        "run_id",
        "limit",
        "value",
        "accepted",
        "detail",
        "cell_off",
        "at",
    ),
    "instrument.reply_dropped": ("instrument_id", "reason", "raw", "total", "at"),
    "instrument.acquisition_started": (
        "instrument_id",
        "run_id",
        "technique",
        "duration_s",
        "sample_rate_hz",
        "at",
    ),
    "instrument.acquisition_ended": (
        "instrument_id",
        "run_id",
        "reason",
        "samples",
        "lost",
        "detail",
        "at",
    ),
    # From branch `twin` (runtime/messages.py there, commit 1702319).
    "twin.prediction": (
        "run_id",
        "seq",
        "posterior",
        "level",
        "t",
        "predicted",
        "residual",
        "band",
    ),
    "twin.data_issue": ("run_id", "seq", "kind", "count", "t_start", "t_end", "detail"),
    "twin.drift": ("run_id", "t_start", "t", "fraction", "window", "level"),
    "twin.drift_cleared": ("run_id", "t", "fraction"),
    "calibration.posterior": (
        "run_id",
        "version",
        "segment",
        "method",
        "t_end",
        "samples",
        "parameters",
        "mean",
        "median",
        "q05",
        "q95",
        "loc",
        "scale_tril",
        "correlation",
        "elbo",
        "diagnostics",
        "warnings",
    ),
    "calibration.diverged": ("run_id", "segment", "t_end", "reason", "kept_version"),
    "calibration.skipped": ("run_id", "first", "last", "t_end", "reason"),
    "calibration.started": ("run_id", "incarnation"),
}

# Candidate attribute names, best first, of the twin's lockstep prediction
# (topic run/<id>/twin): arrays over the same samples.
TWIN_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "t": ("t", "time"),
    "E": ("E", "potential"),
    "predicted": ("I_pred", "I_predicted", "predicted", "prediction", "I_twin", "mean"),
    "lower": ("I_lo", "I_lower", "lower", "lo", "band_lo", "q05", "p05"),
    "upper": ("I_hi", "I_upper", "upper", "hi", "band_hi", "q95", "p95"),
    "residual": ("residual", "residuals", "I_residual"),
    "measured": ("I", "I_meas", "I_measured", "measured"),
    "band": ("band", "half_width"),  # the band as a half-width around the prediction
}

# Candidate names of the calibrator's posterior summary (topic run/<id>/posterior):
# either parallel arrays (names, median, lower, upper[, truth]) or a map
# ``parameters: {name: {median, lower, upper[, truth]}}``.
POSTERIOR_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "names": ("parameters", "names", "parameter_names", "params"),
    "parameters": ("parameters", "estimates", "summary"),
    "median": ("median", "medians", "q50", "p50"),
    "lower": ("lower", "lo", "q05", "p05", "low"),
    "upper": ("upper", "hi", "q95", "p95", "high"),
    "truth": ("truth", "true_values", "hidden_truth", "true"),
    "t": ("t", "time", "at_s"),
}


# What a tag contains, for each kind of twin message (see the module's notes); the
# tags of branch `twin` are matched exactly first.
TAG_HINTS: Final[dict[str, tuple[str, ...]]] = {
    "twin": ("twin.prediction", "prediction"),
    "posterior": ("calibration.posterior", "posterior"),
    "drift": ("drift",),
}


def kind_of_tag(tag: str) -> str:
    """``twin``, ``posterior``, ``drift`` or ``""``: which kind of twin message a tag is.

    >>> [kind_of_tag(t) for t in ("twin.prediction", "calibrator.posterior", "run.state")]
    ['twin', 'posterior', '']
    """
    for kind in ("drift", "posterior", "twin"):  # "twin.drift" is drift, not a prediction
        if any(hint in tag for hint in TAG_HINTS[kind]):
            return kind
    return ""


def spec_instrument(spec: object) -> str:
    """The instrument a run spec names (``""`` when none).

    >>> spec_instrument({"instrument": "sim1"}), spec_instrument({"instrument": {"id": "p4"}})
    ('sim1', 'p4')
    """
    if not isinstance(spec, Mapping):
        return ""
    instrument = spec.get("instrument")
    if isinstance(instrument, str):
        return instrument
    if isinstance(instrument, Mapping) and isinstance(instrument.get("id"), str):
        return str(instrument["id"])
    return ""


def tag_of(msg: object) -> str:
    """The message's tag (``samples``, ``run.state``, ...); ``""`` for what is no message."""
    tag = getattr(msg, "__message_tag__", None)
    if isinstance(tag, str):
        return tag
    if isinstance(msg, list | tuple) and msg and isinstance(msg[0], str):
        return msg[0]
    return ""


def fields_of(msg: object) -> dict[str, Any]:
    """The message's fields by name: from the object, or from a plain list by its tag.

    A plain list of a tag this module does not know gives ``{}``.
    """
    names = getattr(msg, "__dataclass_fields__", None)
    if names is not None:
        return {name: getattr(msg, name) for name in names}
    if isinstance(msg, list | tuple) and msg:
        layout = PLAIN_FIELDS.get(str(msg[0]))
        if layout is not None and len(msg) == len(layout) + 1:
            return dict(zip(layout, msg[1:], strict=True))
    return {}


def _pick(source: Mapping[str, Any], candidates: Sequence[str]) -> Any:
    for name in candidates:
        if name in source and source[name] is not None:
            return source[name]
    return None


def _array(value: Any) -> FloatArray | None:
    if value is None:
        return None
    try:
        array = np.asarray(value, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        return None
    return array


@dataclass(frozen=True, slots=True)
class TwinPoints:
    """The twin's prediction over a stretch of samples (SI: s, V, A).

    ``E`` is NaN where the message carries no potential (the caller takes it from
    its samples at the same times). ``residual`` is measured minus predicted when
    the message carries it (or the measured current), else None and the caller
    computes it against its samples. ``level``: the band's probability, when given.
    """

    t: FloatArray
    E: FloatArray
    predicted: FloatArray
    lower: FloatArray
    upper: FloatArray
    residual: FloatArray | None
    level: float | None = None


def twin_points(msg: object) -> TwinPoints | None:
    """The prediction a twin message carries; None when it carries none this TUI can read."""
    fields = fields_of(msg)
    arrays = {key: _array(_pick(fields, names)) for key, names in TWIN_FIELDS.items()}
    t, predicted = arrays["t"], arrays["predicted"]
    if t is None or predicted is None or t.size != predicted.size or t.size == 0:
        return None
    n = t.size

    def sized(value: FloatArray | None) -> FloatArray:
        return value if value is not None and value.size == n else np.full(n, np.nan)

    lower, upper = sized(arrays["lower"]), sized(arrays["upper"])
    band = arrays["band"]
    if band is not None and band.size == n and arrays["lower"] is None:
        lower, upper = predicted - band, predicted + band
    residual = arrays["residual"]
    if (residual is None or residual.size != n) and arrays["measured"] is not None:
        measured = arrays["measured"]
        residual = measured - predicted if measured.size == n else None
    level = fields.get("level")
    return TwinPoints(
        t,
        sized(arrays["E"]),
        predicted,
        lower,
        upper,
        residual,
        float(level) if isinstance(level, int | float) else None,
    )


@dataclass(frozen=True, slots=True)
class Estimate:
    """One calibrated parameter: posterior median and 90% interval, and the truth if known."""

    name: str
    median: float
    lower: float
    upper: float
    truth: float | None = None


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def posterior_estimates(msg: object) -> tuple[float | None, list[Estimate]]:
    """The time (s, when given) and the parameter estimates of a posterior message."""
    fields = fields_of(msg)
    t_value = _pick(fields, POSTERIOR_FIELDS["t"])
    t = None if t_value is None else _float(t_value)
    truths = _pick(fields, POSTERIOR_FIELDS["truth"])
    table = _pick(fields, POSTERIOR_FIELDS["parameters"])
    out: list[Estimate] = []
    if isinstance(table, Mapping):
        for name, entry in table.items():
            entry_fields = entry if isinstance(entry, Mapping) else fields_of(entry)
            truth = _pick(entry_fields, POSTERIOR_FIELDS["truth"])
            if truth is None and isinstance(truths, Mapping):
                truth = truths.get(name)
            out.append(
                Estimate(
                    str(name),
                    _float(_pick(entry_fields, POSTERIOR_FIELDS["median"])),
                    _float(_pick(entry_fields, POSTERIOR_FIELDS["lower"])),
                    _float(_pick(entry_fields, POSTERIOR_FIELDS["upper"])),
                    None if truth is None else _float(truth),
                )
            )
        return t, out
    names = _pick(fields, POSTERIOR_FIELDS["names"])
    median = _array(_pick(fields, POSTERIOR_FIELDS["median"]))
    lower = _array(_pick(fields, POSTERIOR_FIELDS["lower"]))
    upper = _array(_pick(fields, POSTERIOR_FIELDS["upper"]))
    if not isinstance(names, Sequence) or isinstance(names, str) or median is None:
        return t, out
    for k, name in enumerate(names):
        truth_value: Any = None
        if isinstance(truths, Mapping):
            truth_value = truths.get(name)
        elif truths is not None:
            truth_array = _array(truths)
            if truth_array is not None and k < truth_array.size:
                truth_value = truth_array[k]
        out.append(
            Estimate(
                str(name),
                _float(median[k]) if k < median.size else float("nan"),
                _float(lower[k]) if lower is not None and k < lower.size else float("nan"),
                _float(upper[k]) if upper is not None and k < upper.size else float("nan"),
                None if truth_value is None else _float(truth_value),
            )
        )
    return t, out
