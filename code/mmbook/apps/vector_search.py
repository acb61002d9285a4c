"""Cross-modal search over a FAISS index: a description or a picture finds pictures and captions (Chapter 12).

The table (:class:`mmbook.vector_index.Corpus`) holds the tiny CLIP's embeddings of every picture and every
caption of a shapes-world gallery; the index is exact or approximate (:func:`mmbook.vector_index.build_index`).
The tiny CLIP has no audio tower, so a sound is searched the way spoken queries usually are, as a cascade:
Chapter 10's tone reader (:mod:`mmbook.tone_reader`) turns the clip into words, and the words are the query.
"""

from __future__ import annotations

from typing import Any

import faiss
import gradio as gr
import numpy as np

from mmbook.apps.common import checked, raw, whole_number
from mmbook.errors import InputError
from mmbook.search import MAX_RESULTS
from mmbook.vector_index import Corpus, build_index
from mmbook.viz import upscale_nearest

DISPLAY_SIZE = 128
HEADERS = ["rank", "row", "kind", "scene", "cosine", "the scene's caption"]


def build_vector_search_app(corpus: Corpus | None = None, index: faiss.Index | None = None) -> gr.Blocks:
    """Search a table of picture and caption embeddings by text or by picture (Chapter 12).

    Without ``corpus``, the table embeds the book's gallery (``make_shapes(1000, seed=2)``) with the tiny CLIP;
    without ``index``, it is searched by an HNSW index over the table.
    """
    if corpus is None:
        from mmbook.search import SearchIndex
        from mmbook.zoo import tiny_clip

        gallery = SearchIndex.of_gallery(*tiny_clip())
        corpus = Corpus.build(gallery.model, gallery.processor, gallery.images, gallery.captions)
    table = corpus
    searcher = index if index is not None else build_index("hnsw", table.vectors)
    if searcher.ntotal != len(table) or searcher.d != table.vectors.shape[1]:
        raise ValueError(f"The index holds {searcher.ntotal:,} vectors of dimension {searcher.d}; the table "
                         f"has {len(table):,} of dimension {table.vectors.shape[1]}.")

    def results(query: Any, k: Any) -> tuple[list[tuple[np.ndarray, str]], list[list[Any]]]:
        count = whole_number(k, "number of results", 1, MAX_RESULTS)
        scores, rows = searcher.search(table.embed_query(query), count)
        found = [(float(s), int(r)) for s, r in zip(scores[0], rows[0], strict=True) if r >= 0]
        pictures = [(upscale_nearest(table.gallery.images[table.item(r)], DISPLAY_SIZE),
                     f"#{table.item(r)} ({table.modality(r)}): {s:.3f}") for s, r in found]
        listed = [[rank, r, table.modality(r), table.item(r), round(s, 4), table.gallery.captions[table.item(r)]]
                  for rank, (s, r) in enumerate(found, start=1)]
        return pictures, listed

    @checked
    def by_text(query: Any, k: Any) -> tuple[list[tuple[np.ndarray, str]], list[list[Any]]]:
        return results(query if isinstance(query, str) else None, k)

    @checked
    def by_picture(picture: Any, k: Any) -> tuple[list[tuple[np.ndarray, str]], list[list[Any]]]:
        if picture is None:
            raise InputError("Please upload a picture to search with.")
        return results(picture, k)

    @checked
    def by_sound(recording: Any, k: Any) -> tuple[str, list[tuple[np.ndarray, str]], list[list[Any]]]:
        from mmbook import sound, tone_reader

        if not isinstance(recording, tuple | list) or len(recording) != 2:
            raise InputError("Please upload a clip (a shapes-world sound) to search with.")
        rate, samples = recording
        clip = sound.prepare_audio(samples, int(rate), target_rate=tone_reader.SAMPLE_RATE)
        if len(clip) / tone_reader.SAMPLE_RATE > tone_reader.MAX_SECONDS:
            raise InputError(f"The tone reader reads clips of at most {tone_reader.MAX_SECONDS:.0f} s.")
        words = tone_reader.tone_reader().transcribe(clip)
        if not words:
            raise InputError("The tone reader heard no shapes-world tone in this clip.")
        return words, *results(" and ".join(f"a {shape}" for shape in words.split(", ")), k)

    with gr.Blocks(title="Cross-modal search") as demo:
        gr.Markdown(
            f"## Search {len(table.gallery.images):,} scenes by description, picture or sound\n"
            f"The index holds {len(table):,} embeddings: every picture and every caption. A query is embedded "
            "by the matching tower of the tiny CLIP; the results are the rows of highest cosine similarity, "
            "pictures and captions alike (each shown by its scene's picture). A sound is first read into words "
            "by the tone reader of Chapter 10."
        )
        k = raw(gr.Slider(1, MAX_RESULTS, value=8, step=1, label="Results"))
        with gr.Tab("Text"):
            query = gr.Textbox(label="Description", placeholder="a red circle in the center")
            text_button = gr.Button("Search", variant="primary")
        with gr.Tab("Picture"):
            picture = raw(gr.Image(label="Picture", type="numpy", sources=["upload", "clipboard"]))
            picture_button = gr.Button("Search", variant="primary")
        with gr.Tab("Sound"):
            recording = raw(gr.Audio(label="Clip", type="numpy", sources=["upload", "microphone"]))
            heard = gr.Textbox(label="What the tone reader heard (the query)", interactive=False)
            sound_button = gr.Button("Search", variant="primary")
        pictures = gr.Gallery(label="Best matches (scene: cosine)", columns=8, height=300,
                              object_fit="contain", format="png")
        listing = gr.Dataframe(headers=HEADERS, label="Results", interactive=False)
        text_button.click(by_text, [query, k], [pictures, listing], api_name="search_text")
        query.submit(by_text, [query, k], [pictures, listing], api_name=False)
        picture_button.click(by_picture, [picture, k], [pictures, listing], api_name="search_picture")
        sound_button.click(by_sound, [recording, k], [heard, pictures, listing], api_name="search_sound")
    return demo


__all__ = ["HEADERS", "build_vector_search_app"]
