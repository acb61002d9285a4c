"""Fusion modules with one interface: M modalities' features in, one fused vector out (Chapter 5).

Every class is built as ``Cls(input_dims, output_dim, **options)`` and called as
``fusion(*features, mask=None)``: ``features[i]`` is ``(B, input_dims[i])`` (for
:class:`CrossAttentionFusion` also ``(B, L_i, input_dims[i])``, a sequence of tokens), and ``mask`` is an
optional boolean ``(B, M)`` tensor, True where modality ``i`` is present. A missing modality never reaches
the output: each method says in its docstring what it does instead. The output is ``(B, output_dim)``.
The classes are in :data:`FUSIONS`. :mod:`mmbook.fusion_classifier` puts one between a picture encoder,
a sentence encoder and a head and trains it; the chapter's tasks, benchmark runner and demo models live in
:mod:`mmbook.experiments.fusion_bench`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mmbook.attention import MultiHeadAttention


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

    With ``interaction=True`` (the default, the chapter's form), ``ψ = ⊙_i (U_i x_i + c_i)``, an elementwise
    product of one projection per modality, which a sum of per-modality terms cannot express; with
    ``interaction=False``, ``ψ = 0`` and the module is concatenation's function class. A missing modality's
    ``φ_i`` term is left out of the sum, and so is ``ψ``, which needs every modality.
    """

    def __init__(self, input_dims: Sequence[int], output_dim: int, *, interaction: bool = True) -> None:
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


METHODS: tuple[str, ...] = ("late", *FUSIONS)
"""The methods of the chapter's benchmark: late fusion, then every class of :data:`FUSIONS` (Chapter 5)."""
