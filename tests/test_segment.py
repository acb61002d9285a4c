"""Segmentation from patch tokens (Chapter 12): the readings, the pixel truth, IoU and the baselines."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmbook import contrastive
from mmbook import segment as sg
from mmbook.data import make_shapes


@pytest.fixture(scope="module")
def model_and_scenes():
    from transformers import CLIPModel

    scenes = make_shapes(6, seed=1)
    proc = contrastive.processor(scenes.images)
    torch.manual_seed(0)
    model = CLIPModel(contrastive.clip_config(proc.tokenizer, text_hidden=32, vision_hidden=32)).eval()
    return model, contrastive.pixels(proc, scenes.images), scenes


def test_patch_readings(model_and_scenes) -> None:
    model, pixels, _ = model_and_scenes
    tower = model.vision_model
    with torch.no_grad():
        hidden = tower(pixel_values=pixels, output_hidden_states=True).hidden_states
        # the class token through post_layernorm and the projection is CLIP's image embedding
        cls = F.normalize(model.visual_projection(tower.post_layernorm(hidden[-1][:, 0])), dim=-1)
        assert torch.allclose(cls, contrastive.embed_images(model, pixels), atol=1e-5)
        # the value reading is what the last attention gives a token that attends only to itself
        layer = tower.encoder.layers[-1]
        alone = torch.stack([layer.self_attn(layer.layer_norm1(hidden[-2][:, j : j + 1]))[0][:, 0]
                             for j in range(1, 10)], 1)
    expected = F.normalize(model.visual_projection(tower.post_layernorm(alone)), dim=-1)
    value = sg.patch_embeddings(model, pixels, "value")
    assert value.shape == (len(pixels), 9, model.config.projection_dim)
    assert torch.allclose(value, expected, atol=1e-5)
    assert not torch.allclose(sg.patch_embeddings(model, pixels, "last"), value, atol=1e-3)
    with pytest.raises(ValueError, match="reading"):
        sg.patch_embeddings(model, pixels, "first")


def test_truth_masks_are_the_named_objects_pixels(model_and_scenes) -> None:
    _, _, scenes = model_and_scenes
    colours = [objects[0]["color"] for objects in scenes.attributes]
    truth = sg.truth_masks(scenes.attributes, "color", colours, 32)
    assert truth.flatten(1).any(1).all()
    # the palette colour sits on the truth pixels and (almost) nowhere else
    assert sg.iou(sg.colour_threshold(scenes.images, colours), truth).mean() > 0.7
    assert sg.iou(truth, truth).eq(1).all()
    assert (sg.iou(sg.cell_ceiling(truth), truth) <= 1).all()
    assert (sg.cell_ceiling(truth) >= truth).all()


def test_predict_masks_follow_the_winning_cell() -> None:
    maps = torch.zeros(1, 2, 3, 3)
    maps[0, 0, 0, 0] = 1.0  # class 0 wins the top-left cell
    maps[0, 1] = 0.1
    up = sg.upsample(maps, 32)
    assert up.shape == (1, 2, 32, 32)
    mask = sg.predict_masks(up, torch.tensor([0]), threshold=0.5)
    assert mask[0, :4, :4].all() and not mask[0, 16:, :].any() and not mask[0, :, 16:].any()
    assert not sg.predict_masks(up, torch.tensor([1]), threshold=0.5).any()
    assert sg.predict_masks(up, torch.tensor([1]), threshold=0.0)[0, 31, 31]


def test_iou_and_centre_box() -> None:
    a = torch.zeros(2, 4, 4, dtype=torch.bool)
    b = torch.zeros(2, 4, 4, dtype=torch.bool)
    a[0, :2, :2] = True
    b[0, :2, :] = True
    assert sg.iou(a, b).tolist() == [0.5, 1.0]
    box = sg.centre_box(1, 32)
    assert box.sum() == 10 * 10 and box[0, 16, 16] and not box[0, 10, 16]  # rows 11..20
    assert np.isclose(sg.score_maps(torch.eye(9)[None], torch.eye(9)).sum().item(), 9)
