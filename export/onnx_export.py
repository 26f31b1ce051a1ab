"""Checkpoint -> one self-contained .onnx file with makemore metadata, verified against torch."""

from __future__ import annotations

import dataclasses
import io
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from makemore.contract import CONTEXT as INPUT_NAME
from makemore.contract import LABEL, PAST, TOKENS, ModelInfo, empty_state
from makemore.contract import LOGITS as OUTPUT_NAME
from makemore.contract.signature import StepFn, state_of
from makemore.data import BOUNDARY, UserError, atomic_write, check_output_path, first_line
from makemore.export.attention import CUSTOM_OPSETS, fused_attention, grouped_query_attention
from makemore.export.int8 import int8_weights
from makemore.export.one_step import with_one_step_branch
from makemore.export.recurrent_cell import NoCell, OneStepCell, recurrence_weights
from makemore.runtime.onnx_sampler import open_session, session_forward
from makemore.runtime.sampling import StepForward
from makemore.train.checkpoint import load_checkpoint, load_model, model_info
from makemore.train.models import Recurrent, SequenceModel, sequence_model

DEFAULT_OPSET = 17
OPSETS = range(7, 24)  # the TorchScript exporter's range in torch 2.x; outside it, torch dumps its IR graph on stderr
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}
# float32 rounding grows with the size of what a row's logits are summed from: a row is also allowed this share of its
# largest |logit| (about 16 float32 ulps), so a model with huge weights (a run at a very large --lr) exports, as
# faithfully as float32 allows, instead of being trained and then refused.
ROW_RTOL = 2e-6
VERIFY_BATCH = 256
VERIFY_STEP_ROWS, VERIFY_STEPS = 32, 16  # random words a step model is verified on, and their positions
QUANTIZE_CHOICES = ("int8",)
# int8 logits are not exact: over the verify batch, the mean KL(torch || int8) of the next-character
# distributions must stay below this (in nats; about the rise in cross-entropy it would cause).
INT8_MAX_MEAN_KL = 0.01


class ExportError(UserError):
    """The export failed (the output file is not written)."""


@dataclass(frozen=True)
class ExportReport:
    path: Path
    size_bytes: int
    max_abs_diff: float
    opset: int
    quantize: str | None = None
    float_size_bytes: int | None = None  # the float32 file's size, when quantized
    mean_kl: float | None = None  # int8 vs torch, when quantized


def to_onnx_bytes(model: torch.nn.Module, vocab_size: int, block_size: int, opset: int, n_labels: int = 0) -> bytes:
    """Serialize `model`'s forward: int64 context [batch, block_size] (and a conditional model's label int64
    [batch]) -> float32 logits [batch, V].

    We use the TorchScript exporter (dynamo=False): these models are a handful of standard ops
    (Gather, Gemm, Tanh), it needs only the `onnx` package (no onnxscript), writes one in-memory
    protobuf with the weights inside (no .onnx.data side file), and gives the same graph every
    time. The example batch has 2 rows so the exporter cannot specialise the batch axis to 1.
    """
    example = torch.randint(0, vocab_size, (2, block_size), dtype=torch.int64)
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
    if not n_labels:
        return trace_to_onnx(model, (example,), [INPUT_NAME], [OUTPUT_NAME], axes, opset)
    label = torch.arange(2, dtype=torch.int64) % n_labels
    axes[LABEL] = {0: "batch"}
    return trace_to_onnx(model, (example, label), [INPUT_NAME, LABEL], [OUTPUT_NAME], axes, opset)


