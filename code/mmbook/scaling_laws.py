"""Scaling laws in miniature: training compute, power-law fits and the compute-optimal frontier (Chapter 14).

- :class:`Tower`, :func:`tower_flops`, :func:`training_flops`: ``C ≈ 6·N·D`` for each tower of a model, with
  ``N`` its "non-embedding" parameters and ``D`` its tokens, plus attention's ``T²`` term and the first
  layer's cheaper backward pass; :func:`clip_towers` reads the towers off a ``CLIPModel``;
- :func:`fit_line`, :func:`fit_power_law`: ``L = a·C^(−b)`` by least squares on ``log L`` against ``log C``,
  in closed form; :func:`rms_log_residual`, the typical relative error of a law;
- :func:`fit_power_law_floor`: ``L = E + a·C^(−b)`` by least squares on ``log L``: each candidate floor ``E``
  gives a closed-form line through ``log(L − E)``, the best one starts a Gauss–Newton polish;
- :func:`frontier`: the runs that no run of less or equal compute beats (the compute-optimal frontier).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: FLOPs per weight per token of a training step: 2 forward (a multiply and an add), 2 for the gradient of
#: the layer's input and 2 for the gradient of the weight itself.
FLOPS_PER_PARAMETER_TOKEN = 6
#: The same for the first layer, whose input (the pixels) needs no gradient.
FLOPS_PER_INPUT_PARAMETER_TOKEN = 4


@dataclass(frozen=True)
class Tower:
    """What a training step of one Transformer tower costs, per sequence (Chapter 14): ``parameters``, the
    weights every one of its ``tokens`` passes through (its "non-embedding" parameters; tables looked up
    by position or token id cost no multiplication); ``layers`` attention layers of width ``width``; and
    ``input_parameters``, a first layer applied to ``inputs`` positions whose input needs no gradient
    (the patch embedding of a vision tower)."""

    parameters: int
    tokens: float
    layers: int
    width: int
    input_parameters: int = 0
    inputs: float = 0


def tower_flops(tower: Tower) -> float:
    """Training FLOPs of one sequence through ``tower`` (Chapter 14): ``6·N·T`` for the weights, ``12·L·T²·d``
    for the attention scores and their weighted sums (``4·T²·d`` per layer forward, twice that backward),
    ``4·N_in·P`` for the first layer."""
    t = tower
    weights = FLOPS_PER_PARAMETER_TOKEN * t.parameters * t.tokens
    attention = 3 * 4 * t.layers * t.tokens**2 * t.width
    return weights + attention + FLOPS_PER_INPUT_PARAMETER_TOKEN * t.input_parameters * t.inputs


def training_flops(pairs: float, towers: Sequence[Tower]) -> float:
    """Training FLOPs of a model made of ``towers`` on ``pairs`` examples: ``pairs · Σ tower_flops`` (Chapter 14).
    With one tower and the weights alone this is ``6·N·D``, ``D = pairs · T`` the tokens seen."""
    return pairs * sum(tower_flops(tower) for tower in towers)


def clip_towers(model: Any, text_tokens: float) -> tuple[Tower, Tower]:
    """The vision and text :class:`Tower` of a ``transformers.CLIPModel`` whose captions are ``text_tokens``
    long (padding included); the vision tower sees its patches and the class token (Chapter 14). The two
    projections (one vector per pair) and the temperature are left out."""
    skipped = ("embeddings.position_embedding", "embeddings.token_embedding", "embeddings.class_embedding",
               "embeddings.patch_embedding")  # fmt: skip

    def count(tower: Any) -> int:
        return sum(p.numel() for name, p in tower.named_parameters() if not name.startswith(skipped))

    vision, text = model.config.vision_config, model.config.text_config
    patches = (vision.image_size // vision.patch_size) ** 2
    patch = sum(p.numel() for p in model.vision_model.embeddings.patch_embedding.parameters())
    return (Tower(count(model.vision_model), patches + 1, vision.num_hidden_layers, vision.hidden_size, patch,
                  patches),
            Tower(count(model.text_model), text_tokens, text.num_hidden_layers, text.hidden_size))  # fmt: skip


@dataclass(frozen=True)
class PowerLaw:
    """``L(C) = floor + a·C^(−b)`` and the root-mean-square residual of its fit on ``log L`` (Chapter 14)."""

    a: float
    b: float
    floor: float = 0.0
    rms_log_residual: float = 0.0

    def __call__(self, compute: Any) -> Any:
        return self.floor + self.a * np.asarray(compute, dtype=float) ** (-self.b)


def _check(compute: Sequence[float], loss: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    c, y = np.asarray(compute, dtype=float), np.asarray(loss, dtype=float)
    if c.shape != y.shape or c.ndim != 1 or len(c) < 2:
        raise ValueError(f"need two equally long 1-D sequences of 2 or more values, got {c.shape} and {y.shape}")
    if not (np.all(c > 0) and np.all(y > 0) and np.all(np.isfinite(c)) and np.all(np.isfinite(y))):
        raise ValueError("compute and loss must be positive and finite (their logarithms are fitted)")
    if np.ptp(np.log(c)) == 0:
        raise ValueError("all runs have the same compute: a slope cannot be fitted")
    return c, y


def fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Intercept and slope minimising ``Σ (y − α − β·x)²``: ``β = Σ(x−x̄)(y−ȳ) / Σ(x−x̄)²``, ``α = ȳ − β·x̄``
    (Chapter 14)."""
    dx = x - x.mean()
    beta = float(dx @ (y - y.mean()) / (dx @ dx))
    return float(y.mean() - beta * x.mean()), beta


