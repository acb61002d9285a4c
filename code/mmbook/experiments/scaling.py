"""Chapter 14's scaling sweep: the tiny CLIP trained at several widths and data amounts, declared to the zoo.

``tiny-clip-scaling-sweep`` trains the tiny CLIP's architecture at each width of :data:`SCALING_SWEEP`
(a fraction of the tiny CLIP's width, as Chapter 13's students: :func:`mmbook.distill.student_config`) for
each number of steps, on the first ``steps × batch_size`` training pairs, with Chapter 6's loop
(:func:`mmbook.contrastive.train_clip`), and measures each run's contrastive loss on held-out pairs. What
is saved is the measurements, one row per run: width, steps, pairs, parameters, the mean caption width
of its batches (padding included: :func:`batch_widths`), held-out loss and seconds. The chapter turns
them into training FLOPs with :func:`mmbook.scaling_laws.training_flops`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmbook import zoo
from mmbook.env import training_state
from mmbook.tiny_models import TINY_CLIP

#: The file of the sweep's measurements in its model folder.
SWEEP_FILE = "sweep.json"


@dataclass(frozen=True)
class ScalingSweepSettings:
    """Chapter 14's sweep: every width (a fraction of the tiny CLIP's) trained for every number of steps of
    ``batch_size`` pairs; the held-out loss is measured on ``n_test`` pairs in batches of the same size."""

    widths: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0)
    steps: tuple[int, ...] = (50, 100, 200, 400)
    batch_size: int = 64
    lr: float = TINY_CLIP.lr
    n_test: int = 1024
    data_seed: int = TINY_CLIP.data_seed
    test_seed: int = 14
    max_shapes: int = TINY_CLIP.max_shapes
    split: str = TINY_CLIP.split
    seed: int = TINY_CLIP.seed


SCALING_SWEEP = ScalingSweepSettings()


def heldout_loss(model: Any, pixel_values: Any, input_ids: Any, attention_mask: Any, batch_size: int) -> float:
    """Mean CLIP loss (Chapter 6) of ``model`` over consecutive batches of ``batch_size`` held-out pairs
    (a partial last batch is dropped: the loss of a batch depends on its size) (Chapter 14)."""
    import torch

    from mmbook.losses import clip_loss

    losses = []
    with torch.no_grad():
        for i in range(0, len(pixel_values) - batch_size + 1, batch_size):
            out = model(input_ids=input_ids[i : i + batch_size], attention_mask=attention_mask[i : i + batch_size],
                        pixel_values=pixel_values[i : i + batch_size])  # fmt: skip
            losses.append(clip_loss(out.logits_per_text).item())
    return sum(losses) / len(losses)


def batch_widths(attention_mask: Any, steps: int, batch_size: int, seed: int) -> list[int]:
    """The caption width of every batch that :func:`~mmbook.contrastive.train_clip` draws with ``seed``: it
    draws the same rows from the same generator and cuts each batch to its longest caption (Chapter 14)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    widths = []
    for _ in range(steps):
        rows = torch.randint(0, len(attention_mask), (batch_size,), generator=generator)
        widths.append(int(attention_mask[rows].sum(1).max()))
    return widths


@training_state()  # one thread: robust when other programs keep the cores busy
def train_scaling_sweep(folder: Path, settings: ScalingSweepSettings) -> dict[str, Any]:
    """Train every (width, steps) run of ``settings``, measure its held-out loss and save the rows in
    :data:`SWEEP_FILE` (Chapter 14)."""
    import time

    import torch
    from transformers import CLIPModel

    from mmbook import contrastive, distill
    from mmbook.data import make_shapes

    s = settings
    data = make_shapes(max(s.steps) * s.batch_size, seed=s.data_seed, max_shapes=s.max_shapes, split=s.split)
    test = make_shapes(s.n_test, seed=s.test_seed, max_shapes=s.max_shapes, split=s.split)
    proc = contrastive.processor(data.images)
    pixel_values, (ids, mask) = contrastive.pixels(proc, data.images), contrastive.tokens(proc, data.captions)
    test_pixels, (test_ids, test_mask) = contrastive.pixels(proc, test.images), contrastive.tokens(proc, test.captions)
    runs = []
    for width in s.widths:
        for steps in s.steps:
            pairs = steps * s.batch_size
            torch.manual_seed(s.seed)
            model = CLIPModel(distill.student_config(proc.tokenizer, width))
            start = time.perf_counter()
            contrastive.train_clip(model, pixel_values[:pairs], ids[:pairs], mask[:pairs], steps=steps,
                                   batch_size=s.batch_size, lr=s.lr, seed=s.seed, progress=False)  # fmt: skip
            seconds = time.perf_counter() - start
            runs.append({
                "width": width, "steps": steps, "pairs": pairs, "seconds": seconds,
                "parameters": sum(p.numel() for p in model.parameters()),
                "text_tokens": sum(batch_widths(mask[:pairs], steps, s.batch_size, s.seed)) / steps,
                "loss": heldout_loss(model, test_pixels, test_ids, test_mask, s.batch_size),
            })  # fmt: skip
    (folder / SWEEP_FILE).write_text(json.dumps(runs))
    return {"loop_seconds": sum(run["seconds"] for run in runs)}


def _load_sweep(folder: Path) -> list[dict[str, Any]]:
    return json.loads((folder / SWEEP_FILE).read_text())


def _check_sweep(runs: list[dict[str, Any]]) -> None:
    expected = len(SCALING_SWEEP.widths) * len(SCALING_SWEEP.steps)
    if len(runs) != expected:
        raise ValueError(f"the sweep holds {len(runs)} runs, not {expected}")
    if not all(math.isfinite(run["loss"]) and run["text_tokens"] > 0 for run in runs):
        raise ValueError("the sweep has a non-finite loss or an empty caption width")


SCALING_SWEEP_ENTRY = zoo.register(zoo.Entry(
    "tiny-clip-scaling-sweep", "the tiny CLIP's scaling sweep", SCALING_SWEEP, train_scaling_sweep, _load_sweep,
    _check_sweep, code=(heldout_loss, batch_widths, "mmbook.distill:student_config", "mmbook.contrastive"),
))  # fmt: skip
