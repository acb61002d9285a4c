"""Fusion modules with one interface: M modalities' features in, one fused vector out (Chapter 5).

Every class is built as ``Cls(input_dims, output_dim, **options)`` and called as
``fusion(*features, mask=None)``: ``features[i]`` is ``(B, input_dims[i])`` (for
:class:`CrossAttentionFusion` also ``(B, L_i, input_dims[i])``, a sequence of tokens), and ``mask`` is an
optional boolean ``(B, M)`` tensor, True where modality ``i`` is present. A missing modality never reaches
the output: each method says in its docstring what it does instead. The output is ``(B, output_dim)``.

- :class:`ConcatFusion`: ``W [x_1; …; x_M] + b``.
- :class:`SumFusion`: ``Σ_i φ_i(x_i)``, plus an optional multiplicative interaction ``ψ``.
- :class:`GatedFusion`: the gated multimodal unit (GMU), generalised to M modalities; keeps its gates.
- :class:`TensorFusion`: a linear map of the outer product of the ``[x_i; 1]``.
- :class:`LowRankFusion`: the same map with its weight tensor factorised into ``rank`` modality-specific terms.
- :class:`FiLMFusion`: one modality's features scaled and shifted by the others; keeps ``γ`` and ``β``.
- :class:`CrossAttentionFusion`: one modality's tokens attend over the others'; keeps the attention weights.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmbook.attention import MultiHeadAttention
from mmbook.data import (
    COLORS,
    DIGITS_VOCABULARY,
    NUMBER_WORDS,
    POSITION_PHRASES,
    SHAPES_VOCABULARY,
    add_noise,
    make_digits,
    make_shapes,
    words,
)


def _with_ones(x: Tensor) -> Tensor:
    """``(B, d)`` → ``(B, d + 1)``: the features with a constant 1 appended."""
    return torch.cat([x, x.new_ones(x.shape[0], 1)], dim=1)


class Fusion(nn.Module):
    """Base class: stores the dimensions and checks the inputs of every fusion module (Chapter 5)."""

    token_inputs = False  # whether features may be (B, L, d) token sequences

    def __init__(self, input_dims: Sequence[int], output_dim: int) -> None:
        super().__init__()
        dims = [int(d) for d in input_dims]
        if len(dims) < 2 or min(dims) < 1 or output_dim < 1:
            raise ValueError(
                f"need at least two modalities with positive sizes and output_dim >= 1; "
                f"got input_dims={list(input_dims)}, output_dim={output_dim}"
            )
        self.input_dims, self.output_dim = tuple(dims), int(output_dim)

    @property
    def num_modalities(self) -> int:
        """M, the number of modalities this module fuses."""
        return len(self.input_dims)

    def check(self, features: Sequence[Tensor], mask: Tensor | None) -> Tensor:
        """Raise ``ValueError`` naming what was expected unless the inputs fit; return the mask, float ``(B, M)``."""
        m = self.num_modalities
        ranks = "(B, d) or (B, L, d)" if self.token_inputs else "(B, d)"
        expected = f"expected {m} feature tensors shaped {ranks} with d = {list(self.input_dims)}"
        if len(features) != m:
            raise ValueError(f"{expected}; got {len(features)} tensors")
        shapes = [tuple(x.shape) for x in features]
        allowed = (2, 3) if self.token_inputs else (2,)
        if any(x.dim() not in allowed for x in features) or [s[-1] for s in shapes] != list(self.input_dims):
            raise ValueError(f"{expected}; got shapes {shapes}")
        batch = shapes[0][0]
        if any(s[0] != batch for s in shapes):
            raise ValueError(f"every modality needs the same batch size; got shapes {shapes}")
        if mask is None:
            return features[0].new_ones(batch, m)
        if mask.dtype != torch.bool or tuple(mask.shape) != (batch, m):
            raise ValueError(
                f"mask must be a boolean tensor of shape (B, M) = ({batch}, {m}), True where a modality is "
                f"present; got dtype {mask.dtype} and shape {tuple(mask.shape)}"
            )
        return mask.to(features[0].dtype)

    def extra_repr(self) -> str:
        return f"input_dims={list(self.input_dims)}, output_dim={self.output_dim}"


class ConcatFusion(Fusion):
    """``h = W [x_1; …; x_M] + b`` (Chapter 5). A missing modality enters as zeros.

    A matrix acting on a concatenation is a sum of blocks, ``Σ_i W_i x_i + b``: concatenation followed by
    a linear layer is additive in the modalities, and interactions appear only in the layers after it.
    """

    def __init__(self, input_dims: Sequence[int], output_dim: int) -> None:
        super().__init__(input_dims, output_dim)
        self.linear = nn.Linear(sum(self.input_dims), self.output_dim)

    def forward(self, *features: Tensor, mask: Tensor | None = None) -> Tensor:
        present = self.check(features, mask)
        return self.linear(torch.cat([x * present[:, i : i + 1] for i, x in enumerate(features)], dim=1))


class SumFusion(Fusion):
    """``h = Σ_i φ_i(x_i) + ψ(x_1, …, x_M)`` with linear maps ``φ_i`` (Chapter 5).

    With ``interaction=True``, ``ψ = ⊙_i (U_i x_i + c_i)``, an elementwise product of one projection per
    modality, which a sum of per-modality terms cannot express; otherwise ``ψ = 0``. A missing modality's
    ``φ_i`` term is left out of the sum, and so is ``ψ``, which needs every modality.
    """

    def __init__(self, input_dims: Sequence[int], output_dim: int, *, interaction: bool = False) -> None:
        super().__init__(input_dims, output_dim)
        self.phi = nn.ModuleList(nn.Linear(d, self.output_dim) for d in self.input_dims)
        self.psi = nn.ModuleList(nn.Linear(d, self.output_dim) for d in self.input_dims) if interaction else None

    def forward(self, *features: Tensor, mask: Tensor | None = None) -> Tensor:
        present = self.check(features, mask)
        h = sum(phi(x) * present[:, i : i + 1] for i, (phi, x) in enumerate(zip(self.phi, features, strict=True)))
        if self.psi is not None:
            product = torch.stack([u(x) for u, x in zip(self.psi, features, strict=True)]).prod(dim=0)
            h = h + product * present.prod(dim=1, keepdim=True)
        return h


class GatedFusion(Fusion):
    """The gated multimodal unit of Arevalo et al., for M modalities (Chapter 5).

    ``h_i = tanh(W_i x_i)``; gate logits ``a = W_z [x_1; …; x_M]``, ``M − 1`` per output feature, with
    a last logit fixed at 0; ``z = softmax`` over the modalities; ``h = Σ_i z_i ⊙ h_i``. For M = 2 this is
    exactly the GMU, ``z = σ(a)`` and ``h = z ⊙ h_1 + (1 − z) ⊙ h_2``. A missing modality's gate is forced
    to 0 (its logit to −∞) and its input to the gate network is zeroed, so the present modalities share the
    weight. After each call, ``gates`` holds ``z`` as ``(B, M, output_dim)``.
    """

    def __init__(self, input_dims: Sequence[int], output_dim: int) -> None:
        super().__init__(input_dims, output_dim)
        self.hidden = nn.ModuleList(nn.Linear(d, self.output_dim, bias=False) for d in self.input_dims)
        self.gate = nn.Linear(sum(self.input_dims), (self.num_modalities - 1) * self.output_dim, bias=False)
        self.gates: Tensor | None = None

    def forward(self, *features: Tensor, mask: Tensor | None = None) -> Tensor:
        present = self.check(features, mask)
        x = torch.cat([x * present[:, i : i + 1] for i, x in enumerate(features)], dim=1)
        logits = self.gate(x).unflatten(1, (self.num_modalities - 1, self.output_dim))
        logits = torch.cat([logits, logits.new_zeros(len(x), 1, self.output_dim)], dim=1)
        logits = logits.masked_fill(present[:, :, None] == 0, float("-inf"))
        z = torch.softmax(logits, dim=1).nan_to_num(0.0)  # every modality missing: all gates 0, h = 0
        h = torch.stack([torch.tanh(w(x)) for w, x in zip(self.hidden, features, strict=True)], dim=1)
        self.gates = z.detach()
        return (z * h).sum(dim=1)


class TensorFusion(Fusion):
    """Tensor fusion (Zadeh et al.): ``h = W · vec([x_1; 1] ⊗ … ⊗ [x_M; 1]) + b`` (Chapter 5).

    The appended ones keep every lower-order term: the outer product holds each modality alone, every
    pair's products, and so on up to the M-way products. ``W`` has ``output_dim · Π_i (d_i + 1)`` entries.
    A missing modality enters as zeros, which leaves exactly the terms of the modalities present.
    """

    def __init__(self, input_dims: Sequence[int], output_dim: int) -> None:
        super().__init__(input_dims, output_dim)
        self.linear = nn.Linear(math.prod(d + 1 for d in self.input_dims), self.output_dim)

    @staticmethod
    def outer(*features: Tensor) -> Tensor:
        """``(B, Π_i (d_i + 1))``: the flattened outer product of the features with ones appended."""
        z = _with_ones(features[0])
        for x in features[1:]:
            z = (z[:, :, None] * _with_ones(x)[:, None, :]).flatten(1)
        return z

    @property
    def weight_tensor(self) -> Tensor:
        """``W`` as ``(output_dim, d_1 + 1, …, d_M + 1)``."""
        return self.linear.weight.reshape(self.output_dim, *(d + 1 for d in self.input_dims))

    def forward(self, *features: Tensor, mask: Tensor | None = None) -> Tensor:
        present = self.check(features, mask)
        return self.linear(self.outer(*(x * present[:, i : i + 1] for i, x in enumerate(features))))


class LowRankFusion(Fusion):
    """Low-rank multimodal fusion (Liu et al.): ``h = Σ_r λ_r ⊙_i (W_i^(r) [x_i; 1]) + b`` (Chapter 5).

    Each modality has ``rank`` factors ``W_i^(r)`` of shape ``(output_dim, d_i + 1)``; ``λ`` weighs the
    ranks. It equals :class:`TensorFusion` whose weight tensor is, for every output feature k,
    ``W_k = Σ_r λ_r w_1^(r)[k] ⊗ … ⊗ w_M^(r)[k]``, at a cost of ``rank · output_dim · Σ_i (d_i + 1)``
    parameters instead of ``output_dim · Π_i (d_i + 1)``. A missing modality enters as zeros.
    """

    def __init__(self, input_dims: Sequence[int], output_dim: int, *, rank: int = 4) -> None:
        super().__init__(input_dims, output_dim)
        if rank < 1:
            raise ValueError(f"rank must be a positive integer, got {rank}")
        self.rank = int(rank)
        self.factors = nn.ParameterList(
            nn.Parameter(torch.randn(self.rank, d + 1, self.output_dim) / math.sqrt(d + 1)) for d in self.input_dims
        )
        self.rank_weights = nn.Parameter(torch.full((self.rank,), 1.0 / self.rank))
        self.bias = nn.Parameter(torch.zeros(self.output_dim))

    def forward(self, *features: Tensor, mask: Tensor | None = None) -> Tensor:
        present = self.check(features, mask)
        product = None  # (B, rank, output_dim): the elementwise product over modalities, rank by rank
        for i, (factor, x) in enumerate(zip(self.factors, features, strict=True)):
            projected = torch.einsum("bd,rdo->bro", _with_ones(x * present[:, i : i + 1]), factor)
            product = projected if product is None else product * projected
        return torch.einsum("r,bro->bo", self.rank_weights, product) + self.bias

    def weight_tensor(self) -> Tensor:
        """The tensor-fusion weight this module computes, ``(output_dim, d_1 + 1, …, d_M + 1)``."""
        letters = "abcdefghijklmnpqstuvwxyz"[: self.num_modalities]
        spec = ",".join(f"r{c}o" for c in letters) + ",r->o" + letters
        return torch.einsum(spec, *self.factors, self.rank_weights)

    @classmethod
    def from_tensor_fusion(cls, tensor_fusion: TensorFusion) -> LowRankFusion:
        """A low-rank fusion that computes exactly what ``tensor_fusion`` computes (Chapter 5).

        Rank ``R = Π_{i<M} (d_i + 1)`` always suffices: rank term r = (j_1, …, j_{M−1}) uses the unit
        vectors ``e_{j_1}, …, e_{j_{M−1}}`` as the first M − 1 factors and the fibre ``W[k, j_1, …, j_{M−1}, :]``
        as the last, for every output k. (For M = 2 an SVD of each slice needs only ``min(d_1, d_2) + 1``.)
        """
        dims = tensor_fusion.input_dims
        sizes = [d + 1 for d in dims]
        rank = math.prod(sizes[:-1])
        low = cls(dims, tensor_fusion.output_dim, rank=rank).to(tensor_fusion.linear.weight.dtype)
        weight = tensor_fusion.weight_tensor.detach()  # (out, n_1, ..., n_M)
        with torch.no_grad():
            low.rank_weights.fill_(1.0)
            low.bias.copy_(tensor_fusion.linear.bias)
            for r, index in enumerate(torch.cartesian_prod(*(torch.arange(n) for n in sizes[:-1])).reshape(rank, -1)):
                for i, j in enumerate(index.tolist()):
                    low.factors[i][r].zero_()
                    low.factors[i][r][j] = 1.0
                low.factors[-1][r] = weight[(slice(None), *index.tolist())].T  # (n_M, out)
        return low


class FiLMFusion(Fusion):
    """Feature-wise linear modulation (Perez et al.): ``h = γ ⊙ (W x_t + b) + β`` (Chapter 5).

    ``x_t`` is modality ``target`` (default 0), the one being modulated; ``γ = 1 + Δγ`` and ``β`` are
    computed by one linear layer from the other modalities, concatenated. Missing conditioning modalities
    enter as zeros, and when none is present ``γ = 1`` and ``β = 0``: the target passes unmodulated. A
    missing target leaves ``h = β``. After each call, ``gamma`` and ``beta`` hold ``(B, output_dim)``.
    """

    def __init__(self, input_dims: Sequence[int], output_dim: int, *, target: int = 0) -> None:
        super().__init__(input_dims, output_dim)
        if not 0 <= target < self.num_modalities:
            raise ValueError(f"target must index a modality, 0 to {self.num_modalities - 1}; got {target}")
        self.target = int(target)
        self.features = nn.Linear(self.input_dims[self.target], self.output_dim)
        conditioning = sum(d for i, d in enumerate(self.input_dims) if i != self.target)
        self.film = nn.Linear(conditioning, 2 * self.output_dim)
        self.gamma: Tensor | None = None
        self.beta: Tensor | None = None

    def forward(self, *features: Tensor, mask: Tensor | None = None) -> Tensor:
        present = self.check(features, mask)
        others = [i for i in range(self.num_modalities) if i != self.target]
        condition = torch.cat([features[i] * present[:, i : i + 1] for i in others], dim=1)
        any_condition = present[:, others].amax(dim=1, keepdim=True)
        delta_gamma, beta = (self.film(condition) * any_condition).chunk(2, dim=1)
        gamma = 1 + delta_gamma
        self.gamma, self.beta = gamma.detach(), beta.detach()
        target = self.features(features[self.target]) * present[:, self.target : self.target + 1]
        return gamma * target + beta


class CrossAttentionFusion(Fusion):
    """The tokens of one modality attend over the tokens of the others (Chapter 5, built on Chapter 4).

    Each modality's features (``(B, d_i)``, one token, or ``(B, L_i, d_i)``) are projected to
    ``output_dim`` and tagged with a learned modality embedding. The tokens of modality ``query`` (default
    0) are the queries; the other modalities' tokens, concatenated, are the keys and values of a
    :class:`~mmbook.attention.MultiHeadAttention`. The output is the mean over query tokens of
    ``LayerNorm(q + attention(q, context))``. Missing modalities' tokens are masked out of the keys; a
    missing query modality leaves only the learned modality embedding as its query. After each call,
    ``weights`` holds the attention ``(B, heads, L_query, L_context)`` and ``spans`` the context slice of
    each modality.
    """

    token_inputs = True

    def __init__(self, input_dims: Sequence[int], output_dim: int, *, num_heads: int = 1, query: int = 0) -> None:
        super().__init__(input_dims, output_dim)
        if not 0 <= query < self.num_modalities:
            raise ValueError(f"query must index a modality, 0 to {self.num_modalities - 1}; got {query}")
        self.query = int(query)
        self.project = nn.ModuleList(nn.Linear(d, self.output_dim) for d in self.input_dims)
        self.modality = nn.Parameter(torch.randn(self.num_modalities, self.output_dim) * 0.02)
        self.attend = MultiHeadAttention(self.output_dim, num_heads)
        self.norm = nn.LayerNorm(self.output_dim)
        self.weights: Tensor | None = None
        self.spans: dict[int, slice] = {}

    def forward(self, *features: Tensor, mask: Tensor | None = None) -> Tensor:
        present = self.check(features, mask)
        tokens = [x if x.dim() == 3 else x[:, None, :] for x in features]
        embedded = [
            (p(x) + self.modality[i]) * present[:, i, None, None] if i != self.query else
            p(x) * present[:, i, None, None] + self.modality[i]
            for i, (p, x) in enumerate(zip(self.project, tokens, strict=True))
        ]
        others = [i for i in range(self.num_modalities) if i != self.query]
        keep, start = [], 0
        for i in others:
            length = tokens[i].shape[1]
            self.spans[i] = slice(start, start + length)
            keep.append(present[:, i : i + 1].bool().expand(-1, length))
            start += length
        q = embedded[self.query]
        context = torch.cat([embedded[i] for i in others], dim=1)
        allowed = torch.cat(keep, dim=1)[:, None, :].expand(-1, q.shape[1], -1)  # (B, Lq, Lk)
        out, weights = self.attend(q, context, context, mask=allowed)
        self.weights = weights.detach()
        return self.norm(q + out).mean(dim=1)


FUSIONS: dict[str, type[Fusion]] = {
    "concat": ConcatFusion,
    "sum": SumFusion,
    "gated": GatedFusion,
    "tensor": TensorFusion,
    "low-rank": LowRankFusion,
    "film": FiLMFusion,
    "cross-attention": CrossAttentionFusion,
}
"""The fusion classes by the names the chapter and its demo use (Chapter 5)."""


# ----------------------------------------------------------------------------------------------------
# The chapter's benchmark: a picture and a sentence, fused by any of the methods above


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


def digits_hint_task(*, seed: int = 0, noise: float = 0.5) -> FusionTask:
    """scikit-learn's digits with Gaussian pixel noise ``noise``, each with its parity-and-size hint (Chapter 5).

    The picture's eight rows of eight pixels are its tokens; the hint narrows the digit to two or three.
    """
    digits = make_digits(seed=seed)
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


METHODS: tuple[str, ...] = ("late", *FUSIONS)
"""The methods of the chapter's benchmark: late fusion, then every class of :data:`FUSIONS` (Chapter 5)."""