def trace_to_onnx(
    module: torch.nn.Module,
    example: tuple,
    inputs: list[str],
    outputs: list[str],
    axes: dict,
    opset: int,
    custom_opsets: dict[str, int] | None = None,
    fold: bool = True,
) -> bytes:
    """torch.onnx.export with the TorchScript exporter into memory: one protobuf, weights inside (`custom_opsets`:
    the versions of the other domains the graph uses; `fold`: torch's constant folding)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), stdout_silenced():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notices
        torch.onnx.export(
            module,
            example,
            buffer,  # type: ignore[arg-type]  # torch types f as a path; the TorchScript exporter writes to files too
            dynamo=False,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=fold,
            custom_opsets=custom_opsets,
        )
    return buffer.getvalue()


@contextmanager
def stdout_silenced() -> Iterator[None]:
    """File descriptor 1 at /dev/null while the body runs: torch's C++ prints its whole IR graph there when an op
    has no export at the opset asked for (134 lines before mm-export's one error line)."""
    if sys.stdout is not None:
        sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no file descriptor 1 (a process started with stdout closed): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


class StepGraph(torch.nn.Module):
    """A sequence model's `step` as the graph's forward: (tokens, *state) -> (logits, *new state); a conditional
    model's: (tokens, label, *state)."""

    def __init__(self, model: SequenceModel, labelled: bool = False) -> None:
        super().__init__()
        self.model, self.labelled = model, labelled

    def forward(self, tokens: torch.Tensor, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.labelled:
            return self.model.step(tokens, *inputs[1:], label=inputs[0])
        return self.model.step(tokens, *inputs)


def to_step_onnx_bytes(model: torch.nn.Module, info: ModelInfo, opset: int, one_step: bool = True) -> bytes:
    """Serialize a sequence model's `step`: tokens int64 [batch, steps] + state -> logits [batch, steps, V] + state.

    The same TorchScript exporter as the window models: the key/value cache and the recurrent state are
    plain inputs and outputs. A transformer's attention becomes onnxruntime's fused MultiHeadAttention
    (export/attention.py), which takes and returns the caches in the same layout. The example has 2 rows, 3 steps
    and a past of 2, so no axis is specialised; batch, steps and past are dynamic axes. Unless `one_step` is False,
    one-step calls run a faster graph beside it (one_step_graph).
    """
    tensors = state_of(info).tensors
    example_tokens = torch.randint(0, info.vocab.size, (2, 3), dtype=torch.int64)
    example_state = tuple(torch.zeros(t.zeros_shape(2, past=2)) for t in tensors)
    axes = {TOKENS: {0: "batch", 1: "steps"}, OUTPUT_NAME: {0: "batch", 1: "steps"}}
    labels = (torch.arange(2, dtype=torch.int64) % len(info.labels),) if info.labelled else ()
    if info.labelled:
        axes[LABEL] = {0: "batch"}
    for t in tensors:
        past = {t.shape.index(PAST): "past"} if PAST in t.shape else {}
        grown = {t.shape.index(PAST): "past_and_steps"} if PAST in t.shape else {}
        axes[t.input] = {t.batch_axis: "batch", **past}
        axes[t.output] = {t.batch_axis: "batch", **grown}
    fused = fused_attention(sequence_model(model))
    graph = StepGraph(fused, info.labelled).eval()  # a fresh module trains: export would leave it so
    # the contrib domain only where an op uses it (torch warns on stderr of a custom domain no node uses)
    opsets = CUSTOM_OPSETS if fused is not model else None
    inputs = [TOKENS, *([LABEL] if info.labelled else []), *(t.input for t in tensors)]
    outputs = [OUTPUT_NAME, *(t.output for t in tensors)]
    raw = trace_to_onnx(graph, (example_tokens, *labels, *example_state), inputs, outputs, axes, opset, opsets)
    if not one_step:
        return raw
    op = onnx.load_from_string(raw)
    one = one_step_graph(op, model, (example_tokens[:, :1], *labels, *example_state), inputs, outputs, axes, opset)
    return raw if one is None else with_one_step_branch(op, one).SerializeToString()


def one_step_graph(
    op: onnx.ModelProto,
    model: torch.nn.Module,
    example: tuple,
    inputs: list[str],
    outputs: list[str],
    axes: dict,
    opset: int,
) -> onnx.ModelProto | None:
    """The graph that runs a one-step call of `op` faster (export/one_step.py): a recurrent model's explicit cell,
    traced from the op's weights (export/recurrent_cell.py), or a transformer's graph with GroupQueryAttention; None
    when there is none (the cell below opset 9, where torch computes the op's weights in the graph)."""
    if not isinstance(model, Recurrent):
        return grouped_query_attention(op)
    try:
        cell = OneStepCell(model, recurrence_weights(op.graph)).eval()
    except NoCell:
        return None
    return onnx.load_from_string(trace_to_onnx(cell, example, inputs, outputs, axes, opset, fold=False))


def export_checkpoint(
    checkpoint_path: str | Path,
    out_path: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    seed: int = 0,
    quantize: str | None = None,
) -> ExportReport:
    """Export, add metadata, check, compare with torch on random contexts, then write atomically.

    quantize="int8": the verified float32 graph's weights are then stored as int8 (export/int8.py) and the file
    checked against torch within INT8_MAX_MEAN_KL; the metadata's config records "quantize": "int8".
    """
    out_path = Path(out_path)
    if quantize is not None and quantize not in QUANTIZE_CHOICES:
        raise ExportError(f"unknown quantization {quantize!r}: choose {', '.join(QUANTIZE_CHOICES)}")
    check_output_path(out_path, (checkpoint_path,))
    if opset not in OPSETS:
        raise ExportError(f"opset must be between {OPSETS[0]} and {OPSETS[-1]}, got {opset}")
    checkpoint = load_checkpoint(checkpoint_path)  # every field checked: types, finite values, tensors' shapes
    info = model_info(checkpoint)
    model = load_model(checkpoint, str(checkpoint_path))
    try:
        if info.state is None:
            raw = to_onnx_bytes(model, info.vocab.size, info.block_size, opset, len(info.labels))
        else:
            raw = to_step_onnx_bytes(model, info, opset)
    except Exception as err:  # the exporter raises many types; report one line
        raise ExportError(f"torch.onnx.export failed at opset {opset}: {first_line(err)}") from None
    proto = onnx.load_from_string(raw)
    proto.producer_name = "makemore-onnx"
    proto.doc_string = f"makemore {info.kind} model, {info.contract} contract" + (
        f": context[batch, {info.block_size}] int64 -> logits[batch, V]"
        if info.state is None
        else ": tokens[batch, steps] int64 + state -> logits[batch, steps, V] + new state"
    )
    if info.labelled:
        proto.doc_string += f"; label[batch] int64 (one of {len(info.labels)} labels, makemore.labels)"
    stamp_and_check(proto, info, "exported model")
    model_bytes = proto.SerializeToString()
    max_diff = verify_against_torch(model_bytes, model, info, seed)
    if quantize is None:
        atomic_write(out_path, lambda tmp: Path(tmp).write_bytes(model_bytes), (checkpoint_path,))
        return ExportReport(out_path, len(model_bytes), max_diff, opset)
    quantized = quantize_int8(proto, dataclasses.replace(info, config={**info.config, "quantize": quantize}))
    int8_diff, mean_kl = verify_int8_against_torch(quantized, model, info, seed)
    atomic_write(out_path, lambda tmp: Path(tmp).write_bytes(quantized), (checkpoint_path,))
    return ExportReport(out_path, len(quantized), int8_diff, opset, quantize, len(model_bytes), mean_kl)


def stamp_and_check(proto: onnx.ModelProto, info: ModelInfo, what: str) -> None:
    """Write our metadata_props into `proto`, then run onnx.checker (ExportError if it fails)."""
    onnx.helper.set_model_props(proto, info.to_metadata())
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as err:
        raise ExportError(f"{what} fails onnx.checker: {first_line(err)}") from None


def quantize_int8(proto: onnx.ModelProto, info: ModelInfo) -> bytes:
    """A verified float32 export with its weight matrices stored as int8 (export/int8.py), stamped with `info`'s
    metadata (its config records "quantize": "int8") and checked."""
    quantized = int8_weights(proto)
    quantized.doc_string = proto.doc_string + " (int8 weights, a scale per output column)"
    stamp_and_check(quantized, info, "quantized model")
    return quantized.SerializeToString()


def step_logits_both_ways(session, model: torch.nn.Module, info: ModelInfo, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A step model on VERIFY_STEP_ROWS random words of VERIFY_STEPS positions (the boundary first; a conditional
    model's with random labels): onnxruntime fed the whole sequence in one call, then one token at a time carrying
    the state, against torch's full forward. Rows [positions, V] of both ways, stacked."""
    steps = min(VERIFY_STEPS, state_of(info).max_positions or VERIFY_STEPS)
    tokens = np.random.default_rng(seed).integers(1, info.vocab.size, (VERIFY_STEP_ROWS, steps), dtype=np.int64)
    tokens[:, 0] = BOUNDARY
    labels = verify_labels(info, len(tokens), seed)
    with torch.no_grad():
        torch_logits = model(*(torch.from_numpy(a) for a in (tokens, *labels))).numpy()
    step = session_step(session, info)
    whole = step(tokens, empty_state(info, len(tokens)), *labels)[0]
    state, pieces = empty_state(info, len(tokens)), []
    for pos in range(steps):
        logits, state = step(tokens[:, pos : pos + 1], state, *labels)
        pieces.append(logits)
    ort_logits = np.concatenate([whole, np.concatenate(pieces, axis=1)]).reshape(-1, info.vocab.size)
    return ort_logits, np.concatenate([torch_logits, torch_logits]).reshape(-1, info.vocab.size)


def session_step(session, info: ModelInfo) -> StepFn:
    """A step model's session as step_fn(tokens, state, *label) -> (logits, new state) (TypeError for a window
    model's)."""
    forward = session_forward(session, info)
    if not isinstance(forward, StepForward):
        raise TypeError(f"a {info.kind} model has no step")
    return forward.step_fn


def verify_labels(info: ModelInfo, rows: int, seed: int) -> tuple[np.ndarray, ...]:
    """A conditional model's random label indices for the verify rows (int64 [rows]: every label among them when
    there are no more labels than rows); () for an unlabelled model."""
    if not info.labelled:
        return ()
    labels = np.arange(rows, dtype=np.int64) % len(info.labels)
    return (np.random.default_rng(seed + 1).permutation(labels) if len(info.labels) <= rows else labels,)


def logits_both_ways(
    model_bytes: bytes, model: torch.nn.Module, info: ModelInfo, seed: int, source: str
) -> tuple[np.ndarray, np.ndarray]:
    """(onnxruntime logits, torch logits) [rows, V] on the same random contexts (window) or words (step)."""
    session = open_session(model_bytes, source)
    if info.state is not None:
        ort_logits, torch_logits = step_logits_both_ways(session, model, info, seed)
    else:
        shape = (VERIFY_BATCH, info.block_size)
        context = np.random.default_rng(seed).integers(0, info.vocab.size, shape, dtype=np.int64)
        labels = verify_labels(info, len(context), seed)
        with torch.no_grad():
            torch_logits = model(*(torch.from_numpy(a) for a in (context, *labels))).numpy()
        ort_logits = session.run([OUTPUT_NAME], {INPUT_NAME: context, **({LABEL: labels[0]} if labels else {})})[0]
    if not np.isfinite(torch_logits).all():
        raise ExportError("the model's logits are not finite on random contexts (weights too large?); nothing written")
    if not np.isfinite(ort_logits).all():
        raise ExportError(f"{source} gives non-finite logits where torch does not; nothing written")
    return ort_logits, torch_logits


def verify_against_torch(model_bytes: bytes, model: torch.nn.Module, info: ModelInfo, seed: int) -> float:
    """Max |onnxruntime - torch| over random contexts (or words, fed whole and one token at a time); ExportError
    beyond the tolerance."""
    ort_logits, torch_logits = logits_both_ways(model_bytes, model, info, seed, "exported model")
    diff = np.abs(ort_logits.astype(np.float64) - torch_logits)
    max_diff = float(diff.max())
    row_scale = np.abs(torch_logits).max(axis=-1, keepdims=True).astype(np.float64)
    allowed = TOLERANCE["atol"] + TOLERANCE["rtol"] * np.abs(torch_logits) + ROW_RTOL * row_scale
    if not (diff <= allowed).all():
        raise ExportError(f"onnxruntime and torch logits differ (max |diff| {max_diff:.3g}); nothing written")
    return max_diff


def mean_kl(p_logits: np.ndarray, q_logits: np.ndarray) -> float:
    """Mean over rows of KL(softmax(p) || softmax(q)) in nats."""
    log_p = p_logits - np.logaddexp.reduce(p_logits, axis=1, keepdims=True)
    log_q = q_logits - np.logaddexp.reduce(q_logits, axis=1, keepdims=True)
    return float((np.exp(log_p) * (log_p - log_q)).sum(axis=1).mean())


def verify_int8_against_torch(
    model_bytes: bytes, model: torch.nn.Module, info: ModelInfo, seed: int
) -> tuple[float, float]:
    """(max |logits diff|, mean KL) of the int8 model vs torch; ExportError above INT8_MAX_MEAN_KL."""
    ort_logits, torch_logits = logits_both_ways(model_bytes, model, info, seed, "quantized model")
    ort_logits, torch_logits = ort_logits.astype(np.float64), torch_logits.astype(np.float64)
    kl = mean_kl(torch_logits, ort_logits)
    if not kl <= INT8_MAX_MEAN_KL:
        raise ExportError(f"int8 model is too far from torch (mean KL {kl:.3g} > {INT8_MAX_MEAN_KL}); nothing written")
    return float(np.abs(ort_logits - torch_logits).max()), kl
