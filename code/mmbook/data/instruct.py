"""Conversations about shapes-world pictures: what the book's tiny vision-language model learns from (Chapter 11).

- :func:`caption_pairs`: picture–caption pairs for stage 1 (feature alignment); the question is empty.
- :func:`instructions`: single-turn instructions of four kinds (:data:`TASKS`):

  ``color``: "what color is the {shape}?" on one-shape pictures, answered by the colour word;
  ``count``: "how many shapes are there?", answered by a number word;
  ``exists``: "is there a {color} {shape}?", yes or no, about one present and one absent object each;
  ``describe``: "describe the picture.", answered by :func:`describe` (every shape, reading order);
  optionally mixed with the five questions :func:`mmbook.data.make_shapes` writes (kinds ``shapes-...``).
- :func:`pope`: the POPE protocol: for every picture one present and one absent object, the absent one drawn
  in one of :data:`POPE_SETTINGS`.
- :func:`caption_truth`, :func:`describe_score`: is every colour–shape pair a caption names in the picture?

**Popular and adversarial in a world without habits.** POPE's "popular" absent objects are the most frequent
objects of the training data and its "adversarial" ones those that co-occur most with the objects present.
:func:`mmbook.data.make_shapes` draws every shape independently and uniformly from the allowed pairs, so
frequencies and co-occurrences are flat up to sampling noise (:func:`object_frequency` and
:func:`cooccurrence` measure it) and both rankings would be random draws in disguise. The book keeps the
shapes world as it is (every chapter shares it) and makes "adversarial" mean what co-occurrence stands for in
natural pictures, a *near miss*: an absent pair that shares its colour or its kind with an object in the
picture ("a red square" beside a red circle), which a model that sees colours and kinds but does not bind
them says "yes" to. "popular" stays POPE's definition (the most frequent absent training objects).

The generated text uses American "color"; :func:`caption_truth` also reads "colour" and the synonyms of
:mod:`mmbook.data.shapes` (disk, box, rhombus, plus, violet).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from mmbook.data._text import words
from mmbook.data.shapes import COLOR_WORDS, KIND_WORDS, NUMBER_WORDS, QUESTION_TYPES, TRAIN_COMBINATIONS, Shapes

Pair = tuple[str, str]  # (shape, color), as in mmbook.data.shapes.COMBINATIONS
#: The objects Chapter 11's questions name: every (shape, colour) pair of the training split.
CANDIDATES: list[Pair] = list(TRAIN_COMBINATIONS)

COLOR_QUESTION = "what color is the {shape}?"
COUNT_QUESTION = "how many shapes are there?"
EXISTS_QUESTION = "is there {thing}?"
DESCRIBE_QUESTION = "describe the picture."
#: Every text template of the conversations: with :data:`mmbook.data.shapes.VOCABULARY` the tokenizer's words.
TEMPLATES: tuple[str, ...] = (COLOR_QUESTION, COUNT_QUESTION, EXISTS_QUESTION, DESCRIBE_QUESTION, "a an and , .")
TASKS: tuple[str, ...] = ("color", "count", "exists", "describe")
POPE_SETTINGS: tuple[str, ...] = ("random", "popular", "adversarial")


@dataclass(frozen=True)
class Turn:
    """One single-turn conversation: picture ``image`` of the scenes, a question, its answer and its kind."""

    image: int
    question: str
    answer: str
    kind: str


def with_article(phrase: str) -> str:
    """``"a red circle"``, ``"an orange square"``."""
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def describe(objects: list[dict[str, Any]]) -> str:
    """The reference answer to "describe the picture.": every shape in reading order (Chapter 11).

    ``"a red circle, a blue square and an orange cross."``
    """
    phrases = [with_article(f"{o['color']} {o['shape']}") for o in objects]
    listed = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return listed + "."


def pairs_of(objects: list[dict[str, Any]]) -> set[Pair]:
    """The (shape, color) pairs in a picture."""
    return {(o["shape"], o["color"]) for o in objects}


def caption_pairs(scenes: Shapes) -> list[Turn]:
    """Stage-1 data: each picture with its ``make_shapes`` caption as the answer to an empty question."""
    return [Turn(i, "", caption, "caption") for i, caption in enumerate(scenes.captions)]


def object_frequency(scenes: Shapes) -> Counter[Pair]:
    """How many pictures of ``scenes`` contain each (shape, color) pair."""
    return Counter(p for objects in scenes.attributes for p in pairs_of(objects))


def cooccurrence(scenes: Shapes) -> Counter[tuple[Pair, Pair]]:
    """How many pictures contain both pairs of each ordered pair of distinct (shape, color) pairs."""
    counts: Counter[tuple[Pair, Pair]] = Counter()
    for objects in scenes.attributes:
        present = sorted(pairs_of(objects))
        counts.update((a, b) for a in present for b in present if a != b)
    return counts


def _near_misses(present: set[Pair], candidates: list[Pair]) -> list[Pair]:
    return [c for c in candidates if c not in present and any(c[0] == p[0] or c[1] == p[1] for p in present)]


def absent_object(
    objects: list[dict[str, Any]], setting: str, r: random.Random, candidates: list[Pair], popular: list[Pair]
) -> Pair:
    """An object of ``candidates`` that is not in the picture, drawn as POPE's ``setting`` says (Chapter 11).

    ``random``: uniformly; ``popular``: the most frequent absent object of ``popular`` (a ranking, most
    frequent first); ``adversarial``: a near miss sharing colour or kind with a present object (see the
    module's docstring), uniformly among them.
    """
    present = pairs_of(objects)
    absent = [c for c in candidates if c not in present]
    if setting == "random":
        return r.choice(absent)
    if setting == "popular":
        return next(c for c in popular if c not in present)
    if setting == "adversarial":
        return r.choice(_near_misses(present, candidates) or absent)
    raise ValueError(f"setting must be one of {POPE_SETTINGS}, got {setting!r}")


def exists_question(pair: Pair) -> str:
    """"is there a red circle?" for ``("circle", "red")``."""
    return EXISTS_QUESTION.format(thing=with_article(f"{pair[1]} {pair[0]}"))


def instructions(
    scenes: Shapes,
    candidates: list[Pair],
    *,
    seed: int = 0,
    kinds: tuple[str, ...] = TASKS,
    shapes_questions: bool = False,
    near_miss_share: float = 0.5,
    exists_pairs: int = 1,
) -> list[Turn]:
    """Stage-2 data: for every picture one conversation of each of ``kinds`` that applies (Chapter 11).

    ``color`` applies to one-shape pictures only. ``exists`` asks ``exists_pairs`` times about a present and
    an absent object; the absent one is a near miss with probability ``near_miss_share``, else any absent
    pair of ``candidates`` (the pairs the data may mention). ``shapes_questions`` adds the five questions of
    ``make_shapes``.
    """
    r = random.Random(seed)
    turns = []
    for i, objects in enumerate(scenes.attributes):
        if "color" in kinds and len(objects) == 1:
            turns.append(Turn(i, COLOR_QUESTION.format(shape=objects[0]["shape"]), objects[0]["color"], "color"))
        if "count" in kinds:
            turns.append(Turn(i, COUNT_QUESTION, NUMBER_WORDS[len(objects)], "count"))
        for _ in range(exists_pairs if "exists" in kinds else 0):  # present and absent: the question decides
            turns.append(Turn(i, exists_question(r.choice(sorted(pairs_of(objects)))), "yes", "exists"))
            setting = "adversarial" if r.random() < near_miss_share else "random"
            absent = absent_object(objects, setting, r, candidates, candidates)
            turns.append(Turn(i, exists_question(absent), "no", "exists"))
        if "describe" in kinds:
            turns.append(Turn(i, DESCRIBE_QUESTION, describe(objects), "describe"))
        if shapes_questions:
            turns.extend(
                Turn(i, q, a, f"shapes-{t}")
                for q, a, t in zip(scenes.questions[i], scenes.answers[i], QUESTION_TYPES, strict=True)
            )
    return turns


def pope(scenes: Shapes, setting: str, candidates: list[Pair], popular: list[Pair], *, seed: int = 0) -> list[Turn]:
    """POPE questions: for every picture one present object ("yes") and one absent one ("no") (Chapter 11)."""
    if setting not in POPE_SETTINGS:
        raise ValueError(f"setting must be one of {POPE_SETTINGS}, got {setting!r}")
    r = random.Random(seed)
    turns = []
    for i, objects in enumerate(scenes.attributes):
        turns.append(Turn(i, exists_question(r.choice(sorted(pairs_of(objects)))), "yes", f"pope-{setting}"))
        absent = absent_object(objects, setting, r, candidates, popular)
        turns.append(Turn(i, exists_question(absent), "no", f"pope-{setting}"))
    return turns


_COLOR_OF = {w: c for c, ws in COLOR_WORDS.items() for w in ws}
_KIND_OF = {w: k for k, ws in KIND_WORDS.items() for w in ws}
_KIND_OF.update({w + ("es" if w.endswith("s") else "s"): k for w, k in list(_KIND_OF.items())})


def named_pairs(caption: str) -> list[Pair]:
    """The (shape, color) pairs a caption names: a colour word followed by a kind word, an optional size
    word between them (Chapter 11)."""
    found, color = [], None
    for w in words(caption):
        if w in _COLOR_OF:
            color = _COLOR_OF[w]
        elif w in _KIND_OF and color is not None:
            found.append((_KIND_OF[w], color))
            color = None
        elif w not in {"small", "large", "big", "little", "tiny"}:
            color = None
    return found


def caption_truth(caption: str, objects: list[dict[str, Any]]) -> bool:
    """Whether ``caption`` names at least one colour–shape pair and every pair it names is in the picture
    whose shapes are ``objects`` (Chapter 11)."""
    named = named_pairs(caption)
    return bool(named) and set(named) <= pairs_of(objects)


def describe_score(caption: str, objects: list[dict[str, Any]]) -> dict[str, bool]:
    """``true``: :func:`caption_truth`; ``complete``: every shape named (as many times as it appears);
    ``exact``: the caption is :func:`describe` of ``objects`` (Chapter 11)."""
    named = Counter(named_pairs(caption))
    wanted = Counter((o["shape"], o["color"]) for o in objects)
    return {
        "true": caption_truth(caption, objects),
        "complete": not (wanted - named),
        "exact": re.sub(r"\s+", " ", " ".join(words(caption))) == " ".join(words(describe(objects))),
    }

