"""The attributes of the shapes world: its shapes, colours, sizes, grid cells, questions, answers and the
physical constants of its pictures and sounds (Chapter 2).

:mod:`mmbook.data.shapes` generates scenes from them, :mod:`mmbook.data.render` draws and sounds them, and
every model that reads the shapes world (the tone reader, the matchers, the tiny VLM) names its classes with
them.
"""

from __future__ import annotations

SHAPE_KINDS: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "cross")
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "orange": (245, 145, 30),
    "yellow": (240, 225, 40),
    "green": (40, 190, 70),
    "blue": (50, 100, 240),
    "purple": (160, 70, 220),
}
SIZES: tuple[str, ...] = ("small", "large")
ROWS: tuple[str, ...] = ("top", "middle", "bottom")
COLUMNS: tuple[str, ...] = ("left", "center", "right")
#: The nine grid cells in reading order (row by row, left to right).
POSITIONS: tuple[str, ...] = (
    "top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right",
)  # fmt: skip
NUMBER_WORDS: tuple[str, ...] = tuple("zero one two three four five six seven eight nine".split())

#: Every (shape, colour) pair, shape-major.
COMBINATIONS: tuple[tuple[str, str], ...] = tuple((k, c) for k in SHAPE_KINDS for c in COLORS)
#: Pairs that ``split="train"`` never shows or mentions and every ``split="heldout"`` image contains.
HELDOUT_COMBINATIONS: tuple[tuple[str, str], ...] = (
    ("circle", "green"), ("square", "yellow"), ("triangle", "blue"), ("diamond", "orange"), ("cross", "red"),
)  # fmt: skip
TRAIN_COMBINATIONS: tuple[tuple[str, str], ...] = tuple(
    c for c in COMBINATIONS if c not in HELDOUT_COMBINATIONS
)
SPLITS: tuple[str | None, ...] = (None, "train", "heldout")

#: The closed answer vocabulary: every answer is one of these words.
ANSWERS: tuple[str, ...] = (*COLORS, *SHAPE_KINDS, *NUMBER_WORDS, "yes", "no", *ROWS, *COLUMNS)

IMAGE_SIZES: tuple[int, ...] = (32, 64)
#: Half-extent of a shape as a fraction of the cell side.
RADIUS: dict[str, float] = {"small": 0.28, "large": 0.42}

SAMPLE_RATE = 8000
CLIP_SECONDS = 0.5
#: Pitch encodes colour, low to high in rainbow order (C4 E4 G4 C5 E5 G5).
TONE_HZ: dict[str, float] = {
    "red": 261.6, "orange": 329.6, "yellow": 392.0, "green": 523.3, "blue": 659.3, "purple": 784.0,
}  # fmt: skip
#: Timbre encodes shape kind; loudness encodes size (large 0.8, small 0.4).
WAVEFORMS: dict[str, str] = {
    "circle": "sine", "square": "square", "triangle": "triangle", "diamond": "sawtooth", "cross": "pulse",
}  # fmt: skip
