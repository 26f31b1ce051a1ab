"""Issue 19, classes 1-3: every command that reads data reads it through one reader (data.reader).

A device is refused in one line, a pipe or FIFO is read once (and hashed as read), a line costs at most
MAX_LINE_BYTES whatever the file, and a character no name may contain is refused at read time, by the rule
that the trainer and the exporter apply too.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path
from unittest import mock

import pytest
import torch
from clirun import BIN, assert_usage_error, run
from hypothesis import given, settings
from hypothesis import strategies as st
from makemore.contract import ModelFileError
from makemore.contract.metadata import check_vocab
from makemore.data import (
    MAX_LINE_BYTES,
    MAX_VOCAB,
    DatasetError,
    bundled_names_path,
    is_line_break,
    is_name_char,
    read_lines,
    read_words,
    read_words_sha256,
    reader,
)
from makemore.data.corpus import read_corpus

NAMES = bundled_names_path().read_text(encoding="utf-8").splitlines()[:300]
INSIDE = ["\u2028", "\x85", "\r", "\x0b", "\x0c", "\x1c", "\u2029"]  # line breaks that are no '\n'
TIMEOUT = 120  # seconds: a command that hangs on a FIFO fails, it never blocks the suite


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> dict[str, Path]:
    """A small names file and a bigram trained on it (checkpoint and ONNX)."""
    from makemore.export.onnx_export import export_checkpoint
    from makemore.train.run import TrainRequest, run_training

    folder = tmp_path_factory.mktemp("readers")
    names = folder / "names.txt"
    names.write_text("".join(f"{name}\n" for name in NAMES), encoding="utf-8")
    run_training(TrainRequest(kind="bigram", data=names, out=folder / "m.pt", samples=0, quiet=True))
    export_checkpoint(folder / "m.pt", folder / "m.onnx")
    return {"folder": folder, "names": names, "pt": folder / "m.pt", "onnx": folder / "m.onnx"}


def commands(work: dict[str, Path]) -> dict[str, list[str]]:
    """Every command that reads a data file, the file's place marked DATA."""
    model, out = str(work["onnx"]), work["folder"]
    return {
        "mm-train": ["mm-train", "bigram", "--data", "DATA", "--out", str(out / "t.pt"), "--samples", "0"],
        "mm-sweep": [
            "mm-sweep",
            "--block-size",
            "2",
            "--n-embd",
            "2",
            "--n-hidden",
            "4",
            "--steps",
            "1",
            "--device",
            "cpu",
            "--data",
            "DATA",
        ],  # fmt: skip
        "mm-eval": ["mm-eval", model, "--data", "DATA"],
        "mm-gen --stats": ["mm-gen", model, "--n", "5", "--stats", "--data", "DATA"],
        "mm-gen --novel-vs": ["mm-gen", model, "--n", "5", "--novel-vs", "DATA"],
        "mm-serve": ["mm-serve", model, "--port", "0", "--data", "DATA"],
        "mm-plot": ["mm-plot", "bigram-counts", "--data", "DATA", "--out", str(out / "b.png")],
    }


COMMANDS = ["mm-train", "mm-sweep", "mm-eval", "mm-gen --stats", "mm-gen --novel-vs", "mm-serve", "mm-plot"]


def run_with(work: dict[str, Path], name: str, data: str | Path, **kwargs) -> subprocess.CompletedProcess:
    script, *args = commands(work)[name]
    return run(script, *[str(data) if arg == "DATA" else arg for arg in args], timeout=TIMEOUT, **kwargs)


def feed_fifo(path: Path, data: bytes) -> threading.Thread:
    """A FIFO at `path` that a daemon thread writes `data` into, once (it waits for a reader)."""
    os.mkfifo(path)

    def write() -> None:
        try:
            path.write_bytes(data)
        except BrokenPipeError:  # the reader refused the data before its end
            pass

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    return writer


@pytest.mark.parametrize("name", COMMANDS)
def test_a_device_is_refused_in_one_line(work, name) -> None:
    result = run_with(work, name, "/dev/zero")
    assert_usage_error(result)
    what = "--novel-vs" if name == "mm-gen --novel-vs" else "data"  # a names file's error names its flag
    assert f"{what} path is a device, not a file: /dev/zero" in result.stderr


@pytest.mark.parametrize("name", COMMANDS)
def test_a_folder_is_refused_in_one_line(work, name) -> None:
    result = run_with(work, name, work["folder"])
    assert_usage_error(result)
    assert "is a directory" in result.stderr


