"""Evaluation: the mean loss of a model over rows of a split, and the final train, val and test losses."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from makemore.data import Tokens, Vocab
from makemore.data.rows import Rows, SequenceRows, WindowRows, label_rows, row_count, rows_of, subset
from makemore.data.tokens import DistinctPairs, distinct_pairs, sequence_rows, tokenize
from makemore.train.device import model_device, to_device
from makemore.train.kinds import SEQUENCE_KINDS
from makemore.train.memory import EVAL_WORDS, PAIR_ROWS
from makemore.train.models import IGNORE, is_sequence
from torch import nn

EVAL_POINTS = 40  # how many times the val loss is logged over a run
# The losses are evaluated on bounded sets of words, drawn once at random (data.rows.subset): during training the
# val loss on at most VAL_WORDS val words (about 7,000 characters of names), the same at every log point; at the
# end the val and test losses on every word, and the train loss on at most TRAIN_EVAL_WORDS train words.
# names.txt's 25,627 train words fit the second bound: its final losses are all on every word, as before.
VAL_WORDS = 1024
TRAIN_EVAL_WORDS = 32768


def split_rows(kind: str, split: dict[str, Tokens], block_size: int) -> dict[str, Rows]:
    """The rows of every split's tokens: window examples, or whole words for the sequence kinds."""
    window = None if kind in SEQUENCE_KINDS else block_size
    return {name: rows_of(split[name], window, IGNORE) for name in ("train", "val", "test")}


