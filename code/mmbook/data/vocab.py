"""The book's word vocabulary and a CLIP-style tokenizer built from it offline (Chapter 3).

Every word that the datasets of :mod:`mmbook.data` can write is one token, so no text the book generates
meets the unknown token. That matters for CLIP-style text encoders: they pool the hidden state at the
first end-of-text token, and in the original CLIP tokenizer the unknown token *is* end-of-text, so an
out-of-vocabulary word would end the sentence early.
"""

from __future__ import annotations

import string
from functools import lru_cache
from typing import TYPE_CHECKING

from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel

from mmbook.data import digits, sensors, shapes
from mmbook.data._text import template_words

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

#: Prompt templates for zero-shot classification with a text encoder; ``{}`` takes a label.
PROMPT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a picture of a {}.",
    "an image of a {}.",
    "a drawing of a {}.",
    "a sketch of a {}.",
    "a blurry photo of a {}.",
    "a photo of the number {}.",
    "a handwritten digit {}.",
    "this is a {}.",
    "the sound of a {}.",
)
#: Every word of the shapes world, the digits, the sensor logs and the prompts, every digit and every
#: ASCII punctuation mark: the tokenizer's vocabulary, special tokens aside.
VOCABULARY: tuple[str, ...] = tuple(
    sorted(
        {*shapes.VOCABULARY, *digits.VOCABULARY, *sensors.VOCABULARY, *string.digits, *string.punctuation}
        | template_words(PROMPT_TEMPLATES)
    )
)
PAD, UNK, BOS, EOS = "<|pad|>", "<|unk|>", "<|startoftext|>", "<|endoftext|>"
MODEL_MAX_LENGTH = 77  # CLIP's context length


@lru_cache(maxsize=1)
def tokenizer() -> PreTrainedTokenizerFast:
    """A word-level ``transformers`` tokenizer over :data:`VOCABULARY` with CLIP's special tokens (Chapter 3).

    Text is lowercased and split like :func:`mmbook.data.words`; ``<|startoftext|>`` and
    ``<|endoftext|>`` wrap every sequence and have the two highest ids, padding uses ``<|pad|>`` (id 0) and
    unknown words ``<|unk|>`` (id 1), never end-of-text. For ``transformers.CLIPTextConfig`` pass
    ``vocab_size=len(tok)``, ``pad_token_id``, ``bos_token_id`` and ``eos_token_id`` from the tokenizer.
    The object is built once per process and shared: copy it before changing it.
    """
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate([PAD, UNK, *VOCABULARY, BOS, EOS])}
    backend = Tokenizer(WordLevel(vocab, unk_token=UNK))
    backend.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    backend.pre_tokenizer = pre_tokenizers.Split(
        Regex(r"<\|startoftext\|>|<\|endoftext\|>|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]"),
        behavior="removed",
        invert=True,
    )
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}",
        pair=f"{BOS} $A {EOS} $B {EOS}",
        special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        model_max_length=MODEL_MAX_LENGTH,
    )
