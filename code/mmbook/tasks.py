"""The pretrained tasks of Chapter 8, one function each: the same code runs the hub model and the stand-in.

Inputs are checked and converted first, with the conversions documented here, so that every model sees
what it expects and a user gets a sentence rather than a traceback:

- :func:`open_image` / :func:`to_rgb`: any picture → an RGB ``PIL.Image``. Grey (``L``, ``1``) is copied to
  three channels; 16-bit grey (``I;16``) is mapped from 0–65535 to 0–255; 32-bit (``I``, ``F``) is
  stretched from its minimum to its maximum; transparency (``RGBA``, ``LA``, palettes) is laid over white;
  other colour spaces (``CMYK``, ``YCbCr``, ...) go through PIL's conversion. Pictures smaller than
  :data:`MIN_SIDE` pixels a side or larger than :data:`MAX_PIXELS` are refused (the large ones before they
  are decoded); pictures larger than :data:`SHRINK_TO` pixels a side are shrunk first (every processor
  shrinks them further anyway, to 224–384 pixels).
- :func:`prepare_audio`: any clip → mono float32 at 16 kHz, Whisper's rate. Integer samples are scaled to
  [-1, 1], channels are averaged, other rates are resampled (polyphase filter). Empty, silent, too short
  and too long (over :data:`MAX_SECONDS`, Whisper's window) clips are refused.
- :func:`check_text`: empty text and text beyond the model's context are refused; with ``vocabulary``,
  words the model never saw are refused too (a word-level stand-in would map them to ``[UNK]``).

Errors are :class:`mmbook.errors.InputError` (a ``ValueError``); the apps turn them into ``gr.Error``.
The limits (:data:`MAX_PIXELS`, :data:`MAX_TEXT_CHARS`) come from :mod:`mmbook.limits`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmbook.errors import InputError
from mmbook.limits import MAX_PIXELS, MAX_TEXT_CHARS

MIN_SIDE = 16
SHRINK_TO = 1024
SAMPLE_RATE = 16_000
MAX_SECONDS = 30.0
MIN_SECONDS = 0.1
#: A clip whose loudest sample is below this (in [-1, 1]) is treated as silence.
SILENCE_PEAK = 1e-3


# ----------------------------------------------------------------------------------------------------
# pictures


def check_size(width: int, height: int) -> None:
    """Refuse pictures that are too small to show anything or too large to decode safely (Chapter 8)."""
    if min(width, height) < MIN_SIDE:
        raise InputError(f"The picture is {width}×{height} pixels, too small to show anything; "
                         f"please use one at least {MIN_SIDE}×{MIN_SIDE} pixels.")
    if width * height > MAX_PIXELS:
        side = math.isqrt(MAX_PIXELS)
        raise InputError(f"The picture is {width:,}×{height:,} pixels ({width * height / 1e6:,.0f} megapixels); "
                         f"the limit is {MAX_PIXELS:,} pixels ({side:,}×{side:,}). Please scale it down first "
                         f"(the models see at most 384×384 pixels anyway).")


def open_image(path: str | Path) -> Any:
    """Open a picture file, checking its size *before* decoding it, and return it as RGB (Chapter 8)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise InputError(f"The picture is far too large to open ({exc}).") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"This file is not a picture that can be read ({type(exc).__name__}).") from None
    check_size(*image.size)
    try:
        if max(image.size) > SHRINK_TO:
            image.draft("RGB", (SHRINK_TO, SHRINK_TO))  # JPEG: decode at a reduced scale
        image.load()
    except (OSError, ValueError) as exc:
        raise InputError(f"The picture file is damaged and cannot be decoded ({exc}).") from None
    return to_rgb(image)


def _from_array(array: np.ndarray) -> Any:
    from PIL import Image

    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise InputError(f"A picture must be H×W, H×W×3 or H×W×4; got an array of shape {array.shape}.")
    if array.dtype == np.uint8:
        return Image.fromarray(array)
    if array.dtype == np.uint16:
        return Image.fromarray((array / 257).round().astype(np.uint8))
    if array.dtype == bool:
        return Image.fromarray(array.astype(np.uint8) * 255)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise InputError("The picture contains NaN or infinite values.")
        scale = 255 if array.max() <= 1.0 else 1  # floats in [0, 1], or already 0-255
        return Image.fromarray(np.clip(array * scale, 0, 255).round().astype(np.uint8))
    raise InputError(f"Pictures of type {array.dtype} are not supported; use uint8, uint16 or float.")


