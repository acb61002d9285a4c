"""Magnitude pruning with ``torch.nn.utils.prune`` and structured pruning of MLP channels (Chapter 13).

:func:`magnitude_prune` zeroes the smallest weights of a model's ``nn.Linear`` layers (one threshold for all
of them, or the same fraction in each), the library way; the zeros stay in dense matrices, so the kernels
do the same work. :func:`prune_mlp_channels` removes whole hidden channels of the two-layer MLPs
(``fc1`` → activation → ``fc2``, as in CLIP's encoder layers) by building smaller ``nn.Linear`` layers: less
work for the same kernels. :func:`mask_mlp_channels` is the same cut written as zeros in the dense model,
which the smaller model must equal.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import Tensor, nn
from torch.nn.utils import prune


def named_linears(model: nn.Module, layers: Iterable[str] | None = None, *, skip: Iterable[str] = (),
                  purpose: str = "prune") -> dict[str, nn.Linear]:
    """The ``nn.Linear`` layers of ``model`` by name, those named in ``layers`` or else every one not in
    ``skip`` (Chapter 13: pruning and quantization choose their layers with it).

    A name that is missing raises ``KeyError``; a named layer that is not an ``nn.Linear`` raises
    ``TypeError`` with its type; a model without any ``nn.Linear`` raises ``ValueError`` listing what it holds.
    """
    modules = dict(model.named_modules())
    if layers is None:
        skipped = set(skip)
        found = {n: m for n, m in modules.items() if type(m) is nn.Linear and n not in skipped}
        if not found:
            kinds = sorted({type(m).__name__ for m in modules.values()
                            if next(m.parameters(recurse=False), None) is not None})
            raise ValueError(f"{type(model).__name__} has no nn.Linear layer to {purpose} (it holds {kinds})")
        return found
    chosen = {}
    for name in layers:
        if name not in modules:
            raise KeyError(f"{type(model).__name__} has no layer named {name!r}")
        if type(modules[name]) is not nn.Linear:
            raise TypeError(f"cannot {purpose} {name!r}: only nn.Linear layers are supported, "
                            f"not {type(modules[name]).__name__}")
        chosen[name] = modules[name]
    return chosen


def magnitude_prune(
    model: nn.Module, amount: float, *, layers: Iterable[str] | None = None, scope: str = "global"
) -> nn.Module:
    """A copy of ``model`` with the fraction ``amount`` of the smallest-magnitude weights of its ``nn.Linear``
    layers set to zero (Chapter 13).

    ``scope="global"`` ranks the weights of all chosen layers together (``prune.global_unstructured``),
    ``"layer"`` prunes ``amount`` of each layer (``prune.l1_unstructured``); the masks are then made permanent
    (``prune.remove``), so the copy holds plain dense weights with zeros in them. ``layers`` names the layers
    (default: every ``nn.Linear``); naming another kind of module raises ``TypeError``.
    """
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"amount must be in [0, 1), got {amount!r}")
    if scope not in ("global", "layer"):
        raise ValueError(f"scope must be 'global' or 'layer', got {scope!r}")
    model = copy.deepcopy(model)
    chosen = named_linears(model, layers)
    if scope == "global":
        prune.global_unstructured([(m, "weight") for m in chosen.values()], pruning_method=prune.L1Unstructured,
                                  amount=amount)  # fmt: skip
    else:
        for module in chosen.values():
            prune.l1_unstructured(module, "weight", amount=amount)
    for module in chosen.values():
        prune.remove(module, "weight")
    return model


def weight_sparsity(model: nn.Module, layers: Iterable[str] | None = None) -> float:
    """The fraction of exact zeros in the weights of the chosen ``nn.Linear`` layers (Chapter 13)."""
    weights = [m.weight for m in named_linears(model, layers).values()]
    return sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)


def mlp_blocks(model: nn.Module) -> dict[str, nn.Module]:
    """The two-layer MLPs of ``model``: modules with ``nn.Linear`` attributes ``fc1`` and ``fc2`` (Chapter 13)."""
    return {n: m for n, m in model.named_modules() if _is_mlp(m)}


def _is_mlp(module: nn.Module) -> bool:
    fc1, fc2 = getattr(module, "fc1", None), getattr(module, "fc2", None)
    return type(fc1) is nn.Linear and type(fc2) is nn.Linear and fc1.out_features == fc2.in_features


def _blocks(model: nn.Module, blocks: Iterable[str] | None) -> dict[str, nn.Module]:
    if blocks is None:
        found = mlp_blocks(model)
        if not found:
            raise ValueError(f"{type(model).__name__} has no MLP with nn.Linear fc1 and fc2 to prune")
        return found
    modules = dict(model.named_modules())
    chosen = {}
    for name in blocks:
        if name not in modules:
            raise KeyError(f"{type(model).__name__} has no module named {name!r}")
        if not _is_mlp(modules[name]):
            raise TypeError(f"cannot prune channels of {name!r}: {type(modules[name]).__name__} is not an MLP "
                            "with nn.Linear fc1 and fc2")
        chosen[name] = modules[name]
    return chosen


def kept_channels(block: nn.Module, keep: float) -> Tensor:
    """Indices (ascending) of the ``keep`` share of hidden channels with the largest
    ``‖fc1 row‖₁ · ‖fc2 column‖₁`` (Chapter 13)."""
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be in (0, 1], got {keep!r}")
    score = block.fc1.weight.detach().abs().sum(1) * block.fc2.weight.detach().abs().sum(0)
    n = max(1, round(keep * score.numel()))
    return score.topk(n).indices.sort().values


@torch.no_grad()
def prune_mlp_channels(model: nn.Module, keep: float, *, blocks: Iterable[str] | None = None) -> nn.Module:
    """A copy of ``model`` whose MLPs keep only the ``keep`` share of hidden channels (:func:`kept_channels`):
    ``fc1`` loses output rows, ``fc2`` the matching input columns (Chapter 13)."""
    model = copy.deepcopy(model)
    for block in _blocks(model, blocks).values():
        kept = kept_channels(block, keep)
        fc1, fc2 = block.fc1, block.fc2
        small1 = nn.Linear(fc1.in_features, len(kept), bias=fc1.bias is not None)
        small2 = nn.Linear(len(kept), fc2.out_features, bias=fc2.bias is not None)
        small1.weight.copy_(fc1.weight[kept])
        small2.weight.copy_(fc2.weight[:, kept])
        if fc1.bias is not None:
            small1.bias.copy_(fc1.bias[kept])
        if fc2.bias is not None:
            small2.bias.copy_(fc2.bias)
        block.fc1, block.fc2 = small1, small2
    return model


@torch.no_grad()
def mask_mlp_channels(model: nn.Module, keep: float, *, blocks: Iterable[str] | None = None) -> nn.Module:
    """The cut of :func:`prune_mlp_channels` as zeros in the dense model: ``fc2``'s columns of the dropped
    channels set to 0, so they reach nothing (Chapter 13)."""
    model = copy.deepcopy(model)
    for block in _blocks(model, blocks).values():
        dropped = torch.ones(block.fc2.in_features, dtype=torch.bool)
        dropped[kept_channels(block, keep)] = False
        block.fc2.weight[:, dropped] = 0.0
    return model
