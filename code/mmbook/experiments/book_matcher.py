"""Chapter 7's harness: the book's trained matcher, its settings and test seed, and the dual encoder compared.

The lesson (pairs, the :class:`~mmbook.matching.SingleStreamMatcher`, :func:`~mmbook.matching.train_matcher`)
is in :mod:`mmbook.matching`. Here: :class:`MatcherSettings` and the book's choice :data:`MATCHER`,
:func:`build_matcher` (pairs + training for one setting), the zoo entry ``matcher`` behind :func:`matcher`,
and :func:`dual_encoder_scores`, the same pairs scored by Chapter 6's dual encoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmbook import zoo
from mmbook.data import tokenizer
from mmbook.env import training_state
from mmbook.matching import (
    History,
    SingleStreamMatcher,
    encode_pairs,
    make_pairs,
    mask_content_words,
    pixels,
    tokenize,
    train_matcher,
)


@torch.no_grad()
def dual_encoder_scores(model: Any, proc: Any, images: np.ndarray, captions: Sequence[str]) -> np.ndarray:
    """Cosine similarity of each (picture, caption) pair under a CLIP-style dual encoder (Chapter 7).

    ``model`` and ``proc`` are a ``transformers`` ``CLIPModel`` and its processor, e.g.
    :func:`mmbook.zoo.tiny_clip`; pictures and captions are embedded independently, as in Chapter 6.
    """
    from mmbook import contrastive

    if len(images) != len(captions):
        raise ValueError(f"got {len(images)} pictures for {len(captions)} captions; pass pairs")
    image_embeddings = contrastive.embed_images(model, contrastive.pixels(proc, images))
    text_embeddings = contrastive.embed_texts(model, *contrastive.tokens(proc, captions))
    return (image_embeddings * text_embeddings).sum(-1).numpy()



@dataclass(frozen=True)
class MatcherSettings:
    """How the book's matcher is trained: its pairs, its size and the arguments of :func:`train_matcher`
    (Chapter 7)."""

    train_scenes: int = 8000
    val_scenes: int = 1000
    train_seed: int = 71
    val_seed: int = 72
    split: str = "train"
    max_shapes: int = 3
    dim: int = 32
    layers: int = 2
    heads: int = 2
    max_steps: int = 1500
    batch_size: int = 64
    lr: float = 2e-3
    word_weight: float = 1.0
    mask_rate: float = 0.5
    eval_every: int = 100
    patience: int = 4
    min_steps: int = 750
    seed: int = 0


#: The book's matcher settings; a cached model saved with other settings is retrained.
MATCHER = MatcherSettings()
#: The test pairs of the chapter: scenes never used for training or for choosing a model.
TEST_SEED = 73
_WEIGHTS = "model.safetensors"


def build_matcher(settings: MatcherSettings = MATCHER) -> tuple[SingleStreamMatcher, History]:
    """Make the training and validation pairs of ``settings`` (default :data:`MATCHER`), train (Chapter 7).

    A variant is ``dataclasses.replace(MATCHER, word_weight=0.0)``.
    """
    s = settings
    train = make_pairs(s.train_scenes, seed=s.train_seed, split=s.split, max_shapes=s.max_shapes)
    val = make_pairs(s.val_scenes, seed=s.val_seed, split=s.split, max_shapes=s.max_shapes)
    with training_state(threads=1):  # the global seed below stays inside this block
        torch.manual_seed(s.seed)
        model = SingleStreamMatcher(len(tokenizer()), s.dim, layers=s.layers, heads=s.heads,
                                    pad_id=tokenizer().pad_token_id)
        history = train_matcher(model, encode_pairs(train), encode_pairs(val), max_steps=s.max_steps,
                                batch_size=s.batch_size, lr=s.lr, word_weight=s.word_weight,
                                mask_rate=s.mask_rate, eval_every=s.eval_every, patience=s.patience,
                                min_steps=s.min_steps, seed=s.seed)
    return model, history


def _train(folder: Path, settings: MatcherSettings) -> dict[str, Any]:
    from safetensors.torch import save_file

    model, history = build_matcher(settings)
    save_file(model.state_dict(), folder / _WEIGHTS)
    return {"history": asdict(history), "train_seconds": history.seconds}


def _load(folder: Path) -> SingleStreamMatcher:
    from safetensors.torch import load_file

    from mmbook.zoo import read_record

    record = read_record(folder)
    s = record["settings"]
    model = SingleStreamMatcher(len(tokenizer()), s["dim"], layers=s["layers"], heads=s["heads"],
                                pad_id=tokenizer().pad_token_id)
    model.load_state_dict(load_file(folder / _WEIGHTS))
    model.eval()
    model.history = History(**record["history"])
    return model


def _check(model: SingleStreamMatcher) -> None:
    ids, mask = tokenize(["a red circle in the center"])
    with torch.no_grad():
        logit = model(pixels(np.zeros((1, 32, 32, 3), np.uint8)), ids, mask).logits
    if not torch.isfinite(logit).all():
        raise ValueError("the saved weights give a non-finite logit")


MATCHER_ENTRY = zoo.register(zoo.Entry(
    "matcher", "the matcher", MATCHER, _train, _load, _check,
    code=(build_matcher, train_matcher, SingleStreamMatcher, make_pairs, encode_pairs, mask_content_words),
))  # fmt: skip


def matcher() -> SingleStreamMatcher:
    """The book's trained :class:`SingleStreamMatcher`: trained on first use (about half a minute on a CPU),
    then loaded from the model cache (Chapter 7).

    Saved in ``$MMBOOK_CACHE/models/matcher`` with its settings (:data:`MATCHER`) and training
    :class:`History` (``model.history``); a copy saved with other settings or code, or unreadable, is
    retrained. Every caller shares one copy; ``mmbook.zoo.trained_now("matcher")`` says whether this process
    trained it.
    """
    return zoo.load("matcher")
