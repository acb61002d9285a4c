"""Text→image search over a gallery with a CLIP model: the tiny CLIP offline (Chapter 6).

The index (:class:`mmbook.search.SearchIndex`) embeds the gallery once, when the app is built; a query then
costs one pass of the text tower and one matrix product.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np

from mmbook.apps.common import checked, raw, whole_number
from mmbook.search import MAX_RESULTS, SearchIndex
from mmbook.viz import upscale_nearest

DISPLAY_SIZE = 128


def build_search_app(index: SearchIndex | None = None) -> gr.Blocks:
    """Type a description, get the most similar pictures of a 1,000-picture gallery (Chapter 6).

    Without ``index``, the gallery is ``make_shapes(1000, seed=2)`` searched by the tiny CLIP.
    """
    if index is None:
        from mmbook.zoo import tiny_clip

        index = SearchIndex.of_gallery(*tiny_clip())

    @checked
    def search(query: Any, k: Any) -> tuple[list[tuple[np.ndarray, str]], list[list[Any]]]:
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
            k = raw(gr.Slider(1, MAX_RESULTS, value=8, step=1, label="Results", scale=1))
        button = gr.Button("Search", variant="primary")
        pictures = gr.Gallery(label="Best matches (gallery index: cosine similarity)", columns=8, height=300,
                              object_fit="contain", format="png")
        table = gr.Dataframe(headers=["rank", "gallery index", "cosine", "the picture's own caption"],
                             label="Results", interactive=False)
        button.click(search, [query, k], [pictures, table], api_name="search")
        query.submit(search, [query, k], [pictures, table], api_name=False)
    return demo


__all__ = ["build_search_app"]
