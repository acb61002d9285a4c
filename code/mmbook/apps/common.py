"""What the book's apps share (Chapter 2 on): the checks of what a user types, the one place where a
refused input becomes a ``gr.Error`` (:func:`checked`), components that hand the raw value to the
handler (:func:`raw`), thread-safe lazy models (:func:`once`), and the ask and caption tabs. Apps import
this module and the library (sound for ``gr.Audio`` comes from :mod:`mmbook.sound`), never each other.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable, Collection
from typing import Any, TypeVar

import gradio as gr
import numpy as np

from mmbook.data import words
from mmbook.errors import InputError
from mmbook.limits import MAX_PIXELS

T = TypeVar("T")
C = TypeVar("C", bound=gr.components.Component)
EXAMPLE_QUESTION = "what color is the circle?"


# ----------------------------------------------------------------------------------------------------
# checks of what a user types: each returns the clean value or raises InputError


def shorten(text: str, limit: int = 40) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis, for quoting user input in a message (Chapter 2)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def whole_number(value: Any, what: str, low: int, high: int, *, alternative: str = "") -> int:
    """``value`` as an int in ``[low, high]``, or an :class:`~mmbook.errors.InputError` that says what is
    wrong (Chapter 2).

    Accepts ints, integral floats and strings of them; refuses booleans, fractions, infinities and NaN.
    ``alternative`` ends the message for an empty value (", or upload a picture").
    """
    expected = f"a whole number from {low:,} to {high:,}"
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InputError(f"Please enter the {what}, {expected}{alternative}.")
    if isinstance(value, bool):
        raise InputError(f"The {what} must be {expected}; got {value!r}.")
    if isinstance(value, int | np.integer):
        number = int(value)  # exact, even for huge integers
    else:
        try:
            as_float = float(value)
        except (TypeError, ValueError, OverflowError):
            raise InputError(f"The {what} must be {expected}; got {shorten(repr(value))}.") from None
        if not (math.isfinite(as_float) and as_float.is_integer()):
            raise InputError(f"The {what} must be {expected}; got {value!r}.")
        number = int(as_float)
    if not low <= number <= high:
        shown = f"{number:,}" if abs(number) < 10**15 else f"a {len(str(abs(number)))}-digit number"
        raise InputError(f"The {what} must be {expected}; got {shown}.")
    return number


def shapes_text(value: Any, what: str, *, example: str, vocabulary: Collection[str], max_words: int,
                reader: str = "The models do not") -> str:
    """Typed text for a model that knows only the shapes world's words: stripped, or an
    :class:`~mmbook.errors.InputError` when it is empty, longer than ``max_words`` words (punctuation marks
    count), has no word at all, or uses a word outside ``vocabulary``; ``reader`` starts that last message
    (Chapters 5 and 7)."""
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise InputError(f"Please type a {what}, for example {example!r}.")
    tokens = words(text)
    if len(tokens) > max_words:
        raise InputError(f"That {what} is too long: {len(tokens):,} words (punctuation marks count too); "
                         f"please keep it to {max_words}.")
    if not any(w.isalpha() for w in tokens):
        raise InputError(f"The {what} has no words; please write one like {example!r}.")
    unknown = next((w for w in tokens if w not in vocabulary), None)
    if unknown is not None:
        raise InputError(f"{reader} know the word {shorten(unknown)!r}, only the shapes world's "
                         f"{len(vocabulary)} words, as in {example!r}.")
    return text


def check_pixels(array: np.ndarray) -> None:
    """An :class:`~mmbook.errors.InputError` for a picture above :data:`mmbook.limits.MAX_PIXELS` (Chapter 1)."""
    if array.ndim >= 2 and array.shape[0] * array.shape[1] > MAX_PIXELS:
        raise InputError(f"That picture has {array.shape[0] * array.shape[1]:,} pixels; please use one of at "
                         f"most {MAX_PIXELS:,} ({math.isqrt(MAX_PIXELS):,}×{math.isqrt(MAX_PIXELS):,}).")


# ----------------------------------------------------------------------------------------------------
# the app boundary


def checked(fn: Callable[..., T]) -> Callable[..., T]:
    """Turn the :class:`~mmbook.errors.InputError` raised inside ``fn`` into a ``gr.Error`` with the same
    message: the one place where the library's refusals reach a user (Chapter 10).

    ``functools.wraps`` keeps the signature visible, so ``gr.api`` still sees the parameters.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            raise gr.Error(str(exc)) from None

    return wrapper


