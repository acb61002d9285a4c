"""Chapter 7's harness: the book's matchers, their settings and test seed, the dual encoder compared, and
training compute counted in FLOPs.

The lesson (the pairs in :mod:`mmbook.data.pairs`; :class:`~mmbook.matching.SingleStreamMatcher`,
:class:`~mmbook.matching.AlignedMatcher`, :func:`~mmbook.matching.train_matcher` in :mod:`mmbook.matching`)
is elsewhere. Here: :class:`MatcherSettings` and the book's choice :data:`MATCHER`, :func:`build_matcher`
(pairs + training for one setting), the zoo entries behind :func:`matcher` and :data:`VARIANTS`,
:func:`dual_encoder_scores`, the same pairs scored by Chapter 6's dual encoder, and
:func:`matcher_step_flops`, :func:`clip_step_flops`, the compute of one training step of each.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmbook import tiny_models, zoo
from mmbook.data import tokenizer
from mmbook.data.pairs import PairTensors, encode_pairs, make_pairs, mask_content_words, pixels, tokenize
from mmbook.env import training_state
from mmbook.losses import clip_loss
from mmbook.matching import (
    AlignedMatcher,
    FusionMatcher,
    History,
    SingleStreamMatcher,
    matcher_loss,
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
    """How a matcher of the book is trained: its pairs, its start, its size and the arguments of
    :func:`train_matcher` (Chapter 7). ``init`` is ``"tiny-clip"`` (an :class:`AlignedMatcher` on the
    frozen towers of :func:`mmbook.zoo.tiny_clip`) or ``"scratch"`` (a :class:`SingleStreamMatcher`)."""

    init: str = "tiny-clip"
    train_scenes: int = 8000
    val_scenes: int = 1000
    train_seed: int = 71
    val_seed: int = 72
    split: str = "train"
    max_shapes: int = 3
    dim: int = 32
    layers: int = 2
    heads: int = 2
    max_steps: int = 300
    batch_size: int = 64
    lr: float = 2e-3
    word_weight: float = 1.0
    mask_rate: float = 0.5
    eval_every: int = 50
    patience: int = 4
    min_steps: int = 0
    seed: int = 0


#: The book's matcher: aligned before fused, trained with the masked-word loss.
MATCHER = MatcherSettings()
#: Steps of a from-scratch matcher whose training FLOPs equal the tiny CLIP's training plus
#: :data:`MATCHER`'s (the chapter measures both and checks the match).
SCRATCH_STEPS = 7100
#: The comparison of Chapter 7: the book's matcher without the masked-word loss, and both from scratch
#: at equal training compute (no early stopping, so each curve covers the whole budget).
VARIANTS: dict[str, MatcherSettings] = {
    "matcher-itm": dataclasses.replace(MATCHER, word_weight=0.0),
    "matcher-scratch": dataclasses.replace(MATCHER, init="scratch", max_steps=SCRATCH_STEPS, eval_every=250,
                                           min_steps=SCRATCH_STEPS),
    "matcher-scratch-itm": dataclasses.replace(MATCHER, init="scratch", max_steps=SCRATCH_STEPS, eval_every=250,
                                               min_steps=SCRATCH_STEPS, word_weight=0.0),
}
#: The test pairs of the chapter: scenes never used for training or for choosing a model.
TEST_SEED = 73
_WEIGHTS = "model.safetensors"


def new_matcher(settings: MatcherSettings) -> FusionMatcher:
    """An untrained matcher of ``settings``: on the tiny CLIP's frozen towers, or from scratch (Chapter 7)."""
    s = settings
    if s.init == "scratch":
        return SingleStreamMatcher(len(tokenizer()), s.dim, layers=s.layers, heads=s.heads,
                                   pad_id=tokenizer().pad_token_id)
    if s.init != "tiny-clip":
        raise ValueError(f"init must be 'tiny-clip' or 'scratch', got {s.init!r}")
    clip, proc = zoo.tiny_clip()
    image = proc.image_processor
    return AlignedMatcher(clip, image.image_mean, image.image_std, s.dim, layers=s.layers, heads=s.heads)


def matcher_data(settings: MatcherSettings = MATCHER) -> tuple[PairTensors, PairTensors]:
    """The training and validation pairs of ``settings``, as tensors (Chapter 7)."""
    s = settings
    train = make_pairs(s.train_scenes, seed=s.train_seed, split=s.split, max_shapes=s.max_shapes)
    val = make_pairs(s.val_scenes, seed=s.val_seed, split=s.split, max_shapes=s.max_shapes)
    return encode_pairs(train), encode_pairs(val)


def build_matcher(settings: MatcherSettings = MATCHER) -> tuple[FusionMatcher, History]:
    """Make the training and validation pairs of ``settings`` (default :data:`MATCHER`), train (Chapter 7).

    A variant is ``dataclasses.replace(MATCHER, word_weight=0.0)``.
    """
    s = settings
    train, val = matcher_data(s)
    with training_state(threads=1):  # the global seed below stays inside this block
        torch.manual_seed(s.seed)
        model = new_matcher(s)
        history = train_matcher(model, train, val, max_steps=s.max_steps, batch_size=s.batch_size, lr=s.lr,
                                word_weight=s.word_weight, mask_rate=s.mask_rate, eval_every=s.eval_every,
                                patience=s.patience, min_steps=s.min_steps, seed=s.seed)
    return model, history


