"""Six pretrained tasks side by side, one tab each, online with hub models and offline with stand-ins (Chapter 8).

Each tab says which path runs. Offline: the tiny ViLT answers shapes-world questions (with its measured
accuracy for that kind of question), the tiny CLIP classifies zero-shot, a *retrieval* caption stands in
for BLIP (labelled as retrieval, with the picture it came from), Whisper's tab shows the log-mel
spectrogram its processor would compute and says that no speech model ran, the tiny GPT-2 continues
text, and the Stable Diffusion tab says what it would need. Every input is checked by :mod:`mmbook.tasks`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import numpy as np

from mmbook import hub, tasks
from mmbook.apps.inputs import whole_number

MAX_LABELS = 20
MAX_NEW_TOKENS = 100
EXAMPLE_QUESTION = "what color is the circle?"
OFFLINE_LABELS = "red, orange, yellow, green, blue, purple"
OFFLINE_TEMPLATE = "a {} shape"
ONLINE_LABELS = "an astronaut, a cup of coffee, a cat, a dog, a rocket"
ONLINE_TEMPLATE = "a photo of {}."
SPECTROGRAM_HEIGHT = 160


@dataclass
class Task:
    """One tab's model: ``value`` once loaded, or a ``loader`` that makes it on first use, and a note that
    says which path runs (Chapter 8)."""

    note: str
    loader: Callable[[], Any] | None = None
    value: Any = None
    unavailable: str | None = None

    def get(self) -> Any:
        if self.unavailable is not None:
            raise gr.Error(self.unavailable)
        if self.value is None and self.loader is not None:
            self.value = self.loader()
        return self.value


@dataclass
class PretrainedModels:
    """What the app's tabs run. :func:`load_models` fills it for the online or the offline path; tests put
    their own models in (Chapter 8)."""

    online: bool
    classify: Task
    caption: Task
    answer: Task
    transcribe: Task
    complete: Task
    draw: Task
    vocabulary: frozenset[str] | None = None
    labels: str = OFFLINE_LABELS
    template: str = OFFLINE_TEMPLATE
    vqa_accuracy: dict[str, float] = field(default_factory=dict)
    vqa_blind: dict[str, float] = field(default_factory=dict)


def load_models(offline: bool | None = None, *, lazy: bool = True) -> PretrainedModels:
    """The models of every tab by the book's loading policy; with ``lazy`` each loads on first use (Chapter 8)."""
    from mmbook.env import is_offline

    offline = is_offline() if offline is None else offline
    if offline:
        from transformers import WhisperFeatureExtractor

        from mmbook import standins
        from mmbook.data import VOCABULARY

        models = PretrainedModels(
            online=False,
            classify=Task("offline: the tiny CLIP (Chapter 6) stands in for openai/clip-vit-base-patch32; it "
                          "knows colours, shapes and positions, and only their words",
                          lambda: hub.pipeline("zero-shot-image-classification", "clip", offline=True)),
            caption=Task(f"offline: no captioning model. This is a {standins.RetrievalCaptioner.label}; "
                         "Salesforce/blip-image-captioning-base would generate one online",
                         standins.retrieval_captioner),
            answer=Task("offline: the tiny ViLT stands in for dandelin/vilt-b32-finetuned-vqa; it answers "
                        "shapes-world questions with shapes-world words",
                        lambda: hub.load("vilt", offline=True)),
            transcribe=Task("offline: no speech model. Whisper's processor still runs: below is the log-mel "
                            "spectrogram that openai/whisper-tiny would read",
                            lambda: WhisperFeatureExtractor()),
            complete=Task("offline: the tiny GPT-2 (Chapter 1) stands in for openai-community/gpt2; it "
                          "continues shapes-world captions, nothing more",
                          lambda: hub.pipeline("text-generation", "gpt2", offline=True)),
            draw=Task("", unavailable=hub.unavailable_reason("stable-diffusion", offline=True)),
            vocabulary=frozenset(VOCABULARY),
        )
        record = standins.tiny_vilt_record(standins.tiny_vilt_path())
        models.vqa_accuracy, models.vqa_blind = record["accuracy"], record["blind"]
    else:
        draw_reason = hub.unavailable_reason("stable-diffusion", offline=False)
        models = PretrainedModels(
            online=True,
            classify=Task("online: openai/clip-vit-base-patch32",
                          lambda: hub.pipeline("zero-shot-image-classification", "clip", offline=False)),
            caption=Task("online: Salesforce/blip-image-captioning-base", lambda: hub.load("blip", offline=False)),
            answer=Task("online: dandelin/vilt-b32-finetuned-vqa", lambda: hub.load("vilt", offline=False)),
            transcribe=Task("online: openai/whisper-tiny",
                            lambda: hub.pipeline("automatic-speech-recognition", "whisper", offline=False)),
            complete=Task("online: openai-community/gpt2",
                          lambda: hub.pipeline("text-generation", "gpt2", offline=False)),
            draw=Task("online: stable-diffusion-v1-5/stable-diffusion-v1-5 (diffusers, float16, GPU)",
                      lambda: hub.load_diffusion(offline=False), unavailable=draw_reason),
            labels=ONLINE_LABELS, template=ONLINE_TEMPLATE,
        )
    if not lazy:
        for task in (models.classify, models.caption, models.answer, models.transcribe, models.complete):
            task.get()
    return models