class FusionClassifier(nn.Module):
    """Picture encoder + sentence encoder + one fusion method + classifier head (Chapter 5).

    The picture's ``L`` regions are embedded to ``dim`` with a position each (its tokens) and flattened
    through a linear layer (its pooled vector); the sentence is a bag of learned word vectors (its pooled
    vector). ``method`` names one of :data:`FUSIONS`, which fuses the two pooled vectors into ``hidden``
    numbers (``"cross-attention"``: the sentence queries the picture's tokens), followed by a two-layer
    head; ``"late"`` gives each modality its own head and adds their logits. Only the fusion differs
    between methods. ``forward(grid, words, mask)`` returns logits; ``mask`` is ``(B, 2)``, True where
    the picture (column 0) and the sentence (column 1) are present.
    """

    def __init__(self, method: str, regions: int, region_dim: int, vocab_size: int, n_classes: int,
                 *, dim: int = 32, hidden: int = 64, **options: object) -> None:
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
        self.method = method
        self.region = nn.Sequential(nn.Linear(region_dim, dim), nn.GELU())
        self.position = nn.Parameter(torch.randn(regions, dim) * 0.1)
        self.picture = nn.Sequential(nn.Flatten(), nn.Linear(regions * dim, dim), nn.GELU())
        self.embed = nn.Embedding(vocab_size + 1, dim, padding_idx=0)
        self.sentence = nn.Sequential(nn.Linear(dim, dim), nn.GELU())

        def head(width: int) -> nn.Module:
            return nn.Sequential(nn.LayerNorm(width), nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, n_classes))

        if method == "late":
            self.fusion = None
            self.heads = nn.ModuleList([head(dim), head(dim)])
        else:
            if method == "cross-attention":
                options = {"query": 1, **options}
            self.fusion = FUSIONS[method]([dim, dim], hidden, **options)
            self.head = head(hidden)

    def encode(self, grid: Tensor, words: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The picture's tokens ``(B, L, dim)`` and pooled vector ``(B, dim)``, and the sentence's ``(B, dim)``."""
        tokens = self.region(grid) + self.position
        present = (words > 0).float()
        bag = (self.embed(words) * present[..., None]).sum(1) / present.sum(1, keepdim=True).clamp(min=1)
        return tokens, self.picture(tokens), self.sentence(bag)

    def forward(self, grid: Tensor, words: Tensor, mask: Tensor | None = None) -> Tensor:
        tokens, picture, sentence = self.encode(grid, words)
        if self.fusion is None:
            keep = torch.ones(len(grid), 2) if mask is None else mask.float()
            pooled = (picture, sentence)
            return sum(h(x) * keep[:, i : i + 1] for i, (h, x) in enumerate(zip(self.heads, pooled, strict=True)))
        first = tokens if self.method == "cross-attention" else picture
        return self.head(self.fusion(first, sentence, mask=mask))


def drop_modalities(batch: int, rate: float, generator: torch.Generator) -> Tensor:
    """``(batch, 2)`` presence mask for modality dropout (Chapter 5).

    Each row loses one of its two modalities, chosen at random, with probability ``rate``; never both.
    """
    mask = torch.ones(batch, 2, dtype=torch.bool)
    drop = torch.rand(batch, generator=generator) < rate
    which = torch.randint(0, 2, (batch,), generator=generator)
    mask[drop, which[drop]] = False
    return mask


def train_fusion(method: str, task: FusionTask, train: np.ndarray, *, steps: int = 600, batch_size: int = 128,
                 lr: float = 3e-3, seed: int = 0, modality_dropout: float = 0.0, progress: bool = True,
                 **options: object) -> tuple[FusionClassifier, list[float], float]:
    """Train a :class:`FusionClassifier` on the samples ``train`` of ``task`` (Chapter 5).

    Returns the model, its training losses and the training time in seconds. AdamW (PyTorch's fused
    implementation) at learning rate ``lr`` with a cosine decay, ``steps`` minibatches of ``batch_size``,
    drawn with ``seed``. ``modality_dropout`` is the probability that a training example loses one of its
    modalities. Runs on one CPU thread (the models are tiny).
    """
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    model = FusionClassifier(method, task.grid.shape[1], task.grid.shape[2], len(task.vocabulary),
                             len(task.classes), **options)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4, fused=True)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    generator = torch.Generator().manual_seed(seed)
    rows_all = torch.as_tensor(np.asarray(train))
    losses: list[float] = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    start = time.perf_counter()
    try:
        model.train()
        for _ in tqdm(range(steps), desc=f"training {method}", leave=False, disable=not progress):
            rows = rows_all[torch.randint(0, len(rows_all), (batch_size,), generator=generator)]
            mask = drop_modalities(batch_size, modality_dropout, generator) if modality_dropout > 0 else None
            loss = F.cross_entropy(model(task.grid[rows], task.words[rows], mask), task.labels[rows])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(loss.item())
    finally:
        torch.set_num_threads(threads)
    return model.eval(), losses, time.perf_counter() - start


@torch.no_grad()
def predict(model: FusionClassifier, task: FusionTask, rows: np.ndarray, mask: Tensor | None = None) -> Tensor:
    """Predicted class indices for the samples ``rows`` of ``task``; ``mask`` ``(len(rows), 2)`` (Chapter 5)."""
    model.eval()
    rows = torch.as_tensor(np.asarray(rows))
    return model(task.grid[rows], task.words[rows], mask).argmax(1)


TASKS = {"color-at": color_at_task, "digits-hints": digits_hint_task}
"""The benchmark's task builders by name (Chapter 5)."""

CONDITIONS: tuple[str, ...] = ("both", "picture missing", "sentence missing", "noisy picture")
"""Test conditions of the benchmark: as trained, either modality removed, or the picture noisier (Chapter 5)."""


@dataclass(frozen=True)
class Run:
    """One training run of the benchmark: a method on a task, with a seed and a modality-dropout rate (Chapter 5).

    ``task`` names a builder in :data:`TASKS`, called with ``task_options`` (a tuple of pairs); the
    samples of the first ``train_images`` pictures train, the rest test. ``test_noise`` is the pixel
    noise of the "noisy picture" condition.
    """

    task: str
    task_options: tuple[tuple[str, object], ...]
    train_images: int
    method: str
    seed: int = 0
    modality_dropout: float = 0.0
    steps: int = 500
    test_noise: float = 0.3


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
                                     modality_dropout=run.modality_dropout, progress=False)
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

