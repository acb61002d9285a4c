"""Knowledge distillation of a contrastive model: a small CLIP taught by the tiny CLIP (Chapter 13).

A teacher's image–text similarity matrix holds more than which caption belongs to which picture: it says
how well every other caption of the batch fits too (two scenes that share a red circle score high).
Distillation trains a student on those soft targets, softened by a temperature ``tau``, beside the hard
contrastive loss of Chapter 6.

- :func:`soft_targets_loss`: the KL divergence from the teacher's to the student's softened
  distributions, both directions of the similarity matrix (text→image rows, image→text columns).
- :func:`distillation_loss`: ``alpha * tau**2 * soft + (1 - alpha) * clip_loss``.
- :func:`student_config`: the tiny CLIP's configuration at a fraction of its width, same depth.
- :func:`teacher_embeddings`: the teacher's normalised embeddings of every training pair, computed once.
- :func:`distil_clip`: the training loop (Chapter 6's :func:`~mmbook.contrastive.train_clip` with the
  distillation loss); without a teacher it trains the same student on the hard loss alone.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from mmbook import contrastive
from mmbook.losses import clip_loss

if TYPE_CHECKING:
    from transformers import CLIPConfig, CLIPModel, PreTrainedTokenizerBase


def _check_pair(student_logits: Tensor, teacher_logits: Tensor, tau: float) -> None:
    if student_logits.dim() != 2 or student_logits.shape[0] != student_logits.shape[1]:
        raise ValueError(f"expected a square similarity matrix (N, N), got {tuple(student_logits.shape)}")
    if teacher_logits.shape != student_logits.shape:
        raise ValueError(f"teacher logits {tuple(teacher_logits.shape)} and student logits "
                         f"{tuple(student_logits.shape)} differ in shape")
    if not tau > 0:
        raise ValueError(f"the temperature tau must be positive, got {tau!r}")


def soft_targets_loss(student_logits: Tensor, teacher_logits: Tensor, tau: float) -> Tensor:
    """Mean KL(teacher ‖ student) of the rows and of the columns of ``logits / tau`` (Chapter 13).

    ``logits[i, j]`` scores text ``i`` against picture ``j`` (``logits_per_text``); rows are the
    text→image distributions, columns the image→text ones. The teacher's side carries no gradient.
    """
    _check_pair(student_logits, teacher_logits, tau)
    teacher_logits = teacher_logits.detach()
    total = student_logits.new_zeros(())
    for s, t in ((student_logits, teacher_logits), (student_logits.T, teacher_logits.T)):
        log_q = F.log_softmax(s / tau, dim=1)
        log_p = F.log_softmax(t / tau, dim=1)
        total = total + F.kl_div(log_q, log_p, reduction="batchmean", log_target=True)
    return total / 2


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor, tau: float = 2.0,
                      alpha: float = 0.5) -> Tensor:
    """``alpha * tau**2 * soft_targets_loss + (1 - alpha) * clip_loss(student_logits)`` (Chapter 13).

    The factor ``tau**2`` keeps the soft term's gradient on the same scale for every temperature.
    """
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha weighs the soft term against the hard one and must lie in [0, 1], got {alpha!r}")
    soft = soft_targets_loss(student_logits, teacher_logits, tau)
    return alpha * tau**2 * soft + (1 - alpha) * clip_loss(student_logits)


def student_config(tok: PreTrainedTokenizerBase, width: float = 0.5) -> CLIPConfig:
    """The tiny CLIP's :func:`~mmbook.contrastive.clip_config` with every width (text and vision hidden
    sizes, hence their MLPs, and the embedding) scaled by ``width``; same depth and heads (Chapter 13)."""
    if not 0 < width <= 1:
        raise ValueError(f"width is a fraction of the teacher's width in (0, 1], got {width!r}")
    return contrastive.clip_config(tok, text_hidden=round(64 * width), vision_hidden=round(128 * width),
                                   projection_dim=round(64 * width))


@dataclass(frozen=True)
class TeacherEmbeddings:
    """The teacher's normalised embeddings of the training pairs and its logit scale (Chapter 13)."""

    images: Tensor
    texts: Tensor
    logit_scale: float

    def logits(self, rows: Tensor) -> Tensor:
        """The teacher's ``logits_per_text`` for the pairs ``rows``."""
        return self.logit_scale * self.texts[rows] @ self.images[rows].T


def teacher_embeddings(teacher: CLIPModel, pixel_values: Tensor, input_ids: Tensor,
                       attention_mask: Tensor) -> TeacherEmbeddings:
    """Embed every training pair with the (frozen) teacher once: its similarity matrix of any batch is
    then a product of two slices, as if the teacher ran on that batch (Chapter 13)."""
    return TeacherEmbeddings(images=contrastive.embed_images(teacher, pixel_values),
                             texts=contrastive.embed_texts(teacher, input_ids, attention_mask),
                             logit_scale=teacher.logit_scale.exp().item())


@torch.enable_grad()
def distil_clip(
    student: CLIPModel,
    pixel_values: Tensor,
    input_ids: Tensor,
    attention_mask: Tensor,
    teacher: TeacherEmbeddings | None,
    *,
    tau: float = 2.0,
    alpha: float = 0.5,
    steps: int = 400,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 0.1,
    seed: int = 0,
    progress: bool = True,
) -> contrastive.History:
    """Train ``student`` on (picture, caption) pairs with :func:`distillation_loss` against ``teacher``,
    or with CLIP's loss alone when ``teacher`` is ``None`` (Chapter 13).

    The loop is :func:`~mmbook.contrastive.train_clip`'s: random batches, AdamW with a one-cycle schedule,
    a learned logit scale clamped to :data:`~mmbook.contrastive.MAX_LOGIT_SCALE`.
    """
    from tqdm.auto import tqdm

    if not len(pixel_values) == len(input_ids) == len(attention_mask):
        raise ValueError(f"got {len(pixel_values)} pictures for {len(input_ids)} captions; pass pairs")
    if teacher is not None and len(teacher.images) != len(pixel_values):
        raise ValueError(f"the teacher embedded {len(teacher.images)} pairs, not these {len(pixel_values)}")
    optimiser = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps, pct_start=0.1)
    generator = torch.Generator().manual_seed(seed)
    history = contrastive.History()
    start = time.perf_counter()
    student.train()
    for _ in tqdm(range(steps), desc="distilling CLIP" if teacher else "training CLIP", leave=False,
                  disable=not progress):
        rows = torch.randint(0, len(pixel_values), (batch_size,), generator=generator)
        mask = attention_mask[rows]
        width = int(mask.sum(1).max())
        out = student(input_ids=input_ids[rows, :width], attention_mask=mask[:, :width],
                      pixel_values=pixel_values[rows])
        if teacher is None:
            loss = clip_loss(out.logits_per_text)
        else:
            loss = distillation_loss(out.logits_per_text, teacher.logits(rows), tau, alpha)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        with torch.no_grad():
            student.logit_scale.clamp_(0, math.log(contrastive.MAX_LOGIT_SCALE))
        history.losses.append(loss.item())
        history.logit_scales.append(student.logit_scale.exp().item())
    history.seconds = time.perf_counter() - start
    student.eval()
    return history
