"""The shape (and, for a few numbers, the values) of what an op computes from constants, found without computing
it: the ops makemore's exports compute from constants (and a few more), by ONNX's rules. Any other op, or a shape
that needs values that were not read, is Unfoldable: the graph check refuses it rather than guess."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from makemore.contract.wire import DTYPES, MAX_RANK, MAX_VALUES, Node, Tensor


class Unfoldable(Exception):
    """Why a node's output cannot be known ahead (the end of "computes a <op> from constants ...")."""


Rule = Callable[[Node, list[Tensor | None], int, int], tuple[list[Tensor], int]]  # node, inputs, opset, limit


def infer(
    node: Node, inputs: list[Tensor | None], opsets: dict[str, int], limit: int = MAX_VALUES
) -> tuple[list[Tensor], int]:
    """The output tensors of `node` (shapes always; values, computed by numpy, when its inputs' are known and at
    most `limit` of them) and the multiply-adds it takes."""
    rule = RULES.get(node.op) if node.domain == "" else None
    if rule is None:
        raise Unfoldable("(an op the runtime does not compute ahead)")
    if any(t is not None and t.shape is None for t in inputs):
        raise Unfoldable("whose shape is not read")
    check_types(node.op, inputs)
    opset = opsets.get("", 0)
    check_attributes(node, opset)
    if opset < 11 and negative_axes(node, inputs):
        raise Unfoldable(f"with a negative axis, which opset {opset} does not take")
    outputs, work = rule(node, inputs, opset, limit)
    if len([name for name in node.outputs if name]) > len(outputs):
        raise Unfoldable("with more outputs than it has")
    for tensor in outputs:
        if tensor.values is not None and tensor.values.size > limit:
            tensor.values = None
    return outputs, work


# ---- the types an op takes (onnxruntime refuses the rest; a folded node is never shown to it)

INT64, INDICES = frozenset({7}), frozenset({6, 7})
AXES_INPUT = {op: {1: INT64} for op in ("Reshape", "Unsqueeze", "Squeeze", "ReduceSum", "ReduceMean", "ReduceMax",
                                         "ReduceMin", "Tile", "Expand")}  # fmt: skip
INPUT_TYPES: dict[str, dict[int, frozenset[int]]] = {
    **AXES_INPUT,
    "Gather": {1: INDICES},
    "Slice": dict.fromkeys(range(1, 5), INDICES),
    "ConstantOfShape": {0: INT64},
}
# the attributes each op takes from an opset on, each with its type (i int, f float, s string, t tensor, I ints, F
# floats) and "!" where it must be given: ONNX's schemas, which onnxruntime checks (it refuses another attribute, a
# type, or one left out); tests/test_folding.py compares this table with the onnx package's
# fmt: off
ATTRIBUTES: dict[str, tuple[tuple[int, str], ...]] = {
    **dict.fromkeys(("Abs", "Ceil", "Exp", "Floor", "Log", "Neg", "Relu", "Sigmoid", "Sqrt", "Tanh"),
                    ((1, "consumed_inputs:I"), (6, ""))),
    **dict.fromkeys(("And", "Equal", "Greater", "Less", "Or", "Pow", "Xor"), ((1, "axis:i broadcast:i"), (7, ""))),
    **dict.fromkeys(("Add", "Div", "Mul", "Sub"),
                    ((1, "axis:i broadcast:i consumed_inputs:I"), (6, "axis:i broadcast:i"), (7, ""))),
    **dict.fromkeys(("ReduceMax", "ReduceMean", "ReduceMin"),
                    ((1, "axes:I keepdims:i"), (18, "keepdims:i noop_with_empty_axes:i"))),
    "Cast": ((1, "to:s!"), (6, "to:i!"), (19, "saturate:i to:i!"), (24, "round_mode:s saturate:i to:i!")),
    "Concat": ((1, "axis:i"), (4, "axis:i!")),
    "ConstantOfShape": ((9, "value:t"),),
    "DequantizeLinear": ((10, ""), (13, "axis:i"), (21, "axis:i block_size:i"),
                         (23, "axis:i block_size:i output_dtype:i")),
    "Erf": ((9, ""),),
    "Expand": ((8, ""),),
    "Flatten": ((1, "axis:i"),),
    "Gather": ((1, "axis:i"),),
    "Gemm": ((1, "alpha:f beta:f broadcast:i transA:i transB:i"), (7, "alpha:f beta:f transA:i transB:i")),
    "GreaterOrEqual": ((12, ""),),
    "Identity": ((1, ""),),
    "LessOrEqual": ((12, ""),),
    "MatMul": ((1, ""),),
    "Mod": ((10, "fmod:i"),),
    "Not": ((1, ""),),
    "QuantizeLinear": ((10, ""), (13, "axis:i"), (19, "axis:i saturate:i"),
                       (21, "axis:i block_size:i output_dtype:i saturate:i"),
                       (23, "axis:i block_size:i output_dtype:i precision:i saturate:i")),
    "Range": ((11, ""), (27, "stash_type:i")),
    "ReduceSum": ((1, "axes:I keepdims:i"), (13, "keepdims:i noop_with_empty_axes:i")),
    "Reshape": ((1, "consumed_inputs:I shape:I"), (5, ""), (14, "allowzero:i")),
    "Shape": ((1, ""), (15, "end:i start:i")),
    "Slice": ((1, "axes:I ends:I! starts:I!"), (10, "")),
    "Squeeze": ((1, "axes:I"), (13, "")),
    "Tile": ((1, ""),),
    "Transpose": ((1, "perm:I"),),
    "Unsqueeze": ((1, "axes:I!"), (13, "")),
    "Where": ((9, ""),),
}
# fmt: on
KINDS = {"f": 1, "i": 2, "s": 3, "t": 4, "g": 5, "F": 6, "I": 7, "S": 8}  # ONNX's AttributeProto.AttributeType


