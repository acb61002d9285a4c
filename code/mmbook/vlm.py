"""A LLaVA-style vision-language model, from scratch: vision tower → projector → image tokens → causal LM
(Chapter 11).

:class:`TinyVLM` reads a picture and a chat prompt whose ``<image>`` placeholder stands for
:attr:`TinyVLM.n_image_tokens` positions:

1. the frozen vision tower of the book's tiny CLIP (Chapter 6) turns the 48-pixel picture into one feature
   per 16-pixel patch plus the class token (``(48/16)^2 + 1 = 10`` vectors), read at layer
   ``feature_layer`` of its hidden states (LLaVA reads the penultimate, ``-2``; a tuple of layers is
   concatenated feature-wise, as ``transformers`` does with a list);
2. the projector, two linear layers with a GELU between, maps each vector to the LM's width: image tokens;
3. the image tokens replace the ``<image>`` placeholders of the embedded prompt, in order;
4. :class:`mmbook.lm.TinyLlama` predicts the next token; the loss is the next-token cross-entropy over the
   labels that are not ``-100`` (the answer tokens).

The chat template (:data:`mmbook.lm.CHAT_TEMPLATE`) writes the question first and ``<image>`` after it, so
the image tokens can attend to the question. ``strategy="full"`` keeps the class token (10 image tokens),
``"default"`` drops it (9), as ``transformers``' ``vision_feature_select_strategy``. :func:`to_transformers`
copies the weights into a ``LlavaForConditionalGeneration`` with a ``LlavaProcessor`` (tests prove logits
and gradients equal);
:func:`from_transformers` goes back. :func:`ask` and :func:`stream_answer` answer one question about one
picture with greedy decoding, checking their inputs (``ValueError`` with a clear message).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from mmbook.lm import LMConfig, TinyLlama, check_text, llama_config, lm_config_from_llama, next_token_loss

if TYPE_CHECKING:
    from transformers import CLIPVisionModel, LlavaForConditionalGeneration, LlavaProcessor, PreTrainedTokenizerFast

STRATEGIES: tuple[str, ...] = ("default", "full")
#: The most tokens :func:`ask` and :func:`stream_answer` generate.
MAX_NEW_TOKENS = 64
MAX_QUESTION_CHARS = 500
MAX_PICTURE_SIDE = 4096


class Projector(nn.Module):
    """LLaVA-1.5's projector: ``linear_2(gelu(linear_1(v)))`` from the vision width to the LM's (Chapter 11)."""

    def __init__(self, vision_hidden: int, text_hidden: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(vision_hidden, text_hidden)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(text_hidden, text_hidden)

    def forward(self, features: Tensor) -> Tensor:
        return self.linear_2(self.act(self.linear_1(features)))


@dataclass
class VLMOutput:
    """What :meth:`TinyVLM.forward` returns: logits B×T×V and, given labels, the masked next-token loss."""

    logits: Tensor
    loss: Tensor | None = None


class TinyVLM(nn.Module):
    """Vision tower (frozen) → :class:`Projector` → image tokens spliced at ``<image>`` → :class:`TinyLlama`
    (Chapter 11)."""

    def __init__(
        self,
        vision_tower: CLIPVisionModel,
        language_model: TinyLlama,
        image_token_id: int,
        *,
        feature_layer: int | tuple[int, ...] = -2,
        strategy: str = "full",
    ) -> None:
        super().__init__()
        layers = (feature_layer,) if isinstance(feature_layer, int) else tuple(feature_layer)
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        self.vision_tower = vision_tower.eval().requires_grad_(False)
        vision = vision_tower.config
        self.projector = Projector(vision.hidden_size * len(layers), language_model.config.hidden)
        self.language_model = language_model
        self.image_token_id, self.feature_layer, self.strategy = image_token_id, feature_layer, strategy
        self.image_size, self.patch_size = vision.image_size, vision.patch_size

    @property
    def n_image_tokens(self) -> int:
        """Image tokens per picture: one per patch, plus the class token when ``strategy == "full"``."""
        return (self.image_size // self.patch_size) ** 2 + (self.strategy == "full")

    def train(self, mode: bool = True) -> TinyVLM:
        super().train(mode)
        self.vision_tower.eval()  # frozen: never in training mode
        return self

    def image_features(self, pixel_values: Tensor) -> Tensor:
        """The vision tower's hidden states at ``feature_layer`` (B×N×D_vision; several layers are
        concatenated feature-wise), class token dropped when ``strategy == "default"``; no gradient flows
        into the frozen tower."""
        expected = (3, self.image_size, self.image_size)
        if pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != expected:
            raise ValueError(f"pixel_values must be B×{expected}, got {tuple(pixel_values.shape)}")
        with torch.no_grad():
            hidden = self.vision_tower(pixel_values=pixel_values, output_hidden_states=True).hidden_states
        layers = [self.feature_layer] if isinstance(self.feature_layer, int) else self.feature_layer
        features = torch.cat([hidden[i] for i in layers], dim=-1)
        return features[:, 1:] if self.strategy == "default" else features

    def embed(self, input_ids: Tensor, image_features: Tensor) -> Tensor:
        """Embedded tokens with the projected ``image_features`` written over the ``<image>`` positions."""
        embeds = self.language_model.embed_tokens(input_ids)
        slots = input_ids == self.image_token_id
        tokens = self.projector(image_features.to(embeds.dtype))
        if int(slots.sum()) != tokens.shape[0] * tokens.shape[1]:
            raise ValueError(
                f"the prompts hold {int(slots.sum())} <image> tokens but the pictures give "
                f"{tokens.shape[0]} × {tokens.shape[1]}: expand each <image> into {self.n_image_tokens}"
            )
        return embeds.masked_scatter(slots[..., None], tokens.reshape(-1, tokens.shape[-1]))

    def forward(
        self,
        pixel_values: Tensor | None,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        *,
        image_features: Tensor | None = None,
        position_ids: Tensor | None = None,
    ) -> VLMOutput:
        """Logits of every position and, given ``labels`` (-100 where no loss), the mean next-token loss.

        Pass ``image_features`` (from :meth:`image_features`) instead of ``pixel_values`` to skip the frozen
        tower, as the trainer does.
        """
        if image_features is None:
            if pixel_values is None:
                raise ValueError("a picture is needed: pass pixel_values or image_features")
            image_features = self.image_features(pixel_values)
        embeds = self.embed(input_ids, image_features)
        logits = self.language_model.forward_embeds(embeds, attention_mask, position_ids)
        return VLMOutput(logits, None if labels is None else next_token_loss(logits, labels))

    @torch.no_grad()
    def generate(
        self,
        pixel_values: Tensor,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        *,
        max_new_tokens: int = 32,
        eos_token_id: int | None = None,
        on_token: Callable[[Tensor], None] | None = None,
    ) -> Tensor:
        """Greedy decoding: at most ``max_new_tokens`` new tokens (B×n), stopping when every row has ended
        with ``eos_token_id``; ended rows are filled with it. Prompts must be padded on the left (positions
        follow the attention mask). ``on_token`` receives each step's B new tokens, for streaming."""
        if not (isinstance(max_new_tokens, int) and 1 <= max_new_tokens <= 4096):
            raise ValueError(f"max_new_tokens must be an integer from 1 to 4096, got {max_new_tokens!r}")
        eos = self.language_model.config.eos_token_id if eos_token_id is None else eos_token_id
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        features = self.image_features(pixel_values)
        embeds = self.embed(input_ids, features)
        mask = attention_mask.clone()
        done = torch.zeros(len(input_ids), dtype=torch.bool, device=input_ids.device)
        new = []
        for _ in range(max_new_tokens):
            positions = (mask.cumsum(1) - 1).clamp(min=0)
            logits = self.language_model.forward_embeds(embeds, mask, positions)
            token = logits[:, -1].argmax(-1).masked_fill(done, eos)
            new.append(token)
            if on_token is not None:
                on_token(token)
            done |= token == eos
            if bool(done.all()):
                break
            embeds = torch.cat([embeds, self.language_model.embed_tokens(token)[:, None]], dim=1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        return torch.stack(new, dim=1)


def expand_image(text: str, n_image_tokens: int, image_token: str = "<image>") -> str:
    """``text`` with each ``<image>`` repeated ``n_image_tokens`` times, as ``LlavaProcessor`` does."""
    return text.replace(image_token, image_token * n_image_tokens)


def prompt_text(tokenizer: PreTrainedTokenizerFast, question: str, answer: str | None = None) -> str:
    """The chat-template text of one picture and ``question`` (with ``answer`` and ``</s>`` when given,
    else ending in the assistant's marker) (Chapter 11)."""
    user = {"role": "user", "content": [{"type": "image"}, *([{"type": "text", "text": question}] if question else [])]}
    messages = [user] if answer is None else [user, {"role": "assistant", "content": answer}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=answer is None)


# ----------------------------------------------------------------------------------------------------
# to and from transformers


def llava_config(model: TinyVLM, tokenizer: PreTrainedTokenizerFast) -> Any:
    """The ``LlavaConfig`` of ``model``: same tower, projector, LM, feature layer and strategy (Chapter 11)."""
    from transformers import LlavaConfig

    text = llama_config(model.language_model.config)
    return LlavaConfig(
        vision_config=model.vision_tower.config, text_config=text, image_token_id=model.image_token_id,
        projector_hidden_act="gelu", vision_feature_select_strategy=model.strategy,
        vision_feature_layer=model.feature_layer if isinstance(model.feature_layer, int) else list(model.feature_layer),
        image_seq_length=model.n_image_tokens,
        multimodal_projector_bias=True, tie_word_embeddings=False, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip


def to_transformers(
    model: TinyVLM, tokenizer: PreTrainedTokenizerFast, image_processor: Any
) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """A ``LlavaForConditionalGeneration`` with the weights of ``model`` and the ``LlavaProcessor`` that feeds
    it: ``image_processor``, ``tokenizer`` and its chat template (Chapter 11)."""
    from transformers import GenerationConfig, LlavaForConditionalGeneration, LlavaProcessor

    llava = LlavaForConditionalGeneration(llava_config(model, tokenizer))
    inner = llava.model
    inner.vision_tower.load_state_dict(model.vision_tower.state_dict())
    inner.multi_modal_projector.load_state_dict(model.projector.state_dict())
    lm = model.language_model
    inner.language_model.load_state_dict({k: v for k, v in lm.state_dict().items() if not k.startswith("lm_head.")})
    llava.lm_head.load_state_dict(lm.lm_head.state_dict())
    llava.generation_config = GenerationConfig(
        do_sample=False, max_new_tokens=32, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
    )  # fmt: skip
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=tokenizer.chat_template,
        patch_size=model.patch_size, vision_feature_select_strategy=model.strategy, num_additional_image_tokens=1,
    )  # fmt: skip
    return llava.eval(), processor


def from_transformers(llava: LlavaForConditionalGeneration) -> TinyVLM:
    """A :class:`TinyVLM` with the weights of a ``LlavaForConditionalGeneration`` (Chapter 11)."""
    from transformers import CLIPVisionModel

    config = llava.config
    layer = config.vision_feature_layer
    layer = layer if isinstance(layer, int) else tuple(layer)
    if config.vision_feature_select_strategy not in STRATEGIES:
        raise ValueError("TinyVLM reads features with the 'default' or 'full' strategy")
    vision = CLIPVisionModel(config.vision_config)
    vision.load_state_dict(llava.model.vision_tower.state_dict())
    lm = TinyLlama(lm_config_from_llama(config.text_config))
    head = {f"lm_head.{k}": v for k, v in llava.lm_head.state_dict().items()}
    lm.load_state_dict({**llava.model.language_model.state_dict(), **head})
    model = TinyVLM(vision, lm, config.image_token_id, feature_layer=layer,
                    strategy=config.vision_feature_select_strategy)  # fmt: skip
    model.projector.load_state_dict(llava.model.multi_modal_projector.state_dict())
    return model.eval()


def new_language_model(tokenizer: PreTrainedTokenizerFast, **sizes: int) -> TinyLlama:
    """A randomly initialised :class:`TinyLlama` for ``tokenizer`` (``sizes``: fields of :class:`LMConfig`)."""
    config = LMConfig(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, **sizes,
    )  # fmt: skip
    return TinyLlama(config)


# ----------------------------------------------------------------------------------------------------
# asking one question about one picture


def check_picture(picture: Any) -> np.ndarray:
    """``picture`` (a PIL image or an H×W×3 uint8 array) as an RGB array, else a ``ValueError``."""
    if picture is None:
        raise ValueError("no picture: give an image to ask about")
    if hasattr(picture, "convert") and hasattr(picture, "size"):  # a PIL image
        picture = np.asarray(picture.convert("RGB"))
    if not isinstance(picture, np.ndarray):
        raise ValueError(f"the picture must be a PIL image or a numpy array, got {type(picture).__name__}")
    if picture.ndim != 3 or picture.shape[2] != 3 or picture.dtype != np.uint8:
        raise ValueError(f"the picture must be an H×W×3 uint8 array, got shape {picture.shape} {picture.dtype}")
    if not (1 <= min(picture.shape[:2]) and max(picture.shape[:2]) <= MAX_PICTURE_SIDE):
        raise ValueError(f"the picture's sides must be 1 to {MAX_PICTURE_SIDE} pixels, got {picture.shape[:2]}")
    return picture


def _prepare(
    model: TinyVLM, processor: Any, picture: Any, question: str, max_new_tokens: int
) -> tuple[Tensor, Tensor]:
    picture = check_picture(picture)
    check_text(question, MAX_QUESTION_CHARS)
    if not (isinstance(max_new_tokens, int) and 1 <= max_new_tokens <= MAX_NEW_TOKENS):
        raise ValueError(f"max_new_tokens must be an integer from 1 to {MAX_NEW_TOKENS}, got {max_new_tokens!r}")
    pixels = processor.image_processor(images=[picture], return_tensors="pt")["pixel_values"]
    text = expand_image(prompt_text(processor.tokenizer, question), model.n_image_tokens)
    return pixels, processor.tokenizer(text, return_tensors="pt")["input_ids"]


def stream_answer(
    model: TinyVLM, processor: Any, picture: Any, question: str, max_new_tokens: int = 32
) -> Iterator[str]:
    """The answer to ``question`` about ``picture``, greedily, yielded as it grows: the text so far after each
    new word (Chapter 11; the chat app streams it)."""
    pixels, ids = _prepare(model, processor, picture, question, max_new_tokens)
    tok = processor.tokenizer
    model.eval()
    answer_ids: list[int] = []
    for _ in range(max_new_tokens):  # one token per call keeps the generator lazy
        step_ids = torch.cat([ids, torch.tensor([answer_ids], dtype=ids.dtype)], dim=1)
        token = int(model.generate(pixels, step_ids, max_new_tokens=1)[0, 0])
        if token == tok.eos_token_id:
            return
        answer_ids.append(token)
        yield tok.decode(answer_ids, skip_special_tokens=True)


def ask(model: TinyVLM, processor: Any, picture: Any, question: str, max_new_tokens: int = 32) -> str:
    """The greedy answer of ``model`` to ``question`` about ``picture`` (Chapter 11)."""
    pixels, ids = _prepare(model, processor, picture, question, max_new_tokens)
    model.eval()
    new = model.generate(pixels, ids, max_new_tokens=max_new_tokens, eos_token_id=processor.tokenizer.eos_token_id)
    return processor.tokenizer.decode(new[0], skip_special_tokens=True).strip()
