"""Negative log-likelihood of words under a model, from any logits function."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from makemore.data import DatasetError, make_examples
from makemore.runtime.model_info import ModelInfo

CHUNK = 65536  # examples per forward call
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


def mean_nll(logits_fn: LogitsFn, info: ModelInfo, words: list[str]) -> float:
    """Mean NLL per predicted character (each word's letters and its end) over `words`."""
    x, y = make_examples(words, info.vocab, info.block_size)
    return float(example_nll(logits_fn, x, y).mean())


def score_names(logits_fn: LogitsFn, info: ModelInfo, names: list[str]) -> list[float]:
    """Each name's mean NLL per predicted character (its letters and its end)."""
    for name in names:
        if not name:
            raise DatasetError("cannot score an empty name")
    x, y = make_examples(names, info.vocab, info.block_size)
    nll = example_nll(logits_fn, x, y)
    ends = np.cumsum([len(name) + 1 for name in names])
    return [float(chunk.mean()) for chunk in np.split(nll, ends[:-1])]
