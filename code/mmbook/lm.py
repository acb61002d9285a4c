"""A tiny causal language model of the Llama family, from scratch, and its word-level tokenizer (Chapter 11).

The text half of the book's small vision-language model (:mod:`mmbook.vlm`). Every part is written in plain
PyTorch and proved equal to ``transformers``' Llama with copied weights (``tests/test_lm.py``):

- :class:`RMSNorm`: ``x / sqrt(mean(x^2) + eps) * weight``, Llama's normalisation (no mean, no bias).
- :func:`rotary_cos_sin`, :func:`rotate_half`, :func:`apply_rotary`: rotary position embeddings, which turn
  each pair of query/key features by an angle proportional to the position.
- :class:`SwiGLU`: the gated MLP ``down(silu(gate(x)) * up(x))``.
- :class:`CausalSelfAttention`: multi-head attention with a causal and a padding mask.
- :class:`DecoderBlock`, :class:`TinyLlama`: pre-norm residual blocks and the causal LM with its head.
- :func:`llama_config`, :func:`to_llama`, :func:`from_llama`: the matching ``LlamaConfig`` and weight
  conversion both ways.
- :func:`tokenizer`: a ``PreTrainedTokenizerFast`` over every word the shapes world and its conversations
  write (:data:`VOCABULARY`), with ``<s>``, ``</s>``, ``<pad>``, ``<unk>``, ``<image>``, the role markers
  ``<|user|>`` and ``<|assistant|>`` and a Jinja :data:`CHAT_TEMPLATE`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmbook.data import instruct, shapes
from mmbook.data._text import template_words

if TYPE_CHECKING:
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

# ----------------------------------------------------------------------------------------------------
# the tokenizer

BOS, EOS, PAD, UNK, IMAGE, USER, ASSISTANT = "<s>", "</s>", "<pad>", "<unk>", "<image>", "<|user|>", "<|assistant|>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, UNK, BOS, EOS, IMAGE, USER, ASSISTANT)
#: Every word a shapes-world caption, question or answer and a conversation of :mod:`mmbook.data.instruct`
#: can contain; the tokenizer's vocabulary after :data:`SPECIAL_TOKENS`.
VOCABULARY: tuple[str, ...] = tuple(sorted(set(shapes.VOCABULARY) | template_words(instruct.TEMPLATES)))

#: One user turn and the assistant's answer ending in ``</s>``. The user's text comes first and the picture
#: after it, whatever the order of the message's items: the image tokens then follow the question, so each
#: can attend to it (LLaVA's training data puts ``<image>`` before or after the question at random).
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}<|user|>{% else %}<|assistant|>{% endif %}"
    "{% if message['content'] is string %} {{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}{% if item['type'] == 'text' %} {{ item['text'] }}{% endif %}"
    "{% endfor %}{% for item in message['content'] %}{% if item['type'] == 'image' %} <image>{% endif %}"
    "{% endfor %}{% endif %}"
    "{% if message['role'] == 'assistant' %} {{ eos_token }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@lru_cache(maxsize=1)
def tokenizer() -> PreTrainedTokenizerFast:
    """The word-level tokenizer of the tiny LM and VLM (Chapter 11).

    Text is lowercased and split into words and single marks like :func:`mmbook.data.words`; the special
    tokens stay whole. Nothing is added around a text: the chat template writes ``<s>`` and ``</s>``.
    The object is built once per process and shared: copy it before changing it.
    """
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *VOCABULARY])}
    backend = Tokenizer(WordLevel(vocab, unk_token=UNK))
    backend.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    specials = "|".join(t.replace("|", r"\|") for t in SPECIAL_TOKENS)
    backend.pre_tokenizer = pre_tokenizers.Split(
        Regex(rf"{specials}|[\p{{L}}]+|[\p{{N}}]|[^\s\p{{L}}\p{{N}}]"), behavior="removed", invert=True
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=BOS, eos_token=EOS, unk_token=UNK, pad_token=PAD,
        additional_special_tokens=[USER, ASSISTANT], extra_special_tokens={"image_token": IMAGE},
        chat_template=CHAT_TEMPLATE, model_max_length=256, padding_side="right",
    )  # fmt: skip
    return tok


def check_text(text: object, max_chars: int = 1000) -> str:
    """``text`` if it is a non-empty string of at most ``max_chars`` characters, else a ``ValueError``."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"the question must be a non-empty string, got {text!r:.40}")
    if len(text) > max_chars:
        raise ValueError(f"the question is {len(text)} characters long; at most {max_chars} are accepted")
    return text


