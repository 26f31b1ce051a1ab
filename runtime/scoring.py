"""Negative log-likelihood of words under a model, from any logits function, in bounded memory."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from makemore.contract import MAX_LEN_LIMIT, ModelInfo
from makemore.data import DatasetError, make_examples

CHUNK = 8192  # examples (predicted characters) per forward call and per group of words: 8,192 scores as fast
# as 65,536 and keeps the peak of scoring 10,000 names of 100 characters at 106 MB instead of 204
LogitsFn = Callable[[np.ndarray], np.ndarray]  # int64 context [B, T] -> logits [B, V]


def example_nll(logits_fn: LogitsFn, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """NLL in nats of each target y[i] given context x[i] (float64 [N])."""
    out = np.empty(len(y), dtype=np.float64)
    for start in range(0, len(y), CHUNK):
        logits = np.asarray(logits_fn(x[start : start + CHUNK]), dtype=np.float64)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(shifted).sum(axis=1))
        targets = y[start : start + CHUNK]
        out[start : start + CHUNK] = log_norm - shifted[np.arange(len(targets)), targets]
    return out


def word_groups(words: list[str], limit: int = CHUNK) -> Iterator[list[str]]:
    """Consecutive groups of words with at most `limit` predicted characters each (a longer word alone)."""
    group: list[str] = []
    size = 0
    for word in words:
        if group and size + len(word) + 1 > limit:
            yield group
            group, size = [], 0
        group.append(word)
        size += len(word) + 1
    if group:
        yield group


def per_word_nll(logits_fn: LogitsFn, info: ModelInfo, words: list[str]) -> Iterator[np.ndarray]:
    """For each word, the NLL of each predicted character (its letters, then its end), group by group."""
    for group in word_groups(words):
        nll = example_nll(logits_fn, *make_examples(group, info.vocab, info.block_size))
        ends = np.cumsum([len(word) + 1 for word in group])
        yield from np.split(nll, ends[:-1])


def mean_nll(logits_fn: LogitsFn, info: ModelInfo, words: list[str]) -> float:
    """Mean NLL per predicted character (each word's letters and its end) over `words`."""
    total = count = 0.0
    for nll in per_word_nll(logits_fn, info, words):
        total, count = total + nll.sum(), count + len(nll)
    return total / count


def score_names(logits_fn: LogitsFn, info: ModelInfo, names: list[str]) -> list[float]:
    """Each name's mean NLL per predicted character (its letters and its end)."""
    for name in names:
        if not name:
            raise DatasetError("cannot score an empty name")
        if len(name) > MAX_LEN_LIMIT:
            raise DatasetError(f"cannot score a name longer than {MAX_LEN_LIMIT:,} characters")
        info.vocab.encode(name)  # refuse any character outside the vocabulary before the first forward call
    return [float(nll.mean()) for nll in per_word_nll(logits_fn, info, names)]
