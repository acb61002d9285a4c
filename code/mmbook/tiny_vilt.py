"""Chapter 8's offline visual question answering: a tiny ViLT trained on shapes-world questions.

:func:`tiny_vilt` returns a small ``ViltForQuestionAnswering`` trained on first use by :func:`train_tiny_vilt`
and saved with ``save_pretrained`` (model and ``ViltProcessor``), so the online code
``ViltProcessor.from_pretrained(folder)`` + ``ViltForQuestionAnswering.from_pretrained(folder)`` runs
unchanged. Its accuracy per question type is measured on held-out scenes (:func:`vilt_accuracy`), beside
the accuracy of a blind guess that never looks at the picture (:func:`blind_accuracy`), and saved with it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmbook import zoo
from mmbook.env import training_state

if TYPE_CHECKING:
    import torch
    from transformers import BertTokenizer, ViltForQuestionAnswering, ViltProcessor

BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

@dataclass(frozen=True)
class TinyViltSettings:
    """How the tiny ViLT is built and trained: data, size, steps and the two initial scales (Chapter 8)."""

    n_scenes: int = 6000
    data_seed: int = 11
    max_shapes: int = 3
    eval_scenes: int = 1000
    eval_seed: int = 12
    hidden: int = 64
    layers: int = 2
    heads: int = 4
    image_size: int = 48
    patch_size: int = 16
    max_length: int = 40
    steps: int = 600
    batch_size: int = 128
    lr: float = 1e-3
    modality_std: float = 1.0
    position_std: float = 0.02
    seed: int = 0


#: The tiny ViLT's settings; a cached model saved with other settings is retrained.
TINY_VILT = TinyViltSettings()


def bert_tokenizer(max_length: int = 40) -> BertTokenizer:
    """A BERT word-piece tokenizer whose vocabulary is the book's words (:data:`mmbook.data.VOCABULARY`),
    built offline; every word of the shapes world is one token (Chapter 8)."""
    from transformers import BertTokenizer

    from mmbook.data import VOCABULARY

    words = [w for w in VOCABULARY if w not in BERT_SPECIALS]
    vocab = {token: i for i, token in enumerate([*BERT_SPECIALS, *words])}
    return BertTokenizer(vocab=vocab, model_max_length=max_length)


def vilt_processor(images: np.ndarray, settings: TinyViltSettings = TINY_VILT) -> ViltProcessor:
    """A ``ViltProcessor``: :func:`bert_tokenizer` and ViLT's PIL image processor, resizing the shorter side
    to ``image_size`` (a multiple of ``patch_size``) and normalising with the channel statistics of
    ``images`` (uint8 N×H×W×3)."""
    from transformers import ViltImageProcessorPil, ViltProcessor

    scaled = images.reshape(-1, 3).astype(np.float64) / 255
    image_processor = ViltImageProcessorPil(
        size={"shortest_edge": settings.image_size}, size_divisor=settings.patch_size,
        image_mean=[float(m) for m in scaled.mean(0)], image_std=[float(s) for s in scaled.std(0)],
    )  # fmt: skip
    return ViltProcessor(image_processor=image_processor, tokenizer=bert_tokenizer(settings.max_length))


def vilt_config(tokenizer: Any, settings: TinyViltSettings = TINY_VILT) -> Any:
    """A small ``ViltConfig`` whose classifier has one output per answer of :data:`mmbook.data.ANSWERS`,
    trained with softmax cross-entropy on one answer per question, as ``problem_type`` records (Chapter 8)."""
    from transformers import ViltConfig

    from mmbook.data import ANSWERS

    return ViltConfig(
        vocab_size=len(tokenizer), hidden_size=settings.hidden, num_hidden_layers=settings.layers,
        num_attention_heads=settings.heads, intermediate_size=2 * settings.hidden,
        image_size=settings.image_size, patch_size=settings.patch_size,
        max_position_embeddings=settings.max_length, pad_token_id=tokenizer.pad_token_id,
        num_labels=len(ANSWERS), id2label=dict(enumerate(ANSWERS)), label2id={a: i for i, a in enumerate(ANSWERS)},
        problem_type="single_label_classification",
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


def init_embeddings(embeddings: Any, position_std: float, modality_std: float) -> None:
    """The tiny ViLT's initial values that differ from transformers' (Chapter 8): patch positions and the
    image's class token at ``position_std``, the two modality-type embeddings at ``modality_std``."""
    import torch

    torch.nn.init.trunc_normal_(embeddings.position_embeddings, std=position_std)
    torch.nn.init.trunc_normal_(embeddings.cls_token, std=position_std)
    torch.nn.init.normal_(embeddings.token_type_embeddings.weight, std=modality_std)


