"""Offline stand-ins for the pretrained models of Chapter 8, each honest about what it can do.

- :func:`tiny_vilt`: a small ``ViltForQuestionAnswering`` trained on shapes-world questions on first use
  and saved with ``save_pretrained`` (model and ``ViltProcessor``), so the online code
  ``ViltProcessor.from_pretrained(folder)`` + ``ViltForQuestionAnswering.from_pretrained(folder)`` runs
  unchanged. Its accuracy per question type is measured on held-out scenes and saved beside it.
- :class:`RetrievalCaptioner`: offline there is no captioning model, so the honest substitute *retrieves*
  the caption of the most similar shapes-world picture under the tiny CLIP. It never generates text.
- :func:`save_random_blip`, :func:`save_random_whisper`: tiny, randomly initialised BLIP and Whisper
  checkpoints in the hub format, for tests of the code paths only; their outputs mean nothing and are
  never shown as results.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmbook.env import fast_kernels
from mmbook.zoo import RECORD, check_settings, model_dir, read_record, trained_path

if TYPE_CHECKING:
    import torch
    from transformers import BertTokenizer, ViltForQuestionAnswering, ViltProcessor

BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

#: How the tiny ViLT is built and trained; a cached model saved with other settings is retrained.
TINY_VILT = {"version": 1, "n_scenes": 6000, "data_seed": 11, "max_shapes": 3, "eval_scenes": 1000,
             "eval_seed": 12, "hidden": 64, "layers": 2, "heads": 4, "image_size": 48, "patch_size": 16,
             "max_length": 40, "steps": 600, "batch_size": 128, "lr": 1e-3, "modality_std": 1.0,
             "position_std": 0.02, "seed": 0}  # fmt: skip


def bert_tokenizer(max_length: int = 40) -> BertTokenizer:
    """A BERT word-piece tokenizer whose vocabulary is the book's words (:data:`mmbook.data.VOCABULARY`),
    built offline; every word of the shapes world is one token (Chapter 8)."""
    from transformers import BertTokenizer

    from mmbook.data import VOCABULARY

    words = [w for w in VOCABULARY if w not in BERT_SPECIALS]
    vocab = {token: i for i, token in enumerate([*BERT_SPECIALS, *words])}
    return BertTokenizer(vocab=vocab, model_max_length=max_length)


def vilt_processor(images: np.ndarray, settings: dict[str, Any] = TINY_VILT) -> ViltProcessor:
    """A ``ViltProcessor``: :func:`bert_tokenizer` and ViLT's PIL image processor, resizing the shorter side
    to ``image_size`` (a multiple of ``patch_size``) and normalising with the channel statistics of
    ``images`` (uint8 N×H×W×3)."""
    from transformers import ViltImageProcessorPil, ViltProcessor

    scaled = images.reshape(-1, 3).astype(np.float64) / 255
    image_processor = ViltImageProcessorPil(
        size={"shortest_edge": settings["image_size"]}, size_divisor=settings["patch_size"],
        image_mean=[float(m) for m in scaled.mean(0)], image_std=[float(s) for s in scaled.std(0)],
    )  # fmt: skip
    return ViltProcessor(image_processor=image_processor, tokenizer=bert_tokenizer(settings["max_length"]))


def vilt_config(tokenizer: Any, settings: dict[str, Any] = TINY_VILT) -> Any:
    """A small ``ViltConfig`` whose classifier has one output per answer of :data:`mmbook.data.ANSWERS`."""
    from transformers import ViltConfig

    from mmbook.data import ANSWERS

    return ViltConfig(
        vocab_size=len(tokenizer), hidden_size=settings["hidden"], num_hidden_layers=settings["layers"],
        num_attention_heads=settings["heads"], intermediate_size=2 * settings["hidden"],
        image_size=settings["image_size"], patch_size=settings["patch_size"],
        max_position_embeddings=settings["max_length"], pad_token_id=tokenizer.pad_token_id,
        num_labels=len(ANSWERS), id2label=dict(enumerate(ANSWERS)), label2id={a: i for i, a in enumerate(ANSWERS)},
    )  # fmt: skip


@dataclass
class QuestionSet:
    """Every question of a shapes-world batch as tensors: one row per question (Chapter 8)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor
    pixel_values: torch.Tensor
    pixel_mask: torch.Tensor
    image_index: torch.Tensor
    labels: torch.Tensor
    types: list[str]

    def batch(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """The model inputs of ``rows``, text cut to the longest question among them."""
        length = int(self.attention_mask[rows].sum(1).max())
        images = self.image_index[rows]
        return {"input_ids": self.input_ids[rows, :length], "attention_mask": self.attention_mask[rows, :length],
                "token_type_ids": self.token_type_ids[rows, :length],
                "pixel_values": self.pixel_values[images], "pixel_mask": self.pixel_mask[images]}  # fmt: skip


def question_set(processor: Any, shapes: Any) -> QuestionSet:
    """All ``shapes.questions`` through ``processor``: each picture processed once, each question tokenised."""
    import torch

    from mmbook.data import ANSWERS, QUESTION_TYPES

    pictures = processor.image_processor(list(shapes.images), return_tensors="pt")
    questions = [q for qs in shapes.questions for q in qs]
    distinct = list(dict.fromkeys(questions))  # questions repeat: tokenise each text once
    text = processor.tokenizer(distinct, padding=True, return_tensors="pt")
    index = {q: i for i, q in enumerate(distinct)}
    row = torch.tensor([index[q] for q in questions])
    per_scene = len(QUESTION_TYPES)
    return QuestionSet(
        input_ids=text["input_ids"][row], attention_mask=text["attention_mask"][row],
        token_type_ids=text["token_type_ids"][row],
        pixel_values=pictures["pixel_values"], pixel_mask=pictures["pixel_mask"],
        image_index=torch.arange(shapes.n).repeat_interleave(per_scene),
        labels=torch.tensor([ANSWERS.index(a) for ans in shapes.answers for a in ans]),
        types=[t for _ in range(shapes.n) for t in QUESTION_TYPES],
    )  # fmt: skip


def vilt_accuracy(model: ViltForQuestionAnswering, questions: QuestionSet, batch_size: int = 512) -> dict[str, float]:
    """Accuracy of ``model`` per question type and overall (``"all"``) on ``questions`` (Chapter 8)."""
    import torch

    model.eval()
    predicted = []
    with torch.inference_mode():
        for start in range(0, len(questions.labels), batch_size):
            rows = torch.arange(start, min(start + batch_size, len(questions.labels)))
            predicted.append(model(**questions.batch(rows)).logits.argmax(-1))
    right = (torch.cat(predicted) == questions.labels).numpy()
    types = np.array(questions.types)
    result = {t: float(right[types == t].mean()) for t in dict.fromkeys(questions.types)}
    result["all"] = float(right.mean())
    return result


def blind_accuracy(train: Any, test: Any) -> dict[str, float]:
    """Accuracy of a *blind* baseline that never looks at the picture, per question type and overall (Chapter 8).

    It answers each test question with the most frequent training answer of the same question text (the
    same words: "how many circles are there?"), or of the same question type when the text is new. A VQA
    model earns credit for looking only where it beats this. ``train`` and ``test`` are shapes-world
    batches (:func:`mmbook.data.make_shapes`).
    """
    from collections import Counter

    from mmbook.data import QUESTION_TYPES

    by_text: dict[str, Counter] = {}
    by_type: dict[str, Counter] = {t: Counter() for t in QUESTION_TYPES}
    for questions, answers in zip(train.questions, train.answers, strict=True):
        for t, q, a in zip(QUESTION_TYPES, questions, answers, strict=True):
            by_text.setdefault(q, Counter())[a] += 1
            by_type[t][a] += 1
    right: dict[str, list[bool]] = {t: [] for t in QUESTION_TYPES}
    for questions, answers in zip(test.questions, test.answers, strict=True):
        for t, q, a in zip(QUESTION_TYPES, questions, answers, strict=True):
            guess = (by_text.get(q) or by_type[t]).most_common(1)[0][0]
            right[t].append(guess == a)
    result = {t: float(np.mean(r)) for t, r in right.items()}
    result["all"] = float(np.mean([x for r in right.values() for x in r]))
    return result


def train_tiny_vilt(folder: Path, settings: dict[str, Any] = TINY_VILT) -> None:
    """Train the tiny ViLT on shapes-world questions and ``save_pretrained`` model and processor (Chapter 8).

    Cross-entropy over the closed answer set (VQAv2 uses soft scores because its answers are crowd-sourced;
    ours have one right answer). AdamW with a one-cycle schedule. Two initial values differ from
    transformers' defaults, which a real ViLT never trains from (it starts from a pretrained ViT): the patch
    position embeddings and the image's class token start at ``position_std`` (0.02, as in ViT) instead of
    zero, and the two modality-type embeddings (text, picture) at ``modality_std`` (1.0) instead of 0.02.
    With the defaults, our runs learned to read only one attribute of the picture (its colour *or* its
    shapes, never both): the question tokens and the patches were too alike for the attention to tell
    them apart early on. The accuracy per question type on ``eval_scenes`` new scenes, the blind
    baseline (:func:`blind_accuracy`) and the training time are saved in ``training.json``.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import ViltForQuestionAnswering

    from mmbook.data import make_shapes

    data = make_shapes(settings["n_scenes"], seed=settings["data_seed"], max_shapes=settings["max_shapes"])
    held_out = make_shapes(settings["eval_scenes"], seed=settings["eval_seed"], max_shapes=settings["max_shapes"])
    processor = vilt_processor(data.images, settings)
    train, test = question_set(processor, data), question_set(processor, held_out)
    torch.manual_seed(settings["seed"])
    model = ViltForQuestionAnswering(vilt_config(processor.tokenizer, settings))
    embeddings = model.vilt.embeddings
    torch.nn.init.trunc_normal_(embeddings.position_embeddings, std=settings["position_std"])
    torch.nn.init.trunc_normal_(embeddings.cls_token, std=settings["position_std"])
    torch.nn.init.normal_(embeddings.token_type_embeddings.weight, std=settings["modality_std"])
    steps, lr = settings["steps"], settings["lr"]
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps, pct_start=0.1)
    generator = torch.Generator().manual_seed(settings["seed"])
    losses = []
    start = time.perf_counter()
    model.train()
    with fast_kernels():  # ViLT gathers its patches by indexing: 4x slower backward in deterministic mode
        for _ in tqdm(range(steps), desc="training the tiny ViLT", leave=False):
            rows = torch.randint(0, len(train.labels), (settings["batch_size"],), generator=generator)
            logits = model(**train.batch(rows)).logits
            loss = torch.nn.functional.cross_entropy(logits, train.labels[rows])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(loss.item())
    seconds = time.perf_counter() - start
    model.eval()
    record = {**settings, "losses": losses, "train_seconds": seconds,
              "accuracy": vilt_accuracy(model, test), "blind": blind_accuracy(data, held_out),
              "parameters": sum(p.numel() for p in model.parameters())}  # fmt: skip
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    (folder / RECORD).write_text(json.dumps(record))


def _load_tiny_vilt(folder: Path) -> tuple[Any, Any]:
    import torch
    from transformers import ViltForQuestionAnswering, ViltProcessor

    check_settings(folder, TINY_VILT)
    processor = ViltProcessor.from_pretrained(folder)
    model = ViltForQuestionAnswering.from_pretrained(folder).eval()
    batch = processor(images=np.zeros((32, 32, 3), np.uint8), text="how many shapes are there?", return_tensors="pt")
    with torch.inference_mode():
        logits = model(**batch).logits
    if not torch.isfinite(logits).all():
        raise ValueError("the saved weights give non-finite logits")
    return model, processor


def tiny_vilt_path() -> Path:
    """Folder of the tiny ViLT: trained on first use (about 20 s on 2 CPU cores), then loaded (Chapter 8)."""
    return trained_path("tiny-vilt", "the tiny ViLT", train_tiny_vilt, _load_tiny_vilt)


def tiny_vilt_record(folder: Path | None = None) -> dict[str, Any]:
    """The tiny ViLT's settings, losses, training time, held-out accuracy per question type and the
    accuracy of the blind baseline (Chapter 8)."""
    return read_record(folder or model_dir("tiny-vilt"))


def tiny_vilt() -> tuple[Any, Any]:
    """The tiny ViLT as ``(ViltForQuestionAnswering, ViltProcessor)``, trained on first use (Chapter 8)."""
    return _load_tiny_vilt(tiny_vilt_path())


# ----------------------------------------------------------------------------------------------------
# Captions offline: retrieval, not generation

GALLERY_SIZE, GALLERY_SEED = 3000, 31


@dataclass
class Retrieved:
    """A retrieval caption: the caption of gallery picture ``index``, its cosine similarity and picture."""

    caption: str
    score: float
    index: int
    image: np.ndarray


class RetrievalCaptioner:
    """Caption a picture by retrieving the caption of the most similar gallery picture (Chapter 8).

    The gallery is shapes-world pictures with their captions, embedded once by the tiny CLIP; a query costs
    one pass of the image tower and one matrix product. The result is always an existing caption of
    *another* picture: it can be right only as far as the gallery holds a similar scene, and it says so.
    """

    label = "retrieval caption (the caption of the most similar gallery picture; nothing was generated)"

    def __init__(self, model: Any, processor: Any, images: np.ndarray, captions: Sequence[str],
                 attributes: Sequence[Any] | None = None) -> None:
        from mmbook import contrastive

        self.model, self.processor = model, processor
        self.images, self.captions, self.attributes = images, list(captions), attributes
        self.embeddings = contrastive.embed_images(model, contrastive.pixels(processor, images))

    def __call__(self, images: Sequence[Any], k: int = 1) -> list[list[Retrieved]]:
        """The ``k`` best retrieval captions of each picture (uint8 arrays or PIL images, any size)."""
        from mmbook import contrastive
        from mmbook.tasks import to_rgb

        arrays = [np.asarray(to_rgb(image)) for image in images]
        pixel_values = self.processor(images=arrays, return_tensors="pt")["pixel_values"]
        query = contrastive.embed_images(self.model, pixel_values)
        scores, found = (query @ self.embeddings.T).topk(k, dim=1)
        return [[Retrieved(self.captions[j], s, j, self.images[j]) for s, j in zip(row_s, row_j, strict=True)]
                for row_s, row_j in zip(scores.tolist(), found.tolist(), strict=True)]


@lru_cache(maxsize=1)
def retrieval_captioner() -> RetrievalCaptioner:
    """The offline captioner: the tiny CLIP over a gallery of 3,000 shapes-world pictures (Chapter 8)."""
    from mmbook.data import make_shapes
    from mmbook.zoo import tiny_clip

    model, processor = tiny_clip()
    gallery = make_shapes(GALLERY_SIZE, seed=GALLERY_SEED)
    return RetrievalCaptioner(model, processor, gallery.images, gallery.captions, gallery.attributes)


def retrieval_precision(captioner: RetrievalCaptioner, shapes: Any) -> dict[str, float]:
    """How right the retrieval captions of ``shapes`` are (Chapter 8).

    ``exact``: the retrieved caption states exactly the query's objects (shape, colour, cell);
    ``objects``: the share of the objects it states that are in the query picture.
    """
    from mmbook.contrastive import scene_key

    if captioner.attributes is None:
        raise ValueError("the captioner's gallery has no attributes to check against")
    found = [best[0].index for best in captioner(list(shapes.images))]
    exact, named = [], []
    for query, j in zip(shapes.attributes, found, strict=True):
        q, g = scene_key(query), scene_key(captioner.attributes[j])
        exact.append(q == g)
        named.append(len(q & g) / len(g))
    return {"exact": float(np.mean(exact)), "objects": float(np.mean(named))}


# ----------------------------------------------------------------------------------------------------
# Random checkpoints for code-path tests only


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


def question_type(question: str) -> str | None:
    """Which of :data:`mmbook.data.QUESTION_TYPES` a question is, from its first words, or ``None`` (Chapter 8).

    Exact for every question that :func:`mmbook.data.make_shapes` writes; used to quote the tiny ViLT's
    measured accuracy for that kind of question next to its answer.
    """
    from mmbook.data import words

    text = " ".join(words(question))
    if text.startswith(("what color", "what colour", "which color", "which colour")):
        return "color"
    if text.startswith(("what shape", "which shape", "what kind of shape")):
        return "shape"
    if text.startswith("how many"):
        return "count"
    if text.startswith(("is the ", "is anything", "is there a shape")):
        return "position"
    if text.startswith(("is there", "do you see")):
        return "exists"
    return None
