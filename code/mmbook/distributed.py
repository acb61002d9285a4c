"""Data-parallel training of the tiny CLIP on several processes, checked against one process (Chapter 13).

Launch it with ``torchrun``; two processes on one machine, the ``gloo`` backend, CPU only::

    torchrun --standalone --nproc-per-node 2 -m mmbook.distributed

Every process builds the same randomly initialised CLIP (the same seed), takes its equal shard of each global
batch, and computes the contrastive loss of its own rows against the embeddings of **all** ranks, gathered
with the autograd-aware ``torch.distributed.nn.functional.all_gather``; the parameter gradients are then
averaged with ``all_reduce``. Rank 0 also computes, at the same weights, the gradient of the whole global
batch in one process, and prints the largest difference over all parameters; the command exits with status 1
when it exceeds ``--tolerance`` (1e-5). With ``--plain-gather`` the other ranks' embeddings come from
``torch.distributed.all_gather``, which carries no gradient back to the rank that computed them: the check
then fails, which is the point of the option.

Across machines the same module runs unchanged, e.g. on each of two nodes::

    torchrun --nnodes 2 --nproc-per-node 2 --node-rank K --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
        -m mmbook.distributed
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import warnings
from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
import torch.nn.functional as F
from torch import Tensor

from mmbook.clip import ScratchCLIP

LAUNCH = "torchrun --standalone --nproc-per-node 2 -m mmbook.distributed"


def gather_with_gradient(x: Tensor) -> Tensor:
    """Every rank's ``x`` stacked in rank order; the backward pass sends each slice's gradient home."""
    with warnings.catch_warnings():
        # torch 2.13 marks this public function deprecated in favour of a private module
        # (torch.distributed._functional_collectives); it still works, and the book keeps the public API.
        warnings.simplefilter("ignore", FutureWarning)
        return torch.cat(dist_nn.all_gather(x))


def gather_without_gradient(x: Tensor) -> Tensor:
    """Every rank's ``x`` stacked in rank order, the others' as constants: only the local slice has a
    gradient (the common mistake this module measures)."""
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach())
    parts[dist.get_rank()] = x
    return torch.cat(parts)


def shard_loss(model: ScratchCLIP, input_ids: Tensor, attention_mask: Tensor, pixel_values: Tensor,
               gather: Callable[[Tensor], Tensor]) -> Tensor:
    """CLIP's symmetric loss of this rank's pairs against every rank's embeddings (Chapter 13).

    With ``B`` global pairs in ``W`` equal shards, rank ``r`` holds rows ``rB/W ... (r+1)B/W - 1`` of the
    global ``B x B`` logit matrix (its texts against all pictures, its pictures against all texts); the mean
    of the ``W`` shard losses is the one-process loss of the whole batch.
    """
    text = F.normalize(model.encode_text(input_ids, attention_mask), dim=-1, eps=0.0)
    image = F.normalize(model.encode_image(pixel_values), dim=-1, eps=0.0)
    all_text, all_image = gather(text), gather(image)
    scale = model.logit_scale.exp()
    target = torch.arange(len(text)) + dist.get_rank() * len(text)
    return (F.cross_entropy(scale * text @ all_image.T, target)
            + F.cross_entropy(scale * image @ all_text.T, target)) / 2


def average_gradients(model: torch.nn.Module) -> None:
    """Replace every parameter's gradient by its mean over the ranks (what DistributedDataParallel does)."""
    world = dist.get_world_size()
    for parameter in model.parameters():
        dist.all_reduce(parameter.grad, op=dist.ReduceOp.SUM)
        parameter.grad /= world


def full_batch_gradients(model: ScratchCLIP, input_ids: Tensor, attention_mask: Tensor,
                         pixel_values: Tensor) -> dict[str, Tensor]:
    """The gradients of the one-process loss of the whole batch, on a copy of ``model``."""
    from mmbook.losses import clip_loss

    reference = copy.deepcopy(model)
    reference.zero_grad()
    _, logits_per_text, _, _ = reference(input_ids, attention_mask, pixel_values)
    clip_loss(logits_per_text).backward()
    return {name: p.grad for name, p in reference.named_parameters()}


