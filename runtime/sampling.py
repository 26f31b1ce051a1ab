"""The one sampling loop, driving any decoder (onnxruntime's or torch's, window or stateful).

All names of a chunk advance together, one decoder step per character position; finished rows
drop out of the decoder's state. Names are made in chunks of CHUNK_SIZE rows, each chunk with its own
generator derived from (seed, chunk index) (runtime/chunks.py), so chunks run on any number of worker
threads and give the same names. Draws are inverse-CDF: at every position each row of the chunk has its
own uniform, so two backends whose logits differ in the last bits disagree on at most the name where a
draw lands on a rounding flip, never on the names after it.
"""

from __future__ import annotations

import copy
import functools
import itertools
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar

import numpy as np
from makemore.contract import ModelInfo, StepFn, empty_state
from makemore.contract.signature import check_finite_logits, state_of
from makemore.data import BOUNDARY, Vocab
from makemore.runtime.chunks import ChunkDraws, ChunkSpan, chunk_labels, chunk_spans, request_seed
from makemore.runtime.options import SamplingError, SamplingOptions, label_index
from makemore.runtime.parallel import check_workers, ordered_map, usable_cores
from makemore.runtime.scoring import (
    LogitsFn,
    WordNll,
    as_words,
    mean_nll,
    mixture_scores,
    nll_totals,
    score_names,
    step_word_nll,
    window_word_nll,
)

if TYPE_CHECKING:  # the constraints' module is imported by a constrained request only (mm-gen's cold start)
    from makemore.runtime.constraints import Automaton


class Decoder(Protocol):
    """A batch of names being decoded: each call returns the logits [rows, V] of every running row's next character."""

    def start(self, prefix_ids: list[int], rows: int) -> np.ndarray:
        """Begin `rows` names with the boundary and `prefix_ids`; the logits of the first character after them."""

    def keep(self, running: np.ndarray) -> None:
        """Keep only the rows where the bool mask `running` is true (finished names leave the state); or, given an
        int index array, the rows it names, in its order, a row repeated as often as it appears (beam search)."""

    def step(self, tokens: np.ndarray) -> np.ndarray:
        """Feed one int64 token per running row; the logits of the next character."""


class RowLabels:
    """A conditional model's label index of every running row (int64), fed with each call; none: no label."""

    def __init__(self, label: np.ndarray | None) -> None:
        self.label = label

    def args(self) -> tuple[np.ndarray, ...]:
        """The extra argument of a forward call: the running rows' labels, or nothing."""
        return () if self.label is None else (self.label,)

    def keep(self, running: np.ndarray) -> None:
        if self.label is not None:
            self.label = self.label[running]


class WindowDecoder:
    """The window contract as a decoder: its state is the last `block_size` characters of every row (and a
    conditional model's label of every row)."""

    def __init__(self, logits_fn: LogitsFn, block_size: int, label: np.ndarray | None = None) -> None:
        self.logits_fn, self.block_size, self.labels = logits_fn, block_size, RowLabels(label)
        self.context = np.zeros((0, block_size), dtype=np.int64)

    def start(self, prefix_ids: list[int], rows: int) -> np.ndarray:
        window = ([BOUNDARY] * self.block_size + prefix_ids)[-self.block_size :]
        self.context = np.tile(np.array(window, dtype=np.int64), (rows, 1))
        return self.logits_fn(self.context, *self.labels.args())

    def keep(self, running: np.ndarray) -> None:
        self.context = self.context[running]
        self.labels.keep(running)

    def step(self, tokens: np.ndarray) -> np.ndarray:
        self.context = np.concatenate([self.context[:, 1:], tokens[:, None]], axis=1)
        return self.logits_fn(self.context, *self.labels.args())


