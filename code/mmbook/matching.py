"""Image–text matching end to end: pairs and hard negatives, a single-stream Transformer, training (Chapter 7).

The task: given a picture and a caption, say whether the caption describes the picture. The module holds
the steps of the chapter's walk-through that a reader reads.

- :func:`hard_negative`, :func:`make_pairs`: matched pairs, random negatives (another scene's caption) and
  hard negatives (one attribute of one shape changed: its colour, its kind or its cell), all written by
  the shapes world's own caption generator, so style never gives a negative away.
- :func:`pixels`, :func:`encode_pairs`: pictures and captions as tensors.
- :class:`SingleStreamMatcher`: a ViLT-style Transformer (Kim et al. 2021). Text tokens and image patches,
  each with a position and a modality-type embedding, go into one Transformer behind a ``[CLS]`` token,
  whose final feature a linear head turns into the logit of "match"; a second head predicts hidden words.
  Built from :class:`Block`, a pre-norm layer around Chapter 4's :class:`~mmbook.attention.MultiHeadAttention`.
- :func:`mask_content_words`: ViLT's second objective, hidden colour and shape words to recover.
- :func:`train_matcher`: AdamW with warm-up and cool-down, early stopping on the validation loss.

The loss (:func:`mmbook.losses.bce_with_logits`) and the evaluation (:func:`mmbook.metrics.binary_metrics`,
:func:`~mmbook.metrics.roc_auc`, ...) live with the other losses and metrics; the book's trained matcher
and its settings live in :mod:`mmbook.experiments.book_matcher`.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmbook.attention import MultiHeadAttention
from mmbook.contrastive import scene_key
from mmbook.data import COLORS, POSITIONS, SHAPE_KINDS, TRAIN_COMBINATIONS, make_shapes, tokenizer
from mmbook.data.shapes import COMBINATIONS, caption_for
from mmbook.encoders import PatchEmbedding
from mmbook.env import training_state
from mmbook.losses import bce_with_logits

#: The pictures are upsampled from 32 to 48 pixels and cut into 16-pixel patches, one per grid cell,
#: exactly as the tiny CLIP of Chapter 6 sees them.
IMAGE_SIZE, PATCH_SIZE = 48, 16
N_PATCHES = (IMAGE_SIZE // PATCH_SIZE) ** 2
#: Longest caption, in tokens with start and end, that the position embeddings cover.
MAX_TOKENS = 48
#: How a negative caption is made: another scene's caption, or one attribute of one shape changed.
HARD_KINDS: tuple[str, ...] = ("color", "shape", "position")
NEGATIVE_KINDS: tuple[str, ...] = ("random", *HARD_KINDS)
#: Token types: 0 for text (and ``[CLS]``), 1 for image patches.
TEXT_TYPE, IMAGE_TYPE = 0, 1

# ----------------------------------------------------------------------------------------------------
# Step 1: data. Matched pairs, random negatives, hard negatives


def _sort_reading_order(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(objects, key=lambda o: 3 * o["row"] + o["col"])


def hard_negative(
    objects: Sequence[dict[str, Any]],
    kind: str,
    rng: random.Random,
    allowed: Sequence[tuple[str, str]] = COMBINATIONS,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The scene ``objects`` with one attribute of one shape changed, and a record of the change (Chapter 7).

    ``kind`` is ``"color"`` (a different colour), ``"shape"`` (a different kind of shape) or ``"position"``
    (moved to an empty cell). New (shape, colour) pairs are drawn from ``allowed``, so a negative for
    ``split="train"`` never names a held-out combination. The objects come back in reading order, as the
    shapes world lists them. The record holds ``kind``, ``old`` and ``new`` (the attribute's values) and
    ``object`` (the changed shape before the change).
    """
    if kind not in HARD_KINDS:
        raise ValueError(f"kind must be one of {HARD_KINDS}, got {kind!r}")
    if not objects:
        raise ValueError("a scene needs at least one shape to change")
    allowed_set = set(allowed)
    changed = [dict(o) for o in objects]
    options: list[tuple[int, Any]] = []
    for i, o in enumerate(changed):
        if kind == "color":
            options += [(i, c) for c in COLORS if c != o["color"] and (o["shape"], c) in allowed_set]
        elif kind == "shape":
            options += [(i, k) for k in SHAPE_KINDS if k != o["shape"] and (k, o["color"]) in allowed_set]
        else:
            taken = {p["position"] for p in changed}
            options += [(i, cell) for cell in POSITIONS if cell not in taken]
    if not options:
        raise ValueError(f"no {kind} change is possible in this scene")
    index, new = rng.choice(options)
    target = changed[index]
    record = {"kind": kind, "old": target[kind], "new": new,
              "object": f"{target['color']} {target['shape']} ({target['position']})"}
    target[kind] = new
    if kind == "position":
        target["row"], target["col"] = divmod(POSITIONS.index(new), 3)
        target.pop("x", None), target.pop("y", None)  # the pixel centre of the old cell no longer applies
    return _sort_reading_order(changed), record


