"""Recommendation from pictures and captions: simulated users, embedding recommenders, ranking metrics (Chapter 12).

The catalogue is shapes-world items, one shape each. :func:`simulate` draws users whose taste is a favourite
colour, a favourite shape or both; each user likes ``likes`` items sampled without replacement with
probability proportional to ``exp(utility)``, where the utility adds the taste, the item's popularity
(a Zipf-like skew) and Gumbel noise. Each user's likes are split into train, validation and test.

A content-based recommender (:func:`profile_scores`) averages the embeddings of a user's train likes into a
profile and ranks items by cosine similarity to it; the embeddings come from the tiny CLIP's image tower
(pictures) or text tower (captions), and :func:`fuse` averages the two standardised scores with a weight
chosen on the validation split (:func:`choose_weight`). :func:`popularity_scores` and :func:`random_scores`
are the baselines; :func:`hit_rate` and :func:`ndcg` the metrics; :func:`neighbour_agreement` measures what
an embedding space groups together (colour or shape).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmbook import contrastive
from mmbook.data import Shapes, make_shapes
from mmbook.data.world import COLORS, SHAPE_KINDS

#: The kinds of taste a simulated user has, assigned in turn.
TASTES: tuple[str, ...] = ("colour", "shape", "both")
#: The length of every recommendation list that is scored.
K = 10
#: The fusion weights tried on the validation split (weight of the image scores).
WEIGHTS: tuple[float, ...] = tuple(np.round(np.linspace(0, 1, 11), 2).tolist())


@dataclass(frozen=True)
class Settings:
    """What :func:`simulate` draws (Chapter 12)."""

    n_items: int = 600
    n_users: int = 1200
    likes: int = 16
    validation: int = 3
    test: int = 3
    taste: float = 3.0
    popularity: float = 0.5
    noise: float = 1.0
    item_seed: int = 12
    seed: int = 0


@dataclass
class Interactions:
    """A catalogue, its users' tastes and their likes split three ways (Chapter 12).

    ``colour[u]`` and ``shape[u]`` are the indices of user ``u``'s favourites in ``COLORS`` and
    ``SHAPE_KINDS`` (-1: no favourite); ``train``, ``validation``, ``test`` are ``(users, n)`` item indices.
    """

    items: Shapes
    item_colour: np.ndarray
    item_shape: np.ndarray
    popularity: np.ndarray
    taste: list[str]
    colour: np.ndarray
    shape: np.ndarray
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    @property
    def n_users(self) -> int:
        """Number of users."""
        return len(self.taste)

    @property
    def n_items(self) -> int:
        """Number of items in the catalogue."""
        return len(self.items)

    def describe(self, user: int) -> str:
        """User ``user``'s taste in words: "red things", "circles of any colour" or "red circles"."""
        colour = list(COLORS)[self.colour[user]] if self.colour[user] >= 0 else ""
        kind = SHAPE_KINDS[self.shape[user]] if self.shape[user] >= 0 else ""
        shape = kind + ("es" if kind.endswith("s") else "s") if kind else ""
        return {"colour": f"{colour} things", "shape": f"{shape} of any colour"}.get(self.taste[user],
                                                                                    f"{colour} {shape}")


def simulate(settings: Settings = Settings()) -> Interactions:
    """Users, their tastes and their likes, the same for the same settings (Chapter 12)."""
    s = settings
    if s.likes <= s.validation + s.test or min(s.validation, s.test) < 1:
        raise ValueError(f"likes ({s.likes}) must exceed validation + test ({s.validation} + {s.test}), both ≥ 1")
    items = make_shapes(s.n_items, seed=s.item_seed, max_shapes=1)
    item_colour = np.array([list(COLORS).index(a[0]["color"]) for a in items.attributes])
    item_shape = np.array([SHAPE_KINDS.index(a[0]["shape"]) for a in items.attributes])
    rng = np.random.default_rng(s.seed)
    popularity = -s.popularity * np.log1p(rng.permutation(s.n_items))  # log of a Zipf weight
    taste = [TASTES[u % len(TASTES)] for u in range(s.n_users)]
    colour = np.where([t != "shape" for t in taste], rng.integers(len(COLORS), size=s.n_users), -1)
    shape = np.where([t != "colour" for t in taste], rng.integers(len(SHAPE_KINDS), size=s.n_users), -1)
    utility = (s.taste * (item_colour[None] == colour[:, None]) + s.taste * (item_shape[None] == shape[:, None])
               + popularity[None])
    # Gumbel top-k: sampling without replacement with probabilities proportional to exp(utility / noise).
    perturbed = utility / s.noise + rng.gumbel(size=utility.shape)
    liked = np.argsort(-perturbed, axis=1)[:, : s.likes]
    liked = rng.permuted(liked, axis=1)
    v, t = s.validation, s.test
    return Interactions(items, item_colour, item_shape, popularity, taste, colour, shape,
                        liked[:, : -(v + t)], liked[:, -(v + t) : -t], liked[:, -t:])


