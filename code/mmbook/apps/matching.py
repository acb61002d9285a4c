"""Does the caption describe the picture? The book's matcher's probability and where it looked (Chapter 7)."""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np
import torch
from PIL import Image

from mmbook.apps.common import check_pixels, checked, raw, shapes_text, whole_number
from mmbook.data import SHAPES_VOCABULARY, make_shapes
from mmbook.data.pairs import MAX_TOKENS, pixels, tokenize
from mmbook.errors import InputError
from mmbook.experiments.book_matcher import matcher
from mmbook.limits import MAX_SEED
from mmbook.viz import heat_overlay

#: Words and punctuation marks a caption may have: with start and end tokens it fits ``MAX_TOKENS``.
MAX_WORDS = MAX_TOKENS - 2
MAX_ASPECT = 4.0
SIZE, DISPLAY_SIZE = 32, 256
EXAMPLE_SEED = 4
EXAMPLE_CAPTION = "a blue cross in the top right, a blue square in the center and an orange cross in the bottom left"
_KNOWN = frozenset(SHAPES_VOCABULARY)


def _caption(value: str | None) -> str:
    """The caption, stripped, once it is short enough and made of words the matcher knows."""
    return shapes_text(value, "caption", example=EXAMPLE_CAPTION, vocabulary=_KNOWN, max_words=MAX_WORDS,
                       reader="The matcher does not")


def _picture(image: Any) -> np.ndarray:
    """An uploaded picture → uint8 ``(32, 32, 3)``, box-resized; odd arrays get an ``InputError``."""
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)  # grey → RGB
    if array.ndim != 3 or array.shape[2] not in (3, 4) or 0 in array.shape:
        raise InputError(f"Expected an RGB picture, got an array of shape {array.shape}.")
    check_pixels(array)
    height, width = array.shape[:2]
    if max(height, width) / min(height, width) > MAX_ASPECT:
        raise InputError(f"That picture is {width}×{height} pixels; the matcher needs a roughly square picture "
                       f"(at most {MAX_ASPECT:g} times wider than high, or higher than wide).")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.number) or not np.isfinite(array).all():
            raise InputError("The picture's pixels must be finite numbers.")
        scale = 255.0 if array.max() <= 1.0 else 1.0  # floats in [0, 1] or already in [0, 255]
        array = np.clip(array * scale, 0, 255).round().astype(np.uint8)
    rgb = Image.fromarray(array[..., :3])
    return np.asarray(rgb.resize((SIZE, SIZE), Image.Resampling.BOX))


def patch_heat(weights: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Nine patch weights in reading order → a ``(size, size)`` map, each patch's pixels holding its weight."""
    weights = np.asarray(weights, dtype=np.float64).reshape(3, 3)
    cell = np.minimum(np.arange(size) * 3 // size, 2)
    return weights[cell[:, None], cell[None, :]]


@torch.no_grad()
def score(picture: np.ndarray, caption: str) -> tuple[float, np.ndarray, float]:
    """The matcher's ``P(match)`` for one uint8 ``(32, 32, 3)`` picture and a caption, ``[CLS]``'s attention
    over the nine patches in the last layer (heads averaged, scaled to sum to one) and the share of that
    attention that went to the picture at all (Chapter 7)."""
    model = matcher()
    ids, mask = tokenize([caption])
    out = model(pixels(picture[None]), ids, mask)
    weights = out.cls_to_patches()[0].numpy()
    share = float(weights.sum())
    return float(torch.sigmoid(out.logits[0])), weights / max(share, 1e-12), share


@checked
def match(seed: Any, caption: str | None, image: np.ndarray | None = None) -> tuple[dict[str, float], np.ndarray, str]:
    """Whether ``caption`` describes scene ``seed`` (or the uploaded ``image``), and where it looked (Chapter 7).

    Returns the probabilities of "match" and "no match", the picture enlarged to 256 pixels under
    ``[CLS]``'s attention over its nine patches, and a note: for a scene, its own caption, to compare.
    """
    text = _caption(caption)
    if image is None:
        number = whole_number(seed, "scene seed", 0, MAX_SEED, alternative=", or upload a picture")
        sample = make_shapes(1, seed=number, split="train")[0]
        picture = sample["image"]
        note = f"Scene {number}'s own caption: {sample['caption']!r}."
    else:
        picture = _picture(image)
        note = "Your picture, resized to 32×32 pixels; the matcher was trained on the shapes world only."
    p, weights, share = score(picture, text)
    note += f" [CLS] gave {share:.0%} of its attention to the picture's patches, {1 - share:.0%} to the words."
    heat = patch_heat(weights)
    return {"match": p, "no match": 1 - p}, heat_overlay(picture, heat, scale=DISPLAY_SIZE // SIZE), note


def build_matching_app() -> gr.Blocks:
    """A scene seed (or a picture) and a caption in; the match probability and the attention out (Chapter 7)."""
    matcher()  # loaded (or trained) now, before the first request
    with gr.Blocks(title="Does the caption match the picture?") as demo:
        gr.Markdown(
            "## Does the caption match the picture? A fusion matcher on the tiny CLIP\n"
            "The tiny CLIP's features of the caption's words and of the picture's nine patches go through one "
            "Transformer together; its "
            "[CLS] token decides. The heat map shows where [CLS] looked among the patches in the last layer. "
            "Change one word (a colour, a shape, a place) and see whether the matcher notices."
        )
        with gr.Row():
            with gr.Column():
                seed = raw(gr.Number(value=EXAMPLE_SEED, label=f"Scene seed (0 to {MAX_SEED:,})", step=1))
                caption = gr.Textbox(value=EXAMPLE_CAPTION, label="Caption", placeholder=EXAMPLE_CAPTION, lines=2)
                image = raw(gr.Image(label="Or upload a picture (optional)", type="numpy", image_mode="RGB",
                                     height=160))
                button = gr.Button("Match", variant="primary")
            with gr.Column():
                answer = gr.Label(num_top_classes=2, label="Does the caption describe the picture?")
                heat = gr.Image(label="Where [CLS] looked", type="numpy", format="png", height=DISPLAY_SIZE + 64)
                note = gr.Textbox(label="About this picture", lines=3)
        button.click(match, [seed, caption, image], [answer, heat, note], api_name="match")
    return demo