@training_state(threads=None)
def train_tiny_vilt(folder: Path, settings: TinyViltSettings = TINY_VILT) -> dict[str, Any]:
    """Train the tiny ViLT on shapes-world questions and ``save_pretrained`` model and processor (Chapter 8).

    Cross-entropy over the closed answer set (VQAv2 uses soft scores because its answers are crowd-sourced;
    ours have one right answer). AdamW with a one-cycle schedule. Two initial values differ from
    transformers' defaults, which a real ViLT never trains from (it starts from a pretrained ViT): the patch
    position embeddings and the image's class token start at ``position_std`` (0.02, as in ViT) instead of
    zero, and the two modality-type embeddings (text, picture) at ``modality_std`` (1.0) instead of 0.02
    (:func:`init_embeddings`). With the defaults, our run answered colour questions right far less often (counts
    about as well): the question tokens and the patches were too alike for the attention to tell them apart early on
    (Chapter 8's exercise ``ch8-ex-init`` measures how alike at initialisation). Runs inside
    :func:`mmbook.env.training_state` with the caller's thread count and fast (non-deterministic-mode) kernels: ViLT
    gathers its patches by indexing, whose backward is four times slower in deterministic mode. The accuracy per
    question type on ``eval_scenes`` new scenes, the blind baseline (:func:`blind_accuracy`), the losses and the
    training time are returned, for the record that :mod:`mmbook.zoo` saves beside the model.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import ViltForQuestionAnswering

    from mmbook.data import make_shapes

    data = make_shapes(settings.n_scenes, seed=settings.data_seed, max_shapes=settings.max_shapes)
    held_out = make_shapes(settings.eval_scenes, seed=settings.eval_seed, max_shapes=settings.max_shapes)
    processor = vilt_processor(data.images, settings)
    train, test = question_set(processor, data), question_set(processor, held_out)
    torch.manual_seed(settings.seed)
    model = ViltForQuestionAnswering(vilt_config(processor.tokenizer, settings))
    init_embeddings(model.vilt.embeddings, settings.position_std, settings.modality_std)
    steps, lr = settings.steps, settings.lr
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps, pct_start=0.1)
    generator = torch.Generator().manual_seed(settings.seed)
    losses = []
    start = time.perf_counter()
    model.train()
    for _ in tqdm(range(steps), desc="training the tiny ViLT", leave=False):
        rows = torch.randint(0, len(train.labels), (settings.batch_size,), generator=generator)
        logits = model(**train.batch(rows)).logits
        loss = torch.nn.functional.cross_entropy(logits, train.labels[rows])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
    seconds = time.perf_counter() - start
    model.eval()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return {"losses": losses, "train_seconds": seconds, "accuracy": vilt_accuracy(model, test),
            "blind": blind_accuracy(data, held_out), "parameters": sum(p.numel() for p in model.parameters())}


def _load_tiny_vilt(folder: Path) -> tuple[Any, Any]:
    from transformers import ViltForQuestionAnswering, ViltProcessor

    return ViltForQuestionAnswering.from_pretrained(folder).eval(), ViltProcessor.from_pretrained(folder)


def _check_tiny_vilt(loaded: tuple[Any, Any]) -> None:
    import torch

    model, processor = loaded
    batch = processor(images=np.zeros((32, 32, 3), np.uint8), text="how many shapes are there?", return_tensors="pt")
    with torch.inference_mode():
        logits = model(**batch).logits
    if not torch.isfinite(logits).all():
        raise ValueError("the saved weights give non-finite logits")


TINY_VILT_ENTRY = zoo.register(zoo.Entry(
    "tiny-vilt", "the tiny ViLT", TINY_VILT, train_tiny_vilt, _load_tiny_vilt, _check_tiny_vilt,
    code=(init_embeddings, vilt_processor, vilt_config, bert_tokenizer, question_set, "mmbook.tiny_vilt:QuestionSet"),
))  # fmt: skip


def tiny_vilt_path() -> Path:
    """Folder of the tiny ViLT: trained on first use (about 20 s on 2 CPU cores), then loaded (Chapter 8)."""
    return zoo.path("tiny-vilt")


def tiny_vilt_record(folder: Path | None = None) -> dict[str, Any]:
    """The tiny ViLT's record: ``settings``, losses, training time, held-out accuracy per question type and
    the accuracy of the blind baseline; of the model in ``folder`` if given (Chapter 8)."""
    return zoo.read_record(folder) if folder is not None else zoo.record("tiny-vilt")


def tiny_vilt() -> tuple[Any, Any]:
    """The tiny ViLT as ``(ViltForQuestionAnswering, ViltProcessor)``, trained on first use, one copy per
    process (Chapter 8)."""
    return zoo.load("tiny-vilt")