class StepDecoder:
    """The step contract as a decoder: its state is the model's own (a key/value cache or a hidden state),
    carried from call to call (and a conditional model's label of every row); the prefix is fed in multi-step
    calls, one per group of rows (start_rows)."""

    def __init__(self, step_fn: StepFn, info: ModelInfo, label: np.ndarray | None = None) -> None:
        self.step_fn, self.info, self.labels = step_fn, info, RowLabels(label)
        self.state: list[np.ndarray] = []

    def start(self, prefix_ids: list[int], rows: int) -> np.ndarray:
        """The boundary and the prefix fed in one multi-step call per group of rows (start_rows: a long prefix's
        call holds every position's activations, so fewer rows go at once; a row's logits do not depend on the
        rows beside it)."""
        steps = 1 + len(prefix_ids)
        tokens = np.tile(np.array([BOUNDARY, *prefix_ids], dtype=np.int64), (rows, 1))
        label = self.labels.label
        tensors = state_of(self.info).tensors
        group = start_rows(steps)
        parts = []
        for first in range(0, max(rows, 1), group):
            cut = slice(first, first + group)
            labels = () if label is None else (label[cut],)
            size = len(tokens[cut])
            logits, state = self.step_fn(tokens[cut], empty_state(self.info, size), *labels)
            parts.append((logits[:, -1], state))
        if len(parts) == 1:
            self.state = parts[0][1]
            return parts[0][0]
        self.state = [np.concatenate([p[1][i] for p in parts], axis=t.batch_axis) for i, t in enumerate(tensors)]
        return np.concatenate([p[0] for p in parts])

    def keep(self, running: np.ndarray) -> None:
        tensors = state_of(self.info).tensors
        self.state = [np.take(s, rows_of(running), axis=t.batch_axis) for s, t in zip(self.state, tensors, strict=True)]
        self.labels.keep(running)

    def step(self, tokens: np.ndarray) -> np.ndarray:
        logits, self.state = self.step_fn(tokens[:, None], self.state, *self.labels.args())
        return logits[:, -1]


START_TOKENS = 1 << 14  # positions one call of a step model's start feeds at most (rows x steps; or 2 rows) ...
START_PAIRS = 1 << 22  # ... and pairs of positions (rows x steps**2: a transformer's attention over the prefix)


