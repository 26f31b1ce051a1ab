"""What an ONNX file's graph may ask of onnxruntime, read from its protobuf bytes (no onnx package: the runtime
has none) before a session is made: no loop (`Loop`, `Scan`: a trip count of 10**12 ran for ever), no functions of
its own (which could hold anything), no weights in another file (onnxruntime would read a path the file names), and
no constant size past MAX_CONSTANT_ELEMENTS given to an op that allocates what it is told
(`ConstantOfShape([2**28])` took 2 GB as the file loaded). The bytes are read as protobuf reads them (a repeated
message merged, the last scalar kept, each subgraph's names its own), and whatever the check cannot read counts
as unbounded.

Not bounded here, and so still open: what onnxruntime computes from constants as it loads the file (a size made
by arithmetic on constants, a chain of Tiles or Concats, the broadcast of two constants, products of constant
matrices) and sizes the graph computes from the batch (K values a row). Bounding those takes onnxruntime's
load-time constant folding off and a cap on its allocator, which would make int8 files dequantize their weights at
every call: not done yet.
"""

from __future__ import annotations

import struct
from collections import ChainMap
from collections.abc import Iterator
from dataclasses import dataclass, field

from makemore.contract.metadata import ModelFileError

LOOPS = frozenset({"Loop", "Scan", "SequenceMap"})  # ops that run a subgraph as many times as a value says
SIZED = {"ConstantOfShape": (0,), "Expand": (1,), "Tile": (1,), "Range": (0, 1, 2)}  # op -> its size inputs
MAX_CONSTANT_ELEMENTS = 1 << 24  # what a constant size may ask one op for (64 MB of float32)
MAX_DEPTH = 8  # subgraphs within subgraphs (an exported If holds one level)
MAX_NODES = 1 << 20


class GraphError(ModelFileError):
    """A graph the runtime will not load; the message is one line."""


# a graph's constants (name -> their values; None: not read), over those of the graphs around it
Scope = ChainMap[str, list[float] | None]


@dataclass
class Graphs:
    """The nodes (domain, op, size inputs, the constants they see) of a model's graphs."""

    nodes: list[tuple[str, str, list[str], Scope]] = field(default_factory=list)


def check_graph(data: bytes, source: str) -> None:
    """GraphError (naming `source`) when the model's graphs hold a loop, a function of their own, weights in another
    file, an allocating op with a constant size past MAX_CONSTANT_ELEMENTS, or bytes that are not the protobuf they
    should be."""
    graphs = read_model(bytes(data), source)
    for domain, op, inputs, constants in graphs.nodes:
        if op in LOOPS and domain in ("", "ai.onnx"):
            raise GraphError(f"{source}: its graph runs a {op}, which no makemore model does")
        if op in SIZED and len(inputs) > max(SIZED[op]) and not bounded(op, inputs, constants):
            raise GraphError(f"{source}: its graph asks a {op} for more than {MAX_CONSTANT_ELEMENTS:,} values")


def bounded(op: str, inputs: list[str], constants: Scope) -> bool:
    """Whether the constant size inputs of `op` ask for at most MAX_CONSTANT_ELEMENTS. A size input that is a
    constant whose values were not read (too many, sparse, an unread attribute) is not bounded; one that is not a
    constant at all is computed by the graph (see the module's docstring for what that leaves open)."""
    sizes = [inputs[index] for index in SIZED[op]]
    if any(name in constants and constants[name] is None for name in sizes):
        return False
    if op == "Range":
        start, limit, delta = (constants.get(name) for name in sizes)
        if not (start and limit and delta) or delta[0] == 0:
            return True  # computed, or empty
        return (limit[0] - start[0]) / delta[0] <= MAX_CONSTANT_ELEMENTS
    size = constants.get(sizes[0])
    if size is None:
        return True
    product = 1.0
    for value in size:
        product *= max(float(value), 0.0)
    return product <= MAX_CONSTANT_ELEMENTS


# ---- the protobuf wire format: ModelProto -> GraphProto -> NodeProto -> AttributeProto -> GraphProto ...


def read_model(data: bytes, source: str) -> Graphs:
    graphs, scope = Graphs(), Scope()
    for number, start, end in fields(data, 0, len(data), source):
        if number == 25:  # ModelProto.functions
            raise GraphError(f"{source}: it defines functions of its own, which no makemore model does")
        if number == 7:  # ModelProto.graph: a second one is merged into the first (protobuf's rule): one scope
            read_graph(data, start, end, graphs, scope, 0, source)
    return graphs


