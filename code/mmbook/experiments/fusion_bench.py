"""Chapter 5's experiment harness: the fusion tasks, the benchmark runner and the demo's trained models.

The lesson is in :mod:`mmbook.fusion` (the fusion modules) and :mod:`mmbook.fusion_classifier` (the model
and its training loop);
this module holds what the chapter runs them on:

- the tasks: :func:`color_at_task` ("what colour is the shape at <cell>?") and :func:`digits_hint_task`,
  both as a :class:`FusionTask`;
- the benchmark: a :class:`Run` per method, task and seed, run by :func:`run_one` or, in a process pool,
  by :func:`benchmark`, tested under each of :data:`CONDITIONS`;
- the demo's models: every method trained once on the colour-at task (the zoo entry ``fusion-color-at``,
  :func:`fusion_models`) and :func:`compare`, which asks them all one question.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mmbook import zoo
from mmbook.data import (
    COLORS,
    DIGITS_VOCABULARY,
    NUMBER_WORDS,
    POSITION_PHRASES,
    SHAPES_VOCABULARY,
    Digits,
    add_noise,
    make_digits,
    make_shapes,
    words,
)
from mmbook.fusion import FUSIONS, METHODS, Fusion
from mmbook.fusion_classifier import FusionClassifier, drop_modalities, predict, train_fusion

COLOR_NAMES: tuple[str, ...] = tuple(COLORS)


@dataclass(repr=False, eq=False)
class FusionTask:
    """A two-modality classification task: a picture as a grid of tokens, and a sentence (Chapter 5).

    ``grid`` is float ``(N, L, f)``, the picture cut into ``L`` regions of ``f`` numbers; ``words`` is
    long ``(N, W)``, word ids into ``vocabulary`` with 0 for padding; ``labels`` indexes ``classes``.
    ``image`` maps each sample to its picture (several questions can share one) and ``kind`` says what
    each sample asks about (the grid cell, or ``"digit"``). ``sentences`` keeps the text.
    """

    name: str
    grid: Tensor
    words: Tensor
    labels: Tensor
    classes: tuple[str, ...]
    vocabulary: tuple[str, ...]
    image: np.ndarray
    kind: list[str]
    sentences: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return (f"FusionTask({self.name!r}, n={len(self)}, grid={tuple(self.grid.shape[1:])}, "
                f"words={self.words.shape[1]}, classes={len(self.classes)})")


def _word_ids(sentences: Sequence[str], vocabulary: tuple[str, ...]) -> Tensor:
    """Padded ``(N, W)`` word ids, 1-based into ``vocabulary`` (0 is padding)."""
    index = {w: i + 1 for i, w in enumerate(vocabulary)}
    rows = [[index[w] for w in words(s)] for s in sentences]
    out = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row)
    return out


def picture_cells(images: np.ndarray) -> Tensor:
    """uint8 ``(N, H, W, 3)`` shapes-world pictures → ``(N, 9, 192)``: the 3×3 grid cells, 8×8 RGB each (Chapter 5).

    The picture is box-filtered to 24×24 pixels, so each cell of the scene's grid is one 8×8 block; the
    values are centred on 0.
    """
    pictures = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    small = F.adaptive_avg_pool2d(pictures, 24)  # (N, 3, 24, 24)
    cells = small.unfold(2, 8, 8).unfold(3, 8, 8)  # (N, 3, 3, 3, 8, 8): channel, row, col, y, x
    return cells.permute(0, 2, 3, 1, 4, 5).flatten(3).flatten(1, 2) - 0.5


COLOR_AT_TEMPLATES: tuple[str, ...] = (
    "what color is the shape {pos}?",
    "what colour is the shape {pos}?",
    "which color is the shape {pos}?",
)
"""The questions of :func:`color_at_task`; ``{pos}`` is a phrase that names one grid cell (Chapter 5)."""


def color_at_task(n_images: int, *, seed: int = 0, noise: float = 0.0, questions: int = 3,
                  min_shapes: int = 3, max_shapes: int = 5) -> FusionTask:
    """"What colour is the shape at <cell>?" about shapes-world pictures (Chapter 5).

    The picture holds the colours but not which shape is asked about; the question names the cell but
    says nothing about its colour: only the two together give the answer. Each of the ``n_images``
    pictures of ``make_shapes(n_images, seed=seed, min_shapes=min_shapes, max_shapes=max_shapes)`` gets
    ``questions`` questions about different occupied cells. ``noise`` adds Gaussian pixel noise of that
    standard deviation (on the [0, 1] scale) to the pictures.
    """
    if not 1 <= questions <= min_shapes:
        raise ValueError(f"questions must be between 1 and min_shapes={min_shapes}, got {questions}")
    shapes = make_shapes(n_images, seed=seed, min_shapes=min_shapes, max_shapes=max_shapes)
    images = add_noise(shapes.images, noise, seed=seed + 1) if noise > 0 else shapes.images
    rng = np.random.default_rng(seed)
    picture, sentences, answers, cells = [], [], [], []
    for i, objects in enumerate(shapes.attributes):
        for j in rng.choice(len(objects), size=questions, replace=False):
            o = objects[j]
            phrases = POSITION_PHRASES[o["position"]]
            template = COLOR_AT_TEMPLATES[rng.integers(len(COLOR_AT_TEMPLATES))]
            sentences.append(template.format(pos=phrases[rng.integers(len(phrases))]))
            answers.append(o["color"])
            picture.append(i)
            cells.append(o["position"])
    rows = torch.tensor(picture)
    return FusionTask(
        name="color-at",
        grid=picture_cells(images)[rows],
        words=_word_ids(sentences, SHAPES_VOCABULARY),
        labels=torch.tensor([COLOR_NAMES.index(a) for a in answers]),
        classes=COLOR_NAMES,
        vocabulary=SHAPES_VOCABULARY,
        image=np.array(picture),
        kind=cells,
        sentences=sentences,
    )


@functools.lru_cache(maxsize=2)
def cached_digits(seed: int = 0) -> Digits:
    """``make_digits(seed=seed)``, made once per process: its sounds take seconds to synthesise (Chapter 5)."""
    return make_digits(seed=seed)


def digits_hint_task(*, seed: int = 0, noise: float = 0.5) -> FusionTask:
    """scikit-learn's digits with Gaussian pixel noise ``noise``, each with its parity-and-size hint (Chapter 5).

    The picture's eight rows of eight pixels are its tokens; the hint narrows the digit to two or three.
    """
    digits = cached_digits(seed)
    images = add_noise(digits.images, noise, seed=seed + 1) if noise > 0 else digits.images
    return FusionTask(
        name="digits-hints",
        grid=torch.from_numpy(images).float() - 0.5,
        words=_word_ids(digits.hints, DIGITS_VOCABULARY),
        labels=torch.from_numpy(digits.labels),
        classes=NUMBER_WORDS,
        vocabulary=DIGITS_VOCABULARY,
        image=np.arange(digits.n),
        kind=["digit"] * digits.n,
        sentences=list(digits.hints),
    )


TASKS = {"color-at": color_at_task, "digits-hints": digits_hint_task}
"""The benchmark's task builders by name (Chapter 5)."""

