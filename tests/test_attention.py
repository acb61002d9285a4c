"""mmbook.attention against PyTorch's own attention, with masks, gradients and bad shapes (Chapter 4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmbook.attention import (
    AdditiveAttention,
    CrossAttention,
    LearnedPositionalEncoding,
    MultiHeadAttention,
    TransformerBlock,
    TransformerLM,
    additive_attention,
    causal_mask,
    layer_norm,
    masked_softmax,
    next_token_loss,
    padding_mask,
    scaled_dot_product_attention,
    sinusoidal_positional_encoding,
    to_torch_layer,
)
from mmbook.data import make_shapes
from mmbook.shape_finder import FINDER_WORDS, ShapeFinder, _patchify, finder_examples, word_ids
from mmbook.viz import heat_overlay

B, H, LQ, LK, D, DV = 2, 3, 5, 7, 8, 6


def _qkv(*batch: int, lq: int = LQ, lk: int = LK, d: int = D, dv: int = DV, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    make = lambda *s: torch.randn(*batch, *s, generator=g, dtype=torch.float64, requires_grad=True)  # noqa: E731
    return make(lq, d), make(lk, d), make(lk, dv)


def _random_mask(*shape: int, seed: int = 1) -> torch.Tensor:
    mask = torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) < 0.6
    mask[..., 0] = True  # every query may attend to at least one key
    return mask


MASKS = {
    "none": None,
    "full": _random_mask(B, H, LQ, LK),
    "per-query (Lq, Lk)": _random_mask(LQ, LK),
    "per-head (1, H, Lq, Lk)": _random_mask(1, H, LQ, LK),
    "padding (B, 1, 1, Lk)": padding_mask(torch.tensor([LK, 3]), LK)[:, None],
}


@pytest.mark.parametrize("name", list(MASKS))
def test_sdpa_matches_torch_outputs_and_gradients(name: str) -> None:
    mask = MASKS[name]
    q, k, v = _qkv(B, H)
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(out, ref)
    assert weights.shape == (B, H, LQ, LK)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, H, LQ, dtype=torch.float64))
    if mask is not None:
        assert (weights.masked_select(~mask.expand_as(weights)) == 0).all()

    upstream = torch.randn_like(out)
    mine = torch.autograd.grad(out, (q, k, v), upstream)
    theirs = torch.autograd.grad(ref, (q, k, v), upstream)
    for a, b in zip(mine, theirs, strict=True):
        torch.testing.assert_close(a, b)


def test_sdpa_causal_mask_matches_torch_is_causal() -> None:
    q, k, v = _qkv(B, H, lq=6, lk=6)
    out, weights = scaled_dot_product_attention(q, k, v, causal_mask(6))
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True))
    assert (weights.triu(1) == 0).all()


def test_causal_output_ignores_the_future() -> None:
    q, k, v = _qkv(1, lq=6, lk=6)
    out, _ = scaled_dot_product_attention(q, k, v, causal_mask(6))
    k2, v2 = k.detach().clone(), v.detach().clone()
    k2[:, 4:] += 10.0
    v2[:, 4:] -= 10.0
    out2, _ = scaled_dot_product_attention(q, k2, v2, causal_mask(6))
    torch.testing.assert_close(out[:, :4], out2[:, :4])
    assert not torch.allclose(out[:, 4:], out2[:, 4:])


def test_sdpa_three_dimensional_batches_and_no_batch() -> None:
    q, k, v = _qkv(4)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v)[0], F.scaled_dot_product_attention(q, k, v))
    q, k, v = _qkv()
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v)[0], F.scaled_dot_product_attention(q, k, v))


def test_fully_masked_query_gets_zeros_like_torch_and_finite_gradients() -> None:
    q, k, v = _qkv(B, H)
    mask = _random_mask(B, H, LQ, LK)
    mask[0, 1, 2] = False  # query 2 of head 1 in batch 0 may attend to nothing
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    assert (out[0, 1, 2] == 0).all() and (weights[0, 1, 2] == 0).all()
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    out.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))
    assert (q.grad[0, 1, 2] == 0).all()


def test_gradcheck_float64() -> None:
    q, k, v = _qkv(2, lq=3, lk=4, d=5, dv=2)
    mask = _random_mask(3, 4)
    assert torch.autograd.gradcheck(lambda *t: scaled_dot_product_attention(*t, mask)[0], (q, k, v))
    assert torch.autograd.gradcheck(lambda *t: scaled_dot_product_attention(*t)[1], (q, k, v))


def test_masked_softmax_without_mask_is_softmax() -> None:
    x = torch.randn(3, 4)
    torch.testing.assert_close(masked_softmax(x), x.softmax(-1))


@pytest.mark.parametrize(
    ("shapes", "mask", "message"),
    [
        (((2, 5, 8), (2, 7, 4), (2, 7, 6)), None, r"same last dimension; got query \(2, 5, 8\), key \(2, 7, 4\)"),
        (((2, 5, 8), (2, 7, 8), (2, 6, 6)), None, r"same length.*key \(2, 7, 8\), value \(2, 6, 6\)"),
        (((2, 5, 8), (3, 7, 8), (3, 7, 6)), None, r"batch dimensions.*query \(2, 5, 8\), key \(3, 7, 8\)"),
        (((8,), (7, 8), (7, 6)), None, r"at least 2 dimensions.*query \(8,\)"),
        (((2, 5, 8), (2, 7, 8), (2, 7, 6)), torch.ones(5, 6, dtype=torch.bool), r"mask of shape \(5, 6\).*\(2, 5, 7\)"),
        (((2, 5, 8), (2, 7, 8), (2, 7, 6)), torch.ones(5, 7), r"boolean.*torch.float32"),
    ],
)
def test_sdpa_rejects_bad_shapes_naming_them(shapes, mask, message) -> None:
    q, k, v = (torch.randn(*s) for s in shapes)
    with pytest.raises(ValueError, match=message):
        scaled_dot_product_attention(q, k, v, mask)


def _copy_from_torch(mine: MultiHeadAttention, ref: torch.nn.MultiheadAttention) -> None:
    """Load torch's packed (or separate) q, k, v projections and output projection into ``mine``."""
    e = ref.embed_dim
    with torch.no_grad():
        if ref.in_proj_weight is not None:
            wq, wk, wv = ref.in_proj_weight.split(e)
        else:
            wq, wk, wv = ref.q_proj_weight, ref.k_proj_weight, ref.v_proj_weight
        bq, bk, bv = ref.in_proj_bias.split(e)
        for layer, w, b in ((mine.q_proj, wq, bq), (mine.k_proj, wk, bk), (mine.v_proj, wv, bv)):
            layer.weight.copy_(w)
            layer.bias.copy_(b)
        mine.out_proj.weight.copy_(ref.out_proj.weight)
        mine.out_proj.bias.copy_(ref.out_proj.bias)


