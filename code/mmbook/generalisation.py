"""Compositional generalisation measured on the book's models: seen against never-seen colour–shape pairs
(Chapter 14).

Two forced-choice tests, the same for every model. :func:`colour_items` asks for the colour of the one
shape of a picture (six choices); :func:`binding_items` shows two shapes of different kinds and colours and
asks which of two bindings is true: the right one or the one with the colours swapped (two choices, as in
the attribution tests of ARO). Each model answers in its own way: the tiny CLIP through caption similarity
(:func:`clip_choice_scores`), the matcher through its match logit (:func:`matcher_choice_scores`), the
tiny VLM through the questions it was trained on (:func:`vlm_choice_scores`: "what color is the K?" on
one-shape pictures, "is there a C K?" on the others). :func:`difference_interval` puts a bootstrap
confidence interval on the gap between seen and unseen accuracies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mmbook.data.instruct import COLOR_QUESTION, exists_question, with_article
from mmbook.data.shapes import POSITION_PHRASES, make_shapes
from mmbook.data.world import COLORS, HELDOUT_COMBINATIONS

#: The colour words, in the order of the choices of :func:`colour_items`.
COLOUR_NAMES: tuple[str, ...] = tuple(COLORS)
#: The two tests.
KINDS: tuple[str, ...] = ("colour", "binding")


@dataclass
class ChoiceItems:
    """Pictures with a forced choice each (Chapter 14).

    ``images`` uint8 N×H×W×3; ``kind`` one of :data:`KINDS`; ``shape`` the kind of shape the question
    names; ``captions[i]`` the candidate captions of picture ``i`` and ``choices[i]`` the candidate colours
    of that shape, both with the right one at ``answer[i]``; ``unseen[i]`` whether the picture comes from
    never-seen pairs (the named shape's pair, or the held-out split). Binding tests also give ``other``, the
    kind of the picture's other shape, and ``first``, whether the named shape comes first in reading order.
    """

    images: np.ndarray
    kind: str
    shape: list[str]
    captions: list[list[str]]
    choices: list[list[str]]
    answer: np.ndarray
    unseen: np.ndarray
    other: list[str] = field(default_factory=list)
    first: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, keep: np.ndarray) -> ChoiceItems:
        """The items where the boolean mask ``keep`` is true."""
        rows = np.flatnonzero(keep)
        return replace(self, images=self.images[rows], shape=[self.shape[i] for i in rows],
                       captions=[self.captions[i] for i in rows], choices=[self.choices[i] for i in rows],
                       answer=self.answer[rows], unseen=self.unseen[rows],
                       other=[self.other[i] for i in rows] if self.other else [],
                       first=self.first[rows] if len(self.first) else self.first)  # fmt: skip


def colour_items(n: int, seed: int) -> ChoiceItems:
    """``n`` one-shape pictures of every colour–shape pair (``split=None``): name the colour of the shape
    among the six colours; a picture is *unseen* when its pair is one of ``HELDOUT_COMBINATIONS``."""
    scenes = make_shapes(n, seed=seed, max_shapes=1)
    objects = [a[0] for a in scenes.attributes]
    shapes = [o["shape"] for o in objects]
    captions = [[with_article(f"{c} {k}") for c in COLOUR_NAMES] for k in shapes]
    choices = [list(COLOUR_NAMES) for _ in objects]
    answer = np.array([COLOUR_NAMES.index(o["color"]) for o in objects])
    unseen = np.array([(o["shape"], o["color"]) in HELDOUT_COMBINATIONS for o in objects])
    return ChoiceItems(scenes.images, "colour", shapes, captions, choices, answer, unseen)


def _swap_is_seen(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(pair not in HELDOUT_COMBINATIONS for pair in ((a["shape"], b["color"]), (b["shape"], a["color"])))


def _two(colour_a: str, a: dict[str, Any], colour_b: str, b: dict[str, Any]) -> str:
    """ "a C1 K1 in P1 and a C2 K2 in P2", with the captions' own words for the cells."""
    return " and ".join(with_article(f"{c} {o['shape']} {POSITION_PHRASES[o['position']][0]}")
                        for c, o in ((colour_a, a), (colour_b, b)))  # fmt: skip


def binding_items(n: int, seed: int) -> ChoiceItems:
    """Two-shape pictures, half from ``split="train"`` (seen) and half from ``split="heldout"`` (unseen):
    the caption "a C1 K1 in P1 and a C2 K2 in P2" against its colour swap "a C2 K1 in P1 and a C1 K2 in P2".

    Kept only where the two shapes differ in kind and colour and the swapped caption names seen pairs only,
    so that on seen pictures both captions are familiar and on unseen ones only the right caption holds a
    never-seen pair. The named shape (``shape``, for the VLM's questions) is the held-out pair on unseen
    pictures and either shape, at random, on seen ones. Generates scenes until ``n // 2`` of each are kept.
    """
    rng = np.random.default_rng(seed)
    images, shapes, others, captions, choices, unseen, first = [], [], [], [], [], [], []
    for split, held in (("train", False), ("heldout", True)):
        kept, batch = 0, 0
        while kept < n // 2:
            scenes = make_shapes(n, seed=seed + 1000 * batch, min_shapes=2, max_shapes=2, split=split)
            batch += 1
            for image, (a, b) in zip(scenes.images, scenes.attributes, strict=True):
                if kept == n // 2 or a["shape"] == b["shape"] or a["color"] == b["color"] or not _swap_is_seen(a, b):
                    continue
                if held:
                    target_first = (a["shape"], a["color"]) in HELDOUT_COMBINATIONS
                else:
                    target_first = bool(rng.random() < 0.5)
                target, other = (a, b) if target_first else (b, a)
                images.append(image)
                shapes.append(target["shape"])
                others.append(other["shape"])
                captions.append([_two(a["color"], a, b["color"], b), _two(b["color"], a, a["color"], b)])
                choices.append([target["color"], other["color"]])
                unseen.append(held)
                first.append(target_first)
                kept += 1
    return ChoiceItems(np.stack(images), "binding", shapes, captions, choices, np.zeros(len(images), int),
                       np.array(unseen), others, np.array(first))  # fmt: skip


def ask_about_other(items: ChoiceItems) -> ChoiceItems:
    """The binding test of ``items`` with the VLM's question about the other shape of each picture: its
    colour against the first shape's; ``unseen`` still marks the pictures of the held-out split (Chapter 14)."""
    if items.kind != "binding":
        raise ValueError("ask_about_other needs binding items (from binding_items)")
    return replace(items, shape=list(items.other), other=list(items.shape), first=~items.first,
                   choices=[[b, a] for a, b in items.choices])  # fmt: skip


@torch.no_grad()
def clip_choice_scores(model: Any, processor: Any, items: ChoiceItems) -> np.ndarray:
    """Cosine similarity of each picture with each of its candidate captions under a CLIP model, N×C
    (Chapter 14)."""
    from mmbook import contrastive

    images = contrastive.embed_images(model, contrastive.pixels(processor, items.images))
    flat = [c for row in items.captions for c in row]
    texts = contrastive.embed_texts(model, *contrastive.tokens(processor, flat))
    texts = texts.reshape(len(items), -1, texts.shape[-1])
    return torch.einsum("nd,ncd->nc", images, texts).numpy()


@torch.no_grad()
def matcher_choice_scores(model: Any, items: ChoiceItems, batch_size: int = 1024) -> np.ndarray:
    """The match logit of each picture with each of its candidate captions under a Chapter 7 matcher, N×C
    (Chapter 14)."""
    from mmbook.data.pairs import pixels, tokenize

    per = len(items.captions[0])
    images = np.repeat(items.images, per, axis=0)
    flat = [c for row in items.captions for c in row]
    model.eval()
    logits = []
    for s in range(0, len(flat), batch_size):
        ids, mask = tokenize(flat[s : s + batch_size])
        logits.append(model(pixels(images[s : s + batch_size]), ids, mask).logits.reshape(-1))
    return torch.cat(logits).reshape(len(items), per).numpy()


def _token_id(tokenizer: Any, word: str) -> int:
    ids = tokenizer(word, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise ValueError(f"{word!r} must be one token of the VLM's tokenizer, got {ids}")
    return ids[0]


@torch.no_grad()
def _next_token_logits(model: Any, processor: Any, images: np.ndarray, questions: list[str],
                       batch_size: int = 256) -> Tensor:  # fmt: skip
    """The VLM's logits for the first answer token of each (picture, question), N×V; prompts padded on the
    left, positions following the mask, as in :func:`mmbook.vlm_eval.answer_batch`."""
    from mmbook import vlm as vlm_module

    tok = processor.tokenizer
    texts = [vlm_module.expand_image(vlm_module.prompt_text(tok, q), model.n_image_tokens) for q in questions]
    model.eval()
    out = []
    for s in range(0, len(texts), batch_size):
        rows = tok(texts[s : s + batch_size], add_special_tokens=False)["input_ids"]
        width = max(len(r) for r in rows)
        ids = torch.tensor([[tok.pad_token_id] * (width - len(r)) + r for r in rows])
        mask = (torch.arange(width) >= torch.tensor([width - len(r) for r in rows])[:, None]).long()
        pixel_values = processor.image_processor(images=list(images[s : s + batch_size]),
                                                 return_tensors="pt")["pixel_values"]  # fmt: skip
        embeds = model.embed(ids, model.image_features(pixel_values))
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        out.append(model.language_model.forward_embeds(embeds, mask, positions)[:, -1])
    return torch.cat(out)


def vlm_colour_logits(model: Any, processor: Any, items: ChoiceItems, batch_size: int = 256) -> np.ndarray:
    """The tiny VLM's next-token logits of the candidate colours ``items.choices`` after "what color is the
    K?", N×C in the order of the choices: one forward pass per picture (Chapter 14)."""
    logits = _next_token_logits(model, processor, items.images,
                                [COLOR_QUESTION.format(shape=k) for k in items.shape], batch_size)  # fmt: skip
    ids = torch.tensor([[_token_id(processor.tokenizer, c) for c in row] for row in items.choices])
    return logits.gather(1, ids).numpy()


def vlm_exists_scores(model: Any, processor: Any, items: ChoiceItems, batch_size: int = 256) -> np.ndarray:
    """For each candidate colour C of ``items.choices``, the tiny VLM's logit of "yes" minus that of "no"
    after "is there a C K?", N×C: one forward pass per picture and candidate (Chapter 14)."""
    per = len(items.choices[0])
    questions = [exists_question((k, c)) for k, row in zip(items.shape, items.choices, strict=True) for c in row]
    logits = _next_token_logits(model, processor, np.repeat(items.images, per, axis=0), questions, batch_size)
    yes, no = _token_id(processor.tokenizer, "yes"), _token_id(processor.tokenizer, "no")
    return (logits[:, yes] - logits[:, no]).reshape(len(items), per).numpy()


def vlm_choice_scores(model: Any, processor: Any, items: ChoiceItems) -> np.ndarray:
    """The tiny VLM's scores of the choices through the questions it was trained on (Chapter 11): "what
    color is the K?" on the one-shape pictures of the colour test (:func:`vlm_colour_logits`), "is there a
    C K?" on the pictures of the binding test (:func:`vlm_exists_scores`) (Chapter 14)."""
    if items.kind not in KINDS:
        raise ValueError(f"items.kind must be one of {KINDS}, got {items.kind!r}")
    if items.kind == "colour":
        return vlm_colour_logits(model, processor, items)
    return vlm_exists_scores(model, processor, items)


def correct(scores: np.ndarray, answer: np.ndarray) -> np.ndarray:
    """Whether the highest score of each row is at ``answer`` (ties count as wrong) (Chapter 14)."""
    top = scores.max(1)
    right = scores[np.arange(len(scores)), answer]
    return (right == top) & ((scores == top[:, None]).sum(1) == 1)


def difference_interval(
    seen: Sequence[bool] | np.ndarray, unseen: Sequence[bool] | np.ndarray, *, level: float = 0.95,
    resamples: int = 10_000, seed: int = 0,
) -> tuple[float, float, float]:  # fmt: skip
    """The accuracy gap ``mean(seen) - mean(unseen)`` and a percentile bootstrap interval at ``level``
    (each group resampled with replacement, independently) (Chapter 14)."""
    a, b = np.asarray(seen, dtype=float), np.asarray(unseen, dtype=float)
    if a.size == 0 or b.size == 0:
        raise ValueError("both groups need at least one item")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level!r}")
    rng = np.random.default_rng(seed)
    boots = (a[rng.integers(0, a.size, (resamples, a.size))].mean(1)
             - b[rng.integers(0, b.size, (resamples, b.size))].mean(1))  # fmt: skip
    tail = (1 - level) / 2
    low, high = np.quantile(boots, [tail, 1 - tail])
    return float(a.mean() - b.mean()), float(low), float(high)
