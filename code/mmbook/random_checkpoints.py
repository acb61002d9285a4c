"""Random checkpoints for code-path tests only (Chapter 8).

:func:`save_random_blip` and :func:`save_random_whisper` write tiny, randomly initialised BLIP and Whisper
checkpoints in the hub format, so the online captioning and speech-recognition code paths run in tests
with no network. What they generate is noise and is never shown as a result.
"""

from __future__ import annotations

from pathlib import Path

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
