"""Asking a vision-language model about a picture, one answer streamed word by word (Chapter 11; the VLM
chat app and Chapter 10's assistant use it).

One code path serves the hub's model and the book's: :func:`load_chat_model` loads the catalogue entry
``"smolvlm"`` through :func:`mmbook.hub.load` (``AutoModelForImageTextToText`` and ``AutoProcessor``), that
is ``HuggingFaceTB/SmolVLM-256M-Instruct`` online and the book's tiny LLaVA-style VLM offline, on
:func:`mmbook.env.device`. :func:`stream_answer` writes the question and the picture into the processor's
chat template (``apply_chat_template``), runs ``model.generate`` greedily in a thread and yields the
answer as a ``TextIteratorStreamer`` delivers it.

Inputs are checked before anything runs; a refusal is an :class:`mmbook.errors.InputError` (a
``ValueError``) whose message is meant for the user:

- the picture goes through :func:`mmbook.inputs.to_rgb` (files, PIL images, arrays; grey and transparent
  pictures become RGB; fewer than 16 pixels a side or more than :data:`mmbook.limits.MAX_PIXELS` are
  refused, more than 1,024 a side shrunk);
- the question must be non-empty, at most :data:`mmbook.limits.MAX_TEXT_CHARS` characters, and offline
  made of words the tiny VLM knows;
- ``max_new_tokens`` must be a whole number from 1 to :data:`MAX_NEW_TOKENS`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmbook import hub, inputs
from mmbook.errors import InputError
from mmbook.vlm import MAX_NEW_TOKENS

#: The catalogue entry the chat loads.
VLM_NAME = "smolvlm"
#: New tokens per answer unless the caller asks for another number (1 to :data:`MAX_NEW_TOKENS`).
DEFAULT_NEW_TOKENS = 32
#: Seconds the reader of the stream waits for the next piece before it gives up.
STREAM_TIMEOUT_S = 120.0
#: Scenes of the shapes world that no book model trained on (the tiny VLM trains on seeds 21 and 22 and
#: is measured on 1001 and 1002).
EXAMPLE_SEED = 4242
EXAMPLE_QUESTIONS: tuple[str, ...] = (
    "what color is the circle?",
    "how many shapes are there?",
    "is there a red square?",
    "describe the picture.",
)


@dataclass
class ChatModel:
    """A loaded vision-language model, its processor and which path it came from (Chapter 11).

    ``vocabulary`` is the set of words the model knows when that set is small (the tiny VLM's), else
    ``None``; ``note`` says in one sentence what runs.
    """

    model: Any
    processor: Any
    source: str
    online: bool
    note: str
    vocabulary: frozenset[str] | None = None


def load_chat_model(
    name: str = VLM_NAME, *, offline: bool | None = None, source: str | None = None, device: str | None = None
) -> ChatModel:
    """The catalogue's VLM ``name`` through :func:`mmbook.hub.load`, in eval mode on ``device`` (default
    :func:`mmbook.env.device`) (Chapter 11).

    Online the hub checkpoint; offline the book's tiny VLM; ``source`` loads another folder saved in the
    same format (the tests' small random checkpoints).
    """
    from mmbook import env

    entry = hub.lookup(name)
    offline = env.is_offline() if offline is None else offline
    device = env.device() if device is None else device
    model, processor = hub.load(name, offline=offline, source=source, device=device)
    if source is not None:
        where, online = str(source), False
        note = f"A local checkpoint ({where}) loaded with the classes of {entry.hub_id}."
    elif offline:
        where, online = hub.resolve(name, offline=True, verbose=False).source, False
        note = (
            f"Offline: this is the book's tiny VLM (Chapter 11), not a real vision-language model. It stands "
            f"in for {entry.hub_id} and knows only the shapes world: colours, shapes, positions, counts."
        )
    else:
        where, online = entry.hub_id, True
        origin = "a SIMULATED checkpoint (random weights)" if env.is_simulated_hub() else "the Hugging Face Hub"
        note = f"Online: {entry.hub_id} from {origin}, on {device}."
    return ChatModel(model, processor, where, online, note, word_vocabulary(processor.tokenizer))


def word_vocabulary(tokenizer: Any) -> frozenset[str] | None:
    """The words of a word-level tokenizer (the tiny VLM's, which turns any other word into ``<unk>``), or
    ``None`` for a subword tokenizer, which can spell any word (Chapter 11)."""
    from tokenizers.models import WordLevel

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not isinstance(backend.model, WordLevel):
        return None
    return frozenset(token for token in tokenizer.get_vocab() if token not in tokenizer.all_special_tokens)


# ----------------------------------------------------------------------------------------------------
# checks of what a user gives


def check_picture(picture: Any) -> Any:
    """``picture`` (a file path, a PIL image or an array) as an RGB ``PIL.Image``, else an
    :class:`~mmbook.errors.InputError` (Chapter 11)."""
    if picture is None or (isinstance(picture, str) and not picture.strip()):
        raise InputError("Please add a picture first: the model answers questions about a picture.")
    return inputs.to_rgb(picture)


def check_question(question: Any, vocabulary: frozenset[str] | None = None) -> str:
    """``question`` stripped, or an :class:`~mmbook.errors.InputError` when it is empty, too long, or (given
    ``vocabulary``) uses words the model never saw (Chapter 11)."""
    return inputs.check_text(question, "question", vocabulary=vocabulary)


def check_max_new_tokens(value: Any) -> int:
    """``value`` as an int from 1 to :data:`MAX_NEW_TOKENS`, else an :class:`~mmbook.errors.InputError`
    (Chapter 11). Integral floats and their strings are accepted (a slider may send ``32.0``)."""
    expected = f"a whole number from 1 to {MAX_NEW_TOKENS}"
    if value is None or isinstance(value, bool) or (isinstance(value, str) and not value.strip()):
        raise InputError(f"The most new tokens must be {expected}; got {value!r}.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"The most new tokens must be {expected}; got {str(value)[:40]!r}.") from None
    if not (math.isfinite(number) and number.is_integer() and 1 <= number <= MAX_NEW_TOKENS):
        raise InputError(f"The most new tokens must be {expected}; got {value!r}.")
    return int(number)


# ----------------------------------------------------------------------------------------------------
# answering


def chat_inputs(chat: ChatModel, picture: Any, question: str) -> Any:
    """The model's inputs for one picture and one question: the processor's chat template with the
    generation prompt, tokenised with the picture, on the model's device (Chapter 11)."""
    messages = [{"role": "user", "content": [{"type": "image", "image": picture},
                                             {"type": "text", "text": question}]}]  # fmt: skip
    inputs = chat.processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    return inputs.to(chat.model.device)


def stream_answer(
    chat: ChatModel, picture: Any, question: Any, max_new_tokens: Any = DEFAULT_NEW_TOKENS
) -> Iterator[str]:
    """The greedy answer to ``question`` about ``picture``, as an iterator of the text so far (Chapter 11).

    The inputs are checked *now* (an :class:`~mmbook.errors.InputError` before anything is generated);
    ``model.generate`` then runs in a thread and a ``TextIteratorStreamer`` hands over each new piece.
    An error inside ``generate`` is raised again by the iterator.
    """
    image = check_picture(picture)
    text = check_question(question, chat.vocabulary)
    limit = check_max_new_tokens(max_new_tokens)
    inputs = chat_inputs(chat, image, text)
    return _stream(chat, inputs, limit)


def _stream(chat: ChatModel, inputs: Any, max_new_tokens: int) -> Iterator[str]:
    import torch
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(chat.processor.tokenizer, skip_prompt=True, skip_special_tokens=True,
                                    timeout=STREAM_TIMEOUT_S)  # fmt: skip
    failures: list[BaseException] = []

    def generate() -> None:
        try:
            with torch.no_grad():
                chat.model.generate(**inputs, streamer=streamer, max_new_tokens=max_new_tokens, do_sample=False)
        except Exception as error:  # handed to the reader below; the stream is closed so it does not wait
            failures.append(error)
            streamer.end()

    thread = threading.Thread(target=generate, daemon=True)
    thread.start()
    text = ""
    for piece in streamer:
        text += piece
        if piece.strip():
            yield text.strip()
    thread.join()
    if failures:
        raise failures[0]


def answer(chat: ChatModel, picture: Any, question: Any, max_new_tokens: Any = DEFAULT_NEW_TOKENS) -> str:
    """The whole greedy answer of :func:`stream_answer` ("" when the model ends at once) (Chapter 11)."""
    final = ""
    for final in stream_answer(chat, picture, question, max_new_tokens):  # noqa: B007  (the last one counts)
        pass
    return final


def example_pictures(seed: int = EXAMPLE_SEED) -> list[tuple[np.ndarray, str]]:
    """One held-out shapes-world picture per :data:`EXAMPLE_QUESTIONS` entry, chosen so each question fits
    it (a one-shape circle for the colour question) (Chapter 11)."""
    from mmbook.data import make_shapes

    single = make_shapes(64, seed=seed, max_shapes=1, split="train")
    circle = next(i for i, objects in enumerate(single.attributes) if objects[0]["shape"] == "circle")
    scenes = make_shapes(3, seed=seed + 1, min_shapes=2, max_shapes=4, split="train")
    pictures = [single.images[circle], scenes.images[0], scenes.images[1], scenes.images[2]]
    return list(zip(pictures, EXAMPLE_QUESTIONS, strict=True))


__all__ = [
    "DEFAULT_NEW_TOKENS",
    "EXAMPLE_QUESTIONS",
    "EXAMPLE_SEED",
    "MAX_NEW_TOKENS",
    "STREAM_TIMEOUT_S",
    "VLM_NAME",
    "ChatModel",
    "answer",
    "chat_inputs",
    "check_max_new_tokens",
    "check_picture",
    "check_question",
    "example_pictures",
    "load_chat_model",
    "stream_answer",
    "word_vocabulary",
]
