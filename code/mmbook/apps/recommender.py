"""Recommendations from what a user liked, by picture, caption or both: the tiny CLIP offline (Chapter 12).

The catalogue's image and caption embeddings are computed once, when the app is built
(:class:`mmbook.recommend.Recommender`); a request averages the embeddings of the liked items into a profile
and ranks the catalogue by cosine similarity to it.
"""

from __future__ import annotations

import re
from typing import Any

import gradio as gr
import numpy as np

from mmbook.apps.common import checked, raw, shorten, whole_number
from mmbook.errors import InputError
from mmbook.recommend import K, Recommender
from mmbook.viz import upscale_nearest

DISPLAY_SIZE = 96
MODALITIES = ("image", "text", "fusion")
#: The most liked items one request may list.
MAX_LIKED = 50
MAX_RESULTS = 24


def parse_items(text: Any, n_items: int) -> list[int]:
    """Item numbers typed as "3, 17 42": distinct, in ``[0, n_items)``, or an
    :class:`~mmbook.errors.InputError` that says what is wrong (Chapter 12)."""
    if not isinstance(text, str):
        raise InputError("Please type item numbers separated by commas or spaces, for example '3, 17, 42'.")
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    if len(parts) > MAX_LIKED:
        raise InputError(f"Please list at most {MAX_LIKED} liked items; got {len(parts):,}.")
    bad = [p for p in parts if not p.isdigit()]
    if bad:
        raise InputError(f"Item numbers are whole numbers from 0 to {n_items - 1:,}; got {shorten(repr(bad[0]))}.")
    items = list(dict.fromkeys(int(p) for p in parts))
    outside = [i for i in items if i >= n_items]
    if outside:
        raise InputError(f"The catalogue has items 0 to {n_items - 1:,}; there is no item {outside[0]:,}.")
    return items


def build_recommender_app(recommender: Recommender | None = None) -> gr.Blocks:
    """Pick a simulated user or list liked items; get recommendations with pictures (Chapter 12).

    Without ``recommender``, the catalogue and users are ``mmbook.recommend.simulate()`` embedded by the
    tiny CLIP.
    """
    if recommender is None:
        from mmbook.zoo import tiny_clip

        recommender = Recommender.build(*tiny_clip())
    data = recommender.data

    def gallery(items: list[int]) -> list[tuple[np.ndarray, str]]:
        return [(upscale_nearest(data.items.images[i], DISPLAY_SIZE), f"#{i}: {data.items.captions[i]}")
                for i in items]

    @checked
    def recommend(user: Any, liked_text: Any, modality: Any, k: Any) -> tuple[Any, Any, str]:
        if modality not in MODALITIES:
            raise InputError(f"The modality must be one of {', '.join(MODALITIES)}; got {shorten(repr(modality))}.")
        k = whole_number(k, "number of recommendations", 1, MAX_RESULTS)
        liked = parse_items(liked_text, data.n_items) if isinstance(liked_text, str) and liked_text.strip() else []
        if liked:
            note = f"Recommendations for someone who liked {len(liked)} item(s)."
        else:
            u = whole_number(user, "user number", 0, data.n_users - 1, alternative=", or list liked items")
            liked = data.train[u].tolist()
            note = f"User {u} likes {data.describe(u)}; the items they liked are on the left."
        found = recommender.recommend(liked, modality, k)
        return gallery(liked), gallery(found), note

    with gr.Blocks(title="Recommendations") as demo:
        gr.Markdown(
            f"## Recommend from {data.n_items:,} shapes-world items\n"
            "Pick a simulated user, or type the numbers of items you like (they override the user). "
            "The profile is the mean embedding of the liked items; the recommendations are the most similar items."
        )
        with gr.Row():
            user = raw(gr.Number(value=0, label=f"User (0 to {data.n_users - 1:,})", precision=0))
            liked = gr.Textbox(label="Or: liked items", placeholder="3, 17, 42", scale=2)
            modality = raw(gr.Radio(list(MODALITIES), value="fusion", label="Embedding"))
            k = raw(gr.Slider(1, MAX_RESULTS, value=K, step=1, label="Recommendations"))
        button = gr.Button("Recommend", variant="primary")
        note = gr.Markdown()
        with gr.Row():
            history = gr.Gallery(label="Liked", columns=4, height=260, object_fit="contain", format="png")
            found = gr.Gallery(label="Recommended", columns=5, height=260, object_fit="contain", format="png")
        button.click(recommend, [user, liked, modality, k], [history, found, note], api_name="recommend")
    return demo


__all__ = ["MODALITIES", "build_recommender_app", "parse_items"]
