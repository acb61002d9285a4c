"""A multimodal assistant: four tools in tabs and a chat that routes each message to one of them (Chapter 10).

The tools, each labelled with the path that runs it:

- **search** (text → pictures): Chapter 6's :class:`~mmbook.apps.search.SearchIndex` over 1,000
  shapes-world pictures, with the tiny CLIP offline and ``openai/clip-vit-base-patch32`` online;
- **ask** (picture + question → answer): :func:`mmbook.tasks.answer`, the tiny ViLT offline and
  ``dandelin/vilt-b32-finetuned-vqa`` online;
- **caption** (picture → text): BLIP online (:func:`mmbook.tasks.caption`), offline the retrieval caption
  of :class:`mmbook.standins.RetrievalCaptioner`, which never generates text;
- **listen** (clip → text): Whisper online (:func:`mmbook.tasks.transcribe`), offline the tone reader of
  :mod:`mmbook.audio`, which reads the shapes world's tones and is not speech recognition.

The models come from Chapter 8's loading policy (:func:`mmbook.apps.pretrained.load_models`), each in a
lazy :class:`~mmbook.apps.pretrained.Task`. The chat's rules are in :func:`route`. The app refuses
uploads larger than :data:`MAX_FILE_SIZE` (set at launch, see :class:`LimitedBlocks`) and never opens a
share link unless asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from mmbook import hub, tasks
from mmbook.apps.inputs import whole_number
from mmbook.apps.pretrained import PretrainedModels, Task, ask_tab, caption_tab, checked, load_models
from mmbook.apps.search import DISPLAY_SIZE, GALLERY_SEED, GALLERY_SIZE, MAX_RESULTS, SearchIndex
from mmbook.viz import upscale_nearest

#: The largest upload the app accepts, passed to ``launch(max_file_size=...)``.
MAX_FILE_SIZE = "10mb"
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
#: The chat reads clips with ``scipy.io.wavfile``; the Listen tab reads any format Gradio can decode.
AUDIO_SUFFIXES = frozenset({".wav"})
#: A message that starts with one of these words (and no attached file) is a search.
SEARCH_WORDS = ("find", "show", "search")
_FILLER = ("me", "for", "pictures", "picture", "images", "image", "of", "with")
CHAT_RESULTS = 3
TOOL_NAMES = {"search": "text-to-image search", "answer": "visual question answering", "caption": "captioning",
              "transcribe": "speech input", "help": "help"}  # fmt: skip


class LimitedBlocks(gr.Blocks):
    """A ``gr.Blocks`` whose ``launch`` refuses uploads above :data:`MAX_FILE_SIZE` and opens no share link,
    unless the caller says otherwise, so the limit holds for the launcher, a Space and the chapter (Chapter 10)."""

    def launch(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("max_file_size", MAX_FILE_SIZE)
        kwargs.setdefault("share", False)
        return super().launch(*args, **kwargs)


@dataclass
class AssistantModels:
    """What the assistant's tools run: Chapter 8's models for asking and captioning, plus a search index
    and a listener, each a lazy :class:`~mmbook.apps.pretrained.Task` with its path note (Chapter 10)."""

    online: bool
    pretrained: PretrainedModels
    search: Task
    listen: Task


def _search_index(offline: bool) -> SearchIndex:
    from mmbook.data import make_shapes

    model, processor = hub.load("clip", offline=offline)
    gallery = make_shapes(GALLERY_SIZE, seed=GALLERY_SEED)
    return SearchIndex.build(model, processor, gallery.images, gallery.captions)


def load_assistant_models(offline: bool | None = None, *, lazy: bool = True) -> AssistantModels:
    """The assistant's models by the book's loading policy (:func:`~mmbook.apps.pretrained.load_models`);
    with ``lazy`` each loads on first use (Chapter 10)."""
    from mmbook import audio
    from mmbook.env import is_offline

    offline = is_offline() if offline is None else offline
    pretrained = load_models(offline)  # lazy: the assistant needs only two of its six tasks
    if offline:
        search = Task(f"offline: the tiny CLIP (Chapter 6) searches {GALLERY_SIZE:,} shapes-world pictures; it "
                      "knows colours, shapes and positions, and only their words", lambda: _search_index(True))
        listen = Task("offline: no speech model. The tone reader (trained on the shapes world's sounds) names "
                      "the colour and shape of each tone; it is not speech recognition", audio.tone_reader)
    else:
        search = Task(f"online: openai/clip-vit-base-patch32 searches {GALLERY_SIZE:,} shapes-world pictures",
                      lambda: _search_index(False))
        listen = pretrained.transcribe
    models = AssistantModels(online=not offline, pretrained=pretrained, search=search, listen=listen)
    if not lazy:
        for task in (pretrained.answer, pretrained.caption, search, listen):
            task.get()
    return models


# ----------------------------------------------------------------------------------------------------
# the chat's rules


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
    5. a question (text ending in "?"), when a picture was sent earlier in the conversation → **answer** it
       about that picture;
    6. anything else → **help**, which says what the assistant can do.

    ``message`` is ``gr.MultimodalTextbox``'s value, ``{"text": ..., "files": [...]}``. More than one file,
    a file that is neither a picture nor a WAV clip, and an empty message are :class:`mmbook.tasks.InputError`.
    """
    if not isinstance(message, dict):
        raise tasks.InputError("A chat message is {'text': ..., 'files': [...]}.")
    text = message.get("text") or ""
    if not isinstance(text, str):
        raise tasks.InputError("The message's text must be a string.")
    text = " ".join(text.split())
    if len(text) > tasks.MAX_TEXT_CHARS:
        raise tasks.InputError(f"The message has {len(text):,} characters; the limit is {tasks.MAX_TEXT_CHARS}.")
    files = [_file_path(f) for f in message.get("files") or []]
    if any(f is None for f in files):
        raise tasks.InputError("An attachment could not be read as a file.")
    if len(files) > 1:
        raise tasks.InputError(f"Please attach one file at a time; this message has {len(files)}.")
    if files:
        path = files[0]
        suffix = Path(path).suffix.lower()
        if suffix in AUDIO_SUFFIXES:
            return Route("transcribe", text, path)
        if suffix in IMAGE_SUFFIXES:
            return Route("answer", text, path) if text else Route("caption", "", path)
        raise tasks.InputError(f"I read pictures ({', '.join(sorted(IMAGE_SUFFIXES))}) and WAV clips; "
                               f"{Path(path).name!r} is neither.")
    if not text:
        raise tasks.InputError("Please type a message, or attach a picture or a WAV clip.")
    query = search_query(text)
    if query is not None:
        return Route("search", query)
    earlier = last_picture(history)
    if earlier is not None and text.endswith("?"):
        return Route("answer", text, earlier)
    return Route("help", text)


