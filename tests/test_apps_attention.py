"""The Chapter 4 app, exercised through gradio_client on 127.0.0.1, bad input included; the model it serves."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from mmbook.apps import APPS, build_attention_app
from mmbook.apps.attention import locate
from mmbook.data import POSITIONS, make_shapes
from mmbook.shape_finder import FINDER_WORDS, finder_examples, scene, shape_finder
from PIL import Image

# scene 5 holds one red shape, in the left cell; scene 6 one diamond, bottom right; scene 3 no red shape
RED_SEED, DIAMOND_SEED, NO_RED_SEED = 5, 6, 3


def test_registered() -> None:
    assert APPS["attention"] is build_attention_app


def test_scenes_used_below_are_what_the_tests_say() -> None:
    cells = lambda seed, word: [o["position"] for o in scene(seed)["attributes"]  # noqa: E731
                                if word in (o["color"], o["shape"])]
    assert cells(RED_SEED, "red") == ["left"]
    assert cells(DIAMOND_SEED, "diamond") == ["bottom right"]
    assert cells(NO_RED_SEED, "red") == []


def test_trained_model_finds_shapes_it_never_saw() -> None:
    test = make_shapes(300, seed=2024, max_shapes=4)
    pictures, words, cells = finder_examples(test)
    probs, heat = shape_finder().locate(test.images[pictures], [FINDER_WORDS[w] for w in words])
    assert (probs.argmax(1) == cells).mean() > 0.9
    rows, cols = np.divmod(cells, 3)
    edges = np.round(np.arange(4) * 32 / 3).astype(int)
    inside = [h[edges[r] : edges[r + 1], edges[c] : edges[c + 1]].sum() / h.sum()
              for h, r, c in zip(heat, rows, cols, strict=True)]
    assert np.mean(inside) > 1 / 9 * 3  # far more attention on the named shape's cell than on an average cell


def test_locate_answers_and_draws(running_app) -> None:
    client = running_app(build_attention_app())
    picture, answer, note = client.predict(RED_SEED, "red", None, api_name="/locate")
    assert answer["label"] == "left" and {c["label"] for c in answer["confidences"]} <= set(POSITIONS)
    assert note == f"Scene {RED_SEED}: the red shape is in the left cell."
    assert Image.open(picture).size == (256, 256)
    _, answer, note = client.predict(DIAMOND_SEED, " Diamond ", None, api_name="/locate")
    assert answer["label"] == "bottom right" and "the diamond is in the bottom right cell" in note
    _, _, note = client.predict(NO_RED_SEED, "red", None, api_name="/locate")
    assert note.startswith(f"Scene {NO_RED_SEED} has no red shape")


def test_locate_takes_an_uploaded_picture(running_app, tmp_path) -> None:
    client = running_app(build_attention_app())
    big = make_shapes(1, seed=RED_SEED, image_size=64, max_shapes=4)  # the same scene at 64x64, in RGBA
    path = tmp_path / "scene.png"
    Image.fromarray(big.images[0]).convert("RGBA").save(path)
    position = next(o["position"] for o in big.attributes[0] if o["color"] == "red")
    picture, answer, note = client.predict(0, "red", handle_file(str(path)), api_name="/locate")
    assert answer["label"] == position and "Your picture" in note
    assert Image.open(picture).size == (256, 256)


@pytest.mark.parametrize(
    ("seed", "word", "message"),
    [
        (RED_SEED, "", "Please type a word, one of: red, orange, yellow, green, blue, purple, circle"),
        (RED_SEED, "   ", "Please type a word"),
        (RED_SEED, "pink", "does not know 'pink'; use one of: red, orange, yellow, green, blue, purple, circle, "
                           "square, triangle, diamond, cross"),
        (RED_SEED, "x" * 5000, "does not know 'xxxx"),
        (-1, "red", "whole number from 0 to 1,000,000; got -1"),
        (2.5, "red", "whole number from 0 to 1,000,000; got 2.5"),
        (10**9, "red", "whole number from 0 to 1,000,000"),
        (None, "red", "Please enter the seed, a whole number from 0 to 1,000,000"),
    ],
)
def test_bad_input_gets_a_clear_message(running_app, seed, word, message) -> None:
    client = running_app(build_attention_app())
    with pytest.raises(AppError, match=message.replace("(", r"\(")):
        client.predict(seed, word, None, api_name="/locate")
    _, answer, _ = client.predict(RED_SEED, "red", None, api_name="/locate")
    assert answer["label"] == "left"  # the server keeps serving


def test_corrupt_upload_is_refused_and_the_server_keeps_serving(running_app, tmp_path) -> None:
    client = running_app(build_attention_app())
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture at all")
    with pytest.raises(AppError):
        client.predict(RED_SEED, "red", handle_file(str(broken)), api_name="/locate")
    _, answer, _ = client.predict(RED_SEED, "red", None, api_name="/locate")
    assert answer["label"] == "left"


def test_pictures_that_are_not_rgb_or_too_large_are_refused() -> None:
    with pytest.raises(gr.Error, match=r"Expected an RGB picture, got an array of shape \(8, 8\)"):
        locate(RED_SEED, "red", np.zeros((8, 8), np.uint8))
    with pytest.raises(gr.Error, match="please use one of at most 16,777,216"):
        locate(RED_SEED, "red", np.zeros((4097, 4097, 3), np.uint8))
