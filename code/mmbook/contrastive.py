"""Contrastive language–image pretraining on the shapes world (Chapter 6; Chapters 7 and 10 reuse it).

The book's tiny CLIP is a ``transformers.CLIPModel`` built from a small ``CLIPConfig`` with the book's
word-level tokenizer (:func:`mmbook.data.tokenizer`) and a PIL image processor, so everything that loads
``openai/clip-vit-base-patch32`` (``CLIPModel.from_pretrained``, ``AutoProcessor``,
``pipeline("zero-shot-image-classification")``) loads it too. Its picture side upsamples the 32-pixel
shapes-world images to 48 pixels and cuts them into 16-pixel patches: one patch per grid cell.

- :func:`image_processor`, :func:`clip_config`, :func:`processor`: the model's parts, built offline.
- :func:`pixels`, :func:`tokens`: a whole dataset through the processor, once, as tensors.
- :func:`train_clip`: the training loop, minimising :func:`mmbook.losses.clip_loss`, with a learned or
  fixed temperature; it returns a :class:`History`.
- :func:`embed_images`, :func:`embed_texts`: L2-normalised embeddings in batches, without gradients.
- :func:`scene_relevance`: which gallery pictures a caption describes (for retrieval metrics).
- :func:`class_embeddings`: one text embedding per class from prompt templates (zero-shot classification).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mmbook.losses import clip_loss

if TYPE_CHECKING:
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor, PreTrainedTokenizerBase
    from transformers.models.clip import CLIPImageProcessorPil

#: Side of the processed pictures and of a patch: 3 × 3 patches, one per cell of the shapes-world grid.
IMAGE_SIZE, PATCH_SIZE = 48, 16
#: The largest logit scale (1 / temperature) that training allows, as in CLIP.
MAX_LOGIT_SCALE = 100.0


def image_processor(mean: Sequence[float], std: Sequence[float]) -> CLIPImageProcessorPil:
    """CLIP's PIL image processor, resizing to :data:`IMAGE_SIZE` and normalising with ``mean`` and ``std``."""
    from transformers.models.clip import CLIPImageProcessorPil

    return CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        image_mean=[float(m) for m in mean],
        image_std=[float(s) for s in std],
    )


def processor(images: np.ndarray) -> CLIPProcessor:
    """A ``CLIPProcessor``: the book's tokenizer and an image processor normalised with the channel
    statistics of ``images`` (uint8, N×H×W×3), the training pictures."""
    from transformers import CLIPProcessor

    from mmbook.data import tokenizer

    scaled = images.reshape(-1, 3).astype(np.float64) / 255
    return CLIPProcessor(image_processor=image_processor(scaled.mean(0), scaled.std(0)), tokenizer=tokenizer())


def clip_config(
    tok: PreTrainedTokenizerBase,
    *,
    text_hidden: int = 64,
    vision_hidden: int = 128,
    layers: int = 2,
    heads: int = 4,
    projection_dim: int = 64,
    max_length: int = 48,
) -> CLIPConfig:
    """A small ``CLIPConfig`` for the tokenizer ``tok``: MLPs twice as wide as the towers."""
    from transformers import CLIPConfig

    text = {
        "vocab_size": len(tok), "hidden_size": text_hidden, "intermediate_size": 2 * text_hidden,
        "num_hidden_layers": layers, "num_attention_heads": heads, "max_position_embeddings": max_length,
        "pad_token_id": tok.pad_token_id, "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id,
    }  # fmt: skip
    vision = {
        "hidden_size": vision_hidden, "intermediate_size": 2 * vision_hidden, "num_hidden_layers": layers,
        "num_attention_heads": heads, "image_size": IMAGE_SIZE, "patch_size": PATCH_SIZE,
    }  # fmt: skip
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)


