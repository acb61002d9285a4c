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
