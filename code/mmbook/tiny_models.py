"""The book's offline stand-ins for two hub models, declared to :mod:`mmbook.zoo` (Chapters 1 and 6).

- the tiny GPT-2 (Chapter 1's text generator), for ``openai-community/gpt2``: a byte-level BPE and a
  two-layer ``GPT2LMHeadModel`` trained on shapes-world captions;
- the tiny CLIP (Chapter 6, used by Chapters 7, 8, 10 and 11), for ``openai/clip-vit-base-patch32``: a
  ``CLIPModel`` trained contrastively on shapes-world pairs with :func:`mmbook.contrastive.train_clip`.

Their accessors (``zoo.tiny_gpt2_path()``, ``zoo.tiny_clip_path()``, ``zoo.tiny_clip()``) stay in
:mod:`mmbook.zoo`, where chapters and readers call them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmbook import zoo
from mmbook.env import training_state

# ----------------------------------------------------------------------------------------------------
# tiny GPT-2: the offline stand-in for openai-community/gpt2


@dataclass(frozen=True)
class TinyGPT2Settings:
    """How the tiny GPT-2 is trained (Chapter 1)."""

    n_captions: int = 4000
    vocab_size: int = 400
    layers: int = 2
    hidden: int = 64
    heads: int = 4
    steps: int = 150
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0


#: The tiny GPT-2's settings; a cached model saved with other settings is retrained.
TINY_GPT2 = TinyGPT2Settings()


def caption_corpus(n: int = 4000, seed: int = 0) -> list[str]:
    """Shapes-world captions used to train the tiny GPT-2 (Chapter 1)."""
    from mmbook.data import make_shapes

    return make_shapes(n, seed=seed).captions


@training_state(threads=None)
def train_tiny_gpt2(folder: Path, settings: TinyGPT2Settings = TINY_GPT2) -> dict[str, Any]:
    """Train a small GPT-2 on shapes-world captions and ``save_pretrained`` it to ``folder``; return its
    losses (Chapter 1)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from tqdm.auto import tqdm
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    s = settings
    torch.manual_seed(s.seed)
    corpus = caption_corpus(s.n_captions, seed=s.seed)
    eos = "<|endoftext|>"
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        corpus,
        trainers.BpeTrainer(vocab_size=s.vocab_size, special_tokens=[eos],
                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()),
    )  # fmt: skip
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=eos, bos_token=eos, pad_token=eos)

    ids = [tokenizer(text + eos)["input_ids"] for text in corpus]
    width = max(len(x) for x in ids)
    batch = torch.full((len(ids), width), tokenizer.eos_token_id)
    mask = torch.zeros_like(batch)
    for i, row in enumerate(ids):
        batch[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    labels = batch.masked_fill(mask == 0, -100)

    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=64, n_embd=s.hidden, n_layer=s.layers, n_head=s.heads,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    model = GPT2LMHeadModel(config)
    optimiser = torch.optim.AdamW(model.parameters(), lr=s.lr)
    generator = torch.Generator().manual_seed(s.seed)
    losses = []
    model.train()
    for _ in tqdm(range(s.steps), desc="training tiny GPT-2", leave=False):
        rows = torch.randint(0, len(ids), (s.batch_size,), generator=generator)
        loss = model(input_ids=batch[rows], attention_mask=mask[rows], labels=labels[rows]).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    model.eval()
    model.generation_config.pad_token_id = tokenizer.eos_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return {"losses": losses}


def _load_causal_lm(folder: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


def _check_causal_lm(loaded: tuple[Any, Any]) -> None:
    import torch

    model, tokenizer = loaded
    with torch.no_grad():
        logits = model(**tokenizer(["a red circle"], return_tensors="pt")).logits
    if not torch.isfinite(logits).all():
        raise ValueError("the saved weights give non-finite logits")


TINY_GPT2_ENTRY = zoo.register(zoo.Entry("tiny-gpt2", "the tiny GPT-2", TINY_GPT2, train_tiny_gpt2, _load_causal_lm,
                                 _check_causal_lm, code=(caption_corpus,)))


# ----------------------------------------------------------------------------------------------------
# tiny CLIP: the offline stand-in for openai/clip-vit-base-patch32


@dataclass(frozen=True)
class TinyClipSettings:
    """How the tiny CLIP is trained: data, steps, batch, learning rate and seed (Chapter 6)."""

    n_pairs: int = 20000
    data_seed: int = 1
    max_shapes: int = 3
    split: str = "train"
    steps: int = 400
    batch_size: int = 256
    lr: float = 1e-3
    seed: int = 0


#: The tiny CLIP's settings; a cached model saved with other settings is retrained.
TINY_CLIP = TinyClipSettings()


@training_state(threads=None)
def train_tiny_clip(folder: Path, settings: TinyClipSettings = TINY_CLIP) -> dict[str, Any]:
    """Train the tiny CLIP on shapes-world pairs and ``save_pretrained`` model and processor; return the
    loss and logit scale after every step and the training time (Chapter 6).

    The pairs come from ``split="train"``, so the held-out colour-shape combinations stay unseen.
    """
    import torch
    from transformers import CLIPModel

    from mmbook import contrastive
    from mmbook.data import make_shapes

    s = settings
    data = make_shapes(s.n_pairs, seed=s.data_seed, max_shapes=s.max_shapes, split=s.split)
    proc = contrastive.processor(data.images)
    pixel_values = contrastive.pixels(proc, data.images)
    ids, mask = contrastive.tokens(proc, data.captions)
    torch.manual_seed(s.seed)
    model = CLIPModel(contrastive.clip_config(proc.tokenizer))
    history = contrastive.train_clip(model, pixel_values, ids, mask, steps=s.steps, batch_size=s.batch_size,
                                     lr=s.lr, seed=s.seed)
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return {"losses": history.losses, "logit_scales": history.logit_scales, "train_seconds": history.seconds}


def _load_tiny_clip(folder: Path) -> tuple[Any, Any]:
    from transformers import AutoProcessor, CLIPModel

    return CLIPModel.from_pretrained(folder).eval(), AutoProcessor.from_pretrained(folder)


def _check_tiny_clip(loaded: tuple[Any, Any]) -> None:
    import torch

    model, proc = loaded
    batch = proc(text=["a red circle in the center"], images=[np.zeros((32, 32, 3), np.uint8)],
                 return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**batch).logits_per_text
    if not torch.isfinite(logits).all():
        raise ValueError("the saved weights give non-finite logits")


TINY_CLIP_ENTRY = zoo.register(zoo.Entry("tiny-clip", "the tiny CLIP", TINY_CLIP, train_tiny_clip, _load_tiny_clip,
                                 _check_tiny_clip, code=("mmbook.contrastive",)))
