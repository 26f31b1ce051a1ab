"""The ONNX graph's inputs and outputs, checked against the metadata, and a probe of its logits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from makemore.contract.metadata import ModelFileError, ModelInfo
from makemore.data import first_line

CONTEXT = "context"  # window contract input: int64 [batch, block_size]
LOGITS = "logits"  # output: float32 [batch, V]
PROBE_ROWS = 64  # contexts run at load to check the logits' shape and finiteness


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


def check_window_signature(inputs: Sequence[IOSpec], outputs: Sequence[IOSpec], info: ModelInfo, source: str) -> None:
    """context int64 [batch, block_size] -> logits float32 [batch, V], as the metadata says."""
    if [spec.name for spec in inputs] != [CONTEXT]:
        raise ModelFileError(f"{source} does not have the makemore input `context` (it has {[i.name for i in inputs]})")
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


def probe_window_logits(logits_fn: Callable[[np.ndarray], np.ndarray], info: ModelInfo, source: str) -> None:
    """Run the model once: logits must be [rows, V] and finite (a model with NaN weights is refused here)."""
    context = probe_contexts(info, min(PROBE_ROWS, info.vocab.size))
    try:
        logits = np.asarray(logits_fn(context))
    except Exception as err:  # onnxruntime raises untyped errors for a graph that cannot run
        raise ModelFileError(f"{source}: the model fails on a probe batch ({first_line(err, 160)})") from None
    if logits.shape != (len(context), info.vocab.size):
        raise ModelFileError(
            f"{source}: logits have shape {list(logits.shape)} for {len(context)} contexts,"
            f" not [{len(context)}, {info.vocab.size}] (the vocabulary does not match the graph)"
        )
    if not np.isfinite(logits).all():
        raise ModelFileError(f"{source}: the model gives non-finite logits (NaN or infinite weights?)")
