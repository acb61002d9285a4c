"""The shapes world in the browser: one scene as picture, caption, questions, sound and attributes (Chapter 2)."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from mmbook.apps.inputs import whole_number
from mmbook.data import QUESTION_TYPES, make_shapes
from mmbook.viz import upscale_nearest

MAX_SEED = 2**32 - 1
MAX_SHAPES = 9  # one shape per cell of the 3x3 grid
IMAGE_SIZES = (32, 64)
DISPLAY_SIZE = 256


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] → 16-bit PCM, the format a WAV file stores (Chapter 2).

    Gradio would convert a float array itself, with a warning and after scaling it to its peak; converting
    here keeps the loudness of the clip, so a small shape still sounds quieter than a large one.
    """
    return np.rint(np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Save float samples in [-1, 1] as a mono 16-bit WAV file at ``path`` and return the path (Chapter 10,
    and the tests that upload clips)."""
    path = Path(path)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(to_int16(np.asarray(audio, dtype=np.float64)).tobytes())
    return path


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
        raise gr.Error(f"The image size must be one of {', '.join(map(str, IMAGE_SIZES))}; got {size}.")
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
                seed = gr.Number(value=0, label=f"Seed (0 to {MAX_SEED:,})", step=1)
                n_shapes = gr.Slider(1, MAX_SHAPES, value=3, step=1, label="Number of shapes")
                size = gr.Radio([str(s) for s in IMAGE_SIZES], value="64", label="Image size (pixels)")
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
