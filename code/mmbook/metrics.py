"""Retrieval metrics: recall at k and mean average precision (Chapter 6).

A retrieval run is a similarity matrix ``(Q, G)``: one row per query, one column per gallery item. The
right answers are given either as one gallery index per query (``targets``, ``(Q,)``) or as a boolean
relevance matrix ``(Q, G)`` when a query can have several right answers.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _relevance(similarity: Tensor, targets: Tensor) -> Tensor:
    if similarity.dim() != 2 or 0 in similarity.shape:
        raise ValueError(f"expected a non-empty similarity matrix (Q, G); got shape {tuple(similarity.shape)}")
    q, g = similarity.shape
    if targets.dtype == torch.bool:
        if targets.shape != similarity.shape:
            raise ValueError(f"a relevance matrix must have the similarity's shape ({q}, {g}); "
                             f"got {tuple(targets.shape)}")
        return targets
    if targets.shape != (q,):
        raise ValueError(f"targets must hold one gallery index per query, shape ({q},); got {tuple(targets.shape)}")
    if targets.min() < 0 or targets.max() >= g:
        raise ValueError(f"targets must be gallery indices from 0 to {g - 1}")
    relevance = torch.zeros(q, g, dtype=torch.bool, device=similarity.device)
    relevance[torch.arange(q), targets] = True
    return relevance


def recall_at_k(similarity: Tensor, targets: Tensor, k: int = 1) -> float:
    """Share of queries with a right answer among their ``k`` most similar gallery items (Chapter 6).

    Ties among the scores are broken as ``torch.topk`` breaks them.
    """
    relevance = _relevance(similarity, targets)
    if not 1 <= k <= similarity.shape[1]:
        raise ValueError(f"k must be between 1 and the gallery size {similarity.shape[1]}; got {k}")
    top = similarity.topk(k, dim=1).indices
    return relevance.gather(1, top).any(dim=1).float().mean().item()


def mean_average_precision(similarity: Tensor, targets: Tensor) -> float:
    """Mean over queries of the average precision of the ranking of the gallery (Chapter 6).

    For one query with relevant items at ranks ``r_1 < r_2 < …`` the average precision is
    ``mean_m (m / r_m)``; queries without a relevant item are left out.
    """
    relevance = _relevance(similarity, targets)
    order = similarity.argsort(dim=1, descending=True, stable=True)
    hits = relevance.gather(1, order).float()
    ranks = torch.arange(1, hits.shape[1] + 1, device=hits.device)
    precision = hits.cumsum(1) / ranks
    count = hits.sum(1)
    keep = count > 0
    if not keep.any():
        raise ValueError("no query has a relevant gallery item")
    return ((precision * hits).sum(1)[keep] / count[keep]).mean().item()
