"""A multimodal retrieval-augmented shop assistant over a shapes-world catalogue (Chapter 12).

- :func:`catalogue`: one product per (shape, colour) pair of the training split, with a price, a stock
  count and what it is for, drawn deterministically from a seed.
- :class:`Retriever`: the tiny CLIP embeds every product's name once; a picture retrieves the products
  nearest its image embedding, and a question that names a colour ("do you have this in blue?") retrieves
  the product nearest the text "a blue <shape of the picture's product>".
- :func:`compose`: the answer, written by a template from the retrieved facts only. The tiny VLM cannot
  read the facts: its tokenizer is word-level and closed (:data:`mmbook.lm.VOCABULARY` has no digits, no
  "price", "stock" or "dollars"), so a prompt holding a price turns into ``<unk>`` tokens. The assistant
  therefore *composes*: retrieval recognises the product and supplies its facts, a template answers.
- :func:`rag_prompt`: the same facts written into a prompt for a real VLM (SmolVLM online, Chapter 11).
- :func:`evaluate`: answer accuracy with retrieval, without it (the best guess from no facts) and with the
  retrieved facts swapped for another product's, on held-out pictures.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mmbook import contrastive
from mmbook.data import make_shapes, words
from mmbook.data.shapes import COLORS, TRAIN_COMBINATIONS
from mmbook.errors import InputError

#: What a product is for, one phrase per shape kind.
USES: dict[str, tuple[str, ...]] = {
    "circle": ("a coaster", "a clock face", "a badge"),
    "square": ("a tile", "a note pad", "a picture frame"),
    "triangle": ("a warning sign", "a pennant", "a bookend"),
    "cross": ("a first-aid kit", "a window grille", "a hook"),
    "diamond": ("a kite", "a pendant", "a floor marker"),
    "star": ("a decoration", "a sticker", "a medal"),
}
#: The four kinds of question the assistant answers, with an example of each.
QUESTIONS: dict[str, str] = {
    "price": "how much is this?",
    "stock": "is this in stock?",
    "use": "what is this for?",
    "variant": "do you have this in {color}?",
}
CATALOGUE_SEED = 12
#: Held-out pictures: seeds that no book model trained or was measured on.
EVAL_SEED = 5151


@dataclass(frozen=True)
class Product:
    """One catalogue entry (Chapter 12)."""

    shape: str
    color: str
    price: int
    stock: int
    use: str

    @property
    def name(self) -> str:
        """``"red circle"``."""
        return f"{self.color} {self.shape}"

    def facts(self) -> str:
        """The entry as one line of text, as a prompt carries it."""
        stock = f"{self.stock} in stock" if self.stock else "out of stock"
        return f"{self.name}: {self.price} dollars, {stock}, used as {self.use}"


def catalogue(seed: int = CATALOGUE_SEED) -> list[Product]:
    """One product per training (shape, colour) pair, prices 3 to 40 dollars, stock 0 to 9 with about a
    quarter sold out, the same for the same ``seed`` (Chapter 12)."""
    r = random.Random(seed)
    items = []
    for shape, color in TRAIN_COMBINATIONS:
        stock = 0 if r.random() < 0.25 else r.randint(1, 9)
        items.append(Product(shape, color, r.randint(3, 40), stock, r.choice(USES.get(shape, ("a toy",)))))
    return items


def question_kind(question: str) -> tuple[str, str | None]:
    """The kind of ``question`` (a key of :data:`QUESTIONS`) and the colour it names, if any, else an
    :class:`~mmbook.errors.InputError` (Chapter 12)."""
    said = words(question)
    color = next((w for w in said if w in COLORS), None)
    if color is not None:
        return "variant", color
    if "much" in said or "price" in said or "cost" in said:
        return "price", None
    if "stock" in said or "available" in said:
        return "stock", None
    if "for" in said or "use" in said:
        return "use", None
    raise InputError("Ask about the price, the stock, what it is for, or another colour "
                     "(e.g. 'do you have this in blue?').")  # fmt: skip


class Retriever:
    """The catalogue's product names embedded once by a CLIP model; pictures and colour questions
    retrieve products by cosine similarity (Chapter 12)."""

    def __init__(self, model: Any, processor: Any, products: list[Product]) -> None:
        self.model, self.processor, self.products = model, processor, products
        ids, mask = contrastive.tokens(processor, [f"a {p.name}" for p in products])
        self.keys = contrastive.embed_texts(model, ids.to(model.device), mask.to(model.device))

    @torch.no_grad()
    def by_pictures(self, images: np.ndarray, k: int = 1) -> list[list[Product]]:
        """The ``k`` products nearest each picture, best first."""
        if not 1 <= k <= len(self.products):
            raise InputError(f"k must be from 1 to {len(self.products)}, got {k}.")
        pixels = contrastive.pixels(self.processor, images).to(self.model.device)
        scores = contrastive.embed_images(self.model, pixels) @ self.keys.T
        return [[self.products[j] for j in row] for row in scores.topk(k, dim=1).indices.tolist()]

    @torch.no_grad()
    def by_name(self, color: str, shape: str) -> Product:
        """The product nearest the text "a <color> <shape>" (a colour the shop does not sell in that
        shape retrieves its nearest neighbour, which :func:`compose` checks)."""
        ids, mask = contrastive.tokens(self.processor, [f"a {color} {shape}"])
        query = contrastive.embed_texts(self.model, ids.to(self.model.device), mask.to(self.model.device))
        return self.products[int((query @ self.keys.T).argmax())]

    def retrieve(self, image: np.ndarray, question: str, vlm: tuple[Any, Any] | None = None) -> list[Product]:
        """The facts for one picture and one question: the picture's product (recognised by ``vlm``, the
        tiny VLM and its processor, when given: :func:`vlm_recognise`), then for a colour question the
        product of that colour and shape."""
        seen = (vlm_recognise(self, vlm, image[None]) if vlm else self.by_pictures(image[None])[0])[0]
        kind, color = question_kind(question)
        if kind == "variant" and color is not None:
            return [seen, self.by_name(color, seen.shape)]
        return [seen]


@dataclass(frozen=True)
class Answer:
    """An answer's text and the fact it states (``(kind, value)``), which the evaluation compares."""

    text: str
    fact: tuple[str, Any]