@dataclass
class Pairs:
    """(picture, caption, label) triples made by :func:`make_pairs` (Chapter 7).

    ``images[i]`` is uint8 ``(32, 32, 3)``; ``labels[i]`` is 1 for a match and 0 otherwise; ``kinds[i]``
    is ``"match"`` or one of :data:`NEGATIVE_KINDS`; ``scene[i]`` indexes the scene the picture shows in
    ``attributes``; ``stated[i]`` lists the shapes the caption describes (the scene's own for a match,
    the changed ones for a hard negative, the other scene's for a random one); ``changes[i]`` records what
    a hard negative changed (``None`` otherwise). Pair ``2s`` is scene ``s`` with its own caption and pair
    ``2s + 1`` the same picture with a negative.
    """

    images: np.ndarray
    captions: list[str]
    labels: np.ndarray
    kinds: list[str]
    scene: np.ndarray
    attributes: list[list[dict[str, Any]]]
    stated: list[list[dict[str, Any]]]
    changes: list[dict[str, Any] | None]

    def __len__(self) -> int:
        return len(self.captions)

    def subset(self, rows: Sequence[int] | np.ndarray) -> Pairs:
        """The pairs ``rows``, in that order (the scene list is kept whole)."""
        rows = np.asarray(rows, dtype=int)
        return Pairs(self.images[rows], [self.captions[r] for r in rows], self.labels[rows],
                     [self.kinds[r] for r in rows], self.scene[rows], self.attributes,
                     [self.stated[r] for r in rows], [self.changes[r] for r in rows])


def make_pairs(
    n_scenes: int,
    *,
    seed: int = 0,
    split: str | None = "train",
    max_shapes: int = 3,
    negatives: Sequence[str] = NEGATIVE_KINDS,
) -> Pairs:
    """Two pairs per scene of ``make_shapes(n_scenes, seed=seed, ...)``: its own caption, and a negative (Chapter 7).

    Scene ``s`` gets the negative kind ``negatives[s % len(negatives)]``, so labels are balanced and every
    kind is equally common. A ``"random"`` negative is the caption of another scene that states something
    else; a hard negative (:func:`hard_negative`) is a fresh caption of the scene with one attribute
    changed, written by the same caption generator as the positives. With ``split="train"`` no caption
    names a held-out combination. The same arguments give the same pairs.
    """
    unknown = [k for k in negatives if k not in NEGATIVE_KINDS]
    if unknown or not negatives:
        raise ValueError(f"negatives must be a non-empty selection of {NEGATIVE_KINDS}, got {tuple(negatives)!r}")
    shapes = make_shapes(n_scenes, seed=seed, split=split, max_shapes=max_shapes)
    allowed = TRAIN_COMBINATIONS if split == "train" else COMBINATIONS
    rng = random.Random(seed)
    keys = [scene_key(objects) for objects in shapes.attributes]
    captions, labels, kinds, scene, stated, changes = [], [], [], [], [], []
    for s, objects in enumerate(shapes.attributes):
        kind = negatives[s % len(negatives)]
        if kind == "random":
            other, tries = s, 0
            while keys[other] == keys[s] and tries < 1000:
                other, tries = rng.randrange(n_scenes), tries + 1
            if keys[other] == keys[s]:
                raise ValueError("random negatives need scenes that differ; make more than one scene")
            negative, change, changed = shapes.captions[other], None, shapes.attributes[other]
        else:
            changed, change = hard_negative(objects, kind, rng, allowed)
            negative = caption_for(changed, rng)
        captions += [shapes.captions[s], negative]
        labels += [1, 0]
        kinds += ["match", kind]
        scene += [s, s]
        stated += [objects, changed]
        changes += [None, change]
    scene_index = np.array(scene)
    return Pairs(shapes.images[scene_index], captions, np.array(labels), kinds, scene_index,
                 shapes.attributes, stated, changes)