def attributes_taken(op: str, opset: int) -> dict[str, tuple[int, bool]]:
    """The attributes `op` takes at `opset`: name -> (its AttributeType, whether it must be given)."""
    taken = ""
    for since, names in ATTRIBUTES[op]:
        if since <= opset:
            taken = names
    return {name: (KINDS[kind[0]], kind.endswith("!")) for name, kind in (a.split(":") for a in taken.split())}


def check_attributes(node: Node, opset: int) -> None:
    """Unfoldable unless `node` gives only attributes its op takes at `opset`, each of its type, and every one it
    must be given (onnxruntime refuses the node otherwise; folded, it would never see it)."""
    taken = attributes_taken(node.op, opset)
    for name, kind in node.kinds.items():
        if name.startswith("__"):  # ONNX's checker skips such a name (for a tool's own notes)
            continue
        if name not in taken:
            raise Unfoldable(f"with an attribute it does not take at opset {opset} ({name!r:.40})")
        if kind != taken[name][0]:
            raise Unfoldable(f"with an attribute of another type than it takes ({name!r:.40})")
    if missing := [name for name, (_, required) in taken.items() if required and name not in node.kinds]:
        raise Unfoldable(f"without its attribute {missing[0]!r}")
    if "fmod" in node.kinds and one_int(node, "fmod", 0) not in (0, 1):  # onnxruntime refuses another
        raise Unfoldable("with its attribute fmod neither 0 nor 1")
    if "saturate" in node.kinds and one_int(node, "saturate", 1) != 1:  # for float8 alone (never folded): 0 is
        raise Unfoldable("with its attribute saturate other than 1")  # refused, another value read as garbage
    if "round_mode" in node.kinds:
        raise Unfoldable("with a round_mode (for float8 alone), which the runtime does not read")


EVERY = None  # every input
SAME_TYPE: dict[str, tuple[int, ...] | None] = {
    **dict.fromkeys(("Add", "Sub", "Mul", "Div", "Mod", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual",
                     "And", "Or", "Xor", "Concat", "Range", "MatMul", "Gemm"), EVERY),
    "Where": (1, 2),
    "Slice": (1, 2, 3, 4),
}  # fmt: skip


# what may compute on float16 values: onnxruntime's optimizer computed the rest in float32 and dropped the cast back
# (a quotient past float16's range stayed finite), which its kernels alone do not
FLOAT16_OPS = frozenset({"Identity", "Unsqueeze", "Squeeze", "Reshape", "Flatten", "Transpose", "Slice", "Gather",
                         "Concat", "Shape", "Cast", "Expand", "Tile"})  # fmt: skip