CONDITIONS: tuple[str, ...] = ("both", "picture missing", "sentence missing", "noisy picture")
"""Test conditions of the benchmark: as trained, either modality removed, or the picture noisier (Chapter 5)."""


@dataclass(frozen=True)
class Run:
    """One training run of the benchmark: a method on a task, with a seed and a modality-dropout rate (Chapter 5).

    ``task`` names a builder in :data:`TASKS`, called with ``task_options`` (a tuple of pairs); the
    samples of the first ``train_images`` pictures train, the rest test. ``test_noise`` is the pixel
    noise of the "noisy picture" condition. ``hidden`` (the fusion's and head's width) and ``pool`` go to
    :class:`~mmbook.fusion_classifier.FusionClassifier`; ``present`` to :func:`~mmbook.fusion_classifier.train_fusion`.
    """

    task: str
    task_options: tuple[tuple[str, object], ...]
    train_images: int
    method: str
    seed: int = 0
    modality_dropout: float = 0.0
    steps: int = 500
    test_noise: float = 0.3
    hidden: int = 64
    pool: str = "flatten"
    present: tuple[bool, bool] = (True, True)


@dataclass
class RunResult:
    """What a :class:`Run` measured: test accuracy under each of :data:`CONDITIONS`, size and time (Chapter 5)."""

    run: Run
    accuracy: dict[str, float]
    parameters: int
    fusion_parameters: int
    seconds: float
    state: dict[str, Tensor]


