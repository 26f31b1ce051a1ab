"""A step model's graph for calls of one step beside its graph for any number of steps, in one file (export only).

Sampling and beam search call a step model one position at a time; scoring and a prefix call it with several. Some
graphs run one step much faster than the general one: a recurrent model's explicit cell (export/recurrent_cell.py),
a transformer's attention as GroupQueryAttention (export/attention.py). `with_one_step_branch` puts both in one
graph behind an If on the number of steps, with the file's inputs, outputs, metadata and format unchanged.
"""

from __future__ import annotations

import numpy as np
import onnx
from makemore.contract import TOKENS
from onnx import helper, numpy_helper


def with_one_step_branch(op_proto: onnx.ModelProto, one_proto: onnx.ModelProto) -> onnx.ModelProto:
    """One model: If tokens has one step (on at least one row), `one_proto`'s graph, else `op_proto`'s; the same
    inputs, outputs, opsets and model fields (metadata included) as `op_proto`. An initializer of `one_proto` equal
    to one of `op_proto`'s (or to its transpose: a recurrent cell's head) is that one, so each weight is stored once
    (onnxruntime folds the transposes when it loads the file)."""
    op, one = op_proto.graph, one_proto.graph
    outer = {i.name for i in op.input} | {i.name for i in op.initializer}
    ops_arrays = {i.name: numpy_helper.to_array(i) for i in op.initializer}
    shared, transposed = {}, []  # one_proto's initializers that are one of the op's, or its transpose
    for init in one.initializer:
        array = numpy_helper.to_array(init)
        same = ops_arrays.get(init.name)
        candidates = ([(init.name, same)] if same is not None else []) + list(ops_arrays.items())
        for name, other in candidates:
            if other.dtype == array.dtype and other.shape == array.shape and np.array_equal(other, array):
                shared[init.name] = name
                break
            if other.dtype == array.dtype and other.ndim == 2 and np.array_equal(other.T, array):
                shared[init.name] = "one/" + init.name
                transposed.append(helper.make_node("Transpose", [name], [shared[init.name]]))
                break
    extra = [i for i in one.initializer if i.name not in shared]
    then_branch = branch(one, "one/", {i.name for i in one.input}, shared, "one step")
    else_branch = branch(op, "op/", outer, {}, "any steps")
    for init in extra:
        init.name = "one/" + init.name
    steps = transposed + [  # one step on some rows (0 rows: the general graph); ops of every opset from 7
        helper.make_node("Shape", [TOKENS], ["if/shape"]),
        constant("if/rows_axis", 0),
        constant("if/steps_axis", 1),
        constant("if/zero", 0),
        constant("if/one", 1),
        helper.make_node("Gather", ["if/shape", "if/rows_axis"], ["if/rows"]),
        helper.make_node("Gather", ["if/shape", "if/steps_axis"], ["if/steps"]),
        helper.make_node("Equal", ["if/steps", "if/one"], ["if/one_step"]),
        helper.make_node("Equal", ["if/rows", "if/zero"], ["if/no_rows"]),
        helper.make_node("Not", ["if/no_rows"], ["if/some_rows"]),
        helper.make_node("And", ["if/one_step", "if/some_rows"], ["if/cond"]),
    ]
    node = helper.make_node(
        "If", ["if/cond"], [o.name for o in op.output], then_branch=then_branch, else_branch=else_branch
    )
    graph = helper.make_graph(steps + [node], op.name, list(op.input), list(op.output), list(op.initializer) + extra)
    model = onnx.ModelProto()
    model.CopyFrom(op_proto)  # its fields: IR version, opsets, producer, doc string, metadata
    model.graph.CopyFrom(graph)
    return model


def constant(name: str, value: int | np.ndarray) -> onnx.NodeProto:
    """A Constant node `name`: `value` (an int: an int64 scalar)."""
    array = np.array(value, dtype=np.int64) if isinstance(value, int) else value
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array))


def branch(graph: onnx.GraphProto, prefix: str, outer: set[str], renamed: dict[str, str], name: str) -> onnx.GraphProto:
    """`graph`'s nodes as an If branch: its inputs and `renamed` initializers read from the outer graph, its other
    values prefixed (an If's branch may not redefine an outer name); its outputs by position."""

    def name_of(value: str) -> str:
        if not value or value in outer:
            return value
        return renamed.get(value, prefix + value)

    inputs = {i.name for i in graph.input}
    nodes = []
    for index, node in enumerate(graph.node):
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.name = prefix + (node.name or f"{node.op_type}.{index}")  # unique: onnxruntime refuses a name twice
        copy.input[:] = [name_of(v) if v not in inputs else v for v in node.input]
        copy.output[:] = [name_of(v) for v in node.output]
        nodes.append(copy)
    outputs = [helper.make_value_info(name_of(o.name), o.type) for o in graph.output]
    return helper.make_graph(nodes, name, [], outputs)
