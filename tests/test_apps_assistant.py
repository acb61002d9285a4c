"""The Chapter 10 assistant: the chat's rules, every tab through gradio_client on 127.0.0.1, bad input
included, the upload limit, and the Spaces folder."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from helpers import bad_pictures, module_client
from mmbook import chat, random_checkpoints, tone_reader
from mmbook.apps import APPS
from mmbook.apps.assistant import Assistant, AssistantModels, build_assistant_app, load_assistant_models
from mmbook.data import make_shapes
from mmbook.errors import InputError
from mmbook.limits import MAX_FILE_SIZE, MAX_PIXELS, MAX_TEXT_CHARS
from mmbook.pretrained import Task
from mmbook.router import Route, last_picture, route, search_query
from mmbook.sound import write_wav
from PIL import Image

SCENE_SEED = 5
#: What :func:`mmbook.apps.common.raw` says when Gradio cannot open an uploaded picture.
UNREADABLE = "could not be read as a picture (UnidentifiedImageError); please upload"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> AssistantModels:
    """The offline models, but a small random LLaVA checkpoint for the vision-language tool (fast; the trained
    tiny VLM is tested in test_apps_vlm_chat.py)."""
    loaded = load_assistant_models(offline=True)
    folder = random_checkpoints.save_random_llava(tmp_path_factory.mktemp("llava"))
    loaded.vlm = Task("a small random LLaVA checkpoint (tests)", lambda: chat.load_chat_model(source=folder))
    loaded.preload()
    return loaded


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """Pictures, clips and other files to upload, good and bad."""
    folder = tmp_path_factory.mktemp("uploads")
    scene = make_shapes(1, seed=SCENE_SEED, max_shapes=3)
    paths = bad_pictures(folder)
    paths["scene"] = str(folder / "scene.png")
    Image.fromarray(scene.images[0]).resize((128, 128), Image.Resampling.NEAREST).save(paths["scene"])
    paths["big"] = str(folder / "big.png")
    (folder / "big.png").write_bytes(np.random.default_rng(0).bytes(11 * 1024 * 1024))
    paths["badwav"] = str(folder / "bad.wav")
    (folder / "bad.wav").write_bytes(b"RIFF0000WAVEnot a clip")

    def clip(name: str, samples: np.ndarray, rate: int) -> None:
        paths[name] = str(write_wav(folder / f"{name}.wav", samples, rate))

    clip("sound", scene.audio[0], scene.sample_rate)
    clip("silent", np.zeros(8000), 8000)
    clip("long", 0.25 * np.sin(np.arange(8000 * 31) * 0.05), 8000)
    clip("twelve", np.tile(scene.audio[0], 24), scene.sample_rate)
    return paths


@pytest.fixture(scope="module")
def client(models) -> Iterator[Client]:
    """One server for the whole module (launched by the app's own ``launch``, with its upload limit)."""
    yield from module_client(build_assistant_app(models))


def truth(seed: int = SCENE_SEED) -> str:
    return tone_reader.words_for(make_shapes(1, seed=seed, max_shapes=3).attributes[0])


# ----------------------------------------------------------------------------------------------------
# the rules


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"text": "", "files": ["clip.wav"]}, Route("transcribe", "", "clip.wav")),
        ({"text": "what is this?", "files": [{"path": "clip.WAV"}]}, Route("transcribe", "what is this?", "clip.WAV")),
        ({"text": "how many shapes?", "files": ["a.png"]}, Route("answer", "how many shapes?", "a.png")),
        ({"text": "find a red circle", "files": ["a.jpg"]}, Route("answer", "find a red circle", "a.jpg")),
        ({"text": "  ", "files": [{"path": "a.jpeg"}]}, Route("caption", "", "a.jpeg")),
        ({"text": "find a red circle", "files": []}, Route("search", "a red circle")),
        ({"text": "Show me pictures of a blue square", "files": []}, Route("search", "a blue square")),
        ({"text": "search: green triangle"}, Route("search", "green triangle")),
        ({"text": "hello there", "files": []}, Route("help", "hello there")),
    ],
)
def test_the_routing_rules(message, expected) -> None:
    assert route(message) == expected


def test_a_question_goes_to_the_last_picture_of_the_conversation() -> None:
    history = [
        {"role": "user", "content": [{"type": "file", "file": {"path": "/tmp/first.png"}}]},
        {"role": "assistant", "content": "a caption"},
        {"role": "user", "content": {"path": "/tmp/second.png"}},
        {"role": "user", "content": "thanks"},
        {"role": "user", "content": [{"path": "/tmp/clip.wav"}]},
    ]
    assert last_picture(history) == "/tmp/second.png"
    assert route({"text": "what colour is the circle?", "files": []}, history) == Route(
        "answer", "what colour is the circle?", "/tmp/second.png")
    assert route({"text": "find a circle"}, history).tool == "search"  # the search words win
    assert route({"text": "thanks"}, history).tool == "help"  # not a question
    assert last_picture([]) is None and last_picture(None) is None