def read_graph(data: bytes, start: int, end: int, graphs: Graphs, scope: Scope, depth: int, source: str) -> None:
    """Read a graph's nodes and constants into `scope` (a subgraph's: a child of the graph around it, so its names
    shadow the outer ones and never another branch's)."""
    if depth > MAX_DEPTH:
        raise GraphError(f"{source}: its graphs nest more than {MAX_DEPTH} deep")
    for number, a, b in fields(data, start, end, source):
        if number == 1:  # GraphProto.node
            read_node(data, a, b, graphs, scope, depth, source)
        elif number == 5:  # GraphProto.initializer (TensorProto)
            name, values = read_tensor(data, a, b, source)
            scope[name] = values
        elif number == 15:  # GraphProto.sparse_initializer (SparseTensorProto: its values' name): never read
            for field_number, c, d in fields(data, a, b, source):
                if field_number == 1:
                    scope[read_tensor(data, c, d, source)[0]] = None


def read_node(data: bytes, start: int, end: int, graphs: Graphs, scope: Scope, depth: int, source: str) -> None:
    if len(graphs.nodes) >= MAX_NODES:
        raise GraphError(f"{source}: its graphs hold more than {MAX_NODES:,} nodes")
    domain, op = "", ""
    inputs: list[tuple[int, int]] = []  # byte ranges of the first three: decoded only for the nodes the check reads
    outputs: list[tuple[int, int]] = []
    attributes: dict[str, list[float] | None] = {}
    for number, a, b in fields(data, start, end, source):
        if number == 1 and len(inputs) < 3:
            inputs.append((a, b))
        elif number == 2 and not outputs:
            outputs.append((a, b))
        elif number == 4:
            op = text(data, a, b, source)
        elif number == 7:
            domain = text(data, a, b, source)
        elif number == 5:  # NodeProto.attribute
            name, value = read_attribute(data, a, b, graphs, scope, depth, source)
            attributes[name] = value
    read = op in SIZED or op in LOOPS
    graphs.nodes.append((domain, op, [text(data, a, b, source) for a, b in inputs] if read else [], scope))
    if op == "Constant" and outputs:  # its one attribute, read by its name (value, value_int(s), value_float(s))
        values = [attributes[key] for key in CONSTANT_VALUES if key in attributes]
        scope[text(data, *outputs[0], source)] = values[0] if len(values) == 1 and len(attributes) == 1 else None


CONSTANT_VALUES = ("value", "value_int", "value_ints", "value_float", "value_floats")


