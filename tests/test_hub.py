"""mmbook.hub: the loading policy, offline, with a small model saved and loaded for real (the model cache
itself is tested in test_zoo.py)."""

from __future__ import annotations

import pytest
from mmbook import hub
from transformers import GPT2LMHeadModel


def test_lookup_by_name_and_hub_id() -> None:
    assert hub.lookup("gpt2") is hub.lookup("openai-community/gpt2")


def test_unknown_id_names_it_and_the_offline_alternative() -> None:
    with pytest.raises(KeyError) as info:
        hub.lookup("gpt-2")
    message = str(info.value)
    assert "'gpt-2'" in message
    assert "openai-community/gpt2" in message and "offline:" in message


def test_online_path_uses_the_hub_id(capsys) -> None:
    where = hub.resolve("gpt2", offline=False)
    assert where.online and where.source == "openai-community/gpt2"
    assert "online: openai-community/gpt2" in capsys.readouterr().out


def test_offline_path_loads_the_saved_standin(capsys) -> None:
    where = hub.resolve("gpt2", offline=True)
    assert not where.online
    assert "offline: the book's stand-in for openai-community/gpt2" in capsys.readouterr().out
    model = hub.from_pretrained(GPT2LMHeadModel, "gpt2", offline=True)
    assert isinstance(model, GPT2LMHeadModel) and model.config.n_layer == 2


def test_offline_pipeline_continues_a_caption() -> None:
    generate = hub.pipeline("text-generation", "gpt2", offline=True)
    text = generate("a red", max_new_tokens=8, do_sample=False)[0]["generated_text"]
    assert text.startswith("a red") and len(text) > len("a red")
    from mmbook.data import make_shapes

    vocabulary = {w for caption in make_shapes(500, seed=0).captions for w in caption.split()}
    new_words = text.split()[2:]
    # the stand-in has learnt the captions' words, not noise
    assert new_words and sum(w in vocabulary for w in new_words) / len(new_words) >= 0.8


def test_pipeline_refuses_a_wrong_task() -> None:
    with pytest.raises(ValueError, match="text-generation"):
        hub.pipeline("text-to-image", "gpt2", offline=True)


# ----------------------------------------------------------------------------------------------------
# Chapter 8: the catalogue


def test_the_catalogue_holds_the_seven_models_with_their_facts() -> None:
    ids = {m.hub_id for m in hub.CATALOGUE.values()}
    assert ids == {"openai-community/gpt2", "openai/clip-vit-base-patch32", "Salesforce/blip-image-captioning-base",
                   "dandelin/vilt-b32-finetuned-vqa", "openai/whisper-tiny", "HuggingFaceTB/SmolVLM-256M-Instruct",
                   "stable-diffusion-v1-5/stable-diffusion-v1-5"}
    smolvlm = hub.lookup("HuggingFaceTB/SmolVLM-256M-Instruct")
    assert smolvlm.task == "image-text-to-text" and smolvlm.licence == "Apache-2.0" and smolvlm.parameters is None
    assert hub.lookup("clip").parameters == 151_277_313 and hub.lookup("whisper").parameters == 37_760_640
    assert hub.lookup("vilt").download_mb == pytest.approx(117_588_537 * 4 / 1e6)
    assert hub.lookup("stable-diffusion").parameters is None and hub.lookup("stable-diffusion").download_mb is None
    assert all(m.revision is None for m in hub.CATALOGUE.values())  # never a hash typed from memory
    rows = hub.catalogue_rows(offline=True)
    assert len(rows) == len(hub.CATALOGUE) and all(len(r) == 8 for r in rows)
    runnable = {r[0]: r[-1] for r in rows}
    assert runnable["openai/clip-vit-base-patch32"] == "yes" and runnable["openai/whisper-tiny"] == "no"


def test_the_catalogue_classes_exist_in_transformers() -> None:
    import transformers

    for model in hub.CATALOGUE.values():
        if model.library == "transformers":
            assert all(hasattr(transformers, name) for name in model.classes), model.name


@pytest.mark.parametrize(("wrong", "suggested"), [("vilt-b32", "vilt"), ("openai/whisper-small", "openai/whisper-tiny"),
                                                  ("Salesforce/blip", "blip")])
def test_unknown_models_get_close_matches(wrong, suggested) -> None:
    with pytest.raises(KeyError, match="Did you mean") as info:
        hub.lookup(wrong)
    assert repr(suggested) in str(info.value)


def test_models_without_a_standin_say_what_the_book_shows_instead() -> None:
    with pytest.raises(RuntimeError, match="retrieval caption"):
        hub.resolve("blip", offline=True)
    with pytest.raises(RuntimeError, match="log-mel spectrogram"):
        hub.load("whisper", offline=True)
    assert hub.unavailable_reason("vilt", offline=True) is None
    assert hub.resolve("blip", offline=False, verbose=False).source == "Salesforce/blip-image-captioning-base"


