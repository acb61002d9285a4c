"""Random checkpoints for code-path checks only (Chapters 3, 6, 8, 10 and 11).

Each writes a tiny, randomly initialised checkpoint in the hub format of a real model, so the online code
paths run in tests with no network: they load and run through exactly the classes and calls of the real
models. What they generate is noise and is never shown as a result. :mod:`mmbook.simulated_hub` serves
them in place of the hub's checkpoints when ``MMBOOK_SIMULATE_HUB=1``.

- :func:`save_random_gpt2`: ``GPT2LMHeadModel`` with a byte-level BPE tokenizer (Chapters 1, 8, 9).
- :func:`save_random_clip`: ``CLIPModel`` with a ``CLIPProcessor`` and a real ``CLIPTokenizer`` (Chapters 3, 6).
- :func:`save_random_vilt`: ``ViltForQuestionAnswering`` with a ``ViltProcessor`` and an answer list (Chapter 8).
- :func:`save_random_blip`, :func:`save_random_whisper`: BLIP captioning and Whisper (Chapter 8).
- :func:`save_random_llava`: the format of the book's tiny VLM (``LlavaForConditionalGeneration`` with the
  book's word-level tokenizer and chat template), made by :func:`mmbook.vlm.to_transformers` (Chapter 11).
- :func:`save_random_smolvlm`: the format of ``HuggingFaceTB/SmolVLM-256M-Instruct`` (an Idefics3 model: a
  vision tower, a pixel-shuffle connector and a Llama decoder, with an ``Idefics3Processor``), its tokenizer
  a byte-level BPE learnt offline with the Idefics3 special tokens added (Chapter 11).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mmbook import lm, vlm
from mmbook.tiny_vilt import bert_tokenizer


def _own_random_state(save: Callable[..., Path]) -> Callable[..., Path]:
    """Run a ``save_random_*`` builder on a fork of PyTorch's random state: it seeds freely, and the caller's
    generators are left as they were (Chapter 1's rule for everything that makes weights)."""

    @functools.wraps(save)
    def wrapper(*args: Any, **kwargs: Any) -> Path:
        with torch.random.fork_rng():
            return save(*args, **kwargs)

    return wrapper


def _byte_level_bpe(seed: int, vocab_size: int) -> Any:
    """A byte-level BPE (``tokenizers``) trained offline on shapes-world captions: every text encodes."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from mmbook.data import make_shapes

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(make_shapes(200, seed=seed).captions, trainer)
    return bpe


@_own_random_state
def save_random_gpt2(folder: Path, seed: int = 0) -> Path:
    """A randomly initialised, tiny ``GPT2LMHeadModel`` (2 layers, width 32, GPT-2's 1,024 positions) with a
    GPT-2 tokenizer (byte-level BPE, ``<|endoftext|>``) built offline, in ``folder``: the format of
    ``openai-community/gpt2``. What it writes is noise (Chapters 1, 8 and 9)."""
    import tempfile

    from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        vocab, merges = _byte_level_bpe(seed, 400).model.save(tmp)
        tok = GPT2Tokenizer(vocab=vocab, merges=merges, unk_token="<|endoftext|>", bos_token="<|endoftext|>",
                            eos_token="<|endoftext|>")  # fmt: skip
    tok.add_tokens(["<|endoftext|>"], special_tokens=True)
    end = tok.convert_tokens_to_ids("<|endoftext|>")
    config = GPT2Config(vocab_size=len(tok), n_positions=1024, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=end, eos_token_id=end)  # fmt: skip
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    model.generation_config.pad_token_id = end
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return Path(folder)


@_own_random_state
def save_random_clip(folder: Path, seed: int = 0) -> Path:
    """A randomly initialised, tiny ``CLIPModel`` (32-pixel pictures in 8-pixel patches, width 32, 2 layers
    per tower) with a ``CLIPProcessor`` of the PIL image processor and a real ``CLIPTokenizer`` (CLIP's
    vocabulary layout, merges learnt offline from shapes-world captions), in ``folder``: the format of
    ``openai/clip-vit-base-patch32``. Its similarities are noise (Chapters 3 and 6)."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    from mmbook.bpe import clip_style_tokenizer, train_bpe
    from mmbook.data import make_shapes

    tok = clip_style_tokenizer(train_bpe(make_shapes(300, seed=seed).captions, num_merges=200))
    start, end = tok.convert_tokens_to_ids(["<|startoftext|>", "<|endoftext|>"])
    text = {"vocab_size": len(tok), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "max_position_embeddings": 77, "bos_token_id": start, "eos_token_id": end,
            "pad_token_id": end}  # fmt: skip
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "image_size": 32, "patch_size": 8}  # fmt: skip
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
    pixels = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    model.save_pretrained(folder)
    CLIPProcessor(image_processor=pixels, tokenizer=tok).save_pretrained(folder)
    return Path(folder)


#: The answers of the random ViLT: the shapes world's and a few everyday ones (the real checkpoint has 3,129).
VILT_EXTRA_ANSWERS = ("yes", "no", "white", "black", "person", "flag", "shirt", "suit", "0")


@_own_random_state
def save_random_vilt(folder: Path, seed: int = 0) -> Path:
    """A randomly initialised, tiny ``ViltForQuestionAnswering`` (width 32, 2 layers, 32-pixel patches) with a
    ``ViltProcessor`` (ViLT's PIL image processor and a BERT tokenizer of the book's words) and an answer list
    in ``id2label``, scored by one sigmoid per answer as VQAv2's ViLT is, in ``folder``: the format of
    ``dandelin/vilt-b32-finetuned-vqa``. Its answers are noise (Chapters 8 and 10)."""
    from transformers import ViltConfig, ViltForQuestionAnswering, ViltImageProcessorPil, ViltProcessor

    from mmbook.data import ANSWERS

    tok = bert_tokenizer(40)
    answers = list(dict.fromkeys([*ANSWERS, *VILT_EXTRA_ANSWERS]))
    config = ViltConfig(
        vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        image_size=64, patch_size=32, max_position_embeddings=40, pad_token_id=tok.pad_token_id,
        num_labels=len(answers), id2label=dict(enumerate(answers)), label2id={a: i for i, a in enumerate(answers)},
    )  # fmt: skip
    torch.manual_seed(seed)
    model = ViltForQuestionAnswering(config)
    pixels = ViltImageProcessorPil(size={"shortest_edge": 64}, size_divisor=32)
    model.save_pretrained(folder)
    ViltProcessor(image_processor=pixels, tokenizer=tok).save_pretrained(folder)
    return Path(folder)


@_own_random_state
def save_random_blip(folder: Path, seed: int = 0) -> Path:
    """A randomly initialised, tiny ``BlipForConditionalGeneration`` and its ``BlipProcessor`` in
    ``folder``: the format of ``Salesforce/blip-image-captioning-base`` at a 32-pixel size. For tests of
    the captioning code; what it generates is noise (Chapter 8)."""
    import torch
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessorPil, BlipProcessor

    tok = bert_tokenizer(32)
    text = {"vocab_size": len(tok), "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
            "intermediate_size": 64, "max_position_embeddings": 32, "bos_token_id": tok.cls_token_id,
            "eos_token_id": tok.sep_token_id, "sep_token_id": tok.sep_token_id, "pad_token_id": tok.pad_token_id}
    vision = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
              "image_size": 32, "patch_size": 8}  # fmt: skip
    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(BlipConfig(text_config=text, vision_config=vision, projection_dim=32))
    processor = BlipProcessor(image_processor=BlipImageProcessorPil(size={"height": 32, "width": 32}), tokenizer=tok)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return Path(folder)


