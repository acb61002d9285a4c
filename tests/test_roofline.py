"""mmbook.roofline: FLOP formula against PyTorch's counter, intensity, roofline, traffic (Chapter 13)."""

from __future__ import annotations

import pytest
import torch
from mmbook import roofline


@pytest.fixture(scope="module")
def tiny_gpt2() -> torch.nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=50, n_positions=16, n_embd=16, n_layer=2, n_head=2)
    return GPT2LMHeadModel(config).eval()


def test_transformer_formula_equals_the_counter(tiny_gpt2: torch.nn.Module) -> None:
    c = tiny_gpt2.config
    batch, tokens = 3, 7
    ids = torch.randint(0, c.vocab_size, (batch, tokens))
    with torch.no_grad():
        counted = roofline.counted_flops(lambda: tiny_gpt2(input_ids=ids))
        without = roofline.counted_flops(lambda: tiny_gpt2(input_ids=ids), cpu_attention=False)
    formula = batch * roofline.transformer_flops(tokens, c.n_embd, c.n_layer, 4 * c.n_embd, vocab=c.vocab_size)
    assert counted == formula
    assert formula - without == batch * c.n_layer * 4 * tokens**2 * c.n_embd  # the CPU kernel counts 0


def test_training_costs_three_forwards_plus_the_recomputed_scores(tiny_gpt2: torch.nn.Module) -> None:
    c = tiny_gpt2.config
    batch, tokens = 2, 5
    ids = torch.randint(0, c.vocab_size, (batch, tokens))
    with torch.no_grad():
        forward = roofline.counted_flops(lambda: tiny_gpt2(input_ids=ids))
    step = roofline.counted_flops(lambda: tiny_gpt2(input_ids=ids, labels=ids).loss.backward())
    tiny_gpt2.zero_grad()
    assert step == 3 * forward + batch * c.n_layer * 2 * tokens**2 * c.n_embd


def test_intensity_and_roofline() -> None:
    assert roofline.matmul_intensity(60, 60, 60) == pytest.approx(60 / 6)  # square: n/6 FLOP per byte
    assert roofline.matmul_intensity(1, 1000, 1000) < 0.5  # a matrix-vector product: at most 1/2
    assert roofline.roofline(0.1, 100.0, 10.0) == pytest.approx(1.0)
    assert roofline.roofline(1000.0, 100.0, 10.0) == 100.0
    # compute-bound: time = flops / peak; memory-bound: time = bytes / bandwidth; plus the fixed costs
    assert roofline.predicted_seconds(1e9, 1e6, 100.0, 10.0) == pytest.approx(0.01)
    assert roofline.predicted_seconds(1e6, 1e9, 100.0, 10.0, operators=10, overhead=1e-3) == pytest.approx(0.11)


def test_traffic_of_one_product() -> None:
    a, b = torch.ones(3, 4), torch.ones(4, 5)
    counted = roofline.traffic(lambda: a @ b)
    assert counted == roofline.Traffic(4 * (12 + 20 + 15), 1)


def test_measurements_are_positive() -> None:
    assert roofline.matmul_gflops(64, repeats=2) > 0
    assert roofline.copy_bandwidth(4, repeats=2) > 0
    assert 0 < roofline.operator_overhead(repeats=10) < 1e-2
