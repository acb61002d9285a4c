"""A fusion method inside a classifier, and its training loop (Chapter 5).

:class:`FusionClassifier` puts one method of :data:`mmbook.fusion.METHODS` between a picture encoder, a
sentence encoder and a head; :func:`train_fusion` trains it, optionally with modality dropout
(:func:`drop_modalities`); :func:`predict` reads its answers. The chapter's benchmark
(:mod:`mmbook.experiments.fusion_bench`) calls them for every method.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmbook.env import training_state
from mmbook.fusion import FUSIONS, METHODS

if TYPE_CHECKING:
    from mmbook.experiments.fusion_bench import FusionTask


POOLINGS: tuple[str, ...] = ("flatten", "mean")
"""How :class:`FusionClassifier` pools the picture's tokens for every method but cross-attention (Chapter 5)."""


class FusionClassifier(nn.Module):
    """Picture encoder + sentence encoder + one fusion method + classifier head (Chapter 5).

    Every method gets the same inputs: the picture's ``L`` region tokens (each region embedded to ``dim``
    numbers plus a learned position) and the sentence's vector (its mean word vector through a layer).
    Cross-attention fuses the tokens (the sentence queries them); every other method first pools them into
    one vector, with ``pool="flatten"`` (the tokens concatenated through one linear layer, ``Σ_j A_j r_j``:
    a matrix per position, so where each feature sits is kept) or ``pool="mean"`` (their mean through a
    layer). The fusion of :data:`FUSIONS` makes ``hidden`` numbers for the same two-layer head; ``"late"``
    gives each modality its own head and adds their logits. ``forward(grid, words, mask)`` returns logits;
    ``mask`` is ``(B, 2)``, True where the picture (column 0) and the sentence (column 1) are present.
    """

    def __init__(self, method: str, regions: int, region_dim: int, vocab_size: int, n_classes: int,
                 *, dim: int = 32, hidden: int = 64, pool: str = "flatten", **options: object) -> None:
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
        if pool not in POOLINGS:
            raise ValueError(f"pool must be one of {', '.join(POOLINGS)}; got {pool!r}")
        self.method, self.pool = method, pool
        self.region = nn.Sequential(nn.Linear(region_dim, dim), nn.GELU())
        self.position = nn.Parameter(torch.randn(regions, dim) * 0.1)
        width = regions * dim if pool == "flatten" else dim
        self.picture = None if method == "cross-attention" else nn.Sequential(nn.Linear(width, dim), nn.GELU())
        self.embed = nn.Embedding(vocab_size + 1, dim, padding_idx=0)
        self.sentence = nn.Sequential(nn.Linear(dim, dim), nn.GELU())

        def head(width: int) -> nn.Module:
            return nn.Sequential(nn.LayerNorm(width), nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, n_classes))

        if method == "late":
            self.fusion = None
            self.heads = nn.ModuleList([head(dim), head(dim)])
        else:
            if method == "cross-attention":
                options = {"query": 1, **options}
            self.fusion = FUSIONS[method]([dim, dim], hidden, **options)
            self.head = head(hidden)

    def encode(self, grid: Tensor, words: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:
        """The picture's tokens ``(B, L, dim)``, its pooled vector (None for cross-attention), the sentence's."""
        tokens = self.region(grid) + self.position
        present = (words > 0).float()
        bag = (self.embed(words) * present[..., None]).sum(1) / present.sum(1, keepdim=True).clamp(min=1)
        if self.picture is None:
            return tokens, None, self.sentence(bag)
        pooled = tokens.flatten(1) if self.pool == "flatten" else tokens.mean(1)
        return tokens, self.picture(pooled), self.sentence(bag)

    def forward(self, grid: Tensor, words: Tensor, mask: Tensor | None = None) -> Tensor:
        tokens, picture, sentence = self.encode(grid, words)
        if self.fusion is None:
            keep = torch.ones(len(grid), 2) if mask is None else mask.float()
            return self.heads[0](picture) * keep[:, :1] + self.heads[1](sentence) * keep[:, 1:]
        first = tokens if picture is None else picture
        return self.head(self.fusion(first, sentence, mask=mask))


def drop_modalities(batch: int, rate: float, generator: torch.Generator) -> Tensor:
    """``(batch, 2)`` presence mask for modality dropout (Chapter 5).

    Each row loses one of its two modalities, chosen at random, with probability ``rate``; never both.
    """
    mask = torch.ones(batch, 2, dtype=torch.bool)
    drop = torch.rand(batch, generator=generator) < rate
    which = torch.randint(0, 2, (batch,), generator=generator)
    mask[drop, which[drop]] = False
    return mask


def train_fusion(method: str, task: FusionTask, train: np.ndarray, *, steps: int = 600, batch_size: int = 128,
                 lr: float = 3e-3, seed: int = 0, modality_dropout: float = 0.0,
                 present: tuple[bool, bool] = (True, True), progress: bool = True,
                 **options: object) -> tuple[FusionClassifier, list[float], float]:
    """Train a :class:`FusionClassifier` on the samples ``train`` of ``task`` (Chapter 5).

    Returns the model, its training losses and the training time in seconds. AdamW (fused) at learning
    rate ``lr`` with a cosine decay, ``steps`` minibatches of ``batch_size``, drawn with ``seed``.
    ``modality_dropout`` is the probability that a training example loses one of its modalities;
    ``present`` masks a modality out of every example (``(True, False)``: a picture-only model).
    ``options`` go to :class:`FusionClassifier`. Runs on one CPU thread inside
    :func:`mmbook.env.training_state`, which leaves the caller's random state and thread count as they were.
    """
    from tqdm.auto import tqdm

    generator = torch.Generator().manual_seed(seed)
    rows_all = torch.as_tensor(np.asarray(train))
    losses: list[float] = []
    with training_state(threads=1):
        torch.manual_seed(seed)
        model = FusionClassifier(method, task.grid.shape[1], task.grid.shape[2], len(task.vocabulary),
                                 len(task.classes), **options)
        optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4, fused=True)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
        start = time.perf_counter()
        model.train()
        for _ in tqdm(range(steps), desc=f"training {method}", leave=False, disable=not progress):
            rows = rows_all[torch.randint(0, len(rows_all), (batch_size,), generator=generator)]
            mask = drop_modalities(batch_size, modality_dropout, generator) if modality_dropout > 0 else None
            if not all(present):
                mask = torch.tensor([present]).expand(batch_size, 2)
            loss = F.cross_entropy(model(task.grid[rows], task.words[rows], mask), task.labels[rows])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(loss.item())
    return model.eval(), losses, time.perf_counter() - start


@torch.no_grad()
def predict(model: FusionClassifier, task: FusionTask, rows: np.ndarray, mask: Tensor | None = None) -> Tensor:
    """Predicted class indices for the samples ``rows`` of ``task``; ``mask`` ``(len(rows), 2)`` (Chapter 5)."""
    model.eval()
    rows = torch.as_tensor(np.asarray(rows))
    return model(task.grid[rows], task.words[rows], mask).argmax(1)

