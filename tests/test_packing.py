"""Packed training rows of the transformer: several words per row, a block-diagonal causal mask, positions that
restart at each word (data/packing.py, Transformer.forward_packed, trainer.training_batch).

What must hold for every batch of words: each word is placed whole, once, without overlap, in rows no wider
than the block size and no more rows than words; a packed row holds each word's padded row; and the model's
logits (so the loss) over packed rows equal those over the padded rows of the same words.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from makemore.data import BOUNDARY
from makemore.data.packing import PAD_SEGMENT, pack_sizes, packed_rows
from makemore.data.rows import SequenceRows
from makemore.data.tokens import Tokens, sequence_rows
from makemore.train.models import IGNORE, Transformer, cross_entropy, packed_mask
from makemore.train.trainer import PACK_WIDTH, batch_loss, make_optimizer, packs, training_batch

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MODEL_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VOCAB = 7


def tokens_of(lengths: list[int], seed: int, labels: int = 0) -> Tokens:
    """Random words of the given lengths over characters 1..VOCAB-1 (and random labels of `labels` kinds)."""
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    ids = rng.integers(1, VOCAB, int(offsets[-1])).astype(np.uint8)
    return Tokens(ids, offsets, rng.integers(0, labels, len(lengths)) if labels else None)


@PROPERTY_SETTINGS
@given(st.integers(1, 40).flatmap(lambda width: st.tuples(st.just(width), st.lists(st.integers(1, width)))))
def test_every_item_is_placed_whole_once_and_rows_do_not_overlap(case) -> None:
    width, sizes = case
    row, start = pack_sizes(np.array(sizes, dtype=np.int64), width)
    n_rows = int(row.max(initial=-1)) + 1
    assert n_rows <= len(sizes)
    assert n_rows * width >= sum(sizes)
    used = np.zeros((n_rows, width), dtype=np.int64)
    for r, s, size in zip(row, start, sizes, strict=True):
        assert 0 <= s and s + size <= width
        used[r, s : s + size] += 1
    assert used.max(initial=1) == 1  # no position of two items
    assert (used.sum(axis=1) > 0).all()  # no empty row
    if n_rows:  # best fit: no two rows could be merged into one
        fill = used.sum(axis=1)
        assert np.sort(fill)[:2].sum() > width or n_rows == 1


def test_a_size_wider_than_the_rows_is_refused() -> None:
    with pytest.raises(ValueError, match="1..4"):
        pack_sizes(np.array([2, 5]), 4)


@PROPERTY_SETTINGS
@given(st.lists(st.integers(0, 11), min_size=1, max_size=40), st.integers(0, 2**32 - 1), st.sampled_from([0, 3]))
def test_a_packed_row_holds_each_words_padded_row(lengths, seed, labels) -> None:
    tokens = tokens_of(lengths, seed, labels)
    words = np.random.default_rng(seed).permutation(len(lengths))
    width = max(lengths) + 1 + seed % 3  # the block size: at least the longest word + 1
    packed = packed_rows(tokens, words, IGNORE, width)
    x, y = sequence_rows(tokens, words, IGNORE)
    assert packed.x.shape[1] == width and packed.x.shape[0] <= len(words)  # the shapes the memory estimate assumes
    for b, word in enumerate(words):
        size = lengths[word] + 1
        at = packed.segments == b
        assert at.sum() == size
        assert (packed.positions[at] == np.arange(size)).all()  # positions restart at each word
        assert (packed.x[at] == x[b, :size]).all() and (packed.y[at] == y[b, :size]).all()
        if labels:
            assert (packed.labels[at] == tokens.labels[word]).all()
    pad = packed.segments == PAD_SEGMENT
    assert (packed.y[pad] == IGNORE).all() and (packed.x[pad] == BOUNDARY).all()
    assert (packed.y != IGNORE).sum() == (y != IGNORE).sum()  # the same targets as the padded rows
    by_default = packed_rows(tokens, words, IGNORE)  # as wide as the padded rows, never more of them
    assert by_default.x.shape[1] == x.shape[1] and by_default.x.shape[0] <= x.shape[0]


def test_the_mask_hides_later_positions_and_other_words() -> None:
    segments = torch.tensor([[0, 0, 1, 1, 1, PAD_SEGMENT]])
    hidden = packed_mask(segments)[0, 0]
    seen = [set(np.flatnonzero(~row.numpy())) for row in hidden]
    assert seen == [{0}, {0, 1}, {2}, {2, 3}, {2, 3, 4}, {5}]


def scrambled_transformer(block_size: int, n_labels: int, seed: int) -> Transformer:
    """A small transformer whose weights are random and large enough that a leak across words would show."""
    torch.manual_seed(seed)
    model = Transformer(VOCAB, block_size, n_layer=2, n_head=2, n_embd=16, dropout=0.1, n_labels=n_labels)
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0, 0.3)
    return model.eval()


@MODEL_SETTINGS
@given(st.lists(st.integers(0, 9), min_size=1, max_size=24), st.integers(0, 2**32 - 1), st.sampled_from([0, 3]))
def test_packed_logits_and_loss_equal_the_padded_ones_in_eval_mode(lengths, seed, labels) -> None:
    tokens = tokens_of(lengths, seed, labels)
    block_size = max(lengths) + 1 + seed % 4
    model = scrambled_transformer(block_size, labels, seed % 1000)
    words = np.random.default_rng(seed).permutation(len(lengths))
    packed = packed_rows(tokens, words, IGNORE, block_size)
    padded = [torch.from_numpy(a) for a in sequence_rows(tokens, words, IGNORE)]
    word_labels = torch.from_numpy(tokens.labels[words]) if labels else None
    t = {name: torch.from_numpy(getattr(packed, name)) for name in ("x", "y", "positions", "segments")}
    position_labels = torch.from_numpy(packed.labels) if labels else None
    with torch.no_grad():
        packed_logits = model.forward_packed(t["x"], t["positions"], t["segments"], position_labels)
        padded_logits = model(padded[0], word_labels)
        for b, word in enumerate(words):
            size = lengths[word] + 1
            got = packed_logits[torch.from_numpy(packed.segments == b)]
            torch.testing.assert_close(got, padded_logits[b, :size], atol=1e-5, rtol=1e-5)
        flat_logits, flat_targets = packed_logits.flatten(0, 1), t["y"].flatten()
        packed_loss = torch.nn.functional.cross_entropy(flat_logits, flat_targets, ignore_index=IGNORE)
        padded_loss = cross_entropy(model, *padded, *(() if word_labels is None else (word_labels,)))
    assert abs(packed_loss.item() - padded_loss.item()) < 1e-5


def test_the_transformer_trains_on_packed_rows_and_other_kinds_on_padded_ones() -> None:
    lengths = [3, 1, 5, 2, 4, 4, 0, 6]
    rows = SequenceRows(tokens_of(lengths, 1), IGNORE)
    transformer = scrambled_transformer(8, 0, 1)
    batch = training_batch(transformer, rows, np.arange(len(lengths)))
    assert packs(transformer) and len(batch) == 5 and batch[0].shape[1] == 8  # the block size (under PACK_WIDTH)
    assert batch[0].shape[0] < len(lengths)  # fewer rows than words: several words share a row
    recurrent = torch.nn.GRU(4, 4)  # any model without forward_packed
    assert not packs(recurrent) and len(training_batch(recurrent, rows, np.arange(len(lengths)))) == 2


def test_packed_rows_of_a_long_block_size_are_no_wider_than_pack_width_unless_a_word_needs_it() -> None:
    rows = SequenceRows(tokens_of([3, 1, 5, 2, 4, 4, 0, 6, PACK_WIDTH + 9], 1), IGNORE)
    model = scrambled_transformer(PACK_WIDTH + 20, 0, 1)
    short, long = np.arange(8), np.arange(9)
    assert training_batch(model, rows, short)[0].shape[1] == PACK_WIDTH
    assert training_batch(model, rows, long)[0].shape[1] == PACK_WIDTH + 10  # the long word + 1
    assert training_batch(model, rows, long)[0].shape[0] <= len(long)


def test_a_packed_training_step_learns_and_a_seed_fixes_it() -> None:
    from makemore.train.config_types import TrainConfig

    lengths = [3, 1, 5, 2, 4, 4, 0, 6] * 4
    rows = SequenceRows(tokens_of(lengths, 2), IGNORE)
    config = TrainConfig(steps=30, batch_size=16, lr=0.01, optimizer="adamw", weight_decay=0.0, seed=0)

    def train_once() -> list[float]:
        model = scrambled_transformer(8, 0, 3).train()
        optimizer, losses = make_optimizer(model, config), []
        for step in range(config.steps):
            batch = training_batch(model, rows, np.arange(step % 2, len(lengths), 2))
            torch.manual_seed(step)
            loss = batch_loss(model, batch, torch.device("cpu"))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return losses

    first = train_once()
    assert first == train_once()
    assert all(np.isfinite(first)) and np.mean(first[-5:]) < np.mean(first[:5])
