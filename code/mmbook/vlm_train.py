"""Training and measuring the book's tiny vision-language model: the LLaVA recipe on a CPU (Chapter 11).

1. **Text pretraining** (:func:`pretrain_lm`): :class:`mmbook.lm.TinyLlama` learns shapes-world text
   (captions, questions with their answers, descriptions), as LLaVA starts from a pretrained LM.
2. **Stage 1, feature alignment** (:func:`align`): vision tower and LM frozen, only the projector learns,
   on picture–caption pairs (:func:`mmbook.data.instruct.caption_pairs`).
3. **Stage 2, visual instruction tuning** (:func:`instruct_tune`): projector and LM learn (all weights, or
   LoRA adapters through ``peft`` on the attention and MLP projections) on the conversations of
   :func:`mmbook.data.instruct.instructions`, the loss masked to the answer tokens.

:func:`train_vlm` runs all three (or an ablation: ``blind`` pictures, ``skip_stage1``, ``lora``) from a frozen
:class:`TinyVLMSettings`; :func:`evaluate` answers held-out scenes greedily and reports colour, count,
POPE (random, popular, adversarial; noisy and blank pictures) and describe scores. The frozen vision tower
runs once per picture before training (its features never change), which is what makes a CPU minute enough.

Registry functions (for :mod:`mmbook.zoo`): :func:`train_tiny_lm`, :func:`load_tiny_lm`,
:func:`check_tiny_lm` with :class:`TinyLMSettings`; :func:`train_tiny_vlm`, :func:`load_tiny_vlm`,
:func:`check_tiny_vlm` with :class:`TinyVLMSettings`. The tiny VLM's folder holds a
``LlavaForConditionalGeneration`` and its ``LlavaProcessor`` (``from_pretrained``, ``AutoProcessor`` and
``pipeline("image-text-to-text", model=folder)`` load it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from mmbook import lm as lm_module
from mmbook import vlm as vlm_module
from mmbook import zoo
from mmbook.data import instruct
from mmbook.data.shapes import COLORS, TRAIN_COMBINATIONS, Shapes, make_shapes
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
CANDIDATES: list[instruct.Pair] = list(TRAIN_COMBINATIONS)


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
    turns = instruct.instructions(scenes, CANDIDATES, seed=seed, kinds=("exists",), exists_pairs=exists_pairs)
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
        scenes = _training_scenes(s)
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
        turns = instruct.instructions(scenes, CANDIDATES, seed=s.seed, near_miss_share=s.near_miss_share,
                                      exists_pairs=s.exists_pairs)  # fmt: skip
        stage2 = instruct_tune(model, conversation_batches(turns, tok, model.n_image_tokens), features, s)
        times["stage2"] = time.perf_counter() - start
        record["stage2_losses"] = stage2["losses"]
        record["trainable_parameters"] = {"stage1": sum(p.numel() for p in model.projector.parameters()),
                                          "stage2": stage2["trainable_parameters"]}  # fmt: skip
        record["seconds"] = times
        record["train_seconds"] = sum(times.values())
        return {"model": model.eval(), "image_processor": image_processor, "tokenizer": tok, **record}


# ----------------------------------------------------------------------------------------------------
# evaluation


@torch.no_grad()
def answer_batch(
    model: TinyVLM, tokenizer: Any, pixel_values: Tensor, questions: list[str], max_new_tokens: int,
    batch_size: int = 256,
) -> list[str]:  # fmt: skip
    """Greedy answers to ``questions`` about the pictures ``pixel_values`` (one each), prompts padded on the
    left (Chapter 11)."""
    model.eval()
    out = []
    for s in range(0, len(questions), batch_size):
        texts = [vlm_module.expand_image(vlm_module.prompt_text(tokenizer, q), model.n_image_tokens)
                 for q in questions[s : s + batch_size]]  # fmt: skip
        rows = tokenizer(texts, add_special_tokens=False)["input_ids"]
        width = max(len(r) for r in rows)
        ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(r)) + r for r in rows])
        mask = (torch.arange(width) >= torch.tensor([width - len(r) for r in rows])[:, None]).long()
        new = model.generate(pixel_values[s : s + batch_size], ids, mask, max_new_tokens=max_new_tokens,
                             eos_token_id=tokenizer.eos_token_id)  # fmt: skip
        out.extend(tokenizer.decode(row, skip_special_tokens=True).strip() for row in new)
    return out


def _pixels(image_processor: Any, images: np.ndarray) -> Tensor:
    return image_processor(images=list(images), return_tensors="pt")["pixel_values"]


def pope_scores(answers: list[str], truths: list[str]) -> dict[str, float]:
    """POPE's accuracy, precision, recall, F1 and "yes" rate of yes/no ``answers`` (Chapter 11)."""
    said = np.array([a.split()[:1] == ["yes"] for a in answers])
    truth = np.array([t == "yes" for t in truths])
    tp = float((said & truth).sum())
    precision = tp / max(1, said.sum())
    recall = tp / max(1, truth.sum())
    return {
        "accuracy": float((said == truth).mean()), "precision": precision, "recall": recall,
        "f1": 2 * precision * recall / max(1e-12, precision + recall), "yes_rate": float(said.mean()),
    }  # fmt: skip


