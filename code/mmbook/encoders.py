"""Small encoders for images, text and audio with one shared interface (Chapter 3).

Every encoder is a ``torch.nn.Module`` with a ``dim`` attribute whose ``forward`` returns an
:class:`Encoded`: ``pooled`` features ``(B, D)``, one vector per input, and ``tokens`` ``(B, L, D)``, one
vector per position (grid cell, patch, word or audio frame), with ``D == encoder.dim``. Text encoders also
return ``mask``, ``True`` at real tokens and ``False`` at padding. Later chapters fuse and align these
outputs without caring which encoder made them.

- :class:`ConvEncoder`: a small convolutional network for images.
- :class:`LSTMTextEncoder` and :class:`TransformerTextEncoder`: token ids to features, padding-safe.
- :func:`patchify`, :class:`PatchEmbedding` and :class:`ViTEncoder`: a Vision Transformer.
- :func:`spectrogram` and :class:`AudioEncoder`: waveforms through a log-magnitude STFT and 1-D convolutions.
- :func:`receptive_field` and :func:`count_parameters`: the two numbers the chapter derives for a network.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

if TYPE_CHECKING:
    from transformers import ViTModel


@dataclass
class Encoded:
    """The output of every Chapter 3 encoder.

    ``pooled`` is ``(B, D)``; ``tokens`` is ``(B, L, D)``; ``mask`` is a bool ``(B, L)`` tensor that is
    ``True`` at real tokens, or ``None`` when every token is real (images and audio).
    """

    pooled: Tensor
    tokens: Tensor
    mask: Tensor | None = None


def count_parameters(module: nn.Module) -> int:
    """Number of scalar parameters of ``module``, trainable or not (Chapter 3)."""
    return sum(p.numel() for p in module.parameters())


def receptive_field(layers: Iterable[nn.Module]) -> int:
    """Side, in input pixels, of the region that one output unit of a stack of layers can see (Chapter 3).

    ``r = 1 + Σ_l (k_l − 1) d_l Π_{i<l} s_i`` over the convolutions and poolings of ``layers`` in order
    (kernel ``k``, dilation ``d``, stride ``s``, read along the first spatial axis); other layers
    (activations, normalisation) do not change it.
    """
    r, jump = 1, 1
    for layer in layers:
        if isinstance(layer, nn.Conv1d | nn.Conv2d | nn.MaxPool1d | nn.MaxPool2d | nn.AvgPool1d | nn.AvgPool2d):
            k, s, d = (_first(getattr(layer, name, 1)) for name in ("kernel_size", "stride", "dilation"))
            r += (k - 1) * d * jump
            jump *= s
    return r


def _first(value: int | Sequence[int]) -> int:
    return value if isinstance(value, int) else value[0]


def _padding_mask(input_ids: Tensor, attention_mask: Tensor | None, pad_id: int) -> Tensor:
    """Bool ``(B, L)`` mask of real tokens: from ``attention_mask`` if given, else ``input_ids != pad_id``."""
    mask = input_ids != pad_id if attention_mask is None else attention_mask.bool()
    if not bool(mask.any(dim=1).all()):
        raise ValueError("every sequence needs at least one real token; an all-padding row cannot be encoded")
    return mask


class ConvEncoder(nn.Module):
    """Convolution, ReLU and 2×2 max-pooling stages, then a linear map to ``dim`` (Chapter 3).

    Input: float images ``(B, C, H, W)``. Tokens are the cells of the last feature map, ``L = H W / 4^S`` for
    ``S = len(widths)`` stages; ``pooled`` is their mean.
    """

    def __init__(
        self, in_channels: int = 3, widths: Sequence[int] = (16, 32, 64), dim: int = 64, kernel_size: int = 3
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for width in widths:
            layers += [nn.Conv2d(channels, width, kernel_size, padding=kernel_size // 2), nn.ReLU(), nn.MaxPool2d(2)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.proj = nn.Linear(channels, dim)
        self.dim = dim

    def forward(self, images: Tensor) -> Encoded:
        maps = self.features(images)  # (B, C', H', W')
        tokens = self.proj(maps.flatten(2).transpose(1, 2))  # (B, H'W', D)
        return Encoded(tokens.mean(dim=1), tokens)


class LSTMTextEncoder(nn.Module):
    """Token embedding and a one-layer LSTM; ``pooled`` is the hidden state after the last real token (Chapter 3).

    Input: ``input_ids`` ``(B, L)``, padded on the right, and optionally ``attention_mask`` (1 at real
    tokens; without it, tokens equal to ``pad_id`` are padding). The sequences are packed, so the LSTM never
    reads a padding token and the output for a sequence does not depend on how much it was padded. The
    forget-gate bias starts at ``forget_bias`` so that early gradients flow through the cell state.
    """

    def __init__(
        self, vocab_size: int, dim: int = 64, *, embed_dim: int = 64, pad_id: int = 0, forget_bias: float = 1.0
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.lstm = nn.LSTM(embed_dim, dim, batch_first=True)
        with torch.no_grad():  # PyTorch orders the gates (input, forget, cell, output)
            self.lstm.bias_ih_l0[dim : 2 * dim].fill_(forget_bias)
            self.lstm.bias_hh_l0[dim : 2 * dim].zero_()
        self.pad_id, self.dim = pad_id, dim

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Encoded:
        mask = _padding_mask(input_ids, attention_mask, self.pad_id)
        lengths = mask.sum(dim=1).cpu()
        packed = pack_padded_sequence(self.embed(input_ids), lengths, batch_first=True, enforce_sorted=False)
        output, (hidden, _) = self.lstm(packed)
        tokens, _ = pad_packed_sequence(output, batch_first=True, total_length=input_ids.shape[1])
        return Encoded(hidden[-1], tokens, mask)


def _transformer_stack(dim: int, heads: int, layers: int, mlp_dim: int, dropout: float, eps: float) -> nn.Module:
    """Pre-norm Transformer encoder layers (attention, then a GELU MLP, each inside a residual)."""
    layer = nn.TransformerEncoderLayer(
        dim, heads, mlp_dim, dropout, activation="gelu", layer_norm_eps=eps, batch_first=True, norm_first=True
    )
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class TransformerTextEncoder(nn.Module):
    """Token and learned position embeddings, pre-norm Transformer layers, a final LayerNorm (Chapter 3).

    Input as for :class:`LSTMTextEncoder`. Attention never looks at padding (a key padding mask), and
    ``pooled`` is the mean of the real tokens' features, so padding does not change it. ``tokens`` at
    padded positions are computed but meaningless: use ``mask``.
    """

    def __init__(
        self,
        vocab_size: int,
        dim: int = 64,
        *,
        heads: int = 4,
        layers: int = 2,
        mlp_dim: int | None = None,
        max_length: int = 77,
        pad_id: int = 0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        self.position = nn.Parameter(0.02 * torch.randn(1, max_length, dim))
        self.encoder = _transformer_stack(dim, heads, layers, mlp_dim or 4 * dim, dropout, 1e-5)
        self.norm = nn.LayerNorm(dim)
        self.pad_id, self.max_length, self.dim = pad_id, max_length, dim

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Encoded:
        if input_ids.shape[1] > self.max_length:
            raise ValueError(f"sequences can have at most {self.max_length} tokens, got {input_ids.shape[1]}")
        mask = _padding_mask(input_ids, attention_mask, self.pad_id)
        x = self.embed(input_ids) + self.position[:, : input_ids.shape[1]]
        tokens = self.norm(self.encoder(x, src_key_padding_mask=~mask))
        weights = mask.unsqueeze(-1).to(tokens.dtype)
        pooled = (tokens * weights).sum(dim=1) / weights.sum(dim=1)
        return Encoded(pooled, tokens, mask)


def patchify(images: Tensor, patch: int) -> Tensor:
    """Cut ``(B, C, H, W)`` images into non-overlapping ``patch × patch`` squares (Chapter 3).

    Returns ``(B, N, C·patch·patch)`` with ``N = (H / patch)(W / patch)`` patches in reading order, each
    flattened channel-major, ``(c, row, column)``: the order of a ``Conv2d`` weight's last three axes.
    """
    b, c, h, w = images.shape
    if h % patch or w % patch:
        raise ValueError(f"image size {h}×{w} is not divisible by the patch size {patch}")
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // patch) * (w // patch), c * patch * patch)


class PatchEmbedding(nn.Module):
    """One linear map applied to every flattened patch: ``(B, C, H, W)`` to ``(B, N, dim)`` (Chapter 3).

    It computes exactly what ``nn.Conv2d(in_channels, dim, kernel_size=patch, stride=patch)`` computes, with
    ``proj.weight == conv.weight.reshape(dim, -1)`` (Chapter 3, Eq. patch-conv).
    """

    def __init__(self, patch: int, in_channels: int = 3, dim: int = 64) -> None:
        super().__init__()
        self.proj = nn.Linear(in_channels * patch * patch, dim)
        self.patch, self.dim = patch, dim

    def forward(self, images: Tensor) -> Tensor:
        return self.proj(patchify(images, self.patch))


class ViTEncoder(nn.Module):
    """A Vision Transformer: patch embedding, class token, learned positions, pre-norm layers (Chapter 3).

    Input: float images ``(B, C, image_size, image_size)``. ``pooled`` is the class token's final feature,
    ``tokens`` the ``N`` patch features. The layout is that of ``transformers``' ``ViTModel`` (without its
    pooler), so :meth:`from_transformers` can copy a checkpoint's weights into it.
    """

    def __init__(
        self,
        image_size: int = 32,
        patch: int = 4,
        in_channels: int = 3,
        dim: int = 64,
        *,
        heads: int = 4,
        layers: int = 2,
        mlp_dim: int | None = None,
        dropout: float = 0.0,
        layer_norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if image_size % patch:
            raise ValueError(f"image_size {image_size} is not divisible by the patch size {patch}")
        self.patch_embed = PatchEmbedding(patch, in_channels, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(0.02 * torch.randn(1, (image_size // patch) ** 2 + 1, dim))
        self.encoder = _transformer_stack(dim, heads, layers, mlp_dim or 4 * dim, dropout, layer_norm_eps)
        self.norm = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.image_size, self.dim = image_size, dim

    def embed(self, images: Tensor) -> Tensor:
        """The Transformer's input ``(B, N + 1, dim)``: class token, then patches, plus positions."""
        if images.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"expected {self.image_size}×{self.image_size} images, got {tuple(images.shape[-2:])}")
        patches = self.patch_embed(images)
        cls = self.cls_token.expand(len(images), -1, -1)
        return torch.cat([cls, patches], dim=1) + self.position

    def forward(self, images: Tensor) -> Encoded:
        hidden = self.norm(self.encoder(self.embed(images)))
        return Encoded(hidden[:, 0], hidden[:, 1:])

    @classmethod
    def from_transformers(cls, model: ViTModel) -> ViTEncoder:
        """A :class:`ViTEncoder` holding the weights of a ``transformers`` ``ViTModel`` (Chapter 3)."""
        config = model.config
        if config.hidden_act != "gelu" or not config.qkv_bias:
            raise ValueError("only ViT configurations with hidden_act='gelu' and qkv_bias=True can be copied")
        encoder = cls(
            config.image_size,
            config.patch_size,
            config.num_channels,
            config.hidden_size,
            heads=config.num_attention_heads,
            layers=config.num_hidden_layers,
            mlp_dim=config.intermediate_size,
            layer_norm_eps=config.layer_norm_eps,
        )
        embeddings, dim = model.embeddings, config.hidden_size
        with torch.no_grad():
            conv = embeddings.patch_embeddings.projection
            encoder.patch_embed.proj.weight.copy_(conv.weight.reshape(dim, -1))
            encoder.patch_embed.proj.bias.copy_(conv.bias)
            encoder.cls_token.copy_(embeddings.cls_token)
            encoder.position.copy_(embeddings.position_embeddings)
            for ours, theirs in zip(encoder.encoder.layers, model.layers, strict=True):
                attention = theirs.attention
                ours.self_attn.in_proj_weight.copy_(
                    torch.cat([attention.q_proj.weight, attention.k_proj.weight, attention.v_proj.weight])
                )
                ours.self_attn.in_proj_bias.copy_(
                    torch.cat([attention.q_proj.bias, attention.k_proj.bias, attention.v_proj.bias])
                )
                pairs = [
                    (ours.self_attn.out_proj, attention.o_proj),
                    (ours.norm1, theirs.layernorm_before),
                    (ours.norm2, theirs.layernorm_after),
                    (ours.linear1, theirs.mlp.fc1),
                    (ours.linear2, theirs.mlp.fc2),
                ]
                for mine, source in pairs:
                    mine.weight.copy_(source.weight)
                    mine.bias.copy_(source.bias)
            encoder.norm.weight.copy_(model.layernorm.weight)
            encoder.norm.bias.copy_(model.layernorm.bias)
        return encoder


