"""mmbook.baselines: the Chapter 1 fusion rule and softmax regression, against references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmbook.baselines import SoftmaxRegression, late_fusion, softmax, softmax_regression_grad
from sklearn.linear_model import LogisticRegression


def test_late_fusion_equals_the_exact_posterior_under_conditional_independence() -> None:
    rng = np.random.default_rng(1)
    prior = rng.dirichlet(np.ones(3))
    pa, pb = rng.dirichlet(np.ones(4), size=3), rng.dirichlet(np.ones(2), size=3)
    joint = prior[:, None, None] * pa[:, :, None] * pb[:, None, :]
    exact = joint / joint.sum(axis=0, keepdims=True)
    post_a = joint.sum(axis=2) / joint.sum(axis=(0, 2))
    post_b = joint.sum(axis=1) / joint.sum(axis=(0, 1))
    for a in range(4):
        for b in range(2):
            fused = late_fusion(post_a[:, [a]].T, post_b[:, [b]].T, prior=prior)[0]
            assert np.allclose(fused, exact[:, a, b])


def test_late_fusion_of_one_modality_is_itself() -> None:
    p = softmax(np.random.default_rng(0).normal(size=(5, 4)))
    assert np.allclose(late_fusion(p, prior=np.full(4, 0.25)), p)


def test_gradient_matches_autograd() -> None:
    torch.manual_seed(0)
    x = torch.randn(16, 7, dtype=torch.float64)
    y = torch.randint(0, 4, (16,))
    w = torch.randn(4, 7, dtype=torch.float64, requires_grad=True)
    c = torch.randn(4, dtype=torch.float64, requires_grad=True)
    F.cross_entropy(x @ w.T + c, y).backward()
    gw, gc = softmax_regression_grad(x.numpy(), y.numpy(), w.detach().numpy(), c.detach().numpy())
    assert np.allclose(gw, w.grad.numpy()) and np.allclose(gc, c.grad.numpy())


def test_scratch_regression_agrees_with_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 5)) * 3
    y = rng.integers(0, 3, 300)
    x = centres[y] + rng.normal(size=(300, 5))
    ours = SoftmaxRegression(l2=1e-2, lr=0.5, epochs=10_000).fit(x, y)
    theirs = LogisticRegression(C=1 / (1e-2 * len(y)), max_iter=5000, tol=1e-10).fit(x, y)
    assert np.allclose(ours.predict_proba(x), theirs.predict_proba(x), atol=1e-3)


def test_thumbnail_is_the_mean_of_each_block() -> None:
    from mmbook.baselines import thumbnail

    images = np.random.default_rng(0).integers(0, 256, size=(3, 8, 12, 3), dtype=np.uint8)
    thumbs = thumbnail(images, block=4)
    assert thumbs.shape == (3, 2 * 3 * 3) and thumbs.dtype == np.float32
    corner = images[1, 4:8, 8:12].astype(np.float64).mean(axis=(0, 1)) / 255  # block (1, 2) of picture 1
    np.testing.assert_allclose(thumbs[1].reshape(2, 3, 3)[1, 2], corner, rtol=1e-6)
    with pytest.raises(ValueError, match="multiples of block=5"):
        thumbnail(images, block=5)