def test_stable_diffusion_names_everything_it_lacks(monkeypatch, capsys) -> None:
    monkeypatch.setattr(hub, "cuda_available", lambda: False)
    reason = hub.unavailable_reason("stable-diffusion", offline=True)
    assert "Hugging Face Hub" in reason and "CUDA GPU" in reason
    import importlib.util

    if importlib.util.find_spec("diffusers") is None:
        assert "pip install diffusers" in reason
    with pytest.raises(RuntimeError, match="CUDA GPU"):
        hub.load_diffusion(offline=False)
    assert "[mmbook.hub] unavailable:" in capsys.readouterr().out
    with pytest.raises(ValueError, match="load_diffusion"):
        hub.load("stable-diffusion")


def test_load_runs_the_catalogue_classes_on_a_local_folder(tmp_path, capsys) -> None:
    from mmbook import random_checkpoints
    from transformers import BlipForConditionalGeneration, BlipProcessor

    model, processor = hub.load("blip", source=random_checkpoints.save_random_blip(tmp_path / "blip"))
    assert isinstance(model, BlipForConditionalGeneration) and isinstance(processor, BlipProcessor)
    assert not model.training and "[mmbook.hub] local:" in capsys.readouterr().out


def test_the_vqa_standin_loads_through_the_policy(capsys) -> None:
    from transformers import ViltForQuestionAnswering, ViltProcessor

    model, processor = hub.load("vilt", offline=True)
    assert isinstance(model, ViltForQuestionAnswering) and isinstance(processor, ViltProcessor)
    assert "offline: the book's stand-in for dandelin/vilt-b32-finetuned-vqa" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------------
# Chapter 11: the vision-language model, its online branch run on a simulated checkpoint


@pytest.fixture
def simulated_smolvlm(tmp_path, monkeypatch):
    """The catalogue's SmolVLM entry with its hub id resolved to a small random checkpoint of the same
    format (an Idefics3 model and processor) saved in ``tmp_path``: the online branch runs for real."""
    import dataclasses

    from mmbook import random_checkpoints

    folder = random_checkpoints.save_random_smolvlm(tmp_path / "smolvlm")
    monkeypatch.setitem(hub.CATALOGUE, "smolvlm", dataclasses.replace(hub.CATALOGUE["smolvlm"], hub_id=str(folder)))
    return folder


def test_the_vlm_online_branch_loads_and_answers(simulated_smolvlm, capsys) -> None:
    from mmbook import chat
    from mmbook.data import make_shapes
    from transformers import Idefics3ForConditionalGeneration, Idefics3Processor

    loaded = chat.load_chat_model(offline=False)
    assert f"[mmbook.hub] online: {simulated_smolvlm}" in capsys.readouterr().out
    assert isinstance(loaded.model, Idefics3ForConditionalGeneration)
    assert isinstance(loaded.processor, Idefics3Processor)
    assert loaded.online and loaded.note.startswith("Online:") and not loaded.model.training
    picture = make_shapes(1, seed=3).images[0]
    streamed = list(chat.stream_answer(loaded, picture, "what color is the circle?", 6))
    assert streamed and all(b.startswith(a) for a, b in zip(streamed, streamed[1:], strict=False))
    assert chat.answer(loaded, picture, "what color is the circle?", 6) == streamed[-1]


def test_the_vlm_pipeline_runs_through_the_policy(simulated_smolvlm) -> None:
    from mmbook.data import make_shapes
    from PIL import Image

    answer = hub.pipeline("image-text-to-text", "smolvlm", offline=False)
    picture = Image.fromarray(make_shapes(1, seed=3).images[0])
    messages = [{"role": "user", "content": [{"type": "image", "image": picture},
                                             {"type": "text", "text": "describe the picture."}]}]  # fmt: skip
    out = answer(text=messages, max_new_tokens=4, do_sample=False, return_full_text=False)
    assert isinstance(out[0]["generated_text"], str)


def test_an_unreachable_hub_gets_a_clear_message(monkeypatch) -> None:
    """Online, a model that cannot be fetched in the middle of a chapter says what to do, not a traceback."""
    monkeypatch.delenv("MMBOOK_SIMULATE_HUB", raising=False)

    class Unreachable:
        @classmethod
        def from_pretrained(cls, source, **kwargs):
            raise OSError(f"We couldn't connect to 'https://huggingface.co' to load the files of {source}.")

    with pytest.raises(RuntimeError, match=r"could not be loaded from the Hugging Face Hub .*MMBOOK_OFFLINE=1"):
        hub.from_pretrained(Unreachable, "gpt2", offline=False)
    with pytest.raises(ZeroDivisionError):  # other errors are the caller's to see
        with hub._loading(hub.resolve("gpt2", offline=False, verbose=False)):
            raise ZeroDivisionError
