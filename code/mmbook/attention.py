"""Attention from scratch: scaled dot-product, multi-head, cross-attention, positions, additive, the
Transformer block built from them (LayerNorm, position-wise MLP, pre- and post-norm) and a small
decoder-only language model trained by next-token prediction (Chapter 4).

Tensors are batch-first, ``(..., L, d)``. A boolean ``mask`` is True where attention is *allowed*, as in
:func:`torch.nn.functional.scaled_dot_product_attention` (the boolean masks of
:class:`torch.nn.MultiheadAttention` mean the opposite). A query whose mask allows no key at all gets zero
weights and a zero output, which is what :func:`torch.nn.functional.scaled_dot_product_attention`
returns on CPU from PyTorch 2.5 on (pytorch/pytorch#133882); up to 2.4 it returned NaN there, and
:class:`torch.nn.MultiheadAttention` still does in 2.13.

The chapter's tiny multimodal model built from these pieces, :class:`~mmbook.shape_finder.ShapeFinder`,
is in :mod:`mmbook.shape_finder`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# ----------------------------------------------------------------------------------------------------
# Scaled dot-product attention


def _shape(x: Tensor) -> tuple[int, ...]:
    return tuple(x.shape)


def _check_mask(mask: Tensor, scores_shape: torch.Size) -> None:
    """Raise ``ValueError`` unless ``mask`` is boolean and broadcasts to ``scores_shape``."""
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be boolean (True = may attend), got dtype {mask.dtype}")
    try:
        broadcast = torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        broadcast = None
    if broadcast != scores_shape:
        raise ValueError(
            f"mask of shape {_shape(mask)} does not broadcast to the attention scores' shape {tuple(scores_shape)}"
        )


def masked_softmax(scores: Tensor, mask: Tensor | None = None) -> Tensor:
    """Softmax over the last axis, restricted to where ``mask`` is True; empty rows give zeros (Chapter 4)."""
    if mask is None:
        return torch.softmax(scores, dim=-1)
    _check_mask(mask, scores.shape)
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return weights.masked_fill(~mask, 0.0)  # a row with no allowed key is all NaN before this line


def _check_qkv(query: Tensor, key: Tensor, value: Tensor, *, same_width: bool) -> None:
    """Raise ``ValueError`` naming the shapes unless query, key and value fit together."""
    shapes = f"query {_shape(query)}, key {_shape(key)}, value {_shape(value)}"
    if min(query.dim(), key.dim(), value.dim()) < 2:
        raise ValueError(f"query, key and value need at least 2 dimensions (..., L, d); got {shapes}")
    if same_width and query.shape[-1] != key.shape[-1]:
        raise ValueError(f"query and key must have the same last dimension; got {shapes}")
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(f"key and value must have the same length (dimension -2); got {shapes}")
    try:
        torch.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    except RuntimeError:
        raise ValueError(f"the batch dimensions of query, key and value do not broadcast; got {shapes}") from None


def scaled_dot_product_attention(
    query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """``softmax(Q Kᵀ / √d) V`` and the weights, for ``(..., Lq, d)``, ``(..., Lk, d)``, ``(..., Lk, dv)`` (Chapter 4).

    ``mask`` is boolean, True where query i may attend to key j, and broadcasts to ``(..., Lq, Lk)``.
    Returns ``(output, weights)`` of shapes ``(..., Lq, dv)`` and ``(..., Lq, Lk)``.
    """
    _check_qkv(query, key, value, same_width=True)
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])
    weights = masked_softmax(scores, mask)
    return weights @ value, weights


def causal_mask(length: int) -> Tensor:
    """``(length, length)`` boolean mask, True on and below the diagonal: no peeking ahead (Chapter 4)."""
    return torch.ones(length, length, dtype=torch.bool).tril()


def padding_mask(lengths: Tensor, max_len: int) -> Tensor:
    """``(B, 1, max_len)`` boolean mask, True for the first ``lengths[b]`` keys of sequence ``b`` (Chapter 4)."""
    return (torch.arange(max_len) < lengths[:, None])[:, None, :]


# ----------------------------------------------------------------------------------------------------
# Multi-head attention and cross-attention


class MultiHeadAttention(nn.Module):
    """Multi-head attention with separate query, key, value and output projections, batch-first (Chapter 4).

    ``query`` is ``(B, Lq, embed_dim)``, ``key`` ``(B, Lk, kdim)`` and ``value`` ``(B, Lk, vdim)``; ``kdim``
    and ``vdim`` default to ``embed_dim`` and differ when keys and values come from another modality.
    ``mask`` (True = may attend) is ``(Lq, Lk)``, ``(B, Lq, Lk)`` (one mask per batch element, shared by
    the heads) or anything that broadcasts to ``(B, H, Lq, Lk)``. ``forward`` returns the output
    ``(B, Lq, embed_dim)`` and the weights ``(B, H, Lq, Lk)``, or their mean over the heads
    ``(B, Lq, Lk)`` with ``average_heads=True``, or ``None`` with ``need_weights=False``.
    """

    def __init__(
        self, embed_dim: int, num_heads: int, *, kdim: int | None = None, vdim: int | None = None, bias: bool = True
    ) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim={embed_dim} is not divisible by num_heads={num_heads}")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.kdim, self.vdim = kdim or embed_dim, vdim or embed_dim
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(self.kdim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(self.vdim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)

    def _heads(self, x: Tensor) -> Tensor:
        """``(B, L, embed_dim)`` → ``(B, H, L, head_dim)``: head h gets features h·head_dim … (h+1)·head_dim."""
        return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        mask: Tensor | None = None,
        need_weights: bool = True,
        average_heads: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        expected = f"expected (B, Lq, {self.embed_dim}), (B, Lk, {self.kdim}), (B, Lk, {self.vdim})"
        shapes = f"got query {_shape(query)}, key {_shape(key)}, value {_shape(value)}"
        if not (query.dim() == key.dim() == value.dim() == 3):
            raise ValueError(f"query, key and value must be 3-D, {expected}; {shapes}")
        if (query.shape[-1], key.shape[-1], value.shape[-1]) != (self.embed_dim, self.kdim, self.vdim):
            raise ValueError(f"feature sizes do not match the layer, {expected}; {shapes}")
        if not (query.shape[0] == key.shape[0] == value.shape[0]) or key.shape[1] != value.shape[1]:
            raise ValueError(f"batch sizes or key/value lengths differ, {expected}; {shapes}")
        if mask is not None and mask.dim() == 3:
            mask = mask.unsqueeze(1)  # (B, Lq, Lk) → (B, 1, Lq, Lk): the same mask for every head
        q, k, v = self._heads(self.q_proj(query)), self._heads(self.k_proj(key)), self._heads(self.v_proj(value))
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        out = self.out_proj(out.transpose(1, 2).flatten(-2))
        if not need_weights:
            return out, None
        return out, weights.mean(dim=1) if average_heads else weights


class CrossAttention(MultiHeadAttention):
    """Queries from one modality attend over a context from another, e.g. words over image patches (Chapter 4).

    ``forward(query, context)`` is ``MultiHeadAttention.forward(query, context, context)``: ``query`` is
    ``(B, Lq, query_dim)`` (say, text tokens) and ``context`` ``(B, Lk, context_dim)`` (say, image
    patches); the weights ``(B, H, Lq, Lk)`` say which patches each word looked at.
    """

    def __init__(self, query_dim: int, context_dim: int, num_heads: int = 1, *, bias: bool = True) -> None:
        super().__init__(query_dim, num_heads, kdim=context_dim, vdim=context_dim, bias=bias)

    def forward(  # type: ignore[override]
        self,
        query: Tensor,
        context: Tensor,
        mask: Tensor | None = None,
        need_weights: bool = True,
        average_heads: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        return super().forward(query, context, context, mask, need_weights, average_heads)


# ----------------------------------------------------------------------------------------------------
# Positions


def sinusoidal_positional_encoding(length: int, dim: int) -> Tensor:
    """The ``(length, dim)`` sinusoidal table of Vaswani et al. (Chapter 4).

    ``PE[p, 2i] = sin(p ω_i)`` and ``PE[p, 2i+1] = cos(p ω_i)`` with ``ω_i = 10000^(-2i/dim)``.
    """
    if length < 1 or dim < 2 or dim % 2:
        raise ValueError(f"need length >= 1 and an even dim >= 2, got length={length}, dim={dim}")
    omega = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    angles = torch.arange(length, dtype=torch.float64)[:, None] * omega
    table = torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1).flatten(-2)
    return table.to(torch.get_default_dtype())


class LearnedPositionalEncoding(nn.Module):
    """Adds a learned vector per position to ``(..., L, dim)``, initialised N(0, 1) like an embedding (Chapter 4)."""

    def __init__(self, max_len: int, dim: int) -> None:
        super().__init__()
        self.table = nn.Embedding(max_len, dim)

    def forward(self, x: Tensor) -> Tensor:
        max_len, dim = self.table.weight.shape
        if x.dim() < 2 or x.shape[-2] > max_len or x.shape[-1] != dim:
            raise ValueError(f"expected (..., L <= {max_len}, {dim}), got {_shape(x)}")
        return x + self.table.weight[: x.shape[-2]]


# ----------------------------------------------------------------------------------------------------
# Additive (Bahdanau) attention


def additive_attention(
    query: Tensor, key: Tensor, value: Tensor, w_q: Tensor, w_k: Tensor, w_v: Tensor, mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Bahdanau's score ``e_ij = w_vᵀ tanh(W_q q_i + W_k k_j)``, then softmax and a weighted sum (Chapter 4).

    ``query`` ``(..., Lq, dq)``, ``key`` ``(..., Lk, dk)``, ``value`` ``(..., Lk, dv)``; ``w_q`` ``(h, dq)``,
    ``w_k`` ``(h, dk)``, ``w_v`` ``(h,)``. It builds an ``(..., Lq, Lk, h)`` tensor: memory grows with h.
    """
    _check_qkv(query, key, value, same_width=False)
    if w_q.shape != (w_v.shape[0], query.shape[-1]) or w_k.shape != (w_v.shape[0], key.shape[-1]):
        raise ValueError(
            f"expected w_q (h, {query.shape[-1]}), w_k (h, {key.shape[-1]}), w_v (h,); "
            f"got w_q {_shape(w_q)}, w_k {_shape(w_k)}, w_v {_shape(w_v)}"
        )
    hidden = torch.tanh((query @ w_q.T).unsqueeze(-2) + (key @ w_k.T).unsqueeze(-3))
    weights = masked_softmax(hidden @ w_v, mask)
    return weights @ value, weights


