"""A multimodal assistant: four tools in tabs and a chat that routes each message to one of them (Chapter 10).

The tools, each labelled with the path that runs it:

- **search** (text → pictures): Chapter 6's :class:`~mmbook.search.SearchIndex` over 1,000
  shapes-world pictures, with the tiny CLIP offline and ``openai/clip-vit-base-patch32`` online;
- **ask** (picture + question → answer): :func:`mmbook.inference.answer`, the tiny ViLT offline and
  ``dandelin/vilt-b32-finetuned-vqa`` online;
- **caption** (picture → text): BLIP online (:func:`mmbook.inference.caption`), offline the retrieval caption
  of :class:`mmbook.retrieval_captioner.RetrievalCaptioner`, which never generates text;
- **listen** (clip → text): Whisper online (:func:`mmbook.inference.transcribe`), offline the tone reader of
  :mod:`mmbook.tone_reader`, which reads the shapes world's tones and is not speech recognition;
- **ask anything** (picture + any question → a generated answer, streamed): Chapter 11's
  :mod:`mmbook.chat`, ``HuggingFaceTB/SmolVLM-256M-Instruct`` online and the book's tiny VLM offline.

The models come from Chapter 8's loading policy (:func:`mmbook.pretrained.load_models`), each in a
lazy, thread-safe :class:`~mmbook.pretrained.Task`; the builder loads them before the first request. The
chat's rules are in :func:`mmbook.router.route`. Uploads above :data:`mmbook.limits.MAX_FILE_SIZE` are refused at the
server (:data:`mmbook.limits.LAUNCH`, applied by every launcher), and no share link opens unless asked.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from mmbook import chat as chat_module
from mmbook import hub, inference, inputs, sound
from mmbook.apps.common import ask_tab, caption_tab, checked, raw, whole_number
from mmbook.chat import DEFAULT_NEW_TOKENS, MAX_NEW_TOKENS
from mmbook.errors import InputError
from mmbook.limits import MAX_FILE_SIZE
from mmbook.pretrained import PretrainedModels, Task, load_models
from mmbook.router import TOOL_NAMES, route
from mmbook.search import GALLERY_SIZE, MAX_RESULTS, SearchIndex
from mmbook.viz import upscale_nearest

DISPLAY_SIZE = 128
CHAT_RESULTS = 3


@dataclass
class AssistantModels:
    """What the assistant's tools run: Chapter 8's models for asking and captioning, plus a search index
    and a listener, each a lazy :class:`~mmbook.pretrained.Task` with its path note (Chapter 10)."""

    online: bool
    pretrained: PretrainedModels
    search: Task
    listen: Task
    vlm: Task

    def preload(self) -> None:
        """Load the five tools' models now (Chapter 10)."""
        for task in (self.pretrained.answer, self.pretrained.caption, self.search, self.listen, self.vlm):
            task.get()


def _search_index(offline: bool) -> SearchIndex:
    return SearchIndex.of_gallery(*hub.load("clip", offline=offline))


def load_assistant_models(offline: bool | None = None, *, lazy: bool = True) -> AssistantModels:
    """The assistant's models by the book's loading policy (:func:`~mmbook.pretrained.load_models`);
    with ``lazy`` each loads on first use (Chapter 10)."""
    from mmbook import tone_reader
    from mmbook.env import is_offline

    offline = is_offline() if offline is None else offline
    pretrained = load_models(offline)  # lazy: the assistant needs only two of its six tasks
    if offline:
        search = Task(f"offline: the tiny CLIP (Chapter 6) searches {GALLERY_SIZE:,} shapes-world pictures; it "
                      "knows colours, shapes and positions, and only their words", lambda: _search_index(True))
        listen = Task("offline: no speech model. The tone reader (trained on the shapes world's sounds) names "
                      "the colour and shape of each tone; it is not speech recognition", tone_reader.tone_reader)
    else:
        search = Task(f"{hub.online_label()}: openai/clip-vit-base-patch32 searches {GALLERY_SIZE:,} "
                      "shapes-world pictures", lambda: _search_index(False))
        listen = pretrained.transcribe
    vlm_id = hub.lookup(chat_module.VLM_NAME).hub_id
    vlm_note = (f"offline: the book's tiny VLM (Chapter 11) stands in for {vlm_id}; it is not a real "
                "vision-language model and knows only the shapes world" if offline
                else f"{hub.online_label()}: {vlm_id}")
    vlm = Task(vlm_note, lambda: chat_module.load_chat_model(offline=offline))
    models = AssistantModels(online=not offline, pretrained=pretrained, search=search, listen=listen, vlm=vlm)
    if not lazy:
        models.preload()
    return models


