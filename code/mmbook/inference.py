"""Running Chapter 8's pretrained models, one function per task: the same code runs the hub model and the
book's offline stand-in.

Every function takes a loaded model (or pipeline) and checked input: pictures go through
:func:`mmbook.inputs.to_rgb`, clips through :func:`mmbook.sound.prepare_audio`. Loading is
:mod:`mmbook.pretrained`'s job, resolving a hub name :mod:`mmbook.hub`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mmbook.inputs import to_rgb
from mmbook.sound import SAMPLE_RATE

# ----------------------------------------------------------------------------------------------------
# the tasks


def classify(
    classifier: Any, image: Any, labels: Sequence[str], template: str = "a photo of {}."
) -> list[tuple[str, float]]:
    """Zero-shot classification with a ``zero-shot-image-classification`` pipeline (CLIP): labels, best first."""
    answers = classifier(to_rgb(image), candidate_labels=list(labels), hypothesis_template=template)
    return [(a["label"], float(a["score"])) for a in answers]


def caption(model: Any, processor: Any, images: Sequence[Any], *, max_new_tokens: int = 30) -> list[str]:
    """Captions with ``BlipForConditionalGeneration`` + ``BlipProcessor``, greedy decoding, in one batch."""
    import torch

    inputs = processor(images=[to_rgb(im) for im in images], return_tensors="pt")
    inputs = inputs.to(model.device)
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    with torch.inference_mode():
        ids = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return [text.strip() for text in processor.batch_decode(ids, skip_special_tokens=True)]


def answer(model: Any, processor: Any, image: Any, question: str, *, k: int = 3) -> list[tuple[str, float]]:
    """Visual question answering with ``ViltForQuestionAnswering`` + ``ViltProcessor``: the ``k`` best answers
    with their scores, read the way the checkpoint was trained (Chapter 8).

    ``ViltForQuestionAnswering`` trains one sigmoid per answer (binary cross-entropy against VQA's soft
    scores, several answers can be right), so each score is that answer's own probability and they need not
    sum to one. A checkpoint trained with softmax cross-entropy on one answer per question, as the book's
    tiny ViLT is, says so in its configuration (``problem_type="single_label_classification"``), and its
    scores are a softmax over the answers. The ranking is the same either way.
    """
    import torch

    inputs = processor(images=to_rgb(image), text=question, return_tensors="pt").to(model.device)
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    with torch.inference_mode():
        logits = model(**inputs).logits[0].float()
    single = model.config.problem_type == "single_label_classification"
    scores = logits.softmax(-1) if single else logits.sigmoid()
    best = scores.topk(min(k, len(scores)))
    return [(model.config.id2label[int(i)], float(p)) for p, i in zip(best.values, best.indices, strict=True)]


def transcribe(recogniser: Any, audio: np.ndarray, *, max_new_tokens: int = 128) -> str:
    """Speech recognition with an ``automatic-speech-recognition`` pipeline (Whisper) on a 16 kHz clip
    from :func:`prepare_audio`. The clip is passed at 16 kHz so the pipeline need not resample (which
    would need torchaudio)."""
    result = recogniser({"raw": audio, "sampling_rate": SAMPLE_RATE},
                        generate_kwargs={"max_new_tokens": max_new_tokens})
    return result["text"].strip()


def complete(generator: Any, prompt: str, *, max_new_tokens: int = 30) -> str:
    """Continue ``prompt`` greedily with a ``text-generation`` pipeline (GPT-2); returns the whole text."""
    out = generator(prompt, max_new_tokens=max_new_tokens, do_sample=False)
    return out[0]["generated_text"]


def draw(painter: Any, prompt: str, *, steps: int = 25, seed: int = 0) -> Any:
    """A picture from diffusers' ``StableDiffusionPipeline``: the output's ``.images[0]``, a PIL image."""
    import torch

    generator = torch.Generator(device=painter.device).manual_seed(seed)
    return painter(prompt, num_inference_steps=steps, generator=generator).images[0]


# ----------------------------------------------------------------------------------------------------
# measuring


def megabytes(model: Any) -> float:
    """Size of a model's parameters and buffers in memory, in MB (Chapter 8)."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors) / 1e6


__all__ = ["answer", "caption", "classify", "complete", "draw", "megabytes", "transcribe"]
