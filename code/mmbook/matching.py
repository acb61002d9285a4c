"""Image–text matching end to end: fusion models over words and patches, and their training (Chapter 7).

The task: given a picture and a caption, say whether the caption describes the picture. The pairs, with
their hard negatives, are made by :mod:`mmbook.data.pairs`; this module holds the models and the loop.

- :class:`FusionMatcher`: the part every matcher shares. A ``[CLS]`` token, the caption's tokens and the
  nine patches go into one stack of Chapter 4's pre-norm :class:`~mmbook.attention.TransformerBlock`;
  a linear head turns ``[CLS]``'s final feature into the logit of "match", a second head predicts
  hidden words. Subclasses say how words and patches become the stack's input (:meth:`embed`).
- :class:`SingleStreamMatcher`: ViLT-style (Kim et al. 2021), from scratch: word and patch embeddings,
  each with a position and a modality-type embedding.
- :class:`AlignedMatcher`: align before fuse (ALBEF, Li et al. 2021): the frozen towers of Chapter 6's
  tiny CLIP give every word and every patch a contrastively trained feature, which a linear map per
  modality brings to the fusion width.
- :func:`train_matcher`: AdamW with warm-up and cool-down, the masked-word objective
  (:func:`~mmbook.data.pairs.mask_content_words`), early stopping on the validation loss.

The loss (:func:`mmbook.losses.bce_with_logits`) and the evaluation (:func:`mmbook.metrics.binary_metrics`,
:func:`~mmbook.metrics.roc_auc`, ...) live with the other losses and metrics; the book's trained matchers
and their settings live in :mod:`mmbook.experiments.book_matcher`.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmbook.attention import TransformerBlock
from mmbook.data.pairs import (
    IMAGE_SIZE,
    MAX_TOKENS,
    N_PATCHES,
    PATCH_SIZE,
    PairTensors,
    mask_content_words,
    pixels,
    tokenize,
)
from mmbook.encoders import PatchEmbedding
from mmbook.env import training_state
from mmbook.losses import bce_with_logits

#: Token types: 0 for text (and ``[CLS]``), 1 for image patches.
TEXT_TYPE, IMAGE_TYPE = 0, 1

# ----------------------------------------------------------------------------------------------------
# Steps 2-6: one Transformer over both modalities, a matching head and a masked-word head


@dataclass
class MatchOutput:
    """What a :class:`FusionMatcher` returns (Chapter 7).

    ``logits`` ``(B,)`` of "match"; ``hidden`` ``(B, 1 + L + 9, dim)``, the final features of the sequence
    ``[CLS], L text tokens, 9 patches``; ``attentions``, every layer's weights ``(B, H, 1 + L + 9, 1 + L + 9)``.
    """

    logits: Tensor
    hidden: Tensor
    attentions: list[Tensor]
    text_length: int

    def cls_to_patches(self, layer: int = -1) -> Tensor:
        """``(B, 9)``: the attention of ``[CLS]`` to each patch in ``layer``, averaged over the heads."""
        return self.attentions[layer][:, :, 0, -N_PATCHES:].mean(1)

    def text_features(self) -> Tensor:
        """``(B, L, dim)``: the final features of the text tokens."""
        return self.hidden[:, 1 : 1 + self.text_length]


class FusionMatcher(nn.Module):
    """What every matcher of Chapter 7 shares: ``[CLS]``, the fusion stack and the two heads.

    The sequence is a learned ``[CLS]`` vector, then the caption's tokens, then the nine patches, each
    turned into a ``dim``-vector by :meth:`embed` (which subclasses define). ``layers`` pre-norm
    :class:`~mmbook.attention.TransformerBlock` layers attend over all of it, padding masked out as
    keys, and a final LayerNorm follows. Two heads read the result, as in ViLT: the matching head (a
    linear map of ``[CLS]``'s feature to the logit of "the caption describes the picture", trained with
    binary cross-entropy) and the masked-word head (a linear map of each text token's feature to
    vocabulary logits, trained to recover words hidden behind :data:`~mmbook.data.pairs.MASK_ID`).
    """

    def __init__(self, vocab_size: int, dim: int, *, layers: int, heads: int, mlp_dim: int | None) -> None:
        super().__init__()
        self.modality = nn.Embedding(2, dim)  # TEXT_TYPE, IMAGE_TYPE
        self.cls = nn.Parameter(0.02 * torch.randn(1, 1, dim))
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_dim or 2 * dim) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 1)
        self.word_head = nn.Linear(dim, vocab_size)
        self.dim = dim

    def embed_tokens(self, pixel_values: Tensor, input_ids: Tensor,
                     attention_mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``[CLS]`` ``(B, 1, dim)``, the words ``(B, L, dim)`` and the patches ``(B, 9, dim)``, before the
        type embeddings."""
        raise NotImplementedError

    def embed(self, pixel_values: Tensor, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        """The Transformer's input ``(B, 1 + L + 9, dim)`` and its key mask ``(B, 1, 1 + L + 9)``."""
        b, length = input_ids.shape
        if length > MAX_TOKENS:
            raise ValueError(f"captions can have at most {MAX_TOKENS} tokens, got {length}")
        if pixel_values.shape[1:] != (3, IMAGE_SIZE, IMAGE_SIZE) or len(pixel_values) != b:
            raise ValueError(f"expected pixel_values ({b}, 3, {IMAGE_SIZE}, {IMAGE_SIZE}), "
                             f"got {tuple(pixel_values.shape)}")
        if attention_mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask {tuple(attention_mask.shape)} must have the shape of "
                             f"input_ids {tuple(input_ids.shape)}")
        cls, text, image = self.embed_tokens(pixel_values, input_ids, attention_mask)
        text = text + self.modality.weight[TEXT_TYPE]
        image = image + self.modality.weight[IMAGE_TYPE]
        x = torch.cat([cls, text, image], dim=1)
        ones = torch.ones(b, 1, dtype=torch.bool, device=input_ids.device)
        mask = torch.cat([ones, attention_mask.bool(), ones.expand(b, image.shape[1])], dim=1)[:, None, :]
        return x, mask

    def forward(self, pixel_values: Tensor, input_ids: Tensor, attention_mask: Tensor) -> MatchOutput:
        x, mask = self.embed(pixel_values, input_ids, attention_mask)
        attentions = []
        for block in self.blocks:
            x, weights = block(x, mask, need_weights=True)
            attentions.append(weights)
        hidden = self.norm(x)
        return MatchOutput(self.head(hidden[:, 0]).squeeze(-1), hidden, attentions, input_ids.shape[1])