_TASK_CACHE: dict[tuple, FusionTask] = {}


def _task(name: str, options: tuple[tuple[str, object], ...]) -> FusionTask:
    key = (name, options)
    if key not in _TASK_CACHE:
        _TASK_CACHE[key] = TASKS[name](**dict(options))
    return _TASK_CACHE[key]


def run_one(run: Run) -> RunResult:
    """Train and test one :class:`Run` in this process (Chapter 5)."""
    task = _task(run.task, run.task_options)
    options = dict(run.task_options)
    noisy = _task(run.task, tuple(sorted({**options, "noise": run.test_noise}.items())))
    train = np.flatnonzero(task.image < run.train_images)
    test = np.flatnonzero(task.image >= run.train_images)
    model, _, seconds = train_fusion(run.method, task, train, steps=run.steps, seed=run.seed,
                                     modality_dropout=run.modality_dropout, present=run.present,
                                     hidden=run.hidden, pool=run.pool, progress=False)
    labels = task.labels[test]
    both = torch.ones(len(test), 2, dtype=torch.bool)
    masks = {"both": both, "picture missing": both.clone(), "sentence missing": both.clone()}
    masks["picture missing"][:, 0] = False
    masks["sentence missing"][:, 1] = False
    accuracy = {c: float((predict(model, task, test, m) == labels).float().mean()) for c, m in masks.items()}
    accuracy["noisy picture"] = float((predict(model, noisy, test) == labels).float().mean())
    fusion = model.heads if model.fusion is None else model.fusion
    return RunResult(run, accuracy, sum(p.numel() for p in model.parameters()),
                     sum(p.numel() for p in fusion.parameters()), seconds, model.state_dict())


def _init_worker() -> None:
    torch.set_num_threads(1)


def benchmark(runs: Sequence[Run], *, workers: int | None = None) -> list[RunResult]:
    """Run every :class:`Run`, in ``workers`` processes (default: one per CPU core, at most 4) (Chapter 5).

    Each worker trains on one thread, so on a 2-core laptop two runs go on at once. The results come
    back in the order of ``runs``; the runs are deterministic, whatever the number of workers.
    """
    import multiprocessing as mp
    import os
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    workers = workers or min(4, os.cpu_count() or 1)
    if workers == 1:
        return [run_one(run) for run in tqdm(runs, desc="benchmark runs")]
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker) as pool:
        return list(tqdm(pool.map(run_one, runs), total=len(runs), desc="benchmark runs"))


# ----------------------------------------------------------------------------------------------------
# The demo's models: every method trained once on the colour-at task, with modality dropout

@dataclass(frozen=True)
class FusionDemoSettings:
    """How the demo's models are trained: every method on the colour-at task, with modality dropout (Chapter 5)."""

    task: str = "color-at"
    n_images: int = 3000
    seed: int = 0
    train_images: int = 2000
    steps: int = 500
    modality_dropout: float = 0.3


#: The demo models' settings; cached models saved with other settings are retrained.
FUSION_DEMO = FusionDemoSettings()


