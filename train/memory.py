"""The memory a training run will need, estimated before anything is allocated, against what the machine has.

Pure arithmetic on Python ints (no torch): a config with a billion hidden units is refused in
microseconds, with one line naming the flag, instead of meeting numpy's errors or the OOM killer.
The estimates are deliberately generous (peaks, not averages); what they count:

- data: the words as Python strings, and their tokens (data.tokens: one flat array of the smallest unsigned
  type that holds the vocabulary, plus int64 offsets). No split is ever materialised as X[N, block_size]:
  each batch and each evaluation chunk builds its rows from the tokens (counted with the activations);
- model: the parameters, their gradients, the optimizer's state and the checkpoint's copy;
- activations: what one training batch keeps for backward (twice: forward values and their gradients) with
  its int64 rows (a packed kind's: its packed rows, see packed_batch), and one evaluation chunk with its rows (see
  eval_rows).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from makemore.data import Tokens, UserError
from makemore.data.packing import PACK_WIDTH
from makemore.train.config_types import BigramConfig, BigramNNConfig, Config
from makemore.train.kinds import kind_spec

FLOAT, INDEX = 4, 8  # bytes of a float32 weight or activation, of an int64 index
WORD_BYTES = 64  # per word: its offsets (in the file's order, then its split's), length, permutation, row order
CHAR_BYTES = 1  # per character besides its token: the file-order token while the split is made
COUNT_ROWS = 2**20  # examples a bigram counts at a time (data.tokens.bigram_counts)
OVERHEAD = 512 * 2**20  # the interpreter, numpy and torch themselves (about 400 MiB measured)
MEMORY_FRACTION = 0.8  # share of the machine's memory a run may plan to use: the rest is the margin
EVAL_FLOATS = 2**24  # activations of one evaluation chunk (64 MiB of float32)
EVAL_ROWS_MAX = 65536
EVAL_WORDS = 512  # sequence rows (whole words) evaluated at a time, at most
SEQUENCE_EVAL_FLOATS = 2**28  # activations of one sequence evaluation chunk at most (1 GiB of float32)
PAIR_ROWS = 1 << 19  # window rows whose distinct (context, target) pairs are found at once (evaluate.evaluate_rows)
PAIR_INDICES = 8  # int64s per such row besides its context: target, keys, sort order, masks
DRAW_INDICES = 5  # int64s per row drawn for --buckets: the draw, the sort's values and order, its scratch (measured)
RUN_RISK = 1e-6  # the chance that a packed kind's batches ever pass their estimate in a whole run (see packed_batch)
SIZE_FLAGS = ("block_size", "n_embd", "n_hidden", "n_layer", "n_head", "batch_size", "buckets")  # what a memory
# error may blame
CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


class MemoryLimitError(UserError):
    """A run that cannot fit in this machine's memory."""


def machine_memory() -> int:
    """Bytes of physical memory, or the container's (cgroup) limit when that is lower."""
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for path in CGROUP_LIMITS:
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def split_sizes(split: dict[str, Tokens]) -> dict[str, int]:
    """Examples of each split's tokens: one per character of a word and one for its end."""
    return {name: split[name].n_examples for name in ("train", "val", "test")}


def token_bytes(vocab_size: int) -> int:
    """Bytes of one token: the smallest unsigned type that holds indices 0..vocab_size-1 (data.tokens.token_dtype)."""
    return 1 if vocab_size <= 2**8 else 2 if vocab_size <= 2**16 else 4


def param_count(kind: str, vocab_size: int, config: Config) -> int:
    """Parameters (and buffers) of the model `build_model` makes for this config (its kind's formula, and a
    conditional model's label parts)."""
    return kind_spec(kind).params(vocab_size, config.model) + label_param_count(vocab_size, config)


def label_param_count(vocab_size: int, config: Config) -> int:
    """A conditional model's label parameters: a [V, V] table per label (bigram kinds), else an embedding row."""
    labels, model = config.n_labels or 0, config.model
    if isinstance(model, (BigramConfig, BigramNNConfig)):
        return labels * vocab_size * vocab_size
    return labels * model.n_embd


def activation_floats(kind: str, vocab_size: int, config: Config) -> int:
    """Floats one example row makes in a forward pass, the logits and their log-softmax included (its kind's
    formula)."""
    return kind_spec(kind).activations(vocab_size, config.model)


