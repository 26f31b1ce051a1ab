"""Flat tokens and rows built on demand: the same rows as the materialised arrays, in the smallest type."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from makemore.data import BOUNDARY, DatasetError, Vocab, make_examples
from makemore.data import tokens as tokens_module
from makemore.data.rows import SequenceRows, WindowRows, make_rows, subset
from makemore.data.tokens import bigram_counts, token_dtype, tokenize
from makemore.train.models import IGNORE

ALPHABET = "abcdé.-z\u4e2d\U0001f600"  # ASCII, Latin-1, a CJK character and one beyond the BMP
word_lists = st.lists(st.text(alphabet=ALPHABET, min_size=0, max_size=12), min_size=1, max_size=25)


def reference_sequences(words: list[str], vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """The materialised sequences as trainer.make_sequences built them before the rows were built on demand."""
    words = sorted(words, key=len)
    width = len(words[-1]) + 1
    x = np.full((len(words), width), BOUNDARY, dtype=np.int64)
    y = np.full((len(words), width), IGNORE, dtype=np.int64)
    for row, word in enumerate(words):
        ids = vocab.encode(word)
        x[row, 1 : len(ids) + 1] = ids
        y[row, : len(ids)] = ids
        y[row, len(ids)] = BOUNDARY
    return x, y


def _vocab(words: list[str]) -> Vocab:
    return Vocab.from_words(words) if "".join(words) else Vocab("a")


@settings(max_examples=150, deadline=None)
@given(words=word_lists, block_size=st.integers(1, 9), data=st.data())
def test_window_rows_are_make_examples_rows(words, block_size, data) -> None:
    vocab = _vocab(words)
    x, y = make_examples(words, vocab, block_size)
    rows = WindowRows(tokenize(words, vocab), block_size)
    assert len(rows) == len(y)
    picked = np.array(data.draw(st.lists(st.integers(0, len(y) - 1), min_size=1, max_size=40)), dtype=np.int64)
    xb, yb = rows.take(picked)
    assert xb.dtype == yb.dtype == np.int64
    np.testing.assert_array_equal(xb, x[picked])
    np.testing.assert_array_equal(yb, y[picked])
    every_x, every_y = rows.take(np.arange(len(y)))
    np.testing.assert_array_equal(every_x, x)
    np.testing.assert_array_equal(every_y, y)


@settings(max_examples=150, deadline=None)
@given(words=word_lists, data=st.data())
def test_sequence_rows_are_make_sequences_rows(words, data) -> None:
    vocab = _vocab(words)
    x, y = reference_sequences(words, vocab)
    rows = SequenceRows(tokenize(words, vocab), IGNORE)
    assert len(rows) == len(words)
    picked = np.array(data.draw(st.lists(st.integers(0, len(words) - 1), min_size=1, max_size=10)), dtype=np.int64)
    xb, yb = rows.take(picked)
    width = max(len(sorted(words, key=len)[r]) for r in picked) + 1  # what trim_padding kept of the full rows
    np.testing.assert_array_equal(xb, x[picked, :width])
    np.testing.assert_array_equal(yb, y[picked, :width])


@settings(max_examples=50, deadline=None)
@given(words=word_lists)
def test_bigram_counts_count_the_examples(words) -> None:
    vocab = _vocab(words)
    x, y = make_examples(words, vocab, 1)
    expected = np.zeros((vocab.size, vocab.size), dtype=np.int64)
    np.add.at(expected, (x[:, 0], y), 1)
    np.testing.assert_array_equal(bigram_counts(tokenize(words, vocab), vocab.size, chunk=7), expected)


@pytest.mark.parametrize(
    ("vocab_size", "dtype"),
    [(2, np.uint8), (256, np.uint8), (257, np.uint16), (65536, np.uint16), (65537, np.uint32)],
)
def test_token_dtype_is_the_smallest_that_holds_the_vocabulary(vocab_size, dtype) -> None:
    assert token_dtype(vocab_size) == dtype


def test_tokens_are_flat_in_the_smallest_type() -> None:
    small = tokenize(["emma", "ava"], Vocab("aemv"))
    assert small.ids.dtype == np.uint8 and small.ids.tolist() == [2, 3, 3, 1, 1, 4, 1]
    assert small.offsets.tolist() == [0, 4, 7] and small.n_examples == 9
    wide_chars = "".join(chr(0x100 + i) for i in range(300))  # 301 indices: more than a byte holds
    wide = tokenize([wide_chars[:150], wide_chars[150:]], Vocab(wide_chars))
    assert wide.ids.dtype == np.uint16 and wide.ids.tolist() == list(range(1, 301))


def test_tokenise_in_chunks_is_the_same_and_names_an_unknown_character(monkeypatch) -> None:
    words = ["anna", "", "bob", "x" * 10, "ab"]
    vocab = Vocab.from_words(words)
    whole = tokenize(words, vocab)
    monkeypatch.setattr(tokens_module, "TOKENISE_CHARS", 3)  # smaller than some words: one word a chunk
    chunked = tokenize(words, vocab)
    np.testing.assert_array_equal(chunked.ids, whole.ids)
    np.testing.assert_array_equal(chunked.offsets, whole.offsets)
    with pytest.raises(DatasetError, match="character 'q' is not in the vocabulary"):
        tokenize(["ab", "aqb"], vocab)
    with pytest.raises(DatasetError, match="character '\u4e2d' is not in the vocabulary"):
        tokenize(["\u4e2d"], vocab)


def test_subset_is_fixed_and_whole_words() -> None:
    words = [f"{'ab' * (i % 5)}b" for i in range(100)]
    vocab = Vocab.from_words(words)
    rows = make_rows(words, vocab, block_size=3, ignore=IGNORE)
    assert subset(rows, 100) is None  # no more words than the bound: all rows
    chosen = subset(rows, 10)
    np.testing.assert_array_equal(chosen, subset(rows, 10))
    assert np.all(np.diff(chosen) > 0)
    word_of_row = np.searchsorted(rows.tokens.example_offsets, chosen, side="right") - 1
    assert len(np.unique(word_of_row)) == 10
    assert len(chosen) == int((rows.tokens.lengths[np.unique(word_of_row)] + 1).sum())  # every row of each word
    sequences = make_rows(words, vocab, block_size=None, ignore=IGNORE)
    picked = subset(sequences, 10)
    assert len(picked) == 10 and np.all(np.diff(picked) > 0)