# ----------------------------------------------------------------------------------------------------
# Steps 2-3: pictures and captions as tensors


def pixels(images: np.ndarray | Tensor) -> Tensor:
    """uint8 ``(B, H, W, 3)`` pictures → float ``(B, 3, 48, 48)`` in [-1, 1], bilinearly resized (Chapter 7)."""
    x = torch.tensor(np.asarray(images))  # a copy: gradio hands over read-only arrays
    if x.dim() != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected uint8 pictures (B, H, W, 3), got shape {tuple(x.shape)}")
    x = x.permute(0, 3, 1, 2).float() / 255.0
    if x.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
        x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
    return 2 * x - 1


def tokenize(captions: Sequence[str]) -> tuple[Tensor, Tensor]:
    """``input_ids`` and ``attention_mask`` of ``captions`` with the book's tokenizer, padded to the longest."""
    batch = tokenizer()(list(captions), padding=True, return_tensors="pt")
    if batch["input_ids"].shape[1] > MAX_TOKENS:
        raise ValueError(f"captions can have at most {MAX_TOKENS} tokens, got {batch['input_ids'].shape[1]}")
    return batch["input_ids"], batch["attention_mask"]


@dataclass
class PairTensors:
    """Pairs as tensors: uint8 pictures ``(N, 32, 32, 3)``, padded token ids and mask ``(N, L)``, labels ``(N,)``."""

    images: Tensor
    input_ids: Tensor
    attention_mask: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, rows: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Pixels, ids and mask cut to the batch's longest caption, and float labels, for ``rows``."""
        mask = self.attention_mask[rows]
        width = int(mask.sum(1).max())
        return pixels(self.images[rows]), self.input_ids[rows, :width], mask[:, :width], self.labels[rows].float()


def encode_pairs(pairs: Pairs) -> PairTensors:
    """:class:`Pairs` → :class:`PairTensors` (Chapter 7)."""
    ids, mask = tokenize(pairs.captions)
    return PairTensors(torch.from_numpy(pairs.images), ids, mask, torch.from_numpy(pairs.labels))


# ----------------------------------------------------------------------------------------------------
# Steps 4-6: one Transformer over both modalities, a matching head and a masked-word head


