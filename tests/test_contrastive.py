"""mmbook.contrastive and the tiny CLIP (Chapter 6): parts, training, cache, the hub stand-in and the targets."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmbook import contrastive, hub, tiny_models, zoo
from mmbook.data import COLORS, make_shapes, tokenizer
from mmbook.losses import clip_loss
from mmbook.metrics import recall_at_k
from PIL import Image
from transformers import AutoProcessor, CLIPModel, pipeline

SMALL = dataclasses.replace(tiny_models.TINY_CLIP, n_pairs=64, steps=2, batch_size=16)


@pytest.fixture
def small_clip(monkeypatch, tmp_path):
    """A private model cache in which the registry's tiny CLIP is trained with :data:`SMALL` settings."""
    monkeypatch.setenv("MMBOOK_CACHE", str(tmp_path))
    monkeypatch.setitem(zoo.REGISTRY, "tiny-clip", dataclasses.replace(tiny_models.TINY_CLIP_ENTRY, settings=SMALL))
    zoo.forget("tiny-clip")
    yield tmp_path
    zoo.forget("tiny-clip")


def test_config_and_processor_fit_the_shapes_world() -> None:
    tok = tokenizer()
    config = contrastive.clip_config(tok)
    assert config.text_config.vocab_size == len(tok)
    assert config.text_config.eos_token_id == tok.eos_token_id == max(tok.get_vocab().values())
    assert config.vision_config.image_size // config.vision_config.patch_size == 3  # one patch per cell
    data = make_shapes(8, seed=0)
    proc = contrastive.processor(data.images)
    values = contrastive.pixels(proc, data.images, batch_size=3)
    assert values.shape == (8, 3, contrastive.IMAGE_SIZE, contrastive.IMAGE_SIZE)
    assert torch.equal(values, proc(images=list(data.images), return_tensors="pt")["pixel_values"])
    everything = contrastive.pixels(proc, make_shapes(200, seed=1).images)
    assert everything.mean().abs() < 0.3 and (everything.std() - 1).abs() < 0.3  # normalised by data statistics
    ids, mask = contrastive.tokens(proc, data.captions)
    assert ids.shape == mask.shape and (ids[mask == 0] == tok.pad_token_id).all()
    assert ids.shape[1] <= config.text_config.max_position_embeddings


def test_training_lowers_the_loss_and_uses_clip_loss() -> None:
    data = make_shapes(96, seed=0)
    proc = contrastive.processor(data.images)
    values, (ids, mask) = contrastive.pixels(proc, data.images), contrastive.tokens(proc, data.captions)
    torch.manual_seed(0)
    model = CLIPModel(contrastive.clip_config(proc.tokenizer, text_hidden=32, vision_hidden=32))
    scale = model.logit_scale.item()
    fixed = contrastive.train_clip(model, values, ids, mask, steps=3, batch_size=32, learn_temperature=False,
                                   progress=False)
    assert model.logit_scale.item() == scale and len(fixed.losses) == 3 and fixed.seconds > 0
    history = contrastive.train_clip(model, values, ids, mask, steps=40, batch_size=32, lr=3e-3, progress=False)
    assert np.mean(history.losses[-5:]) < np.mean(history.losses[:5]) - 0.3
    assert history.logit_scales[-1] != scale and all(s <= contrastive.MAX_LOGIT_SCALE for s in history.logit_scales)
    with torch.no_grad():
        out = model(input_ids=ids[:32], attention_mask=mask[:32], pixel_values=values[:32])
    target = torch.arange(32)
    both = (F.cross_entropy(out.logits_per_text, target) + F.cross_entropy(out.logits_per_image, target)) / 2
    assert torch.allclose(clip_loss(out.logits_per_text), both)


def test_training_works_under_no_grad() -> None:
    """An app may call a model's first training from inside ``torch.no_grad`` (Chapter 7 found this)."""
    data = make_shapes(32, seed=0)
    proc = contrastive.processor(data.images)
    values, (ids, mask) = contrastive.pixels(proc, data.images), contrastive.tokens(proc, data.captions)
    model = CLIPModel(contrastive.clip_config(proc.tokenizer, text_hidden=32, vision_hidden=32))
    with torch.no_grad():
        history = contrastive.train_clip(model, values, ids, mask, steps=2, batch_size=16, progress=False)
    assert len(history.losses) == 2


def test_training_refuses_bad_input() -> None:
    model = CLIPModel(contrastive.clip_config(tokenizer(), text_hidden=32, vision_hidden=32))
    values, ids, mask = torch.zeros(4, 3, 48, 48), torch.ones(5, 3, dtype=torch.long), torch.ones(5, 3)
    with pytest.raises(ValueError, match="got 4 pictures for 5 captions"):
        contrastive.train_clip(model, values, ids, mask, steps=1)
    with pytest.raises(ValueError, match="batch_size must be between 2 and the number of pairs"):
        contrastive.train_clip(model, values, ids[:4], mask[:4], steps=1, batch_size=8)


