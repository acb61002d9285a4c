"""Open-vocabulary classification with abstention and a mask, in the browser (Chapter 12).

A picture and a few labels typed by the user (comma-separated, in the shapes world's words) go through the
tiny CLIP with Chapter 6's prompt ensemble; the similarities become probabilities at the temperature fitted
on a validation split (:func:`mmbook.calibration.fit_temperature`); the app answers the top label, or
abstains when its probability is below the chosen threshold, and shows where the top label's text matches
the picture's patch tokens (:mod:`mmbook.segment`).
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np
import torch

from mmbook import calibration, contrastive, segment, zoo
from mmbook.apps.common import check_pixels, checked, once, raw, shapes_text
from mmbook.data import COLORS, SHAPE_KINDS, SHAPES_VOCABULARY, make_shapes
from mmbook.errors import InputError
from mmbook.inputs import to_rgb
from mmbook.viz import heat_overlay

TEMPLATES = ("a {}", "there is a {}", "one shape: a {}")
EXAMPLE_LABELS = "red circle, blue square, green triangle"
MAX_LABELS, MAX_WORDS = 30, 4
SIZE = 32
_KNOWN = frozenset(SHAPES_VOCABULARY)


@once
def _fitted() -> tuple[Any, Any, float]:
    """The tiny CLIP, its processor and the temperature fitted on 500 one-shape validation pictures."""
    model, proc = zoo.tiny_clip()
    val = make_shapes(500, seed=4, max_shapes=1)
    labels = [f"{c} {k}" for k in SHAPE_KINDS for c in COLORS]
    truth = torch.tensor([labels.index(f"{o[0]['color']} {o[0]['shape']}") for o in val.attributes])
    scores = calibration.zero_shot_scores(model, proc, contrastive.pixels(proc, val.images), labels, TEMPLATES)
    return model, proc, calibration.fit_temperature(scores, truth)


def _labels(value: Any) -> list[str]:
    """Comma-separated labels, each checked like any shapes-world text; duplicates refused."""
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"Please type two or more labels separated by commas, for example {EXAMPLE_LABELS!r}.")
    labels = [shapes_text(part, "label", example="red circle", vocabulary=_KNOWN, max_words=MAX_WORDS,
                          reader="The tiny CLIP does not") for part in value.split(",")]
    if not 2 <= len(labels) <= MAX_LABELS:
        raise InputError(f"Please give between 2 and {MAX_LABELS} labels; got {len(labels)}.")
    if len(set(labels)) < len(labels):
        raise InputError("Each label may appear only once.")
    return labels


def _picture(image: Any) -> np.ndarray:
    """Any picture → uint8 ``(32, 32, 3)``; ``None`` or odd arrays get an ``InputError``."""
    if image is None:
        raise InputError("Please upload a picture (a shapes-world scene works best).")
    if isinstance(image, np.ndarray):
        check_pixels(image)
    rgb = to_rgb(image)
    from PIL import Image

    return np.asarray(rgb.resize((SIZE, SIZE), Image.Resampling.BOX))


@checked
def classify(image: Any, labels_text: Any, threshold: Any) -> tuple[dict[str, float], str, np.ndarray]:
    """Probabilities of the labels, the answer or an abstention, and the top label's mask (Chapter 12)."""
    labels = _labels(labels_text)
    if not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise InputError(f"The abstention threshold must be a number from 0 to 1; got {threshold!r}.")
    picture = _picture(image)
    model, proc, temperature = _fitted()
    pixels = contrastive.pixels(proc, picture[None])
    classes = contrastive.class_embeddings(model, proc, labels, list(TEMPLATES))
    probs = torch.softmax(contrastive.embed_images(model, pixels) @ classes.T / temperature, dim=1)
    top = int(calibration.abstain(probs, float(threshold))[0])
    best = int(probs[0].argmax())
    answer = (f"{labels[top]} ({probs[0, top]:.0%})" if top >= 0 else
              f"Not sure: abstaining (best guess {labels[best]} at {probs[0, best]:.0%}, below {threshold:.0%}).")
    maps = segment.score_maps(segment.patch_embeddings(model, pixels), classes)
    mask = segment.predict_masks(segment.upsample(maps, SIZE), torch.tensor([best]), -1.0)[0].numpy()
    return ({lab: float(p) for lab, p in zip(labels, probs[0], strict=True)}, answer,
            heat_overlay(picture, mask.astype(np.float64)))


def build_open_vocab_app() -> gr.Blocks:
    """Upload a picture, type labels, get calibrated probabilities, an answer or an abstention (Chapter 12)."""
    example = make_shapes(1, seed=7, max_shapes=1).images[0]
    with gr.Blocks(title="Open-vocabulary classification") as demo:
        gr.Markdown("## Open-vocabulary classification with abstention\nType the labels to choose from; the "
                    "tiny CLIP answers only when its calibrated probability reaches the threshold, and lights "
                    "the patches where the best label's text matches the picture.")
        with gr.Row():
            with gr.Column():
                image = raw(gr.Image(value=example, label="Picture", type="numpy"))
                labels = gr.Textbox(value=EXAMPLE_LABELS, label="Labels (comma-separated)")
                threshold = raw(gr.Slider(0, 1, value=0.5, step=0.05, label="Abstain below this probability"))
                button = gr.Button("Classify", variant="primary")
            with gr.Column():
                probabilities = gr.Label(label="Probabilities")
                answer = gr.Textbox(label="Answer")
                overlay = gr.Image(label="Where the best label matches", format="png")
        button.click(classify, [image, labels, threshold], [probabilities, answer, overlay], api_name="classify")
    return demo
