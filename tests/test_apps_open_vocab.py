"""The open-vocabulary app's refusals (Chapter 12): checked before any model loads."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest
from mmbook.apps.open_vocab import classify

PICTURE = np.zeros((32, 32, 3), np.uint8)


@pytest.mark.parametrize(
    ("image", "labels", "threshold", "message"),
    [
        (PICTURE, "", 0.5, "two or more labels"),
        (PICTURE, "red circle", 0.5, "between 2 and"),
        (PICTURE, "red circle, zebra", 0.5, "'zebra'"),
        (PICTURE, "red, red", 0.5, "only once"),
        (PICTURE, "red, blue", 1.5, "from 0 to 1"),
        (None, "red, blue", 0.5, "upload a picture"),
        (np.zeros((2, 2, 3), np.uint8), "red, blue", 0.5, "too small"),
    ],
)
def test_bad_input_is_a_clear_error(image, labels, threshold, message) -> None:
    with pytest.raises(gr.Error, match=message):
        classify(image, labels, threshold)
