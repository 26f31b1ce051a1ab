"""Beam search: the likeliest distinct names under a request's constraints, deterministically.

A second driver over the same decoders and the same constraint automaton as the sampling loop (runtime.sampling):
all W rows of the beam advance together, one decoder step per character; at every step each row may end (a
finished name, scored with its end) or go on with an allowed character, and the W likeliest continuations are
kept (decoder.keep gathers and duplicates rows by index). A continuation no likelier than the N-th finished name
is dropped: log-probabilities only fall as a name grows, so it could never enter the answer. The names come
back likeliest first with their log-probabilities: the sum of log-softmax over the name's characters (its prefix
included) and its end, as runtime.scoring scores them. The greedy name (temperature 0) is also a candidate, so
the first name is at least as likely as it.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from makemore.contract import ModelInfo
from makemore.contract.signature import check_finite_logits
from makemore.data import BOUNDARY
from makemore.data.bounds import BEAM, BEAM_CELLS
from makemore.runtime.constraints import Automaton, compile_constraints
from makemore.runtime.options import SamplingError, SamplingOptions, check_option

if TYPE_CHECKING:
    from makemore.runtime.sampling import Decoder


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """float64 log-probabilities of logits [B, V]."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    out: np.ndarray = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return out


def check_beam(n: int, width: int, max_len: int) -> None:
    """SamplingError naming `n` or `beam` outside data.bounds.BEAM, or when width x (max_len + 1) passes BEAM_CELLS."""
    check_option("n", n, BEAM["n"])
    check_option("beam", width, BEAM["beam"])
    if width * (max_len + 1) > BEAM_CELLS:
        cells = width * (max_len + 1)
        raise SamplingError(f"beam x (max_len + 1) must be at most {BEAM_CELLS:,}, got {cells:,}", "beam")


class Finished:
    """The n likeliest finished names so far (a min-heap of (log-prob, name): ties go to the name's order)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.heap: list[tuple[float, str]] = []

    def add(self, log_prob: float, name: str) -> None:
        if len(self.heap) < self.n:
            heapq.heappush(self.heap, (log_prob, name))
        elif (log_prob, name) > self.heap[0]:
            heapq.heapreplace(self.heap, (log_prob, name))

    @property
    def floor(self) -> float:
        """The log-prob a continuation must beat to matter: the n-th best so far (-inf until there are n)."""
        return self.heap[0][0] if len(self.heap) == self.n else -np.inf


def prefix_start(decoder: Decoder, prefix_ids: list[int]) -> tuple[np.ndarray, float]:
    """One row fed the boundary, then the prefix a character at a time: the logits after it and its log-prob."""
    logits = decoder.start([], 1)
    total = 0.0
    for ix in prefix_ids:
        check_finite_logits(logits, "while searching")
        total += float(log_softmax(logits)[0, ix])
        logits = decoder.step(np.array([ix], dtype=np.int64))
    return logits, total


def plain_mask(rows: int, length: int, max_len: int, size: int) -> np.ndarray:
    """What an unconstrained row may do at `length`: any character, end from 1 character on; only end at max_len."""
    allowed = np.ones((rows, size), dtype=bool)
    allowed[:, BOUNDARY] = length >= 1
    if length >= max_len:
        allowed[:, 1:] = False
    return allowed


class Paths:
    """The beam's rows as back-pointers: each step's parent row and character of every kept row (int32 [W] each),
    so a step costs O(W) whatever the names' length, and a name is rebuilt (O(its length)) only when it finishes
    among the best."""

    def __init__(self, prefix_ids: list[int]) -> None:
        self.prefix_ids = prefix_ids
        self.steps: list[tuple[np.ndarray, np.ndarray]] = []

    def extend(self, parents: np.ndarray, chars: np.ndarray) -> None:
        self.steps.append((parents.astype(np.int32), chars.astype(np.int32)))

    def ids(self, row: int) -> list[int]:
        """The prefix and the characters of the beam's row `row` at its last step."""
        chars = []
        for parents, step_chars in reversed(self.steps):
            chars.append(int(step_chars[row]))
            row = int(parents[row])
        return [*self.prefix_ids, *reversed(chars)]


def search(
    decoder: Decoder,
    automaton: Automaton | None,
    prefix_ids: list[int],
    max_len: int,
    width: int,
    n: int,
    decode: Callable[[list[int]], str],
) -> list[tuple[float, str]]:
    """One beam of `width` rows: the (log-prob, name) of the n likeliest names it finishes."""
    logits, start = prefix_start(decoder, prefix_ids)
    constraint = None if automaton is None else automaton.runner()
    if constraint is not None:
        constraint.start(1)
    paths = Paths(prefix_ids)
    scores = np.array([start])
    finished = Finished(n)
    for length in range(len(prefix_ids), max_len + 1):
        check_finite_logits(logits, "while searching")
        size = logits.shape[1]
        allowed = plain_mask(len(scores), length, max_len, size) if constraint is None else constraint.allowed()
        cand = np.where(allowed, scores[:, None] + log_softmax(logits), -np.inf)
        for row in np.flatnonzero(allowed[:, BOUNDARY]):
            if cand[row, BOUNDARY] >= finished.floor:  # a name below the n-th best never enters: not rebuilt
                finished.add(float(cand[row, BOUNDARY]), decode(paths.ids(int(row))))
        flat = cand[:, 1:].ravel()
        order = np.argsort(-flat, kind="stable")[:width]
        order = order[flat[order] > finished.floor]
        if order.size == 0:
            break
        parents, chars = np.divmod(order, size - 1)
        chars = chars + 1
        decoder.keep(parents)
        if constraint is not None:
            constraint.keep(parents)
            constraint.advance(chars)
        paths.extend(parents, chars)
        scores = flat[order]
        logits = decoder.step(chars.astype(np.int64))
    return finished.heap


def beam_search(
    new_decoder: Callable[[], Decoder], info: ModelInfo, n: int, options: SamplingOptions, width: int
) -> list[tuple[str, float]]:
    """The n likeliest distinct names a beam of `width` rows finds under `options`' constraints (prefix, max_len,
    min_len, ends_with, contains, match, exclude; temperature, top_k, top_p and seed do not apply), likeliest first,
    with their log-probabilities; fewer when fewer names satisfy the constraints. The greedy search (a beam of one
    row) runs too: the first name is at least as likely as the greedy name."""
    prefix_ids = options.prefix_ids(info.vocab)
    max_len = options.length(info, ceiling=info.longest_name)
    check_beam(n, width, max_len)
    automaton = compile_constraints(options, info.vocab, max_len)

    best: dict[str, float] = {}
    for rows, count in ((width, n), (1, 1)):
        for log_prob, name in search(new_decoder(), automaton, prefix_ids, max_len, rows, count, info.vocab.decode):
            best[name] = max(log_prob, best.get(name, -np.inf))
    ranked = sorted(best.items(), key=lambda item: (-item[1], item[0]))
    return ranked[:n]
