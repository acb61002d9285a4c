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


@pytest.fixture(scope="module")
def client():
    from helpers import module_client
    from mmbook.apps import APPS, build_open_vocab_app

    assert APPS["open-vocab"] is build_open_vocab_app
    yield from module_client(build_open_vocab_app())


def test_the_app_answers_abstains_and_refuses_through_the_api(client, tmp_path) -> None:
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    from mmbook.data import make_shapes
    from PIL import Image

    scene = make_shapes(1, seed=11, max_shapes=1)
    path = tmp_path / "scene.png"
    Image.fromarray(scene.images[0]).save(path)
    shape = scene.attributes[0][0]
    truth = f"{shape['color']} {shape['shape']}"
    others = "blue square" if truth != "blue square" else "red circle"
    labels, answer, overlay = client.predict(handle_file(str(path)), f"{truth}, {others}", 0.0,
                                             api_name="/classify")
    assert labels["label"] == truth and answer.startswith(truth)
    assert sum(c["confidence"] for c in labels["confidences"]) == pytest.approx(1.0, abs=1e-4)
    height, width = np.asarray(Image.open(overlay)).shape[:2]
    assert height == width >= 32  # the overlay of the 32-pixel picture, enlarged for the page
    grey = tmp_path / "grey.png"  # no shape at all: the model is less sure than on a scene
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(grey)
    sure, abstained, _ = client.predict(handle_file(str(grey)), "red circle, blue square", 0.99,
                                        api_name="/classify")
    assert max(c["confidence"] for c in sure["confidences"]) < 0.99 and abstained.startswith("Not sure")
    with pytest.raises(AppError, match="'zebra'"):
        client.predict(handle_file(str(path)), "red circle, zebra", 0.5, api_name="/classify")
    again, _, _ = client.predict(handle_file(str(path)), f"{truth}, {others}", 0.0, api_name="/classify")
    assert again["label"] == truth  # the server is still answering
