"""Chapter 13's trained variants of the tiny CLIP, declared to :mod:`mmbook.zoo` and shipped like it.

- ``tiny-clip-student-distilled``: a CLIP half the tiny CLIP's width, distilled from it
  (:func:`mmbook.distill.distil_clip`) on the tiny CLIP's own training pairs, steps and batch size;
- ``tiny-clip-student-scratch``: the same student, data, steps and seed, trained on CLIP's loss alone;
- ``tiny-clip-lora-sweep``: the tiny CLIP fine-tuned for zero-shot classification with LoRA of several
  ranks and with full fine-tuning (:mod:`mmbook.lora`); what is saved is each run's measurements.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmbook import zoo
from mmbook.env import training_state
from mmbook.tiny_models import TINY_CLIP, _check_tiny_clip, _load_tiny_clip

# ----------------------------------------------------------------------------------------------------
# distillation: a student half the width of the tiny CLIP, with and without its teacher


@dataclass(frozen=True)
class StudentSettings:
    """How a student CLIP is trained (Chapter 13): its width as a fraction of the teacher's, whether the
    teacher's soft targets are used (``tau``, ``alpha``), and the tiny CLIP's own data and schedule."""

    distil: bool = True
    width: float = 0.5
    tau: float = 2.0
    alpha: float = 0.5
    n_pairs: int = TINY_CLIP.n_pairs
    data_seed: int = TINY_CLIP.data_seed
    max_shapes: int = TINY_CLIP.max_shapes
    split: str = TINY_CLIP.split
    steps: int = TINY_CLIP.steps
    batch_size: int = TINY_CLIP.batch_size
    lr: float = TINY_CLIP.lr
    seed: int = TINY_CLIP.seed


DISTILLED = StudentSettings()
SCRATCH = StudentSettings(distil=False)


@training_state()  # one thread: robust when other programs keep the cores busy
def train_student(folder: Path, settings: StudentSettings) -> dict[str, Any]:
    """Train a student CLIP on the tiny CLIP's training pairs, distilled from the tiny CLIP or not, and
    ``save_pretrained`` it with the teacher's processor; return its losses and time (Chapter 13)."""
    import torch
    from transformers import CLIPModel

    from mmbook import contrastive, distill
    from mmbook.data import make_shapes

    s = settings
    teacher, proc = zoo.load("tiny-clip")
    data = make_shapes(s.n_pairs, seed=s.data_seed, max_shapes=s.max_shapes, split=s.split)
    pixel_values = contrastive.pixels(proc, data.images)
    ids, mask = contrastive.tokens(proc, data.captions)
    targets = distill.teacher_embeddings(teacher, pixel_values, ids, mask) if s.distil else None
    torch.manual_seed(s.seed)
    student = CLIPModel(distill.student_config(proc.tokenizer, s.width))
    history = distill.distil_clip(student, pixel_values, ids, mask, targets, tau=s.tau, alpha=s.alpha,
                                  steps=s.steps, batch_size=s.batch_size, lr=s.lr, seed=s.seed)
    student.save_pretrained(folder)
    proc.save_pretrained(folder)
    return {"losses": history.losses, "logit_scales": history.logit_scales, "loop_seconds": history.seconds}


STUDENT_ENTRIES = tuple(
    zoo.register(zoo.Entry(name, what, settings, train_student, _load_tiny_clip, _check_tiny_clip,
                           code=("mmbook.distill", "mmbook.contrastive", "mmbook.tiny_models:train_tiny_clip")))
    for name, what, settings in [
        ("tiny-clip-student-distilled", "the tiny CLIP's distilled student", DISTILLED),
        ("tiny-clip-student-scratch", "the tiny CLIP's student trained without teacher", SCRATCH),
    ]
)  # fmt: skip


# ----------------------------------------------------------------------------------------------------
# LoRA: the tiny CLIP fine-tuned as a zero-shot classifier, LoRA of several ranks against full fine-tuning


@dataclass(frozen=True)
class LoraSweepSettings:
    """The fine-tuning task and runs of Chapter 13's rank sweep: one-shape pictures (``n_pictures``, drawn
    with ``data_seed``), classified by shape and colour through the tiny CLIP's zero-shot head."""

    ranks: tuple[int, ...] = (1, 2, 4, 8, 16)
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
    n_pictures: int = 2000
    data_seed: int = 11
    steps: int = 20
    batch_size: int = 64
    lora_lr: float = 3e-3
    full_lr: float = 3e-4
    seed: int = 0


LORA_SWEEP = LoraSweepSettings()
#: The file of the sweep's measurements in its model folder.
SWEEP_FILE = "sweep.json"


