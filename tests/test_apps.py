"""The Chapter 1 apps, exercised through gradio_client on 127.0.0.1, bad input included."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from mmbook.apps import APPS, build_digits_app, build_hello_app, build_textgen_app
from mmbook.apps.digits import to_digit_image
from mmbook.limits import MAX_TEXT_CHARS
from PIL import Image


def test_registry_builds_every_app() -> None:
    import gradio as gr

    assert set(APPS) >= {"hello", "textgen", "digits"}
    for build in APPS.values():
        demo = build()
        assert isinstance(demo, gr.Blocks)


def test_launcher_lists_the_apps() -> None:
    out = subprocess.run([sys.executable, "-m", "mmbook.apps", "--help"], capture_output=True, text=True, check=True)
    assert "hello" in out.stdout and "--share" in out.stdout


def test_hello(running_app) -> None:
    client = running_app(build_hello_app())
    assert client.predict("Ada", api_name="/greet") == "Hello, Ada!"
    with pytest.raises(AppError, match="Please type a name"):
        client.predict("   ", api_name="/greet")
    with pytest.raises(AppError, match=f"at most {MAX_TEXT_CHARS}"):
        client.predict("x" * (MAX_TEXT_CHARS + 1), api_name="/greet")
    assert client.predict("Grace", api_name="/greet") == "Hello, Grace!"  # still serving


def test_textgen(running_app) -> None:
    client = running_app(build_textgen_app())
    text = client.predict("a blue", 6, api_name="/complete")
    assert text.startswith("a blue") and len(text) > len("a blue")
    with pytest.raises(AppError, match="Please type"):
        client.predict("", 6, api_name="/complete")
    with pytest.raises(AppError, match=f"at most {MAX_TEXT_CHARS}"):
        client.predict("word " * MAX_TEXT_CHARS, 6, api_name="/complete")


def _digit_png(tmp_path, digit: int, *, dark_on_light: bool = False, mode: str = "RGB") -> str:
    from mmbook.data import make_digits

    data = make_digits(seed=0)
    image = data.images[np.flatnonzero(data.labels == digit)[0]]
    pixels = (image * 255).astype(np.uint8)
    if dark_on_light:
        pixels = 255 - pixels
    picture = Image.fromarray(pixels).resize((128, 128), Image.Resampling.NEAREST).convert(mode)
    path = tmp_path / f"digit{digit}_{mode}.png"
    picture.save(path)
    return str(path)


def test_digits_fusion_beats_each_modality(running_app, tmp_path) -> None:
    client = running_app(build_digits_app())
    image_only, hint_only, both = client.predict(
        handle_file(_digit_png(tmp_path, 7, dark_on_light=True)), "an odd number greater than four",
        api_name="/classify",
    )
    assert both["label"] == "7"
    assert {c["label"] for c in hint_only["confidences"][:3]} == {"5", "7", "9"}
    assert image_only["confidences"][0]["label"] in {str(d) for d in range(10)}


def test_digits_accepts_rgba_and_grey(running_app, tmp_path) -> None:
    client = running_app(build_digits_app())
    for mode in ("RGBA", "L"):
        *_, both = client.predict(handle_file(_digit_png(tmp_path, 3, mode=mode)), "", api_name="/classify")
        assert both["label"] in {str(d) for d in range(10)}


def test_digits_bad_input(running_app, tmp_path) -> None:
    client = running_app(build_digits_app())
    with pytest.raises(AppError, match="Please upload"):
        client.predict(None, "an even number", api_name="/classify")
    with pytest.raises(AppError, match=f"at most {MAX_TEXT_CHARS}"):
        client.predict(handle_file(_digit_png(tmp_path, 1)), "odd " * MAX_TEXT_CHARS, api_name="/classify")
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_bytes(b"this is not a picture")
    with pytest.raises(AppError):
        client.predict(handle_file(str(not_an_image)), "", api_name="/classify")
    *_, both = client.predict(handle_file(_digit_png(tmp_path, 2)), "an even number", api_name="/classify")
    assert both["label"] in {str(d) for d in range(10)}  # the server keeps serving


def test_to_digit_image_normalises() -> None:
    light = np.full((50, 40, 3), 255, dtype=np.uint8)
    light[10:40, 18:22] = 0  # a dark vertical stroke: a "1"
    small = to_digit_image(light)
    assert small.shape == (8, 8) and 0.0 <= small.min() and small.max() <= 1.0
    assert small[:, 3:5].mean() > small[:, :2].mean()  # ink is bright and centred
    with pytest.raises(ValueError, match="shape"):
        to_digit_image(np.zeros((2, 2, 2, 2)))
