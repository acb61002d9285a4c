"""The Chapter 7 app, exercised through gradio_client on 127.0.0.1, bad input included."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from mmbook.apps import APPS, build_matching_app
from mmbook.apps.matching import EXAMPLE_CAPTION, EXAMPLE_SEED, MAX_WORDS, match, patch_heat, score
from mmbook.data import make_shapes
from mmbook.viz import heat_overlay
from PIL import Image


def _scene(seed: int = EXAMPLE_SEED) -> dict:
    return make_shapes(1, seed=seed, split="train")[0]


def _probability(label: dict) -> float:
    return next(c["confidence"] for c in label["confidences"] if c["label"] == "match")


def test_registered() -> None:
    assert APPS["matching"] is build_matching_app


def test_patch_heat_fills_each_patch_with_its_weight() -> None:
    heat = patch_heat(np.arange(9) / 10)
    assert heat.shape == (32, 32)
    assert (heat[:10, :10] == 0).all() and (heat[11:21, 22:] == 0.5).all() and (heat[22:, 22:] == 0.8).all()


def test_match_scores_and_draws(running_app) -> None:
    client = running_app(build_matching_app())
    label, picture, note = client.predict(EXAMPLE_SEED, EXAMPLE_CAPTION, None, api_name="/match")
    sample = _scene()
    p, weights, share = score(sample["image"], EXAMPLE_CAPTION)
    assert _probability(label) == pytest.approx(p, abs=1e-6)
    assert {c["label"] for c in label["confidences"]} == {"match", "no match"}
    assert note.startswith(f"Scene {EXAMPLE_SEED}'s own caption: {sample['caption']!r}.")
    assert f"[CLS] gave {share:.0%} of its attention to the picture's patches" in note
    image = np.asarray(Image.open(picture).convert("RGB"))
    assert image.shape == (256, 256, 3)
    np.testing.assert_array_equal(image, heat_overlay(sample["image"], patch_heat(weights), scale=8))
    assert weights.sum() == pytest.approx(1) and (weights >= 0).all()

    own, _, _ = client.predict(EXAMPLE_SEED, sample["caption"], None, api_name="/match")
    assert _probability(own) == pytest.approx(score(sample["image"], sample["caption"])[0], abs=1e-6)


def test_match_takes_an_uploaded_picture(running_app, tmp_path) -> None:
    client = running_app(build_matching_app())
    big = make_shapes(1, seed=EXAMPLE_SEED, image_size=64, split="train")
    path = tmp_path / "scene.png"
    Image.fromarray(big.images[0]).convert("RGBA").save(path)
    label, picture, note = client.predict(0, big.captions[0], handle_file(str(path)), api_name="/match")
    assert note.startswith("Your picture, resized to 32×32 pixels")
    assert 0 <= _probability(label) <= 1 and Image.open(picture).size == (256, 256)
    small = np.asarray(Image.fromarray(big.images[0]).resize((32, 32), Image.Resampling.BOX))
    assert _probability(label) == pytest.approx(score(small, big.captions[0])[0], abs=1e-6)


@pytest.mark.parametrize(
    ("seed", "caption", "message"),
    [
        (EXAMPLE_SEED, "", "Please type a caption, for example 'a "),
        (EXAMPLE_SEED, "   ", "Please type a caption"),
        (EXAMPLE_SEED, "a pink circle in the center", "does not know the word 'pink', only the shapes"),
        (EXAMPLE_SEED, "a red circle in the centre", "does not know the word 'centre'"),
        (EXAMPLE_SEED, "x" * 5000, "does not know the word 'x{39}…'"),
        (EXAMPLE_SEED, "a red circle 3", "does not know the word '3'"),
        (EXAMPLE_SEED, " ".join(["red"] * (MAX_WORDS + 1)), f"too long: {MAX_WORDS + 1} words"),
        (EXAMPLE_SEED, "red " * 10_000, "too long: 10,000 words"),
        (None, EXAMPLE_CAPTION, "Please enter the scene seed, .*, or upload a picture"),
        (-1, EXAMPLE_CAPTION, "whole number from 0 to 1,000,000; got -1"),
        (2.5, EXAMPLE_CAPTION, "whole number from 0 to 1,000,000; got 2.5"),
        (10**9, EXAMPLE_CAPTION, "whole number from 0 to 1,000,000; got 1,000,000,000"),
    ],
)
def test_bad_input_gets_a_clear_message(running_app, seed, caption, message) -> None:
    client = running_app(build_matching_app())
    with pytest.raises(AppError, match=message) as error:
        client.predict(seed, caption, None, api_name="/match")
    assert "Traceback" not in str(error.value) and len(str(error.value)) < 400
    label, _, _ = client.predict(EXAMPLE_SEED, EXAMPLE_CAPTION, None, api_name="/match")
    assert 0 <= _probability(label) <= 1  # the server keeps serving


def test_a_caption_of_punctuation_only_is_refused() -> None:
    with pytest.raises(gr.Error, match="has no words"):
        match(EXAMPLE_SEED, "?!", None)


def test_corrupt_upload_is_refused_and_the_server_keeps_serving(running_app, tmp_path) -> None:
    client = running_app(build_matching_app())
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture at all")
    with pytest.raises(AppError, match=r"could not be read as a picture \(UnidentifiedImageError\); please upload"):
        client.predict(EXAMPLE_SEED, EXAMPLE_CAPTION, handle_file(str(broken)), api_name="/match")
    truncated = tmp_path / "truncated.png"
    Image.fromarray(_scene()["image"]).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:60])
    with pytest.raises(AppError, match="could not be read as a picture"):
        client.predict(EXAMPLE_SEED, EXAMPLE_CAPTION, handle_file(str(truncated)), api_name="/match")
    label, _, _ = client.predict(EXAMPLE_SEED, EXAMPLE_CAPTION, None, api_name="/match")
    assert 0 <= _probability(label) <= 1


def test_odd_pictures_are_refused_or_converted() -> None:
    for image, message in [
        (np.zeros((8, 8, 2), np.uint8), r"Expected an RGB picture, got an array of shape \(8, 8, 2\)"),
        (np.zeros((0, 8, 3), np.uint8), "Expected an RGB picture"),
        (np.zeros((4097, 4097, 3), np.uint8), "please use one of at most 16,777,216"),
        (np.zeros((10, 500, 3), np.uint8), "500×10 pixels; the matcher needs a roughly square picture"),
        (np.full((8, 8, 3), np.nan), "must be finite numbers"),
    ]:
        with pytest.raises(gr.Error, match=message):
            match(EXAMPLE_SEED, EXAMPLE_CAPTION, image)
    picture = _scene()["image"]
    reference = match(0, EXAMPLE_CAPTION, picture)[0]["match"]
    assert match(0, EXAMPLE_CAPTION, picture.astype(np.float32) / 255)[0]["match"] == pytest.approx(reference)
    rgba = np.concatenate([picture, np.full((32, 32, 1), 255, np.uint8)], axis=2)
    assert match(0, EXAMPLE_CAPTION, rgba)[0]["match"] == pytest.approx(reference)
    grey = match(0, EXAMPLE_CAPTION, picture.mean(2).astype(np.uint8))
    assert 0 <= grey[0]["match"] <= 1 and grey[1].shape == (256, 256, 3)


def test_match_checks_input_when_called_directly() -> None:
    for args, message in [((True, EXAMPLE_CAPTION), "whole number"),
                          ((float("nan"), EXAMPLE_CAPTION), "whole number"),
                          (("abc", EXAMPLE_CAPTION), "got 'abc'"),
                          ((10**400, EXAMPLE_CAPTION), "got a 401-digit number"),
                          ((EXAMPLE_SEED, None), "Please type a caption")]:
        with pytest.raises(gr.Error, match=message):
            match(*args)
    label, image, note = match(str(EXAMPLE_SEED), EXAMPLE_CAPTION)
    assert image.shape == (256, 256, 3) and image.dtype == np.uint8 and set(label) == {"match", "no match"}
    assert label["match"] + label["no match"] == pytest.approx(1)
