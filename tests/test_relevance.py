"""Relevance maps of Chapter 14: rollout by hand, gradient × input against finite differences, the
pointing game against the pixel truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mmbook.data import SHAPE_KINDS
from mmbook.data.world import SIZES
from mmbook.relevance import (
    METHODS,
    attention_rollout,
    chefer_relevance,
    gradient_x_input,
    image_text_scores,
    patch_sums,
    pointing_game,
    relevance_maps,
    truth_masks,
)


def test_rollout_of_a_two_layer_toy_by_hand() -> None:
    # layer 1: two heads whose mean is [[0.2, 0.8], [0.6, 0.4]]; layer 2: one head
    layer1 = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]], [[0.4, 0.6], [0.2, 0.8]]]])
    layer2 = torch.tensor([[[[1.0, 0.0], [0.5, 0.5]]]])
    # 0.5 A + 0.5 I: [[0.6, 0.4], [0.3, 0.7]] and [[1, 0], [0.25, 0.75]]; their product, layer 2 first:
    expected = torch.tensor([[[0.6, 0.4], [0.375, 0.625]]])
    torch.testing.assert_close(attention_rollout([layer1, layer2]), expected)
    torch.testing.assert_close(attention_rollout([layer1]), torch.tensor([[[0.6, 0.4], [0.3, 0.7]]]))
    with pytest.raises(ValueError, match="at least one layer"):
        attention_rollout([])


def test_chefer_rule_with_unit_gradients_is_a_product() -> None:
    attentions = [torch.softmax(torch.randn(1, 2, 3, 3, generator=torch.Generator().manual_seed(s)), -1)
                  for s in range(2)]
    ones = [torch.ones_like(a) for a in attentions]
    a1, a2 = (a.mean(1)[0] for a in attentions)
    eye = torch.eye(3)
    torch.testing.assert_close(chefer_relevance(attentions, ones)[0], (eye + a2) @ (eye + a1))
    negative = [-g for g in ones]  # (∇A ⊙ A)⁺ = 0: nothing but the identity is left
    torch.testing.assert_close(chefer_relevance(attentions, negative)[0], eye)


@pytest.fixture(scope="module")
def toy_clip():
    from mmbook import contrastive
    from mmbook.data import tokenizer
    from transformers import CLIPModel

    torch.manual_seed(0)
    return CLIPModel(contrastive.clip_config(tokenizer())).double().eval()


def test_gradient_x_input_matches_finite_differences(toy_clip) -> None:
    x = torch.randn(2, 3, 48, 48, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    texts = torch.nn.functional.normalize(torch.randn(2, 64, dtype=torch.float64), dim=-1)
    per_patch = patch_sums(gradient_x_input(toy_clip, x, texts))
    eps = 1e-5
    for row, col in [(0, 0), (1, 2), (2, 1)]:
        mask = torch.zeros_like(x)
        mask[:, :, 16 * row : 16 * row + 16, 16 * col : 16 * col + 16] = 1
        with torch.no_grad():  # d/dε score(x + ε · mask ⊙ x) at ε = 0 is the patch's gradient × input
            up = image_text_scores(toy_clip, x + eps * mask * x, texts)[0]
            down = image_text_scores(toy_clip, x - eps * mask * x, texts)[0]
        torch.testing.assert_close(per_patch[:, row, col], (up - down) / (2 * eps), rtol=1e-6, atol=1e-9)


def test_patch_sum_equals_gradient_x_input_of_the_patch_embedding(toy_clip) -> None:
    x = torch.randn(1, 3, 48, 48, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    texts = torch.nn.functional.normalize(torch.randn(1, 64, dtype=torch.float64), dim=-1)
    captured = {}
    embedding = toy_clip.vision_model.embeddings.patch_embedding
    handle = embedding.register_forward_hook(lambda m, i, out: captured.setdefault("e", out))
    try:
        scores, _ = image_text_scores(toy_clip, x, texts)
        (grad,) = torch.autograd.grad(scores.sum(), captured["e"])
    finally:
        handle.remove()
    per_token = (captured["e"] * grad).sum(1)  # (1, 3, 3): the conv keeps the grid layout
    torch.testing.assert_close(patch_sums(gradient_x_input(toy_clip, x, texts)), per_token.detach())


def test_relevance_maps_have_the_grid_shape_and_restore_attention(toy_clip) -> None:
    x = torch.randn(3, 3, 48, 48, dtype=torch.float64)
    texts = torch.nn.functional.normalize(torch.randn(3, 64, dtype=torch.float64), dim=-1)
    before = toy_clip.config.vision_config._attn_implementation
    for method in METHODS:
        maps = relevance_maps(toy_clip, x, texts, method)
        assert maps.shape == (3, 3, 3) and torch.isfinite(maps).all()
    rollout = relevance_maps(toy_clip, x, texts, "rollout")
    assert ((rollout > 0) & (rollout < 1)).all()
    assert toy_clip.config.vision_config._attn_implementation == before
    with pytest.raises(ValueError, match="unknown method"):
        relevance_maps(toy_clip, x, texts, "saliency")


def test_every_shape_covers_the_centre_of_its_cell() -> None:
    objects = [{"shape": k, "size": z, "row": r, "col": c}
               for k in SHAPE_KINDS for z in SIZES for r in range(3) for c in range(3)]
    truth = truth_masks(objects)
    right = np.zeros((len(objects), 3, 3))
    right[np.arange(len(objects)), [o["row"] for o in objects], [o["col"] for o in objects]] = 1
    assert pointing_game(right, truth).all()
    wrong = np.roll(right.reshape(len(objects), 9), 1, axis=1)  # the next cell: never on the shape
    assert not pointing_game(wrong, truth).any()
    assert (truth.sum((1, 2)) > 10).all() and truth.max() <= 1