def training_memory(parameters: int, world: int = 1, stage: int = 0, weight_bytes: int = 2,
                    gradient_bytes: int = 2, optimizer_bytes: int = 12) -> dict[str, float]:
    """Bytes per process for weights, gradients and optimizer state under ZeRO sharding (Chapter 13).

    Defaults: mixed-precision Adam as in the ZeRO paper (16-bit weights and gradients; a 32-bit master copy,
    momentum and variance, 12 bytes). ``stage`` 0 replicates everything (plain data parallelism); stage 1
    shards the optimizer state over the ``world`` processes, stage 2 the gradients too, stage 3 (FSDP's full
    sharding) the weights as well. Activations, buffers and temporary gathers are not counted.
    """
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"ZeRO stage must be 0, 1, 2 or 3, not {stage!r}")
    if world < 1:
        raise ValueError(f"world must be at least 1 process, not {world!r}")
    weights = parameters * weight_bytes / (world if stage >= 3 else 1)
    gradients = parameters * gradient_bytes / (world if stage >= 2 else 1)
    optimizer = parameters * optimizer_bytes / (world if stage >= 1 else 1)
    return {"weights": weights, "gradients": gradients, "optimizer": optimizer,
            "total": weights + gradients + optimizer}


def _batches(steps: int, batch_size: int, seed: int) -> list[tuple[Tensor, Tensor, Tensor]]:
    """``steps`` global batches of shapes-world pairs (pictures and captions), the same on every rank."""
    from mmbook.contrastive import pixels, processor, tokens
    from mmbook.data import make_shapes

    scenes = make_shapes(steps * batch_size, seed=seed, max_shapes=3)
    proc = processor(scenes.images)
    values = pixels(proc, scenes.images)
    ids, mask = tokens(proc, scenes.captions)
    rows = [slice(i * batch_size, (i + 1) * batch_size) for i in range(steps)]
    return [(ids[r], mask[r], values[r]) for r in rows]


def main(argv: list[str] | None = None) -> int:
    """Train a few data-parallel steps and check every gradient against one process (Chapter 13)."""
    parser = argparse.ArgumentParser(prog="python -m mmbook.distributed", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16, help="global batch, split equally over ranks")
    parser.add_argument("--tolerance", type=float, default=1e-5)
    parser.add_argument("--plain-gather", action="store_true", help="gather without gradient (wrong)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        print(f"mmbook.distributed needs the rank and world size that torchrun sets; launch it with\n  {LAUNCH}",
              file=sys.stderr)
        return 2
    from mmbook.contrastive import clip_config
    from mmbook.data import tokenizer

    dist.init_process_group("gloo")
    try:
        rank, world = dist.get_rank(), dist.get_world_size()
        if args.batch_size % world:
            raise SystemExit(f"--batch-size {args.batch_size} must split equally over {world} processes")
        torch.set_num_threads(1)
        torch.manual_seed(args.seed)
        model = ScratchCLIP(clip_config(tokenizer(), text_hidden=32, vision_hidden=32, projection_dim=32))
        optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
        gather = gather_without_gradient if args.plain_gather else gather_with_gradient
        share = args.batch_size // world
        worst = 0.0
        for step, (ids, mask, values) in enumerate(_batches(args.steps, args.batch_size, args.seed)):
            width = int(mask.sum(1).max())
            ids, mask = ids[:, :width], mask[:, :width]
            mine = slice(rank * share, (rank + 1) * share)
            optimiser.zero_grad()
            loss = shard_loss(model, ids[mine], mask[mine], values[mine], gather)
            loss.backward()
            average_gradients(model)
            if rank == 0:
                expected = full_batch_gradients(model, ids, mask, values)
                gap = max(float((p.grad - expected[n]).abs().max()) for n, p in model.named_parameters())
                worst = max(worst, gap)
                print(f"step {step}: shard loss {loss.item():.4f}, largest gradient difference {gap:.2e}")
            optimiser.step()
        spread = torch.tensor(0.0)
        for parameter in model.parameters():  # every rank must hold the same weights after the steps
            first = parameter.detach().clone()
            dist.broadcast(first, src=0)
            spread = torch.maximum(spread, (parameter.detach() - first).abs().max())
        dist.all_reduce(spread, op=dist.ReduceOp.MAX)
        failed = torch.tensor(int(worst > args.tolerance or spread.item() > 0))
        dist.broadcast(failed, src=0)
        if rank == 0:
            print(f"{world} processes, {args.steps} steps of {args.batch_size} pairs: largest gradient difference "
                  f"{worst:.2e} (tolerance {args.tolerance:.0e}); weights equal on every rank: {spread.item() == 0}")
        return int(failed.item())
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
