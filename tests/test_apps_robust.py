"""The Chapter 14 robustness app, exercised through gradio_client on 127.0.0.1: every control at its
extremes, empty and wrong-type inputs, bad uploads; the server stays alive."""

from __future__ import annotations

from collections.abc import Iterator

import gradio as gr
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from helpers import bad_pictures, module_client
from mmbook.apps.robust import METHODS, build_robust_app, inspect
from mmbook.corrupt import CORRUPTIONS
from mmbook.data import make_shapes
from mmbook.experiments.robustness import PAIRS
from mmbook.limits import MAX_SEED
from PIL import Image

SEED = 4
GOOD = (SEED, None, "blur", 50, next(iter(METHODS)))


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    yield from module_client(build_robust_app())


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("uploads")
    paths = bad_pictures(folder)
    paths["scene"] = str(folder / "scene.png")
    scene = make_shapes(1, seed=SEED, image_size=64, max_shapes=3).images[0]
    Image.fromarray(scene).convert("RGBA").save(paths["scene"])
    return paths


def names(answer: dict) -> list[str]:
    return [c["label"] for c in answer["confidences"]]


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
@pytest.mark.parametrize("strength", [0, 100])
def test_every_corruption_at_both_ends(client, corruption, strength) -> None:
    seen, answer, heat, note = client.predict(SEED, None, corruption, strength, next(iter(METHODS)),
                                              api_name="/inspect")
    assert Image.open(seen).size == (256, 256) and Image.open(heat).size == (256, 256)
    assert answer["label"] in PAIRS and set(names(answer)) <= set(PAIRS)
    assert note.startswith(f"Scene {SEED}: ") and f"at {strength:g} % of the strongest" in note
    clean = np.asarray(Image.open(seen))
    if strength == 0:  # no corruption: the scene itself, whatever was picked
        assert np.array_equal(clean[::8, ::8], make_shapes(1, seed=SEED, max_shapes=3).images[0])


@pytest.mark.parametrize("seed", [0, MAX_SEED])
def test_the_seed_at_both_ends(client, seed) -> None:
    _, answer, _, note = client.predict(seed, None, "occlusion", 100, "gradient × input", api_name="/inspect")
    assert answer["label"] in PAIRS and note.startswith(f"Scene {seed}: ")


def test_every_method_draws_a_map_and_an_upload_replaces_the_scene(client, files) -> None:
    heats = []
    for method in METHODS:
        _, answer, heat, _ = client.predict(*GOOD[:4], method, api_name="/inspect")
        heats.append(np.asarray(Image.open(heat)))
    assert not np.array_equal(heats[0], heats[2])  # gradient-weighted attention is not the plain rollout
    _, _, _, note = client.predict(-5, handle_file(files["scene"]), "hue", 30, "attention rollout",
                                   api_name="/inspect")
    assert note.startswith("Your picture, shrunk to 32×32 pixels.")  # the seed is not read at all


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((None, None, "blur", 50, "attention rollout"), "Please enter the scene seed, a whole number from 0 to "
                                                        "1,000,000, or upload a picture"),
        ((-1, None, "blur", 50, "attention rollout"), "whole number from 0 to 1,000,000; got -1"),
        ((2.5, None, "blur", 50, "attention rollout"), "got 2.5"),
        ((10**9, None, "blur", 50, "attention rollout"), "from 0 to 1,000,000"),
        ((SEED, None, None, 50, "attention rollout"), "Please pick a corruption: noise, blur, hue, occlusion"),
        ((SEED, None, "fog", 50, "attention rollout"), "Unknown corruption 'fog'"),
        ((SEED, None, "blur", None, "attention rollout"), "Please set the strength, a number from 0 to 100"),
        ((SEED, None, "blur", -0.5, "attention rollout"), "must be a number from 0 to 100 .*got -0.5"),
        ((SEED, None, "blur", 100.5, "attention rollout"), "got 100.5"),
        ((SEED, None, "blur", "strong", "attention rollout"), "got 'strong'"),
        ((SEED, None, "blur", 50, ""), "Please pick a relevance method"),
        ((SEED, None, "blur", 50, "saliency"), "Unknown relevance method 'saliency'"),
    ],
)
def test_bad_values_get_clear_errors(client, args, message) -> None:
    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/inspect")


@pytest.mark.parametrize(("name", "message"), [("tiny", "too small"), ("huge", "megapixels"),
                                               ("corrupt", "not a picture|could not be read"),
                                               ("notes", "not a picture|could not be read")])
def test_bad_uploads_get_clear_errors_and_the_server_lives(client, files, name, message) -> None:
    with pytest.raises(AppError, match=message):
        client.predict(SEED, handle_file(files[name]), "blur", 50, "attention rollout", api_name="/inspect")
    assert client.predict(*GOOD, api_name="/inspect")[1]["label"] in PAIRS


def test_wrong_types_in_a_direct_call_are_refused() -> None:
    with pytest.raises(gr.Error, match="got True"):
        inspect(SEED, None, "blur", True, "attention rollout")
    with pytest.raises(gr.Error, match="got nan"):
        inspect(SEED, None, "blur", float("nan"), "attention rollout")
    with pytest.raises(gr.Error, match="Unknown corruption 3"):
        inspect(SEED, None, 3, 50, "attention rollout")


def test_registered() -> None:
    from mmbook.apps import APPS

    assert APPS["robust"] is build_robust_app
