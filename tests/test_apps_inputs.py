"""The input checks every app shares (mmbook.apps.common), called directly."""

from __future__ import annotations

import numpy as np
import pytest
from mmbook.apps.common import shapes_text, shorten, whole_number
from mmbook.errors import InputError

VOCABULARY = frozenset({"a", "red", "circle", "in", "the", "center", "?", ","})


@pytest.mark.parametrize(("value", "expected"), [(3, 3), (np.int64(7), 7), (4.0, 4), ("5", 5), (" 6 ", 6)])
def test_whole_number_accepts_integral_values(value: object, expected: int) -> None:
    assert whole_number(value, "seed", 0, 10) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, r"Please enter the seed, a whole number from 0 to 10, or upload a picture\."),
        ("  ", r"Please enter the seed"),
        (True, r"must be a whole number from 0 to 10; got True"),
        (2.5, r"got 2\.5"),
        (float("nan"), r"got nan"),
        ("x" * 5000, r"got 'x{38}…\."),
        (11, r"got 11\."),
        (10**40, r"got a 41-digit number"),
    ],
)
def test_whole_number_refuses_with_a_clear_message(value: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        whole_number(value, "seed", 0, 10, alternative=", or upload a picture")


def test_shorten() -> None:
    assert shorten("short") == "short"
    assert shorten("y" * 100, 10) == "y" * 9 + "…"


def test_shapes_text_strips_and_accepts_known_words() -> None:
    text = shapes_text("  a red circle in the center ", "caption", example="a red circle",
                       vocabulary=VOCABULARY, max_words=8)
    assert text == "a red circle in the center"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, r"Please type a caption, for example 'a red circle'\."),
        ("   ", r"Please type a caption"),
        (" ".join(["red"] * 9), r"too long: 9 words .* keep it to 8\."),
        ("? , ?", r"has no words"),
        ("a pink circle", r"The matcher does not know the word 'pink', only the shapes world's 8 words"),
        ("z" * 500, r"know the word 'z{39}…'"),
    ],
)
def test_shapes_text_refuses_with_a_clear_message(value: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        shapes_text(value, "caption", example="a red circle", vocabulary=VOCABULARY, max_words=8,
                    reader="The matcher does not")
