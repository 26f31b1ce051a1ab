"""What an ONNX file's graph may ask of onnxruntime, checked from its bytes before a session is made (no onnx
package: the runtime has none).

- No loop (`Loop`, `Scan`: a trip count of 10**12 ran for ever), no functions of its own (which could hold
  anything), no weights in another file (onnxruntime would read a path the file names).
- Every value the graph computes from constants alone (int8 weights made float, a recurrent cell's weights cut
  and multiplied) has its shape found op by op (`contract/shapes.py`) before anything is computed, and together
  they may take at most FOLD_VALUES plus FOLD_PER_BYTE values a byte of the file. The runtime computes them once
  (`runtime/folding.py`) and loads the file with onnxruntime's own folding off, which had computed whatever a
  file asked as it loaded (`ConstantOfShape` of a product of constants, the broadcast of two constants: 2 GB).
- An op that allocates what it is told (`ConstantOfShape`, `Expand`, `Tile`, `Range`) is given at most
  MAX_CONSTANT_ELEMENTS by a constant size.

Not bounded here: sizes a graph computes from the batch at every call (K values a row).
"""

from __future__ import annotations

from collections import ChainMap
from dataclasses import dataclass, field

import numpy as np
from makemore.contract.shapes import Unfoldable, infer
from makemore.contract.wire import (
    DTYPES,
    Graph,
    GraphError,
    Model,
    Node,
    Tensor,
    message_field,
    read_model,
    renamed,
    varint_field,
)

LOOPS = frozenset({"Loop", "Scan", "SequenceMap"})  # ops that run a subgraph as many times as a value says
SIZED = {"ConstantOfShape": (0,), "Expand": (1,), "Tile": (1,), "Range": (0, 1, 2)}  # op -> its size inputs
MAX_CONSTANT_ELEMENTS = 1 << 24  # what a constant size may ask one op for (64 MB of float32)
FOLD_VALUES = 1 << 24  # the values computed from constants, beyond FOLD_PER_BYTE a byte of the file
FOLD_PER_BYTE = 6  # an int8 recurrent weight makes 3.6 (its cast, its scaled copy, a gate's gather and transpose)
FOLD_WORK = 1 << 30  # multiply-adds and values written, computing them


@dataclass
class Value:
    """A constant the graph can see: its tensor and where it comes from (an initializer, a Constant node, or the
    output `index` of fold `fold`)."""

    tensor: Tensor
    node: Node | None = None
    fold: int = -1
    index: int = 0


# the names a graph sees: its constants, and None for a name computed at every call (which hides an outer one)
Scope = ChainMap[str, Value | None]


@dataclass
class Fold:
    node: Node
    inputs: list[Value | None]  # None: an optional input left out ("")
    outputs: list[Tensor]
    used: list[bool] = field(default_factory=list)  # whether each output is read by a node that stays


@dataclass
class Plan:
    """The file's graphs, and what they compute from constants alone, in an order that computes inputs first."""

    model: Model
    folds: list[Fold]
    unread: list[tuple[int, int]] = field(default_factory=list)  # initializers only folds read (their bytes)

    def side_model(self, data: bytes, numbers: list[int], fed: set[int], source: str) -> tuple[bytes, list[str]]:
        """A model of the folds `numbers` alone (each name its own: f<fold>.<output>, c<n> for a constant) whose
        inputs are the outputs of the folds `fed` (their values given), and the names of its outputs (every output
        of those folds)."""
        nodes: list[bytes] = []
        initializers: list[bytes] = []
        inputs: list[bytes] = []
        names: dict[int, str] = {}

        def name(value: Value | None) -> str:
            if value is None:
                return ""
            if value.fold >= 0:
                if value.fold in fed and id(value) not in names:
                    names[id(value)] = f"f{value.fold}.{value.index}"
                    tensor_type = message_field(1, varint_field(1, value.tensor.dtype))  # TypeProto.tensor_type
                    inputs.append(
                        message_field(11, message_field(1, names[id(value)].encode()) + message_field(2, tensor_type))
                    )
                return f"f{value.fold}.{value.index}"
            key = id(value.node or value.tensor)
            if key not in names:
                names[key] = f"c{len(names)}"
                if value.node is not None:
                    nodes.append(message_field(1, renamed(data, value.node.span, {2: [names[key]], 3: []}, source)))
                else:
                    assert value.tensor.span is not None
                    initializers.append(message_field(5, renamed(data, value.tensor.span, {8: [names[key]]}, source)))
            return names[key]

        outputs = []
        for number in numbers:
            fold = self.folds[number]
            results = [f"f{number}.{index}" for index in range(len(fold.outputs))]
            renames = {1: [name(value) for value in fold.inputs], 2: results, 3: []}
            nodes.append(message_field(1, renamed(data, fold.node.span, renames, source)))
            outputs += results
        graph = b"".join(nodes + initializers + inputs)
        graph += b"".join(message_field(12, message_field(1, output.encode())) for output in outputs)
        header = b"".join(message_field(8, data[a:b]) for a, b in self.model.header)
        return varint_field(1, self.model.ir_version) + header + message_field(7, graph), outputs


