"""An ONNX file's protobuf read and written without the onnx package (the runtime has none): the tree of its graphs,
nodes and constants as onnxruntime reads them (a repeated message merged, the last scalar kept, each subgraph's
names its own), with the byte spans a rewrite needs (`splice`). What the graph may ask is checked in
`contract/constants.py`."""

from __future__ import annotations

import bisect
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from makemore.contract.metadata import ModelFileError

MAX_DEPTH = 8  # subgraphs within subgraphs (an exported If holds one level)
MAX_NODES = 1 << 20
MAX_VALUES = 64  # values of one constant that are read: more, and only its shape is known
MAX_RANK = 64  # dimensions of a tensor (numpy's limit)

# TensorProto data types: numpy's little-endian dtype of each fixed-width one (strings, complex and the 8-bit
# floats have none: their values are never read)
DTYPES = {
    1: "<f4", 2: "u1", 3: "i1", 4: "<u2", 5: "<i2", 6: "<i4", 7: "<i8", 9: "?", 10: "<f2", 11: "<f8", 12: "<u4",
    13: "<u8",
}  # fmt: skip
ONNX_TYPES = {np.dtype(dtype): number for number, dtype in DTYPES.items()}


class GraphError(ModelFileError):
    """A graph the runtime will not load; the message is one line."""


@dataclass
class Tensor:
    """A constant: its data type, its dims (None: not read) and its values when they are at most MAX_VALUES
    numbers; `span` is an initializer's TensorProto bytes."""

    dtype: int
    shape: tuple[int, ...] | None
    values: np.ndarray | None = None
    span: tuple[int, int] | None = None

    @property
    def size(self) -> int | None:
        return None if self.shape is None else math.prod(self.shape)


# an attribute: its ints or floats, a tensor, or None (a string, a graph, or what was not read)
Attribute = list[int] | list[float] | Tensor | None


@dataclass
class Node:
    domain: str
    op: str
    inputs: list[str]
    outputs: list[str]
    attributes: dict[str, Attribute]
    span: tuple[int, int]  # the NodeProto's bytes
    graphs: list[Graph] = field(default_factory=list)  # its subgraphs (an If's branches)
    kinds: dict[str, int] = field(default_factory=dict)  # each attribute's declared AttributeType


@dataclass
class Graph:
    nodes: list[Node] = field(default_factory=list)
    initializers: dict[str, Tensor] = field(default_factory=dict)
    inputs: set[str] = field(default_factory=set)  # fed by the caller: an initializer of that name is not constant
    outputs: set[str] = field(default_factory=set)


@dataclass
class Model:
    graph: Graph
    opsets: dict[str, int]  # domain -> version
    header: list[tuple[int, int]]  # the spans of its opset_import fields (for a model of some of its nodes)
    ir_version: int = 0
    node_count: int = 0


# ---- reading: ModelProto -> GraphProto -> NodeProto -> AttributeProto -> GraphProto ...


def read_model(data: bytes, source: str) -> Model:
    model = Model(Graph(), {}, [])
    for number, start, end, _ in fields(data, 0, len(data), source):
        if number == 25:  # ModelProto.functions
            raise GraphError(f"{source}: it defines functions of its own, which no makemore model does")
        if number == 1 and end < 0:  # ModelProto.ir_version
            model.ir_version = start
        elif number == 7:  # ModelProto.graph: a second one is merged into the first (protobuf's rule)
            read_graph(data, start, end, model.graph, model, 0, source)
        elif number == 8:  # ModelProto.opset_import
            domain, version = "", 0
            for field_number, a, b, _ in fields(data, start, end, source):
                if field_number == 1:
                    domain = text(data, a, b, source)
                elif field_number == 2 and b < 0:
                    version = a
            model.opsets["" if domain == "ai.onnx" else domain] = version
            model.header.append((start, end))
    return model


