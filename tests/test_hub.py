"""mmbook.hub and mmbook.zoo: the loading policy, offline, with a small model saved and loaded for real."""

from __future__ import annotations

import pytest
from mmbook import hub, zoo
from transformers import GPT2Config, GPT2LMHeadModel


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


def _save_small_gpt2(folder) -> None:
    GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=16, n_embd=8, n_layer=1, n_head=2)).save_pretrained(folder)


def _check_model(folder) -> None:
    GPT2LMHeadModel.from_pretrained(folder)


def test_corrupt_cache_is_rebuilt_with_a_message(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setenv("MMBOOK_CACHE", str(tmp_path))
    folder = zoo.model_dir("small")
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{ not json")
    path = zoo.cached("small", _save_small_gpt2, _check_model)
    out = capsys.readouterr().out
    assert "unusable" in out and "rebuilding" in out
    assert GPT2LMHeadModel.from_pretrained(path).config.n_layer == 1


def test_cache_is_reused(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MMBOOK_CACHE", str(tmp_path))
    builds = []

    def build(folder) -> None:
        builds.append(folder)
        _save_small_gpt2(folder)

    first = zoo.cached("small", build, _check_model)
    second = zoo.cached("small", build, _check_model)
    assert first == second and len(builds) == 1


# ----------------------------------------------------------------------------------------------------
# Chapter 8: the catalogue


def test_the_catalogue_holds_the_six_models_with_their_facts() -> None:
    ids = {m.hub_id for m in hub.CATALOGUE.values()}
    assert ids == {"openai-community/gpt2", "openai/clip-vit-base-patch32", "Salesforce/blip-image-captioning-base",
                   "dandelin/vilt-b32-finetuned-vqa", "openai/whisper-tiny",
                   "stable-diffusion-v1-5/stable-diffusion-v1-5"}
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
    from mmbook import standins
    from transformers import BlipForConditionalGeneration, BlipProcessor

    model, processor = hub.load("blip", source=standins.save_random_blip(tmp_path / "blip"))
    assert isinstance(model, BlipForConditionalGeneration) and isinstance(processor, BlipProcessor)
    assert not model.training and "[mmbook.hub] local:" in capsys.readouterr().out


def test_the_vqa_standin_loads_through_the_policy(capsys) -> None:
    from transformers import ViltForQuestionAnswering, ViltProcessor

    model, processor = hub.load("vilt", offline=True)
    assert isinstance(model, ViltForQuestionAnswering) and isinstance(processor, ViltProcessor)
    assert "offline: the book's stand-in for dandelin/vilt-b32-finetuned-vqa" in capsys.readouterr().out