HELP = ("I can **search** pictures (\"find a red circle in the center\"), **answer** a question about a "
        "picture (attach it and ask), **caption** a picture (attach it alone) and **transcribe** a clip "
        "(attach a WAV file).")


# ----------------------------------------------------------------------------------------------------
# the tools


@dataclass
class Found:
    """One search result: gallery index, cosine similarity, the picture's own caption and the picture."""

    index: int
    score: float
    caption: str
    image: np.ndarray


class Assistant:
    """The four tools and the chat over :class:`AssistantModels`; each returns its result and a note that
    says which path ran, and refuses bad input with a ``gr.Error`` or :class:`mmbook.tasks.InputError`
    (Chapter 10)."""

    def __init__(self, models: AssistantModels | None = None) -> None:
        self.models = models or load_assistant_models()

    def search(self, query: Any, k: int = 8) -> tuple[list[Found], str]:
        """The ``k`` gallery pictures most similar to ``query``, best first."""
        index: SearchIndex = self.models.search.get()
        query = index.check_query(query)
        scores, found = index.search(query, k)
        results = [Found(i, s, index.captions[i], index.images[i])
                   for s, i in zip(scores.tolist(), found.tolist(), strict=True)]
        return results, f"**Path:** {self.models.search.note}."

    def answer(self, image: Any, question: Any) -> tuple[list[tuple[str, float]], str]:
        """The three best answers to ``question`` about ``image`` (a path or a picture), with probabilities."""
        from mmbook.standins import question_type

        image = _picture(image)
        model, processor = self.models.pretrained.answer.get()
        question = tasks.check_text(question, "question", tokenizer=processor.tokenizer,
                                    max_tokens=model.config.max_position_embeddings,
                                    vocabulary=self.models.pretrained.vocabulary)
        best = tasks.answer(model, processor, image, question, k=3)
        note = f"**Path:** {self.models.pretrained.answer.note}."
        accuracy = self.models.pretrained.vqa_accuracy
        kind = question_type(question)
        if accuracy and kind in accuracy:
            note += f" It answers {kind} questions about new scenes right {accuracy[kind]:.0%} of the time."
        elif accuracy:
            note += " This question is unlike the five kinds the stand-in was trained on; expect a guess."
        return best, note

    def caption(self, image: Any) -> tuple[str, np.ndarray | None, str]:
        """A caption of ``image``; offline a retrieval caption, with the gallery picture it belongs to."""
        from mmbook.standins import RetrievalCaptioner

        image = _picture(image)
        captioner = self.models.pretrained.caption.get()
        if isinstance(captioner, RetrievalCaptioner):
            best = captioner([image])[0][0]
            note = (f"**Path:** {self.models.pretrained.caption.note}. It is the caption of gallery picture "
                    f"#{best.index}, cosine similarity {best.score:.2f}.")
            return best.caption, best.image, note
        model, processor = captioner
        return tasks.caption(model, processor, [image])[0], None, f"**Path:** {self.models.pretrained.caption.note}."

    def transcribe(self, sample_rate: Any, samples: Any) -> tuple[str, str]:
        """Words for a clip: Whisper's transcript online, the tone reader's colours and shapes offline."""
        from mmbook import audio

        listener = self.models.listen.get()
        note = f"**Path:** {self.models.listen.note}."
        if isinstance(listener, audio.ToneReader):
            clip = tasks.prepare_audio(samples, int(sample_rate), target_rate=audio.SAMPLE_RATE)
            seconds = len(clip) / audio.SAMPLE_RATE
            if seconds > audio.MAX_SECONDS:
                raise tasks.InputError(f"The clip lasts {seconds:.1f} s; the tone reader reads at most "
                                       f"{audio.MAX_SECONDS:.0f} s.")
            text = listener.transcribe(clip)
            return text or "(no tones heard)", note
        return tasks.transcribe(listener, tasks.prepare_audio(samples, int(sample_rate))), note

    def best_match(self, query: Any) -> dict[str, Any]:
        """The best search result as text only (caption, gallery index, cosine): the endpoint that the
        chapter load-tests, because it returns no files."""
        results, _ = self.search(query, 1)
        return {"caption": results[0].caption, "index": results[0].index, "score": round(results[0].score, 4)}

    def chat(self, message: Any, history: Sequence[Any] | None = None) -> str:
        """Route ``message`` (:func:`route`) to a tool and answer in words, naming the tool and its path."""
        where = route(message, history)
        if where.tool == "help":
            return f"*Tool: {TOOL_NAMES['help']}.* {HELP}"
        if where.tool == "search":
            results, note = self.search(where.text, CHAT_RESULTS)
            lines = [f"{rank}. #{r.index} ({r.score:.2f}): {r.caption}" for rank, r in enumerate(results, 1)]
            body = f"The {len(results)} best matches for *{where.text}*:\n" + "\n".join(lines)
        elif where.tool == "answer":
            best, note = self.answer(where.file, where.text)
            others = ", ".join(f"{label} ({p:.0%})" for label, p in best[1:])
            body = f"**{best[0][0]}** ({best[0][1]:.0%}); then {others}."
        elif where.tool == "caption":
            text, _, note = self.caption(where.file)
            body = f"**{text}**"
        else:
            sample_rate, samples = _read_wav(where.file)
            text, note = self.transcribe(sample_rate, samples)
            body = f"**{text}**"
        return f"*Tool: {TOOL_NAMES[where.tool]}.* {body}\n\n{note}"