class AdditiveAttention(nn.Module):
    """Additive attention with learned ``W_q``, ``W_k``, ``w_v``; values default to the keys (Chapter 4)."""

    def __init__(self, query_dim: int, key_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.w_q = nn.Linear(query_dim, hidden_dim, bias=False)
        self.w_k = nn.Linear(key_dim, hidden_dim, bias=False)
        self.w_v = nn.Linear(hidden_dim, 1, bias=False)

    def forward(
        self, query: Tensor, key: Tensor, value: Tensor | None = None, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        value = key if value is None else value
        return additive_attention(query, key, value, self.w_q.weight, self.w_k.weight, self.w_v.weight[0], mask)


# ----------------------------------------------------------------------------------------------------
# The Transformer block: attention and a position-wise MLP, each inside a residual, with LayerNorms


def layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    """``weight * (x - mean) / sqrt(var + eps) + bias`` over the last axis, the biased variance (Chapter 4).

    Every position is normalised on its own, with the mean and variance of its ``d`` features; what
    :class:`torch.nn.LayerNorm` computes.
    """
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return weight * (x - mean) / torch.sqrt(var + eps) + bias



class MLP(nn.Module):
    """The position-wise feed-forward network ``fc2(act(fc1(x)))``, ``dim → hidden → dim`` (Chapter 4).

    It acts on every position separately; ``activation`` defaults to the exact (erf) GELU. Chapter 6's
    CLIP passes its ``quick_gelu``.
    """

    def __init__(self, dim: int, hidden: int, activation: Callable[[Tensor], Tensor] = F.gelu) -> None:
        super().__init__()
        self.activation = activation
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.activation(self.fc1(x)))


class TransformerBlock(nn.Module):
    """One Transformer encoder layer: self-attention and an MLP, each in a residual (Chapter 4).

    Pre-norm (``norm_first=True``, the default): ``x + MHA(LN₁(x))``, then ``x + MLP(LN₂(x))``. Post-norm,
    the 2017 original: ``LN₁(x + MHA(x))``, then ``LN₂(x + MLP(x))``. ``mask`` (True = may attend) is as in
    :class:`MultiHeadAttention`: a key mask ``(B, 1, L)`` hides padding, :func:`causal_mask` makes a
    decoder. ``forward`` returns the new features and the attention weights ``(B, H, L, L)`` (``None``
    unless ``need_weights``). With GELU and no dropout it computes what ``nn.TransformerEncoderLayer``
    computes (:func:`to_torch_layer` copies the weights across). Chapters 6 (CLIP's towers) and 7 (the
    single-stream matcher) build their Transformers from it.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        hidden: int,
        *,
        activation: Callable[[Tensor], Tensor] = F.gelu,
        eps: float = 1e-5,
        norm_first: bool = True,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = MultiHeadAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = MLP(dim, hidden, activation)
        self.norm_first = norm_first

    def forward(
        self, x: Tensor, mask: Tensor | None = None, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        if self.norm_first:
            h = self.norm1(x)
            attended, weights = self.attn(h, h, h, mask, need_weights=need_weights)
            x = x + attended
            return x + self.mlp(self.norm2(x)), weights
        attended, weights = self.attn(x, x, x, mask, need_weights=need_weights)
        x = self.norm1(x + attended)
        return self.norm2(x + self.mlp(x)), weights


def to_torch_layer(block: TransformerBlock) -> nn.TransformerEncoderLayer:
    """A batch-first ``nn.TransformerEncoderLayer`` (GELU, no dropout) holding ``block``'s weights (Chapter 4).

    PyTorch stores the query, key and value projections stacked in one ``in_proj_weight``; the rest maps
    one to one. Its boolean ``src_key_padding_mask`` is True at *padding*, the opposite of ours.
    """
    attn, dim = block.attn, block.attn.embed_dim
    layer = nn.TransformerEncoderLayer(
        dim, attn.num_heads, block.mlp.fc1.out_features, dropout=0.0, activation="gelu",
        layer_norm_eps=block.norm1.eps, batch_first=True, norm_first=block.norm_first,
    ).to(dtype=attn.q_proj.weight.dtype)
    with torch.no_grad():
        layer.self_attn.in_proj_weight.copy_(torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]))
        layer.self_attn.in_proj_bias.copy_(torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]))
        layer.self_attn.out_proj.load_state_dict(attn.out_proj.state_dict())
        layer.norm1.load_state_dict(block.norm1.state_dict())
        layer.norm2.load_state_dict(block.norm2.state_dict())
        layer.linear1.load_state_dict(block.mlp.fc1.state_dict())
        layer.linear2.load_state_dict(block.mlp.fc2.state_dict())
    return layer


# ----------------------------------------------------------------------------------------------------
# A decoder-only language model: causal blocks and next-token prediction


class TransformerLM(nn.Module):
    """Token and learned position embeddings, ``layers`` causal :class:`TransformerBlock`, a head (Chapter 4).

    ``forward(tokens)`` maps ``(B, T)`` token ids to ``(B, T, vocab_size)`` logits; the causal mask lets
    position t see positions 0 … t only, so the logits at t predict token t + 1 from the tokens up to t.
    A pre-norm stack ends with a final LayerNorm before the head (its residual stream is never
    normalised otherwise); a post-norm stack's last block already ends in one.
    """

    def __init__(
        self, vocab_size: int, dim: int, num_heads: int, hidden: int, layers: int, max_len: int,
        *, norm_first: bool = True,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.positions = LearnedPositionalEncoding(max_len, dim)
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, num_heads, hidden, norm_first=norm_first) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim) if norm_first else nn.Identity()
        self.head = nn.Linear(dim, vocab_size)

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.positions(self.embed(tokens))
        mask = causal_mask(tokens.shape[-1]).to(tokens.device)
        for block in self.blocks:
            x, _ = block(x, mask)
        return self.head(self.norm(x))


def next_token_loss(logits: Tensor, tokens: Tensor, ignore_index: int = -100) -> Tensor:
    """The shifted cross-entropy: the logits at t are scored on token t + 1, padding ignored (Chapter 4).

    ``logits`` ``(B, T, V)`` come from one causal forward pass over ``tokens`` ``(B, T)``; the mean is over
    the ``B (T - 1)`` predicted positions whose target is not ``ignore_index``.
    """
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten(), ignore_index=ignore_index)
