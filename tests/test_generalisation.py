"""Chapter 14's compositional tests: the items, the scorers' batching, the bootstrap interval."""

from __future__ import annotations

import numpy as np
import pytest
from mmbook import generalisation as gen
from mmbook import zoo
from mmbook.data.world import HELDOUT_COMBINATIONS


def test_colour_items() -> None:
    items = gen.colour_items(120, seed=0)
    assert len(items) == 120 and items.unseen.any() and not items.unseen.all()
    for caps, choices, answer, shape in zip(items.captions, items.choices, items.answer, items.shape,
                                            strict=True):
        assert caps[answer].endswith(f"{choices[answer]} {shape}")
    pairs = [(k, c[a]) for k, c, a in zip(items.shape, items.choices, items.answer, strict=True)]
    assert [p in HELDOUT_COMBINATIONS for p in pairs] == items.unseen.tolist()


def test_binding_items_swap_colours_only() -> None:
    items = gen.binding_items(40, seed=0)
    assert len(items) == 40 and items.unseen.sum() == 20
    for i in range(len(items)):
        right, swapped = items.captions[i]
        assert right != swapped and sorted(right.split()) == sorted(swapped.split())
        asked = (items.shape[i], items.choices[i][0])
        assert (asked in HELDOUT_COMBINATIONS) == items.unseen[i]
        assert (items.other[i], items.choices[i][0]) not in HELDOUT_COMBINATIONS  # the swap is familiar
    other = gen.ask_about_other(items)
    assert other.shape == items.other and other.choices[0] == items.choices[0][::-1]
    held = items.subset(items.unseen)
    assert len(held) == 20 and held.unseen.all()
    assert (other.first == ~items.first).all()
    with pytest.raises(ValueError, match="binding"):
        gen.ask_about_other(gen.colour_items(4, seed=0))


def test_correct_counts_ties_as_wrong() -> None:
    scores = np.array([[2.0, 1.0], [1.0, 1.0], [0.0, 3.0]])
    assert gen.correct(scores, np.array([0, 0, 0])).tolist() == [True, False, False]


def test_difference_interval() -> None:
    rng = np.random.default_rng(0)
    seen, unseen = rng.random(4000) < 0.8, rng.random(4000) < 0.6
    gap, low, high = gen.difference_interval(seen, unseen, resamples=2000)
    assert gap == pytest.approx(seen.mean() - unseen.mean())
    half = 1.96 * np.sqrt(seen.mean() * (1 - seen.mean()) / 4000 + unseen.mean() * (1 - unseen.mean()) / 4000)
    assert low == pytest.approx(gap - half, abs=0.005) and high == pytest.approx(gap + half, abs=0.005)
    with pytest.raises(ValueError, match="both groups"):
        gen.difference_interval([], [True])


def test_vlm_scores_do_not_depend_on_the_batch_and_match_its_answers() -> None:
    from mmbook import vlm

    model, processor = zoo.load("tiny-vlm")
    items = gen.binding_items(4, seed=3)
    for score in (gen.vlm_colour_logits, gen.vlm_exists_scores):
        together = score(model, processor, items)
        alone = score(model, processor, items, batch_size=1)
        assert together.shape == (4, 2) and np.allclose(together, alone, atol=1e-4)
    colours = gen.vlm_choice_scores(model, processor, gen.colour_items(3, seed=0))
    one = gen.colour_items(3, seed=0)
    for i in range(3):  # the greedy answer is a colour word: the one with the highest logit
        answer = vlm.ask(model, processor, one.images[i], f"what color is the {one.shape[i]}?", 3)
        assert gen.COLOUR_NAMES[int(colours[i].argmax())] == answer
