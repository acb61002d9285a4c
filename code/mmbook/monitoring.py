"""Industrial monitoring: sensor series and maintenance logs, fused to name a machine's fault (Chapter 12).

The data are :func:`mmbook.data.make_sensors`' machines. :func:`series_features` summarises each channel of
a series (spread, peaks, drift, roughness), :func:`log_counts` turns a log into word counts, and
:class:`Monitor` encodes each modality and fuses them with a method of :data:`mmbook.fusion.FUSIONS`
(Chapter 5), or reads one modality alone. :func:`train_monitor` trains one in about a second, with
Chapter 5's modality dropout and, for early warning, on the first part of each series as well as on the
whole. :func:`per_class_f1` scores it per fault; :func:`fault_scores` and :func:`early_warning` measure how
early a fault can be flagged and how often a flag is right.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmbook.data import LABELS, SENSORS_VOCABULARY, words
from mmbook.env import training_state
from mmbook.errors import InputError
from mmbook.fusion import FUSIONS
from mmbook.fusion_classifier import drop_modalities

MODALITIES: tuple[str, ...] = ("series", "log")
"""The single-modality methods of :class:`Monitor`; every other method is a key of ``FUSIONS``."""
STATISTICS: tuple[str, ...] = ("spread", "peak", "drift", "roughness", "jump")
"""What :func:`series_features` measures on each channel, in its column order (channel-major)."""
PREFIXES: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
"""Shares of each series a model trained with ``prefixes=True`` also learns from (Chapter 12)."""
MIN_LENGTH = 8
_WORD_INDEX = {w: i for i, w in enumerate(SENSORS_VOCABULARY)}


def series_features(series: np.ndarray) -> np.ndarray:
    """``(N, C, L)`` series → ``(N, 5C)`` float32: five numbers per channel, as in :data:`STATISTICS`
    (Chapter 12).

    Spread (standard deviation), peak (largest absolute value), drift (mean of the last ``w`` readings
    minus mean of the first ``w``, ``w = min(16, L // 4)``), roughness (standard deviation of the steps
    ``x_{t+1} − x_t``) and jump (largest absolute step). Each is defined for any ``L ≥ 8``, so the same
    features describe a whole series or its first part.
    """
    x = np.asarray(series, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] < MIN_LENGTH:
        raise ValueError(f"series must be (N, C, L) with L >= {MIN_LENGTH}; got shape {x.shape}")
    w = min(16, x.shape[2] // 4)
    step = np.diff(x, axis=2)
    stats = [x.std(2), np.abs(x).max(2), x[:, :, -w:].mean(2) - x[:, :, :w].mean(2), step.std(2),
             np.abs(step).max(2)]
    return np.stack(stats, axis=2).reshape(len(x), -1).astype(np.float32)


def log_counts(logs: Sequence[str]) -> np.ndarray:
    """``(N, V)`` float32 word counts of the logs over the sensors' vocabulary (Chapter 12).

    Raises :class:`~mmbook.errors.InputError` naming the first word outside the vocabulary.
    """
    counts = np.zeros((len(logs), len(SENSORS_VOCABULARY)), dtype=np.float32)
    for row, log in enumerate(logs):
        for word in words(log):
            if word not in _WORD_INDEX:
                raise InputError(f"The log uses the word {word!r}, which the monitor never saw; it knows "
                                 f"{len(SENSORS_VOCABULARY)} words of maintenance logs, such as 'vibration'"
                                 f" or 'breaker'.")
            counts[row, _WORD_INDEX[word]] += 1
    return counts


class Monitor(nn.Module):
    """Series encoder + log encoder + one fusion of Chapter 5 + head; or one modality alone (Chapter 12).

    The series' features (standardised with the training set's ``mean`` and ``std``) and the log's mean
    word vector (a linear map of its counts divided by its length) each become ``dim`` numbers through a
    layer and a GELU. ``method="series"`` or ``"log"`` puts the head on that modality's vector;
    any key of :data:`mmbook.fusion.FUSIONS` fuses both into ``hidden`` numbers first.
    ``forward(features, counts, mask)`` returns logits; ``mask`` is ``(B, 2)``, True where the series
    (column 0) and the log (column 1) are present.
    """

    def __init__(self, method: str, mean: np.ndarray, std: np.ndarray, *, dim: int = 32, hidden: int = 32,
                 n_classes: int = len(LABELS)) -> None:
        super().__init__()
        if method not in (*MODALITIES, *FUSIONS):
            raise ValueError(f"method must be one of {', '.join((*MODALITIES, *FUSIONS))}; got {method!r}")
        self.method = method
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        self.series = nn.Sequential(nn.Linear(len(mean), dim), nn.GELU())
        self.log = nn.Sequential(nn.Linear(len(SENSORS_VOCABULARY), dim), nn.GELU())
        self.fusion = FUSIONS[method]([dim, dim], hidden) if method in FUSIONS else None
        width = dim if self.fusion is None else hidden
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, n_classes))

    def forward(self, features: Tensor, counts: Tensor, mask: Tensor | None = None) -> Tensor:
        series = self.series((features - self.mean) / self.std)
        log = self.log(counts / counts.sum(1, keepdim=True).clamp(min=1))
        if self.fusion is None:
            return self.head(series if self.method == "series" else log)
        return self.head(self.fusion(series, log, mask=mask))


def train_monitor(method: str, series: np.ndarray, logs: Sequence[str], labels: np.ndarray, *,
                  steps: int = 300, batch_size: int = 256, lr: float = 1e-2, seed: int = 0,
                  modality_dropout: float = 0.0, prefixes: bool = False) -> tuple[Monitor, float]:
    """Train a :class:`Monitor` on ``(N, C, L)`` series, their logs and labels; return it and the seconds
    (Chapter 12).

    AdamW at ``lr`` with a cosine decay, ``steps`` minibatches of ``batch_size`` drawn with ``seed``, one
    CPU thread inside :func:`mmbook.env.training_state`: the same arguments give the same weights.
    ``modality_dropout`` is the chance that an example loses its series or its log
    (:func:`mmbook.fusion_classifier.drop_modalities`); ``prefixes=True`` adds, for every example, the
    features of its first quarter, half and three quarters (:data:`PREFIXES`), with the same log and label.
    """
    length = series.shape[2]
    shares = PREFIXES if prefixes else (1.0,)
    features = np.concatenate([series_features(series[:, :, : round(s * length)]) for s in shares])
    x = torch.as_tensor(features)
    counts = torch.as_tensor(np.tile(log_counts(logs), (len(shares), 1)))
    y = torch.as_tensor(np.tile(np.asarray(labels, dtype=np.int64), len(shares)))
    mean, std = features.mean(0), features.std(0) + 1e-6
    generator = torch.Generator().manual_seed(seed)
    with training_state(threads=1):
        torch.manual_seed(seed)
        model = Monitor(method, mean, std)
        optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
        start = time.perf_counter()
        model.train()
        for _ in range(steps):
            rows = torch.randint(0, len(y), (batch_size,), generator=generator)
            mask = drop_modalities(batch_size, modality_dropout, generator) if modality_dropout > 0 else None
            loss = F.cross_entropy(model(x[rows], counts[rows], mask), y[rows])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
        seconds = time.perf_counter() - start
    return model.eval(), seconds


@torch.no_grad()
def probabilities(model: Monitor, series: np.ndarray, logs: Sequence[str] | None) -> np.ndarray:
    """``(N, K)`` class probabilities; ``logs=None`` means no log for any machine (Chapter 12)."""
    x = torch.as_tensor(series_features(series))
    if logs is None:
        counts, mask = torch.zeros(len(x), len(SENSORS_VOCABULARY)), torch.tensor([[True, False]]).expand(len(x), 2)
    else:
        counts, mask = torch.as_tensor(log_counts(logs)), None
    return torch.softmax(model.eval()(x, counts, mask), dim=1).numpy()


def per_class_f1(truth: np.ndarray, predicted: np.ndarray, n_classes: int = len(LABELS)) -> np.ndarray:
    """F1 of each class, ``2 TP / (2 TP + FP + FN)``, 0 where a class is neither true nor predicted
    (Chapter 12)."""
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    f1 = np.zeros(n_classes)
    for k in range(n_classes):
        tp = np.sum((predicted == k) & (truth == k))
        wrong = np.sum((predicted == k) != (truth == k))  # FP + FN
        f1[k] = 2 * tp / (2 * tp + wrong) if tp + wrong > 0 else 0.0
    return f1


def fault_scores(model: Monitor, series: np.ndarray, lengths: Sequence[int],
                 logs: Sequence[str] | None = None) -> np.ndarray:
    """``(len(lengths), N)``: the probability of any fault, ``1 − P(normal)``, after reading the first
    ``lengths[j]`` readings of each series (Chapter 12)."""
    return np.stack([1 - probabilities(model, series[:, :, :t], logs)[:, 0] for t in lengths])


def early_warning(scores: np.ndarray, lengths: Sequence[int], faulty: np.ndarray,
                  thresholds: Sequence[float]) -> list[dict[str, float]]:
    """Alert at the first length whose fault score reaches the threshold; one row per threshold (Chapter 12).

    ``scores`` is :func:`fault_scores`' ``(P, N)`` table, ``faulty`` True for machines with a fault.
    Each row gives ``precision`` (share of alerted machines that are faulty), ``recall`` (share of faulty
    machines alerted), ``seen`` (mean share of the series read when a faulty machine is alerted, over the
    alerted faulty ones; NaN if none) and ``false_alarms`` (share of healthy machines alerted).
    """
    lengths, faulty = np.asarray(lengths), np.asarray(faulty, dtype=bool)
    rows = []
    for threshold in thresholds:
        over = scores >= threshold
        alerted = over.any(0)
        first = np.where(alerted, over.argmax(0), -1)
        hits = alerted & faulty
        rows.append({
            "threshold": float(threshold),
            "precision": float(hits.sum() / alerted.sum()) if alerted.any() else float("nan"),
            "recall": float(hits.sum() / faulty.sum()),
            "seen": float(np.mean(lengths[first[hits]] / lengths[-1])) if hits.any() else float("nan"),
            "false_alarms": float((alerted & ~faulty).sum() / max(1, (~faulty).sum())),
        })
    return rows