def compose(question: str, facts: list[Product]) -> Answer:
    """The answer to ``question`` written from ``facts`` alone (``facts[0]`` is the product in the
    picture; a colour question looks for that colour among the facts) (Chapter 12)."""
    if not facts:
        raise InputError("No catalogue facts were retrieved, so there is nothing to answer from.")
    kind, color = question_kind(question)
    item = facts[0]
    if kind == "price":
        return Answer(f"The {item.name} costs {item.price} dollars.", ("price", item.price))
    if kind == "stock":
        if item.stock:
            return Answer(f"Yes, {item.stock} of the {item.name} are in stock.", ("stock", True))
        return Answer(f"Sorry, the {item.name} is out of stock.", ("stock", False))
    if kind == "use":
        return Answer(f"The {item.name} is used as {item.use}.", ("use", item.use))
    wanted = next((p for p in facts if p.color == color and p.shape == item.shape), None)
    if wanted is None:
        return Answer(f"Sorry, we do not sell a {color} {item.shape}.", ("variant", False))
    if not wanted.stock:
        return Answer(f"We sell the {wanted.name}, but it is out of stock.", ("variant", False))
    return Answer(f"Yes, the {wanted.name} is in stock at {wanted.price} dollars.", ("variant", True))


def truth(question: str, shape: str, color: str, products: list[Product]) -> tuple[str, Any]:
    """The fact a right answer states about the pictured ``(shape, color)`` (Chapter 12)."""
    by_key = {(p.shape, p.color): p for p in products}
    facts = [by_key[(shape, color)]]
    kind, asked = question_kind(question)
    if kind == "variant" and (shape, asked) in by_key:
        facts.append(by_key[(shape, asked)])
    return compose(question, facts).fact


def blind_answer(question: str, products: list[Product]) -> tuple[str, Any]:
    """The best fact an assistant without the catalogue's rows can state: the most common value of each
    kind over the catalogue (a model's prior, at its most favourable) (Chapter 12)."""
    kind, _ = question_kind(question)
    if kind == "price":
        return ("price", Counter(p.price for p in products).most_common(1)[0][0])
    if kind == "use":
        return ("use", Counter(p.use for p in products).most_common(1)[0][0])
    return (kind, sum(p.stock > 0 for p in products) * 2 >= len(products))


def rag_prompt(question: str, facts: list[Product]) -> str:
    """The question with the retrieved facts in front, for a VLM whose tokenizer spells any word
    (SmolVLM, Chapter 11) (Chapter 12)."""
    lines = "\n".join(f"- {p.facts()}" for p in facts)
    return (f"Shop catalogue facts:\n{lines}\nAnswer the customer's question about the picture using "
            f"only these facts. Question: {question}")  # fmt: skip


