"""mmbook.distill (Chapter 13): the distillation loss, its tau**2 factor, the student and its training loop."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from mmbook import distill
from mmbook.data import tokenizer
from mmbook.experiments import compression
from mmbook.losses import clip_loss


def _logits(n: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return 3 * torch.randn(n, n, generator=g, dtype=torch.float64), 3 * torch.randn(n, n, generator=g,
                                                                                  dtype=torch.float64)


def _reference_kl(student: list[list[float]], teacher: list[list[float]], tau: float) -> float:
    """Mean over rows of sum_j p_j log(p_j / q_j), written with plain floats."""
    import math

    total = 0.0
    for s_row, t_row in zip(student, teacher, strict=True):
        zs = sum(math.exp(v / tau) for v in s_row)
        zt = sum(math.exp(v / tau) for v in t_row)
        for s, t in zip(s_row, t_row, strict=True):
            p, q = math.exp(t / tau) / zt, math.exp(s / tau) / zs
            total += p * math.log(p / q)
    return total / len(student)


@pytest.mark.parametrize("tau", [0.5, 1.0, 4.0])
def test_soft_loss_equals_a_reference_computation(tau):
    s, t = _logits()
    rows = _reference_kl(s.tolist(), t.tolist(), tau)
    cols = _reference_kl(s.T.tolist(), t.T.tolist(), tau)
    assert distill.soft_targets_loss(s, t, tau).item() == pytest.approx((rows + cols) / 2, rel=1e-12)


def test_distillation_loss_weighs_soft_and_hard_terms():
    s, t = _logits()
    soft, hard = distill.soft_targets_loss(s, t, 3.0), clip_loss(s)
    assert torch.allclose(distill.distillation_loss(s, t, 3.0, 0.25), 0.25 * 9 * soft + 0.75 * hard)
    assert torch.allclose(distill.distillation_loss(s, t, 3.0, 0.0), hard)
    assert distill.soft_targets_loss(t, t, 3.0).abs().item() < 1e-12  # a student equal to its teacher


def test_soft_gradient_is_difference_of_softened_distributions_over_tau():
    s, t = _logits()
    s.requires_grad_(True)
    tau, n = 2.5, len(s)
    distill.soft_targets_loss(s, t, tau).backward()
    rows = (F.softmax(s / tau, 1) - F.softmax(t / tau, 1)) / (tau * n)
    cols = (F.softmax(s / tau, 0) - F.softmax(t / tau, 0)) / (tau * n)
    assert torch.allclose(s.grad, (rows + cols) / 2, atol=1e-14)
    assert t.grad is None


def test_tau_squared_keeps_the_soft_gradient_scale():
    s, t = _logits(n=8)

    def grad_norm(tau: float, factor: float) -> float:
        z = s.clone().requires_grad_(True)
        (factor * distill.soft_targets_loss(z, t, tau)).backward()
        return z.grad.norm().item()

    scaled = [grad_norm(tau, tau**2) for tau in (20.0, 40.0, 80.0)]
    plain = [grad_norm(tau, 1.0) for tau in (20.0, 40.0, 80.0)]
    assert max(scaled) / min(scaled) < 1.05
    for a, b in zip(plain, plain[1:], strict=False):
        assert a / b == pytest.approx(4.0, rel=0.05)  # without tau**2 the gradient falls as 1 / tau**2


def test_bad_inputs_are_named():
    s, t = _logits()
    with pytest.raises(ValueError, match="tau must be positive"):
        distill.soft_targets_loss(s, t, 0.0)
    with pytest.raises(ValueError, match="square"):
        distill.soft_targets_loss(s[:3], t[:3], 1.0)
    with pytest.raises(ValueError, match="differ in shape"):
        distill.soft_targets_loss(s, t[:5, :5], 1.0)
    with pytest.raises(ValueError, match="alpha"):
        distill.distillation_loss(s, t, 1.0, 1.5)
    with pytest.raises(ValueError, match="width"):
        distill.student_config(tokenizer(), 0.0)


def test_student_is_half_as_wide_and_trains():
    from transformers import CLIPModel

    config = distill.student_config(tokenizer())
    assert (config.text_config.hidden_size, config.vision_config.hidden_size, config.projection_dim) == (32, 64, 32)
    assert config.vision_config.intermediate_size == 128 and config.text_config.num_hidden_layers == 2
    torch.manual_seed(0)
    student = CLIPModel(distill.student_config(tokenizer(), 0.25))
    teacher_model = CLIPModel(distill.student_config(tokenizer(), 0.25))
    pixels = torch.randn(16, 3, 48, 48)
    ids = torch.tensor(tokenizer()(["a red circle"] * 16, padding=True)["input_ids"])
    mask = torch.ones_like(ids)
    teacher = distill.teacher_embeddings(teacher_model, pixels, ids, mask)
    assert teacher.logits(torch.arange(4)).shape == (4, 4)
    history = distill.distil_clip(student, pixels, ids, mask, teacher, steps=3, batch_size=8, progress=False)
    assert len(history.losses) == 3 and all(map(torch.isfinite, torch.tensor(history.losses)))
    with pytest.raises(ValueError, match="embedded 16 pairs"):
        distill.distil_clip(student, pixels[:8], ids[:8], mask[:8], teacher, steps=3, batch_size=4, progress=False)


def test_zoo_training_keeps_the_callers_state_and_saves_a_half_width_clip(tmp_path):
    from transformers import CLIPModel

    settings = dataclasses.replace(compression.DISTILLED, n_pairs=64, steps=2, batch_size=16)
    torch.manual_seed(123)
    state, threads = torch.get_rng_state(), torch.get_num_threads()
    record = compression.train_student(tmp_path, settings)
    assert torch.equal(torch.get_rng_state(), state) and torch.get_num_threads() == threads
    assert len(record["losses"]) == 2
    assert CLIPModel.from_pretrained(tmp_path).config.vision_config.hidden_size == 64
    names = {e.name for e in compression.STUDENT_ENTRIES} | {compression.LORA_SWEEP_ENTRY.name}
    assert names == {"tiny-clip-student-distilled", "tiny-clip-student-scratch", "tiny-clip-lora-sweep"}