def checked(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the :class:`mmbook.tasks.InputError` of a task into a ``gr.Error`` with the same message.

    ``functools.wraps`` keeps the signature visible, so ``gr.api`` still sees the parameters (Chapter 10).
    """

    @functools.wraps(fn)
    def wrapper(*args: Any) -> Any:
        try:
            return fn(*args)
        except tasks.InputError as exc:
            raise gr.Error(str(exc)) from None

    return wrapper


def _image(path: Any) -> Any:
    if path is None:
        raise tasks.InputError("Please upload a picture.")
    return tasks.open_image(path)


def _labels(text: Any) -> list[str]:
    if not isinstance(text, str) or not text.strip():
        raise tasks.InputError("Please type the candidate labels, separated by commas.")
    labels = list(dict.fromkeys(label.strip() for label in text.split(",") if label.strip()))
    if len(labels) < 2:
        raise tasks.InputError("Please give at least two different labels, separated by commas.")
    if len(labels) > MAX_LABELS:
        raise tasks.InputError(f"That is {len(labels)} labels; the limit is {MAX_LABELS}.")
    return labels


def spectrogram_picture(features: np.ndarray, seconds: float) -> np.ndarray:
    """The log-mel features of the clip's own frames (100 per second) as an RGB picture, low bands at the
    bottom, viridis colours (Chapter 8)."""
    from matplotlib import colormaps

    frames = max(1, min(features.shape[1], round(seconds * 100)))
    part = features[::-1, :frames]
    low, high = float(part.min()), float(part.max())
    scaled = (part - low) / (high - low) if high > low else np.zeros_like(part)
    rgb = (colormaps["viridis"](scaled)[..., :3] * 255).astype(np.uint8)
    repeat_rows = max(1, SPECTROGRAM_HEIGHT // rgb.shape[0])
    repeat_cols = max(1, 400 // rgb.shape[1])
    return np.repeat(np.repeat(rgb, repeat_rows, axis=0), repeat_cols, axis=1)


def ask_tab(answer: Callable[..., Any]) -> None:
    """The inside of a question-answering tab: picture and question in, best answers and the path's note
    out, as the endpoint ``/answer`` (Chapters 8 and 10)."""
    with gr.Row():
        image = gr.Image(label="Picture", type="filepath", image_mode=None, height=256)
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
        image = gr.Image(label="Picture", type="filepath", image_mode=None, height=256)
        with gr.Column():
            button = gr.Button("Caption", variant="primary")
            text = gr.Textbox(label="Caption")
            source = gr.Image(label="Where a retrieval caption came from", height=160)
            note = gr.Markdown()
    button.click(caption, [image], [text, source, note], api_name="caption")


def build_pretrained_app(models: PretrainedModels | None = None) -> gr.Blocks:
    """Six tasks in six tabs: ask (ViLT), caption (BLIP), zero-shot (CLIP), speech (Whisper), text (GPT-2),
    draw (Stable Diffusion). Without ``models``, :func:`load_models` decides online or offline (Chapter 8)."""
    from mmbook.standins import RetrievalCaptioner, question_type

    models = models or load_models()
    vocabulary = models.vocabulary

    @checked
    def answer(image_path: Any, question: Any) -> tuple[dict[str, float], str]:
        image = _image(image_path)
        model, processor = models.answer.get()
        limit = model.config.max_position_embeddings
        question = tasks.check_text(question, "question", tokenizer=processor.tokenizer, max_tokens=limit,
                                    vocabulary=vocabulary)
        best = tasks.answer(model, processor, image, question, k=3)
        note = f"**Path:** {models.answer.note}."
        if models.vqa_accuracy:
            kind = question_type(question)
            if kind is None:
                note += " This question is unlike the five kinds the stand-in was trained on; expect a guess."
            else:
                note += (f" On 1,000 new scenes it answered {kind} questions right "
                         f"{models.vqa_accuracy[kind]:.0%} of the time")
                blind = models.vqa_blind.get(kind)
                if blind is not None:
                    note += f"; guessing from the question alone (without the picture): {blind:.0%}"
                note += "."
        return dict(best), note

    @checked
    def caption(image_path: Any) -> tuple[str, Any, str]:
        image = _image(image_path)
        captioner = models.caption.get()
        if isinstance(captioner, RetrievalCaptioner):
            best = captioner([image])[0][0]
            note = (f"**Path:** {models.caption.note}. The caption below belongs to gallery picture "
                    f"#{best.index} (shown on the right), cosine similarity {best.score:.2f}.")
            return best.caption, best.image, note
        model, processor = captioner
        return tasks.caption(model, processor, [image])[0], None, f"**Path:** {models.caption.note}."

    @checked
    def classify(image_path: Any, labels: Any, template: Any) -> tuple[dict[str, float], str]:
        image = _image(image_path)
        names = _labels(labels)
        template = tasks.check_text(template, "template")
        if template.count("{}") != 1:
            raise tasks.InputError("The template must contain '{}' exactly once, where the label goes, "
                                   f"for example {models.template!r}.")
        if vocabulary is not None:
            for text in [*names, template.replace("{}", " ")]:
                tasks.check_text(text, "label", vocabulary=vocabulary)
        return dict(tasks.classify(models.classify.get(), image, names, template)), f"**Path:** {models.classify.note}."

    @checked
    def transcribe(recording: Any) -> tuple[str, Any, str]:
        if recording is None:
            raise tasks.InputError("Please record or upload a clip.")
        rate, samples = recording
        audio = tasks.prepare_audio(samples, int(rate))
        seconds = len(audio) / tasks.SAMPLE_RATE
        worker = models.transcribe.get()
        if models.online or hasattr(worker, "tokenizer"):
            return tasks.transcribe(worker, audio), None, f"**Path:** {models.transcribe.note}."
        features = tasks.log_mel(worker, audio)
        text = (f"No speech model ran (offline). Whisper would read {features.shape[0]} log-mel bands × "
                f"{features.shape[1]:,} frames: your {seconds:.1f} s at 16 kHz, padded with silence to 30 s.")
        return text, spectrogram_picture(features, seconds), f"**Path:** {models.transcribe.note}."

    @checked
    def complete(prompt: Any, n_tokens: Any) -> tuple[str, str]:
        generator = models.complete.get()
        prompt = tasks.check_text(prompt, "beginning of a sentence")
        count = whole_number(n_tokens, "number of new tokens", 1, MAX_NEW_TOKENS)
        return tasks.complete(generator, prompt, max_new_tokens=count), f"**Path:** {models.complete.note}."

    @checked
    def draw(prompt: Any) -> tuple[Any, str]:
        painter = models.draw.get()  # raises gr.Error with the reason when unavailable
        prompt = tasks.check_text(prompt, "description")
        return tasks.draw(painter, prompt), f"**Path:** {models.draw.note}."

    where = "online: hub models" if models.online else "offline: the book's stand-ins"
    with gr.Blocks(title="Pretrained multimodal models") as demo:
        gr.Markdown(f"## Pretrained multimodal models, six tasks ({where})\n"
                    "Every tab says which model runs. Offline, each stand-in is labelled with what it can and "
                    "cannot do.")
        with gr.Tabs():
            with gr.Tab("Ask (ViLT)"):
                ask_tab(answer)
            with gr.Tab("Caption (BLIP)"):
                caption_tab(caption)
            with gr.Tab("Zero-shot (CLIP)"):
                with gr.Row():
                    zs_image = gr.Image(label="Picture", type="filepath", image_mode=None, height=256)
                    with gr.Column():
                        labels = gr.Textbox(label="Candidate labels (comma-separated)", value=models.labels)
                        template = gr.Textbox(label="Template", value=models.template)
                        zs_button = gr.Button("Classify", variant="primary")
                        scores = gr.Label(label="Scores", num_top_classes=5)
                        zs_note = gr.Markdown()
                zs_button.click(classify, [zs_image, labels, template], [scores, zs_note], api_name="classify")
            with gr.Tab("Speech (Whisper)"):
                recording = gr.Audio(label="Clip (at most 30 s)", type="numpy", sources=["upload", "microphone"])
                asr_button = gr.Button("Transcribe", variant="primary")
                transcript = gr.Textbox(label="Transcript")
                mel = gr.Image(label="Log-mel spectrogram (offline: what Whisper would read)", height=200)
                asr_note = gr.Markdown()
                asr_button.click(transcribe, [recording], [transcript, mel, asr_note], api_name="transcribe")
            with gr.Tab("Text (GPT-2)"):
                prompt = gr.Textbox(label="Beginning of a sentence", value="a red circle")
                n_tokens = gr.Slider(1, MAX_NEW_TOKENS, value=20, step=1, label="New tokens")
                gen_button = gr.Button("Continue", variant="primary")
                continuation = gr.Textbox(label="Continuation")
                gen_note = gr.Markdown()
                gen_button.click(complete, [prompt, n_tokens], [continuation, gen_note], api_name="complete")
            with gr.Tab("Draw (Stable Diffusion)"):
                gr.Markdown(f"**Path:** {models.draw.unavailable or models.draw.note}")
                description = gr.Textbox(label="Description", value="a watercolour of a red circle")
                draw_button = gr.Button("Draw", variant="primary")
                picture = gr.Image(label="Picture")
                draw_note = gr.Markdown()
                draw_button.click(draw, [description], [picture, draw_note], api_name="draw")
    return demo


__all__ = ["PretrainedModels", "Task", "ask_tab", "build_pretrained_app", "caption_tab", "load_models",
           "spectrogram_picture"]
