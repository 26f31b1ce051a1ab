"""Checkpoint -> one self-contained .onnx file with makemore metadata, verified against torch."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from makemore.data.dataset import UserError, first_line
from makemore.runtime.onnx_sampler import INPUT_NAME, OUTPUT_NAME, open_session
from makemore.train.checkpoint import atomic_write, load_checkpoint, load_model, model_info

DEFAULT_OPSET = 17
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}
VERIFY_BATCH = 256


class ExportError(UserError):
    """The export failed (the output file is not written)."""


@dataclass(frozen=True)
class ExportReport:
    path: Path
    size_bytes: int
    max_abs_diff: float
    opset: int


def to_onnx_bytes(model: torch.nn.Module, vocab_size: int, block_size: int, opset: int) -> bytes:
    """Serialize `model`'s forward: int64 context [batch, block_size] -> float32 logits [batch, V].

    We use the TorchScript exporter (dynamo=False): these models are a handful of standard ops
    (Gather, Gemm, Tanh), it needs only the `onnx` package (no onnxscript), writes one in-memory
    protobuf with the weights inside (no .onnx.data side file), and gives the same graph every
    time. The example batch has 2 rows so the exporter cannot specialise the batch axis to 1.
    """
    example = torch.randint(0, vocab_size, (2, block_size), dtype=torch.int64)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            model,
            (example,),
            buffer,
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=opset,
            do_constant_folding=True,
        )
    return buffer.getvalue()


def export_checkpoint(
    checkpoint_path: str | Path, out_path: str | Path, *, opset: int = DEFAULT_OPSET, seed: int = 0
) -> ExportReport:
    """Export, add metadata, check, compare with torch on random contexts, then write atomically."""
    out_path = Path(out_path)
    if not out_path.parent.is_dir():
        raise ExportError(f"output folder does not exist: {out_path.parent}")
    checkpoint = load_checkpoint(checkpoint_path)
    info = model_info(checkpoint)
    model = load_model(checkpoint, str(checkpoint_path))
    try:
        raw = to_onnx_bytes(model, info.vocab.size, info.block_size, opset)
    except Exception as err:  # the exporter raises many types; report one line
        raise ExportError(f"torch.onnx.export failed at opset {opset}: {first_line(err)}") from None
    proto = onnx.load_from_string(raw)
    proto.producer_name = "makemore-onnx"
    proto.doc_string = f"makemore {info.kind} model: context[batch, {info.block_size}] int64 -> logits[batch, V]"
    onnx.helper.set_model_props(proto, info.to_metadata())
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as err:
        raise ExportError(f"exported model fails onnx.checker: {first_line(err)}") from None
    model_bytes = proto.SerializeToString()
    max_diff = verify_against_torch(model_bytes, model, info.vocab.size, info.block_size, seed)
    atomic_write(out_path, lambda tmp: Path(tmp).write_bytes(model_bytes))
    return ExportReport(out_path, len(model_bytes), max_diff, opset)


def verify_against_torch(
    model_bytes: bytes, model: torch.nn.Module, vocab_size: int, block_size: int, seed: int
) -> float:
    """Max |onnxruntime - torch| over random contexts; ExportError beyond the tolerance."""
    session = open_session(model_bytes, "exported model")
    context = np.random.default_rng(seed).integers(0, vocab_size, (VERIFY_BATCH, block_size), dtype=np.int64)
    ort_logits = session.run([OUTPUT_NAME], {INPUT_NAME: context})[0]
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(context)).numpy()
    max_diff = float(np.abs(ort_logits - torch_logits).max())
    try:
        np.testing.assert_allclose(ort_logits, torch_logits, **TOLERANCE)
    except AssertionError:
        raise ExportError(f"onnxruntime and torch logits differ (max |diff| {max_diff:.3g}); nothing written") from None
    return max_diff
