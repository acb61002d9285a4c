"""Chapter 4's tiny multimodal model: a word finds its shape in a picture with one attention layer.

:class:`ShapeFinder`: a word (a colour or a shape kind, :data:`FINDER_WORDS`) attends over the patches of a
shapes-world picture, and a small head names the grid cell of the shape the word describes. Its data
(:func:`finder_examples`), its training (:func:`train_shape_finder`) and the book's trained copy
(:func:`shape_finder`, the zoo entry ``shape-finder``) are here; the attention it is built from is in
:mod:`mmbook.attention`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmbook import zoo
from mmbook.attention import AdditiveAttention, LearnedPositionalEncoding, MultiHeadAttention
from mmbook.data import COLORS, POSITIONS, SHAPE_KINDS, Shapes, make_shapes
from mmbook.env import training_state

#: The words a :class:`ShapeFinder` understands: the six colours, then the five shape kinds.
FINDER_WORDS: tuple[str, ...] = (*COLORS, *SHAPE_KINDS)
PATCH, STRIDE = 8, 4  # overlapping 8x8-pixel patches every 4 pixels: a 7x7 grid on a 32x32 picture
FINDER_MAX_SHAPES = 4
Score = Literal["dot", "additive"]


def _patchify(images: Tensor) -> Tensor:
    """``(B, C, H, W)`` → ``(B, N, C·PATCH·PATCH)``, the patches in reading order."""
    patches = images.unfold(2, PATCH, STRIDE).unfold(3, PATCH, STRIDE)  # B, C, rows, cols, PATCH, PATCH
    return patches.permute(0, 2, 3, 1, 4, 5).flatten(3).flatten(1, 2)


def _to_tensor(images: np.ndarray) -> Tensor:
    """uint8 ``(B, H, W, 3)`` pictures → float ``(B, 3, H, W)`` in [0, 1]."""
    return torch.tensor(images).permute(0, 3, 1, 2).float() / 255.0


def word_ids(words: list[str]) -> Tensor:
    """Indices of ``words`` in :data:`FINDER_WORDS`; ``ValueError`` naming the allowed words (Chapter 4)."""
    unknown = [w for w in words if w not in FINDER_WORDS]
    if unknown:
        raise ValueError(f"unknown word {unknown[0]!r}; use one of: {', '.join(FINDER_WORDS)}")
    return torch.tensor([FINDER_WORDS.index(w) for w in words])


def finder_examples(shapes: Shapes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (picture, word, cell) where the word names exactly one shape of the picture (Chapter 4).

    Returns three integer arrays: the picture's index, the word's index in :data:`FINDER_WORDS` and the
    grid cell (0–8, reading order) of the shape it names.
    """
    rows = []
    for i, objects in enumerate(shapes.attributes):
        for attribute in ("color", "shape"):
            values = [o[attribute] for o in objects]
            rows += [(i, FINDER_WORDS.index(o[attribute]), 3 * o["row"] + o["col"])
                     for o in objects if values.count(o[attribute]) == 1]
    return tuple(np.array(column) for column in zip(*rows, strict=True))  # type: ignore[return-value]


