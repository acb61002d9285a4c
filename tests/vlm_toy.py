"""Small random-weight vision-language checkpoints for code-path tests (tests/test_apps_vlm_chat.py,
tests/test_hub.py): what they generate is noise, but they load and run through exactly the classes and
calls of the real models.

- :func:`save_random_llava`: the format of the book's tiny VLM (``LlavaForConditionalGeneration`` with the
  book's word-level tokenizer and chat template), made by :func:`mmbook.vlm.to_transformers`.
- :func:`save_random_smolvlm`: the format of ``HuggingFaceTB/SmolVLM-256M-Instruct`` (an Idefics3 model: a
  vision tower, a pixel-shuffle connector and a Llama decoder, with an ``Idefics3Processor``), its tokenizer
  built from the book's one with the Idefics3 special tokens added.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from mmbook import lm, vlm

#: The chat template of SmolVLM's processor (``transformers.models.smolvlm.processing_smolvlm``), images only.
SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
IDEFICS3_TOKENS = ("<|im_start|>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>",
                   *(f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)))  # fmt: skip


def save_random_llava(folder: Path, seed: int = 0) -> Path:
    """A random ``LlavaForConditionalGeneration`` in the tiny VLM's format (48-pixel pictures, 10 image
    tokens, the book's tokenizer), with its ``LlavaProcessor``, saved in ``folder``."""
    from transformers import CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    tok = lm.tokenizer()
    tower = CLIPVisionModel(CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                             num_attention_heads=2, image_size=48, patch_size=16))  # fmt: skip
    model = vlm.TinyVLM(tower, vlm.new_language_model(tok, hidden=16, layers=1, heads=2, intermediate=32),
                        tok.image_token_id)  # fmt: skip
    pixels = CLIPImageProcessorPil(size={"shortest_edge": 48}, crop_size={"height": 48, "width": 48})
    llava, processor = vlm.to_transformers(model, tok, pixels)
    llava.save_pretrained(folder)
    processor.save_pretrained(folder)
    return Path(folder)


def save_random_smolvlm(folder: Path, seed: int = 0) -> Path:
    """A random ``Idefics3ForConditionalGeneration`` (32-pixel pictures in 8-pixel patches, pixel shuffle by
    2: 4 image tokens; no splitting into tiles) with its ``Idefics3Processor``, saved in ``folder``."""
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
    )

    tok = copy.deepcopy(lm.tokenizer())
    tok.add_tokens(list(IDEFICS3_TOKENS), special_tokens=True)
    pixels = Idefics3ImageProcessorPil(do_image_splitting=False, size={"longest_edge": 32},
                                       max_image_size={"longest_edge": 32})  # fmt: skip
    processor = Idefics3Processor(image_processor=pixels, tokenizer=tok, image_seq_len=4,
                                  chat_template=SMOLVLM_TEMPLATE)  # fmt: skip
    eou = tok.convert_tokens_to_ids("<end_of_utterance>")
    text = {"model_type": "llama", "vocab_size": len(tok), "hidden_size": 16, "intermediate_size": 32,
            "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2,
            "max_position_embeddings": 128, "pad_token_id": tok.pad_token_id, "bos_token_id": tok.bos_token_id,
            "eos_token_id": eou}  # fmt: skip
    vision = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
              "image_size": 32, "patch_size": 8}  # fmt: skip
    config = Idefics3Config(vision_config=vision, text_config=text, scale_factor=2,
                            image_token_id=processor.image_token_id)  # fmt: skip
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config)
    model.generation_config.eos_token_id = eou
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return Path(folder)
