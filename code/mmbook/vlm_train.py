"""Training and measuring the book's tiny vision-language model: the LLaVA recipe on a CPU (Chapter 11).

1. **Text pretraining** (:func:`pretrain_lm`): :class:`mmbook.lm.TinyLlama` learns shapes-world text
   (captions, questions with their answers, descriptions), as LLaVA starts from a pretrained LM.
2. **Stage 1, feature alignment** (:func:`align`): vision tower and LM frozen, only the projector learns,
   on picture–caption pairs (:func:`mmbook.data.instruct.caption_pairs`).
3. **Stage 2, visual instruction tuning** (:func:`instruct_tune`): projector and LM learn (all weights, or
   LoRA adapters through ``peft`` on the attention and MLP projections) on the conversations of
   :func:`mmbook.data.instruct.instructions`, the loss masked to the answer tokens.

:func:`train_vlm` runs all three (or an ablation: ``blind`` pictures, ``skip_stage1``, ``lora``) from a frozen
:class:`TinyVLMSettings`. The frozen vision tower runs once per picture before training (its features never
change), which is what makes a CPU minute enough. :mod:`mmbook.vlm_eval` measures the result;
:mod:`mmbook.tiny_vlm` declares the trained models to :mod:`mmbook.zoo`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from mmbook import lm as lm_module
from mmbook import vlm as vlm_module
from mmbook import zoo
from mmbook.data import instruct
from mmbook.data.shapes import Shapes, make_shapes
from mmbook.env import training_state
from mmbook.lm import TinyLlama
from mmbook.vlm import TinyVLM


@dataclass(frozen=True)
class TinyLMSettings:
    """How the tiny LM is built and pretrained on shapes-world text (Chapter 11)."""

    hidden: int = 64
    layers: int = 2
    heads: int = 4
    intermediate: int = 128
    n_scenes: int = 3000
    data_seed: int = 21
    max_shapes: int = 4
    steps: int = 100
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0
    exists_pairs: int = 0  # "is there ...?" texts per scene, present and absent (:func:`text_corpus`)


@dataclass(frozen=True)
class TinyVLMSettings:
    """How the tiny VLM is built and trained; the flags at the end select the ablations (Chapter 11)."""

    lm: TinyLMSettings = field(default_factory=TinyLMSettings)
    feature_layer: int | tuple[int, ...] = -1
    strategy: str = "full"
    n_scenes: int = 6000
    data_seed: int = 22
    max_shapes: int = 4
    batch_size: int = 64
    stage1_steps: int = 100
    stage1_lr: float = 3e-3
    stage2_steps: int = 600
    stage2_lr: float = 3e-3
    near_miss_share: float = 0.5
    lora_rank: int = 16
    lora_lr: float = 5e-3
    seed: int = 0
    exists_pairs: int = 1  # stage-2 "is there ...?" turns per picture, each a present and an absent object
    turn_loss: bool = False  # stage-2 loss averaged per conversation, not per answer token (:func:`_turn_loss`)
    lora: bool = False
    skip_stage1: bool = False
    blind: bool = False


TINY_LM = TinyLMSettings()
TINY_VLM = TinyVLMSettings()


# ----------------------------------------------------------------------------------------------------
# data as tensors


@dataclass
class Batches:
    """Token ids (right-padded), attention mask, labels (-100 outside the loss) and the picture of each row."""

    input_ids: Tensor
    attention_mask: Tensor
    labels: Tensor
    image: Tensor

    def sample(self, generator: torch.Generator, size: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """A random batch of ``size`` rows, cut to its longest row."""
        rows = torch.randint(0, len(self.input_ids), (size,), generator=generator)
        width = int(self.attention_mask[rows].sum(1).max())
        return (self.input_ids[rows, :width], self.attention_mask[rows, :width], self.labels[rows, :width],
                self.image[rows])  # fmt: skip


def _pad(rows: list[list[int]], pad: int) -> tuple[Tensor, Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask


def conversation_batches(turns: list[instruct.Turn], tokenizer: Any, n_image_tokens: int) -> Batches:
    """Every turn as a chat-template sequence whose labels are the answer tokens and ``</s>`` (Chapter 11)."""
    full = [vlm_module.expand_image(vlm_module.prompt_text(tokenizer, t.question, t.answer), n_image_tokens)
            for t in turns]  # fmt: skip
    prompts = [vlm_module.expand_image(vlm_module.prompt_text(tokenizer, t.question), n_image_tokens)
               for t in turns]  # fmt: skip
    ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    starts = [len(p) for p in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    input_ids, mask = _pad(ids, tokenizer.pad_token_id)
    positions = torch.arange(input_ids.shape[1])
    keep = (positions >= torch.tensor(starts)[:, None]) & mask.bool()
    labels = input_ids.masked_fill(~keep, -100)
    return Batches(input_ids, mask, labels, torch.tensor([t.image for t in turns]))


def text_corpus(scenes: Shapes, exists_pairs: int = 0, seed: int = 0) -> list[str]:
    """Shapes-world text for the LM's pretraining: each caption, each question followed by its answer, and
    each picture's description, and ``exists_pairs`` times a present and an absent object asked about it in
    the order of a VLM prompt, question, picture, answer ("is there a red square? a red circle. no"): the LM
    learns to match a colour–kind pair against a list (Chapter 11)."""
    texts = list(scenes.captions)
    turns = instruct.instructions(scenes, instruct.CANDIDATES, seed=seed, kinds=("exists",), exists_pairs=exists_pairs)
    asked: dict[int, list[tuple[str, str]]] = {}
    for t in turns:
        asked.setdefault(t.image, []).append((t.question, t.answer))
    for i, (qs, ans, objects) in enumerate(zip(scenes.questions, scenes.answers, scenes.attributes, strict=True)):
        texts.extend(f"{q} {a}" for q, a in zip(qs, ans, strict=True))
        texts.append(f"{instruct.DESCRIBE_QUESTION} {instruct.describe(objects)}")
        texts.extend(f"{q} {instruct.describe(objects)} {a}" for q, a in asked.get(i, []))
    return texts


def image_features(model: TinyVLM, image_processor: Any, images: np.ndarray, batch_size: int = 1024) -> Tensor:
    """The frozen tower's features of every picture (N×n_image_tokens×D), computed once (Chapter 11)."""
    parts = []
    for s in range(0, len(images), batch_size):
        pixels = image_processor(images=list(images[s : s + batch_size]), return_tensors="pt")["pixel_values"]
        parts.append(model.image_features(pixels))
    return torch.cat(parts)


