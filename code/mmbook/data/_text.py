"""Splitting text into the words that the book's vocabularies and tokenizer share."""

from __future__ import annotations

import re
from collections.abc import Iterable

# A run of letters is a word; each digit and each other mark stands alone. The tokenizer's pre-tokenizer
# splits the same way.
_WORD = re.compile(r"[^\W\d_]+|\d|[^\w\s]|_")
_PLACEHOLDER = re.compile(r"\{[a-z_0-9]*\}")


def words(text: str) -> list[str]:
    """Split ``text`` into lowercase words and single punctuation marks (Chapter 3)."""
    return _WORD.findall(text.lower())


def template_words(texts: Iterable[str]) -> set[str]:
    """Every word of ``texts`` once their ``{placeholders}`` are removed."""
    return {w for text in texts for w in words(_PLACEHOLDER.sub(" ", text))}