def make_sequences(words: list[str], vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """Each word as one sequence, shortest first: int64 X, Y [N, longest + 1] (all words at once: for tests and
    small lists; training builds the rows of each batch, data.rows.SequenceRows).

    X is (boundary, its characters), Y is (its characters, boundary): one target per letter and one for the
    end, as for the window models. Rows are padded at the end, X with the boundary and Y with IGNORE (no loss).
    """
    tokens = tokenize(words, vocab)
    return sequence_rows(tokens, tokens.by_length, IGNORE)


def trim_padding(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences [B, L]: cut the columns that are padding in every row. Window examples: unchanged."""
    if y.dim() < 2:
        return x, y
    width = int((y != IGNORE).sum(dim=1).max())
    return x[:, :width], y[:, :width]


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 65536) -> float:
    """Mean NLL per predicted character (padding excluded) of tensors x, y, in eval mode, `chunk` rows (512 words)
    at a time."""
    chunk = min(EVAL_WORDS, chunk) if is_sequence(model) else chunk
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(y), chunk):
        part_total, part_count = _loss_sum(model, *trim_padding(x[start : start + chunk], y[start : start + chunk]))
        total, count = total + part_total, count + part_count
    model.train(was_training)
    return total / count


EvalChunk = int | Callable[[int], int]  # rows per evaluation call, or rows per call of that many positions a row


@torch.no_grad()
def evaluate_rows(
    model: nn.Module, rows: Rows, chosen: np.ndarray | None = None, chunk: EvalChunk = 65536
) -> tuple[float, int]:
    """(mean NLL per predicted character, characters predicted) over rows `chosen` (all when None), in eval mode.

    Sequence rows are built and run `chunk` at a time (at most EVAL_WORDS, 512 words): `chunk(width)` words a call
    when it is a function of the call's width (memory.eval_chunk: a split of short words and one long one ran word by
    word). Window rows are built PAIR_ROWS at a time and run once per distinct context among them (`chunk` contexts a
    time): in eval mode a window model's logits depend on the row alone, so the loss is the same, for a tenth of the
    forward rows on names. Memory is one chunk's, whatever the split's size.
    """
    rows_at: Callable[[int], int] = chunk if callable(chunk) else (lambda width: chunk)
    order = np.arange(row_count(rows, chosen)) if chosen is None else np.asarray(chosen)
    was_training = model.training
    model.eval()
    total, count, start = 0.0, 0, 0
    while start < len(order):
        if isinstance(rows, WindowRows):
            part = order[start : start + PAIR_ROWS]
            pairs = distinct_pairs(*_label_column(*rows.take(part)))
            part_total, part_count = _pairs_loss_sum(model, pairs, rows_at(0))
        else:
            part = sequence_part(rows, order, start, rows_at)
            part_total, part_count = _loss_sum(model, *map(torch.from_numpy, rows.take(part)))
        total, count, start = total + part_total, count + part_count, start + len(part)
    model.train(was_training)
    return total / count, count


def sequence_part(rows: SequenceRows, order: np.ndarray, start: int, rows_at: Callable[[int], int]) -> np.ndarray:
    """The rows of the next evaluation call from `start` of `order`: the most (at most EVAL_WORDS) that rows_at allows
    at the call's width (its longest word + 1); at least one."""
    candidates = rows.tokens.by_length[order[start : start + EVAL_WORDS]]  # these rows' words alone: O(512) a call
    widths = np.maximum.accumulate(rows.tokens.lengths[candidates]) + 1  # each prefix's width
    low, high = 1, len(widths)  # the first `low` rows fit (one always does); find the most that do
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if rows_at(int(widths[mid - 1])) >= mid else (low, mid - 1)
    return order[start : start + low]


def _label_column(x: np.ndarray, y: np.ndarray, label: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Window rows as (contexts, targets), a labelled row's label appended to its context as one more column
    (so that distinct contexts are distinct per label too)."""
    return (x, y) if label is None else (np.column_stack([x, label]), y)


def _window_logits(model: nn.Module, contexts: torch.Tensor) -> torch.Tensor:
    """A window model's logits of contexts, a conditional model's label taken from their last column."""
    if not getattr(model, "n_labels", 0):
        return model(contexts)
    return model(contexts[:, :-1], contexts[:, -1])


def _pairs_loss_sum(model: nn.Module, pairs: DistinctPairs, chunk: int) -> tuple[float, int]:
    """Summed NLL of every row behind `pairs` (count-weighted, in float64) and their number; `chunk` contexts
    run at a time."""
    total, device = 0.0, model_device(model)
    for first in range(0, len(pairs.contexts), chunk):
        last = min(first + chunk, len(pairs.contexts))
        logits = _window_logits(model, torch.from_numpy(pairs.contexts[first:last]).to(device))
        logp = nn.functional.log_softmax(logits, dim=-1)
        lo, hi = pairs.starts[first], pairs.starts[last]
        context = torch.from_numpy(np.repeat(np.arange(last - first), np.diff(pairs.starts[first : last + 1])))
        picked = logp[context.to(device), torch.from_numpy(pairs.targets[lo:hi]).to(device)]
        total -= float(picked.cpu().double() @ torch.from_numpy(pairs.counts[lo:hi]).double())  # MPS has no float64
    return total, int(pairs.counts.sum())


def _loss_sum(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, label: torch.Tensor | None = None
) -> tuple[float, int]:
    """Summed NLL of the targets y that are no padding, and their number (on the model's device)."""
    x, y = to_device(model_device(model), x, y)
    logits = (model(x) if label is None else model(x, label.to(x.device))).flatten(0, -2)
    total = nn.functional.cross_entropy(logits, y.flatten(), ignore_index=IGNORE, reduction="sum").item()
    return total, int((y != IGNORE).sum())


def final_losses(model: nn.Module, data: dict[str, Rows], chunk: EvalChunk) -> dict:
    """train_loss on at most TRAIN_EVAL_WORDS words, val_loss and test_loss on all; each with its characters."""
    metrics: dict = {}
    for name in ("train", "val", "test"):
        chosen = subset(data[name], TRAIN_EVAL_WORDS) if name == "train" else None
        metrics[f"{name}_loss"], metrics[f"{name}_loss_chars"] = evaluate_rows(model, data[name], chosen, chunk)
    return metrics


def label_losses(model: nn.Module, rows: Rows, labels: tuple[str, ...], chunk: EvalChunk) -> dict[str, float]:
    """The mean loss over the rows of each label (by name) that the rows hold."""
    losses = {}
    for index, name in enumerate(labels):
        chosen = label_rows(rows, index)
        if len(chosen):
            losses[name] = evaluate_rows(model, rows, chosen, chunk)[0]
    return losses


def row_count_chars(rows: Rows, chosen: np.ndarray | None) -> int:
    """Characters predicted by rows `chosen` (all when None): one per window row, a word's length + 1 per sequence."""
    if not isinstance(rows, SequenceRows):
        return row_count(rows, chosen)
    lengths = rows.tokens.lengths[rows.tokens.by_length]
    return int((lengths if chosen is None else lengths[chosen]).sum() + row_count(rows, chosen))
