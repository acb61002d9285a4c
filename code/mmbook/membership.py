"""Membership inference by a loss threshold, on a small classifier (Chapter 14).

A model is trained on a set of *members*; an attacker who can read the model's loss on a record guesses
"member" when the loss is below a threshold (Yeom et al., 2018). Over all thresholds, the attack's ROC
area is the probability that a member's loss is below a non-member's (:func:`pairwise_auc`), and its best
single threshold gains ``TPR - FPR`` over guessing (:func:`advantage`).

:func:`noisy_digits` is the task: scikit-learn's handwritten digits (Chapter 1) with Gaussian pixel
noise, so that a model which memorises its training set cannot also get every unseen digit right.
:func:`train_classifier` trains a small MLP on it, over-trained or regularised as
:class:`ClassifierSettings` says; :func:`example_losses` gives the per-record losses the attack reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from mmbook.env import training_state


def pairwise_auc(member_losses: np.ndarray, nonmember_losses: np.ndarray) -> float:
    """The ROC area of the loss-threshold attack, counted pair by pair: the share of (member, non-member)
    pairs in which the member's loss is lower, ties counting one half (Chapter 14)."""
    m = np.asarray(member_losses, dtype=np.float64)[:, None]
    n = np.asarray(nonmember_losses, dtype=np.float64)[None, :]
    if m.size == 0 or n.size == 0:
        raise ValueError("both sets of losses must be non-empty")
    return float((m < n).mean() + 0.5 * (m == n).mean())


def advantage(member_losses: np.ndarray, nonmember_losses: np.ndarray, threshold: float) -> float:
    """Membership advantage of the guess "member when the loss is at most ``threshold``": the true-positive
    rate on members minus the false-positive rate on non-members (Yeom et al.'s measure; Chapter 14)."""
    tpr = float(np.mean(np.asarray(member_losses) <= threshold))
    fpr = float(np.mean(np.asarray(nonmember_losses) <= threshold))
    return tpr - fpr


@dataclass(frozen=True)
class DigitsTask:
    """Members (training records) and non-members (records from the same distribution, never trained on)."""

    x_members: Tensor
    y_members: Tensor
    x_nonmembers: Tensor
    y_nonmembers: Tensor


def noisy_digits(n_members: int = 300, noise: float = 0.5, seed: int = 0) -> DigitsTask:
    """``n_members`` members and as many non-members, drawn without overlap from scikit-learn's 1,797
    digits (pixels in [0, 1]) with Gaussian noise of standard deviation ``noise`` added and clipped
    (Chapter 14)."""
    from sklearn.datasets import load_digits

    raw = load_digits()
    if not 0 < 2 * n_members <= len(raw.target):
        raise ValueError(f"n_members must be between 1 and {len(raw.target) // 2}, got {n_members}")
    rng = np.random.default_rng(seed)
    pixels = np.clip(raw.data / 16 + noise * rng.standard_normal(raw.data.shape), 0, 1)
    order = rng.permutation(len(raw.target))
    x = torch.tensor(pixels, dtype=torch.float32)
    y = torch.tensor(raw.target, dtype=torch.long)
    members, nonmembers = order[:n_members], order[n_members : 2 * n_members]
    return DigitsTask(x[members], y[members], x[nonmembers], y[nonmembers])


@dataclass(frozen=True)
class ClassifierSettings:
    """A one-hidden-layer MLP trained full-batch with Adam; ``l2`` adds ``l2 * ||w||^2 / 2`` to the loss
    through Adam's (coupled) weight decay (Chapter 14)."""

    hidden: int = 256
    steps: int = 150
    lr: float = 1e-2
    l2: float = 0.0
    seed: int = 0


#: Trained to a training loss near zero: it memorises its members.
OVERTRAINED = ClassifierSettings()
#: The same network and steps with a strong L2 penalty.
REGULARISED = ClassifierSettings(l2=0.1)


def train_classifier(x: Tensor, y: Tensor, settings: ClassifierSettings) -> nn.Module:
    """The MLP of ``settings`` trained on ``(x, y)`` (Chapter 14). Deterministic; the caller's random
    state and thread count are left as they were."""
    s = settings
    with training_state():
        torch.manual_seed(s.seed)
        model = nn.Sequential(nn.Linear(x.shape[1], s.hidden), nn.ReLU(), nn.Linear(s.hidden, int(y.max()) + 1))
        optimiser = torch.optim.Adam(model.parameters(), lr=s.lr, weight_decay=s.l2)
        with torch.enable_grad():
            for _ in range(s.steps):
                loss = nn.functional.cross_entropy(model(x), y)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
    return model.eval()


@torch.no_grad()
def example_losses(model: nn.Module, x: Tensor, y: Tensor) -> np.ndarray:
    """The cross-entropy of each record: what the attacker reads (Chapter 14)."""
    return nn.functional.cross_entropy(model(x), y, reduction="none").numpy()


def tpr_at_fpr(member_losses: np.ndarray, nonmember_losses: np.ndarray, fpr: float) -> float:
    """The share of members caught by the strictest threshold that flags at most ``fpr`` of the
    non-members: the low-false-positive view of an attack that Carlini et al. (2022) argue for (Chapter 14)."""
    if not 0 <= fpr < 1:
        raise ValueError(f"fpr must be in [0, 1), got {fpr!r}")
    members, nonmembers = np.asarray(member_losses), np.sort(np.asarray(nonmember_losses))
    allowed = int(np.floor(fpr * len(nonmembers)))  # non-members that may fall below the threshold
    threshold = nonmembers[allowed]  # flag losses strictly below it
    return float(np.mean(members < threshold))
