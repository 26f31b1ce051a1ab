"""The one sampling loop, fed by any logits function (onnxruntime's or torch's).

All names advance together, one forward call per character position; finished rows drop out.
Names are made in chunks of CHUNK_SIZE rows, one after another from the same seeded numpy
generator. Draws are inverse-CDF: at every position `rng.random(rows)` gives one uniform per
original row of the chunk, so two backends whose logits differ in the last bits disagree on at
most the name where a draw lands on a rounding flip, never on the names after it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from makemore.data import BOUNDARY, DatasetError, UserError, Vocab
from makemore.runtime.model_info import ModelInfo
from makemore.runtime.scoring import LogitsFn, mean_nll, score_names

MAX_LEN_LIMIT = 100_000  # characters in one name: beyond it, a request is a mistake


class SamplingError(UserError):
    """Sampling arguments that make no sense; the message is one line meant for the user."""


def check_sampling_args(
    n: int,
    vocab: Vocab,
    *,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    prefix: str,
    max_len: int,
) -> list[int]:
    """Validate the arguments; return the prefix as indices."""
    if n < 1:
        raise SamplingError(f"n must be at least 1, got {n}")
    if not (temperature > 0 and math.isfinite(temperature)):
        raise SamplingError(f"temperature must be a positive number, got {temperature}")
    if top_k is not None and top_k < 1:
        raise SamplingError(f"top_k must be at least 1, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise SamplingError(f"top_p must be in (0, 1], got {top_p}")
    if not 1 <= max_len <= MAX_LEN_LIMIT:
        raise SamplingError(f"max_len must be between 1 and {MAX_LEN_LIMIT:,}, got {max_len}")
    try:
        prefix_ids = vocab.encode(prefix)
    except DatasetError:
        bad = sorted(set(prefix) - set(vocab.chars))
        raise SamplingError(f"prefix has characters outside the model's vocabulary: {''.join(bad)!r}") from None
    if len(prefix_ids) > max_len:
        raise SamplingError(f"prefix is longer ({len(prefix_ids)}) than max_len ({max_len})")
    return prefix_ids


def next_token_weights(
    logits: np.ndarray,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    forbid_boundary: bool = False,
) -> np.ndarray:
    """Turn logits [B, V] into unnormalised sampling weights, transposed: [V, B] float32.

    Column b holds row b's weights (max 1). The transposed layout makes every step a handful of
    vectorised operations over B, instead of numpy's slow reductions along a 27-wide axis.
    """
    z = np.ascontiguousarray(np.asarray(logits, dtype=np.float32).T)  # a copy: the caller's logits stay as they were
    if temperature != 1.0:  # scale the gaps to the max in float64: a tiny temperature gives 0 and -inf, never NaN
        gaps = (z - z.max(axis=0)).astype(np.float64) / temperature
        z = np.maximum(gaps, np.finfo(np.float32).min).astype(np.float32)
    if forbid_boundary:
        z[BOUNDARY] = -np.inf
    if top_k is not None and top_k < z.shape[0]:
        kth = np.partition(z, -top_k, axis=0)[-top_k]
        z[z < kth] = -np.inf
    z -= z.max(axis=0)
    weights = np.exp(z, out=z)
    if top_p is not None and top_p < 1:
        probs = weights / weights.sum(axis=0)
        order = np.argsort(-probs, axis=0, kind="stable")
        sorted_probs = np.take_along_axis(probs, order, axis=0)
        mass_before = np.cumsum(sorted_probs, axis=0) - sorted_probs
        drop = np.zeros_like(probs, dtype=bool)
        np.put_along_axis(drop, order, mass_before >= top_p, axis=0)
        weights[drop] = 0.0
    return weights


def draw(weights: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw from transposed weights [V, B]: per column, the first index whose cumulative
    weight exceeds u * total. The threshold stays strictly below the total, so an index of zero
    weight is never drawn.
    """
    cdf = weights  # accumulated in place, one character at a time (vectorised over the batch)
    for ix in range(1, len(cdf)):
        np.add(cdf[ix], cdf[ix - 1], out=cdf[ix])
    total = cdf[-1]
    threshold = np.minimum((uniforms * total).astype(cdf.dtype), np.nextafter(total, 0))
    return (cdf <= threshold).sum(axis=0)


