"""int8 files: a float32 export whose weight matrices are stored as int8, one float32 scale per output column
(per row for an embedding table and a recurrent op's gates), and dequantized by the graph itself.

Each quantized initializer `W` becomes `W.int8` (int8) and `W.scale` (float32), and two nodes at the head of the
graph compute `W = Cast(W.int8, float) * W.scale`: every node that read `W` (in the graph or in an If's branches)
reads the same values it did, rounded to 255 levels. The nodes are constants, which onnxruntime folds when it
loads the file, so an int8 file samples at float32 speed with float32 arithmetic: a row's logits depend on that
row alone, as a float32 file's do (onnxruntime's dynamic quantization scaled each call's activations by the
largest of the whole batch, so a name depended on the names sampled beside it). Symmetric (no zero point) with
127 levels each side; Cast and Mul exist at every opset mm-export writes, and in onnxruntime-web.
"""

from __future__ import annotations

import numpy as np
import onnx
from makemore.contract.graph import MOVES, every_node
from onnx import TensorProto, helper, numpy_helper

LEVELS = 127  # int8 weights in [-127, 127]: symmetric, so 0 stays exactly 0
MIN_SIZE = 64  # smaller matrices stay float32: their scales would cost what the int8 saves

# (op, input index) -> the axes a scale runs along: one scale per index of these axes of the weight
PER_COLUMN, PER_ROW, PER_GATE_ROW = (-1,), (0,), (0, 1)
WEIGHT_ROLES: dict[tuple[str, int], tuple[int, ...]] = {
    ("MatMul", 1): PER_COLUMN,  # B [in, out]: one scale per output
    ("Gather", 0): PER_ROW,  # an embedding table [rows, width]: one scale per token
    ("Gemm", 0): PER_ROW,  # A [rows, in] of a constant Gemm (a recurrent cell's folded table)
    ("Gemm", 1): PER_COLUMN,  # B [in, out], or [out, in] with transB (see weight_axes)
    **{(op, index): PER_GATE_ROW for op in ("RNN", "GRU", "LSTM") for index in (1, 2)},  # W, R [dirs, gates, in]
}
SHAPE_READERS = {"Shape", "Size"}  # read a tensor's shape, never its values


def weight_axes(node: onnx.NodeProto, index: int) -> tuple[int, ...] | None:
    """The axes of the scales of input `index` of `node` when it is a weight (WEIGHT_ROLES), else None."""
    axes = WEIGHT_ROLES.get((node.op_type, index))
    transposed = any(a.name == "transB" and a.i for a in node.attribute)
    return PER_ROW if axes == PER_COLUMN and node.op_type == "Gemm" and transposed else axes


def scale_axes(proto: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """The float32 initializers of at least 2 dimensions and MIN_SIZE values that only weight roles and moves
    read, each with the axes of its scales: of the roles that read it, the one with the most scales (a recurrent
    op's weights, which its one-step cell also slices with a Gather; every reader sees the same rounded values)."""
    uses: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in every_node(proto.graph):
        for index, name in enumerate(node.input):
            if node.op_type not in SHAPE_READERS:
                uses.setdefault(name, []).append((node, index))
    axes = {}
    for init in proto.graph.initializer:
        if init.data_type != TensorProto.FLOAT or len(init.dims) < 2 or np.prod(init.dims) < MIN_SIZE:
            continue
        reads = uses.get(init.name, [])
        if not reads or not all(weight_axes(node, index) is not None or moved(node, index) for node, index in reads):
            continue
        weights = [weight for node, index in reads if (weight := weight_axes(node, index)) is not None]
        if weights:
            axes[init.name] = max(weights, key=lambda kept: np.prod([list(init.dims)[axis] for axis in kept]))
        elif all(reaches_weight(out, uses) for node, _ in reads for out in node.output):  # moved, then a weight (a
            axes[init.name] = tuple(range(len(init.dims) - 1))  # labelled bigram's flattened table): a scale per row
    return axes


def moved(node: onnx.NodeProto, index: int) -> bool:
    """Whether input `index` of `node` is only moved (MOVES: its values reach the output unchanged)."""
    return node.op_type in MOVES and index == 0


def reaches_weight(name: str, uses: dict[str, list[tuple[onnx.NodeProto, int]]]) -> bool:
    """Whether the value `name` is read, through moves only, as a weight and by nothing else."""
    readers = uses.get(name, [])
    return bool(readers) and all(
        weight_axes(node, index) is not None
        or (moved(node, index) and all(reaches_weight(out, uses) for out in node.output))
        for node, index in readers
    )


def quantize(weights: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(int8 values, float32 scales broadcastable to `weights`): a scale per index of `axes`, the float32 nearest
    above the largest |w| of its slice over LEVELS (1 for an all-zero slice), so that no value is clipped, even
    among subnormals; one float32 step below where LEVELS x scale would overflow float32 (a weight within one part
    in 10^5 of float32's largest; the clip then costs at most LEVELS float32 steps of the scale)."""
    keep = {axis % weights.ndim for axis in axes}
    reduce = tuple(axis for axis in range(weights.ndim) if axis not in keep)
    largest = np.abs(weights.astype(np.float64)).max(axis=reduce, keepdims=True)
    scale = np.where(largest > 0, largest / LEVELS, 1.0).astype(np.float32)
    scale = np.where(scale.astype(np.float64) * LEVELS < largest, np.nextafter(scale, np.float32(np.inf)), scale)
    with np.errstate(over="ignore"):
        overflows = np.isinf(np.float32(LEVELS) * scale)
    scale = np.where(overflows, np.nextafter(scale, np.float32(0)), scale)
    ratios = weights.astype(np.float64) / scale.astype(np.float64)
    values = np.clip(np.rint(ratios), -LEVELS, LEVELS).astype(np.int8)
    return values, scale


def int8_weights(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of the float32 model `proto` with its weight matrices stored as int8 (see the module's docstring).
    Non-finite weights stay float32 (the export refuses them before this)."""
    quantized = onnx.ModelProto()
    quantized.CopyFrom(proto)
    axes = scale_axes(quantized)
    kept, head, stored_int8 = [], [], set()
    for init in quantized.graph.initializer:
        weights = numpy_helper.to_array(init)
        if init.name not in axes or not np.isfinite(weights).all():
            kept.append(init)
            continue
        values, scale = quantize(weights, axes[init.name])
        stored, scaled = f"{init.name}.int8", f"{init.name}.scale"
        stored_int8.add(init.name)
        kept += [numpy_helper.from_array(values, stored), numpy_helper.from_array(scale, scaled)]
        head += [
            helper.make_node("Cast", [stored], [f"{init.name}.float"], to=TensorProto.FLOAT),
            helper.make_node("Mul", [f"{init.name}.float", scaled], [init.name]),
        ]
    graph = quantized.graph
    del graph.initializer[:]
    graph.initializer.extend(kept)
    inputs = [value for value in graph.input if value.name not in stored_int8]  # IR 3 lists initializers as inputs too
    del graph.input[:]
    graph.input.extend(inputs)
    nodes = head + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    # IR version 3 (opsets 7 and 8) wants every initializer among the graph's inputs; the int8 ones are not
    quantized.ir_version = max(quantized.ir_version, 4)
    return quantized