# ----------------------------------------------------------------------------------------------------
# the model


@dataclass(frozen=True)
class LMConfig:
    """Sizes of a :class:`TinyLlama` (Chapter 11)."""

    vocab_size: int
    hidden: int = 128
    layers: int = 2
    heads: int = 4
    intermediate: int = 256
    max_positions: int = 128
    rope_theta: float = 10000.0
    eps: float = 1e-6
    pad_token_id: int = 0
    bos_token_id: int = 2
    eos_token_id: int = 3

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.hidden // self.heads


class RMSNorm(nn.Module):
    """Root-mean-square normalisation with a learned gain, computed in float32 (Chapter 11)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def rotary_cos_sin(positions: Tensor, head_dim: int, theta: float = 10000.0) -> tuple[Tensor, Tensor]:
    """Cosines and sines of the rotary angles ``position * theta^(-2i/d)``, each B×T×d (Chapter 11).

    The frequencies are written twice, ``[f, f]``, so that feature ``i`` pairs with feature ``i + d/2``.
    """
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = positions.float()[..., None] * inv_freq
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def rotate_half(x: Tensor) -> Tensor:
    """``[x1, x2] -> [-x2, x1]`` over the last dimension: a 90-degree turn of each feature pair."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate the heads ``x`` (B×H×T×d) by the angles whose ``cos``/``sin`` are B×T×d (Chapter 11)."""
    cos, sin = cos[:, None], sin[:, None]
    return x * cos + rotate_half(x) * sin


class SwiGLU(nn.Module):
    """Llama's MLP: ``down(silu(gate(x)) * up(x))``, no biases (Chapter 11)."""

    def __init__(self, hidden: int, intermediate: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden, intermediate, bias=False)
        self.up_proj = nn.Linear(hidden, intermediate, bias=False)
        self.down_proj = nn.Linear(intermediate, hidden, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


def attention_bias(attention_mask: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """Additive B×1×T×T bias: 0 where query ``i`` may see key ``j`` (``j <= i`` and ``j`` is not padding),
    the dtype's lowest value elsewhere, so a fully masked row stays finite."""
    length = attention_mask.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=attention_mask.device).tril()
    allowed = causal[None] & attention_mask.bool()[:, None, :]
    return torch.zeros(allowed.shape, dtype=dtype, device=attention_mask.device).masked_fill(
        ~allowed, torch.finfo(dtype).min
    )[:, None]


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention with rotary positions and an additive mask (Chapter 11)."""

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.heads, self.head_dim = config.heads, config.head_dim
        inner = config.heads * config.head_dim
        self.q_proj = nn.Linear(config.hidden, inner, bias=False)
        self.k_proj = nn.Linear(config.hidden, inner, bias=False)
        self.v_proj = nn.Linear(config.hidden, inner, bias=False)
        self.o_proj = nn.Linear(inner, config.hidden, bias=False)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, bias: Tensor) -> Tensor:
        b, t, _ = x.shape

        def heads(h: Tensor) -> Tensor:
            return h.view(b, t, self.heads, self.head_dim).transpose(1, 2)

        q = apply_rotary(heads(self.q_proj(x)), cos, sin)
        k = apply_rotary(heads(self.k_proj(x)), cos, sin)
        v = heads(self.v_proj(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim) + bias
        out = torch.softmax(scores.float(), dim=-1).to(q.dtype) @ v
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class DecoderBlock(nn.Module):
    """Pre-norm block: ``x + attn(norm(x))``, then ``x + mlp(norm(x))`` (Chapter 11)."""

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden, config.eps)
        self.self_attn = CausalSelfAttention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden, config.eps)
        self.mlp = SwiGLU(config.hidden, config.intermediate)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, bias: Tensor) -> Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, bias)
        return x + self.mlp(self.post_attention_layernorm(x))


class TinyLlama(nn.Module):
    """A causal LM of the Llama family: embeddings, decoder blocks, a final RMSNorm and an LM head (Chapter 11).

    Parameter names follow ``LlamaForCausalLM`` (``embed_tokens``, ``layers.i.self_attn.q_proj``, ...), so
    :func:`to_llama` copies them one to one.
    """

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden)
        self.layers = nn.ModuleList(DecoderBlock(config) for _ in range(config.layers))
        self.norm = RMSNorm(config.hidden, config.eps)
        self.lm_head = nn.Linear(config.hidden, config.vocab_size, bias=False)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    def forward_embeds(
        self, embeds: Tensor, attention_mask: Tensor | None = None, position_ids: Tensor | None = None
    ) -> Tensor:
        """Logits (B×T×V) of already embedded tokens ``embeds`` (B×T×D); positions count from 0 unless
        ``position_ids`` are given (generation with left padding passes them)."""
        b, t, _ = embeds.shape
        if attention_mask is None:
            attention_mask = torch.ones(b, t, dtype=torch.long, device=embeds.device)
        if position_ids is None:
            position_ids = torch.arange(t, device=embeds.device).expand(b, t)
        cos, sin = rotary_cos_sin(position_ids, self.config.head_dim, self.config.rope_theta)
        bias = attention_bias(attention_mask, embeds.dtype)
        x = embeds
        for block in self.layers:
            x = block(x, cos.to(x.dtype), sin.to(x.dtype), bias)
        return self.lm_head(self.norm(x))

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, position_ids: Tensor | None = None
                ) -> Tensor:  # fmt: skip
        """Logits (B×T×V) of the token ids ``input_ids`` (B×T)."""
        return self.forward_embeds(self.embed_tokens(input_ids), attention_mask, position_ids)


def next_token_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy of predicting ``labels[:, t+1]`` from ``logits[:, t]``, skipping labels -100
    (Chapter 11): the loss of every causal LM in ``transformers``."""
    return F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1), ignore_index=-100
    )


