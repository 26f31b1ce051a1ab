"""One reader for every data file (mm-train, mm-sweep, mm-eval, mm-gen, mm-serve, mm-plot), in bounded memory.

`data_blocks(path)` reads a file once, block by block: each block is whole lines, checked as it comes (no NUL,
UTF-8, no line over MAX_LINE_BYTES) before any later byte is read, and every byte read goes into the sha256
that names the data. A regular file may be read again (read_corpus' two passes); a pipe or a FIFO is read once;
a device or a folder is refused. `block_words` cuts a block into words (each line stripped, blank ones dropped)
and refuses a character no name may contain (`is_name_char`: the one rule that the trainer and the exporter
apply too). Errors are one-line DatasetErrors naming the line.
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from makemore.data.errors import DatasetError

MAX_LINE_BYTES = 1 << 16  # bytes one line of data may hold (its newline aside): a longer line is refused unread
MAX_VOCAB = 100_000  # distinct characters a vocabulary (so the data) may hold
# Bytes a reader that holds every line as text (mm-eval --data, mm-gen --stats/--novel-vs, mm-serve --data, mm-plot,
# and mm-train or mm-sweep on a pipe) reads at most: such a reader holds up to 20 bytes per byte of data. mm-train
# and mm-sweep stream a regular file into tokens and have no such limit.
MAX_TEXT_BYTES = 64 << 20
DATA_HELP = f"Text file, one item per line ({MAX_LINE_BYTES >> 10} KiB at most each) [default: bundled names]"
READ_BYTES = 1 << 22  # bytes read (then decoded) at a time: bounds the text and code points held at once
BOM = b"\xef\xbb\xbf"
MAX_CODE_POINT = 0x10FFFF
UTF8_LONGEST = 4  # bytes of the longest UTF-8 sequence


def is_line_break(ch: str) -> bool:
    """Whether printing `ch` would break a line (newline, carriage return, U+2028, ...)."""
    return len(f"a{ch}b".splitlines()) > 1


# Every code point that str.strip() removes (str.isspace); none lies above U+3000 (a test holds this).
# The last entry stands for every code point above U+3000: no whitespace. Built on first use (reading data), not
# at import: the runtime's commands import this module and never read data at their cold start.
SPACE_CODES = 0x3002


@functools.cache
def space_table() -> np.ndarray:
    """SPACE: bool [SPACE_CODES], whether str.strip() removes each code point (numpy's isspace is str.isspace)."""
    table: np.ndarray = np.strings.isspace(np.arange(SPACE_CODES, dtype=np.uint32).view("<U1"))
    return table


# Every code point no name may contain below len(SPACE): NUL and the line breaks (all whitespace, none above
# U+3000: a test holds this); lone surrogates lie above and never come out of a strict UTF-8 decode.
@functools.cache
def not_name_table() -> np.ndarray:
    """NOT_NAME: bool [SPACE_CODES], whether a name may not contain each code point (NUL, the line breaks)."""
    table = np.zeros(SPACE_CODES, dtype=bool)
    table[0] = True
    for code in np.flatnonzero(space_table()):  # a few dozen code points
        table[code] = is_line_break(chr(code))
    return table


def __getattr__(name: str) -> np.ndarray:
    """SPACE and NOT_NAME, the tables above, as module attributes (built on first use)."""
    if name == "SPACE":
        return space_table()
    if name == "NOT_NAME":
        return not_name_table()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class LoneSurrogate:
    """Where a decoded JSON value holds a lone surrogate: the top-level field (`key`, or `key[i]` for an item of a
    list under it; None for the value itself), the text, and whether that text is a key."""

    field: str | None
    text: str
    in_key: bool


def lone_surrogate(value: Any) -> LoneSurrogate | None:
    """The first lone surrogate (text UTF-8 cannot encode: what a JSON escape like \\ud800 makes) in any key or
    string of a decoded JSON value, or None."""
    stack: list[tuple[Any, str | None]] = [(value, None)]
    while stack:
        item, field = stack.pop()
        if isinstance(item, str) and not is_text(item):
            return LoneSurrogate(field, item, in_key=False)
        if isinstance(item, list):
            stack.extend(
                (each, field if field is None or "[" in field else f"{field}[{i}]") for i, each in enumerate(item)
            )
        elif isinstance(item, dict):
            for key, each in item.items():
                name = key if field is None else field
                if not is_text(key):
                    return LoneSurrogate(name, key, in_key=True)
                stack.append((each, name))
    return None


def is_text(text: str) -> bool:
    """Whether `text` is Unicode characters only: no lone surrogate (what an undecodable byte of a file name or a
    JSON escape like \\ud800 leaves), so it encodes as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_name_char(ch: str) -> bool:
    """Whether a name may contain `ch`: no NUL, no line break (`is_line_break`), no lone surrogate."""
    return not (ch == "\x00" or is_line_break(ch) or "\ud800" <= ch <= "\udfff")


def vocab_problem(chars: str) -> str | None:
    """Why the distinct characters `chars` can be no vocabulary of names (more than MAX_VOCAB of them, or one no
    name may contain), or None: the one rule of the reader, the trainer and the exporter."""
    if len(chars) > MAX_VOCAB:
        return too_many_chars(len(chars))
    bad = next((ch for ch in chars if not is_name_char(ch)), None)
    return None if bad is None else f"a character no name may contain: {bad!r}"


def too_many_chars(n_chars: int) -> str:
    return f"{n_chars:,} distinct characters, more than a vocabulary may hold ({MAX_VOCAB:,})"


@contextmanager
def reading(path: Path) -> Iterator[None]:
    """Turn the OS errors of reading the data file `path` into one-line DatasetErrors."""
    try:
        yield
    except FileNotFoundError:
        raise DatasetError(f"data file not found: {path}") from None
    except IsADirectoryError:
        raise DatasetError(f"data path is a directory, not a file: {path}") from None
    except OSError as err:
        raise DatasetError(f"cannot read data file {path}: {err.strerror}") from None


def not_utf8(path: Path, byte: int, line: int | None = None) -> DatasetError:
    where = f"byte {byte}" if line is None else f"line {line}, byte {byte}"
    return DatasetError(f"data file is not UTF-8 text: {path} ({where})")


def input_file_problem(path: Path, what: str = "model") -> str | None:
    """Why `path` cannot be read as the `what` file, in one line (missing, a directory, a device, ...), or None
    when it is a regular file."""
    if path.is_file():
        return None
    if path.is_dir():
        return f"{what} path is a directory, not a file: {path}"
    return f"{what} path is not a regular file: {path}" if path.exists() else f"{what} file not found: {path}"


def is_regular_file(path: Path) -> bool:
    """Whether the data path is a regular file (it may be read twice) rather than a pipe or a FIFO (read once);
    a missing path, a folder, a socket or a device is a DatasetError."""
    with reading(path):
        return _usable_mode(os.stat(path).st_mode, path)


def _usable_mode(mode: int, path: Path) -> bool:
    """Whether `mode` is a regular file's; a pipe's is False; a folder's, a socket's or a device's is a
    DatasetError."""
    if stat.S_ISDIR(mode):
        raise DatasetError(f"data path is a directory, not a file: {path}")
    if stat.S_ISSOCK(mode):
        raise DatasetError(f"data path is a socket, not a file: {path}")
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        raise DatasetError(f"data path is a device, not a file: {path}")
    return stat.S_ISREG(mode)


@contextmanager
def open_data(path: Path) -> Iterator[BinaryIO]:
    """The data file opened for reading, once it is known to be a file or a pipe (never a device: reading
    /dev/zero would never end)."""
    regular = is_regular_file(path)  # before opening: opening a device may block or act
    # A regular file is opened non-blocking: a pseudo-file that would wait for data (/proc/kmsg) is then refused
    # instead of hanging; a pipe or FIFO blocks as pipes do (a FIFO's writer may open it after us).
    flags = os.O_RDONLY | (os.O_NONBLOCK if regular else 0)
    with reading(path), open(os.open(path, flags), "rb") as handle:
        _usable_mode(os.fstat(handle.fileno()).st_mode, path)  # what was opened, should the path have changed
        yield handle


@dataclass(frozen=True)
class Block:
    """Whole lines of the data as code points (uint8 when ASCII, else uint32), and the number of the first."""

    codes: np.ndarray
    line: int


def data_blocks(
    path: Path, block_bytes: int = READ_BYTES, digest: hashlib._Hash | None = None, limit: int | None = None
) -> Iterator[Block]:
    """The data's lines, block by block, each checked before the next is read (DatasetError at the first line
    with a NUL, bad UTF-8 or more than MAX_LINE_BYTES; the lines before it come first; and once more than `limit`
    bytes are read, if given). Every byte read (a leading BOM too, though it is no text) goes into `digest`.
    Memory: block_bytes + MAX_LINE_BYTES."""
    offset, line = 0, 1  # bytes before the block (after a leading BOM, as utf-8-sig counts them); its first line
    with open_data(path) as handle:
        if limit is not None and os.fstat(handle.fileno()).st_size > limit:  # known before reading a byte
            raise too_large(limit, path)
        for block, whole in _cut(_limited(_reads(handle, block_bytes, digest, path), limit, path)):
            codes, error = _check(block, whole, offset, line, path)
            if len(codes):
                yield Block(codes, line)
            if error is not None:
                raise error
            offset, line = offset + len(block), line + block.count(b"\n")


def _limited(reads: Iterator[bytes], limit: int | None, path: Path) -> Iterator[bytes]:
    """`reads`, refused (DatasetError) once they pass `limit` bytes (None: no limit)."""
    total = 0
    for data in reads:
        total += len(data)
        if limit is not None and total > limit:
            raise too_large(limit, path)
        yield data


def too_large(limit: int, path: Path) -> DatasetError:
    return DatasetError(
        f"data file is larger than {limit >> 20} MiB, the most this command reads"
        f" (mm-train and mm-sweep stream a regular file of any size, unless --labelled): {path}"
    )


def _cut(reads: Iterator[bytes]) -> Iterator[tuple[bytes, bool]]:
    """The bytes after a leading BOM as blocks of whole lines (True), the last one ending at the file's end; or,
    once the unfinished line is over MAX_LINE_BYTES, its first MAX_LINE_BYTES + UTF8_LONGEST bytes (False)."""
    pieces: list[bytes] = []  # the bytes since the last newline (a line may span reads)
    held = 0
    for data in reads:
        cut = data.rfind(b"\n") + 1
        if cut:
            pieces.append(data[:cut])
            yield b"".join(pieces), True
            pieces, held = [data[cut:]], len(data) - cut
        else:
            pieces.append(data)
            held += len(data)
        if held >= MAX_LINE_BYTES + UTF8_LONGEST:  # judged on the same bytes however the file is read
            yield b"".join(pieces)[: MAX_LINE_BYTES + UTF8_LONGEST], False
            return
    if tail := b"".join(pieces):
        yield tail, True


def _reads(handle: BinaryIO, block_bytes: int, digest: hashlib._Hash | None, path: Path) -> Iterator[bytes]:
    """The file's bytes, read block_bytes at a time after its first 3 (a leading BOM dropped), each first fed to
    `digest`. A regular file that has no data without waiting (a pseudo-file such as /proc/kmsg) is refused."""
    start = _read(handle, len(BOM), path)
    if digest is not None:
        digest.update(start)
    yield b"" if start == BOM else start
    while data := _read(handle, block_bytes, path):
        if digest is not None:
            digest.update(data)
        yield data


def _read(handle: BinaryIO, size: int, path: Path) -> bytes:
    """Up to `size` bytes; DatasetError when the file would make us wait (read on a non-blocking descriptor)."""
    try:
        data = handle.read(size)
    except BlockingIOError:
        data = None
    if data is None:
        raise DatasetError(f"data path is not a plain file (reading it waits for data that may never come): {path}")
    return data


def _check(block: bytes, whole: bool, offset: int, line: int, path: Path) -> tuple[np.ndarray, DatasetError | None]:
    """The code points of the block's lines before its first fault, and that fault (None if none): the first byte,
    in file order, that is a NUL, starts bad UTF-8 or lies beyond MAX_LINE_BYTES in its line (ties in that
    order)."""
    nul = block.find(b"\x00")
    bad_utf8, text = _decoded(block)
    faults = [(nul if nul >= 0 else len(block), 0), (bad_utf8, 1), (_too_long(block, whole), 2)]
    at, kind = min(faults)
    if at >= len(block):
        return _code_points(block, text), None
    good = block[: block.rfind(b"\n", 0, at) + 1]
    codes, number = _code_points(good, None), line + good.count(b"\n")
    if kind == 0:
        return codes, DatasetError(f"data file contains NUL characters (is it binary?): {path} (line {number})")
    if kind == 1:
        return codes, not_utf8(path, offset + at, number)
    return codes, DatasetError(
        f"data file line {number} is longer than {MAX_LINE_BYTES:,} bytes (one name a line, please): {path}"
    )


def _decoded(block: bytes) -> tuple[int, str | None]:
    """Where the block's first bad UTF-8 sequence starts (len(block) if none), and its text when it is good UTF-8
    but no ASCII (decoded once: its code points come from it)."""
    if block.isascii():
        return len(block), None
    try:
        return len(block), block.decode("utf-8")
    except UnicodeDecodeError as err:
        return err.start, None


def _too_long(block: bytes, whole: bool) -> int:
    """The first byte beyond MAX_LINE_BYTES in a line of the block (len(block) if none): a block that is not
    `whole` is the start of one line over the limit."""
    if not whole:
        return MAX_LINE_BYTES
    if len(block) <= MAX_LINE_BYTES:
        return len(block)
    ends = np.append(np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == ord("\n")), len(block))
    starts = np.concatenate([[0], ends[:-1] + 1])
    over = np.flatnonzero(ends - starts > MAX_LINE_BYTES)
    return int(starts[over[0]]) + MAX_LINE_BYTES if over.size else len(block)


def _code_points(block: bytes, text: str | None) -> np.ndarray:
    """A checked block's code points: an ASCII block's bytes (uint8), any other's UTF-32 (uint32), from its `text`
    when already decoded."""
    if block.isascii():
        return np.frombuffer(block, dtype=np.uint8)
    text = block.decode("utf-8") if text is None else text
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def block_words(block: Block, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The words of a block: each line split at '\\n', stripped of whitespace (str.strip), blank lines dropped.

    Returns the kept code points (the block's dtype, word after word) and the words' lengths (int64); a
    character no name may contain inside a word (a CR, U+2028, ...) is a DatasetError naming its line.
    """
    codes = block.codes
    table = space_table()
    space = table[codes] if codes.dtype == np.uint8 else table[np.minimum(codes, len(table) - 1)]
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
    kept = inside[:-1].view(bool)
    _refuse_bad_chars(codes, kept, block.line, path)
    return codes[kept], (last - first + 1).astype(np.int64)


