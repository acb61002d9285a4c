"""The book's one error for refused input (Chapter 8; every app uses it).

Library code raises :class:`InputError` (a ``ValueError``) with a sentence meant for the person who gave
the input; the apps turn it into ``gr.Error`` in one place, :func:`mmbook.apps.common.checked`.
"""

from __future__ import annotations


class InputError(ValueError):
    """An input the book's code refuses; the message is meant for the person who gave it (Chapter 8)."""


__all__ = ["InputError"]