class SingleStreamMatcher(FusionMatcher):
    """A single-stream (ViLT-style) image–text matcher trained from scratch (Chapter 7).

    A word is its row of a learned embedding table plus a learned text position; a patch is a linear
    map of its pixels (:class:`~mmbook.encoders.PatchEmbedding`) plus a learned image position; both
    then get their modality-type embedding (:meth:`FusionMatcher.embed`).
    """

    def __init__(self, vocab_size: int, dim: int = 64, *, layers: int = 2, heads: int = 4,
                 mlp_dim: int | None = None, pad_id: int = 0) -> None:
        super().__init__(vocab_size, dim, layers=layers, heads=heads, mlp_dim=mlp_dim)
        self.word = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        self.text_position = nn.Parameter(0.02 * torch.randn(1, MAX_TOKENS, dim))
        self.patch = PatchEmbedding(PATCH_SIZE, 3, dim)
        self.image_position = nn.Parameter(0.02 * torch.randn(1, N_PATCHES, dim))

    def embed_tokens(self, pixel_values: Tensor, input_ids: Tensor,
                     attention_mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        text = self.word(input_ids) + self.text_position[:, : input_ids.shape[1]]
        image = self.patch(pixel_values) + self.image_position
        return self.cls.expand(len(input_ids), -1, -1), text, image


class AlignedMatcher(FusionMatcher):
    """Align before fuse: the same fusion stack fed by the frozen towers of a CLIP model (Chapter 7).

    ``clip`` is a ``transformers.CLIPModel`` such as the tiny CLIP of Chapter 6, and ``mean``, ``std``
    its image processor's normalisation. Every word and every patch gets a unit vector in CLIP's joint
    space: the tower's final hidden state at its position (the text tower is causal: a word has read
    the words before it) through the tower's projection. One linear map, shared by both modalities so
    that the alignment is kept, brings them to ``dim``. ``[CLS]`` starts from the elementwise product
    of CLIP's own caption and picture embeddings (its sum is the dual encoder's cosine), through a
    second linear map: the fusion layers begin where the dual encoder ends. The towers are copied and
    frozen: only the two maps, the type embeddings, ``[CLS]``, the fusion layers and the heads learn.
    Pixels come in the format of :func:`~mmbook.data.pairs.pixels` and are renormalised with ``mean``
    and ``std``.
    """

    def __init__(self, clip: Any, mean: Sequence[float], std: Sequence[float], dim: int = 64, *,
                 layers: int = 2, heads: int = 4, mlp_dim: int | None = None) -> None:
        super().__init__(clip.config.text_config.vocab_size, dim, layers=layers, heads=heads, mlp_dim=mlp_dim)
        self.text_tower = copy.deepcopy(clip.text_model).requires_grad_(False).eval()
        self.vision_tower = copy.deepcopy(clip.vision_model).requires_grad_(False).eval()
        self.text_projection = copy.deepcopy(clip.text_projection).requires_grad_(False)
        self.visual_projection = copy.deepcopy(clip.visual_projection).requires_grad_(False)
        self.joint_in = nn.Linear(clip.config.projection_dim, dim)
        self.agreement = nn.Linear(clip.config.projection_dim, dim)
        self.register_buffer("mean", torch.tensor([float(m) for m in mean]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([float(s) for s in std]).view(1, 3, 1, 1))

    def train(self, mode: bool = True) -> AlignedMatcher:
        super().train(mode)
        self.text_tower.eval()  # frozen: always in inference mode
        self.vision_tower.eval()
        return self

    @torch.no_grad()
    def joint_features(self, pixel_values: Tensor, input_ids: Tensor,
                       attention_mask: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Unit vectors in CLIP's joint space: the words ``(B, L, P)``, the patches ``(B, 9, P)``, and
        CLIP's own caption and picture embeddings ``(B, P)``."""
        text = self.text_tower(input_ids=input_ids, attention_mask=attention_mask)
        clip_pixels = ((pixel_values + 1) / 2 - self.mean) / self.std
        image = self.vision_tower(pixel_values=clip_pixels)
        patches = self.vision_tower.post_layernorm(image.last_hidden_state[:, 1:])
        words = F.normalize(self.text_projection(text.last_hidden_state), dim=-1)
        caption = F.normalize(self.text_projection(text.pooler_output), dim=-1)
        picture = F.normalize(self.visual_projection(image.pooler_output), dim=-1)
        return words, F.normalize(self.visual_projection(patches), dim=-1), caption, picture

    def embed_tokens(self, pixel_values: Tensor, input_ids: Tensor,
                     attention_mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        words, patches, caption, picture = self.joint_features(pixel_values, input_ids, attention_mask)
        cls = self.cls + self.agreement(caption * picture)[:, None]  # its sum is CLIP's cosine
        return cls, self.joint_in(words), self.joint_in(patches)


@torch.no_grad()
def match_probabilities(model: FusionMatcher, images: np.ndarray, captions: Sequence[str],
                        batch_size: int = 512) -> np.ndarray:
    """``P(match)`` for each (picture, caption) pair, in batches, without gradients (Chapter 7)."""
    if len(images) != len(captions):
        raise ValueError(f"got {len(images)} pictures for {len(captions)} captions; pass pairs")
    model.eval()
    out = []
    for i in range(0, len(captions), batch_size):
        ids, mask = tokenize(captions[i : i + batch_size])
        out.append(torch.sigmoid(model(pixels(images[i : i + batch_size]), ids, mask).logits))
    return torch.cat(out).numpy()




# ----------------------------------------------------------------------------------------------------
# Steps 8-9: optimisation with early stopping on the validation set


@dataclass
class History:
    """What :func:`train_matcher` measured: the matching and masked-word losses per step, the validation
    loss and accuracy every ``eval_every`` steps, the step whose weights were kept, the step training
    stopped at, whether that was early, and the time."""

    losses: list[float] = field(default_factory=list)
    word_losses: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)
    val_accuracies: list[float] = field(default_factory=list)
    best_step: int = 0
    stopped_step: int = 0
    early_stopped: bool = False
    seconds: float = 0.0


@torch.no_grad()
def evaluate(model: FusionMatcher, data: PairTensors, batch_size: int = 1024) -> tuple[float, float, np.ndarray]:
    """Mean BCE, accuracy at ``P = 0.5`` and the logits of every pair of ``data`` (Chapter 7)."""
    model.eval()
    logits = torch.cat([model(*data.batch(torch.arange(i, min(i + batch_size, len(data))))[:3]).logits
                        for i in range(0, len(data), batch_size)])
    labels = data.labels.float()
    loss = bce_with_logits(logits, labels).item()
    accuracy = ((logits > 0).float() == labels).float().mean().item()
    return loss, accuracy, logits.numpy()


def matcher_loss(
    model: FusionMatcher,
    batch: tuple[Tensor, Tensor, Tensor, Tensor],
    word_weight: float,
    mask_rate: float,
    generator: torch.Generator,
) -> tuple[Tensor, float, float | None]:
    """The loss of one training step, ``BCE + word_weight · CE``, and its two parts as numbers (Chapter 7).

    ``batch`` is pixels, ids, mask and labels (:meth:`~mmbook.data.pairs.PairTensors.batch`). With
    ``word_weight > 0``, one colour or shape word per caption is hidden with probability ``mask_rate``
    and the masked-word head must name it on the matching pairs; the masked-word part is ``None`` when
    no word of a matching pair was hidden.
    """
    pixel_values, ids, mask, labels = batch
    if word_weight > 0:
        ids, targets = mask_content_words(ids, mask_rate, generator)
    out = model(pixel_values, ids, mask)
    loss = bce_with_logits(out.logits, labels)
    match_loss, word_loss = loss.item(), None
    if word_weight > 0:
        targets[labels == 0] = -100  # only a matching caption tells which word the picture shows
        if (targets >= 0).any():
            words = model.word_head(out.text_features())
            cross_entropy = F.cross_entropy(words.flatten(0, 1), targets.flatten())
            word_loss = cross_entropy.item()
            loss = loss + word_weight * cross_entropy
    return loss, match_loss, word_loss


@torch.enable_grad()  # trains even when called under no_grad, e.g. on an app's first request
def train_matcher(
    model: FusionMatcher,
    train: PairTensors,
    val: PairTensors,
    *,
    max_steps: int = 1200,
    batch_size: int = 64,
    lr: float = 2e-3,
    weight_decay: float = 0.01,
    warmup: float = 0.05,
    cooldown: float = 0.2,
    word_weight: float = 1.0,
    mask_rate: float = 0.5,
    eval_every: int = 100,
    patience: int = 4,
    min_steps: int = 0,
    seed: int = 0,
    progress: bool = True,
) -> History:
    """Train ``model`` on ``train``; keep the weights with the lowest validation loss (Chapter 7).

    Each step draws ``batch_size`` pairs and minimises :func:`matcher_loss`: in each caption one colour
    or shape word is hidden with probability ``mask_rate``; the matching head is trained on every pair
    with BCE, and the masked-word head, on the matching pairs, to recover the hidden word with
    cross-entropy. The step minimises ``BCE + word_weight · CE``; ``word_weight=0`` trains the matching
    head alone, on captions without hidden words. AdamW; the learning rate rises linearly for the first ``warmup`` share
    of ``max_steps``, stays at ``lr`` and falls linearly to zero over the last ``cooldown`` share. Every
    ``eval_every`` steps the validation BCE is measured; after ``min_steps`` steps, training stops early
    when it has not improved for ``patience`` evaluations in a row (a model at the start often sits on a
    plateau at ``log 2`` for a while before it learns; ``min_steps`` keeps such a plateau from ending the
    run). The weights with the lowest validation loss are restored in ``model``. Runs on one CPU
    thread inside :func:`mmbook.env.training_state`, which leaves the caller's state as it was.
    """
    from tqdm.auto import tqdm

    if not 1 < batch_size <= len(train):
        raise ValueError(f"batch_size must be between 2 and the number of training pairs ({len(train)})")
    trainable = [p for p in model.parameters() if p.requires_grad]  # an AlignedMatcher's towers are frozen
    optimiser = torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay)
    ramp, tail = max(1, round(warmup * max_steps)), max(1, round(cooldown * max_steps))

    def factor(step: int) -> float:  # warm up, hold, then cool down linearly to zero
        return min(1.0, (step + 1) / ramp, (max_steps - step) / tail)

    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, factor)
    generator = torch.Generator().manual_seed(seed)
    history = History()
    best_loss, best_state, waited, step = math.inf, None, 0, 0
    start = time.perf_counter()
    with training_state(threads=1):
        bar = tqdm(range(1, max_steps + 1), desc="training the matcher", leave=False, disable=not progress)
        for step in bar:
            model.train()
            rows = torch.randint(0, len(train), (batch_size,), generator=generator)
            loss, match_loss, word_loss = matcher_loss(model, train.batch(rows), word_weight, mask_rate, generator)
            history.losses.append(match_loss)
            if word_loss is not None:
                history.word_losses.append(word_loss)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            if step % eval_every == 0 or step == max_steps:
                val_loss, val_accuracy, _ = evaluate(model, val)
                history.eval_steps.append(step)
                history.val_losses.append(val_loss)
                history.val_accuracies.append(val_accuracy)
                bar.set_postfix(val_loss=f"{val_loss:.3f}", val_acc=f"{val_accuracy:.1%}")
                if val_loss < best_loss:
                    best_loss, waited, history.best_step = val_loss, 0, step
                    best_state = {k: v.clone() for k, v in model.state_dict().items()}
                else:
                    waited += 1
                    if waited >= patience and step >= min_steps:
                        history.early_stopped = True
                        break
        history.stopped_step = step
    history.seconds = time.perf_counter() - start
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history

