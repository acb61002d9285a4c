"""The book's own small models, trained on the book's data on first use and cached (Chapter 1 on).

Each model is saved with ``save_pretrained`` in ``$MMBOOK_CACHE/models/<name>`` so that the standard
``from_pretrained(folder)`` and ``pipeline(..., model=folder)`` calls load it, exactly as they would load
a hub checkpoint. A folder that is incomplete or unreadable is rebuilt, with a message.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mmbook.env import cache_dir

MODELS_SUBDIR = "models"


def model_dir(name: str) -> Path:
    """Folder of the book's model ``name`` in the cache (Chapter 1)."""
    return Path(cache_dir()) / MODELS_SUBDIR / name


def cached(name: str, build: Callable[[Path], None], check: Callable[[Path], None]) -> Path:
    """Return the folder of ``name``; build it first if it is missing or fails ``check`` (Chapter 1)."""
    folder = model_dir(name)
    if folder.is_dir():
        try:
            check(folder)
            return folder
        except Exception as exc:  # a corrupt cache must never become a silently wrong model
            print(f"[mmbook.zoo] cached {name} at {folder} is unusable ({type(exc).__name__}: {exc}); rebuilding")
            shutil.rmtree(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    build(tmp)
    check(tmp)
    tmp.rename(folder)
    return folder


def cached_or_built(name: str, build: Callable[[Path], None], check: Callable[[Path], None]) -> tuple[Path, bool]:
    """:func:`cached`, and whether ``build`` ran (so a caller can say "trained" or "loaded") (Chapter 4)."""
    built = False

    def build_and_note(folder: Path) -> None:
        nonlocal built
        build(folder)
        built = True

    return cached(name, build_and_note, check), built


#: The file beside each trained model that holds its settings, losses, training time and measurements.
RECORD = "training.json"


def read_record(folder: Path) -> dict[str, Any]:
    """The :data:`RECORD` saved beside a trained model (Chapters 6-10)."""
    return json.loads((folder / RECORD).read_text())


def check_settings(folder: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """The record of ``folder``, or a ``ValueError`` when it was trained with other ``settings`` (Chapters 6-10)."""
    record = read_record(folder)
    if {k: record.get(k) for k in settings} != settings:
        raise ValueError("saved with other training settings")
    return record


def trained_path(name: str, what: str, build: Callable[[Path], None], check: Callable[[Path], None]) -> Path:
    """Folder of the trained model ``name`` (trained on first use, then loaded), saying which happened and
    how long the training took; ``what`` names the model in that sentence (Chapters 6-10)."""
    folder, built = cached_or_built(name, build, check)
    seconds = read_record(folder)["train_seconds"]
    if built:
        print(f"[mmbook.zoo] trained {what} in {seconds:.0f} s: {folder}")
    else:
        print(f"[mmbook.zoo] loaded {what} from the model cache (trained in {seconds:.0f} s): {folder}")
    return folder


# ----------------------------------------------------------------------------------------------------
# tiny GPT-2: the offline stand-in for openai-community/gpt2


def caption_corpus(n: int = 4000, seed: int = 0) -> list[str]:
    """Shapes-world captions used to train the tiny GPT-2 (Chapter 1)."""
    from mmbook.data import make_shapes

    return make_shapes(n, seed=seed).captions


def train_tiny_gpt2(folder: Path, *, steps: int = 150, seed: int = 0) -> None:
    """Train a 2-layer GPT-2 on shapes-world captions and ``save_pretrained`` it to ``folder`` (Chapter 1)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from tqdm.auto import tqdm
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    torch.manual_seed(seed)
    corpus = caption_corpus(seed=seed)
    eos = "<|endoftext|>"
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        corpus,
        trainers.BpeTrainer(vocab_size=400, special_tokens=[eos], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()),
    )
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
        vocab_size=len(tokenizer), n_positions=64, n_embd=64, n_layer=2, n_head=4,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    model = GPT2LMHeadModel(config)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in tqdm(range(steps), desc="training tiny GPT-2", leave=False):
        rows = torch.randint(0, len(ids), (64,), generator=generator)
        loss = model(input_ids=batch[rows], attention_mask=mask[rows], labels=labels[rows]).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    model.generation_config.pad_token_id = tokenizer.eos_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _check_causal_lm(folder: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoTokenizer.from_pretrained(folder)
    AutoModelForCausalLM.from_pretrained(folder)


def tiny_gpt2_path() -> Path:
    """Folder of the tiny GPT-2, trained on first use (about 10 s on 2 CPU cores) (Chapter 1)."""
    return cached("tiny-gpt2", train_tiny_gpt2, _check_causal_lm)


# ----------------------------------------------------------------------------------------------------
# tiny CLIP: the offline stand-in for openai/clip-vit-base-patch32

#: How the tiny CLIP is trained; a cached model saved with other settings is retrained.
TINY_CLIP = {"version": 1, "n_pairs": 20000, "data_seed": 1, "max_shapes": 3, "split": "train",
             "steps": 400, "batch_size": 256, "lr": 1e-3, "seed": 0}  # fmt: skip


def train_tiny_clip(folder: Path) -> None:
    """Train the tiny CLIP on shapes-world pairs and ``save_pretrained`` model and processor (Chapter 6).

    The pairs come from ``split="train"``, so the held-out colour-shape combinations stay unseen.
    """
    import torch
    from transformers import CLIPModel

    from mmbook import contrastive
    from mmbook.data import make_shapes

    settings = TINY_CLIP
    data = make_shapes(settings["n_pairs"], seed=settings["data_seed"], max_shapes=settings["max_shapes"],
                       split=settings["split"])
    proc = contrastive.processor(data.images)
    pixel_values = contrastive.pixels(proc, data.images)
    ids, mask = contrastive.tokens(proc, data.captions)
    torch.manual_seed(settings["seed"])
    model = CLIPModel(contrastive.clip_config(proc.tokenizer))
    history = contrastive.train_clip(model, pixel_values, ids, mask, steps=settings["steps"],
                                     batch_size=settings["batch_size"], lr=settings["lr"], seed=settings["seed"])
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    record = {**settings, "losses": history.losses, "logit_scales": history.logit_scales,
              "train_seconds": history.seconds}
    (folder / RECORD).write_text(json.dumps(record))


def _load_tiny_clip(folder: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoProcessor, CLIPModel

    check_settings(folder, TINY_CLIP)
    model = CLIPModel.from_pretrained(folder).eval()
    proc = AutoProcessor.from_pretrained(folder)
    batch = proc(text=["a red circle in the center"], images=[np.zeros((32, 32, 3), np.uint8)],
                 return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**batch).logits_per_text
    if not torch.isfinite(logits).all():
        raise ValueError("the saved weights give non-finite logits")
    return model, proc


def tiny_clip_path() -> Path:
    """Folder of the tiny CLIP: trained on first use (about a minute on 2 CPU cores), then loaded (Chapter 6)."""
    return trained_path("tiny-clip", "the tiny CLIP", train_tiny_clip, _load_tiny_clip)


def tiny_clip_record(folder: Path | None = None) -> dict[str, Any]:
    """The tiny CLIP's training settings, its loss and logit scale after every step and its training time."""
    return read_record(folder or model_dir("tiny-clip"))


def tiny_clip() -> tuple[Any, Any]:
    """The tiny CLIP as ``(CLIPModel, CLIPProcessor)``, trained on first use (Chapter 6)."""
    return _load_tiny_clip(tiny_clip_path())
