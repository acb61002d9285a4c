"""PyTorch views of the book's datasets and a collate function that batches them (Chapter 3)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import Dataset

from mmbook.data.digits import Digits
from mmbook.data.shapes import QUESTION_TYPES, Shapes
from mmbook.data.world import ANSWERS

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

_ANSWER_ID = {a: i for i, a in enumerate(ANSWERS)}


class ShapesDataset(Dataset):
    """The shapes world as a torch ``Dataset`` of dicts (Chapter 3).

    ``task="caption"``: one item per image, ``text`` is the caption. ``task="vqa"``: one item per
    question (five per image), ``text`` is the question, with ``answer``, ``answer_id`` (index in
    ``ANSWERS``) and ``question_type``. Every item has ``image`` (float 3×H×W in [0, 1]), ``audio``
    (float T), ``attributes`` and ``index`` (the image's index).
    """

    tasks = ("caption", "vqa")

    def __init__(self, shapes: Shapes, *, task: str = "caption") -> None:
        if task not in self.tasks:
            raise ValueError(f"task must be one of {self.tasks}, got {task!r}")
        self.shapes, self.task = shapes, task
        self.images = torch.from_numpy(shapes.images).permute(0, 3, 1, 2)
        self.audio = torch.from_numpy(shapes.audio)

    def __len__(self) -> int:
        return self.shapes.n * (len(QUESTION_TYPES) if self.task == "vqa" else 1)

    def __getitem__(self, i: int) -> dict[str, Any]:
        index, j = divmod(i, len(QUESTION_TYPES)) if self.task == "vqa" else (i, 0)
        item = {
            "image": self.images[index].float() / 255,
            "audio": self.audio[index],
            "attributes": self.shapes.attributes[index],
            "index": index,
        }
        if self.task == "caption":
            item["text"] = self.shapes.captions[index]
        else:
            answer = self.shapes.answers[index][j]
            item |= {
                "text": self.shapes.questions[index][j],
                "answer": answer,
                "answer_id": _ANSWER_ID[answer],
                "question_type": QUESTION_TYPES[j],
            }
        return item


class DigitsDataset(Dataset):
    """The digits as a torch ``Dataset`` of dicts (Chapter 1).

    Items hold ``image`` (float 1×8×8 in [0, 1]), ``label``, ``audio``, ``word``, ``hint`` and ``text``,
    which is the hint (``text="hint"``) or the number word (``text="word"``).
    """

    texts = ("hint", "word")

    def __init__(self, digits: Digits, *, text: str = "hint") -> None:
        if text not in self.texts:
            raise ValueError(f"text must be one of {self.texts}, got {text!r}")
        self.digits, self.text = digits, text
        self.images = torch.from_numpy(digits.images).unsqueeze(1)
        self.audio = torch.from_numpy(digits.audio)

    def __len__(self) -> int:
        return self.digits.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        word, hint = self.digits.words[i], self.digits.hints[i]
        return {
            "image": self.images[i],
            "label": int(self.digits.labels[i]),
            "audio": self.audio[i],
            "word": word,
            "hint": hint,
            "text": hint if self.text == "hint" else word,
        }


def collate(
    batch: list[dict[str, Any]],
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
    max_length: int | None = None,
) -> dict[str, Any]:
    """Batch dataset items: stack tensors, make ints a tensor, keep the rest as lists (Chapter 3).

    With a ``tokenizer`` the ``text`` field is also encoded into ``input_ids`` and ``attention_mask``,
    padded to the longest text, or to ``max_length`` when given. In a ``DataLoader`` pass
    ``collate_fn=functools.partial(collate, tokenizer=tok)``.
    """
    out: dict[str, Any] = {}
    for key in batch[0]:
        values = [item[key] for item in batch]
        if isinstance(values[0], torch.Tensor):
            out[key] = torch.stack(values)
        elif isinstance(values[0], int):
            out[key] = torch.tensor(values)
        else:
            out[key] = values
    if tokenizer is not None:
        encoded = tokenizer(
            out["text"],
            padding="max_length" if max_length else "longest",
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        out["input_ids"], out["attention_mask"] = encoded["input_ids"], encoded["attention_mask"]
    return out