def to_rgb(image: Any) -> Any:
    """``image`` (a ``PIL.Image`` in any mode, or an array) as an RGB ``PIL.Image``, checked and converted as
    the module documents (Chapter 8)."""
    from PIL import Image

    if isinstance(image, (str, Path)):
        return open_image(image)
    if isinstance(image, np.ndarray):
        check_size(image.shape[1] if image.ndim > 1 else 1, image.shape[0])
        image = _from_array(image)
    if not isinstance(image, Image.Image):
        raise InputError(f"Expected a picture, got {type(image).__name__}.")
    check_size(*image.size)
    if max(image.size) > SHRINK_TO:
        image = image.copy()
        image.thumbnail((SHRINK_TO, SHRINK_TO))
    mode = image.mode
    if mode.startswith("I;16"):
        grey = np.asarray(image, dtype=np.float64) / 257  # 0-65535 → 0-255
        image = Image.fromarray(grey.round().astype(np.uint8))
    elif mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        stretched = (values - low) / (high - low) * 255 if high > low else np.zeros_like(values)
        image = Image.fromarray(stretched.round().astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return image.convert("RGB")


def pixel_statistics(values: Any) -> dict[str, Any]:
    """Shape, dtype, minimum, maximum, mean and standard deviation of an image or tensor (Chapter 8)."""
    array = np.asarray(values.numpy() if hasattr(values, "numpy") else values)
    return {"shape": tuple(array.shape), "dtype": str(array.dtype), "min": float(array.min()),
            "max": float(array.max()), "mean": float(array.mean()), "std": float(array.std())}  # fmt: skip


# ----------------------------------------------------------------------------------------------------
# sound


def prepare_audio(samples: Any, sample_rate: int, *, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A clip as mono float32 in [-1, 1] at ``target_rate`` (Whisper: 16 kHz), checked (Chapter 8).

    ``samples`` is (T,) or (T, channels), integers or floats. Refuses empty, silent, shorter than
    :data:`MIN_SECONDS` and longer than :data:`MAX_SECONDS` clips with an :class:`InputError`.
    """
    from math import gcd

    from scipy.signal import resample_poly

    array = np.asarray(samples)
    if not isinstance(sample_rate, int | np.integer) or not 1_000 <= sample_rate <= 384_000:
        raise InputError(f"The sample rate must be between 1,000 and 384,000 Hz; got {sample_rate!r}.")
    if array.size == 0:
        raise InputError("The recording is empty; please record or upload a clip.")
    if np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(array.dtype)
        offset = (int(info.max) + 1) // 2 if info.min == 0 else 0  # unsigned (uint8 WAV) is centred on 128
        audio = (array.astype(np.float64) - offset) / (int(info.max) + 1 - offset)
    elif np.issubdtype(array.dtype, np.floating):
        audio = array.astype(np.float64)
        if not np.isfinite(audio).all():
            raise InputError("The recording contains NaN or infinite samples.")
    else:
        raise InputError(f"Samples of type {array.dtype} are not supported.")
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    elif audio.ndim != 1:
        raise InputError(f"A clip must be (samples,) or (samples, channels); got shape {array.shape}.")
    seconds = len(audio) / sample_rate
    if seconds > MAX_SECONDS:
        raise InputError(f"The clip lasts {seconds:.1f} s; Whisper reads {MAX_SECONDS:.0f}-second windows and "
                         f"this app accepts at most {MAX_SECONDS:.0f} s. Please trim it.")
    if seconds < MIN_SECONDS:
        raise InputError(f"The clip lasts {1000 * seconds:.0f} ms; please use at least {1000 * MIN_SECONDS:.0f} ms.")
    peak = float(np.abs(audio).max())
    if peak < SILENCE_PEAK:
        raise InputError(f"The clip is silent (its loudest sample is {peak:.1e} of full scale); nothing to transcribe.")
    audio = np.clip(audio, -1.0, 1.0)
    if sample_rate != target_rate:
        common = gcd(int(sample_rate), int(target_rate))
        audio = resample_poly(audio, target_rate // common, int(sample_rate) // common)
    return audio.astype(np.float32)


def log_mel(feature_extractor: Any, audio: np.ndarray) -> np.ndarray:
    """What Whisper's feature extractor makes of a 16 kHz clip: (80 bands, 3,000 frames), padded to 30 s."""
    features = feature_extractor(audio, sampling_rate=feature_extractor.sampling_rate, return_tensors="np")
    return features["input_features"][0]


# ----------------------------------------------------------------------------------------------------
# text


def check_text(text: Any, what: str = "text", *, tokenizer: Any = None, max_tokens: int | None = None,
               vocabulary: Iterable[str] | None = None) -> str:
    """``text`` stripped, or an :class:`InputError`: empty, too long (characters, or tokens of ``tokenizer``
    beyond ``max_tokens``), or with words outside ``vocabulary`` (Chapter 8)."""
    from mmbook.data import words

    if not isinstance(text, str) or not text.strip():
        raise InputError(f"Please type the {what}.")
    text = " ".join(text.split())
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(f"The {what} has {len(text):,} characters; the limit is {MAX_TEXT_CHARS}.")
    if vocabulary is not None:
        known = set(vocabulary)
        unknown = sorted({w for w in words(text) if w not in known})
        if unknown:
            raise InputError(f"The offline model never saw the word(s) {', '.join(map(repr, unknown))}; it knows "
                             "only the words of the shapes world (colours, shapes, positions, numbers).")
    if tokenizer is not None and max_tokens is not None:
        count = len(tokenizer(text)["input_ids"])
        if count > max_tokens:
            raise InputError(f"The {what} has {count} tokens; the model reads at most {max_tokens}.")
    return text


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
    with their softmax probability over the answer set (Chapter 8).

    (The hub's ViLT was trained with one sigmoid per answer; the ranking is the same either way.)
    """
    import torch

    inputs = processor(images=to_rgb(image), text=question, return_tensors="pt").to(model.device)
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    with torch.inference_mode():
        logits = model(**inputs).logits[0].float()
    probabilities = logits.softmax(-1)
    best = probabilities.topk(min(k, len(probabilities)))
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


__all__ = [
    "InputError", "MAX_PIXELS", "MAX_SECONDS", "MAX_TEXT_CHARS", "MIN_SIDE", "SAMPLE_RATE", "SHRINK_TO", "answer",
    "caption", "check_size", "check_text", "classify", "complete", "draw", "log_mel", "megabytes",
    "open_image", "pixel_statistics", "prepare_audio", "to_rgb", "transcribe",
]  # fmt: skip