@dataclass(frozen=True)
class EvalSettings:
    """Which held-out scenes :func:`evaluate` asks about (fresh seeds: pictures training never saw)."""

    n_scenes: int = 300
    n_single: int = 200
    seed: int = 1001
    max_shapes: int = 4
    split: str = "train"
    noise_std: float = 60.0


def _training_scenes(settings: TinyVLMSettings) -> Shapes:
    return make_shapes(settings.n_scenes, seed=settings.data_seed, max_shapes=settings.max_shapes, split="train")


def popular_ranking(settings: TinyVLMSettings = TINY_VLM) -> list[instruct.Pair]:
    """The candidate objects, most frequent in the stage-2 training pictures first (ties in table order)."""
    counts = instruct.object_frequency(_training_scenes(settings))
    return sorted(CANDIDATES, key=lambda c: -counts[c])


def world_statistics(settings: TinyVLMSettings = TINY_VLM) -> dict[str, float]:
    """How flat object frequencies and co-occurrences of the training pictures are: the least and most
    frequent candidate (pictures containing it) and the least and most frequent ordered pair of
    candidates in one picture (Chapter 11; why "adversarial" means near misses here)."""
    scenes = _training_scenes(settings)
    freq, co = instruct.object_frequency(scenes), instruct.cooccurrence(scenes)
    pair_counts = [co[(a, b)] for a in CANDIDATES for b in CANDIDATES if a != b]
    return {"frequency_min": min(freq[c] for c in CANDIDATES), "frequency_max": max(freq[c] for c in CANDIDATES),
            "cooccurrence_min": min(pair_counts), "cooccurrence_max": max(pair_counts)}  # fmt: skip


