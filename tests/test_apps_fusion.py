"""The Chapter 5 app, exercised through gradio_client on 127.0.0.1, bad input included; the models it serves."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest
from gradio_client.exceptions import AppError
from mmbook.apps import APPS, build_fusion_app
from mmbook.apps.fusion import HEADERS, ask, cell_heat, named_cell
from mmbook.data import make_shapes
from mmbook.experiments.fusion_bench import FUSION_DEMO, color_at_task, fusion_models
from mmbook.fusion import METHODS
from mmbook.fusion_classifier import predict
from mmbook.viz import heat_overlay
from PIL import Image

# scene 6: a blue shape in the top left cell, nothing in the center; scene 3: yellow top left, purple center
SEED, OTHER_SEED = 6, 3
QUESTION = "what color is the shape in the top left?"


def _scene(seed: int) -> dict[str, str]:
    return {o["position"]: o["color"] for o in make_shapes(1, seed=seed, min_shapes=3, max_shapes=5).attributes[0]}


def _answers(table: dict) -> dict[str, list[str]]:
    assert table["headers"] == HEADERS
    assert [row[0] for row in table["data"]] == list(METHODS)
    return {row[0]: row[1:] for row in table["data"]}


def test_registered() -> None:
    assert APPS["fusion"] is build_fusion_app


def test_scenes_used_below_are_what_the_tests_say() -> None:
    assert _scene(SEED)["top left"] == "blue" and "center" not in _scene(SEED)
    assert _scene(OTHER_SEED)["top left"] == "yellow" and _scene(OTHER_SEED)["center"] == "purple"


def test_the_served_weights_score_what_their_record_says() -> None:
    models = fusion_models()
    assert list(models) == list(METHODS)
    s = FUSION_DEMO
    task = color_at_task(s.n_images, seed=s.seed)
    test = np.flatnonzero(task.image >= s.train_images)
    scored = {m: float((predict(models[m], task, test) == task.labels[test]).float().mean()) for m in METHODS}
    assert scored == pytest.approx({m: models[m].accuracy["both"] for m in METHODS}, abs=1e-6)
    assert scored["cross-attention"] > 0.9
    assert scored["late"] < 0.6  # the colour depends on the cell: late fusion cannot combine them


def test_named_cell_takes_the_longest_phrase() -> None:
    assert named_cell(QUESTION) == "top left"
    assert named_cell("What colour is the shape in the top left corner?") == "top left"
    assert named_cell("which color is the shape in the center left?") == "left"  # not "in the center"
    assert named_cell("what color is the shape in the middle on the right?") == "right"
    assert named_cell("what color is the shape at the bottom in the middle?") == "bottom"
    assert named_cell("what color is the shape?") is None


def test_cell_heat_fills_each_cell_with_its_weight() -> None:
    heat = cell_heat(np.arange(9) / 10)
    assert heat.shape == (32, 32)
    assert (heat[:11, :11] == 0).all() and (heat[11:21, 21:] == 0.5).all() and (heat[21:, 21:] == 0.8).all()


def test_compare_answers_and_draws(running_app) -> None:
    client = running_app(build_fusion_app())
    picture, table, note = client.predict(SEED, QUESTION, "nothing", api_name="/compare")
    assert note == f"Scene {SEED}: the shape in the top left cell is blue."
    answers = _answers(table)
    assert answers["cross-attention"][0] == "blue" and answers["cross-attention"][2] == "yes"
    assert float(answers["cross-attention"][1].rstrip("%")) > 50
    for answer, confidence, right in answers.values():
        assert right == ("yes" if answer == "blue" else "no") and confidence.endswith("%")
        assert 100 / 6 <= float(confidence.rstrip("%")) <= 100
    image = np.asarray(Image.open(picture).convert("RGB"))
    assert image.shape == (256, 256, 3)
    np.testing.assert_array_equal(image, ask(SEED, QUESTION, "nothing")[0])
    assert image[:85, :85].mean() > image[85:, 85:].mean()  # the question looks at the top left cell

    _, table, note = client.predict(OTHER_SEED, "What colour is the shape in the center?", "nothing",
                                    api_name="/compare")
    assert note == f"Scene {OTHER_SEED}: the shape in the center cell is purple."
    assert _answers(table)["cross-attention"][0::2] == ["purple", "yes"]


def test_a_question_about_an_empty_cell_or_no_cell(running_app) -> None:
    client = running_app(build_fusion_app())
    _, table, note = client.predict(SEED, "what color is the shape in the center?", "nothing", api_name="/compare")
    assert note == f"Scene {SEED} has no shape in the center cell, so no answer can be right."
    assert {row[2] for row in _answers(table).values()} == {"—"}
    _, table, note = client.predict(SEED, "what color is the shape?", "nothing", api_name="/compare")
    assert note.startswith("The question names no grid cell; the models were trained on questions like")
    assert {row[2] for row in _answers(table).values()} == {"—"}


def test_dropping_the_picture_leaves_only_the_question(running_app) -> None:
    client = running_app(build_fusion_app())
    picture, first, note = client.predict(SEED, QUESTION, "the picture", api_name="/compare")
    _, second, other_note = client.predict(OTHER_SEED, QUESTION, "the picture", api_name="/compare")
    assert "The picture was hidden from every model" in note and note.startswith(f"Scene {SEED}: ")
    assert "The picture was hidden from every model" in other_note
    one, two = _answers(first), _answers(second)
    assert {m: a[:2] for m, a in one.items()} == {m: a[:2] for m, a in two.items()}  # same answers, any picture
    scene = make_shapes(1, seed=SEED, min_shapes=3, max_shapes=5).images[0]
    image = np.asarray(Image.open(picture).convert("RGB"))
    np.testing.assert_array_equal(image, heat_overlay(scene, np.zeros((32, 32))))  # no attention: dimmed


def test_dropping_the_question_leaves_only_the_picture(running_app) -> None:
    client = running_app(build_fusion_app())
    _, first, note = client.predict(SEED, QUESTION, "the question", api_name="/compare")
    _, second, _ = client.predict(SEED, "what color is the shape in the bottom right?", "the question",
                                  api_name="/compare")
    assert note == (f"Scene {SEED}: the shape in the top left cell is blue. "
                    "The question was hidden from every model: they answer from the picture alone.")
    one, two = _answers(first), _answers(second)
    assert {m: a[:2] for m, a in one.items()} == {m: a[:2] for m, a in two.items()}  # same answers, any question
    with_question = _answers(client.predict(SEED, QUESTION, "nothing", api_name="/compare")[1])
    assert with_question != one


@pytest.mark.parametrize(
    ("seed", "question", "drop", "message"),
    [
        (None, QUESTION, "nothing", "Please enter the scene seed, a whole number from 0 to 1,000,000"),
        (-1, QUESTION, "nothing", "whole number from 0 to 1,000,000; got -1"),
        (2.5, QUESTION, "nothing", "whole number from 0 to 1,000,000; got 2.5"),
        (10**9, QUESTION, "nothing", "whole number from 0 to 1,000,000; got 1,000,000,000"),
        (SEED, "", "nothing", "Please type a question, for example 'what color is the shape in the top left"),
        (SEED, "   ", "nothing", "Please type a question"),
        (SEED, "what color is the pink shape?", "nothing", "do not know the word 'pink', only the shapes"),
        (SEED, "x" * 5000, "nothing", "do not know the word 'x{39}…'"),
        (SEED, "what color is the shape 3?", "nothing", "do not know the word '3'"),
        (SEED, " ".join(["the"] * 41), "nothing", "too long: 41 words"),
        (SEED, QUESTION, "everything", "What to hide must be one of"),
        (SEED, QUESTION, None, "Please choose what to hide from the models"),
    ],
)
def test_bad_input_gets_a_clear_message(running_app, seed, question, drop, message) -> None:
    client = running_app(build_fusion_app())
    with pytest.raises(AppError, match=message) as error:
        client.predict(seed, question, drop, api_name="/compare")
    assert "Traceback" not in str(error.value) and len(str(error.value)) < 300
    _, _, note = client.predict(SEED, QUESTION, "nothing", api_name="/compare")
    assert note == f"Scene {SEED}: the shape in the top left cell is blue."  # the server keeps serving


def test_ask_checks_input_when_called_directly() -> None:
    for args, message in [((True, QUESTION, "nothing"), "whole number"),
                          ((float("inf"), QUESTION, "nothing"), "whole number"),
                          ((float("nan"), QUESTION, "nothing"), "whole number"),
                          (("abc", QUESTION, "nothing"), "whole number from 0 to 1,000,000; got 'abc'"),
                          (("", QUESTION, "nothing"), "Please enter the scene seed"),
                          ((10**400, QUESTION, "nothing"), "got a 401-digit number"),
                          ((np.int64(-3), QUESTION, "nothing"), "got -3"),
                          (([1], QUESTION, "nothing"), "whole number"),
                          ((SEED, None, "nothing"), "Please type a question"),
                          ((SEED, "?" * 41, "nothing"), "too long"),
                          ((SEED, QUESTION, "everything"), "must be one of 'nothing', 'the picture', 'the question'")]:
        with pytest.raises(gr.Error, match=message):
            ask(*args)
    image, rows, note = ask("6", QUESTION, "nothing")  # a seed written as text is accepted
    assert image.shape == (256, 256, 3) and image.dtype == np.uint8 and len(rows) == len(METHODS)
    assert ask(6.0, QUESTION, "nothing")[2] == note == f"Scene {SEED}: the shape in the top left cell is blue."
