"""Text→image search over a gallery with a CLIP model (Chapter 6; Chapter 10's assistant reuses it).

The gallery's embeddings are computed once, when the index is built; a query then costs one pass of the
text tower and one matrix product, which is why a dual encoder can search millions of pictures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor

from mmbook import contrastive
from mmbook.data import make_shapes, words
from mmbook.errors import InputError
from mmbook.limits import MAX_TEXT_CHARS

#: The book's search gallery: ``make_shapes(GALLERY_SIZE, seed=GALLERY_SEED)``.
GALLERY_SIZE, GALLERY_SEED = 1000, 2
MAX_RESULTS = 24


def unknown_words(tokenizer: Any, text: str) -> list[str]:
    """The words of ``text`` that ``tokenizer`` maps to its unknown token, sorted (Chapter 6).

    The book's word-level tokenizer has a closed vocabulary; a byte-level BPE such as real CLIP's spells
    every word from pieces and has no unknown words, so nothing is refused online.
    """
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None:
        return []
    return sorted({w for w in words(text) if unk in tokenizer(w, add_special_tokens=False)["input_ids"]})


@dataclass
class SearchIndex:
    """A gallery of pictures with their CLIP embeddings, and the model that searches it (Chapter 6)."""

    model: Any
    processor: Any
    images: np.ndarray
    captions: list[str]
    embeddings: Tensor

    @classmethod
    def build(cls, model: Any, processor: Any, images: np.ndarray, captions: list[str]) -> SearchIndex:
        """Embed every picture of the gallery once, on the model's device."""
        pixels = contrastive.pixels(processor, images).to(model.device)
        return cls(model, processor, images, captions, contrastive.embed_images(model, pixels))

    @classmethod
    def of_gallery(cls, model: Any, processor: Any) -> SearchIndex:
        """The index of the book's gallery, ``make_shapes(GALLERY_SIZE, seed=GALLERY_SEED)`` (Chapters 6 and 10)."""
        gallery = make_shapes(GALLERY_SIZE, seed=GALLERY_SEED)
        return cls.build(model, processor, gallery.images, gallery.captions)

    def check_query(self, query: Any) -> str:
        """The query, stripped, or an :class:`~mmbook.errors.InputError` that says why it cannot be searched."""
        if not isinstance(query, str) or not query.strip():
            raise InputError("Please type a description to search for, for example 'a red circle in the center'.")
        query = query.strip()
        if len(query) > MAX_TEXT_CHARS:
            raise InputError(f"The description is {len(query):,} characters long; the limit is {MAX_TEXT_CHARS}.")
        unknown = unknown_words(self.processor.tokenizer, query)
        if unknown:
            raise InputError(f"The model has never seen the word(s) {', '.join(repr(w) for w in unknown)}. "
                             "It knows the words of shapes-world captions: colours, shapes and positions.")
        limit = self.model.config.text_config.max_position_embeddings
        length = len(self.processor.tokenizer(query)["input_ids"])
        if length > limit:
            raise InputError(f"The description has {length} tokens; the text encoder reads at most {limit}.")
        return query

    def search(self, query: str, k: int) -> tuple[Tensor, Tensor]:
        """Cosine similarities and gallery indices of the ``k`` best matches of ``query`` (on the CPU)."""
        ids, mask = contrastive.tokens(self.processor, [query])
        text = contrastive.embed_texts(self.model, ids.to(self.model.device), mask.to(self.model.device))
        return (text @ self.embeddings.T)[0].cpu().topk(k)


__all__ = ["GALLERY_SEED", "GALLERY_SIZE", "MAX_RESULTS", "SearchIndex", "unknown_words"]
