"""Byte-pair encoding from scratch: learn merges from a corpus, then segment words with them (Chapter 3).

:func:`train_bpe` is the algorithm of Sennrich, Haddow and Birch as CLIP's tokenizer uses it: words are
split into characters, the last one marked with the end-of-word suffix ``</w>``, and the most frequent
adjacent pair of symbols is merged, again and again. :class:`BPE` applies the learned merges to new
text. Chapter 3 checks both against the ``tokenizers`` library trained on the same corpus.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mmbook.data import words

#: The end-of-word marker that CLIP's tokenizer appends to the last symbol of every word.
END_OF_WORD = "</w>"
#: What :func:`train_library_bpe`'s tokenizer writes for a symbol that never occurred in its corpus.
UNKNOWN = "<unk>"


def word_symbols(word: str) -> tuple[str, ...]:
    """A word as its characters, the last one carrying :data:`END_OF_WORD` (Chapter 3)."""
    return (*word[:-1], word[-1] + END_OF_WORD)


def _merge(symbols: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    """Replace every occurrence of ``pair`` in ``symbols``, left to right, by one symbol."""
    out: list[str] = []
    i = 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return tuple(out)


@dataclass
class BPE:
    """Learned merges, in the order they were learned, and the segmentation they define (Chapter 3)."""

    merges: list[tuple[str, str]]
    counts: list[int] = field(default_factory=list)

    def segment(self, word: str) -> list[str]:
        """Split one word: start from characters and apply the earliest-learned applicable merge first."""
        rank = {pair: r for r, pair in enumerate(self.merges)}
        symbols = word_symbols(word)
        while len(symbols) > 1:
            pairs = [(rank[p], p) for p in itertools.pairwise(symbols) if p in rank]
            if not pairs:
                break
            symbols = _merge(symbols, min(pairs)[1])
        return list(symbols)

    def tokenize(self, text: str) -> list[str]:
        """Lower-case and split ``text`` like :func:`mmbook.data.words`, then segment every word."""
        return [piece for word in words(text) for piece in self.segment(word)]


def train_bpe(texts: Iterable[str], num_merges: int, min_frequency: int = 2) -> BPE:
    """Learn up to ``num_merges`` merges from ``texts`` (Chapter 3).

    Each step counts every adjacent pair of symbols, weighted by how often its word occurs, and merges
    the most frequent one; it stops early when no pair occurs ``min_frequency`` times. Ties go to the
    pair of older symbols, as in the ``tokenizers`` library: every symbol gets a number when it first
    exists (the characters by code point, then the characters with :data:`END_OF_WORD`, then each
    merge's result), and the pair with the smaller numbers wins.
    """
    vocabulary = {word_symbols(w): n for w, n in Counter(w for t in texts for w in words(t)).items()}
    characters = sorted({c for symbols in vocabulary for c in "".join(symbols).replace(END_OF_WORD, "")})
    final = sorted({symbols[-1] for symbols in vocabulary}, key=lambda s: s.replace(END_OF_WORD, ""))
    age = {symbol: i for i, symbol in enumerate([*characters, *final])}
    merges, counts = [], []
    for _ in range(num_merges):
        pairs: Counter[tuple[str, str]] = Counter()
        for symbols, n in vocabulary.items():
            for pair in itertools.pairwise(symbols):
                pairs[pair] += n
        if not pairs:
            break
        best, count = min(pairs.items(), key=lambda item: (-item[1], age[item[0][0]], age[item[0][1]]))
        if count < min_frequency:
            break
        age.setdefault(best[0] + best[1], len(age))
        merges.append(best)
        counts.append(count)
        vocabulary = {_merge(symbols, best): n for symbols, n in vocabulary.items()}
    return BPE(merges, counts)


def clip_style_tokenizer(bpe: BPE) -> Any:
    """``transformers.CLIPTokenizer`` with the vocabulary laid out as CLIP's and ``bpe``'s merges (Chapter 3).

    CLIP's vocabulary is the 256 byte symbols, the same with :data:`END_OF_WORD`, then one entry per
    merge and the two special tokens. Built the same way from the book's merges, the library's CLIP
    tokenizer shows CLIP's behaviour offline: it lower-cases, marks word ends, and falls back to bytes.
    """
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    base = list(bytes_to_unicode().values())
    tokens = [*base, *(b + END_OF_WORD for b in base), *(a + b for a, b in bpe.merges)]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    return CLIPTokenizer(vocab=vocab, merges=list(bpe.merges))


def train_library_bpe(texts: Iterable[str], num_merges: int, min_frequency: int = 2) -> Any:
    """The ``tokenizers`` library's BPE, trained on the same words with the same budget (Chapter 3).

    Returns a ``tokenizers.Tokenizer`` that splits on whitespace after :func:`mmbook.data.words` and
    writes :data:`UNKNOWN` for a symbol it never saw. The library counts its vocabulary, not its merges:
    the unknown token, the characters, the characters with :data:`END_OF_WORD` that end some word, then
    one token per merge.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    corpus = [" ".join(words(t)) for t in texts]
    seen = [w for line in corpus for w in line.split()]
    base = len({c for w in seen for c in w}) + len({w[-1] for w in seen})
    library = Tokenizer(models.BPE(unk_token=UNKNOWN, end_of_word_suffix=END_OF_WORD))
    library.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.BpeTrainer(
        vocab_size=1 + base + num_merges,
        min_frequency=min_frequency,
        special_tokens=[UNKNOWN],
        end_of_word_suffix=END_OF_WORD,
        show_progress=False,
    )
    library.train_from_iterator(corpus, trainer)
    return library


def library_merges(library: Any) -> list[tuple[str, str]]:
    """The merges of a ``tokenizers`` BPE model, in the order they were learned (Chapter 3)."""
    import json

    return [(a, b) for a, b in json.loads(library.to_str())["model"]["merges"]]
