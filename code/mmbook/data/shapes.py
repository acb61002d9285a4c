"""The shapes world: coloured shapes on a 3x3 grid, seen, described, questioned and heard.

Each sample is one picture with one to nine shapes (at most one per grid cell), a caption, five questions
with one-word answers, a short sound that plays one tone per shape, and the ground-truth attributes. The
same scene in four modalities makes alignment, fusion and compositional generalisation measurable.
The world's attributes (shapes, colours, grid cells, answers, sound constants) are in
:mod:`mmbook.data.world`; :mod:`mmbook.data.render` draws the pictures and plays the tones. This module
writes the captions and questions and puts the scenes together (:func:`make_shapes`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmbook.data._text import template_words
from mmbook.data.render import centre, masks, render_audio, render_images
from mmbook.data.world import (
    ANSWERS,
    CLIP_SECONDS,
    COLORS,
    COLUMNS,
    COMBINATIONS,
    HELDOUT_COMBINATIONS,
    IMAGE_SIZES,
    NUMBER_WORDS,
    POSITIONS,
    RADIUS,
    ROWS,
    SAMPLE_RATE,
    SHAPE_KINDS,
    SIZES,
    SPLITS,
    TONE_HZ,
    TRAIN_COMBINATIONS,
)

#: ``questions[i][j]`` asks a question of type ``QUESTION_TYPES[j]``.
QUESTION_TYPES: tuple[str, ...] = ("color", "shape", "count", "position", "exists")

KIND_WORDS = {
    "circle": ("circle", "disk"),
    "square": ("square", "box"),
    "triangle": ("triangle",),
    "diamond": ("diamond", "rhombus"),
    "cross": ("cross", "plus"),
}
_PLURALS = {kind: kind + ("es" if kind.endswith("s") else "s") for kind in SHAPE_KINDS}
COLOR_WORDS = {c: (c, "violet") if c == "purple" else (c,) for c in COLORS}
_SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big")}
#: Phrases that name exactly one cell: questions use these; captions also use the looser ones below.
POSITION_PHRASES: dict[str, tuple[str, ...]] = {
    "top left": ("in the top left", "in the top left corner", "at the top left"),
    "top": ("in the top center", "at the top in the middle"),
    "top right": ("in the top right", "in the top right corner", "at the top right"),
    "left": ("in the middle on the left", "in the center left"),
    "center": ("in the center", "in the middle", "at the center"),
    "right": ("in the middle on the right", "in the center right"),
    "bottom left": ("in the bottom left", "in the bottom left corner", "at the bottom left"),
    "bottom": ("in the bottom center", "at the bottom in the middle"),
    "bottom right": ("in the bottom right", "in the bottom right corner", "at the bottom right"),
}
# "at the top" is true of a shape in the top center cell, but would not single that cell out in a question.
_LOOSE_PHRASES = {
    "top": ("at the top",),
    "left": ("on the left", "on the left side"),
    "right": ("on the right", "on the right side"),
    "bottom": ("at the bottom",),
}
_CAPTION_PHRASES = {cell: ps + _LOOSE_PHRASES.get(cell, ()) for cell, ps in POSITION_PHRASES.items()}
_OBJECT_TEMPLATES = ("{color} {kind} {pos}", "{size} {color} {kind} {pos}", "{kind} in {color} {pos}")
_ONE_TEMPLATES = (
    "{objs}", "there is {objs}", "an image of {objs}", "a picture with {objs}", "one shape: {objs}",
    "{objs} on a dark background",
)  # fmt: skip
_MANY_TEMPLATES = (
    "{objs}", "there are {count} shapes: {objs}", "{count} shapes: {objs}", "a picture of {objs}",
    "an image with {count} shapes: {objs}", "{count} objects: {objs}",
)  # fmt: skip
_COLOR_QUESTIONS = (
    "what color is the {target}?",
    "what colour is the {target}?",
    "which color is the {target}?",
)
_SHAPE_QUESTIONS = ("what shape is {pos}?", "which shape is {pos}?", "what kind of shape is {pos}?")
_TOTAL_QUESTIONS = (
    "how many shapes are there?",
    "how many shapes are in the image?",
    "how many objects are there?",
)
_COLOR_COUNT_QUESTION = "how many {color} shapes are there?"
_KIND_COUNT_QUESTION = "how many {plural} are there?"
_ROW_QUESTION = "is the {target} at the top, in the middle or at the bottom?"
_COLUMN_QUESTION = "is the {target} on the left, in the center or on the right?"
_OCCUPIED_QUESTIONS = ("is there a shape {pos}?", "is anything {pos}?")
_EXISTS_QUESTIONS = ("is there {thing}?", "is there {thing} in the image?", "do you see {thing}?")

#: Every word and punctuation mark that a caption, question or answer can contain.
VOCABULARY: tuple[str, ...] = tuple(
    sorted(
        template_words(
            [
                "a an and , ",
                *NUMBER_WORDS,
                *ANSWERS,
                *(
                    w
                    for ws in (*KIND_WORDS.values(), *COLOR_WORDS.values(), *_SIZE_WORDS.values())
                    for w in ws
                ),
                *_PLURALS.values(),
                *(p for ps in _CAPTION_PHRASES.values() for p in ps),
                *_OBJECT_TEMPLATES,
                *_ONE_TEMPLATES,
                *_MANY_TEMPLATES,
                *_COLOR_QUESTIONS,
                *_SHAPE_QUESTIONS,
                *_TOTAL_QUESTIONS,
                _COLOR_COUNT_QUESTION,
                _KIND_COUNT_QUESTION,
                _ROW_QUESTION,
                _COLUMN_QUESTION,
                *_OCCUPIED_QUESTIONS,
                *_EXISTS_QUESTIONS,
            ]
        )
    )
)


@dataclass(repr=False, eq=False)
class Shapes:
    """A batch of the shapes world, made by :func:`make_shapes` (Chapter 2).

    ``images`` are uint8 N×H×W×3; ``audio`` float32 N×T at ``sample_rate``; ``attributes[i]`` lists the
    shapes of image ``i`` in reading order; ``questions[i][j]`` has type ``QUESTION_TYPES[j]`` and answer
    ``answers[i][j]``. ``shapes[i]`` returns sample ``i`` as a dict.
    """

    images: np.ndarray
    captions: list[str]
    attributes: list[list[dict[str, Any]]]
    questions: list[list[str]]
    answers: list[list[str]]
    audio: np.ndarray
    sample_rate: int
    split: str | None

    @property
    def n(self) -> int:
        """Number of samples."""
        return len(self.images)

    @property
    def image_size(self) -> int:
        """Side of the square images in pixels."""
        return self.images.shape[1]

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        seconds = self.audio.shape[1] / self.sample_rate
        return f"Shapes(n={self.n}, image_size={self.image_size}, split={self.split!r}, audio={seconds:g} s)"

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {
            "image": self.images[i],
            "caption": self.captions[i],
            "attributes": self.attributes[i],
            "questions": self.questions[i],
            "answers": self.answers[i],
            "audio": self.audio[i],
        }


_CHUNK = 1024  # samples rendered at a time: bounded memory and cache-friendly


def _with_article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def caption_for(objects: list[dict[str, Any]], r: random.Random) -> str:
    """A caption naming every shape of ``objects`` in reading order, from varied templates and synonyms.

    :func:`make_shapes` writes its captions with it; Chapter 7 writes hard negatives with it, so that a
    negative caption has exactly the style of a positive one.
    """

    def word(options: tuple[str, ...]) -> str:
        return options[0] if len(options) == 1 or r.random() < 0.7 else r.choice(options[1:])

    phrases = []
    for o in objects:
        text = r.choice(_OBJECT_TEMPLATES).format(
            size=word(_SIZE_WORDS[o["size"]]),
            color=word(COLOR_WORDS[o["color"]]),
            kind=word(KIND_WORDS[o["shape"]]),
            pos=r.choice(_CAPTION_PHRASES[o["position"]]),
        )
        phrases.append(_with_article(text))
    if len(phrases) == 1:
        return r.choice(_ONE_TEMPLATES).format(objs=phrases[0])
    listed = ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return r.choice(_MANY_TEMPLATES).format(objs=listed, count=NUMBER_WORDS[len(phrases)])


def _unique_description(o: dict[str, Any], objects: list[dict[str, Any]]) -> str | None:
    """The shortest of "kind", "colour kind", "size colour kind" that singles ``o`` out, if any."""
    for keys in (("shape",), ("color", "shape"), ("size", "color", "shape")):
        if sum(all(p[k] == o[k] for k in keys) for p in objects) == 1:
            return " ".join(o[k] for k in keys)
    return None


def _questions(
    objects: list[dict[str, Any]], r: random.Random, combos: tuple[tuple[str, str], ...]
) -> tuple[list[str], list[str]]:
    """One question of each of ``QUESTION_TYPES`` with its true one-word answer."""
    qs, ans = [], []

    # colour
    o = r.choice(objects)
    alone = sum(p["shape"] == o["shape"] for p in objects) == 1
    target = o["shape"] if alone else f"{o['shape']} {r.choice(POSITION_PHRASES[o['position']])}"
    qs.append(r.choice(_COLOR_QUESTIONS).format(target=target))
    ans.append(o["color"])

    # shape
    o = r.choice(objects)
    qs.append(r.choice(_SHAPE_QUESTIONS).format(pos=r.choice(POSITION_PHRASES[o["position"]])))
    ans.append(o["shape"])

    # count
    roll = r.random()
    if roll < 0.4:
        qs.append(r.choice(_TOTAL_QUESTIONS))
        count = len(objects)
    elif roll < 0.7:
        color = r.choice(objects)["color"] if r.random() < 0.5 else r.choice(list(COLORS))
        qs.append(_COLOR_COUNT_QUESTION.format(color=color))
        count = sum(p["color"] == color for p in objects)
    else:
        kind = r.choice(objects)["shape"] if r.random() < 0.5 else r.choice(SHAPE_KINDS)
        qs.append(_KIND_COUNT_QUESTION.format(plural=_PLURALS[kind]))
        count = sum(p["shape"] == kind for p in objects)
    ans.append(NUMBER_WORDS[count])

    # position: row or column of a shape named unambiguously, else whether a cell is occupied
    o = r.choice(objects)
    target = _unique_description(o, objects)
    if target is not None and r.random() < 0.8:
        if r.random() < 0.5:
            qs.append(_ROW_QUESTION.format(target=target))
            ans.append(ROWS[o["row"]])
        else:
            qs.append(_COLUMN_QUESTION.format(target=target))
            ans.append(COLUMNS[o["col"]])
    else:
        taken = {p["position"] for p in objects}
        empty = [p for p in POSITIONS if p not in taken]
        cell = r.choice(empty) if empty and r.random() < 0.5 else r.choice(sorted(taken))
        qs.append(r.choice(_OCCUPIED_QUESTIONS).format(pos=r.choice(POSITION_PHRASES[cell])))
        ans.append("yes" if cell in taken else "no")

    # exists: half the time a pair that is in the image, otherwise one that is not
    seen = {(p["shape"], p["color"]) for p in objects}
    absent = [c for c in combos if c not in seen]
    kind, color = r.choice(sorted(seen)) if r.random() < 0.5 or not absent else r.choice(absent)
    qs.append(r.choice(_EXISTS_QUESTIONS).format(thing=_with_article(f"{color} {kind}")))
    ans.append("yes" if (kind, color) in seen else "no")
    return qs, ans


def _check_range(name: str, value: int, low: int, high: int, why: str = "") -> None:
    if not (isinstance(value, int | np.integer) and low <= value <= high):
        raise ValueError(f"{name} must be an integer between {low} and {high}{why}, got {value!r}")


def make_shapes(
    n: int,
    *,
    seed: int = 0,
    image_size: int = 32,
    max_shapes: int = 3,
    min_shapes: int = 1,
    split: str | None = None,
) -> Shapes:
    """Generate ``n`` samples of the shapes world, the same for the same arguments (Chapter 2).

    Each image holds ``min_shapes`` to ``max_shapes`` shapes, one per cell of a 3x3 grid. ``split="train"``
    uses only ``TRAIN_COMBINATIONS`` (in pictures and in text), ``split="heldout"`` puts at least one of
    ``HELDOUT_COMBINATIONS`` in every image (Chapter 6 tests compositional generalisation with it), and
    ``split=None`` draws from all combinations. The sound lasts ``CLIP_SECONDS`` and plays one tone per
    shape in reading order, each ``CLIP_SECONDS / max_shapes`` long: pitch for colour (``TONE_HZ``),
    timbre for kind (``WAVEFORMS``), loudness for size.
    """
    if not (isinstance(n, int | np.integer) and n > 0):
        raise ValueError(f"n must be a positive integer (1 or more), got {n!r}")
    if image_size not in IMAGE_SIZES:
        raise ValueError(f"image_size must be one of {IMAGE_SIZES}, got {image_size!r}")
    _check_range("max_shapes", max_shapes, 1, 9, " (one shape per cell of the 3x3 grid)")
    _check_range("min_shapes", min_shapes, 1, max_shapes, f" (max_shapes={max_shapes})")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")

    rng = np.random.default_rng(seed)
    counts = rng.integers(min_shapes, max_shapes + 1, size=n)
    slots = np.arange(max_shapes)
    present = slots < counts[:, None]
    # A random set of cells per image, the used ones first and in reading order (9 marks "no shape").
    cells = np.sort(np.where(present, np.argsort(rng.random((n, 9)), axis=1)[:, :max_shapes], 9), axis=1)
    pool = TRAIN_COMBINATIONS if split == "train" else COMBINATIONS
    pool_index = np.array([COMBINATIONS.index(c) for c in pool])
    combo = pool_index[rng.integers(len(pool), size=(n, max_shapes))]
    if split == "heldout":
        heldout_index = np.array([COMBINATIONS.index(c) for c in HELDOUT_COMBINATIONS])
        combo[np.arange(n), rng.integers(0, counts)] = heldout_index[rng.integers(len(heldout_index), size=n)]
    kinds, colors = np.divmod(combo, len(COLORS))
    sizes = rng.integers(len(SIZES), size=(n, max_shapes))

    # Pictures and sounds, rendered a chunk of samples at a time.
    empty = len(masks(image_size)) - 1
    mask_index = np.where(present, (kinds * len(SIZES) + sizes) * 9 + cells % 9, empty)
    palette = np.array(list(COLORS.values()), np.float32)
    rgb = palette[colors] + rng.uniform(-12, 12, (n, max_shapes, 3)).astype(np.float32)
    background = rng.uniform(15, 45, n).astype(np.float32)
    wave_index = np.where(present, kinds, len(SHAPE_KINDS))
    hz = np.array(list(TONE_HZ.values()), np.float32)[colors] * rng.uniform(0.99, 1.01, (n, max_shapes))
    phase = rng.random((n, max_shapes))
    loudness = np.where(sizes == 1, 0.8, 0.4).astype(np.float32)
    r = random.Random(int(rng.integers(2**62)))  # the words do not depend on image_size
    images = np.empty((n, image_size, image_size, 3), np.uint8)
    audio = np.empty((n, int(SAMPLE_RATE * CLIP_SECONDS)), np.float32)
    for s in range(0, n, _CHUNK):
        c = slice(s, s + _CHUNK)
        images[c] = render_images(rng, mask_index[c], rgb[c], background[c], image_size)
        audio[c] = render_audio(rng, wave_index[c], hz[c], phase[c], loudness[c])

    # Words: attributes, captions and questions.
    cell_px = image_size / 3
    color_names = tuple(COLORS)
    attributes, captions, questions, answers = [], [], [], []
    for k_row, c_row, z_row, cell_row, count in zip(
        kinds.tolist(), colors.tolist(), sizes.tolist(), cells.tolist(), counts.tolist(), strict=True
    ):
        objects = [
            {
                "shape": SHAPE_KINDS[k],
                "color": color_names[c],
                "size": SIZES[z],
                "position": POSITIONS[cell],
                "row": cell // 3,
                "col": cell % 3,
                "x": centre(cell % 3, image_size),
                "y": centre(cell // 3, image_size),
                "radius": RADIUS[SIZES[z]] * cell_px,
            }
            for k, c, z, cell in zip(
                k_row[:count], c_row[:count], z_row[:count], cell_row[:count], strict=True
            )
        ]
        attributes.append(objects)
        captions.append(caption_for(objects, r))
        qs, ans = _questions(objects, r, pool)
        questions.append(qs)
        answers.append(ans)
    return Shapes(images, captions, attributes, questions, answers, audio, SAMPLE_RATE, split)
