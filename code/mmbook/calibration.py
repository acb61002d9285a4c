"""Zero-shot classification that knows when it is unsure: calibration and abstention (Chapter 12).

Chapter 6 classifies a picture by the cosine similarity of its embedding with one prompt-ensembled text
embedding per label (:func:`mmbook.contrastive.class_embeddings`). The similarities become probabilities
through a softmax at a temperature ``T``: ``p = softmax(s / T)``. This module asks whether those
probabilities mean what they say and what to do when they are low.

- :func:`zero_shot_scores`: the cosine similarities ``(N, C)`` of pictures with label prompts.
- :func:`reliability`, :func:`expected_calibration_error`: binned confidence against accuracy (ECE).
- :func:`nll`, :func:`nll_gradient`, :func:`fit_temperature`: temperature scaling, fitted on a validation
  split by Newton's method on ``β = 1 / T`` (the negative log-likelihood is convex in ``β``).
- :func:`risk_coverage`, :func:`abstain`: answer only when confident; the error rate among the answered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mmbook import contrastive


@torch.no_grad()
def zero_shot_scores(model: Any, proc: Any, pixel_values: Tensor, labels: Sequence[str],
                     templates: Sequence[str]) -> Tensor:
    """Cosine similarities ``(N, C)`` of the pictures with each label's prompt ensemble (Chapter 12)."""
    if not labels or not templates:
        raise ValueError("zero_shot_scores needs at least one label and one template")
    classes = contrastive.class_embeddings(model, proc, list(labels), list(templates))
    return contrastive.embed_images(model, pixel_values) @ classes.T


def _check(scores: Tensor, truth: Tensor) -> None:
    if scores.dim() != 2 or truth.shape != scores.shape[:1]:
        raise ValueError(f"scores must be (N, C) and truth (N,); got {tuple(scores.shape)} and {tuple(truth.shape)}")


@dataclass(frozen=True)
class Reliability:
    """A reliability diagram's bins: mean confidence, accuracy and count per bin (Chapter 12)."""

    edges: Tensor
    confidence: Tensor
    accuracy: Tensor
    count: Tensor


def reliability(probs: Tensor, truth: Tensor, n_bins: int = 10) -> Reliability:
    """Bin the top-class confidence into ``n_bins`` equal-width bins ``(k/B, (k+1)/B]`` (Chapter 12).

    Empty bins have confidence and accuracy 0 and count 0.
    """
    _check(probs, truth)
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    confidence, predicted = probs.max(1)
    correct = predicted.eq(truth).double()
    index = (torch.ceil(confidence.double() * n_bins).long() - 1).clamp(0, n_bins - 1)
    count = torch.bincount(index, minlength=n_bins).double()
    total_conf = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, index, confidence.double())
    total_acc = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, index, correct)
    safe = count.clamp(min=1)
    return Reliability(torch.linspace(0, 1, n_bins + 1), total_conf / safe, total_acc / safe, count)


def expected_calibration_error(probs: Tensor, truth: Tensor, n_bins: int = 10) -> float:
    """ECE = Σ_b (n_b / N) |acc_b − conf_b| over the bins of :func:`reliability` (Chapter 12)."""
    bins = reliability(probs, truth, n_bins)
    weights = bins.count / bins.count.sum()
    return float((weights * (bins.accuracy - bins.confidence).abs()).sum())


def nll(scores: Tensor, truth: Tensor, temperature: float) -> float:
    """Mean negative log-likelihood of ``softmax(scores / T)`` (Chapter 12)."""
    _check(scores, truth)
    logits = scores.double() / temperature
    return float((logits.logsumexp(1) - logits.gather(1, truth[:, None]).squeeze(1)).mean())


def nll_gradient(scores: Tensor, truth: Tensor, temperature: float) -> float:
    """dNLL/dT = mean over pictures of (s_y − Σ_k p_k s_k) / T² (Chapter 12)."""
    _check(scores, truth)
    s = scores.double()
    p = torch.softmax(s / temperature, dim=1)
    return float(((s.gather(1, truth[:, None]).squeeze(1) - (p * s).sum(1)) / temperature**2).mean())


def fit_temperature(scores: Tensor, truth: Tensor, *, steps: int = 50, tol: float = 1e-10) -> float:
    """The temperature minimising :func:`nll` on a validation split (Chapter 12).

    With ``β = 1/T`` the NLL is ``mean(logsumexp(β s) − β s_y)``: its first derivative is
    ``mean(E_p[s] − s_y)`` and its second ``mean(Var_p[s]) ≥ 0``, so it is convex and Newton's method on
    ``β`` (with halving if a step would leave β > 0) finds the minimum.
    """
    _check(scores, truth)
    s = scores.double()
    s_y = s.gather(1, truth[:, None]).squeeze(1)
    beta = 1.0 / float(s.std().clamp(min=1e-6))
    for _ in range(steps):
        p = torch.softmax(beta * s, dim=1)
        mean = (p * s).sum(1)
        grad = float((mean - s_y).mean())
        hess = float(((p * s * s).sum(1) - mean**2).mean())
        if hess <= 0:
            break
        step = grad / hess
        while beta - step <= 0:
            step /= 2
        beta -= step
        if abs(step) < tol * beta:
            break
    return 1.0 / beta


@dataclass(frozen=True)
class RiskCoverage:
    """Coverage (share answered) and risk (error rate among the answered) at every threshold (Chapter 12)."""

    threshold: Tensor
    coverage: Tensor
    risk: Tensor

    @property
    def area(self) -> float:
        """Area under the risk–coverage curve (AURC): the mean risk over coverages 1/N … 1."""
        return float(self.risk.mean())


def risk_coverage(probs: Tensor, truth: Tensor) -> RiskCoverage:
    """Answer the ``k`` most confident pictures, for k = 1 … N (Chapter 12)."""
    _check(probs, truth)
    confidence, predicted = probs.max(1)
    order = confidence.argsort(descending=True)
    errors = predicted[order].ne(truth[order]).double().cumsum(0)
    answered = torch.arange(1, len(order) + 1, dtype=torch.float64)
    return RiskCoverage(confidence[order], answered / len(order), errors / answered)


def abstain(probs: Tensor, threshold: float) -> Tensor:
    """The predicted class, or −1 where the top probability is below ``threshold`` (Chapter 12)."""
    confidence, predicted = probs.max(1)
    return torch.where(confidence >= threshold, predicted, torch.full_like(predicted, -1))