def test_search_words() -> None:
    assert search_query("find a red circle") == "a red circle"
    assert search_query("finding nemo") is None and search_query("") is None


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"text": "", "files": []}, "Please type a message"),
        ({"text": "   "}, "Please type a message"),
        ({"text": "hi", "files": ["a.png", "b.png"]}, "one file at a time"),
        ({"text": "hi", "files": ["notes.txt"]}, "'notes.txt' is neither"),
        ({"text": "a " * 400}, "the limit is 500"),
        ({"text": 3}, "must be a string"),
        ("find a red circle", "{'text': ..., 'files': [...]}"),
    ],
)
def test_messages_the_rules_refuse(message, error) -> None:
    with pytest.raises(InputError, match=error.replace("[", r"\[").replace("(", r"\(").replace("{", r"\{")):
        route(message)


# ----------------------------------------------------------------------------------------------------
# the app through gradio_client


def test_registered_and_limited(client, models) -> None:
    assert APPS["assistant"] is build_assistant_app
    demo = build_assistant_app(models)
    names = set(demo.get_api_info()["named_endpoints"])
    assert {"/chat", "/search", "/best_match", "/answer", "/caption", "/transcribe"} <= names


def test_every_tab_says_which_path_runs(client, models, files) -> None:
    pictures, table, note = client.predict("a red circle in the center", 4, api_name="/search")
    assert len(pictures) == 4 and len(table["data"]) == 4 and "tiny CLIP" in note
    best = client.predict("a red circle in the center", api_name="/best_match")
    assert best["caption"] == table["data"][0][3] and best["index"] == table["data"][0][1]
    assert best["score"] == pytest.approx(table["data"][0][2], abs=1e-4)
    answers, note = client.predict(handle_file(files["scene"]), "how many shapes are there?", api_name="/answer")
    assert answers["label"] and "offline: the tiny ViLT" in note and "count questions" in note
    text, source, note = client.predict(handle_file(files["scene"]), api_name="/caption")
    assert text in models.pretrained.caption.get().captions and source is not None and "retrieval caption" in note
    text, note = client.predict(handle_file(files["sound"]), api_name="/transcribe")
    assert text == truth() and "tone reader" in note and "not speech recognition" in note


def test_the_chat_routes_and_names_the_tool(client, files) -> None:
    reply = client.predict({"text": "", "files": [handle_file(files["sound"])]}, api_name="/chat")
    assert reply.startswith("*Tool: speech input.*") and truth() in reply
    reply = client.predict({"text": "how many shapes are there?", "files": [handle_file(files["scene"])]},
                           api_name="/chat")
    assert reply.startswith("*Tool: visual question answering.*") and "tiny ViLT" in reply
    reply = client.predict({"text": "", "files": [handle_file(files["scene"])]}, api_name="/chat")
    assert reply.startswith("*Tool: captioning.*") and "retrieval caption" in reply
    reply = client.predict({"text": "find a red circle in the center", "files": []}, api_name="/chat")
    assert reply.startswith("*Tool: text-to-image search.*") and "1. #" in reply and "3. #" in reply
    reply = client.predict({"text": "hello", "files": []}, api_name="/chat")
    assert reply.startswith("*Tool: help.*")


@pytest.mark.parametrize(
    ("endpoint", "args", "message"),
    [
        ("/search", ("", 4), "Please type a description"),
        ("/search", ("a red " * 90, 4), f"the limit is {MAX_TEXT_CHARS}"),
        ("/search", ("a red spaceship", 4), "'spaceship'"),
        ("/best_match", ("   ",), "Please type a description"),
        ("/answer", (None, "how many shapes are there?"), "Please upload a picture"),
        ("/answer", ("tiny", "how many shapes are there?"), "1×1 pixels, too small"),
        ("/answer", ("huge", "how many shapes are there?"), "100 megapixels"),
        ("/answer", ("corrupt", "how many shapes are there?"), UNREADABLE),
        ("/answer", ("notes", "how many shapes are there?"), UNREADABLE),
        ("/answer", ("scene", ""), "Please type the question"),
        ("/answer", ("scene", "how many " * 60), "the limit is 500"),
        ("/answer", ("scene", "what colour is the spaceship?"), "never saw the word(s) 'spaceship'"),
        ("/caption", (None,), "Please upload a picture"),
        ("/caption", ("huge",), f"the limit is {MAX_PIXELS:,} pixels"),
        ("/transcribe", (None,), "Please record or upload a clip"),
        ("/transcribe", ("silent",), "The clip is silent"),
        ("/transcribe", ("long",), "lasts 31.0 s"),
        ("/transcribe", ("twelve",), "the tone reader reads at most 10 s"),
    ],
)
def test_bad_input_in_a_tab_gets_a_clear_message(client, files, endpoint, args, message) -> None:
    call = [handle_file(files[a]) if a in files else a for a in args]
    with pytest.raises(AppError, match=message.replace("(", r"\(").replace(")", r"\)")):
        client.predict(*call, api_name=endpoint)
    assert client.predict("a blue square", api_name="/best_match")["caption"]  # still serving


