"""Which fusion can answer? Every fusion method on one colour-at question, with a modality switched off (Chapter 5)."""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np

from mmbook.apps.common import checked, raw, shapes_text, shorten, whole_number
from mmbook.data import POSITION_PHRASES, SHAPES_VOCABULARY, make_shapes, words
from mmbook.errors import InputError
from mmbook.experiments.fusion_bench import COLOR_NAMES, compare, fusion_models
from mmbook.fusion import METHODS
from mmbook.limits import MAX_SEED
from mmbook.viz import heat_overlay

MAX_WORDS = 40
SIZE = 32
DISPLAY_SIZE = 256
EXAMPLE_QUESTION = "what color is the shape in the top left?"
HEADERS = ["method", "answer", "confidence", "right"]
DROPS: dict[str, str | None] = {"nothing": None, "the picture": "picture", "the question": "sentence"}
"""The switch's choices → the ``drop`` argument of :func:`mmbook.experiments.fusion_bench.compare`."""

# every phrase that names a cell, longest first, so "in the top left corner" wins over "in the top left"
_PHRASES = sorted(((" ".join(words(p)), cell) for cell, ps in POSITION_PHRASES.items() for p in ps),
                  key=lambda pair: -len(pair[0]))


def _question(value: str | None) -> str:
    """The question, stripped, once it is short enough and made of words the models know."""
    return shapes_text(value, "question", example=EXAMPLE_QUESTION, vocabulary=SHAPES_VOCABULARY,
                       max_words=MAX_WORDS, reader="The models do not")


def _drop(value: str | None) -> str | None:
    choices = ", ".join(repr(c) for c in DROPS)
    if value is None or value == "":
        raise InputError(f"Please choose what to hide from the models: one of {choices}.")
    if not isinstance(value, str) or value not in DROPS:
        raise InputError(f"What to hide must be one of {choices}; got {shorten(repr(value))}.")
    return DROPS[value]


def named_cell(question: str) -> str | None:
    """The grid cell (one of ``POSITIONS``) that ``question`` names, or None; the longest phrase wins (Chapter 5)."""
    text = f" {' '.join(words(question))} "
    return next((cell for phrase, cell in _PHRASES if f" {phrase} " in text), None)


def cell_heat(weights: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Nine weights in reading order → a ``(size, size)`` map where each grid cell's pixels hold its weight."""
    weights = np.asarray(weights, dtype=np.float64).reshape(3, 3)
    edges = [round(k * size / 3) for k in range(4)]
    heat = np.zeros((size, size))
    for r in range(3):
        for c in range(3):
            heat[edges[r] : edges[r + 1], edges[c] : edges[c + 1]] = weights[r, c]
    return heat


@checked
def ask(seed: Any, question: str | None, drop: str | None) -> tuple[np.ndarray, list[list[str]], str]:
    """Every fusion method's answer to ``question`` about scene ``seed``, checked input first (Chapter 5).

    The scene is ``make_shapes(1, seed=seed, min_shapes=3, max_shapes=5)``, the colour-at task's. ``drop``
    is one of :data:`DROPS`. Returns the picture enlarged to 256 pixels under the cross-attention model's
    weights over the nine cells, one row per method of ``METHODS`` (method, answer, confidence, right) and
    a note that gives the truth.
    """
    number = whole_number(seed, "scene seed", 0, MAX_SEED)
    text = _question(question)
    hidden = _drop(drop)
    sample = make_shapes(1, seed=number, min_shapes=3, max_shapes=5)[0]
    picture = sample["image"]
    try:
        probabilities, weights = compare(fusion_models(), picture, text, drop=hidden)
    except ValueError as error:
        raise InputError(f"The models cannot read that question: {error}.") from None

    cell = named_cell(text)
    colors = [o["color"] for o in sample["attributes"] if o["position"] == cell]
    truth = colors[0] if colors else None
    if cell is None:
        note = ("The question names no grid cell; the models were trained on questions like "
                "'what color is the shape in the center?'.")
    elif truth is None:
        note = f"Scene {number} has no shape in the {cell} cell, so no answer can be right."
    else:
        note = f"Scene {number}: the shape in the {cell} cell is {truth}."
    if hidden == "picture":
        note += " The picture was hidden from every model: they answer from the question alone."
    elif hidden == "sentence":
        note += " The question was hidden from every model: they answer from the picture alone."

    rows = []
    for method in METHODS:
        p = probabilities[method]
        answer = COLOR_NAMES[int(np.argmax(p))]
        right = "—" if truth is None else ("yes" if answer == truth else "no")
        rows.append([method, answer, f"{100 * float(np.max(p)):.1f}%", right])
    heat = cell_heat(weights) if np.isfinite(weights).all() else np.zeros((SIZE, SIZE))
    return heat_overlay(picture, heat, scale=DISPLAY_SIZE // SIZE), rows, note


def build_fusion_app() -> gr.Blocks:
    """A scene seed, a question and a modality to hide in; every fusion method's answer out (Chapter 5)."""
    fusion_models()  # loaded (or trained) now, before the first request
    with gr.Blocks(title="Which fusion can answer?") as demo:
        gr.Markdown(
            "## Which fusion can answer? Compare fusion methods on one question\n"
            "The picture holds the colours, the question names the cell: only the two together give the "
            "answer. Each fusion method was trained on the same questions; the heat map is where the "
            "cross-attention model's question looks. Hide a modality to see what each method does without it."
        )
        with gr.Row():
            with gr.Column():
                seed = raw(gr.Number(value=6, label=f"Scene seed (0 to {MAX_SEED:,})", step=1))
                question = gr.Textbox(value=EXAMPLE_QUESTION, label="Question", placeholder=EXAMPLE_QUESTION)
                drop = raw(gr.Radio(list(DROPS), value="nothing", label="Hide from every model"))
                button = gr.Button("Answer", variant="primary")
            with gr.Column():
                picture = gr.Image(label="Where the cross-attention model looks", type="numpy", format="png",
                                   height=DISPLAY_SIZE + 64)
        table = gr.Dataframe(headers=HEADERS, label="What each fusion method answers", interactive=False)
        note = gr.Textbox(label="The truth", lines=2)
        button.click(ask, [seed, question, drop], [picture, table, note], api_name="compare")
    return demo
