"""Words as one flat array of character indices, and the training rows built from it on demand.

A corpus is tokenised once, vectorised, into `Tokens`: the indices of every character of every word,
concatenated, in the smallest unsigned type that holds the vocabulary (uint8 up to 256 indices), and the
word offsets. A batch's rows are built from it when they are needed, never for the whole corpus:

- window rows (`window_rows`): example e is the e-th (context, next index) pair in `make_examples`' order
  (word by word; each word's characters, then its end), the context being the `block_size` indices before
  the target, boundaries before the word's start;
- sequence rows (`sequence_rows`): word w as (boundary, its characters) and (its characters, boundary),
  padded to the longest word of the batch + 1 with the boundary and `ignore` (no loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from makemore.data.dataset import BOUNDARY, Split, Vocab
from makemore.data.errors import DatasetError

TOKENISE_CHARS = 1 << 24  # characters tokenised at a time: bounds the 4-byte code points held at once


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned integer type that holds indices 0..vocab_size-1."""
    return np.min_scalar_type(max(vocab_size - 1, 0))


@dataclass(frozen=True)
class Tokens:
    """The words of one split: `ids`, all their character indices concatenated, and `offsets` [n_words + 1];
    `labels`: each word's label index (int64 [n_words]) for labelled data, None otherwise."""

    ids: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray | None = None

    @property
    def n_words(self) -> int:
        return len(self.offsets) - 1

    @cached_property
    def lengths(self) -> np.ndarray:
        """Characters of each word (int64)."""
        return np.diff(self.offsets)

    @cached_property
    def example_offsets(self) -> np.ndarray:
        """Index of each word's first example (int64 [n_words + 1]): a word of n characters has n + 1."""
        return np.concatenate([[0], np.cumsum(self.lengths + 1)])

    @property
    def n_examples(self) -> int:
        """Predicted characters: every character and every word's end."""
        return int(self.example_offsets[-1])

    @cached_property
    def by_length(self) -> np.ndarray:
        """Word indices shortest first, ties in corpus order (the order of Python's stable sorted(words, key=len))."""
        return np.argsort(self.lengths, kind="stable")

    def take_words(self, words: np.ndarray, chunk: int = 1 << 20) -> Tokens:
        """The tokens of the given words, in the given order (`chunk` words gathered at a time)."""
        words = np.asarray(words, dtype=np.int64)
        lengths = self.lengths[words]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        ids = np.empty(int(offsets[-1]), dtype=self.ids.dtype)
        for start in range(0, len(words), chunk):
            stop = min(start + chunk, len(words))
            shift = self.offsets[words[start:stop]] - offsets[start:stop]
            ids[offsets[start] : offsets[stop]] = self.ids[
                np.repeat(shift, lengths[start:stop]) + np.arange(offsets[start], offsets[stop])
            ]
        return Tokens(ids, offsets, None if self.labels is None else self.labels[words])

    def word_of_examples(self, examples: np.ndarray) -> np.ndarray:
        """The word (int64) of each example index."""
        return np.searchsorted(self.example_offsets, np.asarray(examples, dtype=np.int64), side="right") - 1

    def examples_of(self, words: np.ndarray) -> np.ndarray:
        """The example indices of the given words (int64), word after word."""
        words = np.asarray(words, dtype=np.int64)
        counts = self.lengths[words] + 1
        first = np.repeat(self.example_offsets[words] - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
        return first + np.arange(int(counts.sum()))


def tokenize(words: list[str], vocab: Vocab) -> Tokens:
    """Tokenise `words` in one vectorised pass per TOKENISE_CHARS characters (no Python loop per character).

    DatasetError names the first character outside `vocab`.
    """
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    ids = np.empty(int(offsets[-1]), dtype=token_dtype(vocab.size))
    table = code_table(vocab, ids.dtype)
    start = 0
    while start < len(words):
        stop = int(np.searchsorted(offsets, offsets[start] + TOKENISE_CHARS, side="right"))
        stop = max(stop - 1, start + 1)  # at least one word, however long
        codes = np.frombuffer("".join(words[start:stop]).encode("utf-32-le"), dtype=np.uint32)
        found = np.minimum(codes, len(table) - 1)
        chunk = table[found]
        bad = (chunk == 0) | (codes >= len(table))
        if bad.any():
            raise DatasetError(f"character {chr(codes[np.argmax(bad)])!r} is not in the vocabulary")
        ids[offsets[start] : offsets[stop]] = chunk
        start = stop
    return Tokens(ids, offsets)


def tokenize_split(split: Split, vocab: Vocab) -> dict[str, Tokens]:
    """The tokens of each split's words: {"train": ..., "val": ..., "test": ...}."""
    return {name: tokenize(split[name], vocab) for name in ("train", "val", "test")}


def code_table(vocab: Vocab, dtype: np.dtype) -> np.ndarray:
    """Code point -> index (0 where the code point is no character of the vocabulary)."""
    codes = np.array([ord(ch) for ch in vocab.chars], dtype=np.int64)
    table = np.zeros(int(codes.max(initial=0)) + 1, dtype=dtype)
    table[codes] = np.arange(1, len(codes) + 1)
    return table


def window_rows(tokens: Tokens, examples: np.ndarray, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Examples (indices into the corpus' examples) as int64 context X[B, block_size] and target Y[B].

    Row i equals row examples[i] of `make_examples` over the same words.
    """
    examples = np.asarray(examples, dtype=np.int64)
    word = np.searchsorted(tokens.example_offsets, examples, side="right") - 1
    position = examples - tokens.example_offsets[word]  # 0..len(word): the index of the predicted character
    start = tokens.offsets[word]
    y = _gather(tokens.ids, start + position, position < tokens.lengths[word])
    before = position[:, None] - block_size + np.arange(block_size)  # character positions of the context
    x = _gather(tokens.ids, start[:, None] + before, before >= 0)
    return x, y


def _gather(ids: np.ndarray, index: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """int64 ids[index] where `valid`, the boundary elsewhere (where `index` may be out of range)."""
    if ids.size == 0:
        return np.full(index.shape, BOUNDARY, dtype=np.int64)
    return np.where(valid, ids[np.clip(index, 0, ids.size - 1)], BOUNDARY).astype(np.int64)


def sequence_rows(tokens: Tokens, words: np.ndarray, ignore: int) -> tuple[np.ndarray, np.ndarray]:
    """Words as int64 X, Y [B, longest + 1]: X (boundary, characters), Y (characters, boundary), padded.

    Padding is the boundary in X and `ignore` in Y. Row i equals row i of `make_sequences` of the same words
    (in the given order) cut to the batch's longest word + 1.
    """
    words = np.asarray(words, dtype=np.int64)
    lengths = tokens.lengths[words]
    width = int(lengths.max(initial=0)) + 1
    column = np.arange(width)
    inside = column < lengths[:, None]  # [B, width]: a character of the word at this column
    chars = _gather(tokens.ids, tokens.offsets[words][:, None] + column, inside)
    y = np.where(inside, chars, ignore)
    y[np.arange(len(words)), lengths] = BOUNDARY
    x = np.full((len(words), width), BOUNDARY, dtype=np.int64)
    x[:, 1:] = chars[:, :-1]
    return x, y


@dataclass(frozen=True)
class DistinctPairs:
    """The distinct (context, target) pairs of some window rows, how often each occurs, grouped by context.

    Context u is `contexts[u]`; its pairs are `targets[starts[u]:starts[u + 1]]`, occurring `counts[...]` times.
    A window model's loss over the rows is the count-weighted loss over the pairs, for one forward row per
    distinct context (names repeat their contexts: a million lines hold about a tenth as many).
    """

    contexts: np.ndarray
    starts: np.ndarray
    targets: np.ndarray
    counts: np.ndarray


def distinct_pairs(x: np.ndarray, y: np.ndarray) -> DistinctPairs:
    """The distinct pairs of int64 contexts x [B, block] and targets y [B] (any block, any vocabulary)."""
    radix = int(max(x.max(initial=0), y.max(initial=0))) + 1
    keys = _packed(np.column_stack([y, x]), radix)  # the target is the lowest digit of keys[0]
    order = np.argsort(keys[0]) if len(keys) == 1 else np.lexsort(keys)  # keys[-1] first ... keys[0] last
    keys = [key[order] for key in keys]
    new_context = np.zeros(len(y), dtype=bool)  # the first row of each distinct context, in sorted order
    new_context[:1] = True
    for key in [keys[0] // radix, *keys[1:]]:
        new_context[1:] |= key[1:] != key[:-1]
    new_pair = new_context.copy()
    new_pair[1:] |= keys[0][1:] != keys[0][:-1]
    pair_starts = np.flatnonzero(new_pair)
    context_of_pair = np.cumsum(new_context)[pair_starts] - 1
    return DistinctPairs(
        contexts=x[order[new_context]],
        starts=np.searchsorted(context_of_pair, np.arange(int(new_context.sum()) + 1)),
        targets=y[order[pair_starts]],
        counts=np.diff(np.append(pair_starts, len(y))),
    )


def _packed(columns: np.ndarray, radix: int) -> list[np.ndarray]:
    """The columns (values below `radix`) packed into as few int64 keys as hold them exactly, column 0 the
    lowest digit of the first key."""
    per_key = 1
    while per_key < columns.shape[1] and radix ** (per_key + 1) < 2**62:
        per_key += 1
    return [
        columns[:, start : start + per_key]
        @ (radix ** np.arange(min(per_key, columns.shape[1] - start), dtype=np.int64))
        for start in range(0, columns.shape[1], per_key)
    ]


def bigram_counts(tokens: Tokens, vocab_size: int, n_labels: int = 0, chunk: int = 1 << 20) -> np.ndarray:
    """int64 counts [V, V] of (previous index, next index) over every example, `chunk` examples at a time;
    with `n_labels` (labelled tokens), [n_labels, V, V]: each label's own counts."""
    cells = vocab_size * vocab_size
    counts = np.zeros(max(n_labels, 1) * cells, dtype=np.int64)
    for start in range(0, tokens.n_examples, chunk):
        examples = np.arange(start, min(start + chunk, tokens.n_examples))
        x, y = window_rows(tokens, examples, 1)
        key = x[:, 0] * vocab_size + y
        if n_labels:
            assert tokens.labels is not None
            key = key + tokens.labels[tokens.word_of_examples(examples)] * cells
        counts += np.bincount(key, minlength=len(counts))
    return counts.reshape(vocab_size, vocab_size) if not n_labels else counts.reshape(n_labels, vocab_size, vocab_size)
