"""The ONNX graph's inputs and outputs, checked against the metadata, and a probe of its logits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from makemore.contract.metadata import PAST, ModelFileError, ModelInfo, ModelOutputError, StateSpec
from makemore.data import first_line

CONTEXT = "context"  # window contract input: int64 [batch, block_size]
TOKENS = "tokens"  # step contract input: int64 [batch, steps]
LOGITS = "logits"  # output: float32 [batch, V] (window), [batch, steps, V] (step)
LABEL = "label"  # a conditional model's input (either contract): int64 [batch], each row's label index
# (tokens [B, T], state) -> (logits, new state); a conditional model's also takes label [B] as a third argument
StepFn = Callable[..., tuple[np.ndarray, list[np.ndarray]]]
PROBE_ROWS = 64  # contexts run at load to check the logits' shape and finiteness
PROBE_STATE_BYTES = 8 << 20  # state a load probe may allocate: a big state is probed on fewer rows (at least 1)
NON_FINITE = "the model gives non-finite logits (NaN or infinite weights?)"


@dataclass(frozen=True)
class IOSpec:
    """One graph input or output as onnxruntime describes it: name, type ('tensor(int64)') and shape."""

    name: str
    type: str
    shape: Sequence[int | str | None]


def _has_dims(spec: IOSpec, dims: Sequence[int | None]) -> bool:
    """Whether spec's shape has len(dims) axes and each int in `dims` (None: any) matches a fixed or symbolic axis."""
    if len(spec.shape) != len(dims):
        return False
    return all(
        want is None or not isinstance(got, int) or got == want for got, want in zip(spec.shape, dims, strict=True)
    )


def check_label_input(by_name: dict[str, IOSpec], info: ModelInfo, source: str) -> None:
    """A conditional model's `label` input is int64 [batch] (its metadata's labels say it has one)."""
    label = by_name.get(LABEL)
    if info.labelled and (label is None or label.type != "tensor(int64)" or not _has_dims(label, (None,))):
        raise ModelFileError(f"{source}: a model with labels needs the input label int64 [batch]")


def check_window_signature(inputs: Sequence[IOSpec], outputs: Sequence[IOSpec], info: ModelInfo, source: str) -> None:
    """context int64 [batch, block_size] (and a conditional model's label int64 [batch]) -> logits float32
    [batch, V], as the metadata says."""
    names = [spec.name for spec in inputs]
    if names != [CONTEXT, *([LABEL] if info.labelled else [])]:
        what = "inputs `context` and `label`" if info.labelled else "input `context`"
        raise ModelFileError(f"{source} does not have the makemore {what} (it has {names})")
    check_label_input({spec.name: spec for spec in inputs}, info, source)
    context = inputs[0]
    if context.type != "tensor(int64)" or not _has_dims(context, (None, info.block_size)):
        raise ModelFileError(
            f"{source}: input context is {context.type} {list(context.shape)}, not int64 [batch, {info.block_size}]"
        )
    logits = {spec.name: spec for spec in outputs}.get(LOGITS)
    if logits is None:
        raise ModelFileError(f"{source} does not have the makemore output `logits`")
    if logits.type != "tensor(float)" or not _has_dims(logits, (None, info.vocab.size)):
        raise ModelFileError(
            f"{source}: output logits is {logits.type} {list(logits.shape)}, not float32 [batch, {info.vocab.size}]"
        )


def probe_contexts(info: ModelInfo, rows: int = PROBE_ROWS) -> np.ndarray:
    """A few int64 contexts [rows, block_size] that touch every index of the vocabulary (up to `rows`)."""
    ids = np.arange(rows, dtype=np.int64) % info.vocab.size
    return np.repeat(ids[:, None], info.block_size, axis=1)


def probe_labels(info: ModelInfo, rows: int) -> tuple[np.ndarray, ...]:
    """A conditional model's probe labels (every label index in turn, the last label on the last row: a graph whose
    label table is shorter than its metadata's labels fails at load; int64 [rows]) as the extra argument of its
    forward call; () for an unlabelled model."""
    if not info.labelled:
        return ()
    labels = np.arange(rows, dtype=np.int64) % len(info.labels)
    labels[-1] = len(info.labels) - 1
    return (labels,)


