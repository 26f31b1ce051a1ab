"""A file's values computed from constants alone (int8 weights made float, a recurrent cell's weights cut and
multiplied), computed once before the file's session is made and put in the file as constants: onnxruntime's own
folding at load stays off, since it computed whatever a file asked (contract/constants.py bounds them ahead).

Each value is computed as onnxruntime's folding computed it, bit for bit: by numpy where numpy's result is exact
(moving values, integer arithmetic, elementwise float arithmetic without NaN, casts from integers), and by
onnxruntime itself, in one session of those nodes alone, for the rest (products of matrices, other casts, any other
op)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnxruntime as ort
from makemore.contract.constants import Plan, Value, a
from makemore.contract.shapes import Unfoldable, infer
from makemore.contract.wire import (
    ONNX_TYPES,
    GraphError,
    Parts,
    Tensor,
    constant_node_parts,
    prefixed,
    splice,
    tensor_array,
)

MOVES = frozenset({"Identity", "Unsqueeze", "Squeeze", "Reshape", "Flatten", "Transpose", "Slice", "Gather", "Concat"})
ARITHMETIC = frozenset({"Add", "Sub", "Mul", "Div", "Mod"})  # one IEEE operation a value (Mod: integers only)
# the types whose arithmetic numpy does as onnxruntime does (float16's, onnxruntime does in float32)
EXACT_ARITHMETIC = frozenset(np.dtype(t) for t in ("i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f4", "f8"))


def folded(data: bytes, plan: Plan, source: str) -> bytes:
    """`data` with each folded node replaced by Constant nodes of the outputs that stay in use (none: removed), and
    without the initializers that only folded nodes read."""
    if not plan.folds:
        return data
    arrays = FoldedValues(data, plan, source).outputs
    edits: dict[tuple[int, int], Parts] = {}
    for number, fold in enumerate(plan.folds):
        nodes: Parts = []
        for index, name in enumerate(fold.node.outputs[: len(fold.outputs)]):
            if fold.used[index]:
                nodes += prefixed(1, constant_node_parts(name, arrays[number][index]))  # GraphProto.node
        edits[fold.node.span] = nodes
    edits.update(dict.fromkeys(plan.unread, []))  # weights read by folds alone: the file keeps what they made
    return splice(data, 0, len(data), edits, source)


class FoldedValues:
    """The outputs of every fold of a plan, in one pass in the plan's order (each fold after the folds it reads):
    numpy computes a fold when its inputs are known and its result is exact; the rest run together in one
    onnxruntime session, given the numpy results they read. A value no fold will read and the file does not keep
    is let go once read."""

    def __init__(self, data: bytes, plan: Plan, source: str) -> None:
        self.data, self.plan, self.source = data, plan, source
        self.outputs: dict[int, list[np.ndarray]] = {}
        self.constants: dict[int, np.ndarray | None] = {}
        self.reads = Counter(value.fold for fold in plan.folds for value in fold.inputs if value and value.fold >= 0)
        batch: list[int] = []
        for number, fold in enumerate(plan.folds):
            ready = all(value is None or value.fold < 0 or value.fold in self.outputs for value in fold.inputs)
            if ready and self.by_numpy(number):
                self.release(number)
            else:
                batch.append(number)
        if batch:
            self.by_onnxruntime(batch)

    def store(self, number: int, arrays: list[np.ndarray]) -> None:
        """Keep a fold's outputs, which must be the shapes and types the check found."""
        fold = self.plan.folds[number]
        for array, tensor in zip(arrays, fold.outputs, strict=True):
            if array.shape != tensor.shape:
                raise GraphError(
                    f"{self.source}: its {fold.node.op} made a {array.shape} value where {tensor.shape} was due"
                )
            if ONNX_TYPES.get(array.dtype) != tensor.dtype:
                raise GraphError(f"{self.source}: its {fold.node.op} makes a value of a type the runtime does not fold")
        self.outputs[number] = arrays

    def release(self, number: int) -> None:
        """Let go of the values fold `number` was the last to read, unless the file keeps them."""
        for value in self.plan.folds[number].inputs:
            if value is not None and value.fold >= 0:
                self.reads[value.fold] -= 1
                if self.reads[value.fold] == 0 and not any(self.plan.folds[value.fold].used):
                    del self.outputs[value.fold]

    def array(self, value: Value) -> np.ndarray | None:
        """A value's numbers: a fold's output, or a constant's (read from the file once)."""
        if value.fold >= 0:
            return self.outputs[value.fold][value.index]
        tensor = value.tensor
        key = id(tensor)
        if key not in self.constants:
            if tensor.values is not None:
                self.constants[key] = tensor.values
            else:
                self.constants[key] = None if tensor.span is None else tensor_array(self.data, tensor.span, self.source)
        return self.constants[key]

    def by_numpy(self, number: int) -> bool:
        """Compute fold `number` by numpy when its result is onnxruntime's, bit for bit."""
        fold = self.plan.folds[number]
        arrays = [None if value is None else self.array(value) for value in fold.inputs]
        if any(value is not None and array is None for value, array in zip(fold.inputs, arrays, strict=True)):
            return False
        op = fold.node.op
        if not exact_by_numpy(op, arrays, fold.outputs[0].dtype if fold.outputs else 0):
            return False
        tensors = [
            None if value is None else Tensor(value.tensor.dtype, value.tensor.shape, array)
            for value, array in zip(fold.inputs, arrays, strict=True)
        ]
        try:
            outputs, _ = infer(fold.node, tensors, self.plan.model.opsets, limit=1 << 62)
        except Unfoldable as err:  # what the values show (a division by zero among more values than the check read)
            raise GraphError(f"{self.source}: its graph computes {a(op)} from constants {err}") from None
        except (IndexError, ValueError, TypeError, OverflowError):  # a case the rules missed: onnxruntime's to say
            return False
        if any(tensor.values is None for tensor in outputs):
            return False
        self.store(number, [np.asarray(tensor.values) for tensor in outputs])
        return True

    def by_onnxruntime(self, numbers: list[int]) -> None:
        """Compute the folds `numbers` in one onnxruntime session of those nodes alone (no optimization: each node
        runs as onnxruntime's folding ran it), given the outputs of earlier folds they read."""
        inputs = [value for n in numbers for value in self.plan.folds[n].inputs if value is not None]
        fed = {value.fold for value in inputs if value.fold >= 0} - set(numbers)  # computed by numpy
        side, names = self.plan.side_model(self.data, numbers, fed, self.source)
        feed = {f"f{fold}.{index}": aligned(array) for fold in fed for index, array in enumerate(self.outputs[fold])}
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.log_severity_level = 4
        options.add_session_config_entry("session.disable_prepacking", "1")  # as its folding: a prepacked weight
        # matrix rounded a product of one row otherwise
        try:
            session = ort.InferenceSession(side, sess_options=options, providers=["CPUExecutionProvider"])
            wanted = {arg.name for arg in session.get_inputs()}
            results = dict(zip(names, session.run(names, {k: v for k, v in feed.items() if k in wanted}), strict=True))
        except Exception as err:  # onnxruntime raises several untyped errors for a bad graph
            raise GraphError(f"{self.source} is not a valid ONNX model ({str(err).splitlines()[0][:160]})") from None
        for number in numbers:
            count = len(self.plan.folds[number].outputs)
            self.store(number, [np.asarray(results[f"f{number}.{index}"]) for index in range(count)])


