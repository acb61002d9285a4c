"""The book's own small models, trained on the book's data on first use and cached (Chapter 1 on).

Each model is saved with ``save_pretrained`` in ``$MMBOOK_CACHE/models/<name>`` so that the standard
``from_pretrained(folder)`` and ``pipeline(..., model=folder)`` calls load it, exactly as they would load
a hub checkpoint. A folder that is incomplete or unreadable is rebuilt, with a message.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

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
