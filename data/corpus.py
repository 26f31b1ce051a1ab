"""A word list read straight into tokens, streamed: memory follows the tokens, never a Python string per word.

`read_corpus(path)` gives what `read_words` and `tokenize` give together (the same words, vocabulary and
indices, the same errors) while holding at most one block of the file as text. A regular file is read twice,
block by block, through reader.data_blocks (each block whole lines, checked as read): the first pass finds the
vocabulary, the sizes and the sha256, the second fills arrays of exactly those sizes; a pipe is read once.
Within a block every step is vectorised (UTF-32 code points, line and whitespace masks): no Python loop per
line or character. `split_corpus` cuts the tokens into train/val/test exactly as `split_words` cuts the words.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from makemore.data.dataset import (
    DEFAULT_FRACTIONS,
    Vocab,
    check_usable,
    read_words_sha256,
    split_order,
)
from makemore.data.errors import DatasetError
from makemore.data.labels import labelled_tokens, read_labelled
from makemore.data.reader import (
    MAX_CODE_POINT,
    READ_BYTES,
    SPACE,  # noqa: F401 - re-exported (the tests read it here)
    block_words,
    check_vocab_size,
    data_blocks,
    is_regular_file,
)
from makemore.data.tokens import Tokens, code_table, token_dtype, tokenize


@dataclass(frozen=True)
class Corpus:
    """The words of a file, in file order, as tokens over their vocabulary, and the sha256 of the bytes read."""

    vocab: Vocab
    tokens: Tokens
    sha256: str
    labels: tuple[str, ...] = ()  # labelled data: the label names, sorted (tokens.labels index them)


def read_corpus(path: str | Path, block_bytes: int = READ_BYTES) -> Corpus:
    """The words of a UTF-8 file (one a line, stripped, blank lines dropped) as tokens, checked as `read_words`
    checks them (DatasetError otherwise), with the sha256 of the bytes read."""
    path = Path(path)
    if not is_regular_file(path):  # a pipe (`--data <(zcat words.gz)`) cannot be read twice: read it once
        words, sha256 = read_words_sha256(path)
        vocab = Vocab.from_words(words)
        return Corpus(vocab, tokenize(words, vocab), sha256)
    digest = hashlib.sha256()
    seen = np.zeros(MAX_CODE_POINT + 1, dtype=bool)
    n_words = n_chars = 0
    for chars, lengths in _words(path, block_bytes, digest):
        seen[chars] = True
        n_words, n_chars = n_words + len(lengths), n_chars + len(chars)
    check_vocab_size(int(np.count_nonzero(seen)), path)
    vocab = Vocab("".join(map(chr, np.flatnonzero(seen).tolist())))
    table = code_table(vocab, token_dtype(vocab.size))
    ids = np.empty(n_chars, dtype=table.dtype)
    offsets = np.empty(n_words + 1, dtype=np.int64)
    offsets[0] = word = char = 0
    for chars, lengths in _words(path, block_bytes):
        if word + len(lengths) > n_words or char + len(chars) > n_chars or (chars >= len(table)).any():
            raise DatasetError(f"data file changed while it was read: {path}")
        ids[char : char + len(chars)] = table[chars]
        offsets[word + 1 : word + len(lengths) + 1] = char + np.cumsum(lengths)
        word, char = word + len(lengths), char + len(chars)
    if (word, char) != (n_words, n_chars) or (ids == 0).any():
        raise DatasetError(f"data file changed while it was read: {path}")
    tokens = Tokens(ids, offsets)
    check_usable(path, n_words, lambda: _all_alike(tokens))
    return Corpus(vocab, tokens, digest.hexdigest())


def read_labelled_corpus(path: str | Path) -> Corpus:
    """The items of a file of `label<TAB>item` lines (data.labels.read_labelled) as tokens with their labels."""
    words = read_labelled(path)
    vocab, tokens, names = labelled_tokens(words)
    return Corpus(vocab, tokens, words.sha256, names)


def _all_alike(tokens: Tokens, rows: int = 1 << 20) -> bool:
    """Whether every word equals the first (compared `rows` words at a time)."""
    length = int(tokens.lengths[0])
    if (tokens.lengths != length).any():
        return False
    if length == 0:
        return True
    words = tokens.ids.reshape(-1, length)
    return all((words[start : start + rows] == words[0]).all() for start in range(0, len(words), rows))


def _words(
    path: Path, block_bytes: int, digest: hashlib._Hash | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per block of the file: the code points of its words, concatenated, and each word's length (int64)."""
    return (block_words(block, path) for block in data_blocks(path, block_bytes, digest))


def split_corpus(
    tokens: Tokens, seed: int = 42, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
) -> dict[str, Tokens]:
    """Train/val/test tokens: the words of `split_words(words, seed, fractions)`, in the same order."""
    return {name: tokens.take_words(words) for name, words in split_order(tokens.n_words, seed, fractions).items()}
