"""The assistant's chat rules: which tool a message goes to, and what it passes on (Chapter 10).

:func:`route` reads one chat message (the value of ``gr.MultimodalTextbox``) and the conversation so far and
returns a :class:`Route`; :class:`mmbook.apps.assistant.Assistant` calls the tool it names. The rules are
written, not learned, so every decision can be explained and tested without a server.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmbook.errors import InputError
from mmbook.limits import MAX_TEXT_CHARS

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
#: The chat reads clips with ``scipy.io.wavfile``; the Listen tab reads any format Gradio can decode.
AUDIO_SUFFIXES = frozenset({".wav"})
#: A message that starts with one of these words (and no attached file) is a search.
SEARCH_WORDS = ("find", "show", "search")
_FILLER = ("me", "for", "pictures", "picture", "images", "image", "of", "with")
TOOL_NAMES = {"search": "text-to-image search", "answer": "visual question answering", "caption": "captioning",
              "transcribe": "speech input", "vlm": "ask anything (vision-language model)", "help": "help"}  # fmt: skip


@dataclass(frozen=True)
class Route:
    """Where the chat sends a message: ``tool`` (a key of :data:`TOOL_NAMES`), the text it passes on
    (question or query) and the file it reads, if any (Chapter 10)."""

    tool: str
    text: str
    file: str | None = None


def _file_path(item: Any) -> str | None:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        if isinstance(item.get("path"), str):
            return item["path"]
        if isinstance(item.get("file"), dict):
            return _file_path(item["file"])
    return None


def last_picture(history: Sequence[Any] | None) -> str | None:
    """The path of the last picture a visitor sent in this conversation (Gradio 6 messages), or ``None``."""
    for turn in reversed(list(history or [])):
        if not isinstance(turn, dict) or turn.get("role") != "user":
            continue
        content = turn.get("content")
        for item in reversed(content if isinstance(content, list) else [content]):
            path = _file_path(item)
            if path is not None and Path(path).suffix.lower() in IMAGE_SUFFIXES:
                return path
    return None


def search_query(text: str) -> str | None:
    """The query of a search message ("find a red circle" → "a red circle"), or ``None`` if it is not one."""
    words = text.split()
    if not words or words[0].lower().strip(":,") not in SEARCH_WORDS:
        return None
    rest = words[1:]
    while rest and rest[0].lower().strip(":,") in _FILLER:
        rest = rest[1:]
    return " ".join(rest)


def route(message: Any, history: Sequence[Any] | None = None) -> Route:
    """Send a chat message to one tool, by these rules, in this order (Chapter 10):

    1. an attached clip (``.wav``) → **transcribe** it (any text is ignored);
    2. an attached picture and some text → **answer** the text as a question about the picture;
    3. an attached picture alone → **caption** it;
    4. text that starts with "find", "show" or "search" → **search** the gallery for the rest;
    5. a question (text ending in "?") or a request that starts with "describe", when a picture was sent
       earlier in the conversation → about that picture: **answer** when it is one of the five kinds of
       question the ViLT was trained on (:func:`mmbook.data.questions.question_type`), else **vlm** (ask anything);
    6. anything else → **help**, which says what the assistant can do.

    ``message`` is ``gr.MultimodalTextbox``'s value, ``{"text": ..., "files": [...]}``. More than one file,
    a file that is neither a picture nor a WAV clip, and an empty message are :class:`mmbook.errors.InputError`.
    """
    if not isinstance(message, dict):
        raise InputError("A chat message is {'text': ..., 'files': [...]}.")
    text = message.get("text") or ""
    if not isinstance(text, str):
        raise InputError("The message's text must be a string.")
    text = " ".join(text.split())
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(f"The message has {len(text):,} characters; the limit is {MAX_TEXT_CHARS}.")
    files = [_file_path(f) for f in message.get("files") or []]
    if any(f is None for f in files):
        raise InputError("An attachment could not be read as a file.")
    if len(files) > 1:
        raise InputError(f"Please attach one file at a time; this message has {len(files)}.")
    if files:
        path = files[0]
        suffix = Path(path).suffix.lower()
        if suffix in AUDIO_SUFFIXES:
            return Route("transcribe", text, path)
        if suffix in IMAGE_SUFFIXES:
            return Route("answer", text, path) if text else Route("caption", "", path)
        raise InputError(f"I read pictures ({', '.join(sorted(IMAGE_SUFFIXES))}) and WAV clips; "
                               f"{Path(path).name!r} is neither.")
    if not text:
        raise InputError("Please type a message, or attach a picture or a WAV clip.")
    query = search_query(text)
    if query is not None:
        return Route("search", query)
    from mmbook.data.questions import question_type

    earlier = last_picture(history)
    if earlier is not None and (text.endswith("?") or text.lower().startswith("describe")):
        return Route("answer" if question_type(text) is not None else "vlm", text, earlier)
    return Route("help", text)