# ----------------------------------------------------------------------------------------------------
# conversion to and from transformers


def llama_config(config: LMConfig) -> LlamaConfig:
    """The ``LlamaConfig`` of the same model as ``config`` (Chapter 11)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=config.vocab_size, hidden_size=config.hidden, intermediate_size=config.intermediate,
        num_hidden_layers=config.layers, num_attention_heads=config.heads, num_key_value_heads=config.heads,
        max_position_embeddings=config.max_positions, rms_norm_eps=config.eps, hidden_act="silu",
        rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta},
        attention_bias=False, mlp_bias=False, tie_word_embeddings=False, pad_token_id=config.pad_token_id,
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id,
    )  # fmt: skip


def lm_config_from_llama(config: LlamaConfig) -> LMConfig:
    """The :class:`LMConfig` of a ``LlamaConfig`` that :class:`TinyLlama` can express (Chapter 11)."""
    rope = getattr(config, "rope_parameters", None) or {}
    if config.num_key_value_heads != config.num_attention_heads or rope.get("rope_type", "default") != "default":
        raise ValueError("TinyLlama has no grouped-query attention and no scaled rotary positions")
    return LMConfig(
        vocab_size=config.vocab_size, hidden=config.hidden_size, layers=config.num_hidden_layers,
        heads=config.num_attention_heads, intermediate=config.intermediate_size,
        max_positions=config.max_position_embeddings, rope_theta=float(rope.get("rope_theta", 10000.0)),
        eps=config.rms_norm_eps, pad_token_id=config.pad_token_id, bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
    )  # fmt: skip


def body_state_dict(model: TinyLlama) -> dict[str, Tensor]:
    """The weights of ``model`` without the LM head, named as in ``LlamaModel``."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith("lm_head.")}


def to_llama(model: TinyLlama) -> LlamaForCausalLM:
    """A ``LlamaForCausalLM`` with the weights of ``model`` copied in (Chapter 11)."""
    from transformers import LlamaForCausalLM

    llama = LlamaForCausalLM(llama_config(model.config))
    llama.model.load_state_dict(body_state_dict(model))
    llama.lm_head.load_state_dict(model.lm_head.state_dict())
    return llama.eval()


def from_llama(llama: LlamaForCausalLM) -> TinyLlama:
    """A :class:`TinyLlama` with the weights of ``llama`` copied in (Chapter 11)."""
    model = TinyLlama(lm_config_from_llama(llama.config))
    head = {f"lm_head.{k}": v for k, v in llama.lm_head.state_dict().items()}
    model.load_state_dict({**llama.model.state_dict(), **head})
    return model.eval()
