"""Measuring the book's tiny VLM: greedy answers on held-out scenes, scored (Chapter 11).

:func:`evaluate` asks colour, count, POPE (random, popular, adversarial; noisy and blank pictures) and
describe questions about pictures training never saw; :func:`pope_scores` is POPE's accuracy, precision,
recall, F1 and "yes" rate; :func:`popular_ranking` and :func:`world_statistics` describe the training
pictures that POPE's "popular" and "adversarial" settings are built from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mmbook import vlm as vlm_module
from mmbook.data import instruct
from mmbook.data.shapes import make_shapes
from mmbook.vlm import TinyVLM
from mmbook.vlm_train import TINY_VLM, TinyVLMSettings, training_scenes


@torch.no_grad()
def answer_batch(
    model: TinyVLM, tokenizer: Any, pixel_values: Tensor, questions: list[str], max_new_tokens: int,
    batch_size: int = 256,
) -> list[str]:  # fmt: skip
    """Greedy answers to ``questions`` about the pictures ``pixel_values`` (one each), prompts padded on the
    left (Chapter 11)."""
    model.eval()
    out = []
    for s in range(0, len(questions), batch_size):
        texts = [vlm_module.expand_image(vlm_module.prompt_text(tokenizer, q), model.n_image_tokens)
                 for q in questions[s : s + batch_size]]  # fmt: skip
        rows = tokenizer(texts, add_special_tokens=False)["input_ids"]
        width = max(len(r) for r in rows)
        ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(r)) + r for r in rows])
        mask = (torch.arange(width) >= torch.tensor([width - len(r) for r in rows])[:, None]).long()
        new = model.generate(pixel_values[s : s + batch_size], ids, mask, max_new_tokens=max_new_tokens,
                             eos_token_id=tokenizer.eos_token_id)  # fmt: skip
        out.extend(tokenizer.decode(row, skip_special_tokens=True).strip() for row in new)
    return out


def _pixels(image_processor: Any, images: np.ndarray) -> Tensor:
    return image_processor(images=list(images), return_tensors="pt")["pixel_values"]


def pope_scores(answers: list[str], truths: list[str]) -> dict[str, float]:
    """POPE's accuracy, precision, recall, F1 and "yes" rate of yes/no ``answers`` (Chapter 11)."""
    said = np.array([a.split()[:1] == ["yes"] for a in answers])
    truth = np.array([t == "yes" for t in truths])
    tp = float((said & truth).sum())
    precision = tp / max(1, said.sum())
    recall = tp / max(1, truth.sum())
    return {
        "accuracy": float((said == truth).mean()), "precision": precision, "recall": recall,
        "f1": 2 * precision * recall / max(1e-12, precision + recall), "yes_rate": float(said.mean()),
    }  # fmt: skip


@dataclass(frozen=True)
class EvalSettings:
    """Which held-out scenes :func:`evaluate` asks about (fresh seeds: pictures training never saw)."""

    n_scenes: int = 300
    n_single: int = 200
    seed: int = 1001
    max_shapes: int = 4
    split: str = "train"
    noise_std: float = 60.0


def popular_ranking(settings: TinyVLMSettings = TINY_VLM) -> list[instruct.Pair]:
    """The candidate objects, most frequent in the stage-2 training pictures first (ties in table order)."""
    counts = instruct.object_frequency(training_scenes(settings))
    return sorted(instruct.CANDIDATES, key=lambda c: -counts[c])


def world_statistics(settings: TinyVLMSettings = TINY_VLM) -> dict[str, float]:
    """How flat object frequencies and co-occurrences of the training pictures are: the least and most
    frequent candidate (pictures containing it) and the least and most frequent ordered pair of
    candidates in one picture (Chapter 11; why "adversarial" means near misses here)."""
    scenes = training_scenes(settings)
    freq, co, candidates = instruct.object_frequency(scenes), instruct.cooccurrence(scenes), instruct.CANDIDATES
    pair_counts = [co[(a, b)] for a in candidates for b in candidates if a != b]
    return {"frequency_min": min(freq[c] for c in candidates), "frequency_max": max(freq[c] for c in candidates),
            "cooccurrence_min": min(pair_counts), "cooccurrence_max": max(pair_counts)}  # fmt: skip


def evaluate(
    model: TinyVLM, tokenizer: Any, image_processor: Any, settings: EvalSettings = EvalSettings(),
    popular: list[instruct.Pair] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Greedy answers on held-out scenes (Chapter 11): ``color`` (exact colour word, one-shape pictures),
    ``count``, ``pope`` per setting (accuracy, precision, recall, F1, yes rate), ``pope_noisy`` and
    ``pope_blank`` (random setting; on blank pictures every object is absent), ``describe`` (truth rate,
    completeness, exact rate)."""
    e = settings
    popular = popular or popular_ranking()
    scenes = make_shapes(e.n_scenes, seed=e.seed, max_shapes=e.max_shapes, split=e.split)
    single = make_shapes(e.n_single, seed=e.seed + 1, max_shapes=1, split=e.split)
    pixels, single_pixels = _pixels(image_processor, scenes.images), _pixels(image_processor, single.images)
    result: dict[str, Any] = {}

    def ask(px: Tensor, turns: list[instruct.Turn], max_new: int) -> list[str]:
        return answer_batch(model, tokenizer, px[[t.image for t in turns]], [t.question for t in turns], max_new)

    def accuracy(answers: list[str], turns: list[instruct.Turn]) -> float:
        return float(np.mean([a == t.answer for a, t in zip(answers, turns, strict=True)]))

    color = instruct.instructions(single, instruct.CANDIDATES, kinds=("color",))
    result["color"] = accuracy(ask(single_pixels, color, 3), color)
    count = instruct.instructions(scenes, instruct.CANDIDATES, kinds=("count",))
    result["count"] = accuracy(ask(pixels, count, 3), count)
    result["pope"] = {}
    for setting in instruct.POPE_SETTINGS:
        turns = instruct.pope(scenes, setting, instruct.CANDIDATES, popular, seed=e.seed)
        result["pope"][setting] = pope_scores(ask(pixels, turns, 3), [t.answer for t in turns])
    turns = instruct.pope(scenes, "random", instruct.CANDIDATES, popular, seed=e.seed)
    rng = np.random.default_rng(e.seed)
    noisy = np.clip(scenes.images + rng.normal(0, e.noise_std, scenes.images.shape), 0, 255).astype(np.uint8)
    result["pope_noisy"] = pope_scores(ask(_pixels(image_processor, noisy), turns, 3), [t.answer for t in turns])
    blank = np.full_like(scenes.images, 30)
    answers = ask(_pixels(image_processor, blank), turns, 3)
    result["pope_blank"] = pope_scores(answers, ["no"] * len(turns))
    describe = instruct.instructions(scenes, instruct.CANDIDATES, kinds=("describe",))
    captions = ask(pixels, describe, 24)
    scores = [instruct.describe_score(c, scenes.attributes[t.image]) for c, t in zip(captions, describe, strict=True)]
    result["describe"] = {k: float(np.mean([s[k] for s in scores])) for k in ("true", "complete", "exact")}
    result["describe_examples"] = captions[:5]
    return result