def _pair(embed: int, heads: int, kdim: int | None = None, vdim: int | None = None):
    torch.manual_seed(0)
    ref = torch.nn.MultiheadAttention(embed, heads, kdim=kdim, vdim=vdim, batch_first=True).double()
    mine = MultiHeadAttention(embed, heads, kdim=kdim, vdim=vdim).double()
    _copy_from_torch(mine, ref)
    return mine, ref


def _inputs(lq: int, lk: int, embed: int, kdim: int, vdim: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    make = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True)  # noqa: E731
    return make(B, lq, embed), make(B, lk, kdim), make(B, lk, vdim)


@pytest.mark.parametrize("masking", ["none", "padding", "causal", "padding+causal"])
def test_mha_matches_torch_self_attention(masking: str) -> None:
    mine, ref = _pair(12, 3)
    x, _, _ = _inputs(6, 6, 12, 12, 12)
    lengths = torch.tensor([6, 4])
    allowed = None
    key_padding_mask = attn_mask = None  # torch's boolean masks: True = NOT allowed
    if "padding" in masking:
        allowed = padding_mask(lengths, 6)
        key_padding_mask = ~allowed[:, 0, :]
    if "causal" in masking:
        allowed = causal_mask(6) if allowed is None else allowed & causal_mask(6)
        attn_mask = ~causal_mask(6)

    out, weights = mine(x, x, x, mask=allowed)
    ref_out, ref_avg = ref(x, x, x, key_padding_mask=key_padding_mask, attn_mask=attn_mask)
    _, ref_heads = ref(x, x, x, key_padding_mask=key_padding_mask, attn_mask=attn_mask, average_attn_weights=False)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(weights, ref_heads)
    torch.testing.assert_close(mine(x, x, x, mask=allowed, average_heads=True)[1], ref_avg)

    upstream = torch.randn_like(out)
    (gx,) = torch.autograd.grad(out, x, upstream)
    (ref_gx,) = torch.autograd.grad(ref_out, x, upstream)
    torch.testing.assert_close(gx, ref_gx)
    mine.zero_grad()
    ref.zero_grad()
    (mine(x, x, x, mask=allowed)[0] * upstream).sum().backward()
    (ref(x, x, x, key_padding_mask=key_padding_mask, attn_mask=attn_mask)[0] * upstream).sum().backward()
    packed = torch.cat([mine.q_proj.weight.grad, mine.k_proj.weight.grad, mine.v_proj.weight.grad])
    torch.testing.assert_close(packed, ref.in_proj_weight.grad)
    torch.testing.assert_close(mine.out_proj.weight.grad, ref.out_proj.weight.grad)


