"""mmbook.zoo, the registry of the book's models: caller's state kept, one build across processes, retraining
when settings or code change, rebuilding a corrupt folder, one shared loaded copy (Chapter 1)."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import zoo_toy
from mmbook import shape_finder, tiny_models, zoo

HERE = Path(__file__).parent


@pytest.fixture
def cache(monkeypatch, tmp_path) -> Path:
    """A fresh model cache and no loaded copies, before and after the test."""
    monkeypatch.setenv("MMBOOK_CACHE", str(tmp_path))
    zoo.forget()
    yield tmp_path
    zoo.forget()


def _global_state() -> tuple:
    return (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate(), torch.get_num_threads(),
            torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())


def _assert_same(before: tuple, after: tuple) -> None:
    assert torch.equal(before[0], after[0]), "torch's global generator moved"
    assert np.array_equal(before[1], after[1]), "NumPy's global generator moved"
    assert before[2:] == after[2:], "Python's generator, the thread count or the determinism flags changed"


@pytest.fixture
def disturbed_state() -> tuple:
    """A caller's state unlike the trainers' own: two threads, deterministic mode on, generators mid-stream."""
    threads = torch.get_num_threads()
    flags = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    torch.rand(3), np.random.rand(3), random.random()
    yield _global_state()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])


def test_training_and_loading_leave_the_callers_state_unchanged(cache, monkeypatch, disturbed_state) -> None:
    small_gpt2 = dataclasses.replace(tiny_models.TINY_GPT2, n_captions=200, steps=3, batch_size=8)
    small_entry = dataclasses.replace(tiny_models.TINY_GPT2_ENTRY, settings=small_gpt2)
    monkeypatch.setitem(zoo.REGISTRY, "tiny-gpt2", small_entry)
    for name in ("tiny-gpt2", zoo_toy.NAME):
        zoo.path(name)
        assert zoo.trained_now(name)
        _assert_same(disturbed_state, _global_state())
        zoo.forget(name)
        zoo.load(name)  # loaded from the folder this time
        assert not zoo.trained_now(name)
        _assert_same(disturbed_state, _global_state())
    shape_finder.train_shape_finder(n_images=40, steps=2, batch_size=8)  # a trainer called directly
    _assert_same(disturbed_state, _global_state())


def test_the_record_holds_settings_code_hash_and_time(cache) -> None:
    record = zoo.record(zoo_toy.NAME)
    assert record["settings"] == dataclasses.asdict(zoo_toy.ENTRY.settings)
    assert record["code_hash"] == zoo.code_hash(zoo_toy.ENTRY) and len(record["code_hash"]) == 64
    assert record["train_seconds"] > 0 and record["width"] == 4
    assert (cache / "models" / zoo_toy.NAME / zoo.RECORD).is_file()


def test_load_returns_one_shared_copy_even_to_concurrent_threads(cache, monkeypatch) -> None:
    log = cache / "runs.log"
    monkeypatch.setenv("MMBOOK_TOY_LOG", str(log))
    slow = dataclasses.replace(zoo_toy.ENTRY, settings=zoo_toy.ToySettings(pause=0.3))
    monkeypatch.setitem(zoo.REGISTRY, zoo_toy.NAME, slow)
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(zoo.load(zoo_toy.NAME))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(r is results[0] for r in results)
    assert zoo.load(zoo_toy.NAME) is results[0]
    assert len(log.read_text().splitlines()) == 1


def test_two_processes_building_at_once_train_once_and_both_get_the_model(cache, monkeypatch) -> None:
    log = cache / "runs.log"
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import dataclasses, zoo_toy\n"
        "from mmbook import zoo\n"
        "zoo.REGISTRY[zoo_toy.NAME] = dataclasses.replace(zoo_toy.ENTRY, settings=zoo_toy.ToySettings(pause=1.0))\n"
        "layer = zoo.load(zoo_toy.NAME)\n"
        "print(zoo.path(zoo_toy.NAME), float(layer.weight.sum()))\n"
    )
    env = {**os.environ, "MMBOOK_CACHE": str(cache), "MMBOOK_TOY_LOG": str(log)}
    runs = [subprocess.Popen([sys.executable, "-c", script, str(HERE)], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]  # fmt: skip
    outputs = [run.communicate(timeout=120) for run in runs]
    assert all(run.returncode == 0 for run in runs), [err for _, err in outputs]
    answers = [out.strip().splitlines()[-1] for out, _ in outputs]
    assert answers[0] == answers[1]  # the same folder and the same weights
    assert len(log.read_text().splitlines()) == 1  # one training run between them
    assert sorted(p.name for p in (cache / "models").iterdir() if not p.name.endswith(".lock")) == [zoo_toy.NAME]


def test_other_settings_or_other_code_retrain_with_a_reason(cache, monkeypatch, capsys) -> None:
    first = zoo.load(zoo_toy.NAME)
    assert "trained the toy model" in capsys.readouterr().out
    zoo.forget()
    wider = dataclasses.replace(zoo_toy.ENTRY, settings=zoo_toy.ToySettings(width=6))
    monkeypatch.setitem(zoo.REGISTRY, zoo_toy.NAME, wider)
    assert zoo.load(zoo_toy.NAME).in_features == 6
    out = capsys.readouterr().out
    assert "saved with other training settings; rebuilding" in out and "trained the toy model" in out
    edited = dataclasses.replace(wider, code=(zoo_toy.check_toy,))  # as if the training code had changed
    monkeypatch.setitem(zoo.REGISTRY, zoo_toy.NAME, edited)
    assert zoo.trained_now(zoo_toy.NAME) and "trained by other code" in capsys.readouterr().out
    assert zoo.record(zoo_toy.NAME)["code_hash"] == zoo.code_hash(edited) != zoo.code_hash(zoo_toy.ENTRY)
    assert first.in_features == 4


@pytest.mark.parametrize("damage", ["weights", "record", "missing file"])
def test_a_corrupt_folder_is_rebuilt_with_a_message(cache, capsys, damage) -> None:
    folder = zoo.path(zoo_toy.NAME)
    zoo.forget()
    capsys.readouterr()
    if damage == "weights":
        (folder / "toy.pt").write_bytes(b"not a checkpoint")
    elif damage == "record":
        (folder / zoo.RECORD).write_text("{ not json")
    else:
        (folder / "toy.pt").unlink()
    layer = zoo.load(zoo_toy.NAME)
    out = capsys.readouterr().out
    assert "unusable" in out and "rebuilding" in out and "trained the toy model" in out
    zoo_toy.check_toy(layer)
    assert json.loads((folder / zoo.RECORD).read_text())["settings"] == {"width": 4, "seed": 0, "pause": 0.0}


def test_every_book_model_is_declared_once_with_frozen_settings() -> None:
    names = [e.name for e in zoo.entries()]
    assert len(names) == len(set(names))
    assert {"tiny-gpt2", "tiny-clip", "tiny-vilt", "tone-reader", "shape-finder", "matcher",
            "fusion-color-at"} <= set(names)
    for entry in zoo.entries():
        with pytest.raises(dataclasses.FrozenInstanceError):
            entry.settings.seed = 1
        assert len(zoo.code_hash(entry)) == 64
    with pytest.raises(ValueError, match="registered already"):
        zoo.register(dataclasses.replace(tiny_models.TINY_CLIP_ENTRY, name="tiny-gpt2"))
    with pytest.raises(KeyError, match="no book model named"):
        zoo.path("no-such-model")


@pytest.mark.parametrize("name", sorted(e.name for e in zoo.entries() if e.train.__module__.startswith("mmbook.")))
def test_shipped_checkpoint_matches_the_code(name: str) -> None:
    reason = zoo.shipped_reason(name)
    assert reason is None, f"the shipped checkpoint of {name} is {reason}: run `make checkpoints`"


def test_shipped_checkpoints_stay_small() -> None:
    size = sum(f.stat().st_size for f in zoo.SHIPPED.rglob("*") if f.is_file())
    assert size < 16e6, f"the shipped checkpoints take {size / 1e6:.1f} MB; the package should stay small"


def test_an_empty_cache_is_filled_from_a_matching_shipped_copy(cache, monkeypatch, capsys) -> None:
    shipped = cache / "shipped"
    monkeypatch.setattr(zoo, "SHIPPED", shipped)
    monkeypatch.setenv("MMBOOK_CACHE", str(cache / "a"))
    trained = zoo.path(zoo_toy.ENTRY.name)
    shutil.copytree(trained, shipped / zoo_toy.ENTRY.name)
    zoo.forget()
    monkeypatch.setenv("MMBOOK_CACHE", str(cache / "b"))
    assert zoo.shipped_reason(zoo_toy.ENTRY.name) is None
    folder = zoo.path(zoo_toy.ENTRY.name)
    assert "from the checkpoint shipped with mmbook" in capsys.readouterr().out
    assert not zoo.trained_now(zoo_toy.ENTRY.name)
    assert (folder / zoo.RECORD).read_text() == (trained / zoo.RECORD).read_text()
    zoo.forget()
    monkeypatch.setenv("MMBOOK_CACHE", str(cache / "c"))
    zoo.path(zoo_toy.ENTRY.name, shipped=False)
    assert zoo.trained_now(zoo_toy.ENTRY.name), "shipped=False must train (the teaching chapter's path)"
