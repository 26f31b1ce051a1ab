"""Read a word list, build its vocabulary, split it, and turn words into (context, next) pairs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np
from makemore.data.errors import DatasetError, UserError
from makemore.data.reader import not_utf8, read_text_lines, reading  # noqa: F401 - the last two re-exported

BOUNDARY = 0  # index of the start/end-of-word token; it is no character of the data
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
SEED_MAX = 2**64 - 1  # seeds are 0..2**64-1 everywhere (torch.manual_seed's range; numpy takes any of them)


def check_seed(value: object, name: str = "seed") -> int:
    """A seed as an int in 0..SEED_MAX; UserError naming `name` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= SEED_MAX:
        raise UserError(f"{name} must be an integer from 0 to 2**64-1, got {value!r}")
    return value


def bundled_names_path() -> Path:
    """Path of the bundled names.txt (32,033 first names)."""
    return Path(str(resources.files("makemore.data").joinpath("names.txt")))


def read_lines(path: str | Path) -> list[str]:
    """Read a UTF-8 file of one item per line; strip each line and drop blank ones (see reader.data_blocks: a
    pipe is read once, a device refused, every line checked as it is read)."""
    return read_text_lines(path)[0]


def read_words(path: str | Path) -> list[str]:
    """Read a dataset (as `read_lines`) and check it can be split and learned from."""
    return read_words_sha256(path)[0]


def read_words_sha256(path: str | Path) -> tuple[list[str], str]:
    """`read_words`, and the sha256 of the bytes read (the file read once: a pipe or FIFO has no second read)."""
    words, sha256 = read_text_lines(path)
    check_usable(path, len(words), lambda: words.count(words[0]) == len(words))  # no set of a million strings
    return words, sha256


def check_usable(path: str | Path, n_words: int, all_alike: Callable[[], bool]) -> None:
    """A dataset's words can be split and learned from: some words, at least 2 distinct (`all_alike()`: whether
    every word equals the first, asked only when there are words), at least 3; DatasetError otherwise."""
    if n_words == 0:
        raise DatasetError(f"data file has no words: {path}")
    if all_alike():
        raise DatasetError(f"data file needs at least 2 distinct words, found 1: {path}")
    if n_words < 3:
        raise DatasetError(f"data file needs at least 3 words for a train/val/test split: {path}")


@dataclass(frozen=True)
class Vocab:
    """Characters for indices 1..V-1; index 0 is the boundary token."""

    chars: str

    @classmethod
    def from_words(cls, words: list[str]) -> Vocab:
        return cls("".join(sorted(set("".join(words)))))

    @property
    def size(self) -> int:
        """V: the characters plus the boundary token."""
        return len(self.chars) + 1

    @cached_property
    def index(self) -> dict[str, int]:
        """Character -> index (1..V-1)."""
        return {ch: i + 1 for i, ch in enumerate(self.chars)}

    def encode(self, word: str) -> list[int]:
        try:
            return [self.index[ch] for ch in word]
        except KeyError as err:
            raise DatasetError(f"character {err.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids: list[int] | np.ndarray) -> str:
        return "".join(self.chars[i - 1] for i in ids if i != BOUNDARY)

    def decode_rows(self, tokens: np.ndarray) -> list[str]:
        """Decode int rows [N, L], each a word padded with boundary (0) tokens, in one numpy pass.

        Index -> code point, then each row viewed as one fixed-width string: numpy drops the
        trailing NULs that the padding becomes (no character of the data is NUL: see read_lines).
        """
        code_points = np.array([0] + [ord(ch) for ch in self.chars], dtype=np.uint32)
        text = np.ascontiguousarray(code_points[tokens])
        return text.view(f"<U{max(tokens.shape[1], 1)}").ravel().tolist()


@dataclass(frozen=True)
class Split:
    """Train/val/test words, in shuffled order."""

    train: list[str]
    val: list[str]
    test: list[str]

    def __getitem__(self, name: str) -> list[str]:
        if name not in ("train", "val", "test"):
            raise DatasetError(f"unknown split {name!r}: choose train, val or test")
        words: list[str] = getattr(self, name)
        return words


def split_counts(n: int, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS) -> tuple[int, int, int]:
    """Words in train, val and test when n words are split by `fractions` (each split non-empty)."""
    n_val = max(1, int(round(n * fractions[1])))
    n_test = max(1, int(round(n * fractions[2])))
    if n - n_val - n_test < 1:
        raise DatasetError(f"too few words ({n}) for a train/val/test split")
    return n - n_val - n_test, n_val, n_test


def split_order(
    n: int, seed: int = 42, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
) -> dict[str, np.ndarray]:
    """The split rule, in one place: the indices of `n` words in train, val and test, in split order (a shuffle with
    `seed` cut by `fractions`, each split non-empty). Words, tokens and labelled items all split by it."""
    order = np.random.default_rng(seed).permutation(n)
    n_train, n_val, _ = split_counts(n, fractions)
    return {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}


def split_words(words: list[str], seed: int = 42, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS) -> Split:
    """Shuffle with `seed` and cut into train/val/test by `fractions` (split_order)."""
    every = np.array(words, dtype=object)  # 8 bytes a word, no list of a million Python ints
    return Split(**{name: every[index].tolist() for name, index in split_order(len(words), seed, fractions).items()})


def encode_words(words: list[str], vocab: Vocab) -> np.ndarray:
    """The indices of every character of `words`, concatenated (int64), in one vectorised pass."""
    text = "".join(words).encode("utf-32-le", "surrogatepass")  # a lone surrogate (a stray byte of argv): in no vocab
    codes = np.frombuffer(text, dtype=np.uint32)
    vocab_codes = np.array([ord(ch) for ch in vocab.chars], dtype=np.uint32)
    order = np.argsort(vocab_codes)
    where = np.minimum(np.searchsorted(vocab_codes[order], codes), len(order) - 1)
    found = vocab_codes[order][where] == codes
    if not found.all():
        raise DatasetError(f"character {chr(codes[np.argmin(found)])!r} is not in the vocabulary")
    return order[where].astype(np.int64) + 1


def make_examples(words: list[str], vocab: Vocab, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """All (context, next index) pairs: int64 X[N, block_size] and Y[N], built without a Python loop per character.

    Each word contributes len(word) + 1 examples: every character, then the end boundary. Each word is laid
    out as block_size boundaries then its characters; its contexts are the windows over that layout.
    """
    lengths = np.array([len(word) for word in words], dtype=np.int64)
    ids = encode_words(words, vocab)
    if len(words) == 0:
        return np.zeros((0, block_size), dtype=np.int64), np.zeros(0, dtype=np.int64)
    padded = lengths + block_size  # each word's layout: block_size boundaries, then its characters
    layout_start = np.concatenate([[0], np.cumsum(padded)[:-1]])
    layout = np.zeros(int(padded.sum()), dtype=np.int64)
    char_pos = np.repeat(layout_start + block_size - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    layout[char_pos + np.arange(len(ids))] = ids
    examples = lengths + 1
    first = np.repeat(layout_start - np.concatenate([[0], np.cumsum(examples)[:-1]]), examples)
    starts = first + np.arange(int(examples.sum()))  # window start of every example
    x = np.lib.stride_tricks.sliding_window_view(np.concatenate([layout, np.zeros(1, np.int64)]), block_size)[starts]
    y = np.zeros(len(starts), dtype=np.int64)
    ends = np.cumsum(examples) - 1  # the end-boundary example of each word
    y[np.setdiff1d(np.arange(len(starts)), ends, assume_unique=True)] = ids
    return np.ascontiguousarray(x), y
