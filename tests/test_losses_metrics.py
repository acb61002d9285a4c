"""mmbook.losses and mmbook.metrics against transformers, scikit-learn and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmbook.losses import clip_loss, info_nce
from mmbook.metrics import mean_average_precision, recall_at_k
from sklearn.metrics import average_precision_score
from transformers.models.clip.modeling_clip import image_text_contrastive_loss


def test_clip_loss_equals_transformers() -> None:
    logits = torch.randn(7, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.allclose(clip_loss(logits), image_text_contrastive_loss(logits))


def test_clip_loss_limits() -> None:
    assert clip_loss(torch.zeros(5, 5)).item() == pytest.approx(math.log(5))
    assert clip_loss(100 * torch.eye(5)).item() < 1e-30


@pytest.mark.parametrize("bad", [torch.zeros(3, 4), torch.zeros(0, 0), torch.zeros(3)])
def test_clip_loss_rejects_non_square(bad) -> None:
    with pytest.raises(ValueError, match="square matrix"):
        clip_loss(bad)


def test_info_nce_and_its_gradient() -> None:
    g = torch.Generator().manual_seed(1)
    q = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(6, 4, generator=g, dtype=torch.float64)
    tau = 0.5
    loss = info_nce(q, k, tau)
    s = F.normalize(q, dim=1) @ F.normalize(k, dim=1).T / tau
    loop = -sum(s[i, i] - torch.logsumexp(s[i], 0) for i in range(6)) / 6
    assert torch.allclose(loss, loop)
    logits = s.detach().requires_grad_()
    F.cross_entropy(logits, torch.arange(6)).backward()
    assert torch.allclose(logits.grad, (torch.softmax(s.detach(), 1) - torch.eye(6, dtype=torch.float64)) / 6)
    with pytest.raises(ValueError, match="same shape"):
        info_nce(q, k[:5])
    with pytest.raises(ValueError, match="temperature"):
        info_nce(q, k, 0.0)


def test_recall_at_k_by_hand() -> None:
    sim = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.7, 0.1], [0.0, 0.5, 0.4]])
    targets = torch.tensor([0, 1, 2])
    assert recall_at_k(sim, targets, 1) == pytest.approx(1 / 3)
    assert recall_at_k(sim, targets, 2) == pytest.approx(1.0)
    relevance = torch.tensor([[True, False, False], [True, True, False], [False, False, True]])
    assert recall_at_k(sim, relevance, 1) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="k must be"):
        recall_at_k(sim, targets, 4)
    with pytest.raises(ValueError, match="one gallery index per query"):
        recall_at_k(sim, torch.tensor([0, 1]), 1)
    with pytest.raises(ValueError, match="gallery indices"):
        recall_at_k(sim, torch.tensor([0, 1, 3]), 1)


def test_mean_average_precision_equals_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    sim = rng.standard_normal((20, 30))
    relevance = rng.random((20, 30)) < 0.2
    relevance[:, 0] = True  # every query has a relevant item
    expected = np.mean([average_precision_score(r, s) for r, s in zip(relevance, sim, strict=True)])
    assert mean_average_precision(torch.from_numpy(sim), torch.from_numpy(relevance)) == pytest.approx(expected)
    one = torch.tensor([[0.1, 0.9, 0.5]])
    assert mean_average_precision(one, torch.tensor([2])) == pytest.approx(1 / 2)
    with pytest.raises(ValueError, match="no query"):
        mean_average_precision(one, torch.zeros(1, 3, dtype=torch.bool))


def test_eta_squared_splits_the_variance() -> None:
    from mmbook.metrics import eta_squared

    rng = np.random.default_rng(0)
    points, labels = rng.normal(size=(90, 4)), rng.choice(["a", "b", "c"], size=90)
    within = sum(((points[labels == g] - points[labels == g].mean(0)) ** 2).sum() for g in "abc")
    total = ((points - points.mean(0)) ** 2).sum()
    assert abs(eta_squared(points, labels) - (1 - within / total)) < 1e-12  # between + within = total
    apart = np.repeat(np.eye(3) * 10, 5, axis=0)
    assert eta_squared(apart, np.repeat(list("abc"), 5)) == pytest.approx(1.0)
    assert eta_squared(np.vstack([apart, apart]), np.repeat(["x", "y"], 15)) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="points \\(N, D\\) and N labels"):
        eta_squared(points, labels[:10])