def embeddings(model: Any, processor: Any, items: Shapes) -> tuple[np.ndarray, np.ndarray]:
    """The items' unit image embeddings and unit caption embeddings from a CLIP model (Chapter 12)."""
    pixels = contrastive.pixels(processor, items.images).to(model.device)
    ids, mask = contrastive.tokens(processor, items.captions)
    image = contrastive.embed_images(model, pixels)
    text = contrastive.embed_texts(model, ids.to(model.device), mask.to(model.device))
    return image.cpu().numpy().astype(np.float64), text.cpu().numpy().astype(np.float64)


def profile_scores(item_embeddings: np.ndarray, liked: Sequence[Sequence[int]] | np.ndarray) -> np.ndarray:
    """``(users, items)`` cosine similarity of every item to each user's profile, the normalised mean of
    the embeddings of the items the user liked (Chapter 12)."""
    profiles = np.stack([item_embeddings[list(row)].mean(0) for row in liked])
    profiles /= np.linalg.norm(profiles, axis=1, keepdims=True)
    return profiles @ item_embeddings.T


def popularity_scores(train: np.ndarray, n_items: int) -> np.ndarray:
    """``(users, items)``: every user gets each item's number of train likes (Chapter 12)."""
    counts = np.bincount(train.ravel(), minlength=n_items).astype(np.float64)
    return np.broadcast_to(counts, (len(train), n_items)).copy()


def random_scores(n_users: int, n_items: int, seed: int = 0) -> np.ndarray:
    """``(users, items)`` uniform random scores: the ranking of a recommender that knows nothing (Chapter 12)."""
    return np.random.default_rng(seed).random((n_users, n_items))


def standardise(scores: np.ndarray) -> np.ndarray:
    """Each user's scores shifted and scaled to mean 0 and standard deviation 1 (Chapter 12)."""
    return (scores - scores.mean(1, keepdims=True)) / scores.std(1, keepdims=True)


def fuse(image: np.ndarray, text: np.ndarray, weight: float) -> np.ndarray:
    """Late fusion: ``weight`` × standardised image scores + (1 − ``weight``) × standardised text scores."""
    return weight * standardise(image) + (1 - weight) * standardise(text)


def relevance(rows: np.ndarray, n_items: int) -> np.ndarray:
    """``(users, items)`` booleans: item ``i`` is in user ``u``'s row (Chapter 12)."""
    out = np.zeros((len(rows), n_items), dtype=bool)
    np.put_along_axis(out, rows, True, axis=1)
    return out