def check_graph(data: bytes, source: str) -> Plan:
    """The plan of what the file computes from constants, or GraphError (naming `source`) when its graphs hold a
    loop, a function of their own, weights in another file, a value computed from constants that cannot be
    bounded or passes the bounds, an allocating op with a constant size past MAX_CONSTANT_ELEMENTS, or bytes that
    are not the protobuf they should be."""
    model = read_model(bytes(data), source)
    if "" not in model.opsets:  # which version onnxruntime would assume is not known here
        raise GraphError(f'{source}: it imports no version of ONNX\'s own ops (no opset_import of the domain "")')
    plan = Plan(model, [])
    budget = Budget(FOLD_VALUES + FOLD_PER_BYTE * len(data), FOLD_WORK)
    visit(model.graph, Scope(), plan, budget, source, frozenset())
    read = names_read(model.graph, {id(fold.node) for fold in plan.folds})
    for fold in plan.folds:
        fold.used = [out in read for out in fold.node.outputs]
    plan.unread = unread_initializers(model.graph, read)
    return plan


@dataclass
class Budget:
    values: int
    work: int


def visit(graph: Graph, outer: Scope, plan: Plan, budget: Budget, source: str, written: frozenset[str]) -> None:
    """Fold what `graph` computes from constants (in dependency order, whatever the order of its nodes), check its
    other nodes, then visit its subgraphs with its constants in scope (`written`: the names the graphs around it
    compute, which it may not compute again)."""
    scope = outer.new_child()
    for name, tensor in graph.initializers.items():
        scope[name] = Value(tensor)
    for name in graph.inputs - set(graph.initializers):
        scope[name] = None  # fed at every call (an input with an initializer is a constant: the runtime feeds only
        # the contract's inputs, and onnxruntime does not list one with an initializer as an input to feed)
    made = {out: node for node in graph.nodes for out in node.outputs if out}
    if twice := next((name for name in made if name in written), None):
        raise GraphError(f"{source} is not a valid ONNX model ({twice!r} is computed twice)")
    given = graph.inputs | set(graph.initializers)
    if twice := next((name for name in made if name in given), None):  # onnxruntime refuses it ("Duplicate
        # definition"; a Constant of an initializer's shape it takes, with one value or the other): folded, it would
        # never see it
        raise GraphError(f"{source} is not a valid ONNX model ({twice!r:.40} is computed and given too)")
    if len(made) < sum(1 for node in graph.nodes for out in node.outputs if out):
        raise GraphError(f"{source} is not a valid ONNX model (a name is computed twice)")
    for name in made:
        scope[name] = None  # computed here (a constant once folded), hiding an outer name
    waiting: dict[int, int] = {}  # node -> inputs made here and not folded yet
    readers: dict[str, list[Node]] = {}
    ready: list[Node] = []
    for node in graph.nodes:
        if node.domain == "" and node.op in LOOPS:
            raise GraphError(f"{source}: its graph runs {a(node.op)}, which no makemore model does")
        inputs = {name for name in node.inputs if name}
        if node.graphs or not (inputs or node.op == "Constant"):
            continue  # an If (run by onnxruntime), or an op that makes a value from nothing: not folded
        outside = [name for name in inputs if name not in made]
        if any(scope.get(name) is None for name in outside):
            continue  # reads a value computed at every call
        waiting[id(node)] = len(inputs) - len(outside)
        for name in inputs - set(outside):
            readers.setdefault(name, []).append(node)
        if waiting[id(node)] == 0:
            ready.append(node)
    folded: set[int] = set()
    while ready:
        node = ready.pop()
        values = fold(node, scope, plan, budget, source)
        folded.add(id(node))
        for out, value in zip(node.outputs, values, strict=False):
            if out:
                scope[out] = value
                for reader in readers.get(out, []):
                    waiting[id(reader)] -= 1
                    if waiting[id(reader)] == 0:
                        ready.append(reader)
    for node in graph.nodes:
        if id(node) not in folded and node.op in SIZED and node.domain == "":
            check_size(node, scope, source)
        if node.graphs:  # (a branch may name its value as the If names it, as onnxruntime allows)
            around = written | given | (set(made) - set(node.outputs))
            for subgraph in node.graphs:
                visit(subgraph, scope, plan, budget, source, around)