def rms_log_residual(law: PowerLaw, compute: np.ndarray, loss: np.ndarray) -> float:
    """Root mean square of ``log law(C) − log L``: the typical relative error of the law (Chapter 14)."""
    return float(np.sqrt(np.mean((np.log(law(compute)) - np.log(loss)) ** 2)))


def fit_power_law(compute: Sequence[float], loss: Sequence[float]) -> PowerLaw:
    """``L = a·C^(−b)`` by least squares in log space: ``log L = log a − b·log C`` is a line, fitted in closed
    form (Chapter 14)."""
    c, y = _check(compute, loss)
    alpha, beta = fit_line(np.log(c), np.log(y))
    law = PowerLaw(a=float(np.exp(alpha)), b=-beta)
    return PowerLaw(law.a, law.b, 0.0, rms_log_residual(law, c, y))


def fit_power_law_floor(compute: Sequence[float], loss: Sequence[float], grid: int = 400) -> PowerLaw:
    """``L = E + a·C^(−b)`` minimising ``Σ (log L − log(E + a·C^(−b)))²`` (Chapter 14).

    For a fixed floor ``E`` below the smallest loss, ``log(L − E) = log a − b·log C`` is a line: each of
    ``grid`` candidate floors in ``[0, min L)`` gets its closed-form line, and the candidate with the
    smallest log-space residual of ``L`` starts a Gauss–Newton (trust-region) polish of all three
    parameters on that residual (``scipy.optimize.least_squares``). Needs 3 runs.
    """
    from scipy.optimize import least_squares

    c, y = _check(compute, loss)
    if len(c) < 3:
        raise ValueError(f"a floor, a scale and an exponent need 3 or more runs, got {len(c)}")
    x, top = np.log(c), float(y.min())

    def law_at(floor: float) -> PowerLaw:
        alpha, beta = fit_line(x, np.log(y - floor))
        return PowerLaw(float(np.exp(alpha)), -beta, floor)

    start = min((law_at(f) for f in top * np.arange(grid) / grid), key=lambda law: rms_log_residual(law, c, y))

    def residuals(p: np.ndarray) -> np.ndarray:  # p = (E, log a, b)
        return np.log(p[0] + np.exp(p[1] - p[2] * x)) - np.log(y)

    p = least_squares(residuals, [start.floor, np.log(start.a), start.b], bounds=([0, -np.inf, -np.inf],
                      [top, np.inf, np.inf]), x_scale="jac", xtol=1e-15, ftol=1e-15, gtol=1e-15).x  # fmt: skip
    law = PowerLaw(float(np.exp(p[1])), float(p[2]), float(p[0]))
    return PowerLaw(law.a, law.b, law.floor, rms_log_residual(law, c, y))


def frontier(compute: Sequence[float], loss: Sequence[float]) -> np.ndarray:
    """Indices, in order of compute, of the runs whose loss is lower than that of every run with less or
    equal compute: the compute-optimal frontier of a sweep (Chapter 14)."""
    c, y = np.asarray(compute, dtype=float), np.asarray(loss, dtype=float)
    if c.shape != y.shape or c.ndim != 1 or len(c) == 0:
        raise ValueError(f"need two equally long, non-empty 1-D sequences, got {c.shape} and {y.shape}")
    kept, best = [], np.inf
    for i in np.lexsort((y, c)):
        if y[i] < best:
            kept.append(int(i))
            best = y[i]
    return np.array(kept, dtype=int)
