"""Chapter 14's hallucination remedies: the negative and describe-first conversations, and answers checked
against a description."""

import pytest
from mmbook import zoo
from mmbook.data import instruct
from mmbook.data.shapes import Shapes, make_shapes
from mmbook.experiments import hallucination as hl


@pytest.fixture(scope="module")
def scenes() -> Shapes:
    return make_shapes(40, seed=3, max_shapes=4, split="train")


@pytest.mark.parametrize("negatives", [1, 3])
def test_negative_turns_ask_about_present_and_absent_objects(scenes: Shapes, negatives: int) -> None:
    turns = hl.negative_turns(scenes, negatives, seed=1)
    assert len(turns) == len(scenes.attributes) * (1 + negatives)
    assert sum(t.answer == "no" for t in turns) == len(scenes.attributes) * negatives
    for t in turns:
        present = hl.asked_pair(t.question) in instruct.pairs_of(scenes.attributes[t.image])
        assert present == (t.answer == "yes"), t


def test_describe_first_answers_describe_then_decide(scenes: Shapes) -> None:
    for t in hl.describe_first_turns(scenes, seed=1):
        reference = instruct.describe(scenes.attributes[t.image])
        assert t.answer.startswith(reference)
        assert hl.last_word(t.answer) in {"yes", "no"}
    assert hl.last_word("") == ""


def test_grounded_answers_check_the_description() -> None:
    turns = [instruct.Turn(0, "is there a red circle?", "yes", "pope"),
             instruct.Turn(0, "is there a blue circle?", "no", "pope"),
             instruct.Turn(1, "is there a red circle?", "no", "pope")]  # fmt: skip
    descriptions = ["a red circle and a green square.", "a red one"]
    assert hl.grounded_answers(descriptions, turns) == ["yes", "no", "no"]
    with pytest.raises(ValueError, match="one colour"):
        hl.asked_pair("describe the picture.")


def test_remedies_are_registered() -> None:
    entry = zoo.REGISTRY["tiny-vlm-hallucination-remedies"]
    assert entry.settings == hl.REMEDIES and entry.train is hl.train_remedies
    with pytest.raises(ValueError, match="runs"):
        hl._check_runs([])