def fold(node: Node, scope: Scope, plan: Plan, budget: Budget, source: str) -> list[Value]:
    """The values `node` computes from constants: a Constant's own, or the shapes (and few values) of a node the
    runtime will compute once, which must fit the budget."""
    if node.op == "Constant" and node.domain == "":
        return [Value(constant_tensor(node), node=node)]
    inputs = [scope.get(name) if name else None for name in node.inputs]
    try:
        outputs, work = infer(node, [value.tensor if value else None for value in inputs], plan.model.opsets)
    except Unfoldable as err:
        raise GraphError(f"{source}: its graph computes {a(node.op)} from constants {err}") from None
    except (IndexError, ValueError, TypeError, OverflowError):  # a case the rules missed: refused all the same
        raise GraphError(f"{source}: its graph computes {a(node.op)} from constants that do not fit it") from None
    if any(t.dtype not in DTYPES for t in outputs):  # strings (bytes of any length a value) and other types the
        # runtime cannot write: refused before anything is computed
        raise GraphError(f"{source}: its graph computes {a(node.op)} of a type the runtime does not fold")
    largest = max((value.tensor.size or 0 for value in inputs if value is not None), default=0)
    if any((t.size or 0) > max(MAX_CONSTANT_ELEMENTS, largest) for t in outputs):  # a value past the cap may be
        # cast, scaled, moved (an int8 weight of a wide model), not made larger
        raise too_large(node.op, source)
    count = sum(t.size or 0 for t in outputs)
    budget.values -= count
    budget.work -= work + count
    if budget.values < 0 or budget.work < 0:
        raise GraphError(f"{source}: its graph computes more from its constants than a file of its size may")
    plan.folds.append(Fold(node, inputs, outputs))
    number = len(plan.folds) - 1
    return [Value(tensor, fold=number, index=index) for index, tensor in enumerate(outputs)]


def constant_tensor(node: Node) -> Tensor:
    """A Constant node's value (value, value_int(s), value_float(s)); a shape of None for any other."""
    if len(node.attributes) != 1:
        return Tensor(0, None)
    ((key, value),) = node.attributes.items()
    if key == "value" and isinstance(value, Tensor):
        return value
    if key in ("value_int", "value_ints", "value_float", "value_floats") and isinstance(value, list):
        dtype = np.int64 if "int" in key else np.float32
        array = np.array(value[0] if key in ("value_int", "value_float") else value, dtype)
        return Tensor(7 if dtype is np.int64 else 1, array.shape, array)
    return Tensor(0, None)


def check_size(node: Node, scope: Scope, source: str) -> None:
    """An allocating op at every call: its constant size inputs ask for at most MAX_CONSTANT_ELEMENTS (a size
    input computed by the graph is the batch's, not bounded here)."""
    sizes = [
        scope.get(node.inputs[index]) if index < len(node.inputs) and node.inputs[index] else None
        for index in SIZED[node.op]
    ]
    if any(value is not None and value.tensor.values is None for value in sizes):
        raise too_large(node.op, source)
    arrays = [
        value.tensor.values.astype(np.float64).ravel() if value and value.tensor.values is not None else None
        for value in sizes
    ]
    if node.op == "Range":
        start, limit, delta = arrays
        if start is None or limit is None or delta is None or not (start.size and limit.size and delta.size):
            return  # computed, or left to onnxruntime (which refuses a range of no value)
        if delta[0] == 0:
            return
        count = (limit[0] - start[0]) / delta[0]
    elif arrays[0] is None:
        return
    else:
        count = float(np.prod(np.maximum(arrays[0], 0.0))) if arrays[0].size else 1.0
    if count > MAX_CONSTANT_ELEMENTS:
        raise too_large(node.op, source)


def too_large(op: str, source: str) -> GraphError:
    return GraphError(f"{source}: its graph asks {a(op)} for more than {MAX_CONSTANT_ELEMENTS:,} values")


def a(op: str) -> str:
    """An op's name with its article ("an Add", "a Tile")."""
    return f"{'an' if op[:1] in 'AEIOU' else 'a'} {op}"


def unread_initializers(graph: Graph, read: set[str]) -> list[tuple[int, int]]:
    """The TensorProto spans of the initializers that no node reads once the folds are made, in `graph` and its
    subgraphs (a file need not hold them beside the values folded from them); one that a graph lists as an input
    stays (a caller may feed it)."""
    spans = [
        tensor.span
        for name, tensor in graph.initializers.items()
        if name not in read and name not in graph.inputs and tensor.span is not None
    ]
    for node in graph.nodes:
        for subgraph in node.graphs:
            spans += unread_initializers(subgraph, read)
    return spans


def names_read(graph: Graph, folded: set[int]) -> set[str]:
    """The names read by the nodes that are not folded, in `graph` and its subgraphs, and their outputs."""
    names = set(graph.outputs)
    for node in graph.nodes:
        if id(node) not in folded:
            names.update(node.inputs)
        for subgraph in node.graphs:
            names |= names_read(subgraph, folded)
    return names
