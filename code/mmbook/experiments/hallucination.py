"""Object hallucination of the tiny VLM (Chapter 11) and two remedies, measured with POPE (Chapter 14).

- **Negative instructions** (as in LRV-Instruction): a short fine-tune of the book's tiny VLM on "is there
  ...?" questions of which a chosen share is about absent objects (:func:`negative_turns`), with the other
  conversation kinds replayed so that colour, count and descriptions are not forgotten.
- **Describe first**: the model answers "is there ...?" by writing its description of the picture and
  then "yes" or "no" (:func:`describe_first_turns` trains it; :func:`last_word` reads the answer).
- **Describe, then check** (no training): the model describes the picture and a program checks whether
  the asked object is among those named (:func:`grounded_answers`).

``tiny-vlm-hallucination-remedies`` (:data:`REMEDIES_ENTRY`) fine-tunes copies of ``tiny-vlm`` once and
saves each run's measurements: the chapter reads them (:func:`mmbook.zoo.load`).
"""

from __future__ import annotations

import copy
import json
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mmbook import zoo
from mmbook.data import instruct
from mmbook.data.shapes import Shapes, make_shapes
from mmbook.env import training_state


def negative_turns(scenes: Shapes, negatives: int, seed: int = 0) -> list[instruct.Turn]:
    """For every picture one "is there ...?" question about a present object (answer "yes") and
    ``negatives`` about absent ones (answer "no"), each absent object a near miss or a random one with
    equal chance: LRV-Instruction's existent- and nonexistent-object negatives in the shapes world
    (Chapter 14)."""
    r = random.Random(seed)
    turns = []
    for i, objects in enumerate(scenes.attributes):
        present = r.choice(sorted(instruct.pairs_of(objects)))
        turns.append(instruct.Turn(i, instruct.exists_question(present), "yes", "exists"))
        for _ in range(negatives):
            setting = "adversarial" if r.random() < 0.5 else "random"
            absent = instruct.absent_object(objects, setting, r, instruct.CANDIDATES, instruct.CANDIDATES)
            turns.append(instruct.Turn(i, instruct.exists_question(absent), "no", "exists"))
    return turns


def describe_first_turns(scenes: Shapes, seed: int = 0) -> list[instruct.Turn]:
    """:func:`negative_turns` with one negative, each answer preceded by the picture's description:
    "is there a red square?" → "a red circle and a blue cross. no" (Chapter 14)."""
    return [replace(t, answer=f"{instruct.describe(scenes.attributes[t.image])} {t.answer}")
            for t in negative_turns(scenes, 1, seed)]  # fmt: skip


def last_word(answer: str) -> str:
    """The last word of a describe-first answer ("yes", "no", or whatever the model wrote last)."""
    words = answer.split()
    return words[-1] if words else ""


def asked_pair(question: str) -> instruct.Pair:
    """The (shape, colour) pair an "is there ...?" question asks about (Chapter 14)."""
    named = instruct.named_pairs(question)
    if len(named) != 1:
        raise ValueError(f"expected a question about one colour–shape pair, got {question!r}")
    return named[0]


def grounded_answers(descriptions: list[str], turns: list[instruct.Turn]) -> list[str]:
    """ "yes" when the object a turn asks about is among those the description of its picture names, else
    "no": the answer checked against what the model says it sees (Chapter 14)."""
    return ["yes" if asked_pair(t.question) in instruct.named_pairs(descriptions[t.image]) else "no"
            for t in turns]  # fmt: skip


@dataclass(frozen=True)
class RemedySettings:
    """The fine-tunes of ``tiny-vlm-hallucination-remedies``: ``negatives`` absent-object questions per
    present one in each negative-instruction run, then one describe-first run; every run trains
    ``steps`` steps at ``lr`` from the book's tiny VLM on its stage-2 pictures, other kinds replayed."""

    negatives: tuple[int, ...] = (1, 3)
    describe_first: bool = True
    steps: int = 1200
    lr: float = 2e-3
    seed: int = 0


REMEDIES = RemedySettings()
#: The file of the runs' measurements in the entry's folder.
RUNS_FILE = "runs.json"


def pope_answers(
    model: Any, tokenizer: Any, pixels: Any, turns: list[instruct.Turn], describe_first: bool
) -> list[str]:
    """Greedy answers to POPE ``turns`` about the pictures ``pixels``; a describe-first model's answer is
    the last word it writes (Chapter 14)."""
    from mmbook.vlm_eval import answer_batch

    answers = answer_batch(model, tokenizer, pixels[[t.image for t in turns]], [t.question for t in turns],
                           max_new_tokens=40 if describe_first else 3)  # fmt: skip
    return [last_word(a) for a in answers] if describe_first else answers


