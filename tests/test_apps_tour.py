"""The Chapter 9 tour of Gradio, every app through gradio_client on 127.0.0.1, bad input included."""

from __future__ import annotations

import time
import wave

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from mmbook.apps import APPS, tour
from mmbook.data import make_shapes
from mmbook.limits import MAX_TEXT_CHARS
from mmbook.viz import upscale_nearest
from PIL import Image


@pytest.fixture(scope="module")
def red_blue(tmp_path_factory) -> str:
    """A 32-pixel picture: the top half red, a 16×8 blue block at the bottom left, the rest dark."""
    image = np.full((32, 32, 3), 30, np.uint8)
    image[:16] = (230, 40, 40)
    image[16:, :8] = (50, 100, 240)
    path = tmp_path_factory.mktemp("pictures") / "red_blue.png"
    Image.fromarray(image).save(path)
    return str(path)


def _confidences(label: dict) -> dict[str, float]:
    return {c["label"]: c["confidence"] for c in label["confidences"]}


def test_registered_and_built() -> None:
    assert APPS["tour"] is tour.build_tour_app
    assert tour.build_tour_app() is not None


def test_colour_shares_counts_bright_pixels_only(red_blue) -> None:
    picture = np.asarray(Image.open(red_blue))
    shares = tour.colour_shares(picture)
    assert shares["red"] == pytest.approx(0.8) and shares["blue"] == pytest.approx(0.2)
    assert sum(shares.values()) == pytest.approx(1)
    rgba = np.concatenate([picture, np.full((32, 32, 1), 255, np.uint8)], axis=2)
    assert tour.colour_shares(rgba) == shares
    gray = np.full((8, 8), 200, np.uint8)  # a grey picture: one colour takes every pixel
    assert max(tour.colour_shares(gray).values()) == 1


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (None, "Please upload a picture first"),
        (np.zeros((16, 16, 3), np.uint8), "dark all over"),
        (np.zeros((4, 4, 5), np.uint8), "Expected a colour picture"),
        (np.zeros((4097, 4096, 3), np.uint8), "the limit is 16,777,216"),
    ],
)
def test_colour_shares_refuses_bad_pictures(image, message) -> None:
    import gradio as gr

    with pytest.raises(gr.Error, match=message):
        tour.colour_shares(image)


def test_interface(running_app, red_blue) -> None:
    client = running_app(tour.build_interface_demo())
    label = client.predict(handle_file(red_blue), api_name="/colours")
    assert label["label"] == "red" and _confidences(label)["blue"] == pytest.approx(0.2)
    with pytest.raises(AppError, match="Please upload a picture first"):
        client.predict(None, api_name="/colours")


def test_blocks_draws_then_measures(running_app) -> None:
    client = running_app(tour.build_blocks_demo())
    path = client.predict(7, api_name="/scene")
    picture = np.asarray(Image.open(path).convert("RGB"))
    np.testing.assert_array_equal(picture, upscale_nearest(make_shapes(1, seed=7).images[0], 256))
    label = client.predict(handle_file(path), api_name="/colours")
    colours = {o["color"] for o in make_shapes(1, seed=7).attributes[0]}
    assert {name for name, share in _confidences(label).items() if share > 0.05} <= colours
    with pytest.raises(AppError, match="seed must be a whole number from 0 to 1,000,000"):
        client.predict(-5, api_name="/scene")


def test_components_show_one_scene_in_every_modality(running_app) -> None:
    client = running_app(tour.build_components_demo())
    image, annotated, caption, label, audio, table, plot, gallery = client.predict(3, api_name="/show")
    data = make_shapes(1, seed=3)
    np.testing.assert_array_equal(np.asarray(Image.open(image).convert("RGB")),
                                  upscale_nearest(data.images[0], 256))
    assert caption == data.captions[0]
    assert len(annotated["annotations"]) == len(data.attributes[0])
    assert sum(_confidences(label).values()) == pytest.approx(1)
    assert table["data"] == [[o["shape"], o["color"], o["size"], o["position"]] for o in data.attributes[0]]
    with wave.open(audio, "rb") as f:
        assert f.getframerate() == data.sample_rate and f.getnframes() == data.audio.shape[1]
    assert plot is not None and len(gallery) == 4
    assert [g["caption"] for g in gallery] == [make_shapes(1, seed=3 + k).captions[0] for k in range(1, 5)]


