"""Image + text → prediction: a handwritten digit and a partial hint, fused (Chapter 1)."""

from __future__ import annotations

import gradio as gr
import numpy as np
from PIL import Image

from mmbook.apps.common import once, raw
from mmbook.baselines import DigitsWithHints
from mmbook.limits import MAX_PIXELS, MAX_TEXT_CHARS

TRAIN_NOISE = 0.5


@once
def trained_model() -> DigitsWithHints:
    """The Chapter 1 classifiers, fitted on noisy images of scikit-learn's digits (Chapter 1)."""
    from mmbook.data import add_noise, make_digits

    digits = make_digits(seed=0)
    images = add_noise(digits.images, TRAIN_NOISE, seed=0)
    return DigitsWithHints().fit(images, digits.hints, digits.labels)


def to_digit_image(image: np.ndarray) -> np.ndarray:
    """Any picture of one digit → an ``(8, 8)`` array in [0, 1], ink bright, like scikit-learn's digits.

    Colour and alpha are averaged to grey, a light background is inverted, the picture is cropped to
    the ink and box-resized to 8×8 (Chapter 1).
    """
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 4:  # alpha: paint transparent pixels white
        alpha = array[..., 3:4].astype(np.float64) / 255.0
        array = array[..., :3] * alpha + 255.0 * (1 - alpha)
    if array.ndim == 3:
        array = array[..., :3].mean(axis=2)
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D or 3-D image array, got shape {array.shape}")
    grey = array.astype(np.float64)
    grey = (grey - grey.min()) / (np.ptp(grey) or 1.0)
    if np.median(grey) > 0.5:  # dark ink on a light background
        grey = 1.0 - grey
    rows, cols = np.nonzero(grey > 0.3)
    if len(rows):
        top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        side = max(bottom - top, right - left)
        pad = side // 6
        cy, cx = (top + bottom) // 2, (left + right) // 2
        half = side // 2 + pad
        padded = np.pad(grey, half)
        grey = padded[cy : cy + 2 * half, cx : cx + 2 * half]
    small = Image.fromarray((grey * 255).astype(np.uint8)).resize((8, 8), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float64) / 255.0


def _label(proba: np.ndarray) -> dict[str, float]:
    return {str(k): float(p) for k, p in enumerate(proba)}


def classify(image: np.ndarray | None, hint: str) -> tuple[dict, dict, dict]:
    """Class probabilities from the image alone, the hint alone and both (late fusion) (Chapter 1)."""
    if image is None:
        raise gr.Error("Please upload or draw a picture of one digit.")
    array = np.asarray(image)
    if array.ndim >= 2 and array.shape[0] * array.shape[1] > MAX_PIXELS:
        raise gr.Error(f"That picture has {array.shape[0] * array.shape[1]:,} pixels; please use one of at most "
                       f"{MAX_PIXELS:,}.")
    if hint is not None and not isinstance(hint, str):
        raise gr.Error("The hint must be text, such as 'an odd number greater than four'.")
    hint = (hint or "").strip()
    if len(hint) > MAX_TEXT_CHARS:
        raise gr.Error(f"The hint has {len(hint):,} characters; please use at most {MAX_TEXT_CHARS}.")
    try:
        x = to_digit_image(image)[None]
    except ValueError as exc:
        raise gr.Error(f"Could not read that picture: {exc}.") from exc
    model = trained_model()
    p_image = model.proba_image(x)[0]
    p_hint = model.proba_hint([hint])[0] if hint else model.prior
    p_both = model.proba_late(x, [hint])[0] if hint else p_image
    return _label(p_image), _label(p_hint), _label(p_both)


def build_digits_app() -> gr.Blocks:
    """Upload a digit, type a hint such as "an odd number above four", compare the three posteriors."""
    trained_model()  # fitted now, before the first request
    with gr.Blocks(title="Digits with hints") as demo:
        gr.Markdown(
            "## Two modalities are better than one\n"
            "An image of a handwritten digit and a partial text hint (its parity and size). Each alone is "
            "unsure; multiplying their posteriors (late fusion) resolves the digit."
        )
        with gr.Row():
            image = raw(gr.Image(label="Digit", type="numpy", image_mode="RGB", height=220))
            hint = gr.Textbox(label="Hint", placeholder="an odd number greater than four", lines=2)
        button = gr.Button("Classify", variant="primary")
        with gr.Row():
            out_image = gr.Label(num_top_classes=3, label="Image alone")
            out_hint = gr.Label(num_top_classes=3, label="Hint alone")
            out_both = gr.Label(num_top_classes=3, label="Image + hint (late fusion)")
        button.click(classify, [image, hint], [out_image, out_hint, out_both], api_name="classify")
    return demo
