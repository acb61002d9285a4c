"""mmbook.export: ONNX round trip of a small random CLIP, fair timing, clear errors (Chapter 13)."""

from __future__ import annotations

import pytest
import torch
from mmbook import export
from mmbook.errors import InputError


@pytest.fixture(scope="module")
def tiny_clip() -> torch.nn.Module:
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    text = {"vocab_size": 30, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
            "num_attention_heads": 2, "max_position_embeddings": 12, "eos_token_id": 2}  # fmt: skip
    vision = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
              "image_size": 16, "patch_size": 8}  # fmt: skip
    return CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)).eval()


def test_onnx_runtime_gives_pytorchs_embeddings(tiny_clip: torch.nn.Module, tmp_path) -> None:
    image, text = export.ImageEncoder(tiny_clip), export.TextEncoder(tiny_clip)
    pixels = {"pixel_values": torch.randn(2, 3, 16, 16)}
    ids = torch.randint(3, 30, (2, 5))
    tokens = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    image_file = export.export_onnx(image, pixels, tmp_path / "image.onnx", dynamic={"pixel_values": {0: "batch"}})
    text_file = export.export_onnx(text, tokens, tmp_path / "text.onnx",
                                   dynamic={name: {0: "batch", 1: "tokens"} for name in tokens})  # fmt: skip
    # other batch sizes and lengths than at export: the axes are dynamic
    pixels = {"pixel_values": torch.randn(3, 3, 16, 16)}
    ids = torch.randint(3, 30, (4, 7))
    tokens = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    for encoder, path, inputs in [(image, image_file, pixels), (text, text_file, tokens)]:
        got = export.run_onnx(export.onnx_session(path), inputs)
        with torch.no_grad():
            want = encoder(**inputs)
        assert got.shape == want.shape
        assert (got - want).abs().max().item() <= 1e-5


def test_a_model_without_the_methods_is_named() -> None:
    with pytest.raises(InputError, match=r"Linear has no get_image_features\(\)"):
        export.ImageEncoder(torch.nn.Linear(2, 2))
    with pytest.raises(InputError, match=r"Linear has no get_text_features\(\)"):
        export.TextEncoder(torch.nn.Linear(2, 2))


def test_no_compiler_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from torch._inductor import config

    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(config.cpp, "cxx", (None, "g++"))
    with pytest.raises(RuntimeError, match="no C\\+\\+ compiler"):
        export.check_compiler()
