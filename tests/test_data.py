"""Datasets: reading, vocabulary, split and examples (pure Python + numpy)."""

from __future__ import annotations

import numpy as np
import pytest
from makemore.data import BOUNDARY, DatasetError, Vocab, make_examples, read_lines, read_words, split_words


def test_bundled_names(names_path) -> None:
    words = read_words(names_path)
    assert len(words) == 32033
    assert Vocab.from_words(words).chars == "abcdefghijklmnopqrstuvwxyz"


def test_vocab_is_characters_seen_with_boundary_at_zero() -> None:
    vocab = Vocab.from_words(["b.a", "a-1", "é z"])
    assert vocab.chars == " -.1abzé"
    assert vocab.size == len(vocab.chars) + 1
    assert BOUNDARY == 0
    assert sorted(vocab.index.values()) == list(range(1, vocab.size))
    assert vocab.encode("a.b") == [5, 3, 6]
    assert vocab.decode([5, 3, 6, BOUNDARY]) == "a.b"


def test_vocab_rejects_unknown_character() -> None:
    with pytest.raises(DatasetError, match="not in the vocabulary"):
        Vocab("ab").encode("abc")


def test_read_lines_strips_and_drops_blank_lines(tmp_path) -> None:
    path = tmp_path / "words.txt"
    path.write_text("\ufeffemma\n\n  olivia \r\n\t\n ava\n   \n", encoding="utf-8")
    assert read_lines(path) == ["emma", "olivia", "ava"]


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "no words"), ("\n \n", "no words"), ("same\nsame\nsame\n", "2 distinct"), ("a\nb\n", "at least 3")],
)
def test_read_words_refuses_unusable_data(tmp_path, content, message) -> None:
    path = tmp_path / "words.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError, match=message):
        read_words(path)


def test_read_words_refuses_missing_and_non_utf8(tmp_path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        read_words(tmp_path / "missing.txt")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("josé\nzoë\nana\n".encode("latin-1"))
    with pytest.raises(DatasetError, match="not UTF-8"):
        read_words(bad)


def test_split_is_deterministic_80_10_10(names_path) -> None:
    words = read_words(names_path)
    split = split_words(words, seed=42)
    again = split_words(words, seed=42)
    assert (split.train, split.val, split.test) == (again.train, again.val, again.test)
    assert (len(split.train), len(split.val), len(split.test)) == (25627, 3203, 3203)
    assert sorted(split.train + split.val + split.test) == sorted(words)
    other = split_words(words, seed=7)
    assert other.val != split.val
    assert sorted(other.train + other.val + other.test) == sorted(words)


def test_split_keeps_every_part_non_empty() -> None:
    split = split_words(["a", "b", "c"], seed=0)
    assert [len(split[name]) for name in ("train", "val", "test")] == [1, 1, 1]
    with pytest.raises(DatasetError, match="unknown split"):
        split["dev"]


def test_make_examples_shapes_and_values() -> None:
    vocab = Vocab.from_words(["ab", "c"])
    x, y = make_examples(["ab", "c"], vocab, block_size=3)
    assert x.dtype == np.int64 and y.dtype == np.int64
    assert x.shape == (5, 3) and y.shape == (5,)  # (len + 1) examples per word
    assert x.tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 2], [0, 0, 0], [0, 0, 3]]
    assert y.tolist() == [1, 2, 0, 3, 0]
    x1, y1 = make_examples(["ab"], vocab, block_size=1)
    assert x1.tolist() == [[0], [1], [2]] and y1.tolist() == [1, 2, 0]
