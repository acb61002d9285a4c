"""The tiny Llama of Chapter 11 against transformers' Llama, with copied weights, and its tokenizer."""

from __future__ import annotations

import pytest
import torch
from mmbook import lm
from mmbook.data import instruct, make_shapes
from mmbook.data.world import COMBINATIONS
from mmbook.vlm_train import text_corpus


@pytest.fixture(scope="module")
def model() -> lm.TinyLlama:
    torch.manual_seed(0)
    tok = lm.tokenizer()
    config = lm.LMConfig(vocab_size=len(tok), hidden=32, layers=2, heads=4, intermediate=64)
    m = lm.TinyLlama(config).eval()
    with torch.no_grad():  # non-trivial norm gains, so that a missing weight would show
        for name, p in m.named_parameters():
            if name.endswith("layernorm.weight") or name == "norm.weight":
                p.uniform_(0.5, 1.5)
    return m


def test_rmsnorm_equals_llama() -> None:
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    ours, ref = lm.RMSNorm(16, eps=1e-6), LlamaRMSNorm(16, eps=1e-6)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(3, 5, 16) * 4
    torch.testing.assert_close(ours(x), ref(x), atol=1e-6, rtol=0)


def test_rotary_equals_llama(model: lm.TinyLlama) -> None:
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

    config = lm.llama_config(model.config)
    positions = torch.tensor([[0, 1, 2, 3, 4], [3, 4, 5, 6, 7]])
    q, k = torch.randn(2, 4, 5, config.head_dim), torch.randn(2, 4, 5, config.head_dim)
    cos_ref, sin_ref = LlamaRotaryEmbedding(config)(q, positions)
    cos, sin = lm.rotary_cos_sin(positions, config.head_dim, model.config.rope_theta)
    torch.testing.assert_close(cos, cos_ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(sin, sin_ref, atol=1e-6, rtol=0)
    q_ref, k_ref = apply_rotary_pos_emb(q, k, cos_ref, sin_ref)
    torch.testing.assert_close(lm.apply_rotary(q, cos, sin), q_ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(lm.apply_rotary(k, cos, sin), k_ref, atol=1e-6, rtol=0)
    # a rotation keeps lengths, and the score of q·k depends on the offset only
    torch.testing.assert_close(lm.apply_rotary(q, cos, sin).norm(dim=-1), q.norm(dim=-1))


def test_swiglu_equals_llama_mlp(model: lm.TinyLlama) -> None:
    from transformers.models.llama.modeling_llama import LlamaMLP

    ours = model.layers[0].mlp
    ref = LlamaMLP(lm.llama_config(model.config))
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(2, 7, model.config.hidden)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-6, rtol=0)


@pytest.mark.parametrize("side", ["right", "left"])
def test_model_equals_llama_with_padding(model: lm.TinyLlama, side: str) -> None:
    llama = lm.to_llama(model)
    ids = torch.randint(7, model.config.vocab_size, (3, 9))
    mask = torch.ones_like(ids)
    if side == "right":
        mask[1, 6:], mask[2, 3:] = 0, 0
    else:
        mask[1, :3], mask[2, :6] = 0, 0
    ids = ids.masked_fill(mask == 0, model.config.pad_token_id)
    with torch.no_grad():
        ours = model(ids, mask)
        ref = llama(input_ids=ids, attention_mask=mask).logits
    real = mask.bool()  # padded positions' logits are unspecified (a fully masked attention row)
    assert (ours[real] - ref[real]).abs().max() < 1e-5
    if side == "right":  # every query sees at least itself: all positions agree
        assert (ours - ref).abs().max() < 1e-5


def test_conversion_round_trip(model: lm.TinyLlama) -> None:
    back = lm.from_llama(lm.to_llama(model))
    ids = torch.randint(7, model.config.vocab_size, (2, 6))
    with torch.no_grad():
        torch.testing.assert_close(back(ids), model(ids), atol=0, rtol=0)


def test_next_token_loss_equals_llama(model: lm.TinyLlama) -> None:
    llama = lm.to_llama(model)
    ids = torch.randint(7, model.config.vocab_size, (2, 8))
    labels = ids.clone()
    labels[:, :5] = -100
    with torch.no_grad():
        ours = lm.next_token_loss(model(ids), labels)
        ref = llama(input_ids=ids, labels=labels).loss
    assert abs(float(ours) - float(ref)) < 1e-6


def test_tokenizer_covers_every_text() -> None:
    tok = lm.tokenizer()
    scenes = make_shapes(200, seed=3, max_shapes=4)
    texts = text_corpus(scenes) + [t.question for t in instruct.instructions(scenes, list(COMBINATIONS))]
    ids = tok(texts, add_special_tokens=False)["input_ids"]
    assert all(tok.unk_token_id not in row for row in ids)
    assert tok.decode(tok("What COLOUR is the circle?")["input_ids"]) == "what colour is the circle ?"


def test_chat_template() -> None:
    tok = lm.tokenizer()
    user = {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "how many shapes are there?"}]}
    prompt = tok.apply_chat_template([user], tokenize=False, add_generation_prompt=True)
    assert prompt == "<s><|user|> how many shapes are there? <image><|assistant|>"
    swapped = {"role": "user", "content": user["content"][::-1]}  # the picture always follows the text
    assert tok.apply_chat_template([swapped], tokenize=False, add_generation_prompt=True) == prompt
    full = tok.apply_chat_template([user, {"role": "assistant", "content": "two"}], tokenize=False)
    tokens = tok.convert_ids_to_tokens(tok(full)["input_ids"])
    assert tokens[:3] == ["<s>", "<|user|>", "how"]
    assert tokens[-4:] == ["<image>", "<|assistant|>", "two", "</s>"]
    assert tok.image_token == "<image>" and tok.convert_tokens_to_ids("<image>") == tok.image_token_id


def test_check_text_rejects_bad_questions() -> None:
    for bad in ("", "   ", None, "x" * 100_000):
        with pytest.raises(ValueError, match="question"):
            lm.check_text(bad)
