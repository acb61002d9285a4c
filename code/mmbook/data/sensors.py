"""A machine's sensor readings with a technician's maintenance log (Chapter 12).

Faults have a random severity, so mild ones hide in the noise of the series; the logs are often
informative, sometimes say nothing and sometimes point the wrong way. Fusing both beats either alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mmbook.data._text import template_words

LABELS: tuple[str, ...] = ("normal", "bearing_wear", "overheating", "electrical_fault")
#: The first three channels carry the faults; the others are ambient readings with no information.
CHANNEL_NAMES: tuple[str, ...] = ("vibration", "temperature", "current", "pressure", "humidity")
#: What a log says: the true condition, nothing useful, or another condition than the true one.
LOG_KINDS: tuple[str, ...] = ("informative", "uninformative", "misleading")
LOG_KIND_PROBABILITIES: tuple[float, ...] = (0.6, 0.25, 0.15)

_LOGS: dict[str, tuple[str, ...]] = {
    "normal": (
        "routine check, machine runs smoothly",
        "no issues found during inspection",
        "all readings look fine",
        "machine sounds normal, nothing to report",
        "regular maintenance done, everything ok",
    ),
    "bearing_wear": (
        "grinding noise near the bearing",
        "operator reports rattling from the motor shaft",
        "strong vibration felt at the housing",
        "bearing sounds rough, needs grease",
        "squealing noise at startup",
    ),
    "overheating": (
        "housing is very hot to the touch",
        "cooling fan seems slow",
        "smell of hot oil near the motor",
        "temperature alarm went off twice",
        "coolant level low, motor running hot",
    ),
    "electrical_fault": (
        "breaker tripped during the shift",
        "lights flickered when the motor started",
        "smell of burnt insulation near the panel",
        "sparks seen at the connector",
        "motor stalled and restarted by itself",
    ),
}
_UNINFORMATIVE = (
    "checked the machine",
    "shift handover, see previous log",
    "nothing to add",
    "operator on break, will check later",
    "log entry for the weekly round",
    "cleaned the area around the machine",
)
_PREFIXES = ("", "shift log: ", "note: ", "technician: ", "round check: ")
#: Every word and punctuation mark a log can contain.
VOCABULARY: tuple[str, ...] = tuple(
    sorted(template_words([*_PREFIXES, *_UNINFORMATIVE, *(log for logs in _LOGS.values() for log in logs)]))
)


@dataclass(repr=False, eq=False)
class Sensors:
    """Sensor series with maintenance logs, made by :func:`make_sensors` (Chapter 12).

    ``series`` is float32 N×C×L, ``labels`` int64 indices into ``LABELS``; ``log_kinds`` and ``severity``
    (0 for normal machines) are ground truth for analysis, not inputs.
    """

    series: np.ndarray
    labels: np.ndarray
    logs: list[str]
    log_kinds: list[str]
    severity: np.ndarray
    channel_names: tuple[str, ...]

    @property
    def n(self) -> int:
        """Number of samples."""
        return len(self.series)

    @property
    def label_names(self) -> tuple[str, ...]:
        """Names of the labels, indexed by ``labels``."""
        return LABELS

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"Sensors(n={self.n}, channels={self.channel_names}, length={self.series.shape[2]})"

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {
            "series": self.series[i],
            "label": int(self.labels[i]),
            "log": self.logs[i],
            "log_kind": self.log_kinds[i],
            "severity": float(self.severity[i]),
        }


def _bumps(rng: np.random.Generator, t: np.ndarray, active: np.ndarray, height: np.ndarray) -> np.ndarray:
    """Sum of narrow Gaussian bumps at random times; ``active`` and ``height`` are N×K."""
    centre = rng.uniform(0.05, 0.95, active.shape)[:, :, None]
    width = rng.uniform(0.01, 0.025, active.shape)[:, :, None]
    sign = rng.choice([-1.0, 1.0], active.shape)
    return ((active * height * sign)[:, :, None] * np.exp(-0.5 * ((t - centre) / width) ** 2)).sum(axis=1)


def make_sensors(n: int, *, seed: int = 0, length: int = 128, channels: int = 3) -> Sensors:
    """Generate ``n`` machines' readings and logs, balanced over ``LABELS`` (Chapter 12).

    ``channels`` keeps the first channels of ``CHANNEL_NAMES``: fewer than three drops informative ones,
    more adds ambient channels that carry no information.
    """
    if not (isinstance(n, int | np.integer) and n > 0):
        raise ValueError(f"n must be a positive integer (1 or more), got {n!r}")
    if not (isinstance(length, int | np.integer) and 32 <= length <= 4096):
        raise ValueError(f"length must be an integer between 32 and 4096, got {length!r}")
    if not (isinstance(channels, int | np.integer) and 1 <= channels <= len(CHANNEL_NAMES)):
        raise ValueError(f"channels must be an integer between 1 and {len(CHANNEL_NAMES)}, got {channels!r}")

    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(LABELS)).astype(np.int64)
    severity = np.where(labels == 0, 0.0, rng.uniform(0.1, 1.0, n))
    t = np.arange(length) / length
    bearing, heat, electric = np.eye(len(LABELS))[labels].T[1:] * severity  # 0 where another label

    def column(values: np.ndarray) -> np.ndarray:
        return values[:, None]

    # vibration: the shaft's rotation and a faint whine; worn bearings raise the whine and add knocks
    rotation = length * rng.uniform(0.03, 0.06, n)
    vibration = column(rng.uniform(0.8, 1.2, n)) * np.sin(
        2 * np.pi * (column(rotation) * t + column(rng.random(n)))
    )
    whine = np.sin(2 * np.pi * column(length * rng.uniform(0.15, 0.25, n)) * t)
    knocks = np.sin(2 * np.pi * column(rotation) * t) > 0.97
    vibration += column(rng.uniform(0, 0.3, n) + 0.6 * bearing) * whine + column(bearing) * knocks
    vibration += 0.3 * rng.standard_normal((n, length))

    # temperature: a random drift in every machine; overheating bends it upwards
    temperature = column(rng.normal(0, 0.5, n) + 0.3 * bearing) * t + column(1.5 * heat) * t**2
    temperature += 0.15 * rng.standard_normal((n, length))

    # current: a ripple and the odd harmless transient; electrical faults add surges
    current = 0.2 * np.sin(2 * np.pi * column(length * rng.uniform(0.3, 0.4, n)) * t)
    current += column(0.3 * heat) + 0.2 * rng.standard_normal((n, length))
    current += _bumps(rng, t, rng.random((n, 1)) < 0.4, rng.uniform(0.3, 1.0, (n, 1)))
    surges = rng.random((n, 4)) < column(np.where(electric > 0, 0.2 + 0.6 * electric, 0))
    current += _bumps(rng, t, surges, column(1.5 * electric + 0.3))

    # ambient channels: slow random walks
    ambient = np.cumsum(0.1 * rng.standard_normal((n, 2, length)), axis=2)
    series = np.concatenate([np.stack([vibration, temperature, current], axis=1), ambient], axis=1)

    kinds = rng.choice(len(LOG_KINDS), size=n, p=LOG_KIND_PROBABILITIES)
    wrong = (labels + rng.integers(1, len(LABELS), n)) % len(LABELS)
    picks = rng.integers(0, 2**31, size=(n, 2)).tolist()
    logs = []
    for label, kind, other, (prefix, body) in zip(
        labels.tolist(), kinds.tolist(), wrong.tolist(), picks, strict=True
    ):
        if LOG_KINDS[kind] == "uninformative":
            bodies = _UNINFORMATIVE
        else:
            bodies = _LOGS[LABELS[label if LOG_KINDS[kind] == "informative" else other]]
        logs.append(_PREFIXES[prefix % len(_PREFIXES)] + bodies[body % len(bodies)])
    return Sensors(
        series=series[:, :channels].astype(np.float32),
        labels=labels,
        logs=logs,
        log_kinds=[LOG_KINDS[k] for k in kinds.tolist()],
        severity=severity.astype(np.float32),
        channel_names=CHANNEL_NAMES[:channels],
    )
