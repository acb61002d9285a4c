"""Sound as the book's models and apps take it and give it (Chapters 2, 8 and 10).

- :func:`prepare_audio`: any clip → mono float32 at :data:`SAMPLE_RATE` (16 kHz, the rate of speech models
  such as Whisper). Integer samples are scaled to [-1, 1], channels are averaged, other rates are
  resampled (polyphase filter). Empty, silent, too short and too long (over :data:`MAX_SECONDS`,
  Whisper's window) clips are refused with :class:`mmbook.errors.InputError`.
- :func:`log_mel`: what Whisper's feature extractor makes of a clip.
- :func:`to_int16` / :func:`write_wav`: float samples → 16-bit PCM, for ``gr.Audio`` and WAV files.
"""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

import numpy as np

from mmbook.errors import InputError

#: The sample rate of speech models (Whisper): 16 kHz.
SAMPLE_RATE = 16_000
#: The longest clip accepted, in seconds: Whisper's window.
MAX_SECONDS = 30.0
#: The shortest clip accepted, in seconds.
MIN_SECONDS = 0.1
#: A clip whose loudest sample is below this (in [-1, 1]) is treated as silence.
SILENCE_PEAK = 1e-3


# ----------------------------------------------------------------------------------------------------
# sound in


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
# sound out


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] → 16-bit PCM, the format a WAV file stores (Chapter 2).

    Gradio would convert a float array itself, with a warning and after scaling it to its peak; converting
    here keeps the loudness of the clip, so a small shape still sounds quieter than a large one.
    """
    return np.rint(np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Save float samples in [-1, 1] as a mono 16-bit WAV file at ``path`` and return the path (Chapter 10,
    and the tests that upload clips)."""
    path = Path(path)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(to_int16(np.asarray(audio, dtype=np.float64)).tobytes())
    return path


__all__ = ["MAX_SECONDS", "MIN_SECONDS", "SAMPLE_RATE", "SILENCE_PEAK", "log_mel", "prepare_audio", "to_int16",
           "write_wav"]
