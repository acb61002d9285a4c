"""Image + word → where: a word attends over a shapes-world picture, and the heat map shows where (Chapter 4)."""

from __future__ import annotations

import gradio as gr
import numpy as np
from PIL import Image

from mmbook.apps.common import check_pixels, checked, raw, shorten, whole_number
from mmbook.data import COLORS, POSITIONS
from mmbook.errors import InputError
from mmbook.limits import MAX_SEED
from mmbook.shape_finder import FINDER_WORDS, scene, shape_finder
from mmbook.viz import heat_overlay

SIZE = 32


def _word(value: str | None) -> str:
    word = value.strip().lower() if isinstance(value, str) else ""
    allowed = ", ".join(FINDER_WORDS)
    if not word:
        raise InputError(f"Please type a word, one of: {allowed}.")
    if word not in FINDER_WORDS:
        raise InputError(f"The model does not know {shorten(word)!r}; use one of: {allowed}.")
    return word


def _picture(image: np.ndarray) -> np.ndarray:
    """An RGB picture (the Image input converts every upload to RGB) → uint8 (32, 32, 3), box-resized."""
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3:
        raise InputError(f"Expected an RGB picture, got an array of shape {array.shape}.")
    check_pixels(array)
    return np.asarray(Image.fromarray(array.astype(np.uint8)).resize((SIZE, SIZE), Image.Resampling.BOX))


@checked
def locate(seed: float | None, word: str | None, image: np.ndarray | None = None) -> tuple[np.ndarray, dict, str]:
    """Where the model looks for ``word`` in scene ``seed`` (or in ``image``) and which cell it answers (Chapter 4)."""
    word = _word(word)
    if image is None:
        number = whole_number(seed, "seed", 0, MAX_SEED)
        sample = scene(number)
        picture = sample["image"]
        cells = [o["position"] for o in sample["attributes"] if word in (o["color"], o["shape"])]
        one = f"{word} shape" if word in COLORS else word
        many = f"{word} shapes" if word in COLORS else word + ("es" if word.endswith("s") else "s")
        if not cells:
            note = f"Scene {number} has no {one}, so no answer can be right."
        elif len(cells) == 1:
            note = f"Scene {number}: the {one} is in the {cells[0]} cell."
        else:
            note = f"Scene {number} has {len(cells)} {many} ({', '.join(cells)}); the word picks out none."
    else:
        picture = _picture(image)
        note = "Your picture, resized to 32×32 pixels; the model was trained on the shapes world only."
    probs, heat = shape_finder().locate(picture[None], [word])
    answer = {position: float(p) for position, p in zip(POSITIONS, probs[0], strict=True)}
    return heat_overlay(picture, heat[0]), answer, note


def build_attention_app() -> gr.Blocks:
    """A seed (or a picture) and a word in; the word's attention over the picture and the answer out (Chapter 4)."""
    shape_finder()  # loaded (or trained) now, before the first request
    with gr.Blocks(title="Where is it? Cross-attention") as demo:
        gr.Markdown(
            "## Where is it? A word attends over a picture\n"
            "A word (a colour or a shape) is the query; the picture's patches are the keys and values. "
            "The heat map is the word's attention over the patches, the label the cell the model answers."
        )
        with gr.Row():
            with gr.Column():
                seed = raw(gr.Number(value=3, label=f"Scene seed (0 to {MAX_SEED:,})"))
                word = gr.Textbox(value="red", label="Word", placeholder=", ".join(FINDER_WORDS))
                image = raw(gr.Image(label="Or upload a picture (optional)", type="numpy", image_mode="RGB",
                                     height=160))
                button = gr.Button("Find", variant="primary")
            with gr.Column():
                heat = gr.Image(label="Attention of the word over the picture", type="numpy", height=280)
                answer = gr.Label(num_top_classes=3, label="Where the model says it is")
                note = gr.Textbox(label="About this scene", lines=2)
        button.click(locate, [seed, word, image], [heat, answer, note], api_name="locate")
    return demo
