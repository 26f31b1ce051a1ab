"""Packed sequence rows: several whole words laid end to end in rows of one width, for training.

A word of n characters is n + 1 positions (boundary, characters -> characters, boundary). `pack_sizes` places
the words in as few rows as it can (best fit, longest first); `packed_rows` builds the rows with, per position,
the word's own position (restarting at 0 at each word) and a segment id (the word's index in the batch, -1 for
the padding left at a row's end), from which a model builds its block-diagonal causal mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from makemore.data.dataset import BOUNDARY
from makemore.data.tokens import Tokens, sequence_rows

PAD_SEGMENT = -1  # the segment of a row's trailing padding: no word's
# The widest packed rows the trainer makes unless a word needs more: on names (block_size 16) 16 positions hold 7.6%
# padding, 32 hold 6.0%, for attention twice as long: about as fast (bench/transformer_step.py)
PACK_WIDTH = 32


@dataclass(frozen=True)
class PackedRows:
    """int64 arrays [rows, width]: inputs x, targets y (`ignore` at padding), positions within each word, segments
    (the word's index in the batch, PAD_SEGMENT at padding) and, for labelled tokens, each position's label."""

    x: np.ndarray
    y: np.ndarray
    positions: np.ndarray
    segments: np.ndarray
    labels: np.ndarray | None = None


def pack_sizes(sizes: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, first column) of each item of `sizes` (each 1..width) in rows of `width`: best fit decreasing.

    Each item goes, longest first (ties in the given order), into the row with the least room that still holds
    it, or a new row; so no item is split and every row holds at least one item.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    if len(sizes) and not 1 <= int(sizes.min()) <= int(sizes.max()) <= width:
        raise ValueError(f"every size must be 1..{width}, got {int(sizes.min())}..{int(sizes.max())}")
    row, start = np.empty(len(sizes), dtype=np.int64), np.empty(len(sizes), dtype=np.int64)
    rows_with_room: list[list[int]] = [[] for _ in range(width + 1)]  # room -> rows with exactly that room
    n_rows = 0
    for item in np.argsort(-sizes, kind="stable").tolist():
        size = int(sizes[item])
        room = next((r for r in range(size, width) if rows_with_room[r]), width)
        if room == width:
            target, n_rows = n_rows, n_rows + 1
        else:
            target = rows_with_room[room].pop()
        row[item], start[item] = target, width - room
        rows_with_room[room - size].append(target)
    return row, start


def packed_rows(tokens: Tokens, words: np.ndarray, ignore: int, width: int | None = None) -> PackedRows:
    """The given words (indices into `tokens`) packed into rows of `width` positions (see pack_sizes); by default
    the width of their padded rows (the longest word + 1), so the packed rows are never more nor wider than those."""
    words = np.asarray(words, dtype=np.int64)
    x, y = sequence_rows(tokens, words, ignore)  # [B, longest + 1], each word from column 0
    sizes = tokens.lengths[words] + 1
    width = x.shape[1] if width is None else width
    row, start = pack_sizes(sizes, width)
    n_rows = int(row.max(initial=-1)) + 1
    column = np.arange(x.shape[1])
    inside = column < sizes[:, None]  # [B, longest + 1]: a position of the word
    word, pos = np.nonzero(inside)
    flat = row[word] * width + start[word] + pos
    packed_x = np.full(n_rows * width, BOUNDARY, dtype=np.int64)
    packed_y = np.full(n_rows * width, ignore, dtype=np.int64)
    positions = np.zeros(n_rows * width, dtype=np.int64)
    segments = np.full(n_rows * width, PAD_SEGMENT, dtype=np.int64)
    packed_x[flat], packed_y[flat], positions[flat], segments[flat] = x[word, pos], y[word, pos], pos, word
    labels = None
    if tokens.labels is not None:
        labels = np.zeros(n_rows * width, dtype=np.int64)
        labels[flat] = tokens.labels[words][word]
    shape = (n_rows, width)
    return PackedRows(
        packed_x.reshape(shape),
        packed_y.reshape(shape),
        positions.reshape(shape),
        segments.reshape(shape),
        None if labels is None else labels.reshape(shape),
    )
