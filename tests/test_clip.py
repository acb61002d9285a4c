"""mmbook.clip against transformers.CLIPModel: outputs, features, gradients, pooling and bad inputs (Chapter 6)."""

from __future__ import annotations

import pytest
import torch
from mmbook.clip import ScratchCLIP, clip_weight_map, quick_gelu
from mmbook.data import make_shapes, tokenizer
from mmbook.losses import clip_loss
from transformers import CLIPConfig, CLIPModel

torch.set_num_threads(1)
TOK = tokenizer()
SHAPES = make_shapes(4, seed=0)


def _config(hidden_act: str = "quick_gelu", eos_token_id: int | None = None, attn: str = "sdpa") -> CLIPConfig:
    tower = dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, hidden_act=hidden_act
    )
    text = dict(
        tower, vocab_size=len(TOK), max_position_embeddings=40, pad_token_id=TOK.pad_token_id,
        bos_token_id=TOK.bos_token_id, eos_token_id=TOK.eos_token_id if eos_token_id is None else eos_token_id,
    )
    config = CLIPConfig(text_config=text, vision_config=dict(tower, image_size=32, patch_size=8), projection_dim=16)
    config._attn_implementation = attn
    return config


def _models(dtype: torch.dtype = torch.float64, seed: int = 0, **config) -> tuple[CLIPModel, ScratchCLIP]:
    torch.manual_seed(seed)
    reference = CLIPModel(_config(**config)).to(dtype).eval()
    return reference, ScratchCLIP.from_clip_model(reference)