def test_state_is_kept_per_session(running_app) -> None:
    demo = tour.build_state_demo()
    first = running_app(demo)
    from gradio_client import Client

    second = Client(first.src, verbose=False)
    try:
        first.predict(1, api_name="/collect")
        pictures, status = first.predict(2, api_name="/collect")
        assert len(pictures) == 2 and status.startswith("2 scene(s)")
        pictures, status = second.predict(5, api_name="/collect")
        assert len(pictures) == 1 and status.startswith("1 scene(s)")
        assert first.predict(api_name="/clear") == ([], "0 scene(s) in this session")
        assert first.predict(9, api_name="/collect")[1].startswith("1 scene(s)")
    finally:
        second.close()


def test_streaming_yields_growing_text_and_progress_ends_with_the_total(running_app) -> None:
    client = running_app(tour.build_streaming_demo())
    job = client.submit("a red circle", api_name="/stream")
    assert job.result() == "a red circle"
    assert job.outputs() == ["a", "a red", "a red circle"]
    totals = _confidences(client.predict(20, api_name="/count"))
    assert sum(totals.values()) == pytest.approx(1)
    with pytest.raises(AppError, match="Please type something to stream"):
        client.predict("   ", api_name="/stream")
    with pytest.raises(AppError, match=f"the limit is {MAX_TEXT_CHARS}"):
        client.predict("word " * MAX_TEXT_CHARS, api_name="/stream")


def test_errors_stop_a_request_and_warnings_do_not(running_app, red_blue) -> None:
    client = running_app(tour.build_validation_demo())
    out = client.predict(handle_file(red_blue), 256, api_name="/resize")  # enlarges 8×: a warning only
    assert Image.open(out).size == (256, 256)
    with pytest.raises(AppError, match="Please upload a picture first"):
        client.predict(None, 64, api_name="/resize")
    with pytest.raises(AppError, match="size must be a whole number from 8 to 1,024; got 5,000"):
        client.predict(handle_file(red_blue), 5000, api_name="/resize")
    assert Image.open(client.predict(handle_file(red_blue), 16, api_name="/resize")).size == (16, 16)


def test_chat_answers_about_the_last_picture(running_app, red_blue, tmp_path) -> None:
    client = running_app(tour.build_chat_demo())
    assert "Send me a picture" in client.predict({"text": "hello", "files": []}, api_name="/chat")
    answer = client.predict({"text": "which colours?", "files": [handle_file(red_blue)]}, api_name="/chat")
    assert answer == "I see red (80%), blue (20%)."
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")
    assert "could not read" in client.predict({"text": "and this?", "files": [handle_file(str(broken))]},
                                              api_name="/chat")
    assert tour.shapes_chat({"text": "main colour?", "files": [red_blue]}, []) == \
        "Mostly red: 80% of the coloured pixels."


@pytest.mark.parametrize(("limit", "low", "high"), [(1, 4 * 0.3, 10.0), (4, 0.3, 2 * 0.3 + 0.5)])
def test_concurrency_limit_queues_requests(running_app, limit, low, high) -> None:
    client = running_app(tour.build_concurrency_demo(limit=limit, seconds=0.3))
    client.predict(0, api_name="/slow")  # warm up
    start = time.perf_counter()
    jobs = [client.submit(i, api_name="/slow") for i in range(4)]
    assert [job.result() for job in jobs] == [0, 1, 2, 3]
    assert low <= time.perf_counter() - start <= high
