"""Random checkpoints for code-path tests only (Chapters 8 and 11).

Each writes a tiny, randomly initialised checkpoint in the hub format of a real model, so the online code
paths run in tests with no network: they load and run through exactly the classes and calls of the real
models. What they generate is noise and is never shown as a result.

- :func:`save_random_blip`, :func:`save_random_whisper`: BLIP captioning and Whisper (Chapter 8).
- :func:`save_random_llava`: the format of the book's tiny VLM (``LlavaForConditionalGeneration`` with the
  book's word-level tokenizer and chat template), made by :func:`mmbook.vlm.to_transformers` (Chapter 11).
- :func:`save_random_smolvlm`: the format of ``HuggingFaceTB/SmolVLM-256M-Instruct`` (an Idefics3 model: a
  vision tower, a pixel-shuffle connector and a Llama decoder, with an ``Idefics3Processor``), its tokenizer
  built from the book's one with the Idefics3 special tokens added (Chapter 11).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from mmbook import lm, vlm
from mmbook.tiny_vilt import bert_tokenizer


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


def save_random_whisper(folder: Path, seed: int = 0) -> Path:
    """A randomly initialised, tiny ``WhisperForConditionalGeneration`` with a ``WhisperProcessor`` (the real
    feature extractor: 80 log-mel bands of 30-second windows at 16 kHz, and a small byte-level BPE tokenizer)
    in ``folder``. For tests of the speech-recognition code; what it writes is noise (Chapter 8)."""
    import tempfile

    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    from mmbook.data import make_shapes

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(make_shapes(200, seed=seed).captions,
                            trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    with tempfile.TemporaryDirectory() as tmp:
        vocab, merges = bpe.model.save(tmp)
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
