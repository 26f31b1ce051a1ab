"""The training rows of one split, built on demand from its tokens: window examples or whole words.

`WindowRows` and `SequenceRows` number their rows as `make_examples` and `make_sequences` do (so the same
row indices draw the same batches), and build only the rows asked for. `subset` picks a fixed random set of
words whose rows evaluate a loss on a bounded budget.
"""

from __future__ import annotations

import numpy as np
from makemore.data.dataset import Vocab
from makemore.data.packing import PackedRows, packed_rows
from makemore.data.tokens import Tokens, sequence_rows, tokenize, window_rows

SUBSET_SEED = 0  # the words of every evaluation subset: fixed, whatever the training seed


class WindowRows:
    """Row e is example e: (context of block_size indices, next index), word after word."""

    def __init__(self, tokens: Tokens, block_size: int) -> None:
        self.tokens, self.block_size = tokens, block_size

    def __len__(self) -> int:
        return self.tokens.n_examples

    def take(self, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """int64 X[B, block_size], Y[B] of the given rows (and their labels, int64 [B], for labelled tokens)."""
        x, y = window_rows(self.tokens, rows, self.block_size)
        if self.tokens.labels is None:
            return x, y
        return x, y, self.tokens.labels[self.tokens.word_of_examples(rows)]

    def rows_of_words(self, words: np.ndarray) -> np.ndarray:
        """The rows of the given (sorted) words, in row order."""
        return self.tokens.examples_of(words)


class SequenceRows:
    """Row r is the r-th shortest word (ties in corpus order) as (boundary, characters) -> (characters, boundary)."""

    def __init__(self, tokens: Tokens, ignore: int) -> None:
        self.tokens, self.ignore = tokens, ignore

    def __len__(self) -> int:
        return self.tokens.n_words

    def take(self, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """int64 X, Y [B, the batch's longest word + 1], padded with the boundary and `ignore` (and the words'
        labels, int64 [B], for labelled tokens)."""
        words = self.tokens.by_length[np.asarray(rows, dtype=np.int64)]
        x, y = sequence_rows(self.tokens, words, self.ignore)
        return (x, y) if self.tokens.labels is None else (x, y, self.tokens.labels[words])

    def take_packed(self, rows: np.ndarray, max_width: int) -> PackedRows:
        """The given rows' words packed end to end (data/packing.py) into rows of `max_width` positions, or of
        their longest word + 1 when that is wider: never more rows than `take` gives, at most as wide as
        `max_width` or `take`'s rows."""
        words = self.tokens.by_length[np.asarray(rows, dtype=np.int64)]
        longest = int(self.tokens.lengths[words].max(initial=0))
        return packed_rows(self.tokens, words, self.ignore, max(longest + 1, max_width))

    def rows_of_words(self, words: np.ndarray) -> np.ndarray:
        """The rows of the given words, in row order."""
        row_of_word = np.empty(self.tokens.n_words, dtype=np.int64)
        row_of_word[self.tokens.by_length] = np.arange(self.tokens.n_words)
        return np.sort(row_of_word[words])


Rows = WindowRows | SequenceRows


def make_rows(words: list[str], vocab: Vocab, block_size: int | None, ignore: int) -> Rows:
    """Tokenise `words` once; window rows of `block_size`, or sequence rows when block_size is None."""
    return rows_of(tokenize(words, vocab), block_size, ignore)


def rows_of(tokens: Tokens, block_size: int | None, ignore: int) -> Rows:
    """Window rows of `block_size` over `tokens`, or sequence rows when block_size is None."""
    return SequenceRows(tokens, ignore) if block_size is None else WindowRows(tokens, block_size)


def subset(rows: Rows, max_words: int, seed: int = SUBSET_SEED) -> np.ndarray | None:
    """The rows of `max_words` words drawn at random (fixed by `seed`), in row order; None (all rows) when the
    split has no more words than that."""
    n_words = rows.tokens.n_words
    if n_words <= max_words:
        return None
    words = np.sort(np.random.default_rng(seed).choice(n_words, size=max_words, replace=False))
    return rows.rows_of_words(words)


def label_rows(rows: Rows, label: int, chosen: np.ndarray | None = None) -> np.ndarray:
    """The rows (among `chosen`, all when None) of the words whose label index is `label`, in row order."""
    labels = rows.tokens.labels
    if labels is None:
        raise ValueError("these rows have no labels")
    picked = rows.rows_of_words(np.flatnonzero(labels == label))
    return picked if chosen is None else np.intersect1d(picked, chosen)


def row_count(rows: Rows, chosen: np.ndarray | None) -> int:
    """Rows in `chosen` (all of them when None)."""
    return len(rows) if chosen is None else len(chosen)