def negative_axes(node: Node, inputs: list[Tensor | None]) -> bool:
    """Whether `node` counts an axis from the end (from opset 11; onnxruntime refuses it before, or reads it two
    ways)."""
    given = [ints(node, name) or [] for name in ("axis", "axes")]
    if node.op == "Slice" and len(inputs) > 3 and inputs[3] is not None and inputs[3].values is not None:
        given.append([int(v) for v in inputs[3].values.ravel()])
    return any(value < 0 for values in given for value in values)


def check_types(op: str, inputs: list[Tensor | None]) -> None:
    if op not in FLOAT16_OPS and any(t is not None and t.dtype == 10 for t in inputs):
        raise Unfoldable("of float16 values, which onnxruntime computes two ways")
    for index, allowed in INPUT_TYPES.get(op, {}).items():
        tensor = inputs[index] if index < len(inputs) else None
        if tensor is not None and tensor.dtype not in allowed:
            raise Unfoldable("given a value of a type it does not take")
    if op in SAME_TYPE:
        indices = SAME_TYPE[op] or range(len(inputs))
        if len({t.dtype for i in indices if i < len(inputs) and (t := inputs[i]) is not None}) > 1:
            raise Unfoldable("given values of two types")


# ---- helpers


def first(inputs: list[Tensor | None], index: int = 0) -> Tensor:
    if index >= len(inputs) or inputs[index] is None:
        raise Unfoldable("without its input")
    tensor = inputs[index]
    assert tensor is not None and tensor.shape is not None
    return tensor


def shape_of(tensor: Tensor) -> tuple[int, ...]:
    assert tensor.shape is not None
    return tensor.shape


def ints(node: Node, name: str, default: list[int] | None = None) -> list[int] | None:
    value = node.attributes.get(name)
    if value is None:
        return default
    if not isinstance(value, list) or any(not float(v).is_integer() for v in value):
        raise Unfoldable(f"(its attribute {name} is not read)")
    return [int(v) for v in value]


def one_int(node: Node, name: str, default: int) -> int:
    values = ints(node, name)
    return default if not values else values[-1]


def values_of(inputs: list[Tensor | None], index: int, what: str, required: bool = False) -> np.ndarray | None:
    """The values of an input (None when an optional one is left out); Unfoldable when they were not read."""
    if index >= len(inputs) or inputs[index] is None:
        if required:
            raise Unfoldable(f"without its {what}")
        return None
    tensor = inputs[index]
    assert tensor is not None
    if tensor.values is None:
        raise Unfoldable(f"whose {what} is not read")
    return tensor.values


INT32_MAX, INT64_MAX = (1 << 31) - 1, (1 << 63) - 1

# the opset from which an op takes its axes (a Slice its bounds) as inputs rather than attributes
AXES_AS_INPUT = {"Unsqueeze": 13, "Squeeze": 13, "ReduceSum": 13, "ReduceMean": 18, "ReduceMax": 18, "ReduceMin": 18,
                 "Slice": 10}  # fmt: skip


def as_inputs(node: Node, inputs: list[Tensor | None], opset: int, names: tuple[str, ...]) -> bool:
    """Whether `node` takes those values as inputs at its opset (Unfoldable when it gives them the other way, which
    onnxruntime refuses)."""
    by_input = opset >= AXES_AS_INPUT[node.op]
    if (len(inputs) > 1 and not by_input) or (by_input and any(name in node.attributes for name in names)):
        raise Unfoldable(f"given its {names[0]} otherwise than opset {opset} takes them")
    return by_input


def axes_of(node: Node, inputs: list[Tensor | None], opset: int) -> list[int] | None:
    return int_list(values_of(inputs, 1, "axes")) if as_inputs(node, inputs, opset, ("axes",)) else ints(node, "axes")


def int_list(array: np.ndarray | None) -> list[int] | None:
    if array is None:
        return None
    if array.dtype.kind not in "iu":
        raise Unfoldable("given numbers that are not integers")
    return [int(v) for v in array.ravel()]


