"""A fixed test of the tiny CLIP, scored the same way before and after a model is made smaller (Chapter 13).

Chapter 6 measures the tiny CLIP with text→image recall at 1 on a gallery of held-out scenes and with
zero-shot classification of one-shape pictures. Chapter 13 quantizes, prunes, distils and exports the
same model and needs those scores for every variant, on the same data: :func:`clip_test` builds the
tensors once and :func:`clip_scores` scores any model with CLIP's ``get_image_features`` and
``get_text_features`` (a ``CLIPModel``, a quantized or pruned copy, a smaller student).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mmbook import contrastive
from mmbook.data import COLORS, SHAPE_KINDS, make_shapes
from mmbook.metrics import recall_at_k

#: The prompts of Chapter 6's zero-shot test (the ensembles).
COLOR_TEMPLATES = ("a {} shape", "there is a {} shape", "one shape: a {} shape")
SHAPE_TEMPLATES = ("a {}", "there is a {}", "a {} in the center", "one shape: a {}")


@dataclass(frozen=True)
class ClipTest:
    """Pixels and tokens of the test, prepared once (Chapter 13)."""

    gallery_pixels: Tensor
    caption_ids: Tensor
    caption_mask: Tensor
    relevance: Tensor
    single_pixels: Tensor
    color_truth: Tensor
    shape_truth: Tensor


def clip_test(processor: Any, n_gallery: int = 1000, n_single: int = 1000) -> ClipTest:
    """Chapter 6's gallery (``make_shapes(n_gallery, seed=2)``) and one-shape pictures (seed 3)."""
    gallery = make_shapes(n_gallery, seed=2)
    singles = make_shapes(n_single, seed=3, max_shapes=1)
    ids, mask = contrastive.tokens(processor, gallery.captions)
    return ClipTest(
        gallery_pixels=contrastive.pixels(processor, gallery.images),
        caption_ids=ids,
        caption_mask=mask,
        relevance=contrastive.scene_relevance(gallery.attributes, gallery.attributes),
        single_pixels=contrastive.pixels(processor, singles.images),
        color_truth=torch.tensor([list(COLORS).index(a[0]["color"]) for a in singles.attributes]),
        shape_truth=torch.tensor([list(SHAPE_KINDS).index(a[0]["shape"]) for a in singles.attributes]),
    )


@torch.no_grad()
def clip_scores(model: Any, processor: Any, test: ClipTest) -> dict[str, float]:
    """Text→image R@1 on the gallery and zero-shot colour and shape accuracy (Chapter 13)."""
    if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
        raise TypeError(f"clip_scores needs a CLIP model with get_image_features and get_text_features, "
                        f"not {type(model).__name__}")
    images = contrastive.embed_images(model, test.gallery_pixels)
    texts = contrastive.embed_texts(model, test.caption_ids, test.caption_mask)
    singles = contrastive.embed_images(model, test.single_pixels)
    scores = {"R@1": recall_at_k(texts @ images.T, test.relevance, k=1)}
    for name, labels, templates, truth in [
        ("zero-shot colour", list(COLORS), COLOR_TEMPLATES, test.color_truth),
        ("zero-shot shape", list(SHAPE_KINDS), SHAPE_TEMPLATES, test.shape_truth),
    ]:
        classes = contrastive.class_embeddings(model, processor, labels, list(templates))
        scores[name] = (singles @ classes.T).argmax(1).eq(truth).float().mean().item()
    return scores