def read_graph(data: bytes, start: int, end: int, graph: Graph, model: Model, depth: int, source: str) -> None:
    if depth > MAX_DEPTH:
        raise GraphError(f"{source}: its graphs nest more than {MAX_DEPTH} deep")
    for number, a, b, _ in fields(data, start, end, source):
        if number == 1:  # GraphProto.node
            graph.nodes.append(read_node(data, a, b, model, depth, source))
        elif number == 5:  # GraphProto.initializer (TensorProto)
            name, tensor = read_tensor(data, a, b, source)
            graph.initializers[name] = Tensor(tensor.dtype, tensor.shape, tensor.values, (a, b))
        elif number == 15:  # GraphProto.sparse_initializer: onnxruntime makes it dense as it loads the file
            raise GraphError(f"{source}: its graph holds a sparse tensor, which no makemore model does")
        elif number in (11, 12):  # GraphProto.input, .output (ValueInfoProto: its name)
            names = graph.inputs if number == 11 else graph.outputs
            names.update(
                text(data, c, d, source) for field_number, c, d, _ in fields(data, a, b, source) if field_number == 1
            )


def read_node(data: bytes, start: int, end: int, model: Model, depth: int, source: str) -> Node:
    model.node_count += 1
    if model.node_count > MAX_NODES:
        raise GraphError(f"{source}: its graphs hold more than {MAX_NODES:,} nodes")
    node = Node("", "", [], [], {}, (start, end))
    for number, a, b, _ in fields(data, start, end, source):
        if number == 1:
            node.inputs.append(text(data, a, b, source))
        elif number == 2:
            node.outputs.append(text(data, a, b, source))
        elif number == 4:
            node.op = text(data, a, b, source)
        elif number == 7:
            node.domain = text(data, a, b, source)
        elif number == 5:  # NodeProto.attribute
            name, kind, value = read_attribute(data, a, b, node, model, depth, source)
            if name in node.attributes:  # onnxruntime refuses it ("appeared multiple times")
                raise GraphError(f"{source} is not a valid ONNX model (a node's attribute {name!r} given twice)")
            node.attributes[name], node.kinds[name] = value, kind
    if node.domain == "ai.onnx":
        node.domain = ""
    return node


# AttributeProto.AttributeType -> the field that holds its value (FLOAT f, INT i, STRING s, TENSOR t, GRAPH g,
# FLOATS, INTS, STRINGS, TENSORS, GRAPHS, SPARSE_TENSOR(S), TYPE_PROTO(S))
VALUE_FIELD = {1: 2, 2: 3, 3: 4, 4: 5, 5: 6, 6: 7, 7: 8, 8: 9, 9: 10, 10: 11, 11: 22, 12: 23, 13: 14, 14: 15}


