"""Checks of what a user types into the book's apps, shared by every app (Chapter 2 on)."""

from __future__ import annotations

import math
from typing import Any

import gradio as gr
import numpy as np


def whole_number(value: Any, what: str, low: int, high: int) -> int:
    """``value`` as an int in ``[low, high]``, or a ``gr.Error`` that says what is wrong (Chapter 2).

    Accepts ints, integral floats and strings of them; refuses booleans, fractions, infinities and NaN.
    """
    expected = f"a whole number from {low:,} to {high:,}"
    if value is None or (isinstance(value, str) and not value.strip()):
        raise gr.Error(f"Please enter the {what}, {expected}.")
    if isinstance(value, bool):
        raise gr.Error(f"The {what} must be {expected}; got {value!r}.")
    if isinstance(value, int | np.integer):
        number = int(value)  # exact, even for huge integers
    else:
        try:
            as_float = float(value)
        except (TypeError, ValueError, OverflowError):
            raise gr.Error(f"The {what} must be {expected}; got {value!r}.") from None
        if not (math.isfinite(as_float) and as_float.is_integer()):
            raise gr.Error(f"The {what} must be {expected}; got {value!r}.")
        number = int(as_float)
    if not low <= number <= high:
        shown = f"{number:,}" if abs(number) < 10**15 else f"a {len(str(abs(number)))}-digit number"
        raise gr.Error(f"The {what} must be {expected}; got {shown}.")
    return number