@pytest.mark.parametrize("kind", ["device", "folder", "socket", "missing"])
def test_every_path_that_is_no_file_is_one_error_from_every_reader(kind, tmp_path) -> None:
    import socket

    path = {"device": Path("/dev/null"), "folder": tmp_path, "missing": tmp_path / "nothing.txt"}.get(kind)
    with socket.socket(socket.AF_UNIX) as server:
        if kind == "socket":
            path = tmp_path / "s.sock"
            server.bind(str(path))
        for read in (read_lines, read_words, read_corpus):
            with pytest.raises(DatasetError) as caught:
                read(path)
            message = str(caught.value)
            assert "\n" not in message and str(path) in message
            said = {"device": "a device", "folder": "a directory", "socket": "a socket", "missing": "not found"}
            assert said[kind] in message


@pytest.mark.parametrize("name", [n for n in COMMANDS if n != "mm-serve"])  # mm-serve would serve: see below
def test_a_fifo_fed_once_is_read_once(work, name, tmp_path) -> None:
    fifo = tmp_path / "names.fifo"
    writer = feed_fifo(fifo, work["names"].read_bytes())
    result = run_with(work, name, fifo)  # a second open would wait for a writer that never comes: timeout
    writer.join(timeout=5)
    assert result.returncode == 0, result.stderr
    assert not writer.is_alive()
    assert "not the data this model was trained on" not in result.stderr  # hashed as read, as the file


def test_mm_serve_reads_a_fifo_once_and_its_workers_get_the_names(work, tmp_path) -> None:
    from loopback import running_server
    from makemore.runtime.serve.factory import ServeConfig, for_workers, known_names

    fifo = tmp_path / "names.fifo"
    feed_fifo(fifo, work["names"].read_bytes())
    with running_server(work["onnx"], "--data", str(fifo), startup_timeout=TIMEOUT):
        pass  # it answered /healthz: the FIFO was read, once
    feed_fifo(other := tmp_path / "again.fifo", work["names"].read_bytes())
    config = ServeConfig(str(work["onnx"]), str(other), processes=2)
    known = known_names(config)
    assert known == set(NAMES)
    with for_workers(config, known) as shared:  # what uvicorn's workers read: a regular file of the names
        assert Path(shared.data).is_file() and known_names(shared) == known
    assert not Path(shared.data).exists()
    plain = ServeConfig(str(work["onnx"]), str(work["names"]), processes=2)
    with for_workers(plain, known) as shared:
        assert shared == plain


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_pipe_trains_with_the_hash_of_what_was_read(work, tmp_path) -> None:
    out = tmp_path / "piped.pt"
    command = f'"{BIN}/mm-train" bigram --samples 0 --out "{out}" --data <(cat "{work["names"]}")'
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    checkpoint = torch.load(out, weights_only=True)
    assert checkpoint["data_sha256"] == sha256(work["names"]) != hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize("name", ["mm-eval", "mm-gen --stats"])
def test_a_pipe_is_compared_by_the_hash_of_what_was_read(work, name, tmp_path) -> None:
    other = tmp_path / "other.txt"
    other.write_text("ann\nbob\ncy\n", encoding="utf-8")
    for data, warned in ((work["names"], False), (other, True)):
        script, *args = commands(work)[name]
        line = " ".join(f'<(cat "{data}")' if arg == "DATA" else f'"{arg}"' for arg in args)
        result = subprocess.run(["bash", "-c", f'"{BIN}/{script}" {line}'], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert ("not the data this model was trained on" in result.stderr) == warned


@pytest.mark.parametrize("name", COMMANDS)
def test_a_line_over_the_limit_is_one_error(work, name, tmp_path) -> None:
    data = tmp_path / "long.txt"
    data.write_bytes(b"ann\nbob\n" + b"a" * (MAX_LINE_BYTES + 1) + b"\ncy\n")
    result = run_with(work, name, data)
    assert_usage_error(result)
    assert f"line 3 is longer than {MAX_LINE_BYTES:,} bytes" in result.stderr


def peak_rss_mb(argv: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    """Run `argv` as the only child of a fresh Python; its exit, its output and its peak resident memory."""
    probe = (
        "import resource, subprocess, sys;"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=120);"
        "sys.stderr.write(r.stderr); sys.stdout.write(r.stdout);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)"
    )
    result = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=TIMEOUT)
    *lines, peak = result.stderr.splitlines()
    result.stderr = "".join(f"{line}\n" for line in lines)
    return result, int(peak) / 1024