def _flops(step: Any) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def matcher_step_flops(model: FusionMatcher, data: PairTensors, settings: MatcherSettings = MATCHER,
                       batches: int = 4) -> float:
    """Floating-point operations of one training step of ``model`` (forward and backward of
    :func:`~mmbook.matching.matcher_loss`, frozen towers included), the mean over ``batches`` random
    batches of ``settings.batch_size`` pairs of ``data`` (Chapter 7). Counted by PyTorch's
    ``FlopCounterMode`` (matrix products and attention); the gradients are left at zero."""
    generator = torch.Generator().manual_seed(0)
    counts = []
    with training_state(threads=None):
        for _ in range(batches):
            rows = torch.randint(0, len(data), (settings.batch_size,), generator=generator)
            batch = data.batch(rows)
            counts.append(_flops(lambda b=batch: matcher_loss(model, b, settings.word_weight,
                                                              settings.mask_rate, generator)[0].backward()))
    model.zero_grad(set_to_none=True)
    model.eval()
    return float(np.mean(counts))


def clip_step_flops(model: Any, pixel_values: torch.Tensor, input_ids: torch.Tensor,
                    attention_mask: torch.Tensor, batch_size: int, batches: int = 4) -> float:
    """Floating-point operations of one step of :func:`mmbook.contrastive.train_clip` on ``batch_size``
    random pairs (forward and backward of the CLIP loss), the mean over ``batches`` batches (Chapter 7)."""
    generator = torch.Generator().manual_seed(0)
    counts = []
    with training_state(threads=None):
        for _ in range(batches):
            rows = torch.randint(0, len(pixel_values), (batch_size,), generator=generator)
            mask = attention_mask[rows]
            width = int(mask.sum(1).max())

            def step(rows: torch.Tensor = rows, mask: torch.Tensor = mask, width: int = width) -> None:
                out = model(input_ids=input_ids[rows, :width], attention_mask=mask[:, :width],
                            pixel_values=pixel_values[rows])
                clip_loss(out.logits_per_text).backward()

            counts.append(_flops(step))
    model.zero_grad(set_to_none=True)
    return float(np.mean(counts))


def _frozen(model: FusionMatcher) -> set[str]:
    """Names of the weights training never changes: the aligned matcher's copy of the tiny CLIP."""
    return {name for name, p in model.named_parameters() if not p.requires_grad}


def _train(folder: Path, settings: MatcherSettings) -> dict[str, Any]:
    from safetensors.torch import save_file

    model, history = build_matcher(settings)
    frozen = _frozen(model)  # not saved: loading copies them from the tiny CLIP again (new_matcher)
    save_file({k: v for k, v in model.state_dict().items() if k not in frozen}, folder / _WEIGHTS)
    return {"history": asdict(history), "train_seconds": history.seconds}


def _load(folder: Path) -> FusionMatcher:
    from safetensors.torch import load_file

    from mmbook.zoo import read_record

    record = read_record(folder)
    model = new_matcher(MatcherSettings(**record["settings"]))
    result = model.load_state_dict(load_file(folder / _WEIGHTS), strict=False)
    if result.unexpected_keys or set(result.missing_keys) - _frozen(model):
        raise ValueError(f"the saved weights do not fit the matcher: missing {result.missing_keys}, "
                         f"unexpected {result.unexpected_keys}")
    model.eval()
    model.history = History(**record["history"])
    return model


def _check(model: FusionMatcher) -> None:
    ids, mask = tokenize(["a red circle in the center"])
    with torch.no_grad():
        logit = model(pixels(np.zeros((1, 32, 32, 3), np.uint8)), ids, mask).logits
    if not torch.isfinite(logit).all():
        raise ValueError("the saved weights give a non-finite logit")


_CODE = (build_matcher, new_matcher, matcher_data, "mmbook.matching", make_pairs, encode_pairs,
         mask_content_words, tiny_models.train_tiny_clip, "mmbook.contrastive")
MATCHER_ENTRY = zoo.register(zoo.Entry("matcher", "the matcher", MATCHER, _train, _load, _check, code=_CODE))
VARIANT_ENTRIES = [zoo.register(zoo.Entry(name, f"the {name.replace('-', ' ')}", settings, _train, _load, _check,
                                          code=_CODE))
                   for name, settings in VARIANTS.items()]


def matcher() -> FusionMatcher:
    """The book's trained matcher (:data:`MATCHER`): trained on first use (well under a minute on a CPU),
    then loaded from the model cache (Chapter 7).

    Saved in ``$MMBOOK_CACHE/models/matcher`` with its settings and training :class:`History`
    (``model.history``); a copy saved with other settings or code, or unreadable, is retrained. Every
    caller shares one copy; ``mmbook.zoo.trained_now("matcher")`` says whether this process trained it.
    """
    return zoo.load("matcher")
