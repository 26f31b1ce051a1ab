"""A word list read straight into tokens, streamed: memory follows the tokens, never a Python string per word.

`read_corpus(path)` gives what `read_words` and `tokenize` give together (the same words, vocabulary and
indices, the same errors) while holding at most one block of the file as text. The file is read twice, block
by block, each block cut at its last newline: the first pass finds the vocabulary and the sizes, the second
fills arrays of exactly those sizes. Within a block every step is vectorised (UTF-32 code points, line and
whitespace masks): no Python loop per line or character. `split_corpus` cuts the tokens into train/val/test
exactly as `split_words` cuts the words.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from makemore.data.dataset import (
    DEFAULT_FRACTIONS,
    DatasetError,
    Vocab,
    check_usable,
    not_utf8,
    read_words,
    reading,
    split_counts,
)
from makemore.data.tokens import Tokens, code_table, token_dtype, tokenize

READ_BYTES = 1 << 22  # bytes read (then decoded) at a time: bounds the text and code points held at once
BOM = b"\xef\xbb\xbf"
MAX_CODE_POINT = 0x10FFFF
# Every code point that str.strip() removes (str.isspace); none lies above U+3000 (a test holds this).
# The last entry stands for every code point above U+3000: no whitespace.
SPACE = np.array([chr(c).isspace() for c in range(0x3002)], dtype=bool)


@dataclass(frozen=True)
class Corpus:
    """The words of a file, in file order, as tokens over their vocabulary."""

    vocab: Vocab
    tokens: Tokens


def read_corpus(path: str | Path, block_bytes: int = READ_BYTES) -> Corpus:
    """The words of a UTF-8 file (one a line, stripped, blank lines dropped) as tokens, checked as `read_words`
    checks them (DatasetError otherwise)."""
    path = Path(path)
    if not _is_regular_file(path):  # a pipe (`--data <(zcat words.gz)`) cannot be read twice: read it once
        words = read_words(path)
        vocab = Vocab.from_words(words)
        return Corpus(vocab, tokenize(words, vocab))
    seen = np.zeros(MAX_CODE_POINT + 1, dtype=bool)
    n_words = n_chars = 0
    for chars, lengths in _words(path, block_bytes):
        seen[chars] = True
        n_words, n_chars = n_words + len(lengths), n_chars + len(chars)
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
    return Corpus(vocab, tokens)


def _is_regular_file(path: Path) -> bool:
    """Whether `path` is a regular file (read in two passes); a device is refused (DatasetError), a missing
    path, a folder or a pipe is not a regular file."""
    with reading(path):
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            return False  # read_words names it
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        raise DatasetError(f"data path is a device, not a file: {path}")
    return stat.S_ISREG(mode)


def _all_alike(tokens: Tokens, rows: int = 1 << 20) -> bool:
    """Whether every word equals the first (compared `rows` words at a time)."""
    length = int(tokens.lengths[0])
    if (tokens.lengths != length).any():
        return False
    if length == 0:
        return True
    words = tokens.ids.reshape(-1, length)
    return all((words[start : start + rows] == words[0]).all() for start in range(0, len(words), rows))


def _words(path: Path, block_bytes: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per block of the file: the code points of its words, concatenated, and each word's length (int64)."""
    return map(_block_words, _blocks(path, block_bytes))


def _blocks(path: Path, block_bytes: int) -> Iterator[np.ndarray]:
    """The file's code points block by block, each block ending at a newline (the last one at the file's end):
    an ASCII block's bytes (uint8), any other's UTF-32 (uint32), checked as UTF-8 once. A NUL is reported once
    every block has decoded, as read_lines reports it."""
    nul = False
    with reading(path), path.open("rb") as handle:
        start = handle.read(len(BOM))
        pieces = [b"" if start == BOM else start]  # the bytes since the last newline (a line may span blocks)
        offset = 0  # bytes before this block, after a leading BOM (as utf-8-sig counts them)
        while data := handle.read(block_bytes):
            cut = data.rfind(b"\n") + 1
            pieces.append(data[:cut] if cut else data)
            if cut:
                block, pieces = b"".join(pieces), [data[cut:]]
                yield _code_points(block, offset, path)
                nul, offset = nul or b"\x00" in block, offset + len(block)
        if block := b"".join(pieces):
            yield _code_points(block, offset, path)
            nul = nul or b"\x00" in block
    if nul:
        raise DatasetError(f"data file contains NUL characters (is it binary?): {path}")


def _code_points(block: bytes, offset: int, path: Path) -> np.ndarray:
    """An ASCII block's bytes (uint8), any other's code points (uint32); DatasetError if it is no UTF-8 text (a
    bad byte's offset counts from `offset`)."""
    if block.isascii():
        return np.frombuffer(block, dtype=np.uint8)
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as err:
        raise not_utf8(path, offset + err.start) from None
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def _block_words(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The words of a text's code points: each line split at '\\n', stripped of whitespace, blank lines dropped.

    Returns the kept code points (codes' dtype, word after word) and the words' lengths (int64).
    """
    space = SPACE[codes] if codes.dtype == np.uint8 else SPACE[np.minimum(codes, len(SPACE) - 1)]
    solid = np.flatnonzero(~space)  # every code point that is no whitespace
    if solid.size == 0:
        return codes[:0], np.zeros(0, dtype=np.int64)
    line = np.cumsum(codes == ord("\n"), dtype=np.int32)[solid]  # the line of each of them
    new_line = np.flatnonzero(line[1:] != line[:-1]) + 1
    first = solid[np.concatenate([[0], new_line])]  # first and last non-space code point of every word
    last = solid[np.concatenate([new_line - 1, [solid.size - 1]])]
    inside = np.zeros(codes.size + 1, dtype=np.int8)  # +1 at a word's start, -1 after its end (never both at
    inside[first] = 1  # one place: a newline lies between one word's end and the next word's start)
    inside[last + 1] = -1
    np.cumsum(inside, out=inside)
    return codes[inside[:-1].view(bool)], (last - first + 1).astype(np.int64)


def split_corpus(
    tokens: Tokens, seed: int = 42, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
) -> dict[str, Tokens]:
    """Train/val/test tokens: the words of `split_words(words, seed, fractions)`, in the same order."""
    order = np.random.default_rng(seed).permutation(tokens.n_words)
    n_train, n_val, _ = split_counts(tokens.n_words, fractions)
    cuts = {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
    return {name: tokens.take_words(words) for name, words in cuts.items()}
