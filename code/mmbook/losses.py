"""Losses from scratch: contrastive (Chapter 6) and binary cross-entropy (Chapter 7).

:func:`clip_loss` (the symmetric InfoNCE of CLIP) and :func:`info_nce` (one direction) take similarities in
which row ``i`` and column ``i`` belong together (the diagonal holds the positives) and average a
cross-entropy over the rows. :func:`bce_with_logits` and its gradient :func:`bce_grad` train the matcher.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _check_square(logits: Tensor) -> None:
    if logits.dim() != 2 or logits.shape[0] != logits.shape[1] or logits.shape[0] == 0:
        raise ValueError(
            "expected a non-empty square matrix of logits (N, N) with the matching pairs on the diagonal; "
            f"got shape {tuple(logits.shape)}"
        )


def clip_loss(logits_per_text: Tensor) -> Tensor:
    """CLIP's symmetric InfoNCE: the mean of the text→image and image→text cross-entropies (Chapter 6).

    ``logits_per_text[i, j]`` scores text ``i`` against image ``j``; the targets are the diagonal. The value
    equals ``transformers``' ``image_text_contrastive_loss``.
    """
    _check_square(logits_per_text)
    target = torch.arange(len(logits_per_text), device=logits_per_text.device)
    return (F.cross_entropy(logits_per_text, target) + F.cross_entropy(logits_per_text.T, target)) / 2


def info_nce(query: Tensor, keys: Tensor, temperature: float = 0.07) -> Tensor:
    """InfoNCE of ``query[i]`` against ``keys``, whose positive is ``keys[i]`` (Chapter 6).

    ``-mean_i log softmax_j(cos(q_i, k_j) / τ)_i`` for ``(N, D)`` queries and keys; the other keys of the
    batch are the negatives.
    """
    if query.dim() != 2 or query.shape != keys.shape or len(query) == 0:
        raise ValueError(f"expected query and keys of the same shape (N, D), N > 0; got {tuple(query.shape)} "
                         f"and {tuple(keys.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    logits = F.normalize(query, dim=1) @ F.normalize(keys, dim=1).T / temperature
    return F.cross_entropy(logits, torch.arange(len(query), device=query.device))

def bce_with_logits(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean binary cross-entropy of ``sigmoid(logits)`` against 0/1 ``labels``, computed stably (Chapter 7).

    ``-[y log σ(z) + (1 - y) log(1 - σ(z))] = softplus(z) - y z = max(z, 0) - y z + log(1 + e^{-|z|})``.
    """
    return (logits.clamp(min=0) - labels * logits + torch.log1p(torch.exp(-logits.abs()))).mean()


def bce_grad(logits: Tensor, labels: Tensor) -> Tensor:
    """The gradient of :func:`bce_with_logits` with respect to the logits: ``(σ(z) - y) / N`` (Chapter 7)."""
    return (torch.sigmoid(logits) - labels) / logits.numel()
