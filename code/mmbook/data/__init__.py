"""The datasets the book generates, each deterministic for a seed.

- :func:`make_shapes`: the shapes world, pictures with captions, questions, answers and sounds (Chapter 2).
- :func:`make_digits`: scikit-learn's handwritten digits with words, partial hints and sounds (Chapter 1).
- :func:`make_sensors`: a machine's sensor series with maintenance logs (Chapter 12).
- :func:`tokenizer`: a CLIP-style word-level tokenizer covering every word above (Chapter 3).
- :class:`ShapesDataset`, :class:`DigitsDataset`, :func:`collate`: PyTorch views (Chapter 3).
"""

from mmbook.data._text import words
from mmbook.data.digits import HINT_GROUPS, Digits, add_noise, hint_candidates, make_digits
from mmbook.data.digits import VOCABULARY as DIGITS_VOCABULARY
from mmbook.data.sensors import CHANNEL_NAMES, LABELS, LOG_KINDS, Sensors, make_sensors
from mmbook.data.sensors import VOCABULARY as SENSORS_VOCABULARY
from mmbook.data.shapes import POSITION_PHRASES, QUESTION_TYPES, Shapes, make_shapes
from mmbook.data.shapes import VOCABULARY as SHAPES_VOCABULARY
from mmbook.data.vocab import PROMPT_TEMPLATES, VOCABULARY, tokenizer
from mmbook.data.world import (
    ANSWERS,
    COLORS,
    HELDOUT_COMBINATIONS,
    NUMBER_WORDS,
    POSITIONS,
    SHAPE_KINDS,
    SIZES,
    TRAIN_COMBINATIONS,
)
from mmbook.data.wrappers import DigitsDataset, ShapesDataset, collate

__all__ = [
    "ANSWERS",
    "CHANNEL_NAMES",
    "COLORS",
    "DIGITS_VOCABULARY",
    "Digits",
    "DigitsDataset",
    "HELDOUT_COMBINATIONS",
    "HINT_GROUPS",
    "LABELS",
    "LOG_KINDS",
    "NUMBER_WORDS",
    "POSITIONS",
    "POSITION_PHRASES",
    "PROMPT_TEMPLATES",
    "QUESTION_TYPES",
    "SENSORS_VOCABULARY",
    "SHAPES_VOCABULARY",
    "SHAPE_KINDS",
    "SIZES",
    "Sensors",
    "Shapes",
    "ShapesDataset",
    "TRAIN_COMBINATIONS",
    "VOCABULARY",
    "add_noise",
    "collate",
    "hint_candidates",
    "make_digits",
    "make_sensors",
    "make_shapes",
    "tokenizer",
    "words",
]