def _refuse_bad_chars(codes: np.ndarray, kept: np.ndarray, line: int, path: Path) -> None:
    """DatasetError naming the line and the first character of a word that no name may contain, if any."""
    not_name = not_name_table()
    table = codes if codes.dtype == np.uint8 else np.minimum(codes, len(not_name) - 1)
    bad = np.flatnonzero(not_name[table] & kept)
    if bad.size:
        at = int(bad[0])
        number = line + int(np.count_nonzero(codes[:at] == ord("\n")))
        ch = chr(int(codes[at]))
        raise DatasetError(
            f"data file line {number} holds a character no name may contain: {ch!r} (U+{ord(ch):04X}): {path}"
        )


def check_vocab_size(n_chars: int, path: Path) -> None:
    """DatasetError when the data holds more distinct characters than a vocabulary may (MAX_VOCAB)."""
    if n_chars > MAX_VOCAB:
        raise DatasetError(f"data file has {too_many_chars(n_chars)}: {path}")


def read_text_lines(path: str | Path, block_bytes: int = READ_BYTES) -> tuple[list[str], str]:
    """The words of a data file (one a line, stripped, blank lines dropped), read once through `data_blocks`,
    and the sha256 of the bytes read."""
    path = Path(path)
    digest = hashlib.sha256()
    words: list[str] = []
    seen = np.zeros(MAX_CODE_POINT + 1, dtype=bool)
    for block in data_blocks(path, block_bytes, digest, limit=MAX_TEXT_BYTES):
        chars, lengths = block_words(block, path)
        seen[chars] = True
        text = chars.tobytes().decode("ascii") if chars.dtype == np.uint8 else chars.tobytes().decode("utf-32-le")
        ends = np.cumsum(lengths).tolist()
        words.extend(text[start:end] for start, end in zip([0, *ends][:-1], ends, strict=True))
    check_vocab_size(int(np.count_nonzero(seen)), path)
    return words, digest.hexdigest()