HELP = ("I can **search** pictures (\"find a red circle in the center\"), **answer** a question about a "
        "picture (attach it and ask), **caption** a picture (attach it alone), **transcribe** a clip "
        "(attach a WAV file), and answer **anything** about the last picture (\"describe the picture.\").")


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
    says which path ran, and refuses bad input with an :class:`mmbook.errors.InputError` (Chapter 10)."""

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
        from mmbook.data.questions import question_type

        image = _picture(image)
        model, processor = self.models.pretrained.answer.get()
        question = inputs.check_text(question, "question", tokenizer=processor.tokenizer,
                                    max_tokens=model.config.max_position_embeddings,
                                    vocabulary=self.models.pretrained.vocabulary)
        best = inference.answer(model, processor, image, question, k=3)
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
        from mmbook.retrieval_captioner import RetrievalCaptioner

        image = _picture(image)
        captioner = self.models.pretrained.caption.get()
        if isinstance(captioner, RetrievalCaptioner):
            best = captioner([image])[0][0]
            note = (f"**Path:** {self.models.pretrained.caption.note}. It is the caption of gallery picture "
                    f"#{best.index}, cosine similarity {best.score:.2f}.")
            return best.caption, best.image, note
        model, processor = captioner
        note = f"**Path:** {self.models.pretrained.caption.note}."
        return inference.caption(model, processor, [image])[0], None, note

    def transcribe(self, sample_rate: Any, samples: Any) -> tuple[str, str]:
        """Words for a clip: Whisper's transcript online, the tone reader's colours and shapes offline."""
        from mmbook import tone_reader

        listener = self.models.listen.get()
        note = f"**Path:** {self.models.listen.note}."
        if isinstance(listener, tone_reader.ToneReader):
            clip = sound.prepare_audio(samples, int(sample_rate), target_rate=tone_reader.SAMPLE_RATE)
            seconds = len(clip) / tone_reader.SAMPLE_RATE
            if seconds > tone_reader.MAX_SECONDS:
                raise InputError(f"The clip lasts {seconds:.1f} s; the tone reader reads at most "
                                 f"{tone_reader.MAX_SECONDS:.0f} s.")
            text = listener.transcribe(clip)
            return text or "(no tones heard)", note
        return inference.transcribe(listener, sound.prepare_audio(samples, int(sample_rate))), note

    def ask_anything(self, image: Any, question: Any, max_new_tokens: Any = DEFAULT_NEW_TOKENS
                     ) -> tuple[Iterator[str], str]:  # fmt: skip
        """The vision-language model's answer to any ``question`` about ``image``, as a stream of the text so
        far (:func:`mmbook.chat.stream_answer`; the inputs are checked before it starts), and the path note."""
        stream = chat_module.stream_answer(self.models.vlm.get(), image, question, max_new_tokens)
        return stream, f"**Path:** {self.models.vlm.note}."

    def best_match(self, query: Any) -> dict[str, Any]:
        """The best search result as text only (caption, gallery index, cosine): the endpoint that the
        chapter load-tests, because it returns no files."""
        results, _ = self.search(query, 1)
        return {"caption": results[0].caption, "index": results[0].index, "score": round(results[0].score, 4)}

    def chat(self, message: Any, history: Sequence[Any] | None = None) -> str:
        """Route ``message`` (:func:`mmbook.router.route`) to a tool and answer in words, naming the tool
        and its path."""
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
        elif where.tool == "vlm":
            stream, note = self.ask_anything(where.file, where.text)
            text = ""
            for text in stream:  # noqa: B007  (the last text is the whole answer)
                pass
            body = f"**{text or '(no answer)'}**"
        else:
            sample_rate, samples = _read_wav(where.file)
            text, note = self.transcribe(sample_rate, samples)
            body = f"**{text}**"
        return f"*Tool: {TOOL_NAMES[where.tool]}.* {body}\n\n{note}"


def _picture(image: Any) -> Any:
    if image is None:
        raise InputError("Please upload a picture.")
    return inputs.open_image(image) if isinstance(image, str | Path) else inputs.to_rgb(image)


def _read_wav(path: str) -> tuple[int, np.ndarray]:
    from scipy.io import wavfile

    try:
        return wavfile.read(path)
    except Exception as exc:  # scipy raises several kinds (even UnboundLocalError) on a damaged header
        raise InputError(f"This file is not a WAV clip that can be read ({type(exc).__name__}).") from None


# ----------------------------------------------------------------------------------------------------
# the app


def build_assistant_app(models: AssistantModels | None = None) -> gr.Blocks:
    """One app, six tabs: a chat that routes to the tools, and one tab per tool (Chapter 10).

    Without ``models``, :func:`load_assistant_models` decides online or offline; either way the tools'
    models load here, before the first request. Endpoints: ``/chat``, ``/search``, ``/best_match`` (text
    only), ``/answer``, ``/caption``, ``/transcribe``, ``/ask_anything`` (streamed).
    """
    assistant = Assistant(models)
    models = assistant.models
    models.preload()

    @checked
    def search(query: Any, k: Any) -> tuple[list[tuple[np.ndarray, str]], list[list[Any]], str]:
        results, note = assistant.search(query, whole_number(k, "number of results", 1, MAX_RESULTS))
        pictures = [(upscale_nearest(r.image, DISPLAY_SIZE), f"#{r.index}: {r.score:.3f}") for r in results]
        rows = [[rank, r.index, round(r.score, 4), r.caption] for rank, r in enumerate(results, start=1)]
        return pictures, rows, note

    @checked
    def best_match(query: str) -> dict:  # gr.api reads this signature through the wrapper
        return assistant.best_match(query)

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
            raise InputError("Please record or upload a clip.")
        return assistant.transcribe(*recording)

    @checked
    def chat(message: Any, history: list[Any]) -> str:
        return assistant.chat(message, history)

    start_vlm = checked(assistant.ask_anything)

    def ask_anything(image: Any, question: Any, max_new_tokens: Any) -> Iterator[tuple[str, str]]:
        stream, note = start_vlm(image, question, max_new_tokens)  # refusals are gr.Error before it starts
        text = ""
        for text in stream:
            yield text, note
        if not text:
            yield "(the model ended its answer at once)", note

    where = "online: hub models" if models.online else "offline: the book's stand-ins"
    with gr.Blocks(title="A multimodal assistant") as demo:
        gr.Markdown(f"## A multimodal assistant ({where})\n"
                    "Chat with it, or use one tool per tab. Every answer says which tool and which model ran. "
                    f"Uploads are limited to {MAX_FILE_SIZE.upper()}.")
        with gr.Tabs():
            with gr.Tab("Chat"):
                gr.Markdown(
                    "**Rules:** a WAV clip is transcribed; a picture with text is a question about it; a "
                    "picture alone is captioned; text that starts with *find*, *show* or *search* searches the "
                    "gallery; a question ending in '?' (or 'describe ...') asks about the last picture you sent: "
                    "the ViLT answers the five kinds of question it knows, the vision-language model anything "
                    "else."
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
                    k = raw(gr.Slider(1, MAX_RESULTS, value=8, step=1, label="Results", scale=1))
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
                recording = raw(gr.Audio(label="Clip", type="numpy", sources=["upload", "microphone"]))
                listen_button = gr.Button("Transcribe", variant="primary")
                transcript = gr.Textbox(label="Transcript")
                listen_note = gr.Markdown()
                listen_button.click(transcribe, [recording], [transcript, listen_note], api_name="transcribe")
            with gr.Tab("Ask anything (VLM)"):
                gr.Markdown(f"**Path:** {models.vlm.note}.")
                with gr.Row():
                    vlm_image = raw(gr.Image(label="Picture", type="filepath", image_mode=None, height=256))
                    with gr.Column():
                        vlm_question = gr.Textbox(label="Question", value="describe the picture.")
                        vlm_tokens = raw(gr.Slider(1, MAX_NEW_TOKENS, value=DEFAULT_NEW_TOKENS, step=1,
                                                   label="Most new tokens"))  # fmt: skip
                        vlm_button = gr.Button("Ask", variant="primary")
                        vlm_answer = gr.Textbox(label="Answer (streamed)")
                        vlm_note = gr.Markdown()
                vlm_button.click(ask_anything, [vlm_image, vlm_question, vlm_tokens], [vlm_answer, vlm_note],
                                 api_name="ask_anything")  # fmt: skip
    return demo


__all__ = ["Assistant", "AssistantModels", "Found", "build_assistant_app", "load_assistant_models"]