# ----------------------------------------------------------------------------------------------------
# the training loops


def _cosine(step: int, steps: int, warmup: int = 10) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def _loop(params: list[Tensor], steps: int, lr: float, desc: str, loss_of: Any, seed: int) -> list[float]:
    """AdamW with warm-up and cosine decay over ``steps``; ``loss_of(generator)`` computes one batch's loss."""
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: _cosine(s, steps))
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in tqdm(range(steps), desc=desc, leave=False):
        loss = loss_of(generator)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
    return losses


@torch.enable_grad()
def pretrain_lm(settings: TinyLMSettings = TINY_LM) -> tuple[TinyLlama, list[float]]:
    """A :class:`TinyLlama` trained on :func:`text_corpus` of ``settings.n_scenes`` scenes (Chapter 11)."""
    s, tok = settings, lm_module.tokenizer()
    scenes = make_shapes(s.n_scenes, seed=s.data_seed, max_shapes=s.max_shapes, split="train")
    texts = [f"{tok.bos_token} {t} {tok.eos_token}" for t in text_corpus(scenes, s.exists_pairs, s.seed)]
    ids, mask = _pad(tok(texts, add_special_tokens=False)["input_ids"], tok.pad_token_id)
    labels = ids.masked_fill(mask == 0, -100)
    torch.manual_seed(s.seed)
    model = vlm_module.new_language_model(tok, hidden=s.hidden, layers=s.layers, heads=s.heads,
                                          intermediate=s.intermediate).train()  # fmt: skip

    def loss_of(generator: torch.Generator) -> Tensor:
        rows = torch.randint(0, len(ids), (s.batch_size,), generator=generator)
        width = int(mask[rows].sum(1).max())
        logits = model(ids[rows, :width], mask[rows, :width])
        return lm_module.next_token_loss(logits, labels[rows, :width])

    losses = _loop(list(model.parameters()), s.steps, s.lr, "pretraining the tiny LM", loss_of, s.seed)
    return model.eval(), losses


def _turn_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """The next-token loss averaged over each row's answer tokens, then over the rows: every conversation
    weighs the same, a one-word "yes" as much as a fifteen-word description (Chapter 11)."""
    targets = labels[:, 1:]
    losses = torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2).float(), targets.clamp(min=0), reduction="none"
    )
    keep = (targets != -100).float()
    return ((losses * keep).sum(1) / keep.sum(1).clamp(min=1)).mean()


def _vlm_loss(model: TinyVLM, data: Batches, features: Tensor, size: int, per_turn: bool = False) -> Any:
    def loss_of(generator: torch.Generator) -> Tensor:
        ids, mask, labels, image = data.sample(generator, size)
        if per_turn:
            return _turn_loss(model(None, ids, mask, image_features=features[image]).logits, labels)
        return model(None, ids, mask, labels, image_features=features[image]).loss

    return loss_of


@torch.enable_grad()
def align(model: TinyVLM, data: Batches, features: Tensor, settings: TinyVLMSettings) -> list[float]:
    """Stage 1: train only the projector on picture–caption ``data`` (Chapter 11)."""
    model.language_model.requires_grad_(False)
    model.projector.requires_grad_(True)
    model.train()
    params = list(model.projector.parameters())
    loss_of = _vlm_loss(model, data, features, settings.batch_size)
    losses = _loop(params, settings.stage1_steps, settings.stage1_lr, "stage 1: alignment", loss_of, settings.seed)
    return losses