def pope_table(model: Any, tokenizer: Any, image_processor: Any, describe_first: bool = False) -> dict[str, Any]:
    """POPE scores (accuracy, precision, recall, F1, yes rate) of ``model`` in each setting and on blank
    pictures, on Chapter 11's held-out scenes (Chapter 14)."""
    from mmbook.vlm_eval import EvalSettings, pope_scores, popular_ranking

    e = EvalSettings()
    scenes = make_shapes(e.n_scenes, seed=e.seed, max_shapes=e.max_shapes, split=e.split)
    pixels = image_processor(images=list(scenes.images), return_tensors="pt")["pixel_values"]
    popular = popular_ranking()
    out: dict[str, Any] = {}
    for setting in instruct.POPE_SETTINGS:
        turns = instruct.pope(scenes, setting, instruct.CANDIDATES, popular, seed=e.seed)
        out[setting] = pope_scores(pope_answers(model, tokenizer, pixels, turns, describe_first),
                                   [t.answer for t in turns])  # fmt: skip
    turns = instruct.pope(scenes, "random", instruct.CANDIDATES, popular, seed=e.seed)
    blank = image_processor(images=list(np.full_like(scenes.images, 30)), return_tensors="pt")["pixel_values"]
    out["blank"] = pope_scores(pope_answers(model, tokenizer, blank, turns, describe_first), ["no"] * len(turns))
    return out


@training_state()  # one thread: robust when other programs keep the cores busy
def train_remedies(folder: Path, settings: RemedySettings) -> dict[str, Any]:
    """Fine-tune copies of the book's tiny VLM with negative instructions (one run per entry of
    ``settings.negatives``) and, if asked, to describe first; save every run's losses, seconds, POPE
    table and Chapter 11's colour, count and describe scores (Chapter 14)."""
    from mmbook import lm as lm_module
    from mmbook.vlm_eval import evaluate, popular_ranking
    from mmbook.vlm_train import TINY_VLM, conversation_batches, image_features, instruct_tune, training_scenes

    s = settings
    base, processor = zoo.load("tiny-vlm")
    tokenizer, image_processor = lm_module.tokenizer(), processor.image_processor
    scenes = training_scenes(TINY_VLM)
    features = image_features(base, image_processor, scenes.images)
    replay = instruct.instructions(scenes, instruct.CANDIDATES, seed=s.seed, kinds=("color", "count", "describe"))
    tune = replace(TINY_VLM, stage2_steps=s.steps, stage2_lr=s.lr, turn_loss=True, seed=s.seed)
    plan = [(f"negatives {k}:1", negative_turns(scenes, k, s.seed), False) for k in s.negatives]
    if s.describe_first:
        plan.append(("describe first", describe_first_turns(scenes, s.seed), True))
    runs = []
    for label, turns, describe_first in plan:
        model = copy.deepcopy(base)
        start = time.perf_counter()
        data = conversation_batches(turns + replay, tokenizer, model.n_image_tokens)
        out = instruct_tune(model, data, features, tune)
        seconds = time.perf_counter() - start
        scores = evaluate(model, tokenizer, image_processor, popular=popular_ranking())
        scores.pop("describe_examples")
        no_share = float(np.mean([t.answer.split()[-1] == "no" for t in turns]))
        runs.append({"label": label, "no_share": no_share, "describe_first": describe_first, "seconds": seconds,
                     "losses": out["losses"], "pope": pope_table(model, tokenizer, image_processor, describe_first),
                     "scores": scores})  # fmt: skip
    (folder / RUNS_FILE).write_text(json.dumps(runs))
    return {}


def _load_runs(folder: Path) -> list[dict[str, Any]]:
    return json.loads((folder / RUNS_FILE).read_text())


def _check_runs(runs: list[dict[str, Any]]) -> None:
    expected = len(REMEDIES.negatives) + int(REMEDIES.describe_first)
    if len(runs) != expected:
        raise ValueError(f"the remedies hold {len(runs)} runs, not {expected}")
    if not all(np.isfinite(r["pope"][k]["accuracy"]) for r in runs for k in r["pope"]):
        raise ValueError("the remedies have non-finite POPE scores")


REMEDIES_ENTRY = zoo.register(zoo.Entry(
    "tiny-vlm-hallucination-remedies", "the tiny VLM's hallucination remedies", REMEDIES, train_remedies,
    _load_runs, _check_runs,
    code=(negative_turns, describe_first_turns, last_word, pope_answers, pope_table, "mmbook.vlm_train",
          "mmbook.vlm_eval", "mmbook.data.instruct", "mmbook.vlm", "mmbook.lm"),
))  # fmt: skip
