"""Real handwritten digits with number words, partial hints and synthetic spoken numbers (Chapter 1).

The images are scikit-learn's 1,797 handwritten digits (8×8, shipped with the library). The hint gives only
parity and magnitude, so it narrows ten classes to two or three: text and image are complementary, and
neither alone is the whole answer.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmbook.data._text import template_words
from mmbook.data.world import NUMBER_WORDS

#: The digits each (parity, magnitude) hint leaves possible; "small" means below five.
HINT_GROUPS: dict[tuple[str, str], frozenset[int]] = {
    ("even", "small"): frozenset({0, 2, 4}),
    ("odd", "small"): frozenset({1, 3}),
    ("even", "large"): frozenset({6, 8}),
    ("odd", "large"): frozenset({5, 7, 9}),
}
_COMPARISONS = {
    "small": ("less than five", "below five", "smaller than five", "under five"),
    "large": ("greater than four", "above four", "at least five", "bigger than four", "five or more"),
}
_ADJECTIVES = {"small": ("small", "low"), "large": ("large", "big", "high")}
_HINT_TEMPLATES = (
    "an {parity} number {comparison}",
    "it is {parity} and {comparison}",
    "the digit is {parity} and {comparison}",
    "an {parity} digit, {comparison}",
    "a {adjective} {parity} digit",
    "a {adjective} {parity} number",
    "{adjective} and {parity}",
)


def _all_hints() -> dict[str, frozenset[int]]:
    """Every hint any template can produce, with the digits it leaves possible."""
    hints = {}
    for (parity, magnitude), digits in HINT_GROUPS.items():
        for template, comparison, adjective in itertools.product(
            _HINT_TEMPLATES, _COMPARISONS[magnitude], _ADJECTIVES[magnitude]
        ):
            hints[template.format(parity=parity, comparison=comparison, adjective=adjective)] = digits
    return hints


_HINTS = _all_hints()
#: Every word and punctuation mark of the number words and hints.
VOCABULARY: tuple[str, ...] = tuple(sorted(template_words([*_HINTS, *NUMBER_WORDS])))

SAMPLE_RATE = 8000
CLIP_SECONDS = 0.5
#: Each digit is "spoken" as two syllables; each syllable is a pitch contour relative to the speaker's
#: pitch: Low, High, Rising or Falling.
DIGIT_SYLLABLES: tuple[str, ...] = ("RF", "LH", "HL", "RR", "FF", "LR", "HF", "RL", "FH", "LF")
_CONTOURS = {"L": (1.0, 1.0), "H": (1.8, 1.8), "R": (1.0, 1.8), "F": (1.8, 1.0)}


def hint_candidates(hint: str) -> set[int]:
    """The digits that a hint made by :func:`make_digits` leaves possible (Chapter 1)."""
    try:
        return set(_HINTS[" ".join(hint.lower().split())])
    except KeyError:
        raise ValueError(f"hint must be one made by make_digits, got {hint!r}") from None


@dataclass(repr=False, eq=False)
class Digits:
    """Handwritten digits with words, hints and sounds, made by :func:`make_digits` (Chapter 1).

    ``images`` are float32 N×8×8 in [0, 1], ``labels`` int64, ``audio`` float32 N×T at ``sample_rate``.
    ``digits[i]`` returns sample ``i`` as a dict.
    """

    images: np.ndarray
    labels: np.ndarray
    words: list[str]
    hints: list[str]
    audio: np.ndarray
    sample_rate: int

    @property
    def n(self) -> int:
        """Number of samples."""
        return len(self.images)

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"Digits(n={self.n}, images=8x8, audio={self.audio.shape[1] / self.sample_rate:g} s)"

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {
            "image": self.images[i],
            "label": int(self.labels[i]),
            "word": self.words[i],
            "hint": self.hints[i],
            "audio": self.audio[i],
        }


def _speak(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """Two gliding, voice-like syllables per digit; speaker pitch, tempo, onset and loudness vary."""
    n = len(labels)
    t = np.arange(int(SAMPLE_RATE * CLIP_SECONDS), dtype=np.float32) / SAMPLE_RATE
    pitch = 180 * rng.uniform(0.8, 1.25, n).astype(np.float32)  # the speaker's base pitch in Hz
    stretch = rng.uniform(0.8, 1.25, n).astype(np.float32)  # slower or faster speech
    duration, gap = 0.14 * stretch, 0.03 * stretch
    start = rng.uniform(0, 0.08, n).astype(np.float32)
    contours = np.array([[_CONTOURS[s] for s in DIGIT_SYLLABLES[d]] for d in range(10)], np.float32)
    audio = np.zeros((n, len(t)), np.float32)
    for s in range(2):
        f0, f1 = contours[labels, s].T * pitch * rng.uniform(0.97, 1.03, n).astype(np.float32)
        tau = (t - (start + s * (duration + gap))[:, None]) / duration[:, None]  # 0 to 1 over the syllable
        inside = (tau >= 0) & (tau < 1)
        tau[~inside] = 0
        # the phase integrates a frequency gliding linearly from f0 to f1 over the syllable
        cycles = duration[:, None] * (f0[:, None] * tau + (f1 - f0)[:, None] * tau**2 / 2)
        phase = np.float32(2 * np.pi) * cycles
        voice = np.sin(phase) + 0.5 * np.sin(2 * phase) + 0.25 * np.sin(3 * phase)
        audio += voice * np.sin(np.float32(np.pi) * tau) * inside
    audio *= 0.3 * rng.uniform(0.5, 1.0, (n, 1)).astype(np.float32)
    audio += 0.05 * rng.standard_normal(audio.shape, np.float32)
    return audio


def make_digits(*, seed: int = 0) -> Digits:
    """The 1,797 scikit-learn digits with number words, hints and spoken numbers (Chapter 1).

    The images and labels are always the same, in scikit-learn's order; ``seed`` picks the hint templates
    and the voices of the sounds.
    """
    from sklearn.datasets import load_digits

    raw = load_digits()
    labels = raw.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    true_hints = {d: [hint for hint, digits in _HINTS.items() if d in digits] for d in range(10)}
    picks = rng.integers(0, 2**31, len(labels)).tolist()
    hints = [true_hints[d][p % len(true_hints[d])] for d, p in zip(labels.tolist(), picks, strict=True)]
    return Digits(
        images=(raw.images / 16).astype(np.float32),
        labels=labels,
        words=[NUMBER_WORDS[d] for d in labels.tolist()],
        hints=hints,
        audio=_speak(rng, labels),
        sample_rate=SAMPLE_RATE,
    )


def add_noise(images: np.ndarray, level: float, *, seed: int = 0) -> np.ndarray:
    """Add Gaussian noise of standard deviation ``level`` and clip, for robustness experiments (Chapter 1).

    Float images are taken to lie in [0, 1] and stay float32; uint8 images stay uint8, with ``level`` still
    measured on the [0, 1] scale.
    """
    if not level >= 0:
        raise ValueError(f"level must be 0 or more, got {level!r}")
    rng = np.random.default_rng(seed)
    if images.dtype == np.uint8:
        noisy = images / 255 + level * rng.standard_normal(images.shape)
        return np.rint(np.clip(noisy, 0, 1) * 255).astype(np.uint8)
    return np.clip(images + level * rng.standard_normal(images.shape), 0, 1).astype(np.float32)
