"""Chapter 14's harness for robustness and relevance: the tiny CLIP's zero-shot accuracy on corrupted
one-shape pictures, and pointing-game scores of relevance maps on scenes of two or three shapes.

Zero-shot classification uses Chapter 6's prompt ensembles for colour (6 classes) and shape (5 classes),
and one ensemble over the 30 colour × shape names (``"a red circle"``) for the pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mmbook import contrastive
from mmbook.corrupt import CORRUPTIONS, corrupt
from mmbook.data import COLORS, SHAPE_KINDS, make_shapes
from mmbook.experiments.clip_bench import COLOR_TEMPLATES, SHAPE_TEMPLATES
from mmbook.relevance import relevance_maps, truth_masks

#: The prompts for the 30 colour × shape names.
PAIR_TEMPLATES = ("a {}", "there is a {}", "one shape: a {}")
#: Every colour × shape name, shape-major (``"red circle"``).
PAIRS = tuple(f"{c} {s}" for s in SHAPE_KINDS for c in COLORS)
TASKS = ("colour", "shape", "pair")


@dataclass(frozen=True)
class Classifiers:
    """Unit class embeddings of the three zero-shot tasks (Chapter 14)."""

    colour: Tensor
    shape: Tensor
    pair: Tensor


def classifiers(model: Any, proc: Any) -> Classifiers:
    """The class embeddings of colour, shape and the colour × shape pair, from prompt ensembles."""
    return Classifiers(
        colour=contrastive.class_embeddings(model, proc, list(COLORS), list(COLOR_TEMPLATES)),
        shape=contrastive.class_embeddings(model, proc, list(SHAPE_KINDS), list(SHAPE_TEMPLATES)),
        pair=contrastive.class_embeddings(model, proc, list(PAIRS), list(PAIR_TEMPLATES)),
    )


def truths(attributes: list[list[dict[str, Any]]]) -> dict[str, Tensor]:
    """The class index of the (first) object of each picture, per task."""
    first = [objects[0] for objects in attributes]
    return {
        "colour": torch.tensor([list(COLORS).index(o["color"]) for o in first]),
        "shape": torch.tensor([SHAPE_KINDS.index(o["shape"]) for o in first]),
        "pair": torch.tensor([PAIRS.index(f"{o['color']} {o['shape']}") for o in first]),
    }


def accuracies(model: Any, proc: Any, images: np.ndarray, truth: dict[str, Tensor],
               heads: Classifiers) -> dict[str, float]:
    """Zero-shot accuracy of each task on ``images`` (uint8, N×H×W×3)."""
    embedded = contrastive.embed_images(model, contrastive.pixels(proc, images))
    return {task: (embedded @ getattr(heads, task).T).argmax(1).eq(truth[task]).float().mean().item()
            for task in TASKS}


def robustness_curves(model: Any, proc: Any, n: int = 600, seed: int = 3) -> dict[str, dict[str, list[float]]]:
    """Accuracy per corruption, task and strength (:data:`mmbook.corrupt.CORRUPTIONS`) on ``n`` one-shape
    pictures of ``make_shapes(n, seed=seed, max_shapes=1, split="train")`` (combinations the model
    was trained on): ``{corruption: {task: [acc per strength]}}``."""
    data = make_shapes(n, seed=seed, max_shapes=1, split="train")
    truth, heads = truths(data.attributes), classifiers(model, proc)
    curves: dict[str, dict[str, list[float]]] = {}
    for name, c in CORRUPTIONS.items():
        rows = [accuracies(model, proc, corrupt(data.images, name, s, seed=seed), truth, heads) for s in c.strengths]
        curves[name] = {task: [row[task] for row in rows] for task in TASKS}
    return curves


@dataclass(frozen=True)
class PointingTest:
    """Scenes, the named object of each (the first whose colour × shape is unique), its pixel truth, the
    pixel truth of all the scene's shapes together, the number of shapes, the named one's cell and the
    text embedding of its name (Chapter 14)."""

    images: np.ndarray
    names: list[str]
    truth: np.ndarray
    any_shape: np.ndarray
    counts: np.ndarray
    cells: np.ndarray
    texts: Tensor
    pixel_values: Tensor


def pointing_test(model: Any, proc: Any, n: int = 300, seed: int = 5) -> PointingTest:
    """Scenes of two or three shapes from ``make_shapes(n, seed=seed, ...)``, each with one named shape;
    the few scenes whose shapes are all alike are left out (Chapter 14)."""
    data = make_shapes(n, seed=seed, min_shapes=2, max_shapes=3, split="train")
    kept, named = [], []
    for i, objects in enumerate(data.attributes):
        keys = [(o["color"], o["shape"]) for o in objects]
        unique = [o for o, k in zip(objects, keys, strict=True) if keys.count(k) == 1]
        if unique:  # a scene of two identical shapes names none
            kept.append(i)
            named.append(unique[0])
    names = [f"{o['color']} {o['shape']}" for o in named]
    heads = classifiers(model, proc)
    images = data.images[kept]
    return PointingTest(
        images=images,
        names=names,
        truth=truth_masks(named, data.image_size),
        any_shape=np.stack([truth_masks(data.attributes[i], data.image_size).max(0) for i in kept]),
        counts=np.array([len(data.attributes[i]) for i in kept]),
        cells=np.array([3 * o["row"] + o["col"] for o in named]),
        texts=heads.pair[[PAIRS.index(name) for name in names]],
        pixel_values=contrastive.pixels(proc, images),
    )


def pointing_maps(model: Any, test: PointingTest, method: str) -> Tensor:
    """Relevance maps ``(N, 3, 3)`` of the test's named shapes by ``method``."""
    return relevance_maps(model, test.pixel_values, test.texts, method)
