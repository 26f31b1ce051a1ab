"""A word list read straight into tokens: for every file, what read_words + tokenize give (or the same error)."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from makemore.data import DatasetError, Vocab, read_words, split_words, tokenize
from makemore.data.corpus import SPACE, read_corpus, split_corpus

# Words, whitespace that strip() removes (ASCII and beyond), line breaks that are no '\n', and characters
# of 1 to 4 UTF-8 bytes.
PIECES = ["a", "b", "é", "\u4e2d", "\U0001f600", " ", "\t", "\r", "\x0b", "\x85", "\xa0", "\u2028", "\u3000", "\n"]
texts = st.lists(st.sampled_from(PIECES), max_size=60).map("".join)
BLOCKS = st.sampled_from([1, 2, 3, 5, 8, 64, 1 << 22])


def old_reading(path) -> tuple[Vocab, object] | str:
    """read_words, the vocabulary and tokenize: the words as Python strings (or the error's message)."""
    try:
        words = read_words(path)
    except DatasetError as err:
        return str(err)
    vocab = Vocab.from_words(words)
    return vocab, tokenize(words, vocab)


def new_reading(path, block_bytes: int) -> tuple[Vocab, object] | str:
    try:
        corpus = read_corpus(path, block_bytes)
    except DatasetError as err:
        return str(err)
    return corpus.vocab, corpus.tokens


def assert_same(old, new) -> None:
    if isinstance(old, str) or isinstance(new, str):
        assert old == new
        return
    assert old[0] == new[0]
    np.testing.assert_array_equal(old[1].ids, new[1].ids)
    np.testing.assert_array_equal(old[1].offsets, new[1].offsets)
    assert old[1].ids.dtype == new[1].ids.dtype


@settings(max_examples=300, deadline=None)
@given(text=texts, bom=st.booleans(), block_bytes=BLOCKS)
def test_every_text_reads_as_read_words_and_tokenize(tmp_path_factory, text, bom, block_bytes) -> None:
    path = tmp_path_factory.mktemp("corpus") / "words.txt"
    path.write_bytes(b"\xef\xbb\xbf" * bom + text.encode("utf-8"))
    assert_same(old_reading(path), new_reading(path, block_bytes))


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=40), block_bytes=BLOCKS)
def test_any_bytes_read_alike_or_fail_alike(tmp_path_factory, data, block_bytes) -> None:
    """Bad UTF-8 names the same byte; with a NUL too, the first fault in the file wins, however it is read."""
    path = tmp_path_factory.mktemp("corpus") / "words.bin"
    path.write_bytes(b"ab\n\x00\n" * (data[:1] == b"\x00") + b"ab\ncd\n" + data)
    assert_same(old_reading(path), new_reading(path, block_bytes))


def test_the_bundled_names_read_alike() -> None:
    from makemore.data import bundled_names_path

    assert_same(old_reading(bundled_names_path()), new_reading(bundled_names_path(), 1 << 12))


@pytest.mark.parametrize("make", [lambda p: p, lambda p: p / "missing.txt"])
def test_a_folder_or_a_missing_file_is_one_error(tmp_path, make) -> None:
    assert_same(old_reading(make(tmp_path)), new_reading(make(tmp_path), 64))


def test_no_whitespace_lies_beyond_the_space_table() -> None:
    assert not any(chr(c).isspace() for c in range(len(SPACE) - 1, 0x110000))
    assert [c for c in range(len(SPACE) - 1) if SPACE[c]] == [c for c in range(len(SPACE) - 1) if chr(c).isspace()]


@settings(max_examples=100, deadline=None)
@given(
    words=st.lists(st.text(alphabet="abé\u4e2d", min_size=1, max_size=6), min_size=3, max_size=40),
    seed=st.integers(0, 2**64 - 1),
)
def test_the_split_of_the_tokens_is_the_split_of_the_words(words, seed) -> None:
    vocab = Vocab.from_words(words)
    tokens = split_corpus(tokenize(words, vocab), seed)
    split = split_words(words, seed)
    for name in ("train", "val", "test"):
        expected = tokenize(split[name], vocab)
        np.testing.assert_array_equal(tokens[name].ids, expected.ids)
        np.testing.assert_array_equal(tokens[name].offsets, expected.offsets)


def test_a_file_that_grows_between_the_passes_is_one_error(tmp_path, monkeypatch) -> None:
    from makemore.data import corpus

    path = tmp_path / "words.txt"
    path.write_text("ann\nbob\ncy\n")
    blocks = corpus.data_blocks

    def growing(*args):
        yield from blocks(*args)
        path.write_text("ann\nbob\ncy\ndee\n")

    monkeypatch.setattr(corpus, "data_blocks", growing)
    with pytest.raises(DatasetError, match="changed while it was read"):
        read_corpus(path)


def test_a_pipe_is_read_once_and_a_device_is_refused(tmp_path) -> None:
    """`--data <(zcat words.gz)` cannot be read twice: its words are read once, as read_words reads them."""
    fifo = tmp_path / "words.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(b"\xef\xbb\xbfann\nbob\ncy\n"))
    writer.start()
    corpus = read_corpus(fifo, 2)
    writer.join()
    assert corpus.vocab.chars == "abcnoy" and corpus.tokens.n_words == 3
    with pytest.raises(DatasetError, match="^data path is a device, not a file: /dev/zero$"):
        read_corpus("/dev/zero")