def raw(component: C) -> C:
    """Let the handler check what a user sent, so every refusal is a clear ``gr.Error`` (Chapter 10).

    A ``gr.Number`` or ``gr.Slider`` hands over the raw value (its own preprocessing fails with Gradio's
    generic message on ``None`` or text), and so does a ``gr.Radio`` or ``gr.Dropdown`` of ``type="value"``
    (the handler names the choices); any other component's preprocessing (decoding an upload) turns a
    failure into a ``gr.Error`` that says what the upload should have been (a picture, a sound clip). Wraps
    the instance, not the class: a subclass makes Gradio write a ``.pyi`` stub.
    """
    if isinstance(component, gr.Number | gr.Slider | gr.Radio | gr.Dropdown):
        component.preprocess = lambda payload: payload  # type: ignore[method-assign]
        return component
    decode = component.preprocess
    kind = "picture" if isinstance(component, gr.Image) else "sound clip" if isinstance(component, gr.Audio) else "file"

    def preprocess(payload: Any) -> Any:
        try:
            return decode(payload)
        except gr.Error:
            raise
        except Exception as error:  # PIL's UnidentifiedImageError, truncated files, decompression bombs ...
            raise gr.Error(f"The upload could not be read as a {kind} ({type(error).__name__}); please upload "
                           "another file.") from None

    component.preprocess = preprocess  # type: ignore[method-assign]
    return component


def once(loader: Callable[[], T]) -> Callable[[], T]:
    """``loader`` called at most once, even by concurrent first requests (a lock); later calls return the
    same object (Chapter 1)."""
    lock = threading.Lock()
    made: list[T] = []

    @functools.wraps(loader)
    def get() -> T:
        if not made:
            with lock:
                if not made:
                    made.append(loader())
        return made[0]

    return get


# ----------------------------------------------------------------------------------------------------
# shared tabs


def ask_tab(answer: Callable[..., Any]) -> None:
    """The inside of a question-answering tab: picture and question in, best answers and the path's note
    out, as the endpoint ``/answer`` (Chapters 8 and 10)."""
    with gr.Row():
        image = raw(gr.Image(label="Picture", type="filepath", image_mode=None, height=256))
        with gr.Column():
            question = gr.Textbox(label="Question", value=EXAMPLE_QUESTION)
            button = gr.Button("Answer", variant="primary")
            answers = gr.Label(label="Best answers", num_top_classes=3)
            note = gr.Markdown()
    button.click(answer, [image, question], [answers, note], api_name="answer")


def caption_tab(caption: Callable[..., Any]) -> None:
    """The inside of a captioning tab: picture in; caption, the gallery picture a retrieval caption came
    from, and the path's note out, as the endpoint ``/caption`` (Chapters 8 and 10)."""
    with gr.Row():
        image = raw(gr.Image(label="Picture", type="filepath", image_mode=None, height=256))
        with gr.Column():
            button = gr.Button("Caption", variant="primary")
            text = gr.Textbox(label="Caption")
            source = gr.Image(label="Where a retrieval caption came from", height=160)
            note = gr.Markdown()
    button.click(caption, [image], [text, source, note], api_name="caption")


__all__ = ["EXAMPLE_QUESTION", "ask_tab", "caption_tab", "check_pixels", "checked", "once", "raw", "shapes_text",
           "shorten", "whole_number"]
