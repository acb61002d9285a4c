"""The book's tiny LM and tiny VLM as registry models: train, save, load and check (Chapter 11).

:func:`train_tiny_lm`, :func:`load_tiny_lm`, :func:`check_tiny_lm` with
:class:`~mmbook.vlm_train.TinyLMSettings`; :func:`train_tiny_vlm`, :func:`load_tiny_vlm`,
:func:`check_tiny_vlm` with :class:`~mmbook.vlm_train.TinyVLMSettings`, and the ablations Chapter 11
compares. The tiny VLM's folder holds a ``LlavaForConditionalGeneration`` and its ``LlavaProcessor``
(``from_pretrained``, ``AutoProcessor`` and ``pipeline("image-text-to-text", model=folder)`` load it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from mmbook import lm as lm_module
from mmbook import vlm as vlm_module
from mmbook import zoo
from mmbook.data.shapes import COLORS, make_shapes
from mmbook.env import training_state
from mmbook.lm import TinyLlama
from mmbook.vlm import TinyVLM
from mmbook.vlm_eval import evaluate, popular_ranking, world_statistics
from mmbook.vlm_train import TINY_LM, TINY_VLM, TinyLMSettings, TinyVLMSettings, pretrain_lm, train_vlm


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
_CODE = ("mmbook.lm", "mmbook.vlm", "mmbook.vlm_train", "mmbook.vlm_eval", "mmbook.tiny_vlm", "mmbook.data.instruct")
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