def demo_runs(settings: FusionDemoSettings = FUSION_DEMO) -> list[Run]:
    """The :class:`Run` of each method behind :func:`fusion_models` (Chapter 5)."""
    s = settings
    options = (("n_images", s.n_images), ("seed", s.seed))
    return [Run(s.task, options, s.train_images, m, seed=s.seed, modality_dropout=s.modality_dropout,
                steps=s.steps) for m in METHODS]


def _load_models(folder: Path) -> dict[str, FusionClassifier]:
    from safetensors.torch import load_file

    from mmbook.zoo import read_record

    record = read_record(folder)
    models = {}
    for method in METHODS:
        model = FusionClassifier(method, 9, 192, len(SHAPES_VOCABULARY), len(COLOR_NAMES))
        model.load_state_dict(load_file(folder / f"{method}.safetensors"))
        model.accuracy = record["accuracy"][method]
        models[method] = model.eval()
    return models


def _build_models(folder: Path, settings: FusionDemoSettings) -> dict[str, Any]:
    from safetensors.torch import save_file

    results = benchmark(demo_runs(settings))
    for result in results:
        save_file(result.state, folder / f"{result.run.method}.safetensors")
    return {"accuracy": {r.run.method: r.accuracy for r in results}}


def _check_models(models: dict[str, FusionClassifier]) -> None:
    task = color_at_task(1)
    for method, model in models.items():
        with torch.no_grad():
            logits = model(task.grid[:1], task.words[:1])
        if not torch.isfinite(logits).all():
            raise ValueError(f"the saved {method} weights give non-finite logits")


FUSION_DEMO_ENTRY = zoo.register(zoo.Entry(
    "fusion-color-at", "the colour-at fusion models", FUSION_DEMO, _build_models, _load_models, _check_models,
    code=(demo_runs, run_one, train_fusion, drop_modalities, FusionClassifier, color_at_task, picture_cells,
          Fusion, *FUSIONS.values()),
))  # fmt: skip


def fusion_models() -> dict[str, FusionClassifier]:
    """Every method of :data:`METHODS` trained on the colour-at task with modality dropout (Chapter 5).

    Trained on first use (both CPU cores, well under a minute), then loaded from the book's model cache
    (``$MMBOOK_CACHE/models/fusion-color-at``); every caller shares one copy. Each model carries its test
    ``accuracy`` under each of :data:`CONDITIONS`.
    """
    return zoo.load("fusion-color-at")


def sentence_ids(sentence: str) -> Tensor:
    """``(1, W)`` word ids of one sentence for the colour-at models (Chapter 5).

    Raises ``ValueError`` naming the first unknown word, or for a sentence without words.
    """
    unknown = [w for w in words(sentence) if w not in SHAPES_VOCABULARY]
    if unknown:
        known = len(SHAPES_VOCABULARY)
        raise ValueError(f"unknown word {unknown[0]!r}: the models know only the shapes world's {known} words")
    if not words(sentence):
        raise ValueError("the sentence has no words")
    return _word_ids([sentence], SHAPES_VOCABULARY)


@torch.no_grad()
def compare(models: dict[str, FusionClassifier], picture: np.ndarray, sentence: str, *,
            drop: str | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every model's answer probabilities for one uint8 ``(32, 32, 3)`` picture and sentence (Chapter 5).

    ``drop`` is ``None``, ``"picture"`` or ``"sentence"``: that modality is masked out for every model.
    Returns the probabilities over :data:`COLOR_NAMES` by method, and the cross-attention model's weights
    over the nine cells ``(9,)``.
    """
    if drop not in (None, "picture", "sentence"):
        raise ValueError(f"drop must be None, 'picture' or 'sentence'; got {drop!r}")
    grid, ids = picture_cells(picture[None]), sentence_ids(sentence)
    mask = torch.tensor([[drop != "picture", drop != "sentence"]])
    probabilities = {m: model(grid, ids, mask).softmax(-1)[0].numpy() for m, model in models.items()}
    weights = models["cross-attention"].fusion.weights[0].mean(0)[0].numpy()
    return probabilities, weights