LORA_TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@torch.enable_grad()
def instruct_tune(model: TinyVLM, data: Batches, features: Tensor, settings: TinyVLMSettings) -> dict[str, Any]:
    """Stage 2: train the projector and the LM (all weights, or LoRA adapters merged back afterwards) on the
    conversations ``data``; returns the losses and the number of trainable parameters (Chapter 11)."""
    model.projector.requires_grad_(True)
    lr = settings.stage2_lr
    if settings.lora:
        from peft import LoraConfig, get_peft_model

        lm = model.language_model
        lm.requires_grad_(False)
        config = LoraConfig(r=settings.lora_rank, lora_alpha=settings.lora_rank, target_modules=list(LORA_TARGETS),
                            lora_dropout=0.0, bias="none")  # fmt: skip
        peft_model = get_peft_model(lm, config)
        model.language_model = peft_model.base_model.model  # the same TinyLlama, its layers now wrapped
        lr = settings.lora_lr
    else:
        model.language_model.requires_grad_(True)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    trainable = sum(p.numel() for p in params)
    loss_of = _vlm_loss(model, data, features, settings.batch_size, settings.turn_loss)
    losses = _loop(params, settings.stage2_steps, lr, "stage 2: instruction tuning", loss_of, settings.seed + 1)
    if settings.lora:
        model.language_model = peft_model.merge_and_unload()
    model.requires_grad_(False)
    return {"losses": losses, "trainable_parameters": trainable}


def tiny_clip_parts() -> tuple[Any, Any]:
    """The tiny CLIP's vision tower (a ``CLIPVisionModel``) and image processor (Chapter 6's model)."""
    from transformers import CLIPVisionModel

    clip, proc = zoo.tiny_clip()
    tower = CLIPVisionModel(clip.config.vision_config)
    tower.load_state_dict(clip.vision_model.state_dict())
    return tower.eval(), proc.image_processor


def train_vlm(
    settings: TinyVLMSettings = TINY_VLM,
    language_model: TinyLlama | None = None,
    vision: tuple[Any, Any] | None = None,
) -> dict[str, Any]:
    """Pretrain the LM (unless ``language_model`` is given; it is copied), then run stage 1 and stage 2 as
    ``settings`` say (Chapter 11). ``vision`` is ``(CLIPVisionModel, image processor)``, by default
    :func:`tiny_clip_parts`. Returns ``model``, ``image_processor``, ``tokenizer``, the losses of each
    stage, the seconds of each and the trainable parameter counts. Deterministic for fixed settings; the
    caller's random state, thread count and determinism flags are left as they were."""
    import copy

    with training_state():
        s, tok = settings, lm_module.tokenizer()
        times, record = {}, {}
        start = time.perf_counter()
        if language_model is None:
            language_model, record["lm_losses"] = pretrain_lm(s.lm)
        else:
            language_model = copy.deepcopy(language_model)
        times["lm"] = time.perf_counter() - start

        tower, image_processor = vision or tiny_clip_parts()
        torch.manual_seed(s.seed)
        model = TinyVLM(tower, language_model, tok.image_token_id, feature_layer=s.feature_layer,
                        strategy=s.strategy)  # fmt: skip
        start = time.perf_counter()
        scenes = training_scenes(s)
        features = image_features(model, image_processor, scenes.images)
        if s.blind:
            features = torch.zeros_like(features)
        times["features"] = time.perf_counter() - start

        start = time.perf_counter()
        if not s.skip_stage1:
            captions = conversation_batches(instruct.caption_pairs(scenes), tok, model.n_image_tokens)
            record["stage1_losses"] = align(model, captions, features, s)
        times["stage1"] = time.perf_counter() - start

        start = time.perf_counter()
        turns = instruct.instructions(scenes, instruct.CANDIDATES, seed=s.seed, near_miss_share=s.near_miss_share,
                                      exists_pairs=s.exists_pairs)  # fmt: skip
        stage2 = instruct_tune(model, conversation_batches(turns, tok, model.n_image_tokens), features, s)
        times["stage2"] = time.perf_counter() - start
        record["stage2_losses"] = stage2["losses"]
        record["trainable_parameters"] = {"stage1": sum(p.numel() for p in model.projector.parameters()),
                                          "stage2": stage2["trainable_parameters"]}  # fmt: skip
        record["seconds"] = times
        record["train_seconds"] = sum(times.values())
        return {"model": model.eval(), "image_processor": image_processor, "tokenizer": tok, **record}


def training_scenes(settings: TinyVLMSettings = TINY_VLM) -> Shapes:
    """The stage-2 training pictures of ``settings`` (Chapter 11; POPE's "popular" ranks objects by them)."""
    return make_shapes(settings.n_scenes, seed=settings.data_seed, max_shapes=settings.max_shapes, split="train")