def test_mha_three_dimensional_mask_is_per_batch_element() -> None:
    mine, ref = _pair(12, 3)
    x, _, _ = _inputs(5, 5, 12, 12, 12)
    allowed = _random_mask(B, 5, 5)
    out, _ = mine(x, x, x, mask=allowed)
    ref_out, _ = ref(x, x, x, attn_mask=~allowed.repeat_interleave(3, dim=0))  # torch wants (B*H, Lq, Lk)
    torch.testing.assert_close(out, ref_out)


@pytest.mark.parametrize(("kdim", "vdim"), [(20, 20), (20, 9)])
def test_mha_cross_attention_with_other_widths_matches_torch(kdim: int, vdim: int) -> None:
    mine, ref = _pair(12, 4, kdim, vdim)
    text, image, values = _inputs(3, 10, 12, kdim, vdim)
    out, weights = mine(text, image, values, average_heads=True)
    ref_out, ref_weights = ref(text, image, values)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(weights, ref_weights)
    assert out.shape == (B, 3, 12) and weights.shape == (B, 3, 10)
    upstream = torch.randn_like(out)
    for a, b in zip(torch.autograd.grad(out, (text, image, values), upstream),
                    torch.autograd.grad(ref_out, (text, image, values), upstream), strict=True):
        torch.testing.assert_close(a, b)


def test_cross_attention_wrapper_is_mha_with_context_as_keys_and_values() -> None:
    torch.manual_seed(0)
    layer = CrossAttention(16, 24, num_heads=2)
    words, patches = torch.randn(B, 3, 16), torch.randn(B, 49, 24)
    out, weights = layer(words, patches)
    ref_out, ref_weights = MultiHeadAttention.forward(layer, words, patches, patches)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(weights, ref_weights)
    assert weights.shape == (B, 2, 3, 49)
    out, none = layer(words, patches, need_weights=False)
    assert none is None and out.shape == (B, 3, 16)


def test_parameter_count() -> None:
    d, kdim, vdim = 12, 20, 9
    assert sum(p.numel() for p in MultiHeadAttention(d, 3).parameters()) == 4 * d * d + 4 * d
    assert sum(p.numel() for p in MultiHeadAttention(d, 3, bias=False).parameters()) == 4 * d * d
    mine, ref = _pair(d, 4, kdim, vdim)
    count = 2 * d * d + d * kdim + d * vdim + 4 * d
    assert sum(p.numel() for p in mine.parameters()) == sum(p.numel() for p in ref.parameters()) == count