def axis_in(axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise Unfoldable(f"along axis {axis} of a rank-{rank} value")
    return axis + rank if axis < 0 else axis


def out(dtype: int, shape: tuple[int, ...], values: np.ndarray | None = None) -> Tensor:
    if any(dim < 0 for dim in shape):
        raise Unfoldable("of a negative size")
    if len(shape) > MAX_RANK:
        raise Unfoldable(f"of more than {MAX_RANK} dimensions")
    return Tensor(dtype, tuple(int(dim) for dim in shape), None if values is None else values.reshape(shape))


def size(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def known(*tensors: Tensor | None) -> bool:
    return all(t is not None and t.values is not None for t in tensors)


# ---- the rules


def same(node: Node, inputs: list[Tensor | None], opset: int, limit: int) -> tuple[list[Tensor], int]:
    """Identity and elementwise ops of one input: the same shape (Identity keeps the values)."""
    x = first(inputs)
    return [out(x.dtype, shape_of(x), x.values if node.op == "Identity" else None)], 0


def cast(node: Node, inputs: list[Tensor | None], opset: int, limit: int) -> tuple[list[Tensor], int]:
    x = first(inputs)
    to = one_int(node, "to", 0)
    values = None
    if x.values is not None and to in DTYPES and x.values.dtype.kind in "biuf":
        with np.errstate(all="ignore"):
            values = x.values.astype(np.dtype(DTYPES[to]))
    return [out(to, shape_of(x), values)], 0


def int_divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b of integers, truncated toward zero (ONNX's, not numpy's floor)."""
    check_divisor(a, b)
    floor, rest = np.floor_divide(a, b), np.remainder(a, b)
    quotient: np.ndarray = floor + ((rest != 0) & ((a < 0) != (b < 0)))
    return quotient


def check_divisor(a: np.ndarray, b: np.ndarray) -> None:
    """No integer division by 0, or of the least integer by -1 (onnxruntime's process dies of either)."""
    if np.any(b == 0):
        raise Unfoldable("dividing by zero")
    if a.dtype.kind == "i" and np.any((a == np.iinfo(a.dtype).min) & (b == -1)):
        raise Unfoldable("dividing the least integer by -1")


ARITHMETIC: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "Add": np.add,
    "Sub": np.subtract,
    "Mul": np.multiply,
}
COMPARISONS = frozenset({"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor"})


def elementwise(node: Node, inputs: list[Tensor | None], opset: int, limit: int) -> tuple[list[Tensor], int]:
    """Broadcasting ops: the broadcast shape; the values of Add, Sub, Mul, Div and Mod of few numbers."""
    if opset < 7:
        raise Unfoldable("at an opset before 7 (its broadcast is another)")
    tensors = [first(inputs, index) for index in range(len(inputs))]
    try:
        shape = np.broadcast_shapes(*(shape_of(t) for t in tensors))
    except ValueError:
        raise Unfoldable("of shapes that do not broadcast") from None
    dtype = 9 if node.op in COMPARISONS else tensors[-1 if node.op == "Where" else 0].dtype
    values = None
    if len(tensors) == 2 and known(*tensors) and size(shape) <= limit:
        a, b = (t.values for t in tensors)
        assert a is not None and b is not None
        integer = a.dtype.kind in "iu" and b.dtype.kind in "iu"
        with np.errstate(all="ignore"):
            if node.op in ARITHMETIC:
                values = ARITHMETIC[node.op](a, b)
            elif node.op == "Div":
                values = int_divide(a, b) if integer else np.divide(a, b)
            elif node.op == "Mod" and integer:
                check_divisor(a, b)
                values = np.fmod(a, b) if one_int(node, "fmod", 0) else np.mod(a, b)
        if values is not None:
            values = values.astype(a.dtype)
    return [out(dtype, shape, values)], 0


def unsqueeze(node: Node, inputs: list[Tensor | None], opset: int, limit: int) -> tuple[list[Tensor], int]:
    x = first(inputs)
    axes = axes_of(node, inputs, opset)
    if axes is None:
        raise Unfoldable("without its axes")
    shape = list(shape_of(x))
    rank = len(shape) + len(axes)
    normal = sorted(axis_in(axis, rank) for axis in axes)
    if len(set(normal)) != len(normal):
        raise Unfoldable("with an axis given twice")
    for axis in normal:
        shape.insert(axis, 1)
    return [out(x.dtype, tuple(shape), x.values)], 0


def squeeze(node: Node, inputs: list[Tensor | None], opset: int, limit: int) -> tuple[list[Tensor], int]:
    x = first(inputs)
    shape = shape_of(x)
    axes = axes_of(node, inputs, opset)
    if axes == [] and len(inputs) > 1:  # its kernel drops every 1-long axis, its shape inference none
        raise Unfoldable("with empty axes, which onnxruntime reads two ways")
    drop = {i for i, dim in enumerate(shape) if dim == 1} if axes is None else {axis_in(a, len(shape)) for a in axes}
    if any(shape[axis] != 1 for axis in drop):
        raise Unfoldable("of an axis that is not 1 long")
    kept = tuple(dim for i, dim in enumerate(shape) if i not in drop)
    return [out(x.dtype, kept, x.values)], 0


def concat(node: Node, inputs: list[Tensor | None], opset: int, limit: int) -> tuple[list[Tensor], int]:
    tensors = [first(inputs, index) for index in range(len(inputs))]
    shapes = [shape_of(t) for t in tensors]
    rank = len(shapes[0])
    axis = axis_in(one_int(node, "axis", 0), rank)
    if any(len(s) != rank or s[:axis] + s[axis + 1 :] != shapes[0][:axis] + shapes[0][axis + 1 :] for s in shapes):
        raise Unfoldable("of shapes that do not join")
    shape = (*shapes[0][:axis], sum(s[axis] for s in shapes), *shapes[0][axis + 1 :])
    values = None
    if known(*tensors) and size(shape) <= limit:
        values = np.concatenate([t.values for t in tensors if t.values is not None], axis=axis)
    return [out(tensors[0].dtype, shape, values)], 0


def gather(node: Node, inputs: list[Tensor | None], opset: int, limit: int) -> tuple[list[Tensor], int]:
    data, indices = first(inputs), first(inputs, 1)
    shape = shape_of(data)
    axis = axis_in(one_int(node, "axis", 0), len(shape))
    result = (*shape[:axis], *shape_of(indices), *shape[axis + 1 :])
    values = None
    if indices.values is not None:
        index = indices.values.astype(np.int64)
        if np.any((index < -shape[axis]) | (index >= shape[axis])):
            raise Unfoldable("at an index out of range")
        if data.values is not None and size(result) <= limit:
            values = np.take(data.values, index, axis=axis)
    return [out(data.dtype, result, values)], 0


def slice_(node: Node, inputs: list[Tensor | None], opset: int, limit: int) -> tuple[list[Tensor], int]:
    x = first(inputs)
    shape = list(shape_of(x))
    if as_inputs(node, inputs, opset, ("starts", "ends", "axes")):
        starts, ends = int_list(values_of(inputs, 1, "start")), int_list(values_of(inputs, 2, "end"))
        axes, steps = int_list(values_of(inputs, 3, "axes")), int_list(values_of(inputs, 4, "steps"))
    else:
        starts, ends, axes, steps = ints(node, "starts"), ints(node, "ends"), ints(node, "axes"), None
    if starts is None or ends is None or len(starts) != len(ends):
        raise Unfoldable("without its bounds")
    axes = [axis_in(a, len(shape)) for a in (range(len(starts)) if axes is None else axes)]
    steps = [1] * len(starts) if steps is None else steps
    if len(axes) != len(starts) or len(steps) != len(starts) or len(set(axes)) != len(axes) or 0 in steps:
        raise Unfoldable("with bounds that do not match")
    picks: list[tuple[int, int, int, int]] = []  # (axis, start, step, count)
    for axis, start, end, step in zip(axes, starts, ends, steps, strict=False):
        dim = shape[axis]
        if step < 0 and end in (INT32_MAX, INT64_MAX):  # its kernel reads "to the front", its shape inference not
            raise Unfoldable("with a negative step to INT_MAX, which onnxruntime reads two ways")
        start, end = start + dim if start < 0 else start, end + dim if end < 0 else end
        if step > 0:
            start, end = min(max(start, 0), dim), min(max(end, 0), dim)
            count = max(0, -(-(end - start) // step))
        else:
            start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
            count = max(0, -(-(start - end) // -step))
        shape[axis] = count
        picks.append((axis, start, step, count))
    values = x.values
    if values is not None:
        for axis, start, step, count in picks:
            values = np.take(values, start + step * np.arange(count), axis=axis)
    return [out(x.dtype, tuple(shape), values)], 0


def transpose(node: Node, inputs: list[Tensor | None], opset: int, limit: int) -> tuple[list[Tensor], int]:
    x = first(inputs)
    shape = shape_of(x)
    perm = ints(node, "perm")
    perm = list(reversed(range(len(shape)))) if perm is None else perm  # given empty: no permutation of a rank > 0
    if sorted(perm) != list(range(len(shape))):
        raise Unfoldable("with a permutation that is not one")
    values = None if x.values is None else np.transpose(x.values, perm)
    return [out(x.dtype, tuple(shape[p] for p in perm), values)], 0


def flatten(node: Node, inputs: list[Tensor | None], opset: int, limit: int) -> tuple[list[Tensor], int]:
    x = first(inputs)
    shape = shape_of(x)
    axis = one_int(node, "axis", 1)
    axis = axis + len(shape) if axis < 0 else axis
    if not 0 <= axis <= len(shape):
        raise Unfoldable(f"along axis {axis}")
    result = (size(shape[:axis]), size(shape[axis:]))
    return [out(x.dtype, result, None if x.values is None else x.values.reshape(result))], 0


def reshape(node: Node, inputs: list[Tensor | None], opset: int, limit: int) -> tuple[list[Tensor], int]:
    x = first(inputs)
    target = int_list(values_of(inputs, 1, "shape")) if len(inputs) > 1 else ints(node, "shape")
    if target is None:
        raise Unfoldable("without its shape")
    shape = shape_of(x)
    allow_zero = one_int(node, "allowzero", 0) == 1  # 1 alone counts, as onnxruntime's kernel reads it
    dims = [shape[i] if d == 0 and not allow_zero and i < len(shape) else d for i, d in enumerate(target)]
    if dims.count(-1) > 1 or any(d < -1 for d in dims):
        raise Unfoldable("of a shape that is not one")
    if -1 in dims:
        rest = size(tuple(d for d in dims if d != -1))
        if rest == 0 or size(shape) % rest:
            raise Unfoldable("to a shape of another size")
        dims[dims.index(-1)] = size(shape) // rest
    if size(tuple(dims)) != size(shape):
        raise Unfoldable("to a shape of another size")
    return [out(x.dtype, tuple(dims), x.values)], 0


def shape_op(node: Node, inputs: list[Tensor | None], opset: int, limit: int) -> tuple[list[Tensor], int]:
    shape = shape_of(first(inputs))
    rank = len(shape)
    start, end = one_int(node, "start", 0), one_int(node, "end", rank)
    start, end = (min(max(v + rank if v < 0 else v, 0), rank) for v in (start, end))
    dims = np.array(shape[start:end], np.int64)
    return [out(7, dims.shape, dims)], 0


def matmul(node: Node, inputs: list[Tensor | None], opset: int, limit: int) -> tuple[list[Tensor], int]:
    a, b = first(inputs), first(inputs, 1)
    sa, sb = shape_of(a), shape_of(b)
    if not sa or not sb:
        raise Unfoldable("of a scalar")
    ea, eb = (sa if len(sa) > 1 else (1, *sa)), (sb if len(sb) > 1 else (*sb, 1))
    if ea[-1] != eb[-2]:
        raise Unfoldable("of shapes that do not multiply")
    try:
        batch = np.broadcast_shapes(ea[:-2], eb[:-2])
    except ValueError:
        raise Unfoldable("of shapes that do not broadcast") from None
    shape = (*batch, *([ea[-2]] if len(sa) > 1 else []), *([eb[-1]] if len(sb) > 1 else []))
    return [out(a.dtype, shape)], size(shape) * ea[-1]


def gemm(node: Node, inputs: list[Tensor | None], opset: int, limit: int) -> tuple[list[Tensor], int]:
    a, b = first(inputs), first(inputs, 1)
    sa, sb = shape_of(a), shape_of(b)
    if len(sa) != 2 or len(sb) != 2:
        raise Unfoldable("of values that are not matrices")
    m, k = sa[::-1] if one_int(node, "transA", 0) else sa
    k2, n = sb[::-1] if one_int(node, "transB", 0) else sb
    if k != k2:
        raise Unfoldable("of shapes that do not multiply")
    if len(inputs) > 2 and inputs[2] is not None:
        try:
            if np.broadcast_shapes(shape_of(inputs[2]), (m, n)) != (m, n):
                raise Unfoldable("of shapes that do not broadcast")
        except ValueError:
            raise Unfoldable("of shapes that do not broadcast") from None
    return [out(a.dtype, (m, n))], m * n * k


def constant_of_shape(node: Node, inputs: list[Tensor | None], opset: int, limit: int) -> tuple[list[Tensor], int]:
    dims = int_list(values_of(inputs, 0, "shape", required=True))
    assert dims is not None
    value = node.attributes.get("value")
    dtype = value.dtype if isinstance(value, Tensor) else 1
    return [out(dtype, tuple(dims))], 0


def expand(node: Node, inputs: list[Tensor | None], opset: int, limit: int) -> tuple[list[Tensor], int]:
    x = first(inputs)
    dims = int_list(values_of(inputs, 1, "shape", required=True))
    assert dims is not None
    try:
        shape = np.broadcast_shapes(shape_of(x), tuple(dims))
    except ValueError:
        raise Unfoldable("of shapes that do not broadcast") from None
    return [out(x.dtype, shape)], 0


def tile(node: Node, inputs: list[Tensor | None], opset: int, limit: int) -> tuple[list[Tensor], int]:
    x = first(inputs)
    repeats = int_list(values_of(inputs, 1, "repeats", required=True))
    shape = shape_of(x)
    if repeats is None or len(repeats) != len(shape):
        raise Unfoldable("with repeats that do not match")
    return [out(x.dtype, tuple(d * r for d, r in zip(shape, repeats, strict=False)))], 0


def range_(node: Node, inputs: list[Tensor | None], opset: int, limit: int) -> tuple[list[Tensor], int]:
    start, end, delta = (values_of(inputs, index, "bounds") for index in range(3))
    if start is None or end is None or delta is None or start.size != 1 or end.size != 1 or delta.size != 1:
        raise Unfoldable("without its bounds")
    if float(delta.ravel()[0]) == 0:
        raise Unfoldable("of step 0")
    count = np.ceil((float(end.ravel()[0]) - float(start.ravel()[0])) / float(delta.ravel()[0]))
    if not np.isfinite(count):
        raise Unfoldable("of no length")
    return [out(first(inputs).dtype, (max(int(count), 0),))], 0


def reduce(node: Node, inputs: list[Tensor | None], opset: int, limit: int) -> tuple[list[Tensor], int]:
    x = first(inputs)
    shape = shape_of(x)
    axes = axes_of(node, inputs, opset)
    if not axes and one_int(node, "noop_with_empty_axes", 0) == 1:  # 1 alone counts, as onnxruntime reads them
        return [out(x.dtype, shape)], size(shape)
    picked = set(range(len(shape))) if not axes else {axis_in(a, len(shape)) for a in axes}
    keep = one_int(node, "keepdims", 1) == 1
    result = tuple(1 if i in picked else d for i, d in enumerate(shape) if keep or i not in picked)
    return [out(x.dtype, result)], size(shape)


def quantize(node: Node, inputs: list[Tensor | None], opset: int, limit: int) -> tuple[list[Tensor], int]:
    """DequantizeLinear makes its scale's type (or its output_dtype); QuantizeLinear its zero point's (or its
    output_dtype, or uint8)."""
    x = first(inputs)
    given = one_int(node, "output_dtype", 0)
    if node.op == "DequantizeLinear":
        scale = inputs[1] if len(inputs) > 1 else None
        dtype = given or (scale.dtype if scale is not None else 1)
    else:
        zero = inputs[2] if len(inputs) > 2 else None
        dtype = zero.dtype if zero is not None else (given or 2)
    return [out(dtype, shape_of(x))], 0


UNARY = ("Identity", "Neg", "Abs", "Sqrt", "Relu", "Tanh", "Sigmoid", "Exp", "Log", "Not", "Floor", "Ceil", "Erf")
BINARY = ("Div", "Mod", "Pow", "Where", *COMPARISONS, *ARITHMETIC)
RULES: dict[str, Rule] = {
    **{op: same for op in UNARY},
    **{op: elementwise for op in BINARY},
    "Cast": cast,
    "Unsqueeze": unsqueeze,
    "Squeeze": squeeze,
    "Concat": concat,
    "Gather": gather,
    "Slice": slice_,
    "Transpose": transpose,
    "Flatten": flatten,
    "Reshape": reshape,
    "Shape": shape_op,
    "MatMul": matmul,
    "Gemm": gemm,
    "ConstantOfShape": constant_of_shape,
    "Expand": expand,
    "Tile": tile,
    "Range": range_,
    "ReduceSum": reduce,
    "ReduceMean": reduce,
    "ReduceMax": reduce,
    "ReduceMin": reduce,
    "DequantizeLinear": quantize,
    "QuantizeLinear": quantize,
}