def probe_window_logits(logits_fn: Callable[..., np.ndarray], info: ModelInfo, source: str) -> None:
    """Run the model once: logits must be [rows, V] and finite (a model with NaN weights is refused here)."""
    context = probe_contexts(info, min(PROBE_ROWS, info.vocab.size))
    try:
        logits = np.asarray(logits_fn(context, *probe_labels(info, len(context))))
    except Exception as err:  # onnxruntime raises untyped errors for a graph that cannot run
        raise ModelFileError(f"{source}: the model fails on a probe batch ({failure(err)})") from None
    if logits.shape != (len(context), info.vocab.size):
        raise ModelFileError(
            f"{source}: logits have shape {list(logits.shape)} for {len(context)} contexts,"
            f" not [{len(context)}, {info.vocab.size}] (the vocabulary does not match the graph)"
        )
    if not np.isfinite(logits).all():
        raise ModelFileError(f"{source}: the model gives non-finite logits (NaN or infinite weights?)")


def check_signature(inputs: Sequence[IOSpec], outputs: Sequence[IOSpec], info: ModelInfo, source: str) -> None:
    """The graph's inputs and outputs as the metadata's contract says."""
    if info.state is None:
        check_window_signature(inputs, outputs, info, source)
    else:
        check_step_signature(inputs, outputs, info, source)


def state_of(info: ModelInfo) -> StateSpec:
    """A step model's state (ModelFileError for a window model, which has none)."""
    if info.state is None:
        raise ModelFileError("a window model has no state")
    return info.state


def check_step_signature(inputs: Sequence[IOSpec], outputs: Sequence[IOSpec], info: ModelInfo, source: str) -> None:
    """tokens int64 [batch, steps] + state -> logits float32 [batch, steps, V] + new state, as makemore.state says."""
    tensors = state_of(info).tensors
    by_name = {spec.name: spec for spec in inputs}
    if sorted(by_name) != sorted([TOKENS, *([LABEL] if info.labelled else []), *(t.input for t in tensors)]):
        raise ModelFileError(f"{source}: inputs {sorted(by_name)} do not match its state and labels metadata")
    check_label_input(by_name, info, source)
    tokens = by_name[TOKENS]
    if tokens.type != "tensor(int64)" or not _has_dims(tokens, (None, None)):
        raise ModelFileError(f"{source}: input tokens is {tokens.type} {list(tokens.shape)}, not int64 [batch, steps]")
    out_by_name = {spec.name: spec for spec in outputs}
    logits = out_by_name.get(LOGITS)
    if logits is None or logits.type != "tensor(float)" or not _has_dims(logits, (None, None, info.vocab.size)):
        raise ModelFileError(f"{source}: output logits is not float32 [batch, steps, {info.vocab.size}]")
    for tensor in tensors:
        dims = tuple(d if isinstance(d, int) else None for d in tensor.shape)
        for spec in (by_name[tensor.input], out_by_name.get(tensor.output)):
            if spec is None or spec.type != "tensor(float)" or not _has_dims(spec, dims):
                name = tensor.input if spec is None else spec.name
                raise ModelFileError(f"{source}: state tensor {name} does not match its metadata {list(tensor.shape)}")


def empty_state(info: ModelInfo, rows: int, past: int = 0) -> list[np.ndarray]:
    """The start state of `rows` sequences: zeros, past = 0 (or `past` positions of zeros)."""
    return [np.zeros(t.zeros_shape(rows, past), dtype=np.float32) for t in state_of(info).tensors]


def check_finite_logits(logits: np.ndarray, when: str) -> np.ndarray:
    """`logits` when every value is finite; ModelOutputError saying `when` they were not (cheap: one pass)."""
    if not np.isfinite(logits).all():
        raise ModelOutputError(f"the model gives non-finite logits (NaN or infinity) {when}: it cannot be used")
    return logits


def check_step_outputs(
    tokens: np.ndarray, state: list[np.ndarray], logits: np.ndarray, new_state: list[np.ndarray], info: ModelInfo
) -> None:
    """A step call's logits are [rows, steps, V] and each new state tensor is its input grown by `steps` positions
    along `past` (a graph whose state grows otherwise would take memory no request asked for): ModelOutputError."""
    rows, steps = tokens.shape
    if np.shape(logits) != (rows, steps, info.vocab.size):
        raise ModelOutputError(f"the model gives logits of shape {list(np.shape(logits))}, not {[rows, steps, -1]}")
    for tensor, before, after in zip(state_of(info).tensors, state, new_state, strict=True):
        want = tuple(d + steps if name == PAST else d for d, name in zip(np.shape(before), tensor.shape, strict=True))
        if np.shape(after) != want:
            raise ModelOutputError(
                f"the model's state {tensor.output} has shape {list(np.shape(after))}, not {list(want)}"
            )