CHUNK_SIZE = 4096  # names generated together (cache-sized: measured fastest); larger requests run in chunks


def iter_sample_chunks(
    logits_fn: LogitsFn,
    info: ModelInfo,
    n: int,
    *,
    seed: int | np.random.Generator | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    prefix: str = "",
    max_len: int | None = None,
) -> Iterator[list[str]]:
    """The `n` names in chunks of at most CHUNK_SIZE, one shared generator for all chunks.

    The arguments are checked now, before the first chunk is asked for.
    """
    max_len = info.max_len if max_len is None else max_len
    prefix_ids = check_sampling_args(
        n, info.vocab, temperature=temperature, top_k=top_k, top_p=top_p, prefix=prefix, max_len=max_len
    )
    rng = np.random.default_rng(seed)
    options = dict(temperature=temperature, top_k=top_k, top_p=top_p)
    sizes = [min(CHUNK_SIZE, n - start) for start in range(0, n, CHUNK_SIZE)]
    return (
        info.vocab.decode_rows(_sample_chunk(logits_fn, info, rows, rng, prefix_ids, max_len, options))
        for rows in sizes
    )


def _sample_chunk(
    logits_fn: LogitsFn,
    info: ModelInfo,
    n: int,
    rng: np.random.Generator,
    prefix_ids: list[int],
    max_len: int,
    options: dict,
) -> np.ndarray:
    """Sample n rows together: tokens [n, length of the longest name], each name padded with boundary (0)."""
    context = np.zeros((n, info.block_size), dtype=np.int64)
    for ix in prefix_ids:
        context = np.concatenate([context[:, 1:], np.full((n, 1), ix, dtype=np.int64)], axis=1)
    columns = [np.full(n, ix, dtype=np.int64) for ix in prefix_ids]
    active = np.arange(n)
    for pos in range(len(prefix_ids), max_len):
        uniforms = rng.random(n)
        if active.size == 0:
            break
        weights = next_token_weights(np.asarray(logits_fn(context)), forbid_boundary=pos == 0, **options)
        picks = draw(weights, uniforms[active])
        column = np.zeros(n, dtype=np.int64)
        column[active] = picks
        columns.append(column)
        ended = picks == BOUNDARY
        context = np.concatenate([context[:, 1:], picks[:, None]], axis=1)[~ended]
        active = active[~ended]
    return np.stack(columns, axis=1) if columns else np.zeros((n, 0), dtype=np.int64)


class Sampler:
    """Sampling and scoring over a backend's forward pass; subclasses define `logits`."""

    info: ModelInfo

    @property
    def vocab(self) -> Vocab:
        return self.info.vocab

    @property
    def block_size(self) -> int:
        return self.info.block_size

    def logits(self, context: np.ndarray) -> np.ndarray:
        """int64 context [B, block_size] -> float32 logits [B, V]."""
        raise NotImplementedError

    def sample(
        self,
        n: int,
        *,
        seed: int | np.random.Generator | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        prefix: str = "",
        max_len: int | None = None,
    ) -> list[str]:
        """Sample `n` names; the module docstring says how draws are made."""
        chunks = iter_sample_chunks(
            self.logits,
            self.info,
            n,
            seed=seed,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            prefix=prefix,
            max_len=max_len,
        )
        return [name for chunk in chunks for name in chunk]

    def sample_chunks(self, n: int, **options) -> Iterator[list[str]]:
        """The names of `sample(n, **options)`, yielded chunk by chunk (bounded memory)."""
        return iter_sample_chunks(self.logits, self.info, n, **options)

    def nll(self, words: list[str]) -> float:
        """Mean NLL per predicted character over `words` (the training loss)."""
        return mean_nll(self.logits, self.info, words)

    def score(self, names: list[str]) -> list[float]:
        """Each name's mean NLL per predicted character: lower is more name-like."""
        return score_names(self.logits, self.info, names)
