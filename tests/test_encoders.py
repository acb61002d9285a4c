"""mmbook.encoders: the Chapter 3 encoders' shapes, padding safety and agreement with references."""

from __future__ import annotations

import math

import pytest
import torch
from mmbook.data import tokenizer
from mmbook.encoders import (
    AudioEncoder,
    ConvEncoder,
    Encoded,
    LSTMTextEncoder,
    PatchEmbedding,
    TransformerTextEncoder,
    ViTEncoder,
    count_parameters,
    patchify,
    receptive_field,
    spectrogram,
)
from torch import nn
from transformers import ViTConfig, ViTModel

TEXTS = ["a red circle", "there are two shapes: a big blue square in the center and a red cross at the top"]


def check(out: Encoded, batch: int, length: int, dim: int) -> None:
    assert out.pooled.shape == (batch, dim)
    assert out.tokens.shape == (batch, length, dim)


@pytest.fixture(scope="module")
def tok():
    return tokenizer()


def test_image_encoders_give_pooled_and_token_features() -> None:
    images = torch.rand(5, 3, 32, 32)
    check(ConvEncoder(dim=48)(images), 5, 16, 48)  # three 2x poolings: 4x4 cells
    check(ConvEncoder(widths=(8, 8), dim=16)(images), 5, 64, 16)
    check(ViTEncoder(patch=4, dim=32, heads=2)(images), 5, 64, 32)
    check(ViTEncoder(patch=8, dim=32, heads=2)(images), 5, 16, 32)
    with pytest.raises(ValueError, match="expected 32×32"):
        ViTEncoder(patch=8)(torch.rand(1, 3, 64, 64))


def test_audio_encoder_shapes() -> None:
    encoder = AudioEncoder(n_fft=256, hop=64, dim=24, widths=(16, 16))
    out = encoder(torch.randn(3, 4000))
    check(out, 3, (1 + 4000 // 64) // 4, 24)
    assert out.mask is None


@pytest.mark.parametrize("kind", [LSTMTextEncoder, TransformerTextEncoder])
def test_text_encoders_ignore_padding(kind: type[nn.Module], tok) -> None:
    torch.manual_seed(0)
    encoder = kind(len(tok), 32).eval()
    batch = tok(TEXTS, padding=True, return_tensors="pt")
    out = encoder(batch["input_ids"], batch["attention_mask"])
    check(out, 2, batch["input_ids"].shape[1], 32)
    assert out.mask.tolist() == batch["attention_mask"].bool().tolist()
    with torch.no_grad():
        for i, text in enumerate(TEXTS):
            alone = encoder(tok([text], return_tensors="pt")["input_ids"])
            padded = encoder(tok([text], padding="max_length", max_length=40, return_tensors="pt")["input_ids"])
            real = int(batch["attention_mask"][i].sum())
            assert torch.allclose(out.pooled[i], alone.pooled[0], atol=1e-5)
            assert torch.allclose(padded.pooled[0], alone.pooled[0], atol=1e-5)
            assert torch.allclose(out.tokens[i, :real], alone.tokens[0], atol=1e-5)


def test_text_encoders_reject_an_all_padding_row(tok) -> None:
    ids = torch.zeros(1, 5, dtype=torch.long)
    with pytest.raises(ValueError, match="at least one real token"):
        LSTMTextEncoder(len(tok))(ids)


def test_patchify_orders_patches_like_reading() -> None:
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    patches = patchify(images, 4)
    assert patches.shape == (2, 4, 3 * 4 * 4)
    assert torch.equal(patches[1, 2], images[1, :, 4:8, 0:4].reshape(-1))  # third patch: bottom left
    with pytest.raises(ValueError, match="not divisible"):
        patchify(images, 3)


def test_patch_embedding_equals_a_strided_convolution() -> None:
    torch.manual_seed(0)
    embed = PatchEmbedding(patch=4, in_channels=3, dim=16)
    conv = nn.Conv2d(3, 16, kernel_size=4, stride=4)
    with torch.no_grad():
        conv.weight.copy_(embed.proj.weight.reshape(16, 3, 4, 4))
        conv.bias.copy_(embed.proj.bias)
    images = torch.randn(2, 3, 32, 32)
    expected = conv(images).flatten(2).transpose(1, 2)
    assert torch.allclose(embed(images), expected, atol=1e-5)


def test_vit_matches_transformers_with_copied_weights() -> None:
    torch.manual_seed(0)
    config = ViTConfig(
        image_size=32, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=64,
    )  # fmt: skip
    reference = ViTModel(config, add_pooling_layer=False).eval()
    ours = ViTEncoder.from_transformers(reference).eval()
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(ours.embed(images), reference.embeddings(images), atol=1e-5)
        hidden = reference(pixel_values=images).last_hidden_state
        out = ours(images)
    assert torch.allclose(out.pooled, hidden[:, 0], atol=1e-4)
    assert torch.allclose(out.tokens, hidden[:, 1:], atol=1e-4)


def test_conv_parameter_counts_follow_the_formula() -> None:
    for c_in, c_out, k in [(3, 16, 3), (16, 32, 5), (1, 1, 1)]:
        assert count_parameters(nn.Conv2d(c_in, c_out, k)) == c_out * (c_in * k * k + 1)
    widths, k = (16, 32, 64), 3
    encoder = ConvEncoder(3, widths, dim=40, kernel_size=k)
    ins = (3, *widths[:-1])
    expected = sum(o * (i * k * k + 1) for i, o in zip(ins, widths, strict=True)) + 40 * (widths[-1] + 1)
    assert count_parameters(encoder) == expected


def test_receptive_field_matches_the_gradient_support() -> None:
    torch.manual_seed(0)
    stack = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3, stride=2), nn.AvgPool2d(2), nn.Conv2d(2, 1, 5, dilation=2)
    )
    assert receptive_field(stack) == 1 + 2 + 2 + 1 * 2 + 4 * 2 * 4
    x = torch.rand(1, 1, 64, 64, requires_grad=True)
    y = stack(x)
    centre = y.shape[-1] // 2
    y[0, 0, centre, centre].backward()
    rows = (x.grad[0, 0].abs().sum(dim=1) > 0).nonzero()
    assert rows.max() - rows.min() + 1 == receptive_field(stack)
    assert receptive_field(ConvEncoder().features) == 22


def test_spectrogram_shape_and_peak_of_a_pure_tone() -> None:
    rate, n_fft, hop = 8000, 256, 64
    t = torch.arange(4000) / rate
    for hz in (261.6, 1000.0, 2500.0):
        tone = torch.sin(2 * math.pi * hz * t)
        spec = spectrogram(tone, n_fft, hop)
        assert spec.shape == (n_fft // 2 + 1, 1 + 4000 // hop)
        peak = spec.mean(dim=1).argmax().item() * rate / n_fft
        assert abs(peak - hz) <= rate / n_fft / 2
    assert spectrogram(torch.randn(2, 1000), n_fft, hop).shape == (2, n_fft // 2 + 1, 1 + 1000 // hop)