def _inputs(dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    batch = TOK(SHAPES.captions, padding="longest", return_tensors="pt")
    pixels = torch.tensor(SHAPES.images).permute(0, 3, 1, 2).to(dtype) / 127.5 - 1  # [0, 255] → [-1, 1]
    return batch["input_ids"], batch["attention_mask"], pixels


def _features(output) -> torch.Tensor:
    """``get_*_features`` returns a tensor in transformers 4 and an output object in transformers 5."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _max_diffs(reference: CLIPModel, scratch: ScratchCLIP, ids, mask, pixels) -> dict[str, float]:
    with torch.no_grad():
        theirs = reference(input_ids=ids, attention_mask=mask, pixel_values=pixels)
        ours = scratch(ids, mask, pixels)
        text_features = _features(reference.get_text_features(input_ids=ids, attention_mask=mask))
        image_features = _features(reference.get_image_features(pixel_values=pixels))
        pairs = {
            "logits_per_image": (ours[0], theirs.logits_per_image),
            "logits_per_text": (ours[1], theirs.logits_per_text),
            "text_embeds": (ours[2], theirs.text_embeds),
            "image_embeds": (ours[3], theirs.image_embeds),
            "text_features": (scratch.encode_text(ids, mask), text_features),
            "image_features": (scratch.encode_image(pixels), image_features),
        }
    for name, (a, b) in pairs.items():
        assert a.shape == b.shape, name
    return {name: (a - b).abs().max().item() for name, (a, b) in pairs.items()}


def test_weight_map_uses_every_parameter_exactly_once() -> None:
    reference, scratch = _models()
    names = clip_weight_map(reference.config)
    ours, theirs = dict(scratch.named_parameters()), dict(reference.named_parameters())
    assert sum(p.numel() for p in ours.values()) == sum(p.numel() for p in theirs.values())
    assert len(ours) == len(theirs) == len(names) == len(set(names.values()))
    assert set(names) == set(ours) and set(names.values()) == set(theirs)
    for mine, source in names.items():
        assert torch.equal(ours[mine], theirs[source]), mine
        assert ours[mine].data_ptr() != theirs[source].data_ptr(), f"{mine} is shared, not copied"


def test_matches_clip_model_in_float64_with_padding() -> None:
    ids, mask, pixels = _inputs()
    assert (mask == 0).any() and (mask == 1).all(dim=0).any(), "the batch should mix padded and full rows"
    diffs = _max_diffs(*_models(), ids, mask, pixels)
    assert max(diffs.values()) < 1e-10, diffs


def test_matches_clip_model_in_float32() -> None:
    diffs = _max_diffs(*_models(torch.float32), *_inputs(torch.float32))
    assert max(diffs.values()) < 1e-5, diffs


def test_eager_attention_softmax_runs_in_float32() -> None:
    """transformers' eager attention takes the softmax in float32 even for a float64 model: close, not equal."""
    diffs = _max_diffs(*_models(attn="eager"), *_inputs())
    assert max(diffs.values()) < 1e-6, diffs


def test_padding_mask_matters_only_for_left_padding() -> None:
    """Right padding comes after end-of-text, where the causal mask already hides it; left padding does not."""
    ids, mask, pixels = _inputs()
    lengths = mask.sum(dim=1).tolist()
    left_ids = torch.stack([row.roll(len(row) - n) for row, n in zip(ids, lengths, strict=True)])
    left_mask = torch.stack([row.roll(len(row) - n) for row, n in zip(mask, lengths, strict=True)])
    assert left_mask[:, 0].eq(0).any()
    reference, scratch = _models()
    diffs = _max_diffs(reference, scratch, left_ids, left_mask, pixels)
    assert max(diffs.values()) < 1e-10, diffs
    with torch.no_grad():
        assert torch.equal(scratch.encode_text(ids, mask), scratch.encode_text(ids))
        assert not torch.allclose(scratch.encode_text(left_ids, left_mask), scratch.encode_text(left_ids))


def test_more_captions_than_pictures() -> None:
    ids, mask, pixels = _inputs()
    reference, scratch = _models()
    diffs = _max_diffs(reference, scratch, ids, mask, pixels[:2])
    assert max(diffs.values()) < 1e-10, diffs
    assert scratch(ids, mask, pixels[:2])[0].shape == (2, 4)


def test_gradients_of_the_contrastive_loss_agree() -> None:
    ids, mask, pixels = _inputs()
    reference, scratch = _models()
    reference.train(), scratch.train()  # dropout is 0 in CLIP's configs: training mode changes nothing
    theirs = reference(input_ids=ids, attention_mask=mask, pixel_values=pixels, return_loss=True).loss
    ours = clip_loss(scratch(ids, mask, pixels)[1])
    assert abs(ours.item() - theirs.item()) < 1e-12
    theirs.backward()
    ours.backward()
    params = dict(reference.named_parameters())
    for mine, p in scratch.named_parameters():
        q = params[clip_weight_map(reference.config)[mine]]
        assert p.grad is not None and q.grad is not None, mine
        torch.testing.assert_close(p.grad, q.grad, atol=1e-10, rtol=0, msg=mine)
    assert scratch.logit_scale.grad.abs() > 0


def test_pools_at_the_first_end_of_text_token() -> None:
    bos, eos = TOK.bos_token_id, TOK.eos_token_id
    words = TOK("a red square", add_special_tokens=False)["input_ids"]
    ids = torch.tensor([[bos, *words, eos, *words, eos], [bos, *words, *words, eos, eos]])
    mask = torch.ones_like(ids)
    reference, scratch = _models()
    assert scratch.text.pool_positions(ids).tolist() == [len(words) + 1, 2 * len(words) + 1]
    with torch.no_grad():
        ours = scratch.encode_text(ids, mask)
        torch.testing.assert_close(ours, _features(reference.get_text_features(input_ids=ids, attention_mask=mask)))
        # causal attention: what follows the first end-of-text token cannot change the pooled feature
        torch.testing.assert_close(ours[:1], scratch.encode_text(ids[:1, : len(words) + 2]), atol=1e-12, rtol=0)


def test_legacy_argmax_pooling_when_eos_token_id_is_2() -> None:
    ids, mask, pixels = _inputs()
    ids = ids.clone()
    ids[0, 3] = len(TOK) - 1  # the highest id, in the middle of the first caption
    reference, scratch = _models(eos_token_id=2)
    assert scratch.text.pool_positions(ids).tolist()[0] == 3
    diffs = _max_diffs(reference, scratch, ids, mask, pixels)
    assert max(diffs.values()) < 1e-10, diffs


def test_gelu_variant() -> None:
    ids, mask, pixels = _inputs()
    reference, scratch = _models(hidden_act="gelu")
    diffs = _max_diffs(reference, scratch, ids, mask, pixels)
    assert max(diffs.values()) < 1e-10, diffs
    _, quick = _models()  # same seed, same weights, other activation: other features
    with torch.no_grad():
        assert not torch.allclose(quick.encode_image(pixels), scratch.encode_image(pixels))


def test_quick_gelu() -> None:
    x = torch.linspace(-4, 4, 9, dtype=torch.float64)
    torch.testing.assert_close(quick_gelu(x), x / (1 + torch.exp(-1.702 * x)))


def test_bad_inputs_raise_clear_errors() -> None:
    ids, mask, pixels = _inputs()
    _, scratch = _models()
    with pytest.raises(ValueError, match="batch sizes or lengths differ"):
        scratch(ids, mask[:3], pixels)
    with pytest.raises(ValueError, match=r"pixel_values must be \(B, 3, 32, 32\), got \(4, 3, 64, 64\)"):
        scratch(ids, mask, torch.zeros(4, 3, 64, 64, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"\(B, 3, 32, 32\)"):
        scratch.encode_image(pixels[0])
    with pytest.raises(ValueError, match="L <= 40"):
        scratch.encode_text(torch.zeros(1, 41, dtype=torch.long))
    with pytest.raises(ValueError, match="unsupported hidden_act 'relu'"):
        ScratchCLIP(_config(hidden_act="relu"))
    with pytest.raises(ValueError, match="square"):
        clip_loss(torch.zeros(2, 3))