def read_attribute(
    data: bytes, start: int, end: int, graphs: Graphs, scope: Scope, depth: int, source: str
) -> tuple[str, list[float] | None]:
    """An attribute's name and, by its declared type (as onnxruntime reads it), its values when they are a few
    numbers (a float, an int, a small tensor, floats, ints; None otherwise); its subgraphs are read into `graphs`."""
    name, kind, g_scope = "", 0, scope.new_child()
    by_field: dict[int, list[float] | None] = {}
    for number, a, b in fields(data, start, end, source):
        if number == 1:
            name = text(data, a, b, source)
        elif number == 20 and b < 0:
            kind = a
        elif number == 6:  # AttributeProto.g: a second one is merged into the first
            read_graph(data, a, b, graphs, g_scope, depth + 1, source)
        elif number == 11:  # AttributeProto.graphs: one scope each
            read_graph(data, a, b, graphs, scope.new_child(), depth + 1, source)
        elif number == 5:  # .t: a second one would be merged into the first: not read
            by_field[5] = read_tensor(data, a, b, source)[1] if 5 not in by_field else None
        elif number in (3, 8):  # .i, .ints (packed or not)
            values = by_field.setdefault(number, [])
            if values is not None:
                values.extend(signed(v) for v in (varints(data, a, b, source) if b >= 0 else [a]))
        elif number in (2, 7) and b >= 0:  # .f, .floats
            values = by_field.setdefault(number, [])
            count = min((b - a) // 4, MAX_VALUES + 1)
            if values is not None:
                values.extend(struct.unpack(f"<{count}f", data[a : a + 4 * count]))
    field_of = {1: 2, 2: 3, 4: 5, 6: 7, 7: 8}  # AttributeType (FLOAT, INT, TENSOR, FLOATS, INTS) -> its field
    values = by_field.get(field_of.get(kind, 0))
    if kind in (1, 2) and values is not None:
        values = values[-1:]  # one number: the last of its field, protobuf's rule
    return name, values if values is not None and len(values) <= MAX_VALUES else None


MAX_VALUES = 64  # values of one constant the check reads: more, and the constant counts as unread
# TensorProto data types with their values' struct format: FLOAT, INT32, INT64, DOUBLE
FORMATS = {1: "f", 6: "i", 7: "q", 11: "d"}


def read_tensor(data: bytes, start: int, end: int, source: str) -> tuple[str, list[float] | None]:
    """A TensorProto's name and, for a number tensor (float, double, int32, int64) of at most MAX_VALUES values,
    its values (None otherwise). Weights in another file are refused: makemore files hold theirs."""
    name, data_type, raw, repeated, unread = "", 0, b"", b"", False
    packed: list[float] = []
    for number, a, b in fields(data, start, end, source):
        if number == 8:
            name = text(data, a, b, source)
        elif number == 2 and b < 0:
            data_type = a
        elif number == 9:  # raw_data: one field, the last one counts (protobuf's rule)
            raw = data[a:b] if b - a <= 8 * MAX_VALUES else b""
            unread = b - a > 8 * MAX_VALUES
        elif number in (4, 10):  # float_data, double_data: repeated, little-endian (packed or one at a time)
            unread = unread or len(repeated) + b - a > 8 * MAX_VALUES
            repeated = repeated if unread else repeated + data[a:b]
        elif number in (5, 7):  # int32_data, int64_data: repeated varints (packed or one at a time)
            more = varints(data, a, b, source) if b >= 0 else [a]
            packed.extend(more[: MAX_VALUES + 1 - len(packed)])
        elif number == 13 or (number == 14 and b < 0 and a == 1):  # external_data, data_location EXTERNAL
            raise GraphError(f"{source}: its weights are in another file, which makemore files never are")
    if data_type not in FORMATS or unread or len(packed) > MAX_VALUES:
        return name, None
    stored = raw or repeated
    if stored:
        width = struct.calcsize(FORMATS[data_type])
        count = len(stored) // width
        if count > MAX_VALUES:
            return name, None
        return name, [float(v) for v in struct.unpack(f"<{count}{FORMATS[data_type]}", stored[: count * width])]
    if data_type == 6:  # an int32's varint: protobuf keeps its low 32 bits
        return name, [float(((int(v) & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000) for v in packed]
    return name, [signed(v) for v in packed]


def signed(value: float) -> float:
    """A varint as the int64 it encodes (negative numbers take ten bytes, two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def text(data: bytes, start: int, end: int, source: str) -> str:
    try:
        return data[start:end].decode("utf-8")
    except UnicodeDecodeError:
        raise GraphError(f"{source} is not a valid ONNX model (a name that is not UTF-8)") from None


def varints(data: bytes, start: int, end: int, source: str) -> list[float]:
    """The packed varints of data[start:end], at most MAX_VALUES + 1 of them (more are never read)."""
    values: list[float] = []
    position = start
    while position < end and len(values) <= MAX_VALUES:
        value, position = varint(data, position, end, source)
        values.append(float(value))
    return values


def varint(data: bytes, position: int, end: int, source: str) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if position >= end or shift > 63:
            raise GraphError(f"{source} is not a valid ONNX model (a truncated number)")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7


def fields(data: bytes, start: int, end: int, source: str) -> Iterator[tuple[int, int, int]]:
    """(field number, a, b) of each field of a message in data[start:end]: a length-delimited or fixed-width
    field's bytes as data[a:b]; a varint's value as a, with b = -1."""
    position = start
    while position < end:
        key = data[position]  # one byte (fields 1 to 15) but for the rarer longer keys
        if key < 0x80:
            position += 1
        else:
            key, position = varint(data, position, end, source)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, position = varint(data, position, end, source)
            yield number, value, -1
        elif wire == 2:
            length = data[position] if position < end else 0x80
            if length < 0x80:
                position += 1
            else:
                length, position = varint(data, position, end, source)
            if position + length > end:
                raise GraphError(f"{source} is not a valid ONNX model (a field runs past its message)")
            yield number, position, position + length
            position += length
        elif wire in (1, 5):  # fixed64, fixed32: their bytes (a float's or a double's)
            width = 8 if wire == 1 else 4
            if position + width > end:
                raise GraphError(f"{source} is not a valid ONNX model (a field runs past its message)")
            yield number, position, position + width
            position += width
        else:
            raise GraphError(f"{source} is not a valid ONNX model (wire type {wire})")
    if position != end:
        raise GraphError(f"{source} is not a valid ONNX model (a field runs past its message)")
