"""Fixed tests of the tiny VLM and the tiny GPT-2, scored the same way before and after compression (Chapter 13).

:func:`vlm_test` prepares a small version of Chapter 11's held-out questions (colour of one shape, how many
shapes, POPE "random" yes/no) and :func:`vlm_scores` scores any model with the tiny VLM's ``generate``
(a quantized copy included). :func:`lm_test` tokenizes held-out shapes-world captions (a seed the tiny
GPT-2 never trained on) and :func:`lm_scores` gives their mean next-token loss and perplexity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mmbook.data import instruct
from mmbook.data.shapes import make_shapes
from mmbook.tiny_models import caption_corpus
from mmbook.vlm_eval import answer_batch, pope_scores, popular_ranking


@dataclass(frozen=True)
class VlmTest:
    """Pictures and questions of the VLM test, prepared once (Chapter 13)."""

    pixels: dict[str, Tensor]
    turns: dict[str, list[instruct.Turn]]


def vlm_test(processor: Any, n_scenes: int = 150, seed: int = 1001) -> VlmTest:
    """Colour questions on ``n_scenes`` one-shape pictures, count and POPE-random questions on ``n_scenes``
    scenes (fresh seeds, as Chapter 11's evaluation)."""
    scenes = make_shapes(n_scenes, seed=seed, max_shapes=4)
    single = make_shapes(n_scenes, seed=seed + 1, max_shapes=1)

    def pixels(images: np.ndarray) -> Tensor:
        return processor.image_processor(images=list(images), return_tensors="pt")["pixel_values"]

    scene_px, single_px = pixels(scenes.images), pixels(single.images)
    turns = {
        "colour": instruct.instructions(single, instruct.CANDIDATES, kinds=("color",)),
        "count": instruct.instructions(scenes, instruct.CANDIDATES, kinds=("count",)),
        "POPE": instruct.pope(scenes, "random", instruct.CANDIDATES, popular_ranking(), seed=seed),
    }
    return VlmTest({"colour": single_px, "count": scene_px, "POPE": scene_px}, turns)


@torch.no_grad()
def vlm_scores(model: Any, processor: Any, test: VlmTest) -> dict[str, float]:
    """Accuracy of greedy answers: exact colour word, exact count word, POPE yes/no accuracy (Chapter 13)."""
    scores = {}
    for name, turns in test.turns.items():
        answers = answer_batch(model, processor.tokenizer, test.pixels[name][[t.image for t in turns]],
                               [t.question for t in turns], max_new_tokens=3)  # fmt: skip
        truths = [t.answer for t in turns]
        if name == "POPE":
            scores[name] = pope_scores(answers, truths)["accuracy"]
        else:
            scores[name] = float(np.mean([a == t for a, t in zip(answers, truths, strict=True)]))
    return scores


@dataclass(frozen=True)
class LmTest:
    """Token ids of held-out captions, padded, with their mask (Chapter 13)."""

    input_ids: Tensor
    attention_mask: Tensor


def lm_test(tokenizer: Any, n: int = 300, seed: int = 7) -> LmTest:
    """``n`` shapes-world captions from ``seed`` (the tiny GPT-2 trained on seed 0), tokenized and padded."""
    rows = [tokenizer(c)["input_ids"] for c in caption_corpus(n, seed=seed)]
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return LmTest(ids, mask)


@torch.no_grad()
def lm_scores(model: Any, test: LmTest) -> dict[str, float]:
    """Mean next-token loss (nats per token, padding excluded) and perplexity ``exp(loss)`` (Chapter 13)."""
    logits = model(input_ids=test.input_ids, attention_mask=test.attention_mask).logits[:, :-1]
    targets = test.input_ids[:, 1:].masked_fill(test.attention_mask[:, 1:] == 0, -100)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                             ignore_index=-100).item()  # fmt: skip
    return {"loss": loss, "perplexity": math.exp(loss)}
