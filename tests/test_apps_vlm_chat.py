"""The Chapter 11 chat about a picture: the library's checks, streaming through gradio_client on 127.0.0.1
with a small random LLaVA checkpoint, every bad input, and one answer of the trained tiny VLM."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from helpers import bad_pictures, module_client
from mmbook import chat, random_checkpoints
from mmbook.apps.vlm_chat import build_vlm_chat_app
from mmbook.data import make_shapes
from mmbook.errors import InputError
from mmbook.limits import MAX_TEXT_CHARS
from PIL import Image

QUESTION = "what color is the circle?"


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> chat.ChatModel:
    """The tiny VLM's format with random weights: fast, and its answers are noise."""
    folder = random_checkpoints.save_random_llava(tmp_path_factory.mktemp("llava"))
    return chat.load_chat_model(source=folder, device="cpu")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """Pictures and other files to upload, good and bad."""
    folder = tmp_path_factory.mktemp("uploads")
    scene = make_shapes(1, seed=chat.EXAMPLE_SEED, max_shapes=3, split="train").images[0]
    paths = bad_pictures(folder)
    paths |= {name: str(folder / f"{name}.png") for name in ("scene", "grey", "rgba", "large")}
    Image.fromarray(scene).save(paths["scene"])
    Image.fromarray(scene).convert("L").save(paths["grey"])
    Image.fromarray(scene).convert("RGBA").save(paths["rgba"])
    Image.fromarray(scene).resize((2000, 1500)).save(paths["large"])
    return paths


@pytest.fixture(scope="module")
def client(small) -> Iterator[Client]:
    """One server for the module, launched with the book's limits."""
    yield from module_client(build_vlm_chat_app(small))


def text(message: dict) -> str:
    """The text of one chat message (Gradio 6 sends content as a list of typed parts)."""
    content = message["content"]
    return content if isinstance(content, str) else "".join(p.get("text", "") for p in content)


def answers(job_outputs: list) -> list[str]:
    """The assistant's text in each streamed output of ``/ask``."""
    return [text(history[-1]) for history, _ in job_outputs]


# ----------------------------------------------------------------------------------------------------
# the library


@pytest.mark.parametrize("value", [None, "", 0, chat.MAX_NEW_TOKENS + 1, -3, 2.5, True, float("nan"), "many"])
def test_max_new_tokens_out_of_range_is_refused(value) -> None:
    with pytest.raises(InputError, match=f"whole number from 1 to {chat.MAX_NEW_TOKENS}"):
        chat.check_max_new_tokens(value)


def test_max_new_tokens_accepts_whole_numbers() -> None:
    assert chat.check_max_new_tokens(8) == 8 and chat.check_max_new_tokens(8.0) == 8
    assert chat.check_max_new_tokens(str(chat.MAX_NEW_TOKENS)) == chat.MAX_NEW_TOKENS