def start_rows(steps: int) -> int:
    """Rows a step model's start feeds in one call of `steps` positions: all of a piece's for a short prefix, fewer
    for a long one, so the call's activations are bounded by START_TOKENS and START_PAIRS, whatever the prefix; at
    least 2."""
    return max(2, min(START_TOKENS // steps, START_PAIRS // steps**2))  # (one row runs as two: onnx_sampler)


F = TypeVar("F", bound=Callable[..., Any])


class Stopped(Exception):
    """A request's work ended before it was done: the stop event of Sampler.until was set."""


def stopping(fn: F, stop: threading.Event) -> F:
    """`fn`, raising Stopped instead of calling it once `stop` is set (a model's forward function: every decoder
    step and scoring call of a request goes through it, so the request ends within one call)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        if stop.is_set():
            raise Stopped("the request was stopped before its work was done")
        return fn(*args, **kwargs)

    return call  # type: ignore[return-value]


def rows_of(keep: np.ndarray) -> np.ndarray:
    """A keep argument as an int index array (a bool mask's true rows)."""
    return np.flatnonzero(keep) if keep.dtype == bool else keep


class WindowForward:
    """A window model's forward pass: decoders and per-word NLL over logits_fn(context [B, block]) -> [B, V]."""

    def __init__(self, logits_fn: LogitsFn, info: ModelInfo) -> None:
        self.logits_fn, self.info = logits_fn, info

    def decoder(self, label: np.ndarray | None = None) -> Decoder:
        return WindowDecoder(self.logits_fn, self.info.block_size, label)

    def word_nll(self, words: list[str], label: int | None = None) -> Iterator[np.ndarray]:
        return window_word_nll(self.logits_fn, self.info, words, label)

    def until(self, stop: threading.Event) -> WindowForward:
        """This forward pass, ending in Stopped at its next call once `stop` is set."""
        return WindowForward(stopping(self.logits_fn, stop), self.info)


class StepForward:
    """A step model's forward pass: decoders and per-word NLL over step_fn(tokens [B, T], state) -> logits, state."""

    def __init__(self, step_fn: StepFn, info: ModelInfo) -> None:
        self.step_fn, self.info = step_fn, info

    def decoder(self, label: np.ndarray | None = None) -> Decoder:
        return StepDecoder(self.step_fn, self.info, label)

    def word_nll(self, words: list[str], label: int | None = None) -> Iterator[np.ndarray]:
        return step_word_nll(self.step_fn, self.info, words, label)

    def until(self, stop: threading.Event) -> StepForward:
        """This forward pass, ending in Stopped at its next call once `stop` is set."""
        return StepForward(stopping(self.step_fn, stop), self.info)


def next_token_weights(
    logits: np.ndarray,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    forbid_boundary: bool = False,
    allowed: np.ndarray | None = None,
) -> np.ndarray:
    """Turn logits [B, V] into unnormalised sampling weights, transposed: [V, B] float32.

    Column b holds row b's weights (max 1). The transposed layout makes every step a handful of
    vectorised operations over B, instead of numpy's slow reductions along a 27-wide axis.
    Temperature 0 is greedy: the likeliest character, exactly as top_k=1. `allowed` (bool [B, V], a
    constraint's mask) sets the other characters to -inf first: temperature, top_k and top_p then act on
    the allowed characters alone (the mask renormalises locally).
    """
    if temperature == 0:
        temperature, top_k = 1.0, 1
    z = np.ascontiguousarray(np.asarray(logits, dtype=np.float32).T)  # a copy: the caller's logits stay as they were
    masked = None if allowed is None else ~np.ascontiguousarray(allowed.T)
    if masked is not None:
        z[masked] = -np.inf
    # top-k and top-p rank the characters by their logits: a huge temperature rounds every scaled gap to 0 (a tie
    # of all), which must not make them keep characters in vocabulary order
    ranked = z.copy() if temperature != 1.0 and (top_k is not None or top_p is not None) else z
    if temperature != 1.0:  # scale the gaps to the max in float64: a tiny temperature gives 0 and -inf, never NaN
        with np.errstate(over="ignore"):  # a gap over a subnormal temperature is -inf by design: no warning
            gaps = (z - z.max(axis=0)).astype(np.float64) / temperature
        z = np.maximum(gaps, np.finfo(np.float32).min).astype(np.float32)
        if masked is not None:
            z[masked] = -np.inf
    if forbid_boundary:
        z[BOUNDARY] = ranked[BOUNDARY] = -np.inf
    if top_k is not None and top_k < z.shape[0]:
        kth = np.partition(ranked, -top_k, axis=0)[-top_k]
        dropped = ranked < kth
        z[dropped] = ranked[dropped] = -np.inf
    order = None
    if top_p is not None and top_p < 1:  # likeliest first (by logit; ties by index), before z becomes the weights
        order = np.argsort(-ranked, axis=0, kind="stable")
    z -= z.max(axis=0)
    # exp in float64, rounded to float32: the page's Math.exp into a Float32Array, bit for bit (numpy's float32 exp
    # differs from it in the last bit on about 2 values in 5, and by CPU: its SIMD paths give other bits)
    weights: np.ndarray = np.exp(z, out=z, dtype=np.float64, casting="same_kind")  # in place: no temporaries
    if order is not None:
        probs = weights / row_by_row_total(weights)
        sorted_probs = np.take_along_axis(probs, order, axis=0)
        mass_before = np.cumsum(sorted_probs, axis=0) - sorted_probs
        drop_sorted = mass_before >= np.float32(top_p)  # in float32, a tiny top_p may round to 0 ...
        drop_sorted[0] = False  # ... but the likeliest character always stays
        drop = np.zeros_like(probs, dtype=bool)
        np.put_along_axis(drop, order, drop_sorted, axis=0)
        weights[drop] = 0.0
    return weights


def row_by_row_total(weights: np.ndarray) -> np.ndarray:
    """Each column's total [B] of weights [V, B], added in the order of the rows whatever B is (numpy sums one
    column pairwise, so a row alone and in a batch got totals a rounding step apart), as the page adds; a running
    sum over the rows (np.cumsum's last row, the same, took 1.9 ms at B = 8,192 against 0.2 ms)."""
    total: np.ndarray = weights[0].copy()
    for row in weights[1:]:
        total += row
    return total


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
    below = (cdf <= threshold).view(np.uint8)  # counted in the narrowest type that holds len(cdf): summing the
    picks: np.ndarray = np.add.reduce(below, axis=0, dtype=count_dtype(len(cdf))).astype(np.int64)  # bools, 6x slower
    return picks


def count_dtype(size: int) -> type[np.unsignedinteger]:
    """The narrowest unsigned integer type that counts from 0 to `size`."""
    return np.uint8 if size <= 0xFF else np.uint16 if size <= 0xFFFF else np.uint32


TOKEN_DTYPE = np.uint32  # a chunk's picks as kept until its names are decoded: 4 bytes a character, any vocabulary


def sample_chunk(
    decoder: Decoder,
    draws: ChunkDraws,
    prefix_ids: list[int],
    max_len: int,
    options: SamplingOptions,
    automaton: Automaton | None = None,
    kept: np.ndarray | None = None,
) -> np.ndarray:
    """Sample the rows of `draws` together: tokens [rows, length of the longest name] (TOKEN_DTYPE), each padded with
    boundary (0).

    `automaton` (the request's constraints, or None) masks each row's characters before every draw; `kept`
    (float64 [rows], or None) is multiplied by the share of each row's model distribution the mask keeps at each
    step (see kept_share)."""
    rows = draws.rows
    columns = [np.full(rows, ix, dtype=TOKEN_DTYPE) for ix in prefix_ids]
    active = np.arange(rows)
    tokens = None
    constraint = None if automaton is None else automaton.runner()
    if constraint is not None:
        constraint.start(rows)
    for pos in range(len(prefix_ids), max_len):
        if active.size == 0:
            break
        uniforms = draws.next()
        logits = decoder.start(prefix_ids, rows) if tokens is None else decoder.step(tokens)
        check_finite_logits(logits, "while sampling")
        allowed = None if constraint is None else constraint.allowed()
        if kept is not None and allowed is not None:
            kept[active] *= kept_share(logits, allowed, options.temperature, first=pos == 0)
        picks = draw(
            next_token_weights(
                logits,
                forbid_boundary=pos == 0,
                temperature=options.temperature,
                top_k=options.top_k,
                top_p=options.top_p,
                allowed=allowed,
            ),
            uniforms[active],
        )
        column = np.zeros(rows, dtype=TOKEN_DTYPE)
        column[active] = picks
        columns.append(column)
        running = picks != BOUNDARY
        decoder.keep(np.flatnonzero(running))  # an index array: 3x cheaper than a bool mask over 2-D state
        if constraint is not None:
            constraint.advance(picks)
            constraint.keep(running)
        tokens, active = picks[running], active[running]
    return np.stack(columns, axis=1) if columns else np.zeros((rows, 0), dtype=TOKEN_DTYPE)


def kept_share(logits: np.ndarray, allowed: np.ndarray, temperature: float, first: bool = False) -> np.ndarray:
    """float64 [B]: the probability the mask `allowed` keeps of softmax(logits / temperature) (temperature 0: of
    the likeliest character, 1 or 0; top_k and top_p are not counted). The product of these over a name's steps is
    its importance weight: their mean over sampled names estimates the share of the model's distribution (at
    that temperature) that satisfies the constraints (exact in expectation for top_k and top_p unset). `first`:
    the first character, where the unconstrained loop never ends a name either (the boundary is not counted)."""
    z = np.array(logits, dtype=np.float64)
    if first:
        z[:, BOUNDARY] = -np.inf
    if temperature == 0:
        best: np.ndarray = allowed[np.arange(len(z)), z.argmax(axis=1)].astype(np.float64)
        return best
    with np.errstate(over="ignore"):  # a gap over a subnormal temperature is -inf by design: no warning
        z = (z - z.max(axis=1, keepdims=True)) / temperature
    weights = np.exp(z)
    share: np.ndarray = (weights * allowed).sum(axis=1) / weights.sum(axis=1)
    return share


class KeptMass:
    """The mean importance weight of the names of a request (see kept_share), summed chunk by chunk (thread-safe)."""

    def __init__(self) -> None:
        self.total, self.count, self.lock = 0.0, 0, threading.Lock()

    def add(self, weights: np.ndarray) -> None:
        with self.lock:
            self.total += float(weights.sum())
            self.count += len(weights)

    @property
    def share(self) -> float | None:
        """The estimated share of the model's distribution the constraints keep (None before any name)."""
        return self.total / self.count if self.count else None


PIECE_ROWS = 2048  # rows one decoder runs at once: measured 7% (1 worker) to 12% (2) faster than CHUNK_SIZE
STEP_PIECE_ROWS = 512  # a step model's: its state and activations (a cache, a 256-wide hidden state) stay in the
# core's cache; measured 1.15x to 1.2x the names/s of 2048 rows (transformer, gru; one worker)
DECODER_BYTES = 32 << 20  # memory one decoder may hold: a big step model's chunk runs in pieces of fewer rows
IN_FLIGHT_BYTES = 128 << 20  # memory of all decoders running at once: fewer workers run where pieces are big
ROW_OVERHEAD = 2048  # bytes a running row costs besides its state and logits (the graph's activations, draws)
NAME_BYTES = 16  # bytes a name's character costs until the name is a string: its pick kept, the picks stacked,
# their code points (4 bytes each) and the string


def row_bytes(info: ModelInfo, max_len: int) -> int:
    """What one running name costs a decoder, about: its float32 state (a key/value cache grows to max_len + 1
    positions), a few float32 copies of its logits, its context, its characters until it is decoded (NAME_BYTES
    each, max_len of them) and ROW_OVERHEAD."""
    state = 0 if info.state is None else info.state.row_bytes(max_len + 1)
    return state + 16 * info.vocab.size + 16 * info.block_size + NAME_BYTES * max_len + ROW_OVERHEAD


def rows_per_decoder(info: ModelInfo, max_len: int) -> int:
    """Rows one decoder runs at once: PIECE_ROWS (a step model's: STEP_PIECE_ROWS), or fewer where their row_bytes
    would pass DECODER_BYTES (a big state or vocabulary); at least 1. The names do not depend on it."""
    piece = PIECE_ROWS if info.state is None else STEP_PIECE_ROWS
    return max(1, min(piece, DECODER_BYTES // row_bytes(info, max_len)))


def busy_workers(workers: int, info: ModelInfo, max_len: int, start: int, n: int) -> int:
    """Workers worth starting for names [start, start + n): at most one per piece of the request, one per usable
    core (more threads than cores add memory, not speed), and as many pieces as IN_FLIGHT_BYTES holds running at
    once (each holds its state about three times: the model's input, its output and the rows kept); at least 1,
    whatever `workers` asks. The names do not depend on it."""
    rows = rows_per_decoder(info, max_len)
    pieces = sum(1 for _ in itertools.islice(chunk_spans(start, start + n, rows), workers))
    state = 0 if info.state is None else info.state.row_bytes(max_len + 1)
    by_memory = IN_FLIGHT_BYTES // (rows * (row_bytes(info, max_len) + 2 * state))
    return max(1, min(pieces, usable_cores(), max(1, by_memory)))


def iter_sample_chunks(
    new_decoder: Callable[..., Decoder],
    info: ModelInfo,
    n: int,
    options: SamplingOptions,
    *,
    start: int = 0,
    workers: int = 1,
    mass: KeptMass | None = None,
) -> Iterator[list[str]]:
    """Names start .. start + n - 1 of the request `options` (seed included), chunk by chunk, in order.

    Each chunk piece runs on a fresh decoder, on up to `workers` threads (at most 2 * workers chunks in
    flight; a single chunk runs inline). The names do not depend on `workers`, nor on how the request is cut
    into calls: names [0, n) are the concatenation of names [0, m) and [m, n). The model-dependent options
    are checked now, before the first chunk is asked for; chunks are made lazily, so memory stays flat for any n.
    The constraints compile once into one automaton (runtime.constraints), shared read-only by every chunk;
    `mass` (when given, for a constrained request) collects the importance weights of the names.
    A conditional model's decoders get each row's label: the request's, or one drawn per name (chunks.chunk_labels).
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise SamplingError(f"n must be a whole number of at least 0, got {n!r:.40}", "n")
    if not isinstance(start, int) or isinstance(start, bool) or start < 0:
        raise SamplingError(f"start must be a whole number of at least 0, got {start!r:.40}", "start")
    workers = check_workers(workers)
    prefix_ids, max_len, label = options.for_model(info)
    seed = request_seed(options.seed)
    automaton = request_automaton(options, info, max_len)

    def names(span: ChunkSpan) -> list[str]:
        draws = ChunkDraws(seed, span)
        decoder = new_decoder(*row_labels(info, label, seed, span))
        kept = np.ones(draws.rows) if mass is not None and automaton is not None else None
        tokens = sample_chunk(decoder, draws, prefix_ids, max_len, options, automaton, kept)
        if kept is not None and mass is not None:
            mass.add(kept)
        return info.vocab.decode_rows(tokens)

    spans = chunk_spans(start, start + n, rows_per_decoder(info, max_len))
    return ordered_map(names, spans, busy_workers(workers, info, max_len, start, n))


def request_automaton(options: SamplingOptions, info: ModelInfo, max_len: int) -> Automaton | None:
    """The request's constraints compiled (runtime.constraints), or None for an unconstrained request (whose
    sampling never imports that module)."""
    if not options.constrained:
        return None
    from makemore.runtime.constraints import compile_constraints

    return compile_constraints(options, info.vocab, max_len)


def row_labels(info: ModelInfo, label: int | None, seed: int, span: ChunkSpan) -> tuple[np.ndarray, ...]:
    """A conditional model's label index of each row of `span` (int64 [rows]): `label` on every row, or drawn per
    name from the training frequencies; () for an unlabelled model (its decoders take no label)."""
    if not info.labelled:
        return ()
    if label is not None:
        return (np.full(span.rows, label, dtype=np.int64),)
    return (chunk_labels(seed, span, info.label_counts),)


def window_inputs(info: ModelInfo, context: Any, label: Any = None) -> tuple[np.ndarray, ...]:
    """A window model's call as the logits API takes it, checked: context, whole numbers [B, block_size] each in
    0..V-1, and a conditional model's label, whole numbers [B] each in 0..labels-1 (none for an unlabelled model),
    as int64 arrays; a SamplingError naming `context` or `label` otherwise (onnxruntime's Gather wraps -1 to the
    last row, torch raises, a float is cut to an int: neither is an answer)."""
    context = whole_numbers(context, "context", (None, info.block_size), info.vocab.size)
    if info.labelled != (label is not None):
        need = "a conditional model needs a label index per row" if info.labelled else "this model takes no label"
        raise SamplingError(need, "label")
    if label is None:
        return (context,)
    return context, whole_numbers(label, "label", (len(context),), len(info.labels))


def whole_numbers(value: Any, name: str, shape: tuple[int | None, ...], size: int) -> np.ndarray:
    """`value` as an int64 array of `shape` (None: any length) whose entries lie in 0..size-1; SamplingError naming
    `name` otherwise."""
    try:
        array = np.asarray(value) if isinstance(value, (np.ndarray, list, tuple)) else None
    except ValueError:  # a ragged list
        array = None
    want = "[" + ", ".join("B" if d is None else str(d) for d in shape) + "]"
    if array is None or array.dtype.kind not in "iu":
        got = type(value).__name__ if array is None else f"{array.dtype} values"
        raise SamplingError(f"{name} must be an array of whole numbers {want}, got {got}", name)
    if array.ndim != len(shape) or any(d is not None and d != got for d, got in zip(shape, array.shape, strict=False)):
        raise SamplingError(f"{name} must be an array of whole numbers {want}, got shape {list(array.shape)}", name)
    if array.size and (array.min() < 0 or array.max() >= size):
        raise SamplingError(
            f"{name} must hold indices from 0 to {size - 1}, got {int(array.min())}..{int(array.max())}", name
        )
    return np.ascontiguousarray(array, dtype=np.int64)


class Sampler:
    """Sampling and scoring over a backend's forward pass (WindowForward or StepForward, set by the subclass)."""

    info: ModelInfo
    forward: WindowForward | StepForward
    workers: int = 1  # threads sampling chunks at once

    @property
    def vocab(self) -> Vocab:
        return self.info.vocab

    @property
    def block_size(self) -> int:
        return self.info.block_size

    def until(self, stop: threading.Event) -> Self:
        """This sampler on the same model (nothing is copied but the object), whose work ends in Stopped at its
        next model call once `stop` is set: another thread (the server, when a client leaves) can end a request
        that is no longer wanted. Until then it gives the same names and scores as this sampler."""
        if not callable(getattr(stop, "is_set", None)):
            raise TypeError(f"until needs a threading.Event, got {type(stop).__name__}")
        view = copy.copy(self)
        view.forward = self.forward.until(stop)
        return view

    def decoder(self, label: np.ndarray | None = None) -> Decoder:
        """A fresh decoder for one chunk of names (a conditional model's: with each row's label index)."""
        return self.forward.decoder(label)

    def sample_chunks(
        self,
        n: int,
        options: SamplingOptions | None = None,
        *,
        start: int = 0,
        mass: KeptMass | None = None,
        **values: Any,
    ) -> Iterator[list[str]]:
        """The names of `sample(n, ...)`, yielded a list per piece (the rows one decoder runs: see rows_per_decoder;
        bounded memory for any n), sampled on
        `self.workers` threads; from name `start` of the request on (the names before it are skipped, not made);
        `mass` collects the constrained names' importance weights (see KeptMass)."""
        options = SamplingOptions.of(options, **values)
        return iter_sample_chunks(self.decoder, self.info, n, options, start=start, workers=self.workers, mass=mass)

    def sample(self, n: int, options: SamplingOptions | None = None, **values: Any) -> list[str]:
        """Sample `n` names with `options`, or its fields as keywords (seed, temperature, top_k, ..., and the
        constraints min_len, ends_with, contains, match, exclude: every name satisfies them all)."""
        return [name for chunk in self.sample_chunks(n, options, **values) for name in chunk]

    def beam(
        self, n: int, options: SamplingOptions | None = None, *, width: int = 8, **values: Any
    ) -> list[tuple[str, float]]:
        """The `n` likeliest distinct names beam search of `width` rows finds under the constraints of `options`
        (or its fields as keywords), with their log-probabilities, likeliest first (see runtime.beam); a conditional
        model's under the options' label, which it needs here."""
        from makemore.runtime.beam import beam_search

        options = SamplingOptions.of(options, **values)
        label = options.for_model(self.info)[2]
        if self.info.labelled and label is None:
            raise SamplingError("this model is conditional: give a label for beam search", "label")
        labels = () if label is None else (np.array([label], dtype=np.int64),)
        return beam_search(lambda: self.decoder(*labels), self.info, n, options, width)

    def word_nll(self, label: str | None = None) -> WordNll:
        """Words -> each word's NLL per predicted character (a conditional model's under `label`, which it needs
        here; SamplingError naming "label" for an unknown label or one given to an unlabelled model)."""
        index = label_index(label, self.info)
        if self.info.labelled and index is None:
            raise SamplingError("this model is conditional: give a label to compute its loss", "label")
        return functools.partial(self.forward.word_nll, label=index)

    def nll(self, words: list[str], label: str | None = None) -> float:
        """Mean NLL per predicted character over `words` (the training loss; a conditional model's under `label`)."""
        return mean_nll(self.word_nll(label), as_words(words))

    def nll_totals(self, words: list[str], label: str | None = None) -> tuple[float, int]:
        """Summed NLL and predicted characters over `words` (a conditional model's under `label`)."""
        return nll_totals(self.word_nll(label), as_words(words))

    def score(self, names: list[str], label: str | None = None) -> list[float]:
        """Each name's mean NLL per predicted character: lower is more name-like. A conditional model scores under
        `label`, or without one under the mixture of its labels (their training frequencies as weights)."""
        names = as_words(names)
        if self.info.labelled and label is None:
            return mixture_scores(lambda index: functools.partial(self.forward.word_nll, label=index), self.info, names)
        return score_names(self.word_nll(label), self.info, names)
