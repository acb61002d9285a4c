"""mmbook.experiments.clip_bench: one test of a CLIP model, scored alike for every variant (Chapter 13)."""

from __future__ import annotations

import pytest
import torch
from mmbook import contrastive
from mmbook.data import make_shapes
from mmbook.experiments.clip_bench import clip_scores, clip_test


@pytest.fixture(scope="module")
def small() -> tuple:
    from transformers import CLIPModel

    proc = contrastive.processor(make_shapes(64, seed=0).images)
    torch.manual_seed(0)
    model = CLIPModel(contrastive.clip_config(proc.tokenizer)).eval()
    return model, proc, clip_test(proc, n_gallery=60, n_single=50)


def test_scores_are_fractions_and_repeatable(small: tuple) -> None:
    model, proc, test = small
    first, again = clip_scores(model, proc, test), clip_scores(model, proc, test)
    assert set(first) == {"R@1", "zero-shot colour", "zero-shot shape"}
    assert first == again
    assert all(0.0 <= v <= 1.0 for v in first.values())


def test_any_model_with_the_two_feature_methods_is_scored(small: tuple) -> None:
    model, proc, test = small

    class Wrapped(torch.nn.Module):  # not a CLIPModel: a student or an exported model looks like this
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def get_image_features(self, pixel_values):  # noqa: ANN001, ANN201
            return model.get_image_features(pixel_values=pixel_values)

        def get_text_features(self, input_ids, attention_mask):  # noqa: ANN001, ANN201
            return model.get_text_features(input_ids=input_ids, attention_mask=attention_mask)

    assert clip_scores(Wrapped(), proc, test) == clip_scores(model, proc, test)


def test_a_model_without_clip_features_is_named() -> None:
    with pytest.raises(TypeError, match="needs a CLIP model .* not Linear"):
        clip_scores(torch.nn.Linear(2, 2), None, None)  # type: ignore[arg-type]
