"""Chapter 12's shop assistant: the catalogue, retrieval with the tiny CLIP, answers from retrieved facts,
the SmolVLM prompt path on a random checkpoint, and the app through gradio_client with bad inputs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from helpers import bad_pictures, module_client
from mmbook import chat, rag, random_checkpoints, zoo
from mmbook.apps.shop_assistant import build_shop_assistant_app
from mmbook.errors import InputError
from PIL import Image


@pytest.fixture(scope="module")
def retriever() -> rag.Retriever:
    return rag.Retriever(*zoo.load("tiny-clip"), rag.catalogue())


def test_catalogue_is_deterministic_and_varied() -> None:
    items = rag.catalogue()
    assert items == rag.catalogue() and items != rag.catalogue(seed=1)
    assert len({(p.shape, p.color) for p in items}) == len(items)
    assert any(p.stock == 0 for p in items) and any(p.stock > 0 for p in items)


def test_answers_follow_the_facts_given() -> None:
    red, blue = rag.Product("circle", "red", 7, 3, "a coaster"), rag.Product("circle", "blue", 9, 0, "a badge")
    assert rag.compose("how much is this?", [red]).fact == ("price", 7)
    assert rag.compose("how much is this?", [blue]).fact == ("price", 9)
    assert rag.compose("is this in stock?", [blue]).fact == ("stock", False)
    assert rag.compose("what is this for?", [red]).text == "The red circle is used as a coaster."
    assert rag.compose("do you have this in blue?", [red, blue]).fact == ("variant", False)
    assert rag.compose("do you have this in red?", [blue, red]).fact == ("variant", True)
    assert rag.compose("do you have this in green?", [red]).text == "Sorry, we do not sell a green circle."
    with pytest.raises(InputError, match="price"):
        rag.question_kind("hello there")


def test_retrieval_beats_no_and_wrong_retrieval(retriever) -> None:
    scores = rag.evaluate(retriever, n=80)
    assert scores["recognition"] > 0.7
    assert scores["retrieval"] > scores["none"] + 0.3
    assert scores["retrieval"] > scores["wrong"] + 0.3


def test_prompt_path_runs_on_a_smolvlm_format_checkpoint(retriever, tmp_path) -> None:
    model = chat.load_chat_model(source=random_checkpoints.save_random_smolvlm(tmp_path / "s"), device="cpu")
    images, rows = rag.eval_set(1)
    prompt = rag.rag_prompt(rows[0][1], retriever.retrieve(images[0], rows[0][1]))
    assert "dollars" in prompt and rows[0][1] in prompt
    assert isinstance(rag.vlm_answer(model, retriever, images[0], rows[0][1]), str)


def test_the_tiny_vlms_format_refuses_the_prompt(retriever, tmp_path) -> None:
    model = chat.load_chat_model(source=random_checkpoints.save_random_llava(tmp_path / "l"), device="cpu")
    images, rows = rag.eval_set(1)
    with pytest.raises(InputError, match="dollars"):
        rag.vlm_answer(model, retriever, images[0], rows[0][1])


@pytest.fixture(scope="module")
def client(retriever) -> Iterator[Client]:
    yield from module_client(build_shop_assistant_app(retriever))


def test_app_answers_and_refuses(client, tmp_path) -> None:
    images, rows = rag.eval_set(4)
    path = str(tmp_path / "p.png")
    Image.fromarray(images[0]).save(path)
    reply, table = client.predict(handle_file(path), "how much is this?", api_name="/ask")
    assert "dollars" in reply and table["data"]
    for picture, question, message in [(path, "", "type the question"), (path, "hello", "price"),
                                       (None, "how much is this?", "picture")]:  # fmt: skip
        with pytest.raises(AppError, match=message):
            client.predict(handle_file(picture) if picture else None, question, api_name="/ask")
    for bad in bad_pictures(tmp_path).values():
        with pytest.raises(AppError):
            client.predict(handle_file(bad), "how much is this?", api_name="/ask")