def exact_by_numpy(op: str, arrays: list[np.ndarray | None], to: int) -> bool:
    """Whether numpy computes `op` of `arrays` with onnxruntime's bits: moving values; one IEEE operation a value
    of the EXACT_ARITHMETIC types without NaN (which NaN comes out of two is onnxruntime's choice); a cast of
    integers to int32, int64, float32 or float64 (rounded to nearest, as C casts), or of float32 widened."""
    first = arrays[0] if arrays else None
    if op in MOVES or op == "Shape":
        return True
    if op in ARITHMETIC:
        return (
            first is not None
            and first.dtype in EXACT_ARITHMETIC
            and not any(x is not None and x.dtype.kind == "f" and np.isnan(x).any() for x in arrays)
        )
    if op == "Cast" and first is not None:
        return (first.dtype.kind in "biu" and to in (1, 6, 7, 11)) or (first.dtype == np.float32 and to in (1, 11))
    return False


def aligned(array: np.ndarray) -> np.ndarray:
    """A copy of `array` at a 64-byte boundary, as onnxruntime allocates its own: it computes on a caller's buffer
    in place, and a sum's order (so its last bit) depended on the buffer's alignment."""
    raw = np.empty(array.nbytes + 64, np.uint8)
    offset = -raw.ctypes.data % 64
    copy = raw[offset : offset + array.nbytes].view(array.dtype).reshape(array.shape)
    copy[...] = array
    return copy
