"""CLIP from scratch in plain PyTorch, numerically equal to ``transformers.CLIPModel`` (Chapter 6).

CLIP (Radford et al., 2021) is two Transformers and two linear maps into one shared space: a text tower
that reads a caption and a vision tower (a ViT) that reads a picture, each pooled to one vector and
projected to ``projection_dim``; after L2 normalisation, the dot products of every caption with every
picture, times a learned temperature ``exp(logit_scale)``, are the logits of a symmetric contrastive loss.

- :class:`ScratchCLIP`: the whole model, built from a ``transformers.CLIPConfig`` out of ``torch.nn``
  primitives and :class:`mmbook.attention.TransformerBlock`; ``forward`` returns
  ``(logits_per_image, logits_per_text, text_embeds, image_embeds)`` like ``CLIPModel``,
  :meth:`ScratchCLIP.encode_text` and :meth:`ScratchCLIP.encode_image` the projected, unnormalised features.
- :meth:`ScratchCLIP.from_clip_model` copies the weights of a ``CLIPModel`` through an explicit name map,
  :func:`clip_weight_map`, that uses every parameter of both models exactly once.
- :class:`TextTower` and :class:`VisionTower`: the parts, each a stack of Chapter 4's
  :class:`~mmbook.attention.TransformerBlock` (pre-norm, CLIP's activation, no attention dropout: CLIP's
  configs set it to 0).
- :func:`quick_gelu`: CLIP's activation. Its loss is :func:`mmbook.losses.clip_loss`.

Chapter 6 loads a ``CLIPModel``, copies it into a :class:`ScratchCLIP` and checks that both give the same
numbers, which shows that nothing in CLIP is hidden behind the library. Only the configuration object
comes from ``transformers``; none of its modelling code is used here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmbook.attention import TransformerBlock, causal_mask

if TYPE_CHECKING:
    from transformers import CLIPConfig, CLIPModel

__all__ = [
    "ACTIVATIONS",
    "ScratchCLIP",
    "TextTower",
    "VisionTower",
    "clip_weight_map",
    "quick_gelu",
]


def quick_gelu(x: Tensor) -> Tensor:
    """CLIP's activation ``x · sigmoid(1.702 x)``, a cheap approximation of GELU (Chapter 6)."""
    return x * torch.sigmoid(1.702 * x)


#: The activations a :class:`ScratchCLIP` supports, by their ``hidden_act`` names in the config. "gelu" is
#: the exact, erf-based GELU, as in ``transformers``.
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"quick_gelu": quick_gelu, "gelu": F.gelu}


def _activation(name: str) -> Callable[[Tensor], Tensor]:
    if name not in ACTIVATIONS:
        raise ValueError(f"unsupported hidden_act {name!r}; use one of: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


# ----------------------------------------------------------------------------------------------------
# The Transformer layers of both towers: Chapter 4's block, pre-norm, with the config's activation


def _layers(config: Any) -> nn.ModuleList:
    return nn.ModuleList(
        TransformerBlock(
            config.hidden_size, config.num_attention_heads, config.intermediate_size,
            activation=_activation(config.hidden_act), eps=config.layer_norm_eps,
        )
        for _ in range(config.num_hidden_layers)
    )


# ----------------------------------------------------------------------------------------------------
# The towers


class TextTower(nn.Module):
    """Token ids ``(B, L)`` → pooled text features ``(B, hidden)``, before the projection (Chapter 6).

    Token plus learned position embeddings, causal pre-LN layers (a token sees itself and the tokens
    before it, never padding), a final LayerNorm, and the hidden state at the end-of-text token. Like
    ``transformers``, the pooled position is the *first* ``eos_token_id`` of each row; when the config's
    ``eos_token_id`` is 2 (old CLIP configs, written before the id was corrected) it is instead the
    position of the highest token id, the original OpenAI rule, which works because end-of-text is the
    last id of CLIP's vocabulary. A row with no end-of-text token is pooled at position 0, silently, as
    ``transformers`` does.
    """

    def __init__(self, config: Any) -> None:
        super().__init__()
        if not isinstance(config.eos_token_id, int):
            raise ValueError(f"text_config.eos_token_id must be one integer, got {config.eos_token_id!r}")
        self.eos_token_id = config.eos_token_id
        self.token_embedding = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embedding = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.layers = _layers(config)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def pool_positions(self, input_ids: Tensor) -> Tensor:
        """The position pooled in each row of ``input_ids`` ``(B, L)``: ``(B,)`` indices (Chapter 6)."""
        if self.eos_token_id == 2:  # the legacy rule: the highest id is end-of-text
            return input_ids.argmax(dim=-1)
        return (input_ids == self.eos_token_id).int().argmax(dim=-1)  # argmax finds the first maximum

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        max_len = self.position_embedding.num_embeddings
        if input_ids.dim() != 2 or input_ids.shape[1] > max_len:
            raise ValueError(f"input_ids must be (B, L) with L <= {max_len}, got {tuple(input_ids.shape)}")
        if attention_mask is not None and attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"attention_mask must have the shape of input_ids {tuple(input_ids.shape)}, "
                f"got {tuple(attention_mask.shape)}: the batch sizes or lengths differ"
            )
        length = input_ids.shape[1]
        x = self.token_embedding(input_ids) + self.position_embedding.weight[:length]
        mask = causal_mask(length).to(input_ids.device)  # (L, L): query i may see keys j <= i
        if attention_mask is not None:
            mask = mask & attention_mask.bool()[:, None, :]  # (B, L, L): ... and never a padding key
        for layer in self.layers:
            x = layer(x, mask)[0]
        x = self.final_layer_norm(x)
        return x[torch.arange(len(x), device=x.device), self.pool_positions(input_ids)]


