"""mmbook.experiments.compress_bench: fixed tests of the tiny VLM and the tiny GPT-2 (Chapter 13)."""

from __future__ import annotations

import copy
import math

import torch
from mmbook import zoo
from mmbook.experiments import compress_bench


def test_lm_scores_are_a_loss_and_its_perplexity() -> None:
    model, tokenizer = zoo.load("tiny-gpt2")
    test = compress_bench.lm_test(tokenizer, n=20)
    assert test.input_ids.shape == test.attention_mask.shape and test.input_ids.shape[0] == 20
    scores = compress_bench.lm_scores(model, test)
    assert math.isclose(scores["perplexity"], math.exp(scores["loss"]))
    damaged = copy.deepcopy(model)  # zoo.load shares one copy per process: never change it in place
    torch.manual_seed(0)
    with torch.no_grad():
        for p in damaged.transformer.h.parameters():
            p.add_(torch.randn_like(p))
    assert compress_bench.lm_scores(damaged, test)["loss"] > scores["loss"]


def test_vlm_scores_are_fractions_and_repeatable() -> None:
    model, processor = zoo.load("tiny-vlm")
    test = compress_bench.vlm_test(processor, n_scenes=8)
    assert set(test.turns) == {"colour", "count", "POPE"} and len(test.turns["POPE"]) == 16
    first = compress_bench.vlm_scores(model, processor, test)
    assert set(first) == {"colour", "count", "POPE"}
    assert first == compress_bench.vlm_scores(model, processor, test)
    assert all(0.0 <= v <= 1.0 for v in first.values())