class Block(nn.Module):
    """A pre-norm Transformer layer: ``x + MHA(LN(x))``, then ``x + MLP(LN(x))`` (Chapter 7).

    The attention is Chapter 4's :class:`~mmbook.attention.MultiHeadAttention`, so ``forward`` also returns
    its weights ``(B, H, L, L)``. ``mask`` (True = may attend) broadcasts to ``(B, H, L, L)``; a key mask
    ``(B, 1, L)`` hides padding from every query. It computes what ``nn.TransformerEncoderLayer`` with
    ``norm_first=True``, ``activation="gelu"`` and no dropout computes.
    """

    def __init__(self, dim: int, heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = self.norm1(x)
        attended, weights = self.attn(h, h, h, mask)
        x = x + attended
        return x + self.mlp(self.norm2(x)), weights


@dataclass
class MatchOutput:
    """What :class:`SingleStreamMatcher` returns (Chapter 7).

    ``logits`` ``(B,)`` of "match"; ``hidden`` ``(B, 1 + L + 9, dim)``, the final features of the sequence
    ``[CLS], L text tokens, 9 patches``; ``attentions``, every layer's weights ``(B, H, 1 + L + 9, 1 + L + 9)``.
    """

    logits: Tensor
    hidden: Tensor
    attentions: list[Tensor]
    text_length: int

    def cls_to_patches(self, layer: int = -1) -> Tensor:
        """``(B, 9)``: the attention of ``[CLS]`` to each patch in ``layer``, averaged over the heads."""
        return self.attentions[layer][:, :, 0, 1 + self.text_length :].mean(1)

    def text_features(self) -> Tensor:
        """``(B, L, dim)``: the final features of the text tokens."""
        return self.hidden[:, 1 : 1 + self.text_length]


class SingleStreamMatcher(nn.Module):
    """A single-stream (ViLT-style) image–text matcher: one Transformer reads words and patches (Chapter 7).

    The sequence is a learned ``[CLS]`` vector, then the caption's token embeddings plus learned text
    positions plus the text type embedding, then the linear patch embeddings plus learned image positions
    plus the image type embedding. ``layers`` pre-norm :class:`Block` layers attend over all of it,
    padding masked out as keys, and a final LayerNorm follows. Two heads read the result, as in ViLT: the
    matching head (a linear map of ``[CLS]``'s feature to the logit of "the caption describes the
    picture", trained with binary cross-entropy) and the masked-word head (a linear map of each text
    token's feature to vocabulary logits, trained to recover words hidden behind :data:`MASK_ID`).
    """

    def __init__(
        self,
        vocab_size: int,
        dim: int = 64,
        *,
        layers: int = 2,
        heads: int = 4,
        mlp_dim: int | None = None,
        max_tokens: int = MAX_TOKENS,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        self.word = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        self.text_position = nn.Parameter(0.02 * torch.randn(1, max_tokens, dim))
        self.patch = PatchEmbedding(PATCH_SIZE, 3, dim)
        self.image_position = nn.Parameter(0.02 * torch.randn(1, N_PATCHES, dim))
        self.modality = nn.Embedding(2, dim)  # TEXT_TYPE, IMAGE_TYPE
        self.cls = nn.Parameter(0.02 * torch.randn(1, 1, dim))
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_dim or 2 * dim) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 1)
        self.word_head = nn.Linear(dim, vocab_size)
        self.dim, self.max_tokens, self.pad_id = dim, max_tokens, pad_id

    def embed(self, pixel_values: Tensor, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        """The Transformer's input ``(B, 1 + L + 9, dim)`` and its key mask ``(B, 1, 1 + L + 9)``."""
        b, length = input_ids.shape
        if length > self.max_tokens:
            raise ValueError(f"captions can have at most {self.max_tokens} tokens, got {length}")
        if pixel_values.shape[1:] != (3, IMAGE_SIZE, IMAGE_SIZE) or len(pixel_values) != b:
            raise ValueError(f"expected pixel_values ({b}, 3, {IMAGE_SIZE}, {IMAGE_SIZE}), "
                             f"got {tuple(pixel_values.shape)}")
        if attention_mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask {tuple(attention_mask.shape)} must have the shape of "
                             f"input_ids {tuple(input_ids.shape)}")
        text = self.word(input_ids) + self.text_position[:, :length] + self.modality.weight[TEXT_TYPE]
        image = self.patch(pixel_values) + self.image_position + self.modality.weight[IMAGE_TYPE]
        x = torch.cat([self.cls.expand(b, -1, -1), text, image], dim=1)
        ones = torch.ones(b, 1, dtype=torch.bool, device=input_ids.device)
        mask = torch.cat([ones, attention_mask.bool(), ones.expand(b, N_PATCHES)], dim=1)[:, None, :]
        return x, mask

    def forward(self, pixel_values: Tensor, input_ids: Tensor, attention_mask: Tensor) -> MatchOutput:
        x, mask = self.embed(pixel_values, input_ids, attention_mask)
        attentions = []
        for block in self.blocks:
            x, weights = block(x, mask)
            attentions.append(weights)
        hidden = self.norm(x)
        return MatchOutput(self.head(hidden[:, 0]).squeeze(-1), hidden, attentions, input_ids.shape[1])


