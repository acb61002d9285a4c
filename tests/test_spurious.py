"""Chapter 14's spurious-correlation harness: groups, counts, importance weights, training modes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mmbook import spurious
from mmbook.data.world import COLORS

GROUPS = [("triangle", "red"), ("triangle", "blue"), ("cross", "red"), ("cross", "blue")]


def test_correlated_counts() -> None:
    assert spurious.correlated_counts(2000, 0.95) == [950, 50, 50, 950]
    assert spurious.correlated_counts(100, 0.5) == [25, 25, 25, 25]
    with pytest.raises(ValueError, match="correlation"):
        spurious.correlated_counts(100, 1.5)


def test_group_pictures_draw_the_groups_asked_for() -> None:
    images, group = spurious.group_pictures(GROUPS, [5, 0, 3, 2], seed=0)
    assert images.shape == (10, 32, 32, 3) and images.dtype == np.uint8
    assert np.bincount(group, minlength=4).tolist() == [5, 0, 3, 2]
    for picture, g in zip(images, group, strict=True):
        bright = picture.reshape(-1, 3)[picture.reshape(-1, 3).max(1) > 120].mean(0)
        nearest = min(COLORS, key=lambda c: np.abs(np.array(COLORS[c]) - bright).sum())
        assert nearest == GROUPS[g][1]
    again, _ = spurious.group_pictures(GROUPS, [5, 0, 3, 2], seed=0)
    assert np.array_equal(images, again)
    with pytest.raises(ValueError, match="unknown"):
        spurious.group_pictures([("blob", "red")], [1], seed=0)


def test_weighted_mean_is_the_group_balanced_mean() -> None:
    rng = np.random.default_rng(0)
    group = torch.tensor(rng.integers(0, 3, 500))
    losses = torch.tensor(rng.random(500))
    w = spurious.group_weights(group, 3).double()
    balanced = torch.stack([losses[group == k].mean() for k in range(3)]).mean()
    assert torch.allclose((w * losses).mean(), balanced)
    with pytest.raises(ValueError, match="indices"):
        spurious.group_weights(torch.tensor([0, 3]), 3)


def test_training_modes_and_random_state() -> None:
    images, group = spurious.group_pictures(GROUPS, [40, 40, 40, 40], seed=1)
    label = np.array([0, 0, 1, 1])[group]
    state = torch.get_rng_state()
    run = spurious.train_shape_classifier(images, label, group, 4, (images, label, group),
                                          mode="balanced", steps=60, eval_every=20)
    assert torch.equal(state, torch.get_rng_state())
    assert run.steps == [20, 40, 60] and run.group_accuracy.shape == (3, 4)
    assert run.average[-1] > 0.75  # trained on these pictures: far above chance
    assert np.allclose(run.worst, run.group_accuracy.min(1))
    with pytest.raises(ValueError, match="mode"):
        spurious.train_shape_classifier(images, label, group, 4, (images, label, group), mode="dro")