def pixels(proc: Any, images: np.ndarray, batch_size: int = 2048) -> Tensor:
    """``pixel_values`` of every picture in ``images`` (N×H×W×3 uint8), through the processor."""
    parts = [
        proc(images=list(images[i : i + batch_size]), return_tensors="pt")["pixel_values"]
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(parts)


def tokens(proc: Any, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
    """``input_ids`` and ``attention_mask`` of ``texts``, padded to the longest."""
    tok = getattr(proc, "tokenizer", proc)
    batch = tok(list(texts), padding=True, return_tensors="pt")
    return batch["input_ids"], batch["attention_mask"]


@dataclass
class History:
    """What :func:`train_clip` measured: the loss and the logit scale after every step, and the time."""

    losses: list[float] = field(default_factory=list)
    logit_scales: list[float] = field(default_factory=list)
    seconds: float = 0.0


@torch.enable_grad()  # trains even when called under no_grad, e.g. on an app's first request
def train_clip(
    model: CLIPModel,
    pixel_values: Tensor,
    input_ids: Tensor,
    attention_mask: Tensor,
    *,
    steps: int = 400,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 0.1,
    learn_temperature: bool = True,
    seed: int = 0,
    progress: bool = True,
) -> History:
    """Train ``model`` on (picture, caption) pairs with CLIP's symmetric loss (Chapter 6).

    Every step draws ``batch_size`` random pairs; AdamW with a one-cycle schedule (10 % warm-up). With
    ``learn_temperature`` the logit scale is learned and clamped to at most :data:`MAX_LOGIT_SCALE`,
    otherwise it stays at its initial value. Each batch is cut to its longest caption.
    """
    from tqdm.auto import tqdm

    if not len(pixel_values) == len(input_ids) == len(attention_mask):
        raise ValueError(f"got {len(pixel_values)} pictures for {len(input_ids)} captions; pass pairs")
    if not 1 < batch_size <= len(pixel_values):
        raise ValueError(f"batch_size must be between 2 and the number of pairs ({len(pixel_values)}), "
                         f"got {batch_size}")
    model.logit_scale.requires_grad_(learn_temperature)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps, pct_start=0.1)
    generator = torch.Generator().manual_seed(seed)
    history = History()
    start = time.perf_counter()
    model.train()
    for _ in tqdm(range(steps), desc="training CLIP", leave=False, disable=not progress):
        rows = torch.randint(0, len(pixel_values), (batch_size,), generator=generator)
        mask = attention_mask[rows]
        width = int(mask.sum(1).max())
        out = model(input_ids=input_ids[rows, :width], attention_mask=mask[:, :width],
                    pixel_values=pixel_values[rows])
        loss = clip_loss(out.logits_per_text)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(MAX_LOGIT_SCALE))
        history.losses.append(loss.item())
        history.logit_scales.append(model.logit_scale.exp().item())
    history.seconds = time.perf_counter() - start
    model.logit_scale.requires_grad_(True)
    model.eval()
    return history


@torch.no_grad()
def embed_images(model: CLIPModel, pixel_values: Tensor, batch_size: int = 1024) -> Tensor:
    """L2-normalised image embeddings ``(N, projection_dim)``."""
    parts = [model.get_image_features(pixel_values=pixel_values[i : i + batch_size]).pooler_output
             for i in range(0, len(pixel_values), batch_size)]
    return F.normalize(torch.cat(parts), dim=-1)


@torch.no_grad()
def embed_texts(model: CLIPModel, input_ids: Tensor, attention_mask: Tensor, batch_size: int = 1024) -> Tensor:
    """L2-normalised text embeddings ``(N, projection_dim)``."""
    parts = [
        model.get_text_features(input_ids=input_ids[i : i + batch_size],
                                attention_mask=attention_mask[i : i + batch_size]).pooler_output
        for i in range(0, len(input_ids), batch_size)
    ]
    return F.normalize(torch.cat(parts), dim=-1)


def scene_key(objects: Sequence[dict[str, Any]]) -> frozenset[tuple[str, str, str]]:
    """What every caption of a scene states: the (shape, colour, cell) of each object.

    Sizes are left out because most captions do not mention them.
    """
    return frozenset((o["shape"], o["color"], o["position"]) for o in objects)


def scene_relevance(queries: Sequence[Sequence[dict[str, Any]]], gallery: Sequence[Sequence[dict[str, Any]]]) -> Tensor:
    """``(Q, G)`` booleans: gallery scene ``j`` shows what the caption of query scene ``i`` states."""
    keys = [scene_key(objects) for objects in gallery]
    return torch.tensor([[scene_key(objects) == key for key in keys] for objects in queries], dtype=torch.bool)


def class_embeddings(model: CLIPModel, proc: Any, labels: Sequence[str], templates: Sequence[str]) -> Tensor:
    """One unit vector per label: the normalised mean of its prompts' text embeddings (prompt ensembling)."""
    prompts = [template.format(label) for label in labels for template in templates]
    ids, mask = tokens(proc, prompts)
    per_prompt = embed_texts(model, ids, mask).view(len(labels), len(templates), -1)
    return F.normalize(per_prompt.mean(1), dim=-1)
