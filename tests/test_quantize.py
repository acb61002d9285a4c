"""mmbook.quantize: affine int8 quantization from scratch against its bound and PyTorch's kernels (Chapter 13)."""

from __future__ import annotations

import warnings

import pytest
import torch
from mmbook import quantize as q
from torch import nn


def test_round_trip_error_is_at_most_half_a_step_inside_the_range() -> None:
    torch.manual_seed(0)
    x = torch.randn(5000) * 3 + 1
    for symmetric in (False, True):
        t = q.quantize_tensor(x, symmetric=symmetric)
        assert int(t.values.min()) >= -128 and int(t.values.max()) <= 127
        err = (t.dequantize() - x).abs()
        assert float(err.max()) <= float(t.bound()) * (1 + 1e-4)  # float32 rounding of s (q - z)
        assert float(err.max()) > 0.9 * float(t.bound())  # the bound is reached: it is tight


def test_zero_is_exact_and_outside_the_range_clipping_grows_the_error() -> None:
    x = torch.tensor([0.5, 1.0, 2.0])  # range widened to [0, 2]: 0 must be representable
    t = q.quantize_tensor(x)
    assert float(q.dequantize(q.quantize(torch.zeros(1), t.scale, t.zero_point, -128, 127), t.scale,
                              t.zero_point)) == 0.0  # fmt: skip
    far = q.dequantize(q.quantize(torch.tensor([5.0]), t.scale, t.zero_point, -128, 127), t.scale, t.zero_point)
    assert float(5.0 - far) > 2.9  # clipped to the top of the range, not within half a step


def test_per_channel_error_is_smaller_when_channel_ranges_differ() -> None:
    torch.manual_seed(1)
    w = torch.randn(16, 64) * torch.logspace(-2, 0, 16)[:, None]
    per_tensor = (q.quantize_tensor(w, symmetric=True).dequantize() - w).abs().mean()
    per_channel_t = q.quantize_tensor(w, axis=0, symmetric=True)
    per_channel = (per_channel_t.dequantize() - w).abs().mean()
    assert per_channel_t.scale.shape == (16,)
    assert float(per_channel) < 0.5 * float(per_tensor)


@pytest.mark.parametrize("per_channel", [False, True])
def test_int8_linear_equals_pytorchs_dynamic_linear(per_channel: bool) -> None:
    torch.manual_seed(2)
    linear = nn.Linear(48, 24)
    x = torch.randn(7, 5, 48) * 2 + 0.5
    ours = q.Int8Linear.from_float(linear, per_channel=per_channel)(x)
    library = q.quantize_dynamic_int8(nn.Sequential(linear), per_channel=per_channel)
    with torch.no_grad():
        theirs = library(x)
        exact = linear(x)
    assert type(library[0]).__module__.startswith("torch.ao.nn.quantized.dynamic")
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert not torch.allclose(ours, exact, atol=1e-5)  # int8 is an approximation of the float layer


def test_library_call_is_quiet_and_unsupported_layers_are_named() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Conv1d(4, 4, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quantized = q.quantize_dynamic_int8(model)
    assert type(quantized[0]) is not nn.Linear and type(quantized[1]) is nn.Conv1d
    assert type(model[0]) is nn.Linear  # the original is untouched
    with pytest.raises(TypeError, match=r"'1'.*Conv1d"):
        q.quantize_dynamic_int8(model, layers=["1"])
    with pytest.raises(ValueError, match="no nn.Linear.*Conv1d"):
        q.quantize_dynamic_int8(nn.Sequential(nn.Conv1d(4, 4, 1)))
    with pytest.raises(TypeError, match="Embedding"):
        q.Int8Linear.from_float(nn.Embedding(3, 4))
    with pytest.raises(TypeError, match="float"):
        q.quantize_tensor(torch.arange(4))


def test_conv1d_becomes_an_equal_linear() -> None:
    from transformers.pytorch_utils import Conv1D

    torch.manual_seed(3)
    conv = nn.Sequential(Conv1D(12, 8))
    converted = q.linear_from_conv1d(conv)
    x = torch.randn(3, 8)
    assert type(converted[0]) is nn.Linear and type(conv[0]) is Conv1D
    assert torch.allclose(converted(x), conv(x), atol=1e-6)


def test_sizes_and_shares() -> None:
    model = nn.Sequential(nn.Embedding(100, 10), nn.Linear(100, 300, bias=False))  # no forward: sizes only
    assert q.linear_share(model) == pytest.approx(30000 / 31000)
    assert q.disk_bytes(model) > 31000 * 4
    assert q.disk_bytes(q.quantize_dynamic_int8(model)) < q.disk_bytes(model)