def masked(scores: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """``scores`` with the items a user has already seen set to −∞, so they are never recommended."""
    return np.where(seen, -np.inf, scores)


def top_k(scores: np.ndarray, k: int = K) -> np.ndarray:
    """``(users, k)`` item indices, best first; ties broken by the lower item index."""
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def hit_rate(scores: np.ndarray, relevant: np.ndarray, k: int = K) -> float:
    """The fraction of users with at least one relevant item in their top ``k`` (Chapter 12)."""
    return float(np.take_along_axis(relevant, top_k(scores, k), axis=1).any(1).mean())


def user_ndcg(scores: np.ndarray, relevant: np.ndarray, k: int = K) -> np.ndarray:
    """Each user's DCG@k / ideal DCG@k, binary relevance, gain 1 / log2(rank + 1) (Chapter 12)."""
    discount = 1 / np.log2(np.arange(2, k + 2))
    dcg = (np.take_along_axis(relevant, top_k(scores, k), axis=1) * discount).sum(1)
    ideal = np.array([discount[: min(n, k)].sum() for n in relevant.sum(1)])
    return dcg / ideal


def ndcg(scores: np.ndarray, relevant: np.ndarray, k: int = K) -> float:
    """nDCG@k: the mean over users of :func:`user_ndcg` (Chapter 12)."""
    return float(user_ndcg(scores, relevant, k).mean())


def evaluate(scores: np.ndarray, seen: np.ndarray, relevant: np.ndarray, k: int = K) -> dict[str, float]:
    """Hit rate@k and nDCG@k of ``scores`` with the ``seen`` items removed (Chapter 12)."""
    ranked = masked(scores, seen)
    return {"hit_rate": hit_rate(ranked, relevant, k), "ndcg": ndcg(ranked, relevant, k)}


def choose_weight(image: np.ndarray, text: np.ndarray, data: Interactions,
                  weights: Sequence[float] = WEIGHTS) -> tuple[float, list[float]]:
    """The fusion weight with the best validation nDCG@K, and the validation nDCG of every weight (Chapter 12)."""
    seen = relevance(data.train, data.n_items)
    target = relevance(data.validation, data.n_items)
    curve = [evaluate(fuse(image, text, w), seen, target)["ndcg"] for w in weights]
    return float(weights[int(np.argmax(curve))]), curve


def nearest(item_embeddings: np.ndarray, k: int = K) -> np.ndarray:
    """``(items, k)``: each item's ``k`` nearest other items by cosine similarity (Chapter 12)."""
    similarity = item_embeddings @ item_embeddings.T
    np.fill_diagonal(similarity, -np.inf)
    return top_k(similarity, k)


def neighbour_agreement(item_embeddings: np.ndarray, labels: np.ndarray, k: int = K) -> float:
    """The fraction of each item's ``k`` nearest neighbours (cosine) that share its label (Chapter 12)."""
    return float((labels[nearest(item_embeddings, k)] == labels[:, None]).mean())


def neighbour_overlap(a: np.ndarray, b: np.ndarray, k: int = K) -> float:
    """The fraction of each item's ``k`` nearest neighbours in space ``a`` that are also among its ``k``
    nearest in space ``b``: 1 when two embeddings rank the catalogue alike (Chapter 12)."""
    pairs = zip(nearest(a, k), nearest(b, k), strict=True)
    return float(np.mean([len(set(p) & set(q)) / k for p, q in pairs]))


@dataclass
class Recommender:
    """A catalogue with both embeddings and the fusion weight chosen on validation: what the app serves."""

    data: Interactions
    image: np.ndarray
    text: np.ndarray
    weight: float

    @classmethod
    def build(cls, model: Any, processor: Any, settings: Settings = Settings()) -> Recommender:
        """Simulate, embed the catalogue and choose the fusion weight (Chapter 12)."""
        data = simulate(settings)
        image, text = embeddings(model, processor, data.items)
        weight, _ = choose_weight(profile_scores(image, data.train), profile_scores(text, data.train), data)
        return cls(data, image, text, weight)

    def recommend(self, liked: Sequence[int], modality: str, k: int = K) -> list[int]:
        """The ``k`` best items, not in ``liked``, for someone who liked ``liked``, by ``modality``
        ("image", "text" or "fusion")."""
        image, text = profile_scores(self.image, [liked]), profile_scores(self.text, [liked])
        scores = {"image": image, "text": text, "fusion": fuse(image, text, self.weight)}[modality]
        return top_k(masked(scores, relevance(np.array([liked]), self.data.n_items)), k)[0].tolist()


__all__ = [
    "K", "TASTES", "WEIGHTS", "Interactions", "Recommender", "Settings", "choose_weight", "embeddings",
    "evaluate", "fuse", "hit_rate", "masked", "ndcg", "nearest", "neighbour_agreement", "neighbour_overlap",
    "popularity_scores", "profile_scores", "random_scores", "relevance", "simulate", "standardise", "top_k",
    "user_ndcg",
]
