"""The shapes world in the browser: one scene as picture, caption, questions, sound and attributes (Chapter 2)."""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np

from mmbook.apps.common import checked, raw, whole_number
from mmbook.data import QUESTION_TYPES, make_shapes
from mmbook.errors import InputError
from mmbook.limits import MAX_SEED
from mmbook.sound import to_int16
from mmbook.viz import upscale_nearest

MAX_SHAPES = 9  # one shape per cell of the 3x3 grid
IMAGE_SIZES = (32, 64)
DISPLAY_SIZE = 256


@checked
def generate(
    seed: float, n_shapes: float, image_size: int
) -> tuple[np.ndarray, str, list[list[str]], tuple[int, np.ndarray], list[dict[str, Any]]]:
    """One scene of ``make_shapes`` in every modality, checked input first (Chapter 2).

    Returns the picture enlarged to 256 pixels, the caption, one row per question (type, question,
    answer), the sound as ``(sample_rate, int16 samples)`` and the ground-truth attributes. The scene is
    ``make_shapes(1, seed=seed, image_size=image_size, min_shapes=n_shapes, max_shapes=n_shapes)``.
    """
    seed = whole_number(seed, "seed", 0, MAX_SEED)
    n = whole_number(n_shapes, "number of shapes", 1, MAX_SHAPES)
    size = whole_number(image_size, "image size", min(IMAGE_SIZES), max(IMAGE_SIZES))
    if size not in IMAGE_SIZES:
        raise InputError(f"The image size must be one of {', '.join(map(str, IMAGE_SIZES))}; got {size}.")
    shapes = make_shapes(1, seed=seed, image_size=size, min_shapes=n, max_shapes=n)
    scene = shapes[0]
    rows = [[t, q, a] for t, q, a in zip(QUESTION_TYPES, scene["questions"], scene["answers"], strict=True)]
    sound = (shapes.sample_rate, to_int16(scene["audio"]))
    return upscale_nearest(scene["image"], DISPLAY_SIZE), scene["caption"], rows, sound, scene["attributes"]


def build_shapes_app() -> gr.Blocks:
    """Pick a seed, a number of shapes and an image size; see and hear the scene (Chapter 2)."""
    with gr.Blocks(title="The shapes world") as demo:
        gr.Markdown(
            "## One scene, four modalities\n"
            "The same scene as a picture, a caption, questions with answers and a sound: one tone per shape "
            "in reading order, pitch for colour, timbre for shape, loudness for size. The same seed always "
            "gives the same scene."
        )
        with gr.Row():
            with gr.Column(scale=1):
                seed = raw(gr.Number(value=0, label=f"Seed (0 to {MAX_SEED:,})", step=1))
                n_shapes = raw(gr.Slider(1, MAX_SHAPES, value=3, step=1, label="Number of shapes"))
                size = raw(gr.Radio([str(s) for s in IMAGE_SIZES], value="64", label="Image size (pixels)"))
                button = gr.Button("Generate", variant="primary")
            with gr.Column(scale=1):
                image = gr.Image(label="Picture (enlarged)", format="png", height=DISPLAY_SIZE, width=DISPLAY_SIZE)
        caption = gr.Textbox(label="Caption", lines=2)
        qa = gr.Dataframe(headers=["type", "question", "answer"], label="Questions and answers", interactive=False)
        with gr.Row():
            sound = gr.Audio(label="Sound", type="numpy", format="wav")
            attributes = gr.JSON(label="Attributes (ground truth)", max_height=320)
        button.click(generate, [seed, n_shapes, size], [image, caption, qa, sound, attributes], api_name="generate")
    return demo
