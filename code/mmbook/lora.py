"""LoRA from scratch: a frozen linear layer plus a trained low-rank update, and merging it back (Chapter 13).

Chapter 11 fine-tuned the tiny VLM with ``peft``'s LoRA. This module writes the same layer in a few
lines so that nothing about it is hidden, and Chapter 13 proves it equal to ``peft``'s with copied weights.

- :class:`LoRALinear`: ``y = x W^T + b + (alpha / r) x A^T B^T`` with ``W``, ``b`` frozen, ``B`` starting at 0.
- :func:`add_lora`: wrap the named ``nn.Linear`` layers of a model and freeze everything else.
- :func:`merge_lora`: fold every update into its weight (``W + (alpha / r) B A``), giving plain layers back.
- :func:`lora_parameter_count`: the numbers LoRA trains in those layers, ``r (d_in + d_out)`` per matrix.
- :func:`adam_state_bytes`: the bytes an optimiser's state holds (Adam: two floats per trained number).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor, nn


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a rank-``rank`` update scaled by ``alpha / rank`` (Chapter 13).

    ``lora_A`` (``rank × d_in``) starts as ``peft`` starts it (Kaiming-uniform), ``lora_B``
    (``d_out × rank``) at zero, so the wrapped layer first computes exactly what the base layer did.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        if rank < 1:
            raise ValueError(f"the rank must be at least 1, got {rank}")
        self.base = base.requires_grad_(False)
        self.rank, self.scaling = rank, alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, dtype=base.weight.dtype))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, dtype=base.weight.dtype))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, x: Tensor) -> Tensor:
        return self.base(x) + (x @ self.lora_A.T @ self.lora_B.T) * self.scaling

    def delta_weight(self) -> Tensor:
        """The update ``(alpha / r) B A`` in the shape of the base weight."""
        return self.scaling * self.lora_B @ self.lora_A

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` with weight ``W + (alpha / r) B A`` and the base bias."""
        base = self.base
        out = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None,
                        dtype=base.weight.dtype, device=base.weight.device)
        out.weight.copy_(base.weight + self.delta_weight())
        if base.bias is not None:
            out.bias.copy_(base.bias)
        return out


def _target_names(model: nn.Module, targets: Iterable[str]) -> list[str]:
    wanted = set(targets)
    return [name for name, _ in model.named_modules() if name.rsplit(".", 1)[-1] in wanted]


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def add_lora(model: nn.Module, targets: Iterable[str], rank: int, alpha: float) -> list[str]:
    """Freeze ``model`` and wrap every ``nn.Linear`` whose name ends in one of ``targets`` (``"q_proj"``,
    ``"fc1"``, ...) in a :class:`LoRALinear`; return the wrapped names (Chapter 13).

    A matched module that is not an ``nn.Linear`` (GPT-2's ``Conv1D``, an embedding) is an error naming it.
    """
    targets = tuple(targets)
    names = _target_names(model, targets)
    if not names:
        raise ValueError(f"no module of {type(model).__name__} is named {', '.join(targets)}")
    for name in names:
        module = model.get_submodule(name)
        if type(module) is not nn.Linear:
            raise TypeError(f"LoRA here wraps nn.Linear layers only; {name!r} is a {type(module).__name__}")
    model.requires_grad_(False)
    for name in names:
        _set_module(model, name, LoRALinear(model.get_submodule(name), rank, alpha))
    return names


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every :class:`LoRALinear` in ``model`` by its merged ``nn.Linear``; return ``model`` (Chapter 13)."""
    for name in [n for n, m in model.named_modules() if isinstance(m, LoRALinear)]:
        _set_module(model, name, model.get_submodule(name).merged())
    return model


def lora_parameter_count(model: nn.Module, targets: Iterable[str], rank: int) -> tuple[int, int]:
    """``(r (d_in + d_out), d_in d_out)`` summed over the ``nn.Linear`` layers named ``targets``: what LoRA
    of rank ``rank`` trains there, and what full fine-tuning of their weights trains (Chapter 13)."""
    lora = full = 0
    for name in _target_names(model, targets):
        module = model.get_submodule(name)
        layer = module.base if isinstance(module, LoRALinear) else module
        lora += rank * (layer.in_features + layer.out_features)
        full += layer.in_features * layer.out_features
    return lora, full


def adam_state_bytes(optimiser: torch.optim.Optimizer) -> int:
    """Bytes held by the tensors of ``optimiser.state`` (Adam: ``exp_avg`` and ``exp_avg_sq`` of every
    trained number, and a one-number ``step`` per tensor) (Chapter 13)."""
    return sum(v.numel() * v.element_size() for state in optimiser.state.values()
               for v in state.values() if isinstance(v, Tensor))
