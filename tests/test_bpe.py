"""mmbook.bpe: the Chapter 3 byte-pair encoding against the tokenizers library and CLIP's tokenizer class."""

from __future__ import annotations

import pytest
from mmbook.bpe import (
    BPE,
    END_OF_WORD,
    UNKNOWN,
    clip_style_tokenizer,
    library_merges,
    train_bpe,
    train_library_bpe,
    word_symbols,
)
from mmbook.data import make_shapes, words


@pytest.fixture(scope="module")
def captions() -> list[str]:
    return make_shapes(600, seed=4).captions


def test_word_symbols_mark_the_end_of_the_word() -> None:
    assert word_symbols("red") == ("r", "e", "d" + END_OF_WORD)
    assert word_symbols("a") == ("a" + END_OF_WORD,)


def test_hand_worked_merges() -> None:
    # l-o occurs 5 times, then lo-w</w> 3 times; lo-w and w-e tie at 2 and the older symbols (w, e) win.
    bpe = train_bpe(["low low low lower lowest"], num_merges=3)
    assert bpe.merges == [("l", "o"), ("lo", "w</w>"), ("w", "e")]
    assert bpe.counts == [5, 3, 2]
    assert bpe.segment("low") == ["low</w>"]
    assert bpe.segment("lowly") == ["lo", "w", "l", "y</w>"]


def test_merges_and_segmentations_equal_the_library(captions: list[str]) -> None:
    for n in (10, 40, 120):
        ours, library = train_bpe(captions, n), train_library_bpe(captions, n)
        assert ours.merges == library_merges(library)
        for word in {w for c in captions for w in words(c)} | {"crimson", "squares"}:
            assert ours.segment(word) == library.encode(word).tokens
        # A character the corpus never ends a word with: kept by ours, unknown to the library.
        assert ours.segment("rhombi")[-1] == "i</w>" and library.encode("rhombi").tokens[-1] == UNKNOWN


def test_training_stops_below_min_frequency() -> None:
    bpe = train_bpe(["ab ab cd"], num_merges=10, min_frequency=2)
    assert bpe.merges == [("a", "b</w>")]


def test_clip_style_tokenizer_lowercases_marks_ends_and_falls_back_to_bytes(captions: list[str]) -> None:
    bpe = train_bpe(captions, 80)
    tok = clip_style_tokenizer(bpe)
    text = captions[0]
    assert tok.tokenize(text.upper()) == tok.tokenize(text) == bpe.tokenize(text)
    assert all(t.endswith(END_OF_WORD) for t in tok.tokenize("red"))
    ids = tok("café 🙂")["input_ids"]
    assert tok.unk_token_id not in ids[1:-1] and tok.decode(ids, skip_special_tokens=True) == "café 🙂"
    assert BPE([]).segment("ab") == ["a", "b</w>"]