@pytest.mark.parametrize("name", COMMANDS)
def test_a_sparse_file_is_refused_in_bounded_memory(work, name, tmp_path) -> None:
    """One 256 MiB line of NULs (`truncate -s 256M`) costs what a 5-byte file with a NUL costs, give or take
    the blocks read: before, it cost gigabytes."""
    sparse, small = tmp_path / "sparse.txt", tmp_path / "small.txt"
    with open(sparse, "wb") as handle:
        handle.truncate(256 << 20)
    small.write_bytes(b"ab\n\x00\n")
    script, *args = commands(work)[name]
    peaks = {}
    streamed = name in ("mm-train", "mm-sweep")  # the others hold text: they refuse a file over MAX_TEXT_BYTES unread
    for data in (small, sparse):
        argv = [str(BIN / script), *[str(data) if arg == "DATA" else arg for arg in args]]
        result, peaks[data] = peak_rss_mb(argv)
        assert_usage_error(result)
        assert "NUL" in result.stderr if streamed or data == small else "the most this command reads" in result.stderr
    assert peaks[sparse] < peaks[small] + 64, peaks


@pytest.mark.parametrize("ch", INSIDE)
def test_mm_train_refuses_a_line_break_inside_a_word(work, ch, tmp_path) -> None:
    data = tmp_path / "words.txt"
    data.write_text(f"ann\nbob\nc{ch}y\ndee\n", encoding="utf-8")
    result = run("mm-train", "bigram", "--data", data, "--out", tmp_path / "m.pt", "--samples", 0, timeout=TIMEOUT)
    assert_usage_error(result)
    assert f"line 3 holds a character no name may contain: {ch!r}" in result.stderr
    assert not (tmp_path / "m.pt").exists()


def test_mm_train_refuses_more_characters_than_a_vocabulary_holds(tmp_path) -> None:
    data = tmp_path / "wide.txt"
    chars = [chr(c) for c in range(0x20000, 0x20000 + 100_500)]  # no whitespace, no line break, no surrogate
    data.write_text("".join(f"{''.join(chars[i : i + 500])}\n" for i in range(0, len(chars), 500)), encoding="utf-8")
    result = run("mm-train", "bigram", "--data", data, "--out", tmp_path / "m.pt", "--samples", 0, timeout=TIMEOUT)
    assert_usage_error(result)
    assert f"100,500 distinct characters, more than a vocabulary may hold ({MAX_VOCAB:,})" in result.stderr


def test_crlf_data_trains_as_lf_data(tmp_path) -> None:
    """A CR at a line's end is whitespace, stripped as before: CRLF files keep working, and alike."""
    from makemore.data.corpus import read_corpus

    lf, crlf = tmp_path / "lf.txt", tmp_path / "crlf.txt"
    lf.write_bytes("".join(f"{name}\n" for name in NAMES).encode())
    crlf.write_bytes("".join(f"{name}\r\n" for name in NAMES).encode())
    assert read_words(crlf) == read_words(lf) == NAMES
    a, b = read_corpus(lf), read_corpus(crlf)
    assert a.vocab == b.vocab and (a.tokens.ids == b.tokens.ids).all() and (a.tokens.offsets == b.tokens.offsets).all()
    assert b.sha256 == sha256(crlf)


def test_the_trainer_and_the_exporter_apply_the_readers_rule() -> None:
    """One rule: every character that the reader refuses inside a word, check_vocab refuses, and the trainer."""
    from makemore.data import Vocab, split_words
    from makemore.train.config import make_config
    from makemore.train.trainer import train

    for ch in [*INSIDE, "\n", "\x00", "\ud800"]:
        assert not is_name_char(ch)
        with pytest.raises(ModelFileError, match="no name may contain"):
            check_vocab("ab" + ch, "model")
        with pytest.raises(DatasetError, match="no name may contain"):
            train("bigram", make_config("bigram"), split_words(["ab", "ba", "aa", "bb"]), Vocab("ab" + ch))
    assert check_vocab("ab é", "model").chars == "ab é"
    with pytest.raises(ModelFileError, match="1 to 100,000"):
        check_vocab("".join(chr(0x20000 + i) for i in range(MAX_VOCAB + 1)), "model")


def test_every_line_break_is_whitespace_and_in_the_readers_table() -> None:
    """The reader's tables stop at U+3001: every line break (and every space) lies below."""
    breaks = [c for c in range(0x110000) if is_line_break(chr(c))]
    assert breaks and max(breaks) < len(reader.SPACE) - 1
    assert all(chr(c).isspace() for c in breaks)
    assert [c for c in range(len(reader.NOT_NAME)) if reader.NOT_NAME[c]] == [0, *breaks]