def _picture(image: Any) -> Any:
    if image is None:
        raise tasks.InputError("Please upload a picture.")
    return tasks.open_image(image) if isinstance(image, str | Path) else tasks.to_rgb(image)


def _read_wav(path: str) -> tuple[int, np.ndarray]:
    from scipy.io import wavfile

    try:
        return wavfile.read(path)
    except Exception as exc:  # scipy raises several kinds (even UnboundLocalError) on a damaged header
        raise tasks.InputError(f"This file is not a WAV clip that can be read ({type(exc).__name__}).") from None


# ----------------------------------------------------------------------------------------------------
# the app


def build_assistant_app(models: AssistantModels | None = None) -> gr.Blocks:
    """One app, five tabs: a chat that routes to the tools, and one tab per tool (Chapter 10).

    Without ``models``, :func:`load_assistant_models` decides online or offline. Endpoints: ``/chat``,
    ``/search``, ``/best_match`` (text only), ``/answer``, ``/caption``, ``/transcribe``.
    """
    assistant = Assistant(models)
    models = assistant.models

    @checked
    def search(query: Any, k: Any) -> tuple[list[tuple[np.ndarray, str]], list[list[Any]], str]:
        results, note = assistant.search(query, whole_number(k, "number of results", 1, MAX_RESULTS))
        pictures = [(upscale_nearest(r.image, DISPLAY_SIZE), f"#{r.index}: {r.score:.3f}") for r in results]
        rows = [[rank, r.index, round(r.score, 4), r.caption] for rank, r in enumerate(results, start=1)]
        return pictures, rows, note

    def best_match(query: str) -> dict:  # gr.api reads this signature, so no wrapper
        try:
            return assistant.best_match(query)
        except tasks.InputError as exc:
            raise gr.Error(str(exc)) from None

    @checked
    def answer(image: Any, question: Any) -> tuple[dict[str, float], str]:
        best, note = assistant.answer(image, question)
        return dict(best), note

    @checked
    def caption(image: Any) -> tuple[str, Any, str]:
        return assistant.caption(image)

    @checked
    def transcribe(recording: Any) -> tuple[str, str]:
        if recording is None:
            raise tasks.InputError("Please record or upload a clip.")
        return assistant.transcribe(*recording)

    @checked
    def chat(message: Any, history: list[Any]) -> str:
        return assistant.chat(message, history)

    where = "online: hub models" if models.online else "offline: the book's stand-ins"
    with LimitedBlocks(title="A multimodal assistant") as demo:
        gr.Markdown(f"## A multimodal assistant ({where})\n"
                    "Chat with it, or use one tool per tab. Every answer says which tool and which model ran. "
                    f"Uploads are limited to {MAX_FILE_SIZE.upper()}.")
        with gr.Tabs():
            with gr.Tab("Chat"):
                gr.Markdown(
                    "**Rules:** a WAV clip is transcribed; a picture with text is a question about it; a "
                    "picture alone is captioned; text that starts with *find*, *show* or *search* searches the "
                    "gallery; a question ending in '?' asks about the last picture you sent."
                )
                gr.ChatInterface(
                    chat, multimodal=True, api_name="chat",
                    textbox=gr.MultimodalTextbox(file_types=["image", ".wav"], file_count="single",
                                                 placeholder="Ask, attach a picture or a WAV clip, or type 'find ...'"),
                )  # fmt: skip
            with gr.Tab("Search (CLIP)"):
                gr.Markdown(f"**Path:** {models.search.note}.")
                with gr.Row():
                    query = gr.Textbox(label="Description", value="a red circle in the center", scale=4)
                    k = gr.Slider(1, MAX_RESULTS, value=8, step=1, label="Results", scale=1)
                search_button = gr.Button("Search", variant="primary")
                pictures = gr.Gallery(label="Best matches (gallery index: cosine similarity)", columns=8,
                                      height=260, object_fit="contain", format="png")
                table = gr.Dataframe(headers=["rank", "gallery index", "cosine", "the picture's own caption"],
                                     label="Results", interactive=False)
                search_note = gr.Markdown()
                search_button.click(search, [query, k], [pictures, table, search_note], api_name="search")
                gr.api(best_match, api_name="best_match")
            with gr.Tab("Ask (ViLT)"):
                gr.Markdown(f"**Path:** {models.pretrained.answer.note}.")
                ask_tab(answer)
            with gr.Tab("Caption (BLIP)"):
                gr.Markdown(f"**Path:** {models.pretrained.caption.note}.")
                caption_tab(caption)
            with gr.Tab("Listen (Whisper)"):
                gr.Markdown(f"**Path:** {models.listen.note}.")
                recording = gr.Audio(label="Clip", type="numpy", sources=["upload", "microphone"])
                listen_button = gr.Button("Transcribe", variant="primary")
                transcript = gr.Textbox(label="Transcript")
                listen_note = gr.Markdown()
                listen_button.click(transcribe, [recording], [transcript, listen_note], api_name="transcribe")
    return demo


__all__ = ["MAX_FILE_SIZE", "Assistant", "AssistantModels", "Found", "LimitedBlocks", "Route",
           "build_assistant_app", "last_picture", "load_assistant_models", "route", "search_query"]
