"""mmbook.lora (Chapter 13): the from-scratch LoRA layer against peft's, merging, counts and bad input."""

from __future__ import annotations

import copy

import pytest
import torch
from mmbook import lora
from peft import LoraConfig, get_peft_model
from torch import nn


class Block(nn.Module):
    """Two attention-like projections and an MLP, named as in CLIP."""

    def __init__(self) -> None:
        super().__init__()
        self.q_proj, self.v_proj = nn.Linear(12, 12), nn.Linear(12, 12)
        self.fc1, self.fc2 = nn.Linear(12, 24), nn.Linear(24, 12)
        self.norm = nn.LayerNorm(12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x + self.q_proj(x) * torch.sigmoid(self.v_proj(x)))
        return self.fc2(torch.relu(self.fc1(h)))


TARGETS = ("q_proj", "v_proj", "fc1", "fc2")


def _pair(rank: int = 4, alpha: float = 8.0) -> tuple[nn.Module, nn.Module]:
    """peft's LoRA and ours on copies of one block, with the same (non-zero) adapter weights."""
    torch.manual_seed(0)
    base = Block()
    ref = get_peft_model(copy.deepcopy(base), LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(TARGETS),
                                                         lora_dropout=0.0))
    mine = copy.deepcopy(base)
    assert lora.add_lora(mine, TARGETS, rank, alpha) == list(TARGETS)
    with torch.no_grad():
        for name in TARGETS:
            theirs = ref.base_model.model.get_submodule(name)
            theirs.lora_B["default"].weight.normal_()
            ours = mine.get_submodule(name)
            ours.lora_A.copy_(theirs.lora_A["default"].weight)
            ours.lora_B.copy_(theirs.lora_B["default"].weight)
    return ref, mine


def test_equals_peft_in_outputs_and_gradients():
    ref, mine = _pair()
    x = torch.randn(5, 12)
    a, b = ref(x), mine(x)
    assert (a - b).abs().max() <= 1e-6
    a.square().sum().backward()
    b.square().sum().backward()
    for name in TARGETS:
        theirs, ours = ref.base_model.model.get_submodule(name), mine.get_submodule(name)
        assert (theirs.lora_A["default"].weight.grad - ours.lora_A.grad).abs().max() <= 1e-6
        assert (theirs.lora_B["default"].weight.grad - ours.lora_B.grad).abs().max() <= 1e-6
    trained_ref = {n for n, p in ref.named_parameters() if p.requires_grad}
    trained_mine = {n for n, p in mine.named_parameters() if p.requires_grad}
    assert len(trained_ref) == len(trained_mine) == 2 * len(TARGETS)


def test_merge_equals_unmerged_and_peft_merge():
    ref, mine = _pair()
    x = torch.randn(5, 12)
    unmerged = mine(x).detach()
    merged = lora.merge_lora(mine)
    assert not any(isinstance(m, lora.LoRALinear) for m in merged.modules())
    assert all(type(merged.get_submodule(n)) is nn.Linear for n in TARGETS)
    # W x + B (A x) and (W + B A) x round differently in float32: compare relative to the output's size
    torch.testing.assert_close(merged(x), unmerged, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ref.merge_and_unload()(x), merged(x), rtol=1e-6, atol=1e-6)


def test_starts_as_the_base_model_and_trains_only_adapters():
    torch.manual_seed(0)
    base = Block()
    wrapped = copy.deepcopy(base)
    lora.add_lora(wrapped, TARGETS, 2, 2.0)
    x = torch.randn(3, 12)
    assert torch.equal(base(x), wrapped(x))  # B starts at zero
    trained = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
    assert (trained, 12 * 12 * 2 + 2 * 12 * 24) == lora.lora_parameter_count(wrapped, TARGETS, 2)
    assert trained == 2 * (24 + 24 + 36 + 36)


def test_adam_keeps_two_floats_per_trained_number():
    torch.manual_seed(0)
    model = Block()
    lora.add_lora(model, TARGETS, 3, 3.0)
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params)
    model(torch.randn(4, 12)).sum().backward()
    optimiser.step()
    n = sum(p.numel() for p in params)
    assert lora.adam_state_bytes(optimiser) == 2 * 4 * n + 4 * len(params)  # plus a float32 step per tensor


def test_bad_input_names_the_module():
    from transformers.pytorch_utils import Conv1D

    model = nn.Sequential()
    model.add_module("c_attn", Conv1D(6, 4))
    with pytest.raises(TypeError, match="'c_attn' is a Conv1D"):
        lora.add_lora(model, ["c_attn"], 2, 2.0)
    with pytest.raises(ValueError, match="no module of Block is named nothing_here"):
        lora.add_lora(Block(), ["nothing_here"], 2, 2.0)
    with pytest.raises(ValueError, match="rank must be at least 1"):
        lora.LoRALinear(nn.Linear(3, 3), 0, 1.0)
    with pytest.raises(TypeError, match="wraps an nn.Linear, got Embedding"):
        lora.LoRALinear(nn.Embedding(3, 3), 2, 1.0)
