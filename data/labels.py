"""Labelled data: lines of `label<TAB>item`, read into the items' tokens and each item's label index.

A line holds exactly one tab: the label before it, the item after it, each stripped of whitespace; blank lines are
dropped. A line without a tab, with an empty label or item, or with a tab inside its item (a second tab) is a
one-line DatasetError naming the line. Labels are indexed in sorted order (the same data: the same indices).
The file is read once through reader.data_blocks (every line checked as read) and held as text, so at most
MAX_TEXT_BYTES are read (as mm-eval's reader); the split is the plain data's (split_corpus: same split_seed rule).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from makemore.data.bounds import MAX_LABEL_LEN, MAX_LABELS
from makemore.data.dataset import DEFAULT_FRACTIONS, Vocab, check_usable, split_order
from makemore.data.errors import DatasetError
from makemore.data.reader import MAX_TEXT_BYTES, READ_BYTES, Block, check_vocab_size, data_blocks, is_name_char
from makemore.data.tokens import Tokens, tokenize

LABELLED_HELP = "The data file's lines are label<TAB>item: train a conditional model (see docs/labels.md)."


def label_problem(label: object) -> str | None:
    """Why `label` can be no label (not a string, empty, longer than MAX_LABEL_LEN, not printable, or
    surrounded by whitespace), or None."""
    if not isinstance(label, str) or not 1 <= len(label) <= MAX_LABEL_LEN:
        return f"a label must be 1 to {MAX_LABEL_LEN} characters"
    if not label.isprintable() or label != label.strip() or "\t" in label:
        return "a label must be printable text without surrounding whitespace"
    return None


@dataclass(frozen=True)
class LabelledWords:
    """The items of a labelled file in file order, each item's label, and the sha256 of the bytes read."""

    labels: list[str]
    items: list[str]
    sha256: str


def parse_line(line: str, number: int, path: Path) -> tuple[str, str] | None:
    """(label, item) of one line of labelled data; None for a blank line; DatasetError naming the line otherwise."""
    if not line.strip():
        return None
    where = f"labelled data line {number}"
    if "\t" not in line:
        raise DatasetError(f"{where} has no tab (each line is label<TAB>item): {path}")
    label, _, item = line.partition("\t")
    if "\t" in item:
        raise DatasetError(f"{where} has a tab inside its item (one tab a line: label<TAB>item): {path}")
    label, item = label.strip(), item.strip()
    if not label:
        raise DatasetError(f"{where} has an empty label: {path}")
    if not item:
        raise DatasetError(f"{where} has an empty item: {path}")
    if (problem := label_problem(label)) is not None:
        raise DatasetError(f"{where}: {problem}: {path}")
    bad = next((ch for ch in item if not is_name_char(ch)), None)
    if bad is not None:
        raise DatasetError(f"{where} holds a character no name may contain: {bad!r} (U+{ord(bad):04X}): {path}")
    return label, item


def _block_lines(block: Block) -> Iterator[tuple[int, str]]:
    """(line number, text) of every line of a checked block."""
    codes = block.codes
    text = codes.tobytes().decode("ascii" if codes.dtype == np.uint8 else "utf-32-le")
    for offset, line in enumerate(text.split("\n")):
        yield block.line + offset, line


def read_labelled(path: str | Path, block_bytes: int = READ_BYTES) -> LabelledWords:
    """Every (label, item) of a labelled file, checked line by line (DatasetError at the first bad one), and the
    data's usability: items as read_words checks them, at most MAX_LABELS labels."""
    path = Path(path)
    digest = hashlib.sha256()
    labels: list[str] = []
    items: list[str] = []
    distinct: set[str] = set()
    for block in data_blocks(path, block_bytes, digest, limit=MAX_TEXT_BYTES):
        for number, line in _block_lines(block):
            pair = parse_line(line, number, path)
            if pair is None:
                continue
            distinct.add(pair[0])
            if len(distinct) > MAX_LABELS:
                raise DatasetError(f"labelled data has more than {MAX_LABELS:,} distinct labels: {path}")
            labels.append(pair[0])
            items.append(pair[1])
    check_vocab_size(len(set().union(*items)) if items else 0, path)
    check_usable(path, len(items), lambda: items.count(items[0]) == len(items))
    return LabelledWords(labels, items, digest.hexdigest())


def label_indices(labels: list[str], names: tuple[str, ...]) -> np.ndarray:
    """Each label's index in `names` (int64)."""
    index = {name: i for i, name in enumerate(names)}
    return np.fromiter((index[label] for label in labels), dtype=np.int64, count=len(labels))


def labelled_tokens(words: LabelledWords) -> tuple[Vocab, Tokens, tuple[str, ...]]:
    """The items' vocabulary and tokens (with each item's label index) and the label names, sorted."""
    vocab = Vocab.from_words(words.items)
    names = tuple(sorted(set(words.labels)))
    tokens = tokenize(words.items, vocab)
    return vocab, Tokens(tokens.ids, tokens.offsets, label_indices(words.labels, names)), names


def label_counts(tokens: Tokens, n_labels: int) -> list[int]:
    """How many words of `tokens` carry each label index (the training frequencies)."""
    if tokens.labels is None:
        raise ValueError("these tokens have no labels")
    return [int(count) for count in np.bincount(tokens.labels, minlength=n_labels)]


def split_labelled(
    words: LabelledWords, seed: int = 42, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
) -> dict[str, list[tuple[str, str]]]:
    """The (label, item) pairs of each split: the items of `split_words(words.items, seed, fractions)`, in its
    order, each with its label."""
    cuts = split_order(len(words.items), seed, fractions)
    return {name: [(words.labels[i], words.items[i]) for i in index.tolist()] for name, index in cuts.items()}
