"""Corrupt a picture and watch the tiny CLIP's answer and its relevance map change (Chapter 14)."""

from __future__ import annotations

import math
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from mmbook import zoo
from mmbook.apps.common import checked, once, raw, shorten, whole_number
from mmbook.corrupt import CORRUPTIONS, corrupt
from mmbook.errors import InputError
from mmbook.experiments.robustness import PAIRS, Classifiers, classifiers
from mmbook.inputs import open_image
from mmbook.limits import MAX_SEED
from mmbook.relevance import relevance_maps
from mmbook.viz import heat_overlay

SIZE = 32
#: The relevance methods a user can pick, by the name the app shows.
METHODS = {"gradient-weighted attention (Chefer et al.)": "chefer", "gradient × input": "gradient x input",
           "attention rollout": "rollout"}  # fmt: skip


@once
def _model() -> tuple[Any, Any, Classifiers]:
    model, proc = zoo.tiny_clip()
    return model, proc, classifiers(model, proc)


def _choice(value: Any, what: str, choices: list[str]) -> str:
    allowed = ", ".join(choices)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InputError(f"Please pick a {what}: {allowed}.")
    if not isinstance(value, str) or value.strip() not in choices:
        raise InputError(f"Unknown {what} {shorten(repr(value))}; pick one of: {allowed}.")
    return value.strip()


def _strength(value: Any) -> float:
    """The strength in per cent of the corruption's strongest setting: a number from 0 to 100."""
    expected = "a number from 0 to 100 (per cent of the strongest setting)"
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InputError(f"Please set the strength, {expected}.")
    if isinstance(value, bool):
        raise InputError(f"The strength must be {expected}; got {value!r}.")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"The strength must be {expected}; got {shorten(repr(value))}.") from None
    if not (math.isfinite(number) and 0 <= number <= 100):
        raise InputError(f"The strength must be {expected}; got {shorten(repr(value))}.")
    return number


def _picture(seed: Any, upload: str | None) -> tuple[np.ndarray, str]:
    """The picture (uint8, 32×32×3) and a sentence about it: the upload if there is one, else the scene."""
    from mmbook.data import make_shapes

    if upload:
        picture = open_image(upload).resize((SIZE, SIZE), Image.Resampling.BOX)
        return np.asarray(picture, np.uint8), "Your picture, shrunk to 32×32 pixels."
    number = whole_number(seed, "scene seed", 0, MAX_SEED, alternative=", or upload a picture")
    scene = make_shapes(1, seed=number, max_shapes=3)
    shown = ", ".join(f"a {o['color']} {o['shape']} ({o['position']})" for o in scene.attributes[0])
    return scene.images[0], f"Scene {number}: {shown}."


def _cells_to_pixels(cells: np.ndarray) -> np.ndarray:
    """A 3 × 3 map spread over the 32 × 32 picture, constant on each grid cell, scaled to [0, 1]."""
    edges = np.round(np.arange(4) * SIZE / 3).astype(int)
    spread = np.repeat(np.repeat(cells, np.diff(edges), 0), np.diff(edges), 1)
    spread = np.clip(spread, 0, None)
    return spread / spread.max() if spread.max() > 0 else spread


@checked
def inspect(seed: Any, upload: str | None, corruption: Any, strength: Any,
            method: Any) -> tuple[np.ndarray, dict[str, float], np.ndarray, str]:
    """The corrupted picture, the tiny CLIP's best colour × shape names for it and the relevance map of
    the best one, by ``method`` (Chapter 14)."""
    import torch

    from mmbook import contrastive

    name = _choice(corruption, "corruption", list(CORRUPTIONS))
    per_cent = _strength(strength)
    chosen = METHODS[_choice(method, "relevance method", list(METHODS))]
    picture, note = _picture(seed, upload)
    top = CORRUPTIONS[name].strengths[-1]
    amount = top * per_cent / 100
    seen = corrupt(picture, name, amount, seed=0)
    model, proc, heads = _model()
    pixel_values = contrastive.pixels(proc, seen[None])
    with torch.no_grad():
        image = contrastive.embed_images(model, pixel_values)
        probs = torch.softmax(model.logit_scale.exp() * image @ heads.pair.T, -1)[0]
    best = int(probs.argmax())
    maps = relevance_maps(model, pixel_values, heads.pair[best][None], chosen)[0].numpy()
    heat = heat_overlay(seen, _cells_to_pixels(maps).astype(np.float32))
    big = np.asarray(Image.fromarray(seen).resize((8 * SIZE, 8 * SIZE), Image.Resampling.NEAREST))
    scores = {label: float(p) for label, p in zip(PAIRS, probs.tolist(), strict=True)}
    note += (f" {name.capitalize()} at {per_cent:g} % of the strongest setting: "
             f"{CORRUPTIONS[name].unit} {amount:.3g}. The map explains {PAIRS[best]!r}.")
    return big, scores, heat, note


def build_robust_app() -> gr.Blocks:
    """A scene (or a picture), a corruption and its strength in; the tiny CLIP's colour × shape names and
    the relevance map of the best one out (Chapter 14)."""
    _model()  # loaded now, before the first request
    with gr.Blocks(title="Robustness and relevance") as demo:
        gr.Markdown(
            "## Corrupt a picture, watch the answer and the evidence\n"
            "Pick a shapes-world scene (or upload a picture), a corruption and its strength. The tiny CLIP "
            "names the picture among the 30 colour × shape pairs; the heat map shows which of its 3 × 3 "
            "patches carried the best name."
        )
        with gr.Row():
            with gr.Column():
                seed = raw(gr.Number(value=4, label=f"Scene seed (0 to {MAX_SEED:,})"))
                upload = raw(gr.Image(label="Or upload a picture (optional)", type="filepath", height=160))
                corruption = raw(gr.Radio(list(CORRUPTIONS), value="blur", label="Corruption"))
                strength = raw(gr.Slider(0, 100, value=50, step=5, label="Strength (% of the strongest)"))
                method = raw(gr.Radio(list(METHODS), value=next(iter(METHODS)), label="Relevance"))
                button = gr.Button("Corrupt and explain", variant="primary")
            with gr.Column():
                seen = gr.Image(label="What the model sees", type="numpy", format="png", height=200)
                names = gr.Label(num_top_classes=3, label="Best colour × shape names")
                heat = gr.Image(label="Relevance of each patch to the best name", type="numpy", format="png",
                                height=200)
                note = gr.Textbox(label="About this picture", lines=3)
        button.click(inspect, [seed, upload, corruption, strength, method], [seen, names, heat, note],
                     api_name="inspect")
    return demo
