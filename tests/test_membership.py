"""The loss-threshold membership attack of Chapter 14: its ROC area counted by pairs, its advantage, the
task and the two classifiers it is run against."""

from dataclasses import replace

import numpy as np
import pytest
from mmbook import membership as mb
from sklearn.metrics import roc_auc_score


def test_pairwise_auc_equals_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    members = np.round(rng.exponential(0.5, 200), 1)  # rounded: many ties
    nonmembers = np.round(rng.exponential(1.0, 150), 1)
    labels = np.r_[np.ones(len(members)), np.zeros(len(nonmembers))]
    expected = roc_auc_score(labels, -np.r_[members, nonmembers])
    assert mb.pairwise_auc(members, nonmembers) == pytest.approx(expected, abs=1e-12)


def test_pairwise_auc_limits() -> None:
    assert mb.pairwise_auc(np.zeros(5), np.ones(7)) == 1.0
    assert mb.pairwise_auc(np.ones(5), np.zeros(7)) == 0.0
    assert mb.pairwise_auc(np.full(4, 0.3), np.full(6, 0.3)) == 0.5
    with pytest.raises(ValueError, match="non-empty"):
        mb.pairwise_auc(np.array([]), np.ones(3))


def test_advantage_and_tpr_at_fpr() -> None:
    members, nonmembers = np.array([0.1, 0.2, 0.3, 0.9]), np.array([0.25, 0.8, 1.0, 2.0])
    assert mb.advantage(members, nonmembers, 0.3) == pytest.approx(0.75 - 0.25)
    assert mb.tpr_at_fpr(members, nonmembers, 0.0) == pytest.approx(0.5)  # below 0.25: two members
    assert mb.tpr_at_fpr(members, nonmembers, 0.25) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="fpr"):
        mb.tpr_at_fpr(members, nonmembers, 1.0)


def test_noisy_digits_members_and_nonmembers_are_disjoint() -> None:
    task = mb.noisy_digits(n_members=50, noise=0.0)
    assert task.x_members.shape == (50, 64) and task.x_nonmembers.shape == (50, 64)
    rows = {tuple(r) for r in task.x_members.numpy().round(4)}
    assert not any(tuple(r) in rows for r in task.x_nonmembers.numpy().round(4))
    with pytest.raises(ValueError, match="n_members"):
        mb.noisy_digits(n_members=1000)


def test_overtrained_model_leaks_more_than_regularised() -> None:
    task = mb.noisy_digits(n_members=100)
    aucs = {}
    small = {"hidden": 64, "steps": 60}
    for name, settings in [("over", replace(mb.OVERTRAINED, **small)), ("reg", replace(mb.REGULARISED, **small))]:
        model = mb.train_classifier(task.x_members, task.y_members, settings)
        aucs[name] = mb.pairwise_auc(mb.example_losses(model, task.x_members, task.y_members),
                                     mb.example_losses(model, task.x_nonmembers, task.y_nonmembers))
    assert aucs["over"] > aucs["reg"] + 0.1, aucs
