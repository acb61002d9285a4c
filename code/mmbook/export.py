"""Export the tiny CLIP's encoders to ONNX, run them with ONNX Runtime, time runtimes fairly (Chapter 13).

- :class:`ImageEncoder` and :class:`TextEncoder` wrap what ``get_image_features`` / ``get_text_features``
  compute as modules with tensor inputs and one tensor output, the form an exporter needs;
- :func:`export_onnx` writes one of them to an ``.onnx`` file with ``torch.onnx.export`` (the
  ``torch.export``-based exporter, the default since torch 2.9) and a dynamic batch axis;
- :func:`onnx_session` opens a file with ONNX Runtime's CPU provider;
- :func:`check_compiler` says whether ``torch.compile`` can build its C++ kernels here.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mmbook.errors import InputError


def _require(model: nn.Module, method: str) -> None:
    if not callable(getattr(model, method, None)):
        raise InputError(
            f"{type(model).__name__} has no {method}() method: export needs a CLIP-style model "
            f"(such as transformers' CLIPModel) that computes the embeddings with {method}()"
        )


class ImageEncoder(nn.Module):
    """``pixel_values`` (B×3×H×W) → image embeddings (B×P), as ``model.get_image_features`` (Chapter 13)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        _require(model, "get_image_features")
        self.model = model

    def forward(self, pixel_values: Tensor) -> Tensor:
        return self.model.get_image_features(pixel_values=pixel_values).pooler_output


class TextEncoder(nn.Module):
    """``input_ids``, ``attention_mask`` (B×T) → text embeddings (B×P), as ``model.get_text_features``
    (Chapter 13)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        _require(model, "get_text_features")
        self.model = model

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask).pooler_output


def export_onnx(encoder: nn.Module, inputs: Mapping[str, Tensor], path: str | Path, *,
                dynamic: Mapping[str, Mapping[int, str]]) -> Path:  # fmt: skip
    """Export ``encoder`` called on ``inputs`` (by name, in ``forward``'s order) to the ONNX file ``path``,
    with the axes named in ``dynamic`` (input name → {axis: name}) left free; weights inside the file, output
    named ``output_embedding`` (Chapter 13)."""
    labels = {label for axes in dynamic.values() for label in axes.values()}
    dims = {label: torch.export.Dim(label) for label in sorted(labels)}  # one Dim per name, shared by inputs
    shapes = {name: {axis: dims[label] for axis, label in dynamic.get(name, {}).items()} or None for name in inputs}
    registry_log = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registry_log.level
    registry_log.setLevel(logging.ERROR)  # "torchvision is not installed": its operators are not needed here
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"# The axis name")  # a shared Dim is named once
            warnings.filterwarnings("ignore", category=FutureWarning)  # torch's own pytree deprecations
            torch.onnx.export(
                encoder.eval(), tuple(inputs.values()), str(path), dynamo=True, dynamic_shapes=shapes,
                input_names=list(inputs), output_names=["output_embedding"], external_data=False, verbose=False,
            )  # fmt: skip
    finally:
        registry_log.setLevel(level)
    return Path(path)


def onnx_session(path: str | Path, threads: int = 1) -> Any:
    """An ONNX Runtime ``InferenceSession`` for ``path`` on the CPU provider with ``threads`` threads, so that
    it uses the cores PyTorch uses (Chapter 13)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(session: Any, inputs: Mapping[str, Tensor]) -> Tensor:
    """The first output of ``session`` on ``inputs`` (converted to NumPy and back) (Chapter 13)."""
    return torch.from_numpy(session.run(None, {k: v.numpy() for k, v in inputs.items()})[0])


def first_call_seconds(fn: Callable[[], Any]) -> float:
    """Wall-clock seconds of one call of ``fn``: for ``torch.compile``, the compile time (Chapter 13)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def check_compiler() -> str:
    """The C++ compiler ``torch.compile`` (inductor) will use on the CPU; raise ``RuntimeError`` with what to
    install when there is none (Chapter 13)."""
    from torch._inductor import config

    candidates = [os.environ.get("CXX"), *config.cpp.cxx, "g++", "clang++"]
    for name in filter(None, candidates):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(
        "torch.compile compiles C++ kernels on the CPU and found no C++ compiler (tried g++ and clang++): install "
        "one (Debian/Ubuntu: apt-get install g++; macOS: xcode-select --install) or skip torch.compile"
    )
