"""The Chapter 8 app with six tasks in tabs, through gradio_client on 127.0.0.1, bad input included."""

from __future__ import annotations

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from mmbook import hub, inference, inputs, random_checkpoints, retrieval_captioner, tiny_vilt
from mmbook.apps import APPS, build_pretrained_app
from mmbook.data import make_shapes
from mmbook.limits import MAX_PIXELS
from mmbook.pretrained import PretrainedModels, Task, load_models
from mmbook.sound import write_wav
from PIL import Image


@pytest.fixture(scope="module")
def models() -> PretrainedModels:
    return load_models(offline=True, lazy=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """Pictures and clips to upload, good and bad."""
    folder = tmp_path_factory.mktemp("uploads")
    scene = make_shapes(1, seed=5)
    paths = {}

    def save(name: str, image: Image.Image) -> None:
        paths[name] = str(folder / f"{name}.png")
        image.save(paths[name])

    save("scene", Image.fromarray(scene.images[0]))
    rgba = Image.fromarray(scene.images[0]).convert("RGBA")
    rgba.putalpha(128)
    save("rgba", rgba)
    save("grey", Image.fromarray(scene.images[0]).convert("L"))
    save("grey16", Image.fromarray((scene.images[0].mean(axis=2) * 257).astype(np.uint16)))
    save("tiny", Image.new("RGB", (1, 1), (200, 30, 30)))
    save("huge", Image.new("1", (10_000, 10_000)))
    paths["corrupt"] = str(folder / "corrupt.png")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a picture")

    def clip(name: str, samples: np.ndarray, rate: int) -> None:
        paths[name] = str(write_wav(folder / f"{name}.wav", samples, rate))

    clip("sound", scene.audio[0], scene.sample_rate)
    clip("silent", np.zeros(8000), 8000)
    clip("long", 0.25 * np.sin(np.arange(8000 * 31) * 0.05), 8000)
    return paths


def test_registered() -> None:
    assert APPS["pretrained"] is build_pretrained_app


def test_every_offline_tab_says_which_path_runs(running_app, models, files) -> None:
    client = running_app(build_pretrained_app(models))
    answers, note = client.predict(handle_file(files["scene"]), "how many shapes are there?", api_name="/answer")
    assert answers["label"] in tiny_vilt.vilt_config(tiny_vilt.bert_tokenizer()).id2label.values()
    assert "offline: the tiny ViLT" in note and "count questions right" in note and "without the picture" in note
    text, source, note = client.predict(handle_file(files["scene"]), api_name="/caption")
    assert "retrieval caption" in note and "nothing was generated" in note and source is not None
    assert text in retrieval_captioner.retrieval_captioner().captions
    scores, note = client.predict(handle_file(files["scene"]), "red, green, blue", "a {} shape", api_name="/classify")
    assert {c["label"] for c in scores["confidences"]} == {"red", "green", "blue"} and "tiny CLIP" in note
    text, mel, note = client.predict(handle_file(files["sound"]), api_name="/transcribe")
    assert text.startswith("No speech model ran") and "80 log-mel bands" in text and mel is not None
    continuation, note = client.predict("a red", 5, api_name="/complete")
    assert continuation.startswith("a red") and "tiny GPT-2" in note
    with pytest.raises(AppError, match="needs the Hugging Face Hub"):
        client.predict("a red circle", api_name="/draw")


def test_the_vqa_tab_runs_the_same_code_as_the_library(running_app, models, files) -> None:
    client = running_app(build_pretrained_app(models))
    question = "what color is the circle?"
    answers, _ = client.predict(handle_file(files["scene"]), question, api_name="/answer")
    model, processor = models.answer.get()
    expected = inference.answer(model, processor, inputs.open_image(files["scene"]), question, k=3)
    assert answers["label"] == expected[0][0]
    got = {c["label"]: c["confidence"] for c in answers["confidences"]}
    assert got == pytest.approx(dict(expected), abs=1e-4)


@pytest.mark.parametrize("name", ["rgba", "grey", "grey16"])
def test_odd_image_modes_are_converted(running_app, models, files, name) -> None:
    client = running_app(build_pretrained_app(models))
    answers, _ = client.predict(handle_file(files[name]), "how many shapes are there?", api_name="/answer")
    assert answers["label"]
    text, _, _ = client.predict(handle_file(files[name]), api_name="/caption")
    assert text


@pytest.mark.parametrize(
    ("endpoint", "args", "message"),
    [
        ("/answer", ("tiny", "how many shapes are there?"), "1×1 pixels, too small"),
        ("/answer", ("huge", "how many shapes are there?"), "100 megapixels"),
        ("/caption", ("huge",), f"the limit is {MAX_PIXELS:,} pixels"),
        ("/answer", ("scene", ""), "Please type the question"),
        ("/answer", ("scene", "   "), "Please type the question"),
        ("/answer", ("scene", "what colour is the spaceship?"), "never saw the word(s) 'spaceship'"),
        ("/answer", ("scene", "how many " * 60), "the limit is 500"),
        ("/answer", ("scene", "is there a red circle " * 8), "tokens; the model reads at most 40"),
        ("/classify", ("scene", "", "a {} shape"), "Please type the candidate labels"),
        ("/classify", ("scene", "red", "a {} shape"), "at least two different labels"),
        ("/classify", ("scene", "red, blue", "a shape"), "exactly once"),
        ("/classify", ("scene", "red, dragon", "a {} shape"), "'dragon'"),
        ("/transcribe", ("silent",), "The clip is silent"),
        ("/transcribe", ("long",), "lasts 31.0 s"),
        ("/complete", ("", 5), "Please type the beginning"),
        ("/complete", ("a red", 0), "number of new tokens must be a whole number from 1 to 100; got 0"),
        ("/draw", ("a red circle",), "diffusers"),
    ],
)
def test_bad_input_gets_a_clear_message_and_the_server_keeps_serving(running_app, models, files, endpoint, args,
                                                                      message) -> None:
    client = running_app(build_pretrained_app(models))
    call = [handle_file(files[a]) if a in files else a for a in args]
    with pytest.raises(AppError, match=message.replace("(", r"\(").replace(")", r"\)")):
        client.predict(*call, api_name=endpoint)
    answers, _ = client.predict(handle_file(files["scene"]), "how many shapes are there?", api_name="/answer")
    assert answers["label"]


def test_a_corrupt_file_is_refused(running_app, models, files) -> None:
    """Gradio itself opens an uploaded picture first; :func:`mmbook.apps.common.raw` turns its failure into a
    message that says what the upload should have been."""
    client = running_app(build_pretrained_app(models))
    with pytest.raises(AppError, match=r"could not be read as a picture \(UnidentifiedImageError\); please upload"):
        client.predict(handle_file(files["corrupt"]), "how many shapes are there?", api_name="/answer")
    answers, _ = client.predict(handle_file(files["scene"]), "how many shapes are there?", api_name="/answer")
    assert answers["label"]


def test_the_blip_and_whisper_code_paths_through_the_app(running_app, models, files, tmp_path) -> None:
    """The online tabs' code on tiny random checkpoints of the real classes: types only, never the text."""
    from transformers import pipeline

    blip = hub.load("blip", source=random_checkpoints.save_random_blip(tmp_path / "blip"))
    whisper_folder = random_checkpoints.save_random_whisper(tmp_path / "whisper")
    whisper = pipeline("automatic-speech-recognition", model=str(whisper_folder))
    online_like = PretrainedModels(
        online=True, classify=models.classify, answer=models.answer, complete=models.complete,
        caption=Task("a random BLIP (test)", value=blip), transcribe=Task("a random Whisper (test)", value=whisper),
        draw=Task("", unavailable="no painter in this test"), labels="red, blue", template="a {} shape",
    )  # fmt: skip
    client = running_app(build_pretrained_app(online_like))
    text, source, note = client.predict(handle_file(files["scene"]), api_name="/caption")
    assert isinstance(text, str) and source is None and "random BLIP" in note
    text, mel, note = client.predict(handle_file(files["sound"]), api_name="/transcribe")
    assert isinstance(text, str) and mel is None and "random Whisper" in note