def test_embeddings_are_unit_vectors_and_batching_does_not_change_them() -> None:
    model = CLIPModel(contrastive.clip_config(tokenizer(), text_hidden=32, vision_hidden=32)).eval()
    data = make_shapes(10, seed=2)
    proc = contrastive.processor(data.images)
    values, (ids, mask) = contrastive.pixels(proc, data.images), contrastive.tokens(proc, data.captions)
    images, texts = contrastive.embed_images(model, values), contrastive.embed_texts(model, ids, mask)
    assert torch.allclose(images.norm(dim=1), torch.ones(10)) and torch.allclose(texts.norm(dim=1), torch.ones(10))
    assert torch.allclose(contrastive.embed_images(model, values, batch_size=3), images, atol=1e-6)
    assert torch.allclose(contrastive.embed_texts(model, ids, mask, batch_size=4), texts, atol=1e-6)
    classes = contrastive.class_embeddings(model, proc, ["red", "blue"], ["a {} shape", "there is a {} shape"])
    assert classes.shape == (2, 64) and torch.allclose(classes.norm(dim=1), torch.ones(2))


def test_scene_relevance_ignores_size_and_order_only() -> None:
    red = {"shape": "circle", "color": "red", "position": "center", "size": "small"}
    big_red = {**red, "size": "large"}
    blue = {"shape": "square", "color": "blue", "position": "top left", "size": "small"}
    moved = {**red, "position": "top"}
    relevance = contrastive.scene_relevance([[red, blue]], [[blue, big_red], [red], [moved, blue], [red, blue]])
    assert relevance.tolist() == [[True, False, False, True]]


def test_tiny_clip_is_trained_once_then_loaded(small_clip, capsys) -> None:
    model, proc = zoo.tiny_clip()
    assert "trained the tiny CLIP" in capsys.readouterr().out and zoo.tiny_clip() == (model, proc)
    zoo.forget("tiny-clip")
    folder = zoo.tiny_clip_path()
    assert "loaded the tiny CLIP from the model cache" in capsys.readouterr().out
    record = zoo.tiny_clip_record()
    assert len(record["losses"]) == SMALL.steps and record["settings"]["steps"] == SMALL.steps
    assert isinstance(CLIPModel.from_pretrained(folder), CLIPModel)
    assert AutoProcessor.from_pretrained(folder).tokenizer.get_vocab() == proc.tokenizer.get_vocab()


@pytest.mark.parametrize("damage", ["weights", "record", "settings"])
def test_a_corrupt_or_outdated_tiny_clip_is_retrained_with_a_message(small_clip, capsys, damage) -> None:
    folder = zoo.tiny_clip_path()
    zoo.forget("tiny-clip")
    capsys.readouterr()
    record_file = folder / zoo.RECORD
    if damage == "weights":
        (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    elif damage == "record":
        record_file.unlink()
    else:
        record = json.loads(record_file.read_text())
        record_file.write_text(json.dumps({**record, "settings": {**record["settings"], "steps": 1}}))
    model, _ = zoo.tiny_clip()
    out = capsys.readouterr().out
    reason = "saved with other training settings" if damage == "settings" else "unusable"
    assert "tiny-clip" in out and reason in out and "rebuilding" in out and "trained the tiny CLIP" in out
    assert zoo.tiny_clip_record()["settings"]["steps"] == SMALL.steps and isinstance(model, CLIPModel)


def test_the_hub_catalogue_has_clip_with_the_tiny_clip_offline(small_clip, capsys) -> None:
    assert hub.lookup("openai/clip-vit-base-patch32") is hub.lookup("clip")
    online = hub.resolve("clip", offline=False)
    assert online.source == "openai/clip-vit-base-patch32"
    where = hub.resolve("clip", offline=True)
    assert where.source == str(zoo.model_dir("tiny-clip")) and "offline: the book's stand-in" in capsys.readouterr().out
    classify = hub.pipeline("zero-shot-image-classification", "clip", offline=True)
    image = Image.fromarray(make_shapes(1, seed=0).images[0])
    answer = classify(image, candidate_labels=list(COLORS), hypothesis_template="a {} shape")
    assert sorted(a["label"] for a in answer) == sorted(COLORS)
    assert abs(sum(a["score"] for a in answer) - 1) < 1e-5
    with pytest.raises(ValueError, match="catalogued for the task 'zero-shot-image-classification'"):
        hub.pipeline("text-generation", "clip", offline=True)


def test_the_trained_tiny_clip_meets_the_books_targets() -> None:
    """The numbers Chapter 6 reports: text→image R@1 ≥ 80 % on 1,000 new pictures, colour zero-shot ≥ 90 %."""
    model, proc = zoo.tiny_clip()
    gallery = make_shapes(1000, seed=2)
    images = contrastive.embed_images(model, contrastive.pixels(proc, gallery.images))
    texts = contrastive.embed_texts(model, *contrastive.tokens(proc, gallery.captions))
    relevance = contrastive.scene_relevance(gallery.attributes, gallery.attributes)
    assert recall_at_k(texts @ images.T, relevance, k=1) >= 0.8
    singles = make_shapes(1000, seed=3, max_shapes=1)
    pictures = contrastive.embed_images(model, contrastive.pixels(proc, singles.images))
    classes = contrastive.class_embeddings(model, proc, list(COLORS), ["a {} shape"])
    truth = torch.tensor([list(COLORS).index(a[0]["color"]) for a in singles.attributes])
    assert ((pictures @ classes.T).argmax(1) == truth).float().mean() >= 0.9
    folder = str(zoo.tiny_clip_path())
    classify = pipeline("zero-shot-image-classification", model=folder)
    answer = classify(Image.fromarray(singles.images[0]), candidate_labels=list(COLORS),
                      hypothesis_template="a {} shape")
    assert answer[0]["label"] == singles.attributes[0][0]["color"]
