"""Bench-only decoders for the step contract, run by the runtime's own sampling loop (runtime/sampling.py).

- RecomputeDecoder: a step model without its cache. Every character calls the same ONNX step graph on the
  whole prefix from the empty state and keeps the last position's logits, as a window-style model would.
- RecordingDecoder: logs the calls a sampling run makes, so `replay` can time the decoder alone
  (model calls and state trimming, no sampling): the bound on a step model's names/s.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from makemore.contract import ModelInfo, StepFn, empty_state
from makemore.data import BOUNDARY
from makemore.runtime.options import SamplingOptions
from makemore.runtime.sampling import Decoder, Sampler, iter_sample_chunks

Call = tuple[str, tuple]  # a decoder method's name and its arguments


class RecomputeDecoder:
    """The step contract with no state carried: each step feeds the whole prefix (boundary, prefix, every character
    drawn so far) to the step graph from the empty state and takes the logits of its last position."""

    def __init__(self, step_fn: StepFn, info: ModelInfo) -> None:
        self.step_fn, self.info = step_fn, info
        self.tokens = np.zeros((0, 1), dtype=np.int64)

    def logits(self) -> np.ndarray:
        """The next character's logits of every row, recomputed over its whole prefix."""
        logits, _ = self.step_fn(self.tokens, empty_state(self.info, len(self.tokens)))
        return logits[:, -1]

    def start(self, prefix_ids: list[int], rows: int) -> np.ndarray:
        self.tokens = np.tile(np.array([BOUNDARY, *prefix_ids], dtype=np.int64), (rows, 1))
        return self.logits()

    def keep(self, running: np.ndarray) -> None:
        self.tokens = self.tokens[running]

    def step(self, tokens: np.ndarray) -> np.ndarray:
        self.tokens = np.concatenate([self.tokens, tokens[:, None]], axis=1)
        return self.logits()


def recompute_names(sampler: Sampler, n: int, seed: int) -> list[str]:
    """`sampler.sample(n, seed=seed)` for a step model, but with RecomputeDecoder: the same loop, draws and graph."""
    step_fn, info = sampler.forward.step_fn, sampler.info
    chunks = iter_sample_chunks(lambda: RecomputeDecoder(step_fn, info), info, n, SamplingOptions(seed=seed))
    return [name for chunk in chunks for name in chunk]


class RecordingDecoder:
    """Passes every call on to `inner` and appends it (with a copy of its arrays) to `log`."""

    def __init__(self, inner: Decoder, log: list[Call]) -> None:
        self.inner, self.log = inner, log

    def start(self, prefix_ids: list[int], rows: int) -> np.ndarray:
        self.log.append(("start", (list(prefix_ids), rows)))
        return self.inner.start(prefix_ids, rows)

    def keep(self, running: np.ndarray) -> None:
        self.log.append(("keep", (running.copy(),)))
        self.inner.keep(running)

    def step(self, tokens: np.ndarray) -> np.ndarray:
        self.log.append(("step", (tokens.copy(),)))
        return self.inner.step(tokens)


def recorded_calls(sampler: Sampler, n: int, seed: int) -> list[list[Call]]:
    """The decoder calls of `sampler.sample(n, seed=seed)`, one log per chunk."""
    logs: list[list[Call]] = []

    def recording() -> Decoder:
        logs.append([])
        return RecordingDecoder(sampler.decoder(), logs[-1])

    for _ in iter_sample_chunks(recording, sampler.info, n, SamplingOptions(seed=seed)):
        pass
    return logs


def replay(new_decoder: Callable[[], Decoder], logs: list[list[Call]]) -> None:
    """The recorded calls, made again on fresh decoders: the decoding without the sampling."""
    for log in logs:
        decoder = new_decoder()
        for method, args in log:
            getattr(decoder, method)(*args)
