"""Affine int8 quantization from scratch, and PyTorch's dynamic int8 quantization of whole models (Chapter 13).

A float ``x`` is stored as an integer ``q = clamp(round(x / s) + z, q_min, q_max)`` and read back as
``x̂ = s (q − z)``: :func:`affine_params` chooses the scale ``s`` and zero point ``z`` from a range,
:func:`quantize_tensor` applies them per tensor or per channel and returns a :class:`QTensor`.
:class:`Int8Linear` is a linear layer that multiplies integers (int8 weights, activations quantized on the
fly: "dynamic" quantization), the computation of PyTorch's ``torch.ao.nn.quantized.dynamic.Linear``.
:func:`quantize_dynamic_int8` is the library way for whole models (``torch.ao.quantization.quantize_dynamic``
with fbgemm's int8 kernels); :func:`linear_from_conv1d` first turns GPT-2's ``Conv1D`` layers into the
``nn.Linear`` layers it can quantize. :func:`disk_bytes` and :func:`mmbook.timing.interleaved` measure size and
latency the way the chapter compares models.
"""

from __future__ import annotations

import copy
import os
import tempfile
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

#: The signed 8-bit range of weights.
INT8 = (-128, 127)
#: The range of activations in PyTorch's x86 dynamic kernels: 7 bits of uint8 (``reduce_range=True``
#: leaves headroom so that sums of int8 × uint8 products cannot overflow fbgemm's 16-bit intermediates).
UINT7 = (0, 127)


@dataclass(frozen=True)
class QTensor:
    """Integers ``values`` in ``[qmin, qmax]`` with their ``scale`` and ``zero_point`` (Chapter 13).

    ``axis`` is ``None`` for one scale per tensor, else the dimension that has one scale per slice.
    """

    values: Tensor
    scale: Tensor
    zero_point: Tensor
    qmin: int
    qmax: int
    axis: int | None = None

    def _along(self, t: Tensor) -> Tensor:
        if self.axis is None:
            return t
        shape = [1] * self.values.ndim
        shape[self.axis] = -1
        return t.reshape(shape)

    def dequantize(self) -> Tensor:
        """The floats ``s (q − z)`` the integers stand for."""
        return dequantize(self.values, self._along(self.scale), self._along(self.zero_point))

    def bound(self) -> Tensor:
        """Half a step, ``s / 2``, broadcastable against ``values``: the largest rounding error in range."""
        return self._along(self.scale) / 2


def affine_params(low: Tensor, high: Tensor, qmin: int, qmax: int) -> tuple[Tensor, Tensor]:
    """Scale and zero point that map ``[low, high]`` (widened to contain 0) onto ``[qmin, qmax]`` (Chapter 13).

    ``s = (high − low) / (qmax − qmin)`` spreads the range over the integer steps; ``z = qmin − round(low/s)``
    makes 0 exactly representable (padding and ReLU zeros stay exact).
    """
    if qmin >= qmax:
        raise ValueError(f"need qmin < qmax, got [{qmin}, {qmax}]")
    low = torch.as_tensor(low, dtype=torch.float32).clamp(max=0)
    high = torch.as_tensor(high, dtype=torch.float32).clamp(min=0)
    scale = ((high - low) / (qmax - qmin)).clamp(min=torch.finfo(torch.float32).eps)
    zero_point = (qmin - torch.round(low / scale)).clamp(qmin, qmax).to(torch.int32)
    return scale, zero_point


def quantize(x: Tensor, scale: Tensor, zero_point: Tensor, qmin: int, qmax: int) -> Tensor:
    """``clamp(round(x / s) + z, qmin, qmax)`` as int32 holding the 8-bit codes (Chapter 13).

    It multiplies by ``1 / s`` as PyTorch's kernels do, so that values halfway between two codes round alike.
    """
    return (torch.round(x * (1.0 / scale)) + zero_point).clamp(qmin, qmax).to(torch.int32)


def dequantize(q: Tensor, scale: Tensor, zero_point: Tensor) -> Tensor:
    """``s (q − z)``: the float each code stands for (Chapter 13)."""
    return (q - zero_point).to(torch.float32) * scale


def quantize_tensor(
    x: Tensor, *, axis: int | None = None, qrange: tuple[int, int] = INT8, symmetric: bool = False
) -> QTensor:
    """Quantize ``x`` with its own min and max, per tensor (``axis=None``) or per slice along ``axis``
    (Chapter 13).

    ``symmetric`` uses ``[−max|x|, max|x|]`` with the zero point fixed at 0, as PyTorch's weight observers do:
    ``s = max|x| / ((qmax − qmin) / 2)``, so ``[−128, 127]`` holds ``±127.5`` steps and only ``+max|x|`` is
    clipped, by exactly half a step.
    """
    if not x.is_floating_point():
        raise TypeError(f"quantize_tensor needs a float tensor, got {x.dtype}")
    qmin, qmax = qrange
    if axis is None:
        low, high = x.min(), x.max()
    else:
        rows = x.movedim(axis, 0).reshape(x.shape[axis], -1)
        low, high = rows.min(1).values, rows.max(1).values
    if symmetric:
        reach = torch.maximum(-low, high).clamp(min=0)
        scale = (reach / ((qmax - qmin) / 2)).clamp(min=torch.finfo(torch.float32).eps)
        zero_point = torch.zeros_like(scale, dtype=torch.int32)
    else:
        scale, zero_point = affine_params(low, high, qmin, qmax)
    shaped = QTensor(x, scale, zero_point, qmin, qmax, axis)
    values = quantize(x, shaped._along(scale), shaped._along(zero_point), qmin, qmax)
    return QTensor(values, scale, zero_point, qmin, qmax, axis)