def test_questions_and_pictures_are_checked(small, files) -> None:
    picture = make_shapes(1, seed=3).images[0]
    for question, message in (("", "type the question"), ("   ", "type the question"),
                              ("x" * 100_000, f"100,000 characters; the limit is {MAX_TEXT_CHARS}"),
                              ("what colour is the teapot?", "'teapot'"), (None, "type the question")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            chat.stream_answer(small, picture, question)  # refused before anything is generated
    for bad, message in ((None, "add a picture"), (np.zeros((1, 1, 3), np.uint8), "too small"),
                         (files["corrupt"], "not a picture"), (files["huge"], "megapixels"),
                         (np.zeros((32, 32, 5), np.uint8), "H×W×3"), ("", "add a picture")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            chat.answer(small, bad, QUESTION)
    for good in (files["grey"], files["rgba"], files["large"], np.asarray(Image.open(files["grey"]))):
        assert chat.check_picture(good).mode == "RGB"
    assert max(chat.check_picture(files["large"]).size) <= 1024  # shrunk before the processor sees it


def test_the_word_level_tokenizer_gives_a_vocabulary(small) -> None:
    assert small.vocabulary is not None and {"circle", "color", "red", "?"} <= small.vocabulary
    assert "<image>" not in small.vocabulary and not small.online


def test_example_pictures_fit_their_questions() -> None:
    examples = chat.example_pictures()
    assert [q for _, q in examples] == list(chat.EXAMPLE_QUESTIONS)
    single = make_shapes(64, seed=chat.EXAMPLE_SEED, max_shapes=1, split="train")
    first = next(i for i, o in enumerate(single.attributes) if o[0]["shape"] == "circle")
    assert np.array_equal(examples[0][0], single.images[first])


# ----------------------------------------------------------------------------------------------------
# the app through gradio_client


def test_the_answer_streams_and_ends_as_the_library_says(client, small, files) -> None:
    job = client.submit(handle_file(files["scene"]), QUESTION, 8, [], api_name="/ask")
    history, box = job.result()
    streamed = answers(job.outputs())
    assert box == "" and text(history[-2]) == QUESTION
    texts = [t for t in streamed if t]
    assert len(texts) >= 2, streamed  # partial answers arrived before the whole one
    assert all(b.startswith(a) and len(b) > len(a) for a, b in zip(texts, texts[1:], strict=False))
    final = chat.answer(small, files["scene"], QUESTION, 8)
    assert texts[-1] == text(history[-1]) == final


def test_the_history_grows_and_clears(client, files) -> None:
    first, _ = client.predict(handle_file(files["scene"]), QUESTION, 4, [], api_name="/ask")
    second, _ = client.predict(handle_file(files["scene"]), "how many shapes are there?", 4, first, api_name="/ask")
    assert len(second) == 4 and text(second[2]) == "how many shapes are there?"
    assert client.predict(api_name="/clear") == ([], "")


@pytest.mark.parametrize("name", ["grey", "rgba", "large"])
def test_other_pictures_are_converted_and_answered(client, files, name) -> None:
    history, _ = client.predict(handle_file(files[name]), QUESTION, 4, [], api_name="/ask")
    assert history[-1]["role"] == "assistant" and text(history[-1])


def test_every_bad_input_gets_a_clear_message_and_the_server_lives_on(client, files) -> None:
    scene = handle_file(files["scene"])
    cases = [
        ((None, QUESTION, 8), "add a picture"),
        ((scene, "", 8), "type the question"),
        ((scene, "x" * 100_000, 8), "100,000 characters"),
        ((scene, "what colour is the teapot?", 8), "teapot"),
        ((scene, QUESTION, None), "whole number from 1 to"),
        ((scene, QUESTION, 0), "whole number from 1 to"),
        ((scene, QUESTION, 10_000), "whole number from 1 to"),
        ((scene, QUESTION, "lots"), "whole number from 1 to"),
        ((handle_file(files["tiny"]), QUESTION, 8), "too small"),
        ((handle_file(files["huge"]), QUESTION, 8), "megapixels|could not be read"),
        ((handle_file(files["corrupt"]), QUESTION, 8), "could not be read|not a picture"),
        ((handle_file(files["notes"]), QUESTION, 8), "could not be read|not a picture"),
    ]
    for args, message in cases:
        with pytest.raises(AppError, match=message):
            client.predict(*args, [], api_name="/ask")
        history, _ = client.predict(scene, QUESTION, 2, [], api_name="/ask")  # still serving
        assert history[-1]["role"] == "assistant"


# ----------------------------------------------------------------------------------------------------
# the trained tiny VLM, through the catalogue's offline path


@pytest.mark.slow
def test_the_trained_tiny_vlm_names_the_colour_in_the_app(running_app, capsys, tmp_path) -> None:
    import gradio as gr

    demo = build_vlm_chat_app(offline=True)
    assert "offline: the book's stand-in for HuggingFaceTB/SmolVLM-256M-Instruct" in capsys.readouterr().out
    notes = [str(b.value) for b in demo.blocks.values() if isinstance(b, gr.Markdown)]
    assert any("not a real vision-language model" in n for n in notes)
    client = running_app(demo)
    held_out = make_shapes(40, seed=chat.EXAMPLE_SEED + 7, max_shapes=1, split="train")
    i = next(i for i, o in enumerate(held_out.attributes) if o[0]["shape"] == "circle")
    Image.fromarray(held_out.images[i]).save(tmp_path / "circle.png")
    history, _ = client.predict(handle_file(str(tmp_path / "circle.png")), QUESTION, 3, [], api_name="/ask")
    assert text(history[-1]) == held_out.attributes[i][0]["color"]