@torch.no_grad()
def match_probabilities(model: SingleStreamMatcher, images: np.ndarray, captions: Sequence[str],
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



@cache
def content_word_ids() -> Tensor:
    """Token ids of the words that name what a shape is: its colour and its kind, synonyms included (Chapter 7)."""
    from mmbook.data.shapes import COLOR_WORDS, KIND_WORDS

    words = sorted({w for ws in (*COLOR_WORDS.values(), *KIND_WORDS.values()) for w in ws})
    return torch.tensor(tokenizer().convert_tokens_to_ids(words))


#: The token that hides a word from the masked-word objective: the tokenizer's unknown token, which no
#: caption of the shapes world contains.
MASK_ID = 1


def mask_content_words(input_ids: Tensor, rate: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Hide one content word (:func:`content_word_ids`, drawn uniformly) in each caption with probability
    ``rate`` (Chapter 7). Returns the masked ids and the targets: the hidden word's id where a word was
    hidden, ``-100`` (ignored by ``F.cross_entropy``) everywhere else."""
    content = torch.isin(input_ids, content_word_ids())
    draw = torch.rand(input_ids.shape, generator=generator)
    chosen = torch.where(content, draw, 2.0).argmin(1)
    rows = torch.arange(len(input_ids))
    hide = torch.zeros_like(content)
    hide[rows, chosen] = content[rows, chosen] & (torch.rand(len(input_ids), generator=generator) < rate)
    return input_ids.masked_fill(hide, MASK_ID), input_ids.masked_fill(~hide, -100)


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
def evaluate(model: SingleStreamMatcher, data: PairTensors, batch_size: int = 1024) -> tuple[float, float, np.ndarray]:
    """Mean BCE, accuracy at ``P = 0.5`` and the logits of every pair of ``data`` (Chapter 7)."""
    model.eval()
    logits = torch.cat([model(*data.batch(torch.arange(i, min(i + batch_size, len(data))))[:3]).logits
                        for i in range(0, len(data), batch_size)])
    labels = data.labels.float()
    loss = bce_with_logits(logits, labels).item()
    accuracy = ((logits > 0).float() == labels).float().mean().item()
    return loss, accuracy, logits.numpy()


@torch.enable_grad()  # trains even when called under no_grad, e.g. on an app's first request
def train_matcher(
    model: SingleStreamMatcher,
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

    Each step draws ``batch_size`` pairs. In each caption one colour or shape word is hidden with
    probability ``mask_rate`` (:func:`mask_content_words`); the matching head is trained on every pair with
    BCE, and the masked-word head, on the matching pairs, to recover the hidden word with cross-entropy.
    The step minimises ``BCE + word_weight · CE``; ``word_weight=0`` trains the matching head alone, on
    captions without hidden words. AdamW; the learning rate rises linearly for the first ``warmup`` share
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
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
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
            pixel_values, ids, mask, labels = train.batch(rows)
            if word_weight > 0:
                ids, targets = mask_content_words(ids, mask_rate, generator)
            out = model(pixel_values, ids, mask)
            loss = bce_with_logits(out.logits, labels)
            history.losses.append(loss.item())
            if word_weight > 0:
                targets[labels == 0] = -100  # only a matching caption tells which word the picture shows
                if (targets >= 0).any():
                    words = model.word_head(out.text_features())
                    word_loss = F.cross_entropy(words.flatten(0, 1), targets.flatten())
                    history.word_losses.append(word_loss.item())
                    loss = loss + word_weight * word_loss
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

