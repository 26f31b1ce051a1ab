"""What an ONNX file's graph may ask of onnxruntime, read from its protobuf bytes (no onnx package: the runtime
has none) before a session is made: no loop (`Loop`, `Scan`: a trip count of 10**12 ran for ever), no functions of
its own (which could hold anything), and no constant size past MAX_CONSTANT_ELEMENTS given to an op that
allocates what it is told (`ConstantOfShape([2**28])` took 2 GB as the file loaded). A size the graph computes
from its inputs is not bounded here: the load probe runs it on one row.
"""

from __future__ import annotations

import struct
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


@dataclass
class Graphs:
    """The nodes (domain, op, inputs) of a model's graphs, and its constants (initializers and Constant nodes)
    with integer values, by name."""

    nodes: list[tuple[str, str, list[str]]] = field(default_factory=list)
    constants: dict[str, list[float]] = field(default_factory=dict)


def check_graph(data: bytes, source: str) -> None:
    """GraphError (naming `source`) when the model's graphs hold a loop, a function of their own, or an
    allocating op with a constant size past MAX_CONSTANT_ELEMENTS, or bytes that are not the protobuf they should
    be."""
    graphs = read_model(bytes(data), source)
    for domain, op, inputs in graphs.nodes:
        if domain not in ("", "ai.onnx"):
            continue
        if op in LOOPS:
            raise GraphError(f"{source}: its graph runs a {op}, which no makemore model does")
        if op in SIZED and len(inputs) > max(SIZED[op]) and not bounded(op, inputs, graphs.constants):
            raise GraphError(f"{source}: its graph asks a {op} for more than {MAX_CONSTANT_ELEMENTS:,} values")


def bounded(op: str, inputs: list[str], constants: dict[str, list[float]]) -> bool:
    """Whether the constant size inputs of `op` (those that are constants) ask for at most MAX_CONSTANT_ELEMENTS."""
    if op == "Range":
        start, limit, delta = (constants.get(name) for name in (inputs + ["", "", ""])[:3])
        if not (start and limit and delta) or delta[0] == 0:
            return True  # computed (the probe runs it), or empty
        return (limit[0] - start[0]) / delta[0] <= MAX_CONSTANT_ELEMENTS
    size = constants.get(inputs[SIZED[op][0]])
    if size is None:
        return True
    product = 1.0
    for value in size:
        product *= max(float(value), 0.0)
    return product <= MAX_CONSTANT_ELEMENTS


# ---- the protobuf wire format: ModelProto -> GraphProto -> NodeProto -> AttributeProto -> GraphProto ...


def read_model(data: bytes, source: str) -> Graphs:
    graphs = Graphs()
    for number, start, end in fields(data, 0, len(data), source):
        if number == 25:  # ModelProto.functions
            raise GraphError(f"{source}: it defines functions of its own, which no makemore model does")
        if number == 7:  # ModelProto.graph
            read_graph(data, start, end, graphs, 0, source)
    return graphs


def read_graph(data: bytes, start: int, end: int, graphs: Graphs, depth: int, source: str) -> None:
    if depth > MAX_DEPTH:
        raise GraphError(f"{source}: its graphs nest more than {MAX_DEPTH} deep")
    for number, a, b in fields(data, start, end, source):
        if number == 1:  # GraphProto.node
            read_node(data, a, b, graphs, depth, source)
        elif number == 5:  # GraphProto.initializer (TensorProto)
            name, values = read_tensor(data, a, b, source)
            if values is not None:
                graphs.constants[name] = values


def read_node(data: bytes, start: int, end: int, graphs: Graphs, depth: int, source: str) -> None:
    if len(graphs.nodes) >= MAX_NODES:
        raise GraphError(f"{source}: its graphs hold more than {MAX_NODES:,} nodes")
    domain, op = "", ""
    inputs: list[tuple[int, int]] = []  # byte ranges: decoded only for the nodes the check reads
    outputs: list[tuple[int, int]] = []
    value: list[float] | None = None
    for number, a, b in fields(data, start, end, source):
        if number == 1:
            inputs.append((a, b))
        elif number == 2:
            outputs.append((a, b))
        elif number == 4:
            op = text(data, a, b, source)
        elif number == 7:
            domain = text(data, a, b, source)
        elif number == 5:  # NodeProto.attribute
            value = read_attribute(data, a, b, graphs, depth, source) or value
    read = op in SIZED or op in LOOPS
    graphs.nodes.append((domain, op, [text(data, a, b, source) for a, b in inputs] if read else []))
    if op == "Constant" and value is not None and outputs:
        graphs.constants[text(data, *outputs[0], source)] = value


def read_attribute(data: bytes, start: int, end: int, graphs: Graphs, depth: int, source: str) -> list[float] | None:
    """Read an attribute's subgraphs into `graphs`; its tensor's (or ints') values, if integers."""
    value: list[float] | None = None
    ints: list[float] = []
    for number, a, b in fields(data, start, end, source):
        if number in (6, 11):  # AttributeProto.g, .graphs
            read_graph(data, a, b, graphs, depth + 1, source)
        elif number == 5:  # AttributeProto.t
            value = read_tensor(data, a, b, source)[1]
        elif number == 8 and len(ints) <= 64:  # AttributeProto.ints (packed or not)
            ints.extend(signed(v) for v in (varints(data, a, b, source) if b >= 0 else [a]))
    return value if value is not None else (ints or None)


# TensorProto data types with their values' struct format: FLOAT, INT32, INT64, DOUBLE
FORMATS = {1: "f", 6: "i", 7: "q", 11: "d"}


def read_tensor(data: bytes, start: int, end: int, source: str) -> tuple[str, list[float] | None]:
    """A TensorProto's name and, for a number tensor (float, double, int32, int64) of at most 64 values, its
    values (None otherwise)."""
    name, data_type, raw = "", 0, b""
    packed: list[float] = []
    for number, a, b in fields(data, start, end, source):
        if number == 8:
            name = text(data, a, b, source)
        elif number == 2 and b < 0:
            data_type = a
        elif number in (4, 9, 10):  # float_data, raw_data, double_data: little-endian bytes (packed or one)
            raw = raw + data[a:b] if b >= 0 and len(raw) + b - a <= 512 else raw
        elif number in (5, 7) and len(packed) <= 64 and b - a <= 640:  # int32_data, int64_data (packed or not)
            packed.extend(varints(data, a, b, source) if b >= 0 else [a])
    if data_type not in FORMATS:
        return name, None
    if raw:
        width = struct.calcsize(FORMATS[data_type])
        count = min(len(raw) // width, 64)
        return name, [float(v) for v in struct.unpack(f"<{count}{FORMATS[data_type]}", raw[: count * width])]
    return name, [signed(v) for v in packed] if len(packed) <= 64 else None


def signed(value: float) -> float:
    """A varint as the int64 it encodes (negative numbers take ten bytes, two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def text(data: bytes, start: int, end: int, source: str) -> str:
    try:
        return data[start:end].decode("utf-8")
    except UnicodeDecodeError:
        raise GraphError(f"{source} is not a valid ONNX model (a name that is not UTF-8)") from None


def varints(data: bytes, start: int, end: int, source: str) -> list[float]:
    values = []
    position = start
    while position < end:
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