# What a data file means, written out plainly: the reference the reader must equal, byte for byte.
def reference(data: bytes, max_line: int) -> list[str] | None:
    """The words of `data` as documented, or None when it must be refused."""
    body = data[3:] if data.startswith(reader.BOM) else data
    if any(len(line) > max_line for line in body.split(b"\n")) or b"\x00" in body:
        return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    words = [word for word in map(str.strip, text.split("\n")) if word]
    if any(not is_name_char(ch) for word in words for ch in word):
        return None
    return words


PIECES = [b"a", b"b", "é".encode(), "\u4e2d".encode(), b" ", b"\t", b"\r", b"\n", b"\x00", b"\xff", b"\xe4\xb8",
          "\u2028".encode(), "\x85".encode(), b"\x0b", reader.BOM]  # fmt: skip
blobs = st.lists(st.sampled_from(PIECES), max_size=40).map(b"".join) | st.binary(max_size=40)


def outcome(read, path) -> object:
    try:
        return read(path)
    except DatasetError as err:
        assert "\n" not in str(err)
        return ("error", str(err))


@settings(max_examples=150, deadline=None)
@given(data=blobs, max_line=st.sampled_from([3, 6, 64]), block_bytes=st.sampled_from([1, 2, 5, 64, 1 << 22]))
def test_any_bytes_read_as_documented_or_are_one_error(tmp_path_factory, data, max_line, block_bytes) -> None:
    """For any bytes, from a file or a FIFO: the documented words, or one DatasetError, the same from every
    reader (read_lines, read_words, read_corpus with every block size), with the sha256 of those bytes."""
    folder = tmp_path_factory.mktemp("bytes")
    path = folder / "words.txt"
    path.write_bytes(data)
    with mock.patch.object(reader, "MAX_LINE_BYTES", max_line):
        lines = outcome(read_lines, path)
        expected = reference(data, max_line)
        assert (lines[0] == "error") if expected is None else (lines == expected)
        words = outcome(read_words_sha256, path)
        corpus = outcome(lambda p: read_corpus(p, block_bytes), path)
        if isinstance(words, tuple) and words[0] == "error":
            assert corpus == words
        else:
            assert words == (lines, hashlib.sha256(data).hexdigest())
            assert corpus.sha256 == words[1] and corpus.tokens.n_words == len(lines)
            assert corpus.vocab.chars == "".join(sorted(set("".join(lines))))
        fifo = folder / "words.fifo"
        writer = feed_fifo(fifo, data)
        from_fifo = outcome(read_words_sha256, fifo)  # a FIFO: read once, alike (its error names the FIFO)
        assert from_fifo == (words if words[0] != "error" else ("error", words[1].replace(str(path), str(fifo))))
        writer.join(timeout=5)


KMSG = Path("/proc/kmsg")  # a regular file whose read waits for the kernel's next message


@pytest.mark.skipif(not os.access(KMSG, os.R_OK), reason="/proc/kmsg is readable by root only")
@pytest.mark.parametrize("name", COMMANDS)
def test_a_pseudo_file_that_waits_for_data_is_refused_not_waited_on(work, name) -> None:
    result = run_with(work, name, KMSG)
    assert_usage_error(result)
    assert "waits for data" in result.stderr


def test_a_text_reader_stops_at_its_limit_on_a_pipe_and_refuses_a_bigger_file_unread(tmp_path, monkeypatch) -> None:
    """Readers that hold every line as text read at most MAX_TEXT_BYTES: a pipe is cut off there, a regular file
    over it is refused before a byte is read (a never-ending `yes | ...` no longer runs forever)."""
    from makemore.data import reader

    monkeypatch.setattr(reader, "MAX_TEXT_BYTES", 4096)
    fifo = tmp_path / "fifo"
    writer = feed_fifo(fifo, b"abc\n" * 5000)
    with pytest.raises(DatasetError, match="the most this command reads"):
        reader.read_text_lines(fifo)
    writer.join(TIMEOUT)
    big = tmp_path / "big.txt"
    big.write_bytes(b"abc\n" * 5000)
    with mock.patch.object(reader, "_reads", side_effect=AssertionError("read")):
        with pytest.raises(DatasetError, match="the most this command reads"):
            reader.read_text_lines(big)
    small = tmp_path / "ok.txt"
    small.write_bytes(b"ab\ncd\n")
    assert reader.read_text_lines(small)[0] == ["ab", "cd"]
