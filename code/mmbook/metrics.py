"""Metrics from scratch: retrieval (Chapter 6) and binary classification (Chapter 7).

Binary: :func:`binary_metrics` (accuracy, precision, recall, F1), :func:`roc_curve`, :func:`roc_auc`,
:func:`auc_trapezoid` and :func:`best_threshold`; the matching chapter checks them against scikit-learn.

Retrieval: recall at k and mean average precision.
Structure of an embedding: :func:`eta_squared`, the share of the variance that a grouping explains (Chapters 6
and 8).
A retrieval run is a similarity matrix ``(Q, G)``: one row per query, one column per gallery item. The
right answers are given either as one gallery index per query (``targets``, ``(Q,)``) or as a boolean
relevance matrix ``(Q, G)`` when a query can have several right answers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
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

def _binary(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).astype(int).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape or y.size == 0:
        raise ValueError(f"labels and scores must be non-empty and of one length, got {y.size} and {s.size}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    return y, s


def binary_metrics(labels: Any, predictions: Any) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of 0/1 ``predictions`` against 0/1 ``labels`` (Chapter 7).

    ``precision = TP / (TP + FP)``, ``recall = TP / (TP + FN)``, ``F1 = 2 P R / (P + R)``; a ratio whose
    denominator is zero is reported as 0, as scikit-learn does with ``zero_division=0``.
    """
    y, p = _binary(labels, predictions)
    if not np.isin(p, (0, 1)).all():
        raise ValueError("predictions must be 0 or 1; threshold the scores first")
    tp = int(((p == 1) & (y == 1)).sum())
    fp = int(((p == 1) & (y == 0)).sum())
    fn = int(((p == 0) & (y == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": float((p == y).mean()), "precision": precision, "recall": recall, "f1": f1}


def roc_curve(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct threshold, highest first, and the thresholds (Chapter 7).

    Predicting "match" when ``score >= t``: the curve starts at (0, 0) with ``t = inf`` and ends at (1, 1).
    Tied scores move the curve diagonally, in one step.
    """
    y, s = _binary(labels, scores)
    positives, negatives = y.sum(), (1 - y).sum()
    if positives == 0 or negatives == 0:
        raise ValueError("an ROC curve needs both positive and negative labels")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last index of each run of equal scores
    tps = np.cumsum(y)[last]
    fps = (last + 1) - tps
    return np.r_[0, fps / negatives], np.r_[0, tps / positives], np.r_[np.inf, s[last]]


def auc_trapezoid(x: np.ndarray, y: np.ndarray) -> float:
    """Area under the curve through the points ``(x, y)`` by the trapezoidal rule (Chapter 7)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


def roc_auc(labels: Any, scores: Any) -> float:
    """``P(score of a random positive > score of a random negative)``, ties counting one half (Chapter 7).

    Computed from ranks (the Mann–Whitney statistic): with average ranks ``r`` of the scores,
    ``AUC = (Σ_{positives} r - n₊ (n₊ + 1) / 2) / (n₊ n₋)``. It equals the area under :func:`roc_curve`.
    """
    y, s = _binary(labels, scores)
    positives, negatives = int(y.sum()), int((1 - y).sum())
    if positives == 0 or negatives == 0:
        raise ValueError("AUC needs both positive and negative labels")
    order = np.argsort(s, kind="stable")
    ranks = np.empty(len(s))
    sorted_scores = s[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(s)]
    for a, b in zip(starts, ends, strict=True):
        ranks[order[a:b]] = (a + b + 1) / 2  # the average of ranks a + 1 … b
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def best_threshold(labels: Any, scores: Any) -> float:
    """The threshold ``t`` that maximises the accuracy of ``score >= t``, midway between scores (Chapter 7).

    Choose it on the validation set, then apply it unchanged to the test set.
    """
    y, s = _binary(labels, scores)
    candidates = np.unique(s)
    cuts = np.r_[candidates[0] - 1, (candidates[1:] + candidates[:-1]) / 2, candidates[-1] + 1]
    accuracy = [((s >= t) == y).mean() for t in cuts]
    return float(cuts[int(np.argmax(accuracy))])



def eta_squared(points: Any, labels: Any) -> float:
    """The correlation ratio: the share of the total squared spread of ``points`` ``(N, D)`` around their mean
    that the means of the groups named by ``labels`` ``(N,)`` explain, between 0 and 1 (Chapters 6 and 8).

    Between-group sum of squares ``sum_g n_g |mean_g - mean|^2`` over the total ``sum_i |x_i - mean|^2``.
    """
    x = np.asarray(points, dtype=np.float64)
    groups = np.asarray(labels)
    if x.ndim != 2 or len(groups) != len(x):
        raise ValueError(f"eta_squared needs points (N, D) and N labels, not {x.shape} and {groups.shape}")
    centre = x.mean(0)
    between = sum((groups == g).sum() * ((x[groups == g].mean(0) - centre) ** 2).sum() for g in np.unique(groups))
    return float(between / ((x - centre) ** 2).sum())