@pytest.mark.parametrize(
    ("text", "file", "message"),
    [
        ("", None, "Please type a message"),
        ("hi", "notes", "Invalid file type"),  # Gradio checks the box's file_types first
        ("how many shapes are there?", "corrupt", "not a picture that can be read"),
        ("how many shapes are there?", "huge", "100 megapixels"),
        ("", "tiny", "too small"),
        ("", "badwav", "not a WAV clip"),
        ("", "silent", "The clip is silent"),
        ("", "long", "lasts 31.0 s"),
        ("a " * 300, None, "the limit is 500"),
        ("find a dragon", None, "'dragon'"),
    ],
)
def test_bad_input_in_the_chat_gets_a_clear_message(client, files, text, file, message) -> None:
    attached = [handle_file(files[file])] if file else []
    with pytest.raises(AppError, match=message.replace("(", r"\(").replace(")", r"\)")):
        client.predict({"text": text, "files": attached}, api_name="/chat")
    assert client.predict({"text": "hello", "files": []}, api_name="/chat").startswith("*Tool: help.*")


def test_uploads_above_the_limit_are_refused(client, files) -> None:
    assert MAX_FILE_SIZE == "10mb"
    with pytest.raises(Exception, match=f"exceeds the maximum file size of {10 * 1024 * 1024} bytes"):
        client.predict(handle_file(files["big"]), api_name="/caption")
    assert client.predict("a blue square", api_name="/best_match")["caption"]


def test_the_space_folder(tmp_path) -> None:
    from mmbook.apps.spaces import write_space

    written = write_space("assistant", tmp_path / "space")
    assert sorted(p.name for p in written) == ["README.md", "app.py", "requirements.txt"]
    assert "APPS['assistant']()" in (tmp_path / "space" / "app.py").read_text()
    assert "sdk: gradio" in (tmp_path / "space" / "README.md").read_text()


# ----------------------------------------------------------------------------------------------------
# Chapter 11: ask anything about the picture


def test_free_form_questions_about_the_last_picture_go_to_the_vlm() -> None:
    history = [{"role": "user", "content": [{"type": "file", "file": {"path": "/tmp/scene.png"}}]}]
    assert route({"text": "describe the picture."}, history) == Route("vlm", "describe the picture.", "/tmp/scene.png")
    assert route({"text": "what is left of the circle?"}, history).tool == "vlm"
    assert route({"text": "how many shapes are there?"}, history).tool == "answer"  # a kind the ViLT knows
    assert route({"text": "describe the picture."}).tool == "help"  # no picture yet


def test_ask_anything_streams_in_its_tab_and_answers_in_the_chat(client, models, files) -> None:
    job = client.submit(handle_file(files["scene"]), "describe the picture.", 6, api_name="/ask_anything")
    final, note = job.result()
    texts = [text for text, _ in job.outputs() if text]
    assert texts[-1] == final and all(b.startswith(a) for a, b in zip(texts, texts[1:], strict=False))
    assert final == chat.answer(models.vlm.get(), files["scene"], "describe the picture.", 6)
    assert "random LLaVA" in note
    history = [{"role": "user", "content": [{"type": "file", "file": {"path": files["scene"]}}]}]
    reply = Assistant(models).chat({"text": "describe the picture."}, history)
    assert reply.startswith("*Tool: ask anything (vision-language model).*") and "random LLaVA" in reply


@pytest.mark.parametrize(
    ("args", "message"),
    [((None, "describe the picture.", 8), "add a picture"), (("scene", "", 8), "type the question"),
     (("scene", "x" * 100_000, 8), "100,000 characters"), (("scene", "describe the picture.", 0), "from 1 to"),
     (("scene", "describe the picture.", None), "from 1 to"), (("tiny", "describe the picture.", 8), "too small"),
     (("corrupt", "describe the picture.", 8), "could not be read|not a picture|cannot identify")],
)  # fmt: skip
def test_ask_anything_refuses_bad_input_and_keeps_serving(client, files, args, message) -> None:
    picture = handle_file(files[args[0]]) if args[0] else None
    with pytest.raises(AppError, match=message):
        client.predict(picture, *args[1:], api_name="/ask_anything")
    final, _ = client.predict(handle_file(files["scene"]), "describe the picture.", 2, api_name="/ask_anything")
    assert isinstance(final, str) and final