def evaluate(
    model: TinyVLM, tokenizer: Any, image_processor: Any, settings: EvalSettings = EvalSettings(),
    popular: list[instruct.Pair] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Greedy answers on held-out scenes (Chapter 11): ``color`` (exact colour word, one-shape pictures),
    ``count``, ``pope`` per setting (accuracy, precision, recall, F1, yes rate), ``pope_noisy`` and
    ``pope_blank`` (random setting; on blank pictures every object is absent), ``describe`` (truth rate,
    completeness, exact rate)."""
    e = settings
    popular = popular or popular_ranking()
    scenes = make_shapes(e.n_scenes, seed=e.seed, max_shapes=e.max_shapes, split=e.split)
    single = make_shapes(e.n_single, seed=e.seed + 1, max_shapes=1, split=e.split)
    pixels, single_pixels = _pixels(image_processor, scenes.images), _pixels(image_processor, single.images)
    result: dict[str, Any] = {}

    def ask(px: Tensor, turns: list[instruct.Turn], max_new: int) -> list[str]:
        return answer_batch(model, tokenizer, px[[t.image for t in turns]], [t.question for t in turns], max_new)

    def accuracy(answers: list[str], turns: list[instruct.Turn]) -> float:
        return float(np.mean([a == t.answer for a, t in zip(answers, turns, strict=True)]))

    color = instruct.instructions(single, CANDIDATES, kinds=("color",))
    result["color"] = accuracy(ask(single_pixels, color, 3), color)
    count = instruct.instructions(scenes, CANDIDATES, kinds=("count",))
    result["count"] = accuracy(ask(pixels, count, 3), count)
    result["pope"] = {}
    for setting in instruct.POPE_SETTINGS:
        turns = instruct.pope(scenes, setting, CANDIDATES, popular, seed=e.seed)
        result["pope"][setting] = pope_scores(ask(pixels, turns, 3), [t.answer for t in turns])
    turns = instruct.pope(scenes, "random", CANDIDATES, popular, seed=e.seed)
    rng = np.random.default_rng(e.seed)
    noisy = np.clip(scenes.images + rng.normal(0, e.noise_std, scenes.images.shape), 0, 255).astype(np.uint8)
    result["pope_noisy"] = pope_scores(ask(_pixels(image_processor, noisy), turns, 3), [t.answer for t in turns])
    blank = np.full_like(scenes.images, 30)
    answers = ask(_pixels(image_processor, blank), turns, 3)
    result["pope_blank"] = pope_scores(answers, ["no"] * len(turns))
    describe = instruct.instructions(scenes, CANDIDATES, kinds=("describe",))
    captions = ask(pixels, describe, 24)
    scores = [instruct.describe_score(c, scenes.attributes[t.image]) for c, t in zip(captions, describe, strict=True)]
    result["describe"] = {k: float(np.mean([s[k] for s in scores])) for k in ("true", "complete", "exact")}
    result["describe_examples"] = captions[:5]
    return result


# ----------------------------------------------------------------------------------------------------
# the registry's train, load and check


def train_tiny_lm(folder: Path, settings: TinyLMSettings = TINY_LM) -> dict[str, Any]:
    """Pretrain the tiny LM and save it as a ``LlamaForCausalLM`` with its tokenizer (Chapter 11)."""
    with training_state():
        start = time.perf_counter()
        model, losses = pretrain_lm(settings)
        seconds = time.perf_counter() - start
        lm_module.to_llama(model).save_pretrained(folder)
        lm_module.tokenizer().save_pretrained(folder)
    return {"losses": losses, "train_seconds": seconds,
            "parameters": sum(p.numel() for p in model.parameters())}  # fmt: skip


def load_tiny_lm(folder: Path) -> tuple[TinyLlama, Any]:
    """The tiny LM as ``(TinyLlama, tokenizer)``, read from its ``LlamaForCausalLM`` folder (Chapter 11)."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    return lm_module.from_llama(LlamaForCausalLM.from_pretrained(folder)), AutoTokenizer.from_pretrained(folder)


def check_tiny_lm(loaded: tuple[TinyLlama, Any]) -> None:
    """Raise unless the tiny LM continues "what color is the circle?" with a colour word (Chapter 11)."""
    model, tok = loaded
    ids = tok(f"{tok.bos_token} what color is the circle ?", add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        logits = model(ids["input_ids"])
    if not torch.isfinite(logits).all():
        raise ValueError("the tiny LM gives non-finite logits")
    word = tok.decode(logits[0, -1].argmax())
    if word not in COLORS:
        raise ValueError(f"the tiny LM answers a colour question with {word!r}")


def train_tiny_vlm(folder: Path, settings: TinyVLMSettings = TINY_VLM) -> dict[str, Any]:
    """Train the tiny VLM (:func:`train_vlm`), measure it (:func:`evaluate`) and save it as a
    ``LlavaForConditionalGeneration`` with its ``LlavaProcessor`` (Chapter 11)."""
    shared_lm = zoo.load("tiny-lm")[0] if settings.lm == TINY_LM else None  # the registered LM, when it fits
    out = train_vlm(settings, language_model=shared_lm)
    with training_state():
        scores = evaluate(out["model"], out["tokenizer"], out["image_processor"], popular=popular_ranking(settings))
    llava, processor = vlm_module.to_transformers(out["model"], out["tokenizer"], out["image_processor"])
    llava.save_pretrained(folder)
    processor.save_pretrained(folder)
    extras = {k: v for k, v in out.items() if k not in ("model", "image_processor", "tokenizer")}
    return {**extras, "scores": scores, "world": world_statistics(settings)}


def load_tiny_vlm(folder: Path) -> tuple[TinyVLM, Any]:
    """The tiny VLM as ``(TinyVLM, LlavaProcessor)``, read from its LLaVA folder (Chapter 11)."""
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    llava = LlavaForConditionalGeneration.from_pretrained(folder)
    return vlm_module.from_transformers(llava), AutoProcessor.from_pretrained(folder)


def check_tiny_vlm(loaded: tuple[TinyVLM, Any]) -> None:
    """Raise unless the tiny VLM names the colour of a one-shape picture (Chapter 11)."""
    model, processor = loaded
    scene = make_shapes(1, seed=7, max_shapes=1, split="train")
    o = scene.attributes[0][0]
    answer = vlm_module.ask(model, processor, scene.images[0], f"what color is the {o['shape']}?", 3)
    if answer not in COLORS:
        raise ValueError(f"the tiny VLM answers a colour question with {answer!r}")


def ablations(settings: TinyVLMSettings = TINY_VLM) -> Iterator[tuple[str, TinyVLMSettings]]:
    """The variants Chapter 11 compares: the recipe, LoRA, no stage 1, blind."""
    yield "full", settings
    yield "lora", replace(settings, lora=True)
    yield "skip stage 1", replace(settings, skip_stage1=True)
    yield "blind", replace(settings, blind=True)


#: The code whose source decides whether a cached tiny LM or VLM is still valid (an edit retrains).
_CODE = ("mmbook.lm", "mmbook.vlm", "mmbook.vlm_train", "mmbook.data.instruct")
TINY_LM_ENTRY = zoo.register(zoo.Entry("tiny-lm", "the tiny language model", TINY_LM, train_tiny_lm, load_tiny_lm,
                                       check_tiny_lm, code=_CODE))
TINY_VLM_ENTRY = zoo.register(zoo.Entry("tiny-vlm", "the tiny VLM", TINY_VLM, train_tiny_vlm, load_tiny_vlm,
                                        check_tiny_vlm, code=_CODE))
#: Chapter 11's ablations ("tiny-vlm-lora", "tiny-vlm-skip-stage-1", "tiny-vlm-blind"), trained once and cached;
#: the chapter reads their records (scores, trainable parameters, seconds, losses).
ABLATION_ENTRIES = [
    zoo.register(zoo.Entry(f"tiny-vlm-{label.replace(' ', '-')}", f"the tiny VLM ({label})", variant,
                           train_tiny_vlm, load_tiny_vlm, check_tiny_vlm, code=_CODE))
    for label, variant in ablations() if label != "full"
]  # fmt: skip
