"""The tiny VLM of Chapter 11 against transformers' LLaVA, its loss, generation, bad input and trainers."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from mmbook import contrastive, lm, vlm, vlm_eval, vlm_train
from mmbook.data import instruct, make_shapes


def _tower(seed: int = 0):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                              image_size=48, patch_size=16)  # fmt: skip
    return CLIPVisionModel(config).eval()


def _model(strategy: str = "full", seed: int = 0, layer: int | tuple[int, ...] = -1) -> vlm.TinyVLM:
    tok = lm.tokenizer()
    torch.manual_seed(seed)
    language_model = vlm.new_language_model(tok, hidden=32, layers=2, heads=4, intermediate=64)
    return vlm.TinyVLM(_tower(seed), language_model, tok.image_token_id, strategy=strategy, feature_layer=layer).eval()


@pytest.fixture(scope="module")
def image_processor():
    return contrastive.image_processor([0.2, 0.2, 0.2], [0.25, 0.25, 0.25])


SCENES = make_shapes(3, seed=5, max_shapes=3)
QUESTIONS = ["is there an orange cross in the image?", "how many shapes are there?", "describe the picture."]
ANSWERS = ["no", "two", "a red circle, a blue square and an orange cross."]


@pytest.mark.parametrize(("strategy", "layer"), [("full", -1), ("default", (-2, -1))])
@pytest.mark.parametrize("side", ["right", "left"])
def test_equals_llava_logits_and_gradients(image_processor, strategy: str, layer, side: str) -> None:
    model = _model(strategy, layer=layer)
    llava, processor = vlm.to_transformers(model, lm.tokenizer(), image_processor)
    llava.model.vision_tower.requires_grad_(False)
    tok = processor.tokenizer
    old_side, tok.padding_side = tok.padding_side, side
    try:
        texts = [vlm.prompt_text(tok, q, a) for q, a in zip(QUESTIONS, ANSWERS, strict=True)]
        batch = processor(images=list(SCENES.images), text=texts, return_tensors="pt", padding=True)
    finally:
        tok.padding_side = old_side
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert int((ids == tok.image_token_id).sum(1)[0]) == model.n_image_tokens == 9 + (strategy == "full")
    assert len(set(mask.sum(1).tolist())) == 3  # three prompt lengths
    # the loss on the answers only (a label after a left pad would read that pad's unspecified logits)
    starts = [len(tok(vlm.expand_image(vlm.prompt_text(tok, q), model.n_image_tokens))["input_ids"]) for q in QUESTIONS]
    offset = (1 - mask).sum(1) if side == "left" else torch.zeros(3, dtype=torch.long)
    keep = torch.arange(ids.shape[1]) >= (offset + torch.tensor(starts))[:, None]
    labels = ids.masked_fill(~keep | (mask == 0), -100)

    model.train()
    ours = model(batch["pixel_values"], ids, mask, labels)
    ours.loss.backward()
    ref = llava(input_ids=ids, attention_mask=mask, pixel_values=batch["pixel_values"], labels=labels)
    ref.loss.backward()
    real = mask.bool()
    assert (ours.logits[real] - ref.logits[real]).abs().max() < 1e-5
    assert abs(ours.loss.item() - ref.loss.item()) < 1e-6
    pairs = [(model.projector.linear_1.weight, llava.model.multi_modal_projector.linear_1.weight),
             (model.projector.linear_2.bias, llava.model.multi_modal_projector.linear_2.bias),
             (model.language_model.embed_tokens.weight, llava.model.language_model.embed_tokens.weight),
             (model.language_model.layers[1].self_attn.q_proj.weight,
              llava.model.language_model.layers[1].self_attn.q_proj.weight),
             (model.language_model.layers[0].mlp.down_proj.weight,
              llava.model.language_model.layers[0].mlp.down_proj.weight),
             (model.language_model.lm_head.weight, llava.lm_head.weight)]  # fmt: skip
    for a, b in pairs:
        assert a.grad is not None and float(a.grad.abs().max()) > 0
        assert (a.grad - b.grad).abs().max() < 1e-6
    assert all(p.grad is None for p in model.vision_tower.parameters())


def test_masked_loss_by_hand(image_processor) -> None:
    model = _model()
    tok = lm.tokenizer()
    turns = [instruct.Turn(0, QUESTIONS[1], "two", "count")]
    data = vlm_train.conversation_batches(turns, tok, model.n_image_tokens)
    assert tok.convert_ids_to_tokens(data.input_ids[0][data.labels[0] != -100].tolist()) == ["two", "</s>"]
    pixels = image_processor(images=[SCENES.images[0]], return_tensors="pt")["pixel_values"]
    out = model(pixels, data.input_ids, data.attention_mask, data.labels)
    log_probs = torch.log_softmax(out.logits[0], dim=-1)
    targets = (data.labels[0] != -100).nonzero().flatten()
    by_hand = -torch.stack([log_probs[t - 1, data.input_ids[0, t]] for t in targets]).mean()
    assert abs(out.loss.item() - by_hand.item()) < 1e-6


def test_saved_folder_loads_three_ways(tmp_path: Path, image_processor) -> None:
    from PIL import Image
    from transformers import AutoProcessor, LlavaForConditionalGeneration, pipeline

    model = _model()
    llava, processor = vlm.to_transformers(model, lm.tokenizer(), image_processor)
    llava.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = LlavaForConditionalGeneration.from_pretrained(tmp_path)
    proc = AutoProcessor.from_pretrained(tmp_path)
    back = vlm.from_transformers(loaded)
    picture, question = SCENES.images[0], QUESTIONS[1]
    ours = vlm.ask(back, proc, picture, question, max_new_tokens=5)
    assert ours == vlm.ask(model, processor, picture, question, max_new_tokens=5)
    # the library's own generate, through the processor's chat template
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    text = proc.apply_chat_template(messages, add_generation_prompt=True)
    inputs = proc(images=[picture], text=[text], return_tensors="pt")
    new = loaded.generate(**inputs, max_new_tokens=5, do_sample=False)[0, inputs["input_ids"].shape[1] :]
    assert proc.tokenizer.decode(new, skip_special_tokens=True).strip() == ours
    pipe = pipeline("image-text-to-text", model=str(tmp_path))
    messages = [{"role": "user", "content": [{"type": "image", "image": Image.fromarray(picture)},
                                             {"type": "text", "text": question}]}]  # fmt: skip
    out = pipe(text=messages, max_new_tokens=5, return_full_text=False)
    assert out[0]["generated_text"].strip() == ours


def test_generate_is_bounded_and_streams(image_processor) -> None:
    model = _model()
    proc = vlm.to_transformers(model, lm.tokenizer(), image_processor)[1]
    streamed = list(vlm.stream_answer(model, proc, SCENES.images[1], QUESTIONS[2], max_new_tokens=4))
    assert 1 <= len(streamed) <= 4 and all(b.startswith(a) for a, b in zip(streamed, streamed[1:], strict=False))
    assert streamed[-1] == vlm.ask(model, proc, SCENES.images[1], QUESTIONS[2], max_new_tokens=4)
    tok = proc.tokenizer
    ids = tok(vlm.expand_image(vlm.prompt_text(tok, QUESTIONS[0]), model.n_image_tokens), return_tensors="pt")
    pixels = image_processor(images=[SCENES.images[0]], return_tensors="pt")["pixel_values"]
    seen = []
    new = model.generate(pixels, ids["input_ids"], max_new_tokens=3, eos_token_id=-1, on_token=seen.append)
    assert new.shape == (1, 3) and len(seen) == 3


@pytest.mark.parametrize(
    ("picture", "question", "max_new", "message"),
    [
        (None, "how many shapes are there?", 8, "no picture"),
        (np.zeros((32, 32), np.uint8), "how many shapes are there?", 8, "H×W×3"),
        (np.zeros((32, 32, 4), np.uint8), "how many shapes are there?", 8, "H×W×3"),
        (np.zeros((32, 32, 3), np.float32), "how many shapes are there?", 8, "uint8"),
        ("picture.png", "how many shapes are there?", 8, "PIL image or a numpy array"),
        (SCENES.images[0], "", 8, "non-empty"),
        (SCENES.images[0], "x" * 100_000, 8, "characters long"),
        (SCENES.images[0], "how many shapes are there?", 0, "max_new_tokens"),
        (SCENES.images[0], "how many shapes are there?", 10_000, "max_new_tokens"),
    ],
)
def test_bad_input(image_processor, picture, question, max_new, message) -> None:
    model = _model()
    proc = vlm.to_transformers(model, lm.tokenizer(), image_processor)[1]
    with pytest.raises(ValueError, match=message):
        vlm.ask(model, proc, picture, question, max_new_tokens=max_new)
    with pytest.raises(ValueError, match="pixel_values"):
        model(torch.zeros(1, 3, 32, 32), torch.tensor([[lm.tokenizer().image_token_id] * 10]))
    with pytest.raises(ValueError, match="<image>"):
        model(torch.zeros(1, 3, 48, 48), torch.tensor([[2, 5, 6]]))


def test_caption_truth() -> None:
    objects = [{"shape": "circle", "color": "red"}, {"shape": "square", "color": "blue"}]
    assert instruct.caption_truth("a red circle and a blue square.", objects)
    assert instruct.caption_truth("a big red disk", objects)
    assert not instruct.caption_truth("a red circle and a blue cross.", objects)
    assert not instruct.caption_truth("two shapes.", objects)
    score = instruct.describe_score("a red circle.", objects)
    assert score == {"true": True, "complete": False, "exact": False}
    assert instruct.describe_score(instruct.describe(objects), objects)["exact"]


def test_pope_sampling_is_balanced_and_absent() -> None:
    scenes = make_shapes(60, seed=9, max_shapes=4, split="train")
    candidates = list(instruct.CANDIDATES)
    popular = vlm_eval.popular_ranking(replace(vlm_train.TINY_VLM, n_scenes=200))
    for setting in instruct.POPE_SETTINGS:
        turns = instruct.pope(scenes, setting, candidates, popular, seed=1)
        assert [t.answer for t in turns].count("yes") == len(scenes)
        for t in turns:
            named = set(instruct.named_pairs(t.question))
            assert (named <= instruct.pairs_of(scenes.attributes[t.image])) == (t.answer == "yes")
    near = instruct.pope(scenes, "adversarial", candidates, popular)
    for t in near[1::2]:
        (kind, color), = instruct.named_pairs(t.question)
        assert any(o["shape"] == kind or o["color"] == color for o in scenes.attributes[t.image])


def test_trainer_is_deterministic_and_leaves_global_state(image_processor) -> None:
    lm_settings = vlm_train.TinyLMSettings(hidden=32, intermediate=64, n_scenes=64, steps=3, batch_size=16)
    settings = vlm_train.TinyVLMSettings(lm=lm_settings, n_scenes=64, batch_size=16, stage1_steps=2,
                                         stage2_steps=3, feature_layer=-1)  # fmt: skip
    towers = [_tower() for _ in range(3)]  # built (and seeded) before the global state is recorded
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(123)
    random.seed(123)
    np.random.seed(123)
    expected = torch.rand(1), random.random(), np.random.rand()
    torch.manual_seed(123)
    random.seed(123)
    np.random.seed(123)
    first = vlm_train.train_vlm(settings, vision=(towers[0], image_processor))
    assert (torch.rand(1), random.random(), np.random.rand()) == expected
    assert torch.get_num_threads() == threads and torch.are_deterministic_algorithms_enabled() == deterministic
    second = vlm_train.train_vlm(settings, vision=(towers[1], image_processor))
    assert first["stage2_losses"] == second["stage2_losses"] and len(first["stage1_losses"]) == 2
    lora = vlm_train.train_vlm(replace(settings, lora=True, skip_stage1=True), vision=(towers[2], image_processor))
    assert "stage1_losses" not in lora
    assert lora["trainable_parameters"]["stage2"] < first["trainable_parameters"]["stage2"]
    assert type(lora["model"].language_model) is lm.TinyLlama  # the adapters merged back
