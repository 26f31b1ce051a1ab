"""Which random numbers each name gets: the chunks of a request and their seeds, independent of any scheduling.

A request's names are numbered 0, 1, 2, ... and cut into chunks of CHUNK_SIZE: name j is row j % CHUNK_SIZE
of chunk j // CHUNK_SIZE. Chunk k draws from its own generator, derived from (seed, k) alone:

    numpy.random.Generator(numpy.random.PCG64(numpy.random.SeedSequence(seed, spawn_key=(k,))))

which is `numpy.random.SeedSequence(seed).spawn(k + 1)[k]`, numpy's k-th child of the seed. At every character
position after the prefix the chunk's generator produces CHUNK_SIZE doubles (`Generator.random`: one 64-bit
PCG64 output each, `(x >> 11) * 2**-53`) and row r takes the r-th, whether or not the chunk has that many rows
or that row is still running. So name j depends on (seed, j) and the model only: not on how many names are
asked for, how many workers sample them, which shard or which other names are sampled with it. A port (for
example to JavaScript) needs numpy's SeedSequence hash, PCG64 and that double conversion, nothing else.

A conditional model draws each name's label (when the request gives none) from a second generator of the chunk,
`SeedSequence(seed, spawn_key=(k, 1))`: one double per row (row r takes the r-th), the label the first whose
cumulative training count exceeds u * total. The character draws are untouched, so an unlabelled model's names
never change, and a name's label, like its characters, depends on (seed, j) alone.

A chunk that samples only rows [lo, hi) skips the other draws with PCG64's `advance` (a jump, not a loop), so a
chunk runs as several pieces on fresh decoders (sampling.rows_per_decoder) and gives the same names.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from makemore.data import UserError

CHUNK_SIZE = 4096  # names sharing one generator; fixed, since it decides every name of a seed


@dataclass(frozen=True)
class ChunkSpan:
    """Rows [lo, hi) of chunk `index`: names index * CHUNK_SIZE + lo ... index * CHUNK_SIZE + hi - 1."""

    index: int
    lo: int
    hi: int

    @property
    def rows(self) -> int:
        return self.hi - self.lo


def chunk_spans(start: int, stop: int, rows: int = CHUNK_SIZE) -> Iterator[ChunkSpan]:
    """The chunk pieces covering names [start, stop), in order (lazily: stop may be huge), each of at most `rows`
    rows (a chunk is also cut at every multiple of `rows`); none when the range is empty."""
    if start >= stop:
        return
    for index in range(start // CHUNK_SIZE, -(-stop // CHUNK_SIZE)):
        base = index * CHUNK_SIZE
        lo, hi = max(start, base) - base, min(stop, base + CHUNK_SIZE) - base
        for cut in range(lo // rows * rows, hi, rows):
            yield ChunkSpan(index, max(lo, cut), min(hi, cut + rows))


def request_seed(seed: int | None) -> int:
    """The seed every chunk of a request is derived from: `seed`, or a fresh random one (64 bits) when it is None."""
    return secrets.randbits(64) if seed is None else seed


class ChunkDraws:
    """The uniforms of rows [lo, hi) of one chunk, position after position (see the module's docstring)."""

    def __init__(self, seed: int, span: ChunkSpan) -> None:
        self.span, self.rows = span, span.rows
        bits = np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(span.index,)))
        self.random, self.advance = np.random.Generator(bits).random, bits.advance
        self.skip = span.lo  # draws before this span's first row at the next position

    def next(self) -> np.ndarray:
        """The next position's uniforms: float64 [rows], row i's is draw lo + i of this position's CHUNK_SIZE."""
        if self.skip:
            self.advance(self.skip)
        self.skip = CHUNK_SIZE - self.rows  # the rows after this span, then those before it at the next position
        return self.random(self.rows)


LABEL_STREAM = 1  # second spawn-key entry of a chunk's label draws


def label_uniforms(seed: int, span: ChunkSpan) -> np.ndarray:
    """The label uniforms of rows [lo, hi) of a chunk: float64 [rows], row i's is draw lo + i of the chunk's."""
    bits = np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(span.index, LABEL_STREAM)))
    bits.advance(span.lo)
    return np.random.Generator(bits).random(span.rows)


def chunk_labels(seed: int, span: ChunkSpan, counts: tuple[int, ...]) -> np.ndarray:
    """Each row's label index (int64 [rows]), drawn in proportion to `counts` (a label of count 0 never)."""
    cumulative = np.cumsum(np.asarray(counts, dtype=np.float64))
    threshold = np.minimum(label_uniforms(seed, span) * cumulative[-1], np.nextafter(cumulative[-1], 0))
    labels: np.ndarray = np.searchsorted(cumulative, threshold, side="right").astype(np.int64)
    return labels


def parse_shard(text: str) -> tuple[int, int]:
    """`i/k` as (i, k) with 1 <= i <= k; a UserError naming --shard otherwise."""
    parts = text.split("/")
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() and len(p) <= 18 for p in parts):
        raise UserError(f"--shard must be i/k with whole numbers 1 <= i <= k (e.g. 2/3), got {text!r:.40}")
    index, count = int(parts[0]), int(parts[1])
    if not 1 <= index <= count:
        raise UserError(f"--shard must be i/k with whole numbers 1 <= i <= k (e.g. 2/3), got {text!r:.40}")
    return index, count


def shard_range(n: int, shard: int, shards: int) -> tuple[int, int]:
    """Names [start, stop) of shard `shard` (1-based) of `shards` of an n-name request: a contiguous, disjoint
    slice of its chunks (the slices in order cover every chunk once; a shard may be empty when there are fewer
    chunks than shards)."""
    chunks = -(-n // CHUNK_SIZE)
    first, last = (shard - 1) * chunks // shards, shard * chunks // shards
    return min(first * CHUNK_SIZE, n), min(last * CHUNK_SIZE, n)