WHISPER_SPECIALS = ("<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>")


@_own_random_state
def save_random_whisper(folder: Path, seed: int = 0) -> Path:
    """A randomly initialised, tiny ``WhisperForConditionalGeneration`` with a ``WhisperProcessor`` (the real
    feature extractor: 80 log-mel bands of 30-second windows at 16 kHz, and a small byte-level BPE tokenizer)
    in ``folder``. For tests of the speech-recognition code; what it writes is noise (Chapter 8)."""
    import tempfile

    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    with tempfile.TemporaryDirectory() as tmp:
        vocab, merges = _byte_level_bpe(seed, 300).model.save(tmp)
        tok = WhisperTokenizer(vocab=vocab, merges=merges)
    tok.add_tokens(list(WHISPER_SPECIALS), special_tokens=True)
    end, start, _, _, no_timestamps = tok.convert_tokens_to_ids(list(WHISPER_SPECIALS))
    config = WhisperConfig(
        vocab_size=len(tok), num_mel_bins=80, encoder_layers=1, decoder_layers=1, d_model=16,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        max_source_positions=1500, max_target_positions=448, pad_token_id=end, bos_token_id=end,
        eos_token_id=end, decoder_start_token_id=start, suppress_tokens=[], begin_suppress_tokens=[],
    )  # fmt: skip
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config)
    model.generation_config.no_timestamps_token_id = no_timestamps
    model.save_pretrained(folder)
    WhisperProcessor(feature_extractor=WhisperFeatureExtractor(), tokenizer=tok).save_pretrained(folder)
    return Path(folder)


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


@_own_random_state
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


@_own_random_state
def save_random_smolvlm(folder: Path, seed: int = 0) -> Path:
    """A random ``Idefics3ForConditionalGeneration`` (32-pixel pictures in 8-pixel patches, pixel shuffle by
    2: 4 image tokens; no splitting into tiles) with its ``Idefics3Processor``, saved in ``folder``. Its
    tokenizer is a byte-level BPE, as SmolVLM's is, so it spells any question."""
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
        PreTrainedTokenizerFast,
    )

    tok = PreTrainedTokenizerFast(tokenizer_object=_byte_level_bpe(seed, 400), bos_token="<|im_start|>",
                                  eos_token="<end_of_utterance>", pad_token="<|im_end|>", unk_token="<|im_end|>",
                                  extra_special_tokens={"image_token": "<image>"})  # fmt: skip
    tok.add_tokens(["<|im_end|>", "<image>", *IDEFICS3_TOKENS], special_tokens=True)
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
