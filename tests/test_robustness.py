"""Chapter 14's robustness harness on a small random CLIP: the shapes of the curves and the pointing test."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mmbook.corrupt import CORRUPTIONS
from mmbook.data import make_shapes
from mmbook.experiments import robustness
from mmbook.relevance import cell_points


@pytest.fixture(scope="module")
def toy():
    from mmbook import contrastive
    from transformers import CLIPModel

    proc = contrastive.processor(make_shapes(64, seed=0).images)
    torch.manual_seed(0)
    return CLIPModel(contrastive.clip_config(proc.tokenizer)).eval(), proc


def test_pairs_and_truths() -> None:
    assert len(robustness.PAIRS) == 30 and len(set(robustness.PAIRS)) == 30
    data = make_shapes(20, seed=1, max_shapes=1)
    truth = robustness.truths(data.attributes)
    for i, objects in enumerate(data.attributes):
        name = robustness.PAIRS[truth["pair"][i]]
        assert name == f"{objects[0]['color']} {objects[0]['shape']}"


def test_curves_have_one_accuracy_per_rung(toy) -> None:
    model, proc = toy
    curves = robustness.robustness_curves(model, proc, n=12, seed=3)
    assert set(curves) == set(CORRUPTIONS)
    clean = {task: curves["noise"][task][0] for task in robustness.TASKS}
    for name, c in CORRUPTIONS.items():
        for task in robustness.TASKS:
            values = curves[name][task]
            assert len(values) == len(c.strengths) and all(0 <= v <= 1 for v in values)
            assert values[0] == clean[task]  # the clean rung is the same pictures every time


def test_pointing_test_names_one_shape_per_scene(toy) -> None:
    model, proc = toy
    test = robustness.pointing_test(model, proc, n=40, seed=5)
    data = make_shapes(40, seed=5, min_shapes=2, max_shapes=3, split="train")
    assert 30 <= len(test.names) <= 40 and len(test.images) == len(test.truth) == len(test.texts)
    points = cell_points(test.cells)
    rows = np.arange(len(test.names))
    assert (test.truth[rows, points[:, 0], points[:, 1]] >= 0.5).all()  # the mask is at the named cell
    assert (test.any_shape >= test.truth).all() and set(test.counts) <= {2, 3}
    kept = [a for a in data.attributes if any(
        [(o["color"], o["shape"]) for o in a].count((o["color"], o["shape"])) == 1 for o in a)]
    for objects, name in zip(kept, test.names, strict=True):
        names = [f"{o['color']} {o['shape']}" for o in objects]
        assert names.count(name) == 1