class VisionTower(nn.Module):
    """Pictures ``(B, C, S, S)`` → pooled image features ``(B, hidden)``, before the projection (Chapter 6).

    A ViT: non-overlapping ``patch_size`` patches embedded by a strided convolution without bias, a
    learned class token in front, learned position embeddings, ``pre_layrnorm`` (CLIP normalises the
    tokens *before* the first layer, unlike the original ViT; the misspelling is ``transformers``'), the
    pre-LN layers without a mask, and ``post_layernorm`` on the class token.
    """

    def __init__(self, config: Any) -> None:
        super().__init__()
        if not isinstance(config.image_size, int) or not isinstance(config.patch_size, int):
            raise ValueError("vision_config.image_size and patch_size must be integers (square pictures)")
        self.num_channels, self.image_size = config.num_channels, config.image_size
        num_patches = (config.image_size // config.patch_size) ** 2
        self.class_embedding = nn.Parameter(torch.randn(config.hidden_size))
        self.patch_embedding = nn.Conv2d(
            config.num_channels, config.hidden_size, config.patch_size, stride=config.patch_size, bias=False
        )
        self.position_embedding = nn.Embedding(num_patches + 1, config.hidden_size)
        self.pre_layrnorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.layers = _layers(config)
        self.post_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, pixel_values: Tensor) -> Tensor:
        expected = (self.num_channels, self.image_size, self.image_size)
        if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != expected:
            raise ValueError(
                f"pixel_values must be (B, {', '.join(map(str, expected))}), got {tuple(pixel_values.shape)}"
            )
        weight = self.patch_embedding.weight
        patches = self.patch_embedding(pixel_values.to(weight.dtype)).flatten(2).transpose(1, 2)  # B, N, D
        cls = self.class_embedding.expand(len(patches), 1, -1)
        x = torch.cat([cls, patches], dim=1) + self.position_embedding.weight
        x = self.pre_layrnorm(x)
        for layer in self.layers:
            x = layer(x)[0]
        return self.post_layernorm(x[:, 0])


# ----------------------------------------------------------------------------------------------------
# The model