def eval_set(n: int, seed: int = EVAL_SEED) -> tuple[np.ndarray, list[tuple[int, str, str, str]]]:
    """``n`` held-out one-shape pictures and one question each, kinds in turn: ``(pictures, [(picture,
    question, shape, color)])`` (Chapter 12)."""
    scenes = make_shapes(n, seed=seed, max_shapes=1, split="train")
    r = random.Random(seed)
    kinds = list(QUESTIONS)
    rows = []
    for i, objects in enumerate(scenes.attributes):
        o = objects[0]
        others = [c for c in COLORS if c != o["color"]]
        question = QUESTIONS[kinds[i % len(kinds)]].format(color=r.choice(others))
        rows.append((i, question, o["shape"], o["color"]))
    return scenes.images, rows


def vlm_recognise(retriever: Retriever, vlm: tuple[Any, Any], images: np.ndarray) -> list[Product]:
    """The product each picture shows as the tiny VLM names it ("describe the picture."), looked up by
    :meth:`Retriever.by_name`; the CLIP picture retrieval where its answer names no product (Chapter 12)."""
    from mmbook import vlm as vlm_module
    from mmbook.data.instruct import DESCRIBE_QUESTION, named_pairs

    found = []
    for image in images:
        named = named_pairs(vlm_module.ask(*vlm, image, DESCRIBE_QUESTION, 6))
        found.append(retriever.by_name(named[0][1], named[0][0]) if named
                     else retriever.by_pictures(image[None])[0][0])  # fmt: skip
    return found


def evaluate(
    retriever: Retriever, n: int = 200, seed: int = EVAL_SEED, vlm: tuple[Any, Any] | None = None
) -> dict[str, float]:
    """Answer accuracy on :func:`eval_set` (Chapter 12).

    ``retrieval``: facts from :meth:`Retriever.retrieve`; ``none``: :func:`blind_answer`; ``wrong``: each
    retrieved product swapped for another product of the catalogue (right only where the two products
    happen to agree); ``recognition``: share of pictures whose first retrieved product is the pictured one.
    A template states exactly the facts it is given, so its wrong-retrieval answers follow the wrong facts
    by construction; a generative reader (:func:`rag_prompt`) has to be measured for that.
    """
    images, rows = eval_set(n, seed)
    products = retriever.products
    if vlm is None:
        seen = [hits[0] for hits in retriever.by_pictures(images)]
    else:
        seen = vlm_recognise(retriever, vlm, images)
    r = random.Random(seed + 1)
    hits: Counter[str] = Counter()
    for i, question, shape, color in rows:
        right = truth(question, shape, color, products)
        facts = [seen[i]]
        kind, asked = question_kind(question)
        if kind == "variant" and asked is not None:
            facts.append(retriever.by_name(asked, seen[i].shape))
        wrong = [r.choice([p for p in products if p != f]) for f in facts]
        hits["retrieval"] += compose(question, facts).fact == right
        hits["none"] += blind_answer(question, products) == right
        hits["wrong"] += compose(question, wrong).fact == right
        hits["recognition"] += (seen[i].shape, seen[i].color) == (shape, color)
    return {key: hits[key] / len(rows) for key in
            ("retrieval", "none", "wrong", "recognition")}  # fmt: skip


def shop_answer(
    retriever: Retriever, picture: Any, question: Any, vlm: tuple[Any, Any] | None = None
) -> tuple[Answer, list[Product]]:
    """The checked picture and question answered by :func:`compose` from :meth:`Retriever.retrieve`'s
    facts, with the facts (Chapter 12; the shop assistant app)."""
    from mmbook import chat

    image = np.asarray(chat.check_picture(picture).resize((32, 32)))
    text = chat.check_question(question)
    facts = retriever.retrieve(image, text, vlm)
    return compose(text, facts), facts


def vlm_answer(chat_model: Any, retriever: Retriever, picture: Any, question: Any) -> str:
    """A VLM's answer with the retrieved facts in its prompt (:func:`rag_prompt`) (Chapter 12).

    Online this is SmolVLM (Chapter 11); the tiny VLM refuses the prompt (an
    :class:`~mmbook.errors.InputError` naming the words it does not know).
    """
    from mmbook import chat

    image = np.asarray(chat.check_picture(picture).resize((32, 32)))
    facts = retriever.retrieve(image, chat.check_question(question))
    return chat.answer(chat_model, picture, rag_prompt(question, facts))