class Int8Linear(nn.Module):
    """A linear layer computed in integers (Chapter 13): int8 weights, symmetric (per tensor or per output
    channel), and activations quantized per call to :data:`UINT7` from their own range (dynamic).

    ``y = s_x s_w · ((q_x − z_x) q_wᵀ) + b``: the product of integers is exact in int32, one float multiply
    per output rescales it.
    """

    def __init__(self, weight: QTensor, bias: Tensor | None) -> None:
        super().__init__()
        if weight.axis not in (None, 0) or weight.values.ndim != 2:
            raise ValueError("Int8Linear needs a 2-D weight quantized per tensor or per output channel (axis 0)")
        self.weight = weight
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    @classmethod
    def from_float(cls, linear: nn.Module, per_channel: bool = False) -> Int8Linear:
        """Quantize the weights of ``linear`` (an ``nn.Linear``; anything else is refused by name)."""
        if type(linear) is not nn.Linear:
            raise TypeError(f"Int8Linear.from_float quantizes nn.Linear layers, not {type(linear).__name__}")
        weight = quantize_tensor(linear.weight.detach(), axis=0 if per_channel else None, symmetric=True)
        return cls(weight, linear.bias)

    def forward(self, x: Tensor) -> Tensor:
        qx = quantize_tensor(x, qrange=UINT7)
        accumulated = (qx.values - qx.zero_point) @ self.weight.values.T  # int32, exact
        y = accumulated.to(torch.float32) * (qx.scale * self.weight.scale)
        return y if self.bias is None else y + self.bias


def quantize_dynamic_int8(
    model: nn.Module, *, per_channel: bool = True, skip: Iterable[str] = (), layers: Iterable[str] | None = None
) -> nn.Module:
    """A copy of ``model`` whose ``nn.Linear`` layers compute in int8 with PyTorch's dynamic kernels
    (``torch.ao.quantization.quantize_dynamic``; Chapter 13).

    ``layers`` names the layers to quantize (default: every ``nn.Linear`` not in ``skip``); naming a layer
    that is not an ``nn.Linear`` raises ``TypeError`` with its name and type, and a model without any
    ``nn.Linear`` to quantize raises ``ValueError`` listing what it holds instead.
    """
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

    from mmbook.prune import named_linears

    try:
        names = list(named_linears(model, layers, skip=skip, purpose="quantize"))
    except ValueError as error:
        raise ValueError(f"{error}; convert layers such as GPT-2's Conv1D with linear_from_conv1d first") from None
    qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    with warnings.catch_warnings():
        # torch.ao.quantization announces its move to torchao with a DeprecationWarning on every call; it is
        # still PyTorch's working CPU path (torchao 0.18's eager int8 path ran far slower on this CPU and its
        # import prints load errors on the CPU wheel, see Chapter 13), so the notice is silenced here only.
        warnings.filterwarnings("ignore", message=r".*(torch\.ao\.quantization|quantize_per_).*deprecated")
        return quantize_dynamic(copy.deepcopy(model).eval(), {name: qconfig for name in names}, dtype=torch.qint8)


def linear_from_conv1d(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with each transformers ``Conv1D`` (GPT-2's ``x @ W + b``, ``W`` stored in×out)
    replaced by the equal ``nn.Linear`` (Chapter 13)."""
    from transformers.pytorch_utils import Conv1D

    model = copy.deepcopy(model)
    for name, module in list(model.named_modules()):
        if isinstance(module, Conv1D):
            n_in, n_out = module.weight.shape
            linear = nn.Linear(n_in, n_out)
            linear.weight.data.copy_(module.weight.detach().T)
            linear.bias.data.copy_(module.bias.detach())
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, linear)
    return model


def linear_share(model: nn.Module, skip: Iterable[str] = ()) -> float:
    """The share of ``model``'s parameters held by the weights of its ``nn.Linear`` layers outside ``skip``
    (tied parameters counted once; Chapter 13)."""
    skipped = set(skip)
    linear = {id(m.weight) for n, m in model.named_modules() if type(m) is nn.Linear and n not in skipped}
    counts = {id(p): p.numel() for p in model.parameters()}
    return sum(counts[i] for i in linear if i in counts) / sum(counts.values())


def disk_bytes(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())`` in a temporary file (Chapter 13)."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "weights.pt")
        torch.save(model.state_dict(), path)
        return os.path.getsize(path)
