"""Six pretrained tasks side by side, one tab each, online with hub models and offline with stand-ins (Chapter 8).

Each tab says which path runs. Offline: the tiny ViLT answers shapes-world questions (with its measured
accuracy for that kind of question), the tiny CLIP classifies zero-shot, a *retrieval* caption stands in
for BLIP (labelled as retrieval, with the picture it came from), Whisper's tab shows the log-mel
spectrogram its processor would compute and says that no speech model ran, the tiny GPT-2 continues
text, and the Stable Diffusion tab says what it would need. The models come from
:func:`mmbook.pretrained.load_models`; every input is checked by :mod:`mmbook.inputs` and :mod:`mmbook.sound`.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np

from mmbook import inference, inputs, sound
from mmbook.apps.common import ask_tab, caption_tab, checked, raw, whole_number
from mmbook.errors import InputError
from mmbook.pretrained import PretrainedModels, load_models

MAX_LABELS = 20
MAX_NEW_TOKENS = 100
SPECTROGRAM_HEIGHT = 160


def _image(path: Any) -> Any:
    if path is None:
        raise InputError("Please upload a picture.")
    return inputs.open_image(path)


def _labels(text: Any) -> list[str]:
    if not isinstance(text, str) or not text.strip():
        raise InputError("Please type the candidate labels, separated by commas.")
    labels = list(dict.fromkeys(label.strip() for label in text.split(",") if label.strip()))
    if len(labels) < 2:
        raise InputError("Please give at least two different labels, separated by commas.")
    if len(labels) > MAX_LABELS:
        raise InputError(f"That is {len(labels)} labels; the limit is {MAX_LABELS}.")
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


def build_pretrained_app(models: PretrainedModels | None = None) -> gr.Blocks:
    """Six tasks in six tabs: ask (ViLT), caption (BLIP), zero-shot (CLIP), speech (Whisper), text (GPT-2),
    draw (Stable Diffusion). Without ``models``, :func:`load_models` decides online or offline (Chapter 8)."""
    from mmbook.data.questions import question_type
    from mmbook.retrieval_captioner import RetrievalCaptioner

    models = models or load_models()
    models.preload()  # before the first request, not during it
    vocabulary = models.vocabulary

    @checked
    def answer(image_path: Any, question: Any) -> tuple[dict[str, float], str]:
        image = _image(image_path)
        model, processor = models.answer.get()
        limit = model.config.max_position_embeddings
        question = inputs.check_text(question, "question", tokenizer=processor.tokenizer, max_tokens=limit,
                                    vocabulary=vocabulary)
        best = inference.answer(model, processor, image, question, k=3)
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
        return inference.caption(model, processor, [image])[0], None, f"**Path:** {models.caption.note}."

    @checked
    def classify(image_path: Any, labels: Any, template: Any) -> tuple[dict[str, float], str]:
        image = _image(image_path)
        names = _labels(labels)
        template = inputs.check_text(template, "template")
        if template.count("{}") != 1:
            raise InputError("The template must contain '{}' exactly once, where the label goes, "
                             f"for example {models.template!r}.")
        if vocabulary is not None:
            for text in [*names, template.replace("{}", " ")]:
                inputs.check_text(text, "label", vocabulary=vocabulary)
        scores = inference.classify(models.classify.get(), image, names, template)
        return dict(scores), f"**Path:** {models.classify.note}."

    @checked
    def transcribe(recording: Any) -> tuple[str, Any, str]:
        if recording is None:
            raise InputError("Please record or upload a clip.")
        rate, samples = recording
        audio = sound.prepare_audio(samples, int(rate))
        seconds = len(audio) / sound.SAMPLE_RATE
        worker = models.transcribe.get()
        if models.online or hasattr(worker, "tokenizer"):
            return inference.transcribe(worker, audio), None, f"**Path:** {models.transcribe.note}."
        features = sound.log_mel(worker, audio)
        text = (f"No speech model ran (offline). Whisper would read {features.shape[0]} log-mel bands × "
                f"{features.shape[1]:,} frames: your {seconds:.1f} s at 16 kHz, padded with silence to 30 s.")
        return text, spectrogram_picture(features, seconds), f"**Path:** {models.transcribe.note}."

    @checked
    def complete(prompt: Any, n_tokens: Any) -> tuple[str, str]:
        generator = models.complete.get()
        prompt = inputs.check_text(prompt, "beginning of a sentence")
        count = whole_number(n_tokens, "number of new tokens", 1, MAX_NEW_TOKENS)
        return inference.complete(generator, prompt, max_new_tokens=count), f"**Path:** {models.complete.note}."

    @checked
    def draw(prompt: Any) -> tuple[Any, str]:
        painter = models.draw.get()  # an InputError with the reason when unavailable
        prompt = inputs.check_text(prompt, "description")
        return inference.draw(painter, prompt), f"**Path:** {models.draw.note}."

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
                    zs_image = raw(gr.Image(label="Picture", type="filepath", image_mode=None, height=256))
                    with gr.Column():
                        labels = gr.Textbox(label="Candidate labels (comma-separated)", value=models.labels)
                        template = gr.Textbox(label="Template", value=models.template)
                        zs_button = gr.Button("Classify", variant="primary")
                        scores = gr.Label(label="Scores", num_top_classes=5)
                        zs_note = gr.Markdown()
                zs_button.click(classify, [zs_image, labels, template], [scores, zs_note], api_name="classify")
            with gr.Tab("Speech (Whisper)"):
                recording = raw(gr.Audio(label="Clip (at most 30 s)", type="numpy", sources=["upload", "microphone"]))
                asr_button = gr.Button("Transcribe", variant="primary")
                transcript = gr.Textbox(label="Transcript")
                mel = gr.Image(label="Log-mel spectrogram (offline: what Whisper would read)", height=200)
                asr_note = gr.Markdown()
                asr_button.click(transcribe, [recording], [transcript, mel, asr_note], api_name="transcribe")
            with gr.Tab("Text (GPT-2)"):
                prompt = gr.Textbox(label="Beginning of a sentence", value="a red circle")
                n_tokens = raw(gr.Slider(1, MAX_NEW_TOKENS, value=20, step=1, label="New tokens"))
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


__all__ = ["build_pretrained_app", "spectrogram_picture"]