def probe_rows(info: ModelInfo) -> int:
    """Rows of a load probe: PROBE_ROWS (at most the vocabulary), fewer where their state would pass
    PROBE_STATE_BYTES (at least 1), so loading a file never allocates what its metadata declare for many rows."""
    rows = min(PROBE_ROWS, info.vocab.size)
    if info.state is None:
        return rows
    return max(1, min(rows, PROBE_STATE_BYTES // max(1, state_of(info).row_bytes(3))))


def failure(err: Exception) -> str:
    """What a failed forward call says: a ModelOutputError's detail, any other error's first line."""
    return err.detail if isinstance(err, ModelOutputError) else first_line(err, 200)


def probe_step(step_fn: StepFn, info: ModelInfo, source: str, tokens: np.ndarray, past: int) -> list[np.ndarray]:
    """One probe call from a zero state of `past` positions: logits [rows, steps, V] and finite, the new state of the
    declared shapes at past + steps (ModelFileError otherwise); the new state."""
    rows, steps = tokens.shape
    try:
        logits, state = step_fn(tokens, empty_state(info, rows, past), *probe_labels(info, rows))
    except Exception as err:  # onnxruntime raises untyped errors for a graph that cannot run
        raise ModelFileError(f"{source}: the model fails on a probe batch ({failure(err)})") from None
    if np.shape(logits) != (rows, steps, info.vocab.size):
        raise ModelFileError(
            f"{source}: logits have shape {list(np.shape(logits))}, not [{rows}, {steps}, {info.vocab.size}]"
            " (the vocabulary does not match the graph)"
        )
    expected = [t.zeros_shape(rows, past=past + steps) for t in state_of(info).tensors]
    if [np.shape(s) for s in state] != expected:
        raise ModelFileError(
            f"{source}: the new state's shapes {[list(np.shape(s)) for s in state]} are not {expected}"
        )
    if not np.isfinite(logits).all():
        raise ModelFileError(f"{source}: {NON_FINITE}")
    return state


def probe_step_logits(step_fn: StepFn, info: ModelInfo, source: str) -> None:
    """Run two steps from the empty state, on as many rows as probe_rows allows: logits finite, the new state of the
    declared shapes; then a cache's last declared position (probe_positions)."""
    rows = probe_rows(info)
    tokens = np.stack([np.zeros(rows, dtype=np.int64), np.arange(rows, dtype=np.int64) % info.vocab.size], axis=1)
    probe_step(step_fn, info, source, tokens, past=0)
    if state_of(info).has_cache:
        probe_positions(step_fn, info, source)


def probe_positions(step_fn: StepFn, info: ModelInfo, source: str) -> None:
    """A cache model runs its last declared position (one name, a zero cache of max_positions - 1 positions, one
    token): a file whose max_positions exceed its graph's position table is refused at load, not mid-request."""
    positions = state_of(info).max_positions
    if positions is None:
        raise ModelFileError(f"{source}: a key/value cache needs makemore.state's max_positions")
    tokens = np.ones((1, 1), dtype=np.int64) % info.vocab.size
    try:
        logits, _ = step_fn(tokens, empty_state(info, 1, positions - 1), *probe_labels(info, 1))
        # onnxruntime's fused embedding kernel answers a position past the table with no logits, not an error
        if np.shape(logits) != (1, 1, info.vocab.size):
            raise ValueError(f"logits of shape {list(np.shape(logits))}, not [1, 1, {info.vocab.size}]")
    except Exception as err:  # onnxruntime raises untyped errors for a graph that cannot run
        raise ModelFileError(
            f"{source}: its metadata declare {positions:,} positions, but the graph fails at position"
            f" {positions:,} ({failure(err)})"
        ) from None
    if not np.isfinite(logits).all():
        raise ModelFileError(f"{source}: {NON_FINITE}")
