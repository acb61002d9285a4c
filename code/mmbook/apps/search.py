"""Text→image search over a gallery with a CLIP model: the tiny CLIP offline (Chapter 6; Chapter 10 reuses it).

The gallery's embeddings are computed once, when the app is built; a query then costs one pass of the
text tower and one matrix product, which is why a dual encoder can search millions of pictures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np
from torch import Tensor

from mmbook import contrastive
from mmbook.apps.inputs import whole_number
from mmbook.data import make_shapes, words
from mmbook.viz import upscale_nearest

GALLERY_SIZE, GALLERY_SEED = 1000, 2
MAX_RESULTS = 24
MAX_QUERY_CHARS = 300
DISPLAY_SIZE = 128


def unknown_words(tokenizer: Any, text: str) -> list[str]:
    """The words of ``text`` that ``tokenizer`` maps to its unknown token, sorted.

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
        """Embed every picture of the gallery once."""
        return cls(model, processor, images, captions,
                   contrastive.embed_images(model, contrastive.pixels(processor, images)))

    def check_query(self, query: Any) -> str:
        """The query, stripped, or a ``gr.Error`` that says why it cannot be searched."""
        if not isinstance(query, str) or not query.strip():
            raise gr.Error("Please type a description to search for, for example 'a red circle in the center'.")
        query = query.strip()
        if len(query) > MAX_QUERY_CHARS:
            raise gr.Error(f"The description is {len(query):,} characters long; the limit is {MAX_QUERY_CHARS}.")
        unknown = unknown_words(self.processor.tokenizer, query)
        if unknown:
            raise gr.Error(f"The model has never seen the word(s) {', '.join(repr(w) for w in unknown)}. "
                           "It knows the words of shapes-world captions: colours, shapes and positions.")
        limit = self.model.config.text_config.max_position_embeddings
        length = len(self.processor.tokenizer(query)["input_ids"])
        if length > limit:
            raise gr.Error(f"The description has {length} tokens; the text encoder reads at most {limit}.")
        return query

    def search(self, query: str, k: int) -> tuple[Tensor, Tensor]:
        """Cosine similarities and gallery indices of the ``k`` best matches of ``query``."""
        ids, mask = contrastive.tokens(self.processor, [query])
        text = contrastive.embed_texts(self.model, ids, mask)
        return (text @ self.embeddings.T)[0].topk(k)


def build_search_app(index: SearchIndex | None = None) -> gr.Blocks:
    """Type a description, get the most similar pictures of a 1,000-picture gallery (Chapter 6).

    Without ``index``, the gallery is ``make_shapes(1000, seed=2)`` searched by the tiny CLIP.
    """
    if index is None:
        from mmbook.zoo import tiny_clip

        model, processor = tiny_clip()
        gallery = make_shapes(GALLERY_SIZE, seed=GALLERY_SEED)
        index = SearchIndex.build(model, processor, gallery.images, gallery.captions)

    def search(query: str, k: float) -> tuple[list[tuple[np.ndarray, str]], list[list[Any]]]:
        query = index.check_query(query)
        scores, found = index.search(query, whole_number(k, "number of results", 1, MAX_RESULTS))
        pictures = [(upscale_nearest(index.images[i], DISPLAY_SIZE), f"#{i}: {s:.3f}")
                    for s, i in zip(scores.tolist(), found.tolist(), strict=True)]
        rows = [[rank, i, round(s, 4), index.captions[i]]
                for rank, (s, i) in enumerate(zip(scores.tolist(), found.tolist(), strict=True), start=1)]
        return pictures, rows

    with gr.Blocks(title="Text-to-image search") as demo:
        gr.Markdown(
            f"## Search {len(index.images):,} pictures by description\n"
            "The text tower embeds your description; the pictures were embedded once, when the app started. "
            "The results are the pictures with the highest cosine similarity."
        )
        with gr.Row():
            query = gr.Textbox(label="Description", placeholder="a red circle in the center", scale=4)
            k = gr.Slider(1, MAX_RESULTS, value=8, step=1, label="Results", scale=1)
        button = gr.Button("Search", variant="primary")
        pictures = gr.Gallery(label="Best matches (gallery index: cosine similarity)", columns=8, height=300,
                              object_fit="contain", format="png")
        table = gr.Dataframe(headers=["rank", "gallery index", "cosine", "the picture's own caption"],
                             label="Results", interactive=False)
        button.click(search, [query, k], [pictures, table], api_name="search")
        query.submit(search, [query, k], [pictures, table], api_name=False)
    return demo


__all__ = ["SearchIndex", "build_search_app"]