def read_attribute(
    data: bytes, start: int, end: int, node: Node, model: Model, depth: int, source: str
) -> tuple[str, int, Attribute]:
    """An attribute's name, its declared type and, by that type (as onnxruntime reads it), its value: an int or a
    float (as a list of one), ints, floats, or a tensor; its subgraphs join `node.graphs`."""
    name, kind, merged = "", 0, None
    by_field: dict[int, list[float]] = {}
    tensor: Tensor | None = None
    given: set[int] = set()  # the value fields it holds
    for number, a, b, _ in fields(data, start, end, source):
        if number in VALUE_FIELD.values():
            given.add(number)
        if number == 1:
            name = text(data, a, b, source)
        elif number == 20 and b < 0:
            kind = a
        elif number == 6:  # AttributeProto.g: a second one is merged into the first
            if merged is None:
                merged = Graph()
                node.graphs.append(merged)
            read_graph(data, a, b, merged, model, depth + 1, source)
        elif number == 11:  # AttributeProto.graphs: one graph each
            node.graphs.append(Graph())
            read_graph(data, a, b, node.graphs[-1], model, depth + 1, source)
        elif number in (22, 23):  # .sparse_tensor(s): onnxruntime makes them dense as it loads the file
            raise GraphError(f"{source}: its graph holds a sparse tensor, which no makemore model does")
        elif number == 5 and 5 in by_field:  # a second .t would be merged into the first: not read
            tensor = Tensor(0, None)
        elif number == 5:  # .t
            tensor = read_tensor(data, a, b, source)[1]
            tensor.span = (a, b)
            by_field[5] = []
        elif number in (3, 8):  # .i, .ints (packed or not)
            by_field.setdefault(number, []).extend(signed(v) for v in (varints(data, a, b, source) if b >= 0 else [a]))
        elif number in (2, 7) and b >= 0:  # .f, .floats
            count = min((b - a) // 4, MAX_VALUES + 1)
            by_field.setdefault(number, []).extend(struct.unpack(f"<{count}f", data[a : a + 4 * count]))
    if kind and given - {VALUE_FIELD.get(kind)}:  # onnxruntime refuses it ("type field and data field mismatch")
        raise GraphError(f"{source} is not a valid ONNX model (a node's attribute {name!r:.40} holds a value of "
                         "another type than it declares)")  # fmt: skip
    if kind == 4:  # TENSOR
        return name, kind, tensor
    if kind not in (1, 2, 6, 7):  # FLOAT, INT, FLOATS, INTS
        return name, kind, None
    values = by_field.get(VALUE_FIELD[kind], [])  # none given: onnxruntime reads 0, or an empty list
    if kind in (1, 2):
        values = values[-1:] or [0]  # one number: the last of its field, protobuf's rule
    return name, kind, values if len(values) <= MAX_VALUES else None


# TensorProto data type -> the field that holds its values when it has no raw_data: float_data, double_data,
# int64_data, uint64_data, or int32_data (every narrower integer, bool and float16's bits)
TYPED_FIELD = {1: 4, 11: 10, 7: 7, 12: 11, 13: 11, **dict.fromkeys((2, 3, 4, 5, 6, 9, 10), 5)}


@dataclass
class TensorFields:
    """Where a TensorProto keeps what it holds: its type, dims, name, its last raw_data, its typed data fields."""

    data_type: int = 0
    dims: list[int] = field(default_factory=list)
    name: str = ""
    raw: tuple[int, int] | None = None
    typed: dict[int, list[tuple[int, int]]] = field(default_factory=dict)


def tensor_fields(data: bytes, start: int, end: int, source: str) -> TensorFields:
    found = TensorFields()
    for number, a, b, _ in fields(data, start, end, source):
        if number == 1:  # dims (packed or not)
            found.dims.extend(signed(v) for v in (varints(data, a, b, source, limit=None) if b >= 0 else [a]))
        elif number == 8:
            found.name = text(data, a, b, source)
        elif number == 2 and b < 0:
            found.data_type = a
        elif number == 9:  # raw_data: one field, the last one counts (protobuf's rule)
            found.raw = (a, b)
        elif number in (4, 5, 7, 10, 11):  # repeated: packed, or one value at a time
            found.typed.setdefault(number, []).append((a, b))
        elif number == 13 or (number == 14 and b < 0 and a == 1):  # external_data, data_location EXTERNAL
            raise GraphError(f"{source}: its weights are in another file, which makemore files never are")
    if any(dim < 0 for dim in found.dims):
        raise GraphError(f"{source} is not a valid ONNX model (a tensor with a negative dimension)")
    if len(found.dims) > MAX_RANK:
        raise GraphError(
            f"{source}: it holds a tensor of more than {MAX_RANK} dimensions, which no makemore model does"
        )
    return found


def read_tensor(data: bytes, start: int, end: int, source: str) -> tuple[str, Tensor]:
    """A TensorProto's name and its type, dims and (at most MAX_VALUES) values. Weights in another file are refused:
    makemore files hold theirs."""
    found = tensor_fields(data, start, end, source)
    tensor = Tensor(found.data_type, tuple(found.dims))
    if (tensor.size or 0) <= MAX_VALUES:
        tensor.values = tensor_values(data, found, source)
    return found.name, tensor


def tensor_array(data: bytes, span: tuple[int, int], source: str) -> np.ndarray | None:
    """All the values of the TensorProto data[span]."""
    return tensor_values(data, tensor_fields(data, span[0], span[1], source), source)


def tensor_values(data: bytes, found: TensorFields, source: str) -> np.ndarray | None:
    """A tensor's values from its raw_data, or else from the one field its type keeps them in; None for a type
    numpy does not hold as ONNX does (strings, complex, the 8-bit floats) or data that is not exactly its size
    (onnxruntime refuses such a tensor)."""
    if found.data_type not in DTYPES:
        return None
    dtype = np.dtype(DTYPES[found.data_type])
    count = math.prod(found.dims)
    if found.raw is not None:
        a, b = found.raw
        values = np.frombuffer(data, dtype, count, a) if b - a == count * dtype.itemsize else None
    else:
        number = TYPED_FIELD[found.data_type]
        spans = found.typed.get(number, [])
        if number in (4, 10):  # little-endian floats or doubles, fixed width
            width = 4 if number == 4 else 8
            if sum(b - a for a, b in spans) != count * width:
                return None
            parts = [np.frombuffer(data, f"<f{width}", (b - a) // width, a) for a, b in spans]
            values = np.concatenate(parts) if parts else np.zeros(0, dtype)
        else:
            ints: list[int] = []
            for a, b in spans:
                ints.extend(varints(data, a, b, source, limit=count + 1 - len(ints)) if b >= 0 else [a])
                if len(ints) > count:
                    return None
            if len(ints) != count:
                return None
            if number == 5:  # int32_data: protobuf keeps the low 32 bits of each; a float16 keeps its bits there
                low = np.array([v & 0xFFFFFFFF for v in ints], np.uint32).view(np.int32)
                values = low.astype(np.uint16).view(np.float16) if found.data_type == 10 else low.astype(dtype)
            else:
                values = np.array(
                    [signed(v) for v in ints] if number == 7 else ints, np.int64 if number == 7 else np.uint64
                )
        values = values.astype(dtype, copy=False)
    return None if values is None else values.reshape(found.dims)


def signed(value: int) -> int:
    """A varint as the int64 it encodes (negative numbers take ten bytes, two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def text(data: bytes, start: int, end: int, source: str) -> str:
    try:
        return data[start:end].decode("utf-8")
    except UnicodeDecodeError:
        raise GraphError(f"{source} is not a valid ONNX model (a name that is not UTF-8)") from None


def varints(data: bytes, start: int, end: int, source: str, limit: int | None = MAX_VALUES + 1) -> list[int]:
    """The packed varints of data[start:end] (at most `limit` of them: more are never read)."""
    values: list[int] = []
    position = start
    while position < end and (limit is None or len(values) < limit):
        value, position = varint(data, position, end, source)
        values.append(value)
    return values


def varint(data: bytes | memoryview, position: int, end: int, source: str) -> tuple[int, int]:
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


def fields(data: bytes | memoryview, start: int, end: int, source: str) -> Iterator[tuple[int, int, int, int]]:
    """(field number, a, b, where the field ends) of each field of a message in data[start:end]: a length-delimited
    or fixed-width field's bytes as data[a:b]; a varint's value as a, with b = -1."""
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
            yield number, value, -1, position
        elif wire == 2:
            length = data[position] if position < end else 0x80
            if length < 0x80:
                position += 1
            else:
                length, position = varint(data, position, end, source)
            if position + length > end:
                raise GraphError(f"{source} is not a valid ONNX model (a field runs past its message)")
            yield number, position, position + length, position + length
            position += length
        elif wire in (1, 5):  # fixed64, fixed32: their bytes (a float's or a double's)
            width = 8 if wire == 1 else 4
            if position + width > end:
                raise GraphError(f"{source} is not a valid ONNX model (a field runs past its message)")
            yield number, position, position + width, position + width
            position += width
        else:
            raise GraphError(f"{source} is not a valid ONNX model (wire type {wire})")
    if position != end:
        raise GraphError(f"{source} is not a valid ONNX model (a field runs past its message)")


# ---- writing


def encode_varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # a negative int64 as protobuf writes it: ten bytes, two's complement
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value >> 7 else 0))
        value >>= 7
        if not value:
            return bytes(out)


def message_field(number: int, payload: bytes) -> bytes:
    """One length-delimited field: its key, its length and `payload`."""
    return b"".join(prefixed(number, [payload]))


def varint_field(number: int, value: int) -> bytes:
    return encode_varint(number << 3) + encode_varint(value)


# A message written as its parts (bytes, or views of the file's bytes and of arrays), joined once at the end: a
# weight's bytes are copied once, however deep the message that holds it.
Parts = list[bytes | memoryview]


def prefixed(number: int, parts: Parts) -> Parts:
    """The parts of one length-delimited field holding `parts`."""
    return [encode_varint(number << 3 | 2) + encode_varint(sum(len(part) for part in parts)), *parts]


def tensor_parts(name: str, array: np.ndarray) -> Parts:
    """A TensorProto of `array` (its dims, type and raw little-endian data) named `name`."""
    dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
    head = b"".join(varint_field(1, dim) for dim in array.shape) + varint_field(2, ONNX_TYPES[dtype])
    flat = np.ascontiguousarray(array, dtype).reshape(-1)
    raw = flat.data.cast("B") if flat.size else b""
    return [head + message_field(8, name.encode()), *prefixed(9, [raw])]


def constant_node_parts(output: str, array: np.ndarray) -> Parts:
    """A NodeProto `Constant` giving `array` as `output`."""
    value = [message_field(1, b"value") + varint_field(20, 4), *prefixed(5, tensor_parts("", array))]
    return [message_field(2, output.encode()) + message_field(4, b"Constant"), *prefixed(5, value)]


def renamed(data: bytes, span: tuple[int, int], names: dict[int, list[str]], source: str) -> bytes:
    """The message data[span] with its fields of each number in `names` replaced by those names, in order (a node's
    inputs and outputs, a tensor's name); every other field kept as it is."""
    out = bytearray()
    position = span[0]
    for number, _, _, end in fields(data, span[0], span[1], source):
        if number not in names:
            out += data[position:end]
        position = end
    for number, values in names.items():
        out += b"".join(message_field(number, value.encode()) for value in values)
    return bytes(out)


def splice(data: bytes, start: int, end: int, edits: dict[tuple[int, int], Parts], source: str) -> bytes:
    """The message data[start:end] with each field whose bytes are an edit's span replaced by the edit (whole
    fields, key and length included: several, or none), at any depth: the messages around an edit are written
    again with their new lengths, every other field is copied."""
    return b"".join(splice_parts(memoryview(data), start, end, sorted(edits.items()), source))


def splice_parts(
    data: memoryview, start: int, end: int, edits: list[tuple[tuple[int, int], Parts]], source: str
) -> Parts:
    """splice as parts, the edits sorted by their spans (which never overlap but for one within another's
    message)."""
    if not edits:
        return [data[start:end]]
    starts = [span[0] for span, _ in edits]
    parts: Parts = []
    position = start
    for number, a, b, field_end in fields(data, start, end, source):
        first = bisect.bisect_left(starts, a) if b >= 0 else len(starts)
        last = bisect.bisect_right(starts, b - 1) if b >= 0 else first
        inside = [edit for edit in edits[first:last] if edit[0][1] <= b]
        if inside and inside[0][0] == (a, b):
            parts += inside[0][1]
        elif inside:
            parts += prefixed(number, splice_parts(data, a, b, inside, source))
        else:
            parts.append(data[position:field_end])
        position = field_end
    return parts
