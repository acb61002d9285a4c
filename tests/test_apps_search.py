"""The Chapter 6 text→image search app, through gradio_client on 127.0.0.1, bad input included."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gradio_client.exceptions import AppError
from mmbook import contrastive, zoo
from mmbook.apps import APPS, build_search_app
from mmbook.apps.search import DISPLAY_SIZE
from mmbook.data import make_shapes
from mmbook.limits import MAX_TEXT_CHARS
from mmbook.search import MAX_RESULTS, SearchIndex
from mmbook.viz import upscale_nearest
from PIL import Image


@pytest.fixture(scope="module")
def index() -> SearchIndex:
    model, processor = zoo.tiny_clip()
    gallery = make_shapes(200, seed=2)
    return SearchIndex.build(model, processor, gallery.images, gallery.captions)


def test_registered() -> None:
    assert APPS["search"] is build_search_app


def test_search_returns_the_best_matches_in_order(running_app, index) -> None:
    client = running_app(build_search_app(index))
    query = index.captions[5]
    pictures, table = client.predict(query, 6, api_name="/search")
    assert len(pictures) == 6 and table["headers"] == ["rank", "gallery index", "cosine", "the picture's own caption"]
    ranks, found, scores, captions = zip(*table["data"], strict=True)
    assert list(ranks) == [1, 2, 3, 4, 5, 6] and list(scores) == sorted(scores, reverse=True)
    expected_scores, expected = index.search(query, 6)
    assert list(found) == expected.tolist()
    np.testing.assert_allclose(scores, expected_scores.numpy(), atol=1e-4)
    assert [index.captions[i] for i in found] == list(captions)
    attributes = make_shapes(200, seed=2).attributes
    assert contrastive.scene_relevance([attributes[5]], attributes)[0, found[0]]  # it shows what the caption states
    first = np.asarray(Image.open(pictures[0]["image"]).convert("RGB"))
    np.testing.assert_array_equal(first, upscale_nearest(index.images[found[0]], DISPLAY_SIZE))
    assert pictures[0]["caption"] == f"#{found[0]}: {scores[0]:.3f}"


def test_the_index_embeds_each_picture_once_and_searches_by_cosine(index) -> None:
    assert index.embeddings.shape == (200, 64)
    assert torch.allclose(index.embeddings.norm(dim=1), torch.ones(200))
    scores, found = index.search("a red circle in the center", 3)
    assert (scores[:-1] >= scores[1:]).all() and len(set(found.tolist())) == 3


@pytest.mark.parametrize(
    ("query", "k", "message"),
    [
        ("", 5, "Please type a description"),
        ("   ", 5, "Please type a description"),
        ("a red " * 90, 5, f"the limit is {MAX_TEXT_CHARS}"),
        ("a red circle and a spaceship", 5, "never seen the word(s) 'spaceship'"),
        ("ein roter kreis", 5, "'ein', 'kreis', 'roter'"),
        ("red " * 70, 5, "tokens; the text encoder reads at most 48"),
        ("a red circle", 0, f"whole number from 1 to {MAX_RESULTS}; got 0"),
        ("a red circle", MAX_RESULTS + 1, f"whole number from 1 to {MAX_RESULTS}; got {MAX_RESULTS + 1}"),
        ("a red circle", None, "Please enter the number of results"),
        ("a red circle", 2.5, f"whole number from 1 to {MAX_RESULTS}"),
    ],
)
def test_bad_input_gets_a_clear_message_and_the_server_keeps_serving(running_app, index, query, k, message) -> None:
    client = running_app(build_search_app(index))
    with pytest.raises(AppError, match=message.replace("(", r"\(").replace(")", r"\)")):
        client.predict(query, k, api_name="/search")
    pictures, _ = client.predict("a red circle in the center", 2, api_name="/search")
    assert len(pictures) == 2


def test_unknown_words_come_from_the_tokenizer_not_its_vocabulary_list() -> None:
    from mmbook.data import tokenizer
    from mmbook.search import unknown_words
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    assert unknown_words(tokenizer(), "a Pink circle and a red spaceship") == ["pink", "spaceship"]
    # A byte-level BPE like real CLIP's stores pieces ("red</w>"-style), not words, yet knows every word.
    bpe = Tokenizer(models.BPE(unk_token="<|endoftext|>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator(["a red circle", "a blue square"], trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    clip_like = PreTrainedTokenizerFast(tokenizer_object=bpe, unk_token="<|endoftext|>")
    assert "pink" not in clip_like.get_vocab()
    assert unknown_words(clip_like, "a pink spaceship") == []
