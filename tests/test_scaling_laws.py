"""Chapter 14's scaling laws: FLOP counts, power-law fits, the frontier and the sweep's zoo entry."""

import dataclasses

import numpy as np
import pytest
import torch
from mmbook import scaling_laws as sl
from mmbook.experiments import scaling

COMPUTE = np.logspace(9, 13, 9)


def test_the_log_log_fit_recovers_an_exact_power_law_and_agrees_with_polyfit():
    loss = 3.0 * COMPUTE**-0.3
    law = sl.fit_power_law(COMPUTE, loss)
    assert law.a == pytest.approx(3.0, rel=1e-9) and law.b == pytest.approx(0.3, rel=1e-9)
    assert law.rms_log_residual < 1e-9
    noisy = loss * np.exp(np.random.default_rng(0).normal(0, 0.05, len(loss)))
    slope, intercept = np.polyfit(np.log(COMPUTE), np.log(noisy), 1)
    fitted = sl.fit_power_law(COMPUTE, noisy)
    assert fitted.b == pytest.approx(-slope, rel=1e-9) and np.log(fitted.a) == pytest.approx(intercept, rel=1e-9)
    assert fitted.rms_log_residual > 0.01


def test_the_floor_fit_recovers_an_exact_law_and_agrees_with_curve_fit():
    from scipy.optimize import curve_fit

    loss = 0.4 + 50.0 * COMPUTE**-0.2
    law = sl.fit_power_law_floor(COMPUTE, loss)
    assert (law.floor, law.a, law.b) == pytest.approx((0.4, 50.0, 0.2), rel=1e-5)
    noisy = loss * np.exp(np.random.default_rng(1).normal(0, 0.02, len(loss)))
    fitted = sl.fit_power_law_floor(COMPUTE, noisy)

    def log_model(log_c, floor, log_a, b):
        return np.log(floor + np.exp(log_a - b * log_c))

    (floor, log_a, b), _ = curve_fit(log_model, np.log(COMPUTE), np.log(noisy), p0=(0.3, np.log(30), 0.15))
    assert (fitted.floor, np.log(fitted.a), fitted.b) == pytest.approx((floor, log_a, b), rel=1e-3)
    assert fitted(COMPUTE) == pytest.approx(np.exp(log_model(np.log(COMPUTE), floor, log_a, b)), rel=1e-4)


def test_fits_reject_what_they_cannot_fit():
    with pytest.raises(ValueError, match="positive"):
        sl.fit_power_law([1.0, 2.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="same compute"):
        sl.fit_power_law([5.0, 5.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="3 or more"):
        sl.fit_power_law_floor([1.0, 2.0], [2.0, 1.0])
    with pytest.raises(ValueError, match="equally long"):
        sl.frontier([1.0, 2.0], [1.0])


def test_the_frontier_keeps_the_runs_no_cheaper_run_beats():
    compute = [1, 2, 2, 4, 8, 8]
    loss = [3.0, 2.5, 2.0, 2.2, 1.5, 1.0]
    assert sl.frontier(compute, loss).tolist() == [0, 2, 5]


def test_the_flop_count_is_six_n_d_plus_attention_and_the_first_layer():
    tower = sl.Tower(parameters=1000, tokens=10, layers=2, width=16, input_parameters=300, inputs=9)
    assert sl.tower_flops(tower) == 6 * 1000 * 10 + 12 * 2 * 10**2 * 16 + 4 * 300 * 9
    weights_only = sl.Tower(parameters=1000, tokens=10, layers=0, width=16)
    assert sl.training_flops(32, [weights_only]) == 6 * 1000 * (32 * 10)  # 6·N·D, D tokens


def test_the_count_matches_pytorchs_flop_counter_on_a_clip_training_step():
    from mmbook import distill, roofline
    from mmbook.data import tokenizer
    from mmbook.losses import clip_loss
    from transformers import CLIPModel

    torch.manual_seed(0)
    model = CLIPModel(distill.student_config(tokenizer(), 0.25))
    batch = tokenizer()(["a red circle in the center", "a blue square"] * 8, padding=True, return_tensors="pt")
    pixels = torch.randn(16, 3, 48, 48)

    def step():
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], pixel_values=pixels)
        clip_loss(out.logits_per_text).backward()

    vision, text = sl.clip_towers(model, batch["input_ids"].shape[1])
    assert vision.parameters == sum(p.numel() for p in model.vision_model.encoder.parameters()) + sum(
        p.numel() for name, p in model.vision_model.named_parameters() if "layrnorm" in name or "layernorm" in name
    )
    assert (vision.tokens, vision.inputs, vision.input_parameters) == (10, 9, 16 * 16 * 3 * 32)
    assert roofline.counted_flops(step) == pytest.approx(sl.training_flops(16, [vision, text]), rel=0.03)


def test_batch_widths_are_the_widths_train_clip_feeds_the_text_tower():
    from mmbook import contrastive, distill
    from mmbook.data import tokenizer
    from transformers import CLIPModel

    captions = ["a red circle", "a blue square in the top left and a green triangle in the center"] * 4
    ids, mask = contrastive.tokens(tokenizer(), captions)
    torch.manual_seed(0)
    model = CLIPModel(distill.student_config(tokenizer(), 0.125))
    seen = []
    model.text_model.embeddings.register_forward_hook(lambda module, args, out: seen.append(out.shape[1]))
    contrastive.train_clip(model, torch.randn(8, 3, 48, 48), ids, mask, steps=6, batch_size=2, seed=3, progress=False)
    assert scaling.batch_widths(mask, 6, 2, 3) == seen and len(set(seen)) == 2


def test_the_sweep_is_declared_trains_small_and_keeps_the_callers_state(tmp_path):
    from mmbook import zoo

    assert zoo.REGISTRY["tiny-clip-scaling-sweep"] is scaling.SCALING_SWEEP_ENTRY
    settings = dataclasses.replace(scaling.SCALING_SWEEP, widths=(0.125,), steps=(2, 4), batch_size=8, n_test=16)
    torch.manual_seed(123)
    state, threads = torch.get_rng_state(), torch.get_num_threads()
    scaling.train_scaling_sweep(tmp_path, settings)
    assert torch.equal(torch.get_rng_state(), state) and torch.get_num_threads() == threads
    runs = scaling._load_sweep(tmp_path)
    assert [(r["width"], r["steps"], r["pairs"]) for r in runs] == [(0.125, 2, 16), (0.125, 4, 32)]
    assert all(r["text_tokens"] > 1 and np.isfinite(r["loss"]) for r in runs)
    with pytest.raises(ValueError, match="runs, not"):
        scaling._check_sweep(runs)
