"""mmbook.simulated_hub: with MMBOOK_SIMULATE_HUB=1 the online path runs on small random checkpoints of the
catalogue's real classes, built once into the model cache (the simulated checkpoints are built once per test
session into a temporary cache)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import transformers
from mmbook import env, hub, inference, simulated_hub

SIMULATED = sorted(simulated_hub.BUILDERS)


@pytest.fixture(scope="session")
def simulated_cache(tmp_path_factory) -> Path:
    """A model cache holding every simulated checkpoint, built once for the session."""
    root = tmp_path_factory.mktemp("simulated-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MMBOOK_CACHE", str(root))
        for name in SIMULATED:
            simulated_hub.checkpoint(name, hub.lookup(name).hub_id)
    return root


@pytest.fixture
def simulated(simulated_cache, monkeypatch) -> Iterator[Path]:
    """The simulated hub switched on over the session's cache, with the usual offline flags still set."""
    monkeypatch.setenv("MMBOOK_CACHE", str(simulated_cache))
    monkeypatch.setenv("MMBOOK_SIMULATE_HUB", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MMBOOK_OFFLINE", "1")
    yield simulated_cache


def test_simulation_is_online_before_the_offline_flags_and_without_network(monkeypatch) -> None:
    def no_network() -> bool:
        raise AssertionError("is_offline() must not try the network")

    monkeypatch.setattr(env, "_hub_unreachable", no_network)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MMBOOK_OFFLINE", "1")
    monkeypatch.setenv("MMBOOK_SIMULATE_HUB", "1")
    assert env.is_simulated_hub() and not env.is_offline()
    monkeypatch.setenv("MMBOOK_SIMULATE_HUB", "0")
    assert not env.is_simulated_hub() and env.is_offline()


def test_every_transformers_entry_of_the_catalogue_is_simulated() -> None:
    names = {m.name for m in hub.CATALOGUE.values() if m.library == "transformers"}
    assert names == set(SIMULATED)


@pytest.mark.parametrize("name", SIMULATED)
def test_resolve_gives_a_simulated_folder_that_loads_with_the_catalogue_classes(simulated, name, capsys) -> None:
    entry = hub.lookup(name)
    where = hub.resolve(name)
    assert where.online and where.simulated and where.kwargs == {}
    assert Path(where.source) == simulated / simulated_hub.SUBDIR / name
    said = capsys.readouterr().out
    assert f"online, SIMULATED: {entry.hub_id}" in said and "RANDOM weights" in said
    model, processor = hub.load(name)
    model_cls, processor_cls = (getattr(transformers, c) for c in entry.classes)
    if not model_cls.__name__.startswith("Auto"):
        assert isinstance(model, model_cls)
    if not processor_cls.__name__.startswith("Auto"):
        assert isinstance(processor, processor_cls)
    assert not model.training and model.device.type == env.device()
    assert sum(p.numel() for p in model.parameters()) < 200_000  # small: built in a second, never downloaded


def test_the_simulated_pipelines_run_the_online_calls(simulated) -> None:
    from mmbook.data import make_shapes

    scene = make_shapes(1, seed=3)
    text = inference.complete(hub.pipeline("text-generation", "gpt2"), "A multimodal model is", max_new_tokens=4)
    assert text.startswith("A multimodal model is")
    labels = ["an astronaut", "a cat"]
    best = inference.classify(hub.pipeline("zero-shot-image-classification", "clip"), scene.images[0], labels)
    assert sorted(label for label, _ in best) == sorted(labels)
    recogniser = hub.pipeline("automatic-speech-recognition", "whisper")
    assert isinstance(inference.transcribe(recogniser, np.zeros(16_000, np.float32), max_new_tokens=4), str)


def test_chapter_11s_chat_says_it_is_simulated_and_takes_any_words(simulated) -> None:
    from mmbook import chat

    loaded = chat.load_chat_model()
    assert loaded.online and "SIMULATED" in loaded.note and loaded.vocabulary is None  # a subword tokenizer
    picture, _ = chat.example_pictures()[0]
    assert isinstance(chat.answer(loaded, picture, "What do you see in this picture?", 4), str)


def test_chapter_3s_clip_tokenizer_behaves_as_clips(simulated) -> None:
    from transformers import CLIPTokenizer

    tok = hub.from_pretrained(CLIPTokenizer, "clip")
    assert tok.tokenize("A RED Circle") == tok.tokenize("a red circle")
    assert all(piece.endswith("</w>") for piece in tok.tokenize("red"))
    ids = tok("un café ☕")["input_ids"]
    assert tok.unk_token_id not in ids[1:-1] and tok.decode(ids, skip_special_tokens=True).strip() == "un café ☕"


def test_models_go_to_the_chosen_device(simulated, monkeypatch) -> None:
    from transformers import GPT2LMHeadModel

    monkeypatch.setattr(hub, "best_device", lambda: "meta")  # stands for a GPU: only the placement is checked
    assert hub.from_pretrained(GPT2LMHeadModel, "gpt2").device.type == "meta"
    assert hub.load("vilt")[0].device.type == "meta"
    assert hub.load("vilt", device="cpu")[0].device.type == "cpu"


def test_an_incomplete_checkpoint_is_built_again(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MMBOOK_CACHE", str(tmp_path))
    monkeypatch.setenv("MMBOOK_SIMULATE_HUB", "1")
    folder = Path(hub.resolve("blip").source)
    (folder / simulated_hub.MARKER).unlink()
    assert not simulated_hub.is_complete(folder)
    assert Path(hub.resolve("blip").source) == folder and simulated_hub.is_complete(folder)
    assert "is incomplete or was written by other code; building it again" in capsys.readouterr().out
    monkeypatch.setattr(simulated_hub, "code_hash", lambda: "other code")
    assert not simulated_hub.is_complete(folder)


def test_a_checkpoint_that_cannot_be_built_says_so(tmp_path, monkeypatch) -> None:
    def broken(folder: Path) -> Path:
        raise OSError("disk full")

    monkeypatch.setenv("MMBOOK_CACHE", str(tmp_path))
    monkeypatch.setenv("MMBOOK_SIMULATE_HUB", "1")
    monkeypatch.setitem(simulated_hub.BUILDERS, "vilt", broken)
    with pytest.raises(RuntimeError, match=r"could not be built in .*vilt \(OSError: disk full\)"):
        hub.load("vilt")
    assert not (tmp_path / simulated_hub.SUBDIR / "vilt").exists()
    assert not list((tmp_path / simulated_hub.SUBDIR).glob(".vilt.*"))  # no half-written folder left


def test_a_checkpoint_missing_its_weights_says_what_to_do(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MMBOOK_CACHE", str(tmp_path))
    monkeypatch.setenv("MMBOOK_SIMULATE_HUB", "1")
    folder = Path(hub.resolve("blip").source)
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(RuntimeError, match="cannot be loaded .* Delete that folder"):
        hub.load("blip")
    shutil.rmtree(folder)
    assert hub.load("blip")[0] is not None  # deleted, it is built again


def test_stable_diffusion_is_a_clear_message_on_the_simulated_hub(simulated, monkeypatch, capsys) -> None:
    monkeypatch.setattr(hub, "cuda_available", lambda: False)
    reason = hub.unavailable_reason("stable-diffusion")
    assert "MMBOOK_SIMULATE_HUB=1" in reason and "CUDA GPU" in reason
    with pytest.raises(RuntimeError, match="CUDA GPU"):
        hub.load_diffusion()
    assert "[mmbook.hub] unavailable:" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="has no checkpoint for 'stable-diffusion-v1-5"):
        hub.resolve("stable-diffusion")
    rows = {row[0]: row[-1] for row in hub.catalogue_rows()}
    assert rows["stable-diffusion-v1-5/stable-diffusion-v1-5"] == "no" and rows["openai/whisper-tiny"] == "yes"


def test_make_online_runs_every_chapter_with_an_online_branch() -> None:
    import re

    import nbformat

    root = Path(__file__).resolve().parents[1]
    listed = re.search(r"^ONLINE_CHAPTERS := ((?:.*\\\n)*.*)$", (root / "Makefile").read_text(), re.M)
    assert listed, "the Makefile has no ONLINE_CHAPTERS"
    online = set(listed.group(1).replace("\\\n", " ").split())
    branch = re.compile(r"\bhub\b|is_offline|\bOFFLINE\b|load_chat_model|load_assistant_models|load_models|textgen")
    # imports, and the hub's catalogue read as data (Chapter 14's licence table), decide nothing about the network
    data_only = re.compile(r"\bhub\.(CATALOGUE|catalogue_rows)\b|^\s*(from|import) .*$", re.M)
    with_branch = set()
    for path in sorted((root / "chapters").glob("*.ipynb")):
        code = [data_only.sub("", c.source) for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        if any(branch.search(source) for source in code[1:]):  # the setup cell's own check is the same everywhere
            with_branch.add(path.stem)
    assert with_branch and with_branch == online


def test_random_checkpoints_leave_the_callers_random_state(tmp_path) -> None:  # noqa: ANN001
    import torch
    from mmbook import random_checkpoints

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    random_checkpoints.save_random_gpt2(tmp_path / "gpt2", seed=0)
    assert torch.equal(torch.rand(3), expected)
