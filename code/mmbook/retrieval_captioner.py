"""Chapter 8's offline captions: retrieval, not generation.

Offline there is no captioning model, so the honest substitute, :class:`RetrievalCaptioner`, *retrieves*
the caption of the most similar shapes-world picture under the tiny CLIP. It never generates text;
:func:`retrieval_precision` measures how often the retrieved caption is right.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

GALLERY_SIZE, GALLERY_SEED = 3000, 31


@dataclass
class Retrieved:
    """A retrieval caption: the caption of gallery picture ``index``, its cosine similarity and picture."""

    caption: str
    score: float
    index: int
    image: np.ndarray


class RetrievalCaptioner:
    """Caption a picture by retrieving the caption of the most similar gallery picture (Chapter 8).

    The gallery is shapes-world pictures with their captions, embedded once by the tiny CLIP; a query costs
    one pass of the image tower and one matrix product. The result is always an existing caption of
    *another* picture: it can be right only as far as the gallery holds a similar scene, and it says so.
    """

    label = "retrieval caption (the caption of the most similar gallery picture; nothing was generated)"

    def __init__(self, model: Any, processor: Any, images: np.ndarray, captions: Sequence[str],
                 attributes: Sequence[Any] | None = None) -> None:
        from mmbook import contrastive

        self.model, self.processor = model, processor
        self.images, self.captions, self.attributes = images, list(captions), attributes
        self.embeddings = contrastive.embed_images(model, contrastive.pixels(processor, images))

    def __call__(self, images: Sequence[Any], k: int = 1) -> list[list[Retrieved]]:
        """The ``k`` best retrieval captions of each picture (uint8 arrays or PIL images, any size)."""
        from mmbook import contrastive
        from mmbook.inputs import to_rgb

        arrays = [np.asarray(to_rgb(image)) for image in images]
        pixel_values = self.processor(images=arrays, return_tensors="pt")["pixel_values"]
        query = contrastive.embed_images(self.model, pixel_values)
        scores, found = (query @ self.embeddings.T).topk(k, dim=1)
        return [[Retrieved(self.captions[j], s, j, self.images[j]) for s, j in zip(row_s, row_j, strict=True)]
                for row_s, row_j in zip(scores.tolist(), found.tolist(), strict=True)]


@lru_cache(maxsize=1)
def retrieval_captioner() -> RetrievalCaptioner:
    """The offline captioner: the tiny CLIP over a gallery of 3,000 shapes-world pictures (Chapter 8)."""
    from mmbook.data import make_shapes
    from mmbook.zoo import tiny_clip

    model, processor = tiny_clip()
    gallery = make_shapes(GALLERY_SIZE, seed=GALLERY_SEED)
    return RetrievalCaptioner(model, processor, gallery.images, gallery.captions, gallery.attributes)


def retrieval_precision(captioner: RetrievalCaptioner, shapes: Any) -> dict[str, float]:
    """How right the retrieval captions of ``shapes`` are (Chapter 8).

    ``exact``: the retrieved caption states exactly the query's objects (shape, colour, cell);
    ``objects``: the share of the objects it states that are in the query picture.
    """
    from mmbook.contrastive import scene_key

    if captioner.attributes is None:
        raise ValueError("the captioner's gallery has no attributes to check against")
    found = [best[0].index for best in captioner(list(shapes.images))]
    exact, named = [], []
    for query, j in zip(shapes.attributes, found, strict=True):
        q, g = scene_key(query), scene_key(captioner.attributes[j])
        exact.append(q == g)
        named.append(len(q & g) / len(g))
    return {"exact": float(np.mean(exact)), "objects": float(np.mean(named))}