def test_mha_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="embed_dim=10 is not divisible by num_heads=3"):
        MultiHeadAttention(10, 3)
    layer = MultiHeadAttention(12, 3, kdim=20)
    with pytest.raises(ValueError, match=r"\(B, Lk, 20\).*key \(2, 4, 12\)"):
        layer(torch.randn(2, 3, 12), torch.randn(2, 4, 12), torch.randn(2, 4, 12))
    with pytest.raises(ValueError, match=r"3-D.*query \(3, 12\)"):
        layer(torch.randn(3, 12), torch.randn(2, 4, 20), torch.randn(2, 4, 12))
    with pytest.raises(ValueError, match=r"lengths differ.*value \(2, 5, 12\)"):
        layer(torch.randn(2, 3, 12), torch.randn(2, 4, 20), torch.randn(2, 5, 12))
    with pytest.raises(ValueError, match=r"mask of shape \(3, 5\)"):
        layer(torch.randn(2, 3, 12), torch.randn(2, 4, 20), torch.randn(2, 4, 12), mask=torch.ones(3, 5, dtype=bool))


def test_sinusoidal_known_values_and_range() -> None:
    pe = sinusoidal_positional_encoding(50, 16)
    assert pe.shape == (50, 16) and pe.abs().max() <= 1
    torch.testing.assert_close(pe[0, 0::2], torch.zeros(8))  # sin(0)
    torch.testing.assert_close(pe[0, 1::2], torch.ones(8))  # cos(0)
    torch.testing.assert_close(pe[1, :2], torch.tensor([math.sin(1.0), math.cos(1.0)]))
    assert math.isclose(pe[3, 14].item(), math.sin(3 * 10000 ** (-14 / 16)), rel_tol=1e-6)
    with pytest.raises(ValueError, match="even dim"):
        sinusoidal_positional_encoding(10, 7)


def test_sinusoidal_shift_is_a_rotation_and_dot_products_depend_on_offset_only() -> None:
    dim, k = 16, 5
    pe = sinusoidal_positional_encoding(64, dim).double()
    omega = 10000.0 ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    rotation = torch.zeros(dim, dim, dtype=torch.float64)  # block-diagonal, one 2x2 rotation per frequency
    for i, w in enumerate(omega.tolist()):
        c, s = math.cos(k * w), math.sin(k * w)
        rotation[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = torch.tensor([[c, s], [-s, c]])
    torch.testing.assert_close(pe[k:], pe[:-k] @ rotation.T, atol=1e-5, rtol=0)
    dots = torch.stack([pe[p] @ pe[p + k] for p in range(40)])
    torch.testing.assert_close(dots, torch.full_like(dots, torch.cos(k * omega).sum().item()), atol=1e-5, rtol=0)


def test_learned_positional_encoding() -> None:
    torch.manual_seed(0)
    layer = LearnedPositionalEncoding(10, 4)
    x = torch.zeros(2, 6, 4)
    torch.testing.assert_close(layer(x), layer.table.weight[:6].expand(2, 6, 4))
    with pytest.raises(ValueError, match=r"L <= 10.*\(2, 11, 4\)"):
        layer(torch.zeros(2, 11, 4))


def test_additive_attention_follows_its_formula() -> None:
    g = torch.Generator().manual_seed(0)
    q, k, v = torch.randn(2, 3, 5, generator=g), torch.randn(2, 4, 6, generator=g), torch.randn(2, 4, 2, generator=g)
    w_q, w_k, w_v = torch.randn(7, 5, generator=g), torch.randn(7, 6, generator=g), torch.randn(7, generator=g)
    out, weights = additive_attention(q, k, v, w_q, w_k, w_v)
    scores = torch.tensor([[[w_v @ torch.tanh(w_q @ q[b, i] + w_k @ k[b, j]) for j in range(4)]
                            for i in range(3)] for b in range(2)])
    torch.testing.assert_close(weights, scores.softmax(-1))
    torch.testing.assert_close(out, scores.softmax(-1) @ v)

    layer = AdditiveAttention(5, 6, 7)
    with torch.no_grad():
        layer.w_q.weight.copy_(w_q)
        layer.w_k.weight.copy_(w_k)
        layer.w_v.weight.copy_(w_v[None])
    mask = torch.tensor([True, True, False, False])
    out_masked, weights_masked = layer(q, k, v, mask)
    assert (weights_masked[..., 2:] == 0).all()
    torch.testing.assert_close(out_masked, scores[..., :2].softmax(-1) @ v[:, :2])
    assert layer(q, k)[0].shape == (2, 3, 6)  # values default to the keys
    with pytest.raises(ValueError, match=r"w_k \(h, 6\).*w_k \(7, 5\)"):
        additive_attention(q, k, v, w_q, w_q, w_v)


def test_patchify_and_finder_shapes() -> None:
    images = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).reshape(2, 3, 32, 32)
    patches = _patchify(images)
    assert patches.shape == (2, 49, 3 * 8 * 8)
    torch.testing.assert_close(patches[1, 0], images[1, :, :8, :8].flatten())
    torch.testing.assert_close(patches[0, 8], images[0, :, 4:12, 4:12].flatten())  # row 1, column 1
    torch.manual_seed(0)
    for score in ("dot", "additive"):
        logits, weights = ShapeFinder(score=score)(images / images.max(), torch.tensor([0, 7]))
        assert logits.shape == (2, 9) and weights.shape == (2, 49)
        torch.testing.assert_close(weights.sum(-1), torch.ones(2))
    with pytest.raises(ValueError, match="score must be 'dot' or 'additive', got 'cosine'"):
        ShapeFinder(score="cosine")


