"""The Chapter 2 shapes app, exercised through gradio_client on 127.0.0.1, bad input included."""

from __future__ import annotations

import wave

import numpy as np
import pytest
from gradio_client.exceptions import AppError
from mmbook import demos
from mmbook.apps import APPS, build_shapes_app
from mmbook.apps.shapes import DISPLAY_SIZE, generate
from mmbook.data import QUESTION_TYPES, make_shapes
from mmbook.limits import MAX_SEED
from mmbook.sound import to_int16
from mmbook.viz import upscale_nearest
from PIL import Image


def _read_wav(path: str) -> tuple[int, np.ndarray]:
    with wave.open(path, "rb") as f:
        assert f.getnchannels() == 1 and f.getsampwidth() == 2
        return f.getframerate(), np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")


def test_registered() -> None:
    assert APPS["shapes"] is build_shapes_app


@pytest.mark.parametrize(("seed", "n_shapes", "size"), [(7, 3, "64"), (12345, 9, "32"), (MAX_SEED, 1, "64")])
def test_generate_matches_make_shapes(running_app, seed: int, n_shapes: int, size: str) -> None:
    client = running_app(build_shapes_app())
    image_path, caption, qa, audio_path, attributes = client.predict(seed, n_shapes, size, api_name="/generate")
    expected = make_shapes(1, seed=seed, image_size=int(size), min_shapes=n_shapes, max_shapes=n_shapes)

    picture = np.asarray(Image.open(image_path).convert("RGB"))
    assert picture.shape == (DISPLAY_SIZE, DISPLAY_SIZE, 3)
    k = DISPLAY_SIZE // int(size)
    np.testing.assert_array_equal(picture[::k, ::k], expected.images[0])
    np.testing.assert_array_equal(picture, upscale_nearest(expected.images[0], DISPLAY_SIZE))

    assert caption == expected.captions[0]
    assert qa["headers"] == ["type", "question", "answer"]
    rows = zip(QUESTION_TYPES, expected.questions[0], expected.answers[0], strict=True)
    assert qa["data"] == [list(row) for row in rows]

    rate, samples = _read_wav(audio_path)
    assert rate == expected.sample_rate
    np.testing.assert_array_equal(samples, to_int16(expected.audio[0]))  # not rescaled to the peak

    assert attributes == expected.attributes[0] and len(attributes) == n_shapes


def test_the_same_seed_gives_the_same_scene(running_app) -> None:
    client = running_app(build_shapes_app())
    first = client.predict(3, 4, "32", api_name="/generate")
    second = client.predict(3, 4, "32", api_name="/generate")
    other = client.predict(4, 4, "32", api_name="/generate")
    assert first[1] == second[1] and first[4] == second[4]
    assert other[4] != first[4]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1, 3, "64"), "seed must be a whole number from 0 to 1,000,000; got -1"),
        ((10**30, 3, "64"), "seed must be a whole number from 0 to 1,000,000; got a 31-digit number"),
        ((2.5, 3, "64"), "seed must be a whole number from 0 to 1,000,000; got 2.5"),
        (("abc", 3, "64"), "seed must be a whole number from 0 to 1,000,000; got 'abc'"),
        ((None, 3, "64"), "Please enter the seed, a whole number from 0 to 1,000,000"),
        ((7, 2.5, "64"), "number of shapes must be a whole number from 1 to 9; got 2.5"),
        ((7, 0, "64"), "number of shapes must be a whole number from 1 to 9; got 0"),
        ((7, 10, "64"), "number of shapes must be a whole number from 1 to 9; got 10"),
        ((7, 3, "48"), "image size must be one of 32, 64; got 48"),
        ((7, 3, None), "Please enter the image size"),
    ],
)
def test_bad_input_gets_a_clear_error_and_the_server_keeps_serving(running_app, args, message) -> None:
    client = running_app(build_shapes_app())
    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/generate")
    _, caption, *_ = client.predict(1, 2, "32", api_name="/generate")
    assert caption == make_shapes(1, seed=1, image_size=32, min_shapes=2, max_shapes=2).captions[0]


def test_generate_checks_input_when_called_directly() -> None:
    import gradio as gr

    for args, message in [((0, 10, "64"), "from 1 to 9; got 10"), ((0, 3, "48"), "one of 32, 64"),
                          ((True, 3, "64"), "whole number"), ((float("inf"), 3, "64"), "whole number"),
                          ((10**400, 3, "64"), "got a 401-digit number"), (("1e400", 3, "64"), "whole number"),
                          ((np.int64(-3), 3, "64"), "got -3"), (([1], 3, "64"), "whole number")]:
        with pytest.raises(gr.Error, match=message):
            generate(*args)
    image, caption, rows, (rate, samples), attributes = generate(5, 2, 32)
    assert generate("5", 2.0, "32")[1] == caption  # numbers written as text or floats are accepted
    assert image.shape == (DISPLAY_SIZE, DISPLAY_SIZE, 3) and image.dtype == np.uint8
    assert samples.dtype == np.int16 and rate == 8000 and len(rows) == len(QUESTION_TYPES) == 5


def test_upscale_nearest() -> None:
    small = np.arange(16, dtype=np.uint8).reshape(4, 4)
    big = upscale_nearest(small, 12)
    assert big.shape == (12, 12) and (big[::3, ::3] == small).all()
    with pytest.raises(ValueError, match="multiple"):
        upscale_nearest(small, 10)
    with pytest.raises(ValueError, match="square"):
        upscale_nearest(np.zeros((4, 5)), 20)


@pytest.mark.slow
@pytest.mark.skipif(demos.chromium_path() is None, reason="needs Chromium")
def test_snapshot_fills_the_radio_and_photographs() -> None:
    run = demos.snapshot(build_shapes_app(), [5, 2, "32"], api_name="/generate")
    assert run.answer[1] == make_shapes(1, seed=5, image_size=32, min_shapes=2, max_shapes=2).captions[0]
    assert run.png is not None and run.png.startswith(b"\x89PNG") and run.note is None
