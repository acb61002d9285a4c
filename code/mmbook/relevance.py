"""Which patches of a picture make the tiny CLIP match a caption: relevance maps, scored against the
pixel truth (Chapter 14).

The tiny CLIP's vision tower cuts a 48-pixel picture into 3 × 3 patches of 16 pixels, one per cell of the
shapes-world grid, and adds a class token; the picture's embedding is the class token after the last
layer. The score explained is the cosine similarity of that embedding with a unit text embedding.

- :func:`attention_rollout` (Abnar and Zuidema, 2020): multiply the head-averaged attention matrices of
  the layers, each mixed half and half with the identity for the residual path. It does not depend on the
  text: it says where the class token looks, whatever the question.
- :func:`gradient_x_input`: the input times the gradient of the score, per pixel (summed over colour
  channels); :func:`patch_sums` adds it up per patch. Because the patch embedding is linear without bias,
  a patch's sum equals gradient × input of its patch embedding.
- :func:`chefer_relevance` (Chefer et al., 2021): the rollout with every attention matrix weighted by
  the gradient of the score, negative parts dropped, so it depends on the text.
- :func:`truth_masks`, :func:`pointing_game`: the pixel truth of where a named shape is, and the pointing
  game (Zhang et al., 2018): does the most relevant cell fall on the shape?
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mmbook.data import SHAPE_KINDS
from mmbook.data.render import centre, masks
from mmbook.data.world import SIZES

METHODS = ("rollout", "gradient x input", "chefer")
#: The side of the patch grid of the tiny CLIP.
GRID = 3


@contextlib.contextmanager
def eager_attention(model: Any) -> Iterator[Any]:
    """``model`` with the plain (eager) attention, which can return its attention matrices; the previous
    implementation is restored afterwards."""
    before = model.config.vision_config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        yield model
    finally:
        model.set_attn_implementation(before)


def image_text_scores(model: Any, pixel_values: Tensor, texts: Tensor,
                      output_attentions: bool = False) -> tuple[Tensor, tuple[Tensor, ...] | None]:
    """Cosine similarity of each picture's embedding with its unit text embedding ``texts`` ``(N, D)``,
    and the vision tower's attention matrices ``(N, heads, T, T)`` per layer when asked."""
    out = model.vision_model(pixel_values=pixel_values, output_attentions=output_attentions)
    images = F.normalize(model.visual_projection(out.pooler_output), dim=-1)
    return (images * texts).sum(-1), out.attentions


def attention_rollout(attentions: Sequence[Tensor], residual: float = 0.5) -> Tensor:
    """The rollout ``Â_L ⋯ Â_1`` with ``Â = residual · I + (1 - residual) · mean over heads of A``, rows
    renormalised: ``(N, T, T)``; row 0 says how much each token reaches the class token."""
    result = None
    for attention in attentions:
        mixed = attention.mean(1)
        mixed = residual * torch.eye(mixed.shape[-1], dtype=mixed.dtype) + (1 - residual) * mixed
        mixed = mixed / mixed.sum(-1, keepdim=True)
        result = mixed if result is None else mixed @ result
    if result is None:
        raise ValueError("attention_rollout needs the attention matrices of at least one layer")
    return result


def chefer_relevance(attentions: Sequence[Tensor], gradients: Sequence[Tensor]) -> Tensor:
    """Chefer et al.'s rule for self-attention: ``R ← R + Ā R`` from ``R = I``, layer by layer, with
    ``Ā`` the head mean of ``(∇A ⊙ A)⁺``: ``(N, T, T)``."""
    n, _, tokens, _ = attentions[0].shape
    result = torch.eye(tokens, dtype=attentions[0].dtype).expand(n, tokens, tokens)
    for attention, gradient in zip(attentions, gradients, strict=True):
        weighted = (gradient * attention).clamp(min=0).mean(1)
        result = result + weighted @ result
    return result


@torch.enable_grad()
def gradient_x_input(model: Any, pixel_values: Tensor, texts: Tensor) -> Tensor:
    """Gradient × input of each picture's score, summed over colour channels: ``(N, H, W)``."""
    x = pixel_values.detach().clone().requires_grad_(True)
    scores, _ = image_text_scores(model, x, texts)
    (grad,) = torch.autograd.grad(scores.sum(), x)
    return (x * grad).sum(1).detach()


def patch_sums(maps: Tensor, grid: int = GRID) -> Tensor:
    """``(N, H, W)`` per-pixel maps added up per patch of a ``grid`` × ``grid`` split: ``(N, grid, grid)``."""
    n, height, width = maps.shape
    return maps.reshape(n, grid, height // grid, grid, width // grid).sum((2, 4))


def relevance_maps(model: Any, pixel_values: Tensor, texts: Tensor, method: str) -> Tensor:
    """Relevance of each patch to the score of ``texts`` ``(N, D)``, by ``method`` (one of
    :data:`METHODS`): ``(N, 3, 3)``, in the order of the patches (reading order)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {METHODS}")
    if method == "gradient x input":
        return patch_sums(gradient_x_input(model, pixel_values, texts))
    with eager_attention(model), torch.enable_grad():
        scores, attentions = image_text_scores(model, pixel_values, texts, output_attentions=True)
        if method == "rollout":
            rows = attention_rollout([a.detach() for a in attentions])
        else:
            gradients = torch.autograd.grad(scores.sum(), attentions)
            rows = chefer_relevance([a.detach() for a in attentions], gradients)
    return rows[:, 0, 1:].detach().reshape(-1, GRID, GRID)


def truth_masks(objects: Sequence[dict[str, Any]], image_size: int = 32) -> np.ndarray:
    """The generator's alpha mask of each object (a shapes-world attribute dict): ``(N, H, W)`` in [0, 1]."""
    index = [(SHAPE_KINDS.index(o["shape"]) * len(SIZES) + SIZES.index(o["size"])) * 9 + 3 * o["row"] + o["col"]
             for o in objects]
    return masks(image_size)[index].reshape(len(objects), image_size, image_size)


def cell_points(cells: np.ndarray, image_size: int = 32) -> np.ndarray:
    """The pixel (row, column) at the centre of each grid cell ``0..8`` (reading order): ``(N, 2)``."""
    rows, cols = np.divmod(np.asarray(cells), GRID)
    return np.stack([[centre(r, image_size), centre(c, image_size)] for r, c in zip(rows, cols, strict=True)])


def pointing_game(maps: Tensor | np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Hits of the pointing game: the centre pixel of each map's most relevant cell lies on the object's
    pixel truth (alpha ≥ 0.5). ``maps`` ``(N, 3, 3)``, ``truth`` ``(N, H, W)``; booleans ``(N,)``."""
    cells = np.asarray(maps).reshape(len(truth), -1).argmax(1)
    points = cell_points(cells, truth.shape[-1])
    return truth[np.arange(len(truth)), points[:, 0], points[:, 1]] >= 0.5