def test_finder_examples_use_only_words_that_name_one_shape() -> None:
    shapes = make_shapes(50, seed=3, max_shapes=4)
    pictures, words, cells = finder_examples(shapes)
    assert len(pictures) == len(words) == len(cells) > 50
    for i, w, c in zip(pictures, words, cells, strict=True):
        named = [o for o in shapes.attributes[i] if FINDER_WORDS[w] in (o["color"], o["shape"])]
        assert len(named) == 1 and 3 * named[0]["row"] + named[0]["col"] == c


def test_locate_heat_map_and_overlay() -> None:
    torch.manual_seed(0)
    model = ShapeFinder()
    images = make_shapes(2, seed=0).images
    probs, heat = model.locate(images, ["red", "circle"])
    assert probs.shape == (2, 9) and np.allclose(probs.sum(1), 1, atol=1e-6)
    assert heat.shape == (2, 32, 32) and (heat >= 0).all()
    picture = heat_overlay(images[0], heat[0])
    assert picture.shape == (256, 256, 3) and picture.dtype == np.uint8
    with pytest.raises(ValueError, match="unknown word 'pink'; use one of: red, orange"):
        word_ids(["red", "pink"])


@pytest.mark.parametrize("norm_first", [True, False])
def test_transformer_block_equals_torch_encoder_layer_outputs_and_gradients(norm_first: bool) -> None:
    torch.manual_seed(0)
    block = TransformerBlock(16, 4, 32, norm_first=norm_first).double().train()
    layer = to_torch_layer(block).train()  # train mode: dropout is 0, and torch takes its plain path
    x = torch.randn(3, 7, 16, dtype=torch.float64, requires_grad=True)
    keep = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 1], [1, 0, 1, 1, 1, 1, 1]], dtype=torch.bool)
    mine, weights = block(x, keep[:, None, :], need_weights=True)
    theirs = layer(x, src_key_padding_mask=~keep)
    torch.testing.assert_close(mine, theirs, atol=1e-12, rtol=1e-12)
    assert weights is not None and weights[..., ~keep[1]][1].abs().max() == 0  # nobody attends to padding
    probe = torch.randn_like(mine)
    ours = torch.autograd.grad((mine * probe).sum(), [x, *block.parameters()])
    reference = torch.autograd.grad((theirs * probe).sum(), [x, layer.self_attn.in_proj_weight, layer.norm1.weight])
    torch.testing.assert_close(ours[0], reference[0], atol=1e-10, rtol=1e-10)
    names = [n for n, _ in block.named_parameters()]
    q_k_v = [ours[1 + names.index(f"attn.{p}_proj.weight")] for p in "qkv"]
    torch.testing.assert_close(torch.cat(q_k_v), reference[1], atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(ours[1 + names.index("norm1.weight")], reference[2], atol=1e-10, rtol=1e-10)


def test_transformer_block_causal_mask_hides_the_future() -> None:
    torch.manual_seed(0)
    block = TransformerBlock(8, 2, 16).eval()
    x = torch.randn(1, 5, 8)
    changed = x.clone()
    changed[0, 3:] += 1.0  # edit positions 3 and 4
    mask = causal_mask(5)
    before, after = block(x, mask)[0], block(changed, mask)[0]
    torch.testing.assert_close(before[0, :3], after[0, :3])  # earlier positions cannot see the edit
    assert (before[0, 3:] - after[0, 3:]).abs().min() > 0


def test_layer_norm_matches_torch_and_its_jacobian_is_the_projection() -> None:
    g = torch.Generator().manual_seed(0)
    x = 2 * torch.randn(4, 6, generator=g, dtype=torch.float64) + 3
    norm = torch.nn.LayerNorm(6, dtype=torch.float64)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5, generator=g)
        norm.bias.normal_(generator=g)
    torch.testing.assert_close(layer_norm(x, norm.weight, norm.bias, norm.eps), norm(x), atol=1e-12, rtol=0)
    row = x[0]
    sigma = torch.sqrt(row.var(unbiased=False) + norm.eps)
    x_hat = (row - row.mean()) / sigma
    ones = torch.ones(6, dtype=torch.float64)
    projection = torch.eye(6, dtype=torch.float64) - torch.outer(ones, ones) / 6 - torch.outer(x_hat, x_hat) / 6
    jacobian = torch.autograd.functional.jacobian(norm, row)
    torch.testing.assert_close(jacobian, torch.diag(norm.weight.detach()) @ projection / sigma, atol=1e-12, rtol=0)
    assert (jacobian @ ones).abs().max() < 1e-12  # a shift of every feature changes nothing


