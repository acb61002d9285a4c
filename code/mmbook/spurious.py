"""Spurious correlations in the shapes world: a shape classifier trained where colour predicts the shape,
its worst group, and the importance-weighted remedy (Chapter 14).

:func:`group_pictures` draws one-shape pictures of chosen (shape, colour) groups; :func:`correlated_counts`
says how many of each group a training set with a given correlation holds; :func:`group_weights` gives the
importance weights that turn the training loss into the group-balanced loss; :func:`train_shape_classifier`
trains :func:`new_classifier` with plain, importance-weighted or group-balanced batches and records the
accuracy of each test group as it trains (:class:`Run`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmbook.baselines import thumbnail
from mmbook.data.render import render_images
from mmbook.data.world import COLORS, SHAPE_KINDS, SIZES
from mmbook.env import training_state

#: How a training run treats the groups: as they come, weighted by :func:`group_weights`, or sampled evenly.
MODES: tuple[str, ...] = ("plain", "reweight", "balanced")


def group_pictures(groups: Sequence[tuple[str, str]], counts: Sequence[int], seed: int,
                   image_size: int = 32) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``counts[g]`` one-shape pictures of each (shape, colour) ``groups[g]``, rendered as
    :func:`~mmbook.data.make_shapes` renders them (random size and cell, colour and background jitter),
    shuffled; returns uint8 pictures N×H×W×3 and the group index of each (Chapter 14)."""
    if len(groups) != len(counts) or any(c < 0 for c in counts) or sum(counts) == 0:
        raise ValueError(f"need one non-negative count per group and at least one picture, got {list(counts)}")
    unknown = [g for g in groups if g[0] not in SHAPE_KINDS or g[1] not in COLORS]
    if unknown:
        raise ValueError(f"unknown (shape, colour) groups {unknown}")
    rng = np.random.default_rng(seed)
    group = rng.permutation(np.repeat(np.arange(len(groups)), counts))
    n = len(group)
    kinds = np.array([SHAPE_KINDS.index(groups[g][0]) for g in group])
    palette = np.array([COLORS[groups[g][1]] for g in group], np.float32)
    cells, sizes = rng.integers(9, size=n), rng.integers(len(SIZES), size=n)
    mask_index = ((kinds * len(SIZES) + sizes) * 9 + cells)[:, None]
    rgb = (palette + rng.uniform(-12, 12, (n, 3)).astype(np.float32))[:, None]
    background = rng.uniform(15, 45, n).astype(np.float32)
    return render_images(rng, mask_index, rgb, background, image_size), group


def correlated_counts(n: int, correlation: float) -> list[int]:
    """Counts of the four groups (class 0 with attribute 0, class 0 with 1, class 1 with 0, class 1 with 1)
    of ``n`` training pictures, balanced classes, where the attribute equals the class with probability
    ``correlation`` (Chapter 14)."""
    if not 0 <= correlation <= 1:
        raise ValueError(f"correlation must be between 0 and 1, got {correlation!r}")
    major = round(n / 2 * correlation)
    minor = n // 2 - major
    return [major, minor, minor, major]


def group_weights(group: Tensor | np.ndarray, n_groups: int) -> Tensor:
    """Per-example importance weights ``w_i = (1 / G) / p̂(g_i)``, with ``p̂`` each group's share of the
    examples: the weighted mean loss equals the mean over groups of each group's mean loss (Chapter 14)."""
    g = torch.as_tensor(group).long()
    if g.ndim != 1 or len(g) == 0 or int(g.min()) < 0 or int(g.max()) >= n_groups:
        raise ValueError(f"group must be a non-empty vector of indices from 0 to {n_groups - 1}")
    share = torch.bincount(g, minlength=n_groups).double() / len(g)
    return (1.0 / n_groups / share[g]).float()


def features(images: np.ndarray) -> Tensor:
    """uint8 pictures N×32×32×3 → float N×768: 16×16 colour thumbnails in [0, 1] (Chapter 14)."""
    return torch.from_numpy(thumbnail(images, block=2))


def new_classifier(classes: int = 2, hidden: int = 64) -> nn.Module:
    """The small classifier: a multilayer perceptron on :func:`features` (Chapter 14)."""
    return nn.Sequential(nn.Linear(16 * 16 * 3, hidden), nn.ReLU(), nn.Linear(hidden, classes))


@dataclass
class Run:
    """A training run of :func:`train_shape_classifier`: the model, and the accuracy of each test group
    after each of ``steps`` (one row per evaluation)."""

    model: nn.Module
    steps: list[int]
    group_accuracy: np.ndarray

    @property
    def worst(self) -> np.ndarray:
        """The worst group's accuracy at each evaluation."""
        return self.group_accuracy.min(1)

    @property
    def average(self) -> np.ndarray:
        """The mean accuracy over groups (the accuracy on a group-balanced test set) at each evaluation."""
        return self.group_accuracy.mean(1)


def train_shape_classifier(
    images: np.ndarray, labels: np.ndarray, group: np.ndarray, n_groups: int,
    test: tuple[np.ndarray, np.ndarray, np.ndarray], *, mode: str = "plain", steps: int = 600,
    batch_size: int = 128, lr: float = 3e-3, eval_every: int = 50, seed: int = 0,
) -> Run:  # fmt: skip
    """Train :func:`new_classifier` on ``images`` and ``labels`` and measure it on ``test`` (pictures, labels,
    groups) every ``eval_every`` steps (Chapter 14). ``mode``: ``"plain"`` (uniform batches, mean loss),
    ``"reweight"`` (uniform batches, loss weighted by :func:`group_weights`) or ``"balanced"`` (each example
    drawn with probability proportional to its weight: every group equally often). Leaves the caller's
    random state and thread count as they were."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    x, y = features(images), torch.as_tensor(labels).long()
    weights = group_weights(group, n_groups)
    test_x, test_y, test_group = features(test[0]), np.asarray(test[1]), np.asarray(test[2])
    history, evaluated = [], []
    with training_state(threads=1):
        torch.manual_seed(seed)
        model = new_classifier(int(y.max()) + 1)
        optimiser = torch.optim.Adam(model.parameters(), lr=lr)
        generator = torch.Generator().manual_seed(seed)
        for step in range(1, steps + 1):
            if mode == "balanced":
                rows = torch.multinomial(weights, batch_size, replacement=True, generator=generator)
            else:
                rows = torch.randint(0, len(y), (batch_size,), generator=generator)
            losses = F.cross_entropy(model(x[rows]), y[rows], reduction="none")
            loss = (losses * weights[rows]).mean() if mode == "reweight" else losses.mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if step % eval_every == 0 or step == steps:
                evaluated.append(step)
                history.append(group_accuracy(model, test_x, test_y, test_group, n_groups))
    return Run(model.eval(), evaluated, np.array(history))


@torch.no_grad()
def group_accuracy(model: nn.Module, x: Tensor, labels: np.ndarray, group: np.ndarray,
                   n_groups: int) -> np.ndarray:  # fmt: skip
    """Accuracy of ``model`` on the :func:`features` ``x`` of each group, in group order (Chapter 14)."""
    right = model(x).argmax(1).numpy() == np.asarray(labels)
    return np.array([right[np.asarray(group) == g].mean() for g in range(n_groups)])
