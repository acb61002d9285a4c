"""Chapter 12's recommender: the simulation, the metrics against scikit-learn, fusion, and the app."""

from __future__ import annotations

import numpy as np
import pytest
from gradio_client.exceptions import AppError
from mmbook import recommend as r
from mmbook import zoo
from mmbook.apps.recommender import MAX_LIKED, build_recommender_app, parse_items
from mmbook.errors import InputError
from sklearn.metrics import ndcg_score

SMALL = r.Settings(n_items=200, n_users=90, likes=10, validation=2, test=2)


@pytest.fixture(scope="module")
def recommender() -> r.Recommender:
    return r.Recommender.build(*zoo.tiny_clip(), SMALL)


def test_the_simulation_is_deterministic_and_its_splits_are_disjoint() -> None:
    a, b = r.simulate(SMALL), r.simulate(SMALL)
    np.testing.assert_array_equal(a.train, b.train)
    assert a.train.shape == (90, 6) and a.validation.shape == (90, 2) and a.test.shape == (90, 2)
    liked = np.concatenate([a.train, a.validation, a.test], axis=1)
    assert all(len(set(row)) == 10 for row in liked)
    assert not np.array_equal(r.simulate(r.Settings(n_items=200, n_users=90, seed=1)).colour[:30], a.colour[:30])


def test_users_like_their_favourites_and_popular_items() -> None:
    data = r.simulate(r.Settings())
    colour_users = [u for u in range(data.n_users) if data.taste[u] == "colour"]
    share = np.mean([(data.item_colour[data.train[u]] == data.colour[u]).mean() for u in colour_users])
    assert share > 2 * np.mean(data.item_colour[:, None] == np.arange(6))  # far above the colour's share
    counts = np.bincount(data.train.ravel(), minlength=data.n_items)
    top = np.argsort(-data.popularity)[:60]
    assert counts[top].mean() > 2 * counts.mean()  # the popularity skew
    assert data.describe(1).endswith("of any colour") and data.describe(0).endswith("things")


def test_simulate_refuses_a_split_larger_than_the_likes() -> None:
    with pytest.raises(ValueError, match="must exceed"):
        r.simulate(r.Settings(likes=4, validation=2, test=2))


def test_metrics_by_hand() -> None:
    scores = np.array([[0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.4]])
    relevant = np.array([[False, True, False, True], [True, False, False, False]])
    assert r.hit_rate(scores, relevant, k=2) == 0.5
    first = (1 / np.log2(3)) / (1 + 1 / np.log2(3))  # relevant at rank 2 of 2 ideal
    np.testing.assert_allclose(r.user_ndcg(scores, relevant, k=2), [first, 0.0])
    np.testing.assert_allclose(r.user_ndcg(scores, relevant, k=4)[1], 1 / np.log2(5))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ndcg_matches_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.random((40, 60))
    relevant = rng.random((40, 60)) < 0.08
    relevant[:, 0] = True  # every user has something to find
    assert r.ndcg(scores, relevant) == pytest.approx(ndcg_score(relevant, scores, k=r.K), abs=1e-12)


def test_masked_items_are_never_recommended() -> None:
    data = r.simulate(SMALL)
    seen = r.relevance(data.train, data.n_items)
    top = r.top_k(r.masked(r.popularity_scores(data.train, data.n_items), seen))
    assert not np.take_along_axis(seen, top, axis=1).any()


def test_fusion_endpoints_rank_like_one_modality() -> None:
    rng = np.random.default_rng(0)
    image, text = rng.random((5, 30)), rng.random((5, 30))
    np.testing.assert_array_equal(r.top_k(r.fuse(image, text, 1.0)), r.top_k(image))
    np.testing.assert_array_equal(r.top_k(r.fuse(image, text, 0.0)), r.top_k(text))


def test_neighbour_measures() -> None:
    labels = np.repeat(np.arange(4), 12)
    clustered = np.eye(4)[labels] + 0.01 * np.random.default_rng(0).standard_normal((48, 4))
    clustered /= np.linalg.norm(clustered, axis=1, keepdims=True)
    assert r.neighbour_agreement(clustered, labels) == 1.0
    assert r.neighbour_agreement(clustered, np.arange(48) % 2) < 0.7
    assert r.neighbour_overlap(clustered, clustered) == 1.0


def test_content_recommenders_beat_random(recommender) -> None:
    data = recommender.data
    assert recommender.weight in r.WEIGHTS
    seen = r.relevance(np.concatenate([data.train, data.validation], 1), data.n_items)
    target = r.relevance(data.test, data.n_items)
    image = r.evaluate(r.profile_scores(recommender.image, data.train), seen, target)
    chance = r.evaluate(r.random_scores(data.n_users, data.n_items), seen, target)
    assert image["hit_rate"] > chance["hit_rate"] and image["ndcg"] > chance["ndcg"]
    found = recommender.recommend([3, 4], "fusion", 7)
    assert len(found) == 7 and not {3, 4} & set(found)


def test_parse_items() -> None:
    assert parse_items(" 3, 17 42,3 ", 50) == [3, 17, 42]
    for text, message in [("3, x", "whole numbers"), ("-1", "whole numbers"), ("99", "no item 99"),
                          (" ".join(["1"] * (MAX_LIKED + 1)), "at most")]:
        with pytest.raises(InputError, match=message):
            parse_items(text, 50)


def test_the_app_recommends_and_refuses_bad_input(running_app, recommender) -> None:
    client = running_app(build_recommender_app(recommender))
    liked, found, note = client.predict(5, "", "image", 6, api_name="/recommend")
    assert len(liked) == 6 and len(found) == 6 and note.startswith("User 5 likes")
    expected = recommender.recommend(recommender.data.train[5].tolist(), "image", 6)
    assert [p["caption"].split(":")[0] for p in found] == [f"#{i}" for i in expected]
    liked, found, _ = client.predict(0, "3, 4", "text", 4, api_name="/recommend")
    assert len(liked) == 2 and len(found) == 4
    for args, message in [((500, "", "image", 5), "user number"), ((None, "", "image", 5), "user number"),
                          ((0, "3, nine", "image", 5), "whole numbers"), ((0, "", "sound", 5), "modality"),
                          ((0, "", "image", 0), "number of recommendations")]:
        with pytest.raises(AppError, match=message):
            client.predict(*args, api_name="/recommend")