def _tiny_lm(norm_first: bool = True) -> TransformerLM:
    torch.manual_seed(0)
    return TransformerLM(11, 16, 2, 32, 2, 9, norm_first=norm_first).eval()


@pytest.mark.parametrize("norm_first", [True, False])
def test_transformer_lm_one_pass_equals_prefix_passes_and_ignores_the_future(norm_first: bool) -> None:
    model = _tiny_lm(norm_first)
    assert isinstance(model.norm, torch.nn.LayerNorm) == norm_first  # the final norm is pre-norm's only
    tokens = torch.randint(0, 11, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(tokens)
        assert full.shape == (2, 9, 11)
        prefixes = torch.stack([model(tokens[:, : t + 1])[:, -1] for t in range(9)], dim=1)
        torch.testing.assert_close(full, prefixes, atol=1e-5, rtol=1e-5)
        edited = tokens.clone()
        edited[:, 5:] = (edited[:, 5:] + 1) % 11
        after = model(edited)
    assert torch.equal(full[:, :5], after[:, :5])
    assert (full[:, 5:] - after[:, 5:]).abs().max() > 1e-3


def test_next_token_loss_is_the_shifted_cross_entropy_without_padding() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 7, generator=g, dtype=torch.float64)
    tokens = torch.tensor([[1, 4, 3, 2, 0], [1, 5, 6, 3, 2]])
    expected = [-torch.log_softmax(logits[b, t], -1)[tokens[b, t + 1]]
                for b in range(2) for t in range(4) if tokens[b, t + 1] != 0]
    torch.testing.assert_close(next_token_loss(logits, tokens, ignore_index=0), torch.stack(expected).mean())
    model = _tiny_lm()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8, 9]] * 4)
    first = next_token_loss(model(batch), batch).item()
    for _ in range(30):
        loss = next_token_loss(model(batch), batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert loss.item() < 0.2 * first  # one memorised sequence: the loss falls