def zero_shot_loss(model: Any, proc: Any, pixel_values: Any, shapes: Any, colours: Any) -> Any:
    """Cross-entropy of the zero-shot shape and colour classifiers (Chapter 6's prompt ensembles) on a
    batch of one-shape pictures, differentiable through both towers (Chapter 13)."""
    import torch.nn.functional as F

    from mmbook import contrastive
    from mmbook.data import COLORS, SHAPE_KINDS
    from mmbook.experiments.clip_bench import COLOR_TEMPLATES, SHAPE_TEMPLATES

    images = F.normalize(model.get_image_features(pixel_values=pixel_values).pooler_output, dim=-1)
    loss = 0
    for labels, templates, truth in [(SHAPE_KINDS, SHAPE_TEMPLATES, shapes), (COLORS, COLOR_TEMPLATES, colours)]:
        prompts = [template.format(label) for label in labels for template in templates]
        ids, mask = contrastive.tokens(proc, prompts)
        texts = F.normalize(model.get_text_features(input_ids=ids, attention_mask=mask).pooler_output, dim=-1)
        classes = F.normalize(texts.view(len(labels), len(templates), -1).mean(1), dim=-1)
        loss = loss + F.cross_entropy(model.logit_scale.exp() * images @ classes.T, truth)
    return loss


@training_state()  # one thread: robust when other programs keep the cores busy
def train_lora_sweep(folder: Path, settings: LoraSweepSettings) -> dict[str, Any]:
    """Fine-tune copies of the tiny CLIP on one-shape pictures: full fine-tuning, and LoRA of each rank on
    the attention and MLP layers of both towers (:func:`mmbook.lora.add_lora`), merged afterwards; save
    every run's trained numbers, optimiser-state bytes, seconds, losses and test scores (Chapter 13)."""
    import copy
    import time

    import torch

    from mmbook import contrastive, lora
    from mmbook.data import COLORS, SHAPE_KINDS, make_shapes
    from mmbook.experiments.clip_bench import clip_scores, clip_test

    s = settings
    base, proc = zoo.load("tiny-clip")
    test = clip_test(proc)
    data = make_shapes(s.n_pictures, seed=s.data_seed, max_shapes=1)
    pixel_values = contrastive.pixels(proc, data.images)
    shapes = torch.tensor([list(SHAPE_KINDS).index(a[0]["shape"]) for a in data.attributes])
    colours = torch.tensor([list(COLORS).index(a[0]["color"]) for a in data.attributes])
    runs = [{"label": "before fine-tuning", "rank": 0, "trained": 0, "adam_bytes": 0, "tensors": 0,
             "seconds": 0.0, "losses": [], "scores": clip_scores(base, proc, test)}]  # fmt: skip
    for rank in (None, *s.ranks):
        torch.manual_seed(s.seed)
        model = copy.deepcopy(base)
        if rank is None:
            model.requires_grad_(True)
            lr, label = s.full_lr, "full fine-tuning"
        else:
            lora.add_lora(model, s.targets, rank, alpha=rank)
            lr, label = s.lora_lr, f"LoRA r={rank}"
        model.logit_scale.requires_grad_(False)
        params = [p for p in model.parameters() if p.requires_grad]
        optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
        generator = torch.Generator().manual_seed(s.seed)
        losses, start = [], time.perf_counter()
        model.train()
        for _ in range(s.steps):
            rows = torch.randint(0, len(pixel_values), (s.batch_size,), generator=generator)
            loss = zero_shot_loss(model, proc, pixel_values[rows], shapes[rows], colours[rows])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        seconds = time.perf_counter() - start
        model = lora.merge_lora(model).eval()
        runs.append({"label": label, "rank": rank or -1, "trained": sum(p.numel() for p in params),
                     "adam_bytes": lora.adam_state_bytes(optimiser), "tensors": len(params), "seconds": seconds,
                     "losses": losses, "scores": clip_scores(model, proc, test)})  # fmt: skip
    (folder / SWEEP_FILE).write_text(json.dumps(runs))
    return {}


def _load_sweep(folder: Path) -> list[dict[str, Any]]:
    return json.loads((folder / SWEEP_FILE).read_text())


def _check_sweep(runs: list[dict[str, Any]]) -> None:
    import math

    if len(runs) != len(LORA_SWEEP.ranks) + 2:
        raise ValueError(f"the sweep holds {len(runs)} runs, not {len(LORA_SWEEP.ranks) + 2}")
    if not all(math.isfinite(v) for run in runs for v in run["scores"].values()):
        raise ValueError("the sweep has non-finite scores")


LORA_SWEEP_ENTRY = zoo.register(zoo.Entry(
    "tiny-clip-lora-sweep", "the tiny CLIP's LoRA rank sweep", LORA_SWEEP, train_lora_sweep, _load_sweep,
    _check_sweep, code=("mmbook.lora", zero_shot_loss, "mmbook.experiments.clip_bench", "mmbook.contrastive",
                        "mmbook.tiny_models:train_tiny_clip"),
))  # fmt: skip