class ScratchCLIP(nn.Module):
    """CLIP from scratch: a text tower, a vision tower, two projections and a temperature (Chapter 6).

    Built from a ``transformers.CLIPConfig``; with the weights of a ``CLIPModel`` (see
    :meth:`from_clip_model`) it computes the same numbers. The numbers of captions and pictures may
    differ, as in zero-shot classification: the logits are ``(N_images, N_texts)`` and ``(N_texts, N_images)``.
    """

    def __init__(self, config: CLIPConfig) -> None:
        super().__init__()
        self.config = config
        text, vision = config.text_config, config.vision_config
        self.text = TextTower(text)
        self.vision = VisionTower(vision)
        self.text_projection = nn.Linear(text.hidden_size, config.projection_dim, bias=False)
        self.visual_projection = nn.Linear(vision.hidden_size, config.projection_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init_value)))

    def encode_text(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Projected, unnormalised text features ``(B, projection_dim)``, ``get_text_features`` (Chapter 6)."""
        return self.text_projection(self.text(input_ids, attention_mask))

    def encode_image(self, pixel_values: Tensor) -> Tensor:
        """Projected, unnormalised image features ``(B, projection_dim)``, ``get_image_features`` (Chapter 6)."""
        return self.visual_projection(self.vision(pixel_values))

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None, pixel_values: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(logits_per_image, logits_per_text, text_embeds, image_embeds)``, the embeddings L2-normalised and
        ``logits_per_text = exp(logit_scale) · text_embeds @ image_embedsᵀ`` (Chapter 6)."""
        text_embeds = F.normalize(self.encode_text(input_ids, attention_mask), dim=-1, eps=0.0)
        image_embeds = F.normalize(self.encode_image(pixel_values), dim=-1, eps=0.0)
        logits_per_text = text_embeds @ image_embeds.T * self.logit_scale.exp()
        return logits_per_text.T, logits_per_text, text_embeds, image_embeds

    @classmethod
    def from_clip_model(cls, model: CLIPModel) -> ScratchCLIP:
        """A :class:`ScratchCLIP` holding copies of every weight of ``model``, same dtype and device (Chapter 6).

        The names are matched by :func:`clip_weight_map`; ``ValueError`` if a parameter of either model is
        left over or the shapes differ.
        """
        reference = next(model.parameters())
        scratch = cls(model.config).to(dtype=reference.dtype, device=reference.device)
        ours, theirs = dict(scratch.named_parameters()), dict(model.named_parameters())
        names = clip_weight_map(model.config)
        unused_ours, unused_theirs = set(ours) - set(names), set(theirs) - set(names.values())
        missing = {n for n in names if n not in ours} | {n for n in names.values() if n not in theirs}
        if unused_ours or unused_theirs or missing:
            raise ValueError(
                f"the weight map does not match the models: ScratchCLIP leftovers {sorted(unused_ours)}, "
                f"CLIPModel leftovers {sorted(unused_theirs)}, unknown names {sorted(missing)}"
            )
        with torch.no_grad():
            for mine, source in names.items():
                if ours[mine].shape != theirs[source].shape:
                    raise ValueError(
                        f"{mine} is {tuple(ours[mine].shape)} but {source} is {tuple(theirs[source].shape)}"
                    )
                ours[mine].copy_(theirs[source])
        return scratch.train(model.training)


def clip_weight_map(config: CLIPConfig) -> dict[str, str]:
    """``{ScratchCLIP parameter name: CLIPModel parameter name}`` for every parameter, one to one (Chapter 6)."""
    names = {
        "text.token_embedding.weight": "text_model.embeddings.token_embedding.weight",
        "text.position_embedding.weight": "text_model.embeddings.position_embedding.weight",
        "text.final_layer_norm.weight": "text_model.final_layer_norm.weight",
        "text.final_layer_norm.bias": "text_model.final_layer_norm.bias",
        "vision.class_embedding": "vision_model.embeddings.class_embedding",
        "vision.patch_embedding.weight": "vision_model.embeddings.patch_embedding.weight",
        "vision.position_embedding.weight": "vision_model.embeddings.position_embedding.weight",
        "vision.pre_layrnorm.weight": "vision_model.pre_layrnorm.weight",
        "vision.pre_layrnorm.bias": "vision_model.pre_layrnorm.bias",
        "vision.post_layernorm.weight": "vision_model.post_layernorm.weight",
        "vision.post_layernorm.bias": "vision_model.post_layernorm.bias",
        "text_projection.weight": "text_projection.weight",
        "visual_projection.weight": "visual_projection.weight",
        "logit_scale": "logit_scale",
    }
    layer_parts = {
        "norm1": "layer_norm1",
        "attn.q_proj": "self_attn.q_proj",
        "attn.k_proj": "self_attn.k_proj",
        "attn.v_proj": "self_attn.v_proj",
        "attn.out_proj": "self_attn.out_proj",
        "norm2": "layer_norm2",
        "mlp.fc1": "mlp.fc1",
        "mlp.fc2": "mlp.fc2",
    }
    towers = (("text", "text_model", config.text_config), ("vision", "vision_model", config.vision_config))
    for ours, theirs, tower in towers:
        for i in range(tower.num_hidden_layers):
            for mine, source in layer_parts.items():
                for kind in ("weight", "bias"):
                    names[f"{ours}.layers.{i}.{mine}.{kind}"] = f"{theirs}.encoder.layers.{i}.{source}.{kind}"
    return names
