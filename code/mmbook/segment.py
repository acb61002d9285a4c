"""Segmentation without segmentation training: text against the tiny CLIP's patch tokens (Chapter 12).

The vision tower turns a 48-pixel picture into a class token and 3 × 3 patch tokens (one per 16-pixel
patch, :mod:`mmbook.clip`). CLIP trains only the class token against text, after ``post_layernorm`` and
``visual_projection``; this module sends the patch tokens through the same two layers and compares each
with a label's text embedding, giving a 3 × 3 score map per picture, upsampled to the picture's pixels.

Two readings of the patch tokens:

- ``"last"``: the tower's last hidden state, the naive choice;
- ``"value"``: the last layer's attention replaced by its value path (``out_proj(v_proj(LN(x)))``), as in
  MaskCLIP (Zhou et al., 2022): the class token is a value-weighted sum, so the values live in the space
  the projection was trained on, while the last hidden state of a patch mixes in other patches.

:func:`truth_masks` draws the generator's pixel truth; :func:`iou` scores masks; :func:`centre_box`,
:func:`colour_threshold` and :func:`cell_ceiling` are the trivial baseline, a palette baseline and the
best any 3 × 3 map can score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mmbook.data import COLORS, SHAPE_KINDS
from mmbook.data.render import masks
from mmbook.data.world import SIZES

READINGS = ("last", "value")


@torch.no_grad()
def patch_embeddings(model: Any, pixel_values: Tensor, reading: str = "value") -> Tensor:
    """Unit patch embeddings ``(N, P, projection_dim)`` in the text space, P = 9 for the tiny CLIP (Chapter 12)."""
    if reading not in READINGS:
        raise ValueError(f"reading must be one of {READINGS}, got {reading!r}")
    tower = model.vision_model
    hidden = tower(pixel_values=pixel_values, output_hidden_states=True).hidden_states
    if reading == "last":
        tokens = hidden[-1]
    else:
        layer = tower.encoder.layers[-1]
        tokens = layer.self_attn.out_proj(layer.self_attn.v_proj(layer.layer_norm1(hidden[-2])))
    return F.normalize(model.visual_projection(tower.post_layernorm(tokens[:, 1:])), dim=-1)


def score_maps(patches: Tensor, classes: Tensor) -> Tensor:
    """Cosine similarities ``(N, C, g, g)`` of every patch with every class embedding (Chapter 12)."""
    n, p, _ = patches.shape
    side = int(round(p**0.5))
    if side * side != p:
        raise ValueError(f"expected a square grid of patches, got {p}")
    return (patches @ classes.T).transpose(1, 2).reshape(n, len(classes), side, side)


def upsample(maps: Tensor, image_size: int) -> Tensor:
    """Score maps ``(N, C, g, g)`` bilinearly upsampled to ``(N, C, S, S)`` pixels (Chapter 12)."""
    return F.interpolate(maps, size=(image_size, image_size), mode="bilinear", align_corners=False)


def predict_masks(pixel_maps: Tensor, query: Tensor, threshold: float) -> Tensor:
    """Boolean masks ``(N, S, S)`` from upsampled maps: pixels where class ``query[i]`` beats every other
    class and exceeds ``threshold`` (Chapter 12)."""
    own = pixel_maps[torch.arange(len(pixel_maps)), query]
    return (pixel_maps.argmax(1) == query[:, None, None]) & (own > threshold)


def truth_masks(attributes: Sequence[Sequence[dict[str, Any]]], key: str, values: Sequence[str],
                image_size: int) -> Tensor:
    """The generator's pixels (alpha > 0.5) of the objects whose ``key`` is ``values[i]`` (Chapter 12)."""
    alpha = masks(image_size).reshape(-1, image_size, image_size) > 0.5
    out = np.zeros((len(values), image_size, image_size), bool)
    for i, (objects, value) in enumerate(zip(attributes, values, strict=True)):
        for o in objects:
            if o[key] == value:
                kind = SHAPE_KINDS.index(o["shape"]) * len(SIZES) + SIZES.index(o["size"])
                out[i] |= alpha[kind * 9 + o["row"] * 3 + o["col"]]
    return torch.from_numpy(out)


def iou(pred: Tensor, truth: Tensor) -> Tensor:
    """Intersection over union per mask ``(N,)``; 1 where both are empty (Chapter 12)."""
    inter = (pred & truth).flatten(1).sum(1).double()
    union = (pred | truth).flatten(1).sum(1).double()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def centre_box(n: int, image_size: int) -> Tensor:
    """The trivial baseline: the centre cell of the 3 × 3 grid, whatever the query (Chapter 12)."""
    out = torch.zeros(n, image_size, image_size, dtype=torch.bool)
    a, b = round(image_size / 3), round(2 * image_size / 3)
    out[:, a:b, a:b] = True
    return out


def colour_threshold(images: np.ndarray, colours: Sequence[str], radius: float = 60.0) -> Tensor:
    """The palette baseline: pixels within ``radius`` (RGB distance) of the named colour (Chapter 12)."""
    rgb = np.array([COLORS[c] for c in colours], np.float32)[:, None, None]
    return torch.from_numpy(np.linalg.norm(images.astype(np.float32) - rgb, axis=-1) < radius)


def cell_ceiling(truth: Tensor, grid: int = 3) -> Tensor:
    """The best mask made of whole grid cells: every cell the truth touches, filled (Chapter 12)."""
    n, size, _ = truth.shape
    edges = [round(k * size / grid) for k in range(grid + 1)]
    out = torch.zeros_like(truth)
    for r in range(grid):
        for c in range(grid):
            rows, cols = slice(edges[r], edges[r + 1]), slice(edges[c], edges[c + 1])
            hit = truth[:, rows, cols].flatten(1).any(1)
            out[:, rows, cols] = hit[:, None, None]
    return out
