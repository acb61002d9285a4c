"""The shapes world's questions, parsed back into their types (Chapter 8)."""

from __future__ import annotations

from mmbook.data._text import words


def question_type(question: str) -> str | None:
    """Which of :data:`mmbook.data.QUESTION_TYPES` a question is, from its first words, or ``None`` (Chapter 8).

    Exact for every question that :func:`mmbook.data.make_shapes` writes; used to quote the tiny ViLT's
    measured accuracy for that kind of question next to its answer.
    """
    text = " ".join(words(question))
    if text.startswith(("what color", "what colour", "which color", "which colour")):
        return "color"
    if text.startswith(("what shape", "which shape", "what kind of shape")):
        return "shape"
    if text.startswith("how many"):
        return "count"
    if text.startswith(("is the ", "is anything", "is there a shape")):
        return "position"
    if text.startswith(("is there", "do you see")):
        return "exists"
    return None
