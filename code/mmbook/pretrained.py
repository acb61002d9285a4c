"""Chapter 8's loading policy: one lazy, thread-safe handle per task, online with hub models and offline
with the book's stand-ins (Chapter 8; Chapter 10's assistant reuses it)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mmbook import hub
from mmbook.errors import InputError

OFFLINE_LABELS = "red, orange, yellow, green, blue, purple"
OFFLINE_TEMPLATE = "a {} shape"
ONLINE_LABELS = "an astronaut, a cup of coffee, a cat, a dog, a rocket"
ONLINE_TEMPLATE = "a photo of {}."


@dataclass
class Task:
    """One task's model: ``value`` once loaded, or a ``loader`` that makes it on first use, and a note that
    says which path runs. Concurrent first calls of :meth:`get` load it once (a lock) (Chapter 8)."""

    note: str
    loader: Callable[[], Any] | None = None
    value: Any = None
    unavailable: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def get(self) -> Any:
        """The model, loaded now if it was not yet; an :class:`~mmbook.errors.InputError` with the reason
        when the task is unavailable on this path."""
        if self.unavailable is not None:
            raise InputError(self.unavailable)
        if self.value is None and self.loader is not None:
            with self._lock:
                if self.value is None:
                    self.value = self.loader()
        return self.value


@dataclass
class PretrainedModels:
    """What the pretrained app's tabs run. :func:`load_models` fills it for the online or the offline path;
    tests put their own models in (Chapter 8)."""

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

    def preload(self) -> None:
        """Load every task now but the painter, which loads on first use (gigabytes, GPU only) (Chapter 8)."""
        for task in (self.classify, self.caption, self.answer, self.transcribe, self.complete):
            task.get()


def load_models(offline: bool | None = None, *, lazy: bool = True) -> PretrainedModels:
    """The models of every task by the book's loading policy; with ``lazy`` each loads on first use (Chapter 8)."""
    from mmbook.env import is_offline

    offline = is_offline() if offline is None else offline
    if offline:
        from transformers import WhisperFeatureExtractor

        from mmbook import retrieval_captioner, tiny_vilt
        from mmbook.data import VOCABULARY

        models = PretrainedModels(
            online=False,
            classify=Task("offline: the tiny CLIP (Chapter 6) stands in for openai/clip-vit-base-patch32; it "
                          "knows colours, shapes and positions, and only their words",
                          lambda: hub.pipeline("zero-shot-image-classification", "clip", offline=True)),
            caption=Task(f"offline: no captioning model. This is a {retrieval_captioner.RetrievalCaptioner.label}; "
                         "Salesforce/blip-image-captioning-base would generate one online",
                         retrieval_captioner.retrieval_captioner),
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
        record = tiny_vilt.tiny_vilt_record(tiny_vilt.tiny_vilt_path())
        models.vqa_accuracy, models.vqa_blind = record["accuracy"], record["blind"]
    else:
        draw_reason = hub.unavailable_reason("stable-diffusion", offline=False)
        online = hub.online_label()
        models = PretrainedModels(
            online=True,
            classify=Task(f"{online}: openai/clip-vit-base-patch32",
                          lambda: hub.pipeline("zero-shot-image-classification", "clip", offline=False)),
            caption=Task(f"{online}: Salesforce/blip-image-captioning-base", lambda: hub.load("blip", offline=False)),
            answer=Task(f"{online}: dandelin/vilt-b32-finetuned-vqa", lambda: hub.load("vilt", offline=False)),
            transcribe=Task(f"{online}: openai/whisper-tiny",
                            lambda: hub.pipeline("automatic-speech-recognition", "whisper", offline=False)),
            complete=Task(f"{online}: openai-community/gpt2",
                          lambda: hub.pipeline("text-generation", "gpt2", offline=False)),
            draw=Task(f"{online}: stable-diffusion-v1-5/stable-diffusion-v1-5 (diffusers, float16, GPU)",
                      lambda: hub.load_diffusion(offline=False), unavailable=draw_reason),
            labels=ONLINE_LABELS, template=ONLINE_TEMPLATE,
        )
    if not lazy:
        models.preload()
    return models


__all__ = ["PretrainedModels", "Task", "load_models"]