def spectrogram(audio: Tensor, n_fft: int = 256, hop: int = 64, eps: float = 1e-4) -> Tensor:
    """Log-magnitude short-time Fourier transform with a Hann window (Chapter 3, Eq. stft).

    ``(B, T)`` or ``(T,)`` waveforms become ``log(|X| + eps)`` of shape ``(B, n_fft // 2 + 1, 1 + T // hop)``
    (or without ``B``): frequency bin ``k`` is ``k · sample_rate / n_fft`` hertz; frames are centred, the
    signal being reflected at both ends.
    """
    window = torch.hann_window(n_fft, device=audio.device, dtype=audio.dtype)
    spec = torch.stft(audio, n_fft, hop_length=hop, window=window, center=True, return_complex=True)
    return torch.log(spec.abs() + eps)


class AudioEncoder(nn.Module):
    """A log-magnitude spectrogram, then 1-D convolutions over time with frequency bins as channels (Chapter 3).

    Input: waveforms ``(B, T)``. Each convolution stage is Conv1d, ReLU and 2× max-pooling; tokens are the
    pooled frames, ``L = (1 + T // hop) // 2^S``, and ``pooled`` is their mean.
    """

    def __init__(
        self, n_fft: int = 256, hop: int = 128, dim: int = 64, widths: Sequence[int] = (64, 64), kernel_size: int = 5
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = n_fft // 2 + 1
        for width in widths:
            layers += [nn.Conv1d(channels, width, kernel_size, padding=kernel_size // 2), nn.ReLU(), nn.MaxPool1d(2)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.proj = nn.Linear(channels, dim)
        self.n_fft, self.hop, self.dim = n_fft, hop, dim

    def forward(self, audio: Tensor) -> Encoded:
        maps = self.features(spectrogram(audio, self.n_fft, self.hop))  # (B, C', frames')
        tokens = self.proj(maps.transpose(1, 2))
        return Encoded(tokens.mean(dim=1), tokens)