DEMO_CONFIG = {
    "version": 2, "task": "color-at", "n_images": 3000, "seed": 0, "train_images": 2000, "steps": 500,
    "modality_dropout": 0.3,
}


def demo_runs() -> list[Run]:
    """The :class:`Run` of each method behind :func:`fusion_models` (Chapter 5)."""
    c = DEMO_CONFIG
    options = (("n_images", c["n_images"]), ("seed", c["seed"]))
    return [Run(c["task"], options, c["train_images"], m, seed=c["seed"], modality_dropout=c["modality_dropout"],
                steps=c["steps"]) for m in METHODS]


def _load_models(folder: Path) -> dict[str, FusionClassifier]:
    from safetensors.torch import load_file

    record = json.loads((folder / "config.json").read_text())
    if {k: record.get(k) for k in DEMO_CONFIG} != DEMO_CONFIG:
        raise ValueError("saved with other settings")
    models = {}
    for method in METHODS:
        model = FusionClassifier(method, 9, 192, len(SHAPES_VOCABULARY), len(COLOR_NAMES))
        model.load_state_dict(load_file(folder / f"{method}.safetensors"))
        model.accuracy = record["accuracy"][method]
        models[method] = model.eval()
    return models


def _build_models(folder: Path) -> None:
    from safetensors.torch import save_file

    results = benchmark(demo_runs())
    for result in results:
        save_file(result.state, folder / f"{result.run.method}.safetensors")
    accuracy = {r.run.method: r.accuracy for r in results}
    (folder / "config.json").write_text(json.dumps({**DEMO_CONFIG, "accuracy": accuracy}))


@lru_cache(maxsize=1)
def fusion_models() -> dict[str, FusionClassifier]:
    """Every method of :data:`METHODS` trained on the colour-at task with modality dropout (Chapter 5).

    Trained on first use (both CPU cores, well under a minute), then loaded from the book's model cache
    (``$MMBOOK_CACHE/models/fusion-color-at``). Each model carries its test ``accuracy`` under each of
    :data:`CONDITIONS`.
    """
    from mmbook.zoo import cached_or_built

    folder, trained = cached_or_built("fusion-color-at", _build_models, _load_models)
    models = _load_models(folder)
    verb = "trained and saved" if trained else "loaded"
    print(f"[mmbook.fusion] {verb} the {len(models)} colour-at models (model cache: fusion-color-at)")
    return models


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