def eval_rows(kind: str, vocab_size: int, config: Config) -> int:
    """Rows per evaluation chunk: a window kind's about EVAL_FLOATS activations, at most EVAL_ROWS_MAX rows; a
    sequence kind's EVAL_WORDS whole words, fewer where they would pass SEQUENCE_EVAL_FLOATS (long words)."""
    floats = activation_floats(kind, vocab_size, config)
    if kind_spec(kind).sequence:
        return max(1, min(EVAL_WORDS, SEQUENCE_EVAL_FLOATS // floats))
    return max(1, min(EVAL_ROWS_MAX, EVAL_FLOATS // floats))


def long_draws(share: float, draws: int, steps: int, limit: int) -> int:
    """The most long words a batch of `draws` words (drawn with replacement, each long with probability `share`)
    holds in any of `steps` steps, but with a chance under RUN_RISK: the smallest k with steps * P(K > k) <=
    RUN_RISK, K binomial; `draws` when that k would pass `limit` (a batch holds at most batch_size words). Each
    tail is a sum of the small terms above k, added from the top (1 - P(K <= k) was rounding error at 1e-12)."""
    if share <= 0:
        return 0
    if share >= 1 or draws * share > limit:
        return draws
    spread = math.sqrt(draws * share * (1 - share))
    top = min(draws, math.ceil(draws * share + 40 * spread + 40))  # terms above it are under e**-700
    log_p, log_q, whole = math.log(share), math.log1p(-share), math.lgamma(draws + 1)
    terms = [
        math.exp(whole - math.lgamma(j + 1) - math.lgamma(draws - j + 1) + j * log_p + (draws - j) * log_q)
        for j in range(top + 1)
    ]
    above = 0.0  # P(K > k), from k = top down
    tails = [0.0] * (top + 1)
    for k in range(top, -1, -1):
        tails[k] = above
        above += terms[k]
    return next((k for k in range(min(top, limit) + 1) if steps * tails[k] <= RUN_RISK), draws)


def packed_batch(sizes: np.ndarray, batch: int, draws: int, steps: int, narrow: int) -> list[tuple[int, int]]:
    """(rows, width) pairs a packed kind's training batch stays within, but with a chance under RUN_RISK in the run:
    `batch` words of the training words' `sizes` (length + 1), from `draws` drawn per step (batch x buckets), packed
    best fit decreasing (data.packing) into rows `narrow` wide (min(block_size, PACK_WIDTH)), or as wide as the
    longest word drawn. With k long words (wider than `narrow`: long_draws) the short ones come after them, and a
    short word opens a row only where every row has less room than it: every row a short word opened but the last
    is more than w - s full (s: the widest short word), so a batch w wide holds at most k + (batch - k) s //
    (w - s + 1) + 1 rows, and never more than batch. One pair per width a long word can give (the widest need not
    cost the most), and (batch, narrow): a batch of no long word (rows of 32 may pack short words worse than 33)."""
    sizes = np.asarray(sizes)
    long = sizes > narrow
    k = min(batch, long_draws(float(long.mean()) if long.size else 0.0, draws, steps, batch))
    if k == 0:
        return [(batch, narrow)]
    short = int(sizes[~long].max(initial=1))
    wide = [
        (min(batch, k + (batch - k) * short // (width - short + 1) + 1), width)
        for width in np.unique(sizes[long]).tolist()
    ]
    return [(batch, narrow), *wide]  # and a batch of no long word: narrow, but it may pack worse than a wider one


def eval_chunk(kind: str, vocab_size: int, config: Config) -> Callable[[int], int]:
    """Rows per evaluation call of rows `width` positions wide: eval_rows for a window kind; for a sequence kind, as
    many whole words of that width (EVAL_WORDS at most) as fit the activations eval_rows charges at block_size, so
    the estimate holds at every width (a split of short words and one long one ran word by word: 37,000 calls)."""
    rows = eval_rows(kind, vocab_size, config)
    if not kind_spec(kind).sequence:
        return lambda width: rows
    budget = rows * activation_floats(kind, vocab_size, config)

    @functools.cache
    def at(width: int) -> int:
        floats = activation_floats(kind, vocab_size, config.replace(block_size=max(1, width)))
        return max(1, min(EVAL_WORDS, budget // floats))

    return at


def estimate(
    kind: str,
    config: Config,
    vocab_size: int,
    split_sizes: dict[str, int],
    words: int | None = None,
    train_sizes: np.ndarray | None = None,
) -> dict[str, int]:
    """Bytes needed by the data, the model (with gradients and optimizer state) and the activations.

    `words`: how many words the examples come from; None assumes the most, every word one character long.
    `train_sizes`: the training words' lengths + 1, which a packed kind's batch is bounded by (packed_batch); None
    counts batch_size rows of block_size.
    """
    block = config.block_size or 1  # a sequence kind's before the data sets it: 1
    examples = sum(split_sizes.values())
    largest = max(split_sizes.values(), default=0)
    words = examples // 2 if words is None else words
    spec = kind_spec(kind)
    params = param_count(kind, vocab_size, config)
    if spec.counted:
        model = params * (FLOAT + 3 * 8)  # float32 log-probabilities, float64 counts while fitting
        rows = 0
    else:
        train = config.train
        states = {"sgd": 0, "adam": 2, "adamw": 2}[train.optimizer if train else "adamw"]
        averages = 2 if train and train.ema else 0  # the weights' average, and their copy while it is evaluated
        model = params * FLOAT * (4 + states + averages)  # weights, gradients, state, the checkpoint's copy
        rows = (train and train.batch_size) or split_sizes.get("train", 0)  # no batch size: full batch
    floats = activation_floats(kind, vocab_size, config)
    buckets = (config.train and config.train.buckets) or 1
    if spec.packed and train_sizes is not None and config.train is not None:
        narrow = min(block, PACK_WIDTH)
        shapes = packed_batch(train_sizes, rows, rows * buckets, config.train.steps, narrow)
        batch = max(
            n * (2 * activation_floats(kind, vocab_size, config.replace(block_size=w)) * FLOAT + 2 * (w + 1) * INDEX)
            for n, w in shapes
        )
    else:
        batch = rows * (2 * floats * FLOAT + 2 * (block + 1) * INDEX)
    if buckets > 1:  # trainer.batch_indices draws buckets x batch_size rows at once and sorts them
        batch += buckets * rows * DRAW_INDICES * INDEX
    if spec.counted:  # counted COUNT_ROWS examples at a time: their indices, no activations
        batch = min(largest, COUNT_ROWS) * 4 * (block + 1) * INDEX
    activations = batch + min(largest, eval_rows(kind, vocab_size, config)) * (floats * FLOAT + 2 * (block + 1) * INDEX)
    if not spec.sequence:  # evaluation finds the distinct pairs of PAIR_ROWS rows at a time
        activations += min(largest, PAIR_ROWS) * (block + PAIR_INDICES) * INDEX
    return {
        "data": examples * (token_bytes(vocab_size) + CHAR_BYTES) + words * WORD_BYTES,
        "model": model,
        "activations": activations,
    }


def needed(
    kind: str,
    config: Config,
    vocab_size: int,
    split_sizes: dict[str, int],
    words: int | None = None,
    train_sizes: np.ndarray | None = None,
) -> int:
    return OVERHEAD + sum(estimate(kind, config, vocab_size, split_sizes, words, train_sizes).values())


def describe(n_bytes: float) -> str:
    """Bytes in binary units: '512 B', '3.5 GiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n_bytes < 1024 or unit == "PiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    raise AssertionError("unreachable")


def culprit(
    kind: str,
    config: Config,
    vocab_size: int,
    split_sizes: dict[str, int],
    defaults: dict[str, Any],
    words: int | None = None,
    train_sizes: np.ndarray | None = None,
) -> str | None:
    """The size flag whose return to its default (`defaults`: flat) saves the most memory (None when none saves
    any)."""
    total = needed(kind, config, vocab_size, split_sizes, words, train_sizes)
    values = config.flat()
    savings = {}
    for key in SIZE_FLAGS:  # a sequence kind's block_size comes from the data: config.size_defaults gives its own
        if key in values and key in defaults and values[key] > defaults[key]:
            smaller = needed(kind, config.replace(**{key: defaults[key]}), vocab_size, split_sizes, words, train_sizes)
            savings[key] = total - smaller
    best = max(savings, key=savings.__getitem__, default=None)
    return best if best is not None and savings[best] > 0 else None


def check_memory(
    kind: str,
    config: Config,
    vocab_size: int,
    split_sizes: dict[str, int],
    defaults: dict[str, Any],
    limit: int | None = None,
    words: int | None = None,
    train_sizes: np.ndarray | None = None,
) -> None:
    """MemoryLimitError naming the flag to lower when the run would need more than MEMORY_FRACTION of the memory.

    `words`: the words of all splits (None: the most the examples allow, see estimate). `defaults`: the flat
    values that a memory error compares the size flags with (config.size_defaults). `train_sizes`: the training
    words' lengths + 1 (a packed kind's batch, see packed_batch).
    """
    machine = machine_memory() if limit is None else limit
    allowed = int(machine * MEMORY_FRACTION)
    total = needed(kind, config, vocab_size, split_sizes, words, train_sizes)
    if total <= allowed:
        return
    parts = estimate(kind, config, vocab_size, split_sizes, words, train_sizes)
    detail = ", ".join(f"{name} {describe(size)}" for name, size in parts.items())
    need = f"needs about {describe(total)} of memory ({detail}); this machine allows {describe(allowed)}"
    key = culprit(kind, config, vocab_size, split_sizes, defaults, words, train_sizes)
    if key is None:
        n_examples = sum(split_sizes.values())
        raise MemoryLimitError(f"a {kind} on this data ({n_examples:,} examples, {vocab_size - 1:,} characters) {need}")
    flag = "--" + key.replace("_", "-")
    raise MemoryLimitError(f"{flag} {config.flat()[key]:,} {need}: choose a smaller {flag}")
