"""Checks of what a user types into the book's apps, shared by every app (Chapter 2 on)."""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import gradio as gr
import numpy as np

from mmbook.data import words


def shorten(text: str, limit: int = 40) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis, for quoting user input in a message (Chapter 2)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def whole_number(value: Any, what: str, low: int, high: int, *, alternative: str = "") -> int:
    """``value`` as an int in ``[low, high]``, or a ``gr.Error`` that says what is wrong (Chapter 2).

    Accepts ints, integral floats and strings of them; refuses booleans, fractions, infinities and NaN.
    ``alternative`` ends the message for an empty value (", or upload a picture").
    """
    expected = f"a whole number from {low:,} to {high:,}"
    if value is None or (isinstance(value, str) and not value.strip()):
        raise gr.Error(f"Please enter the {what}, {expected}{alternative}.")
    if isinstance(value, bool):
        raise gr.Error(f"The {what} must be {expected}; got {value!r}.")
    if isinstance(value, int | np.integer):
        number = int(value)  # exact, even for huge integers
    else:
        try:
            as_float = float(value)
        except (TypeError, ValueError, OverflowError):
            raise gr.Error(f"The {what} must be {expected}; got {shorten(repr(value))}.") from None
        if not (math.isfinite(as_float) and as_float.is_integer()):
            raise gr.Error(f"The {what} must be {expected}; got {value!r}.")
        number = int(as_float)
    if not low <= number <= high:
        shown = f"{number:,}" if abs(number) < 10**15 else f"a {len(str(abs(number)))}-digit number"
        raise gr.Error(f"The {what} must be {expected}; got {shown}.")
    return number


def shapes_text(value: Any, what: str, *, example: str, vocabulary: Collection[str], max_words: int,
                reader: str = "The models do not") -> str:
    """Typed text for a model that knows only the shapes world's words: stripped, or a ``gr.Error`` when it
    is empty, longer than ``max_words`` words (punctuation marks count), has no word at all, or uses a word
    outside ``vocabulary``; ``reader`` starts that last message (Chapters 5 and 7)."""
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise gr.Error(f"Please type a {what}, for example {example!r}.")
    tokens = words(text)
    if len(tokens) > max_words:
        raise gr.Error(f"That {what} is too long: {len(tokens):,} words (punctuation marks count too); "
                       f"please keep it to {max_words}.")
    if not any(w.isalpha() for w in tokens):
        raise gr.Error(f"The {what} has no words; please write one like {example!r}.")
    unknown = next((w for w in tokens if w not in vocabulary), None)
    if unknown is not None:
        raise gr.Error(f"{reader} know the word {shorten(unknown)!r}, only the shapes world's "
                       f"{len(vocabulary)} words, as in {example!r}.")
    return text
