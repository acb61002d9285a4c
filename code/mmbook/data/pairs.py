"""Image–text pairs for matching: matched pairs, random and hard negatives, as tensors (Chapter 7).

- :func:`hard_negative`, :func:`make_pairs`: matched pairs, random negatives (another scene's caption) and
  hard negatives (one attribute of one shape changed: its colour, its kind or its cell), all written by
  the shapes world's own caption generator, so style never gives a negative away.
- :func:`pixels`, :func:`tokenize`, :func:`encode_pairs`: pictures and captions as tensors.
- :func:`content_word_ids`, :func:`mask_content_words`: the hidden colour and shape words of the
  masked-word objective.

The models that read these pairs and their training are in :mod:`mmbook.matching`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mmbook.contrastive import scene_key
from mmbook.data.shapes import caption_for, make_shapes
from mmbook.data.vocab import tokenizer
from mmbook.data.world import COLORS, COMBINATIONS, POSITIONS, SHAPE_KINDS, TRAIN_COMBINATIONS

#: The pictures are upsampled from 32 to 48 pixels and cut into 16-pixel patches, one per grid cell,
#: exactly as the tiny CLIP of Chapter 6 sees them.
IMAGE_SIZE, PATCH_SIZE = 48, 16
N_PATCHES = (IMAGE_SIZE // PATCH_SIZE) ** 2
#: Longest caption, in tokens with start and end, that the position embeddings cover.
MAX_TOKENS = 48
#: How a negative caption is made: another scene's caption, or one attribute of one shape changed.
HARD_KINDS: tuple[str, ...] = ("color", "shape", "position")
NEGATIVE_KINDS: tuple[str, ...] = ("random", *HARD_KINDS)


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