class ShapeFinder(nn.Module):
    """A word finds the shape it names among a picture's patches, with one attention layer (Chapter 4).

    The patches (8x8 pixels every 4 pixels, embedded by a small MLP) are the keys: what each patch
    shows. The same embeddings plus a learned position are the values: what it shows and where. The
    word is the only query. ``score="dot"`` scores with a one-head :class:`MultiHeadAttention`,
    ``score="additive"`` with :class:`AdditiveAttention`. ``forward`` returns the logits over the nine
    grid cells ``(B, 9)`` and the word's attention weights over the patches ``(B, N)``.
    """

    def __init__(self, dim: int = 64, score: Score = "dot", image_size: int = 32) -> None:
        super().__init__()
        if score not in ("dot", "additive"):
            raise ValueError(f"score must be 'dot' or 'additive', got {score!r}")
        side = (image_size - PATCH) // STRIDE + 1
        self.patch_embed = nn.Sequential(nn.Linear(3 * PATCH * PATCH, dim), nn.GELU(), nn.Linear(dim, dim))
        self.norm = nn.LayerNorm(dim)
        self.positions = LearnedPositionalEncoding(side * side, dim)
        self.word_embed = nn.Embedding(len(FINDER_WORDS), dim)
        self.attend = MultiHeadAttention(dim, 1) if score == "dot" else AdditiveAttention(dim, dim, dim)
        self.head = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, len(POSITIONS)))

    def embed_patches(self, images: Tensor) -> Tensor:
        """``(B, 3, H, W)`` pictures in [0, 1] → ``(B, N, dim)`` normalised patch embeddings, no positions."""
        return self.norm(self.patch_embed(_patchify(images)))

    def forward(self, images: Tensor, words: Tensor) -> tuple[Tensor, Tensor]:
        content = self.embed_patches(images)  # keys: what each patch shows
        placed = self.positions(content)  # values: what and where
        out, weights = self.attend(self.word_embed(words)[:, None, :], content, placed)
        return self.head(out[:, 0]), weights.reshape(len(words), -1)

    @torch.no_grad()
    def locate(self, images: np.ndarray, words: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Cell probabilities ``(B, 9)`` and the attention as a per-pixel heat map ``(B, H, W)`` (Chapter 4).

        ``images`` are uint8 ``(B, H, W, 3)`` pictures the model was built for; a pixel's heat is the mean
        weight of the patches that cover it.
        """
        self.eval()
        pictures = _to_tensor(images)
        logits, weights = self(pictures, word_ids(words))
        size = pictures.shape[-2:]
        spread = weights[:, None, :].expand(-1, PATCH * PATCH, -1)
        heat = F.fold(spread, size, PATCH, stride=STRIDE)
        cover = F.fold(torch.ones_like(spread[:1]), size, PATCH, stride=STRIDE)
        return logits.softmax(-1).numpy(), (heat / cover)[:, 0].numpy()


def train_shape_finder(
    model: ShapeFinder | None = None,
    *,
    score: Score = "dot",
    n_images: int = 3000,
    steps: int = 600,
    batch_size: int = 128,
    lr: float = 5e-3,
    seed: int = 0,
) -> tuple[ShapeFinder, list[float]]:
    """Train ``model`` (by default a new ``ShapeFinder(score=score)``) to name the cell of the shape a word
    picks out in ``make_shapes(n_images, seed=seed)``; return it and its losses (Chapter 4).

    AdamW with a one-cycle learning rate peaking at ``lr``. Training runs on one CPU thread inside
    :func:`mmbook.env.training_state`, which leaves the caller's random state and thread count as they were.
    """
    from tqdm.auto import tqdm

    shapes = make_shapes(n_images, seed=seed, max_shapes=FINDER_MAX_SHAPES)
    picture, word, cell = (torch.from_numpy(a) for a in finder_examples(shapes))
    images = _to_tensor(shapes.images)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    with training_state(threads=1):
        torch.manual_seed(seed)
        model = ShapeFinder(score=score) if model is None else model
        optimiser = torch.optim.AdamW(model.parameters(), lr=lr)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps)
        model.train()
        for _ in tqdm(range(steps), desc="training ShapeFinder", leave=False):
            rows = torch.randint(0, len(word), (batch_size,), generator=generator)
            logits, _ = model(images[picture[rows]], word[rows])
            loss = F.cross_entropy(logits, cell[rows])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(loss.item())
    return model.eval(), losses


@dataclass(frozen=True)
class FinderSettings:
    """How the book's :class:`ShapeFinder` is trained: the arguments of :func:`train_shape_finder` (Chapter 4)."""

    score: Score = "dot"
    n_images: int = 3000
    steps: int = 600
    batch_size: int = 128
    lr: float = 5e-3
    seed: int = 0


#: The book's shape finder settings; a cached model saved with other settings is retrained.
SHAPE_FINDER = FinderSettings()


def _train_finder(folder: Path, settings: FinderSettings) -> dict[str, Any]:
    from safetensors.torch import save_file

    model, losses = train_shape_finder(**asdict(settings))
    save_file(model.state_dict(), folder / "model.safetensors")
    return {"losses": losses}


def _load_finder(folder: Path) -> ShapeFinder:
    from safetensors.torch import load_file

    from mmbook.zoo import read_record

    record = read_record(folder)
    model = ShapeFinder(score=record["settings"]["score"])
    model.load_state_dict(load_file(folder / "model.safetensors"))
    model.losses, model.train_seconds = record["losses"], record["train_seconds"]
    return model.eval()


def _check_finder(model: ShapeFinder) -> None:
    probabilities, _ = model.locate(np.zeros((1, 32, 32, 3), np.uint8), ["red"])
    if not np.isfinite(probabilities).all():
        raise ValueError("the saved weights give non-finite probabilities")


SHAPE_FINDER_ENTRY = zoo.register(zoo.Entry(
    "shape-finder", "the shape finder", SHAPE_FINDER, _train_finder, _load_finder, _check_finder,
    code=(train_shape_finder, ShapeFinder, finder_examples),
))  # fmt: skip


def shape_finder() -> ShapeFinder:
    """The book's trained :class:`ShapeFinder`: trained on first use (seconds), then loaded (Chapter 4).

    Saved in the book's model cache (``$MMBOOK_CACHE/models/shape-finder``); the loaded model carries
    its training ``losses`` and ``train_seconds``.
    """
    return zoo.load("shape-finder")


def scene(seed: int) -> dict[str, Any]:
    """One shapes-world sample, ``make_shapes(1, seed=seed)`` with up to four shapes (Chapter 4)."""
    return make_shapes(1, seed=seed, max_shapes=FINDER_MAX_SHAPES)[0]
