"""What a file computes from constants is found ahead (contract/shapes.py), computed once by the runtime
(runtime/folding.py), and gives what onnxruntime's own folding at load gave: the same shapes, values and names."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from makemore.contract.constants import check_graph
from makemore.contract.wire import GraphError
from makemore.runtime import onnx_sampler
from makemore.runtime.folding import folded
from makemore.runtime.onnx_sampler import OnnxSampler
from onnx import TensorProto, helper, numpy_helper

ALL_KINDS = ("bigram", "bigram-nn", "mlp", "wavenet", "transformer", "rnn", "gru", "lstm")


def own_folding_session(model, source: str = "model") -> ort.InferenceSession:
    """A session as the runtime made them before: onnxruntime folding the file's constants as it loads it."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 4
    options.enable_mem_pattern = False
    data = model if isinstance(model, bytes) else Path(model).read_bytes()
    return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])


INT8_KINDS = ("mlp", "transformer", "gru", "lstm")  # a window kind, attention, and two recurrent cells
OPSET7_KINDS = ("wavenet", "gru")  # opset 7 lists a file's initializers as its inputs too (IR 3)


@pytest.fixture(scope="module")
def other_exports(model_files) -> dict[str, Path]:
    """ "<kind> int8" and "<kind> opset 7" -> the quick model's file so exported (once per run, beside the quick
    models: pytest-xdist's workers share them, as they share model_files)."""
    from filelock import FileLock
    from makemore.export.onnx_export import export_checkpoint

    exports = {f"{kind} int8": (kind, {"quantize": "int8"}) for kind in INT8_KINDS}
    exports |= {f"{kind} opset 7": (kind, {"opset": 7}) for kind in OPSET7_KINDS}
    files = {}
    for name, (kind, options) in exports.items():
        path = model_files.folder / f"{name.replace(' ', '-')}.onnx"
        with FileLock(f"{path}.lock"):
            if not path.is_file():
                export_checkpoint(model_files[kind][0], path, **options)
        files[name] = path
    return files


@pytest.mark.parametrize(
    ("kind", "precision"),
    [(kind, "float") for kind in ALL_KINDS]
    + [(kind, "int8") for kind in INT8_KINDS]
    + [(kind, "opset 7") for kind in OPSET7_KINDS],
)
def test_the_runtimes_folding_gives_onnxruntimes_names_and_scores_bit_for_bit(
    model_files, other_exports, kind, precision, monkeypatch
) -> None:
    path = model_files[kind][1] if precision == "float" else other_exports[f"{kind} {precision}"]
    ours = OnnxSampler(path, workers=1)
    monkeypatch.setattr(onnx_sampler, "open_session", own_folding_session)
    theirs = OnnxSampler(path, workers=1)
    names = theirs.sample(300, seed=3)
    assert ours.sample(300, seed=3) == names
    assert ours.nll_totals(names[:60]) == theirs.nll_totals(names[:60])
    data = path.read_bytes()
    plan = check_graph(data, str(path))
    if precision != "float" or kind in ("rnn", "gru", "lstm"):
        assert plan.folds, "the int8 weights and the cells' weights are computed from constants"
    if precision == "int8":  # its int8 weights leave the file: their float values are folded in
        int8 = {t.name for t in onnx.load_from_string(data).graph.initializer if t.data_type == TensorProto.INT8}
        kept = {t.name for t in onnx.load_from_string(folded(data, plan, str(path))).graph.initializer}
        assert int8 and not int8 & kept, int8 & kept


def test_an_initializer_leaves_the_file_when_only_folds_read_it() -> None:
    """Read by a fold alone: dropped (its folded value stays). Read by a node run at every call, listed as an input
    (a caller may feed it), or a graph's output: kept."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])
    fed = helper.make_tensor_value_info("fed", TensorProto.FLOAT, [3])
    nodes = [
        helper.make_node("Neg", ["only"], ["negated"]),  # folded: `only` has no other reader
        helper.make_node("Add", ["x", "negated"], ["a"]),
        helper.make_node("Neg", ["shared"], ["shared_negated"]),  # folded, but `shared` is read below too
        helper.make_node("Add", ["a", "shared"], ["b"]),
        helper.make_node("Add", ["b", "shared_negated"], ["c"]),
        helper.make_node("Neg", ["fed"], ["fed_negated"]),
        helper.make_node("Add", ["c", "fed_negated"], ["y"]),
    ]
    inits = {name: np.arange(3, dtype=np.float32) + i for i, name in enumerate(("only", "shared", "fed", "out"))}
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y", "out")]
    graph = helper.make_graph(nodes, "g", [x, fed], outputs, initializer=[_named(v, k) for k, v in inits.items()])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8).SerializeToString()
    new = folded(data, check_graph(data, "g.onnx"), "g.onnx")
    assert {t.name for t in onnx.load_from_string(new).graph.initializer} == {"shared", "fed", "out"}
    feed = {"x": np.full(3, 10, np.float32)}
    assert [a.tolist() for a in own_folding_session(new).run(None, feed)] == [
        a.tolist() for a in own_folding_session(data).run(None, feed)
    ]


# ---- any chain of the ops the check computes ahead: its shapes are onnxruntime's, its values too


EXTREMES = (-(1 << 63), -(1 << 31), (1 << 31) - 1, (1 << 63) - 1)  # INT_MAX: "to the end", but two ways
OPS = ("Unsqueeze", "Transpose", "Slice", "Gather", "Concat", "Reshape", "Tile", "Expand", "Flatten", "Squeeze",
       "Add", "Div", "Cast", "Shape", "ReduceSum", "MatMul", "Neg")  # fmt: skip


def _chain(draw, opset: int) -> tuple[list, dict, str]:
    """A few nodes from one small constant, each op drawn with its parameters (some of them invalid)."""
    rank = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))  # values whose products round
    inits = {"x0": rng.standard_normal(shape).astype(np.float32)}
    nodes, shapes = [], {"x0": shape}
    current = "x0"
    for step in range(draw(st.integers(1, 4))):
        out, dims = f"x{step + 1}", shapes[current]
        op = draw(st.sampled_from(OPS))
        k = f"k{step}"
        if not dims and op not in ("Add", "Div", "Cast", "Shape", "Reshape", "Expand", "MatMul"):
            op = "Unsqueeze"  # a scalar (a ReduceSum's of every axis)
        if op == "Unsqueeze":
            axes = draw(st.lists(st.integers(-3, 3), min_size=1, max_size=2))
            if opset >= 13:
                inits[k] = np.array(axes, np.int64)
                nodes.append(helper.make_node(op, [current, k], [out]))
            else:  # axes as an attribute before opset 13
                nodes.append(helper.make_node(op, [current], [out], axes=axes))
        elif op == "Transpose":
            perm = draw(st.permutations(range(len(dims))))
            nodes.append(helper.make_node(op, [current], [out], perm=list(perm)))
        elif op == "Slice":
            count = draw(st.integers(1, len(dims)))
            for suffix, values in (
                ("s", st.integers(-6, 6) | st.sampled_from(EXTREMES)),
                ("e", st.integers(-6, 6) | st.sampled_from(EXTREMES)),
                ("a", st.integers(-len(dims), len(dims) - 1)),
                ("p", st.sampled_from([-2, -1, 1, 2, 3])),
            ):  # fmt: skip
                inits[k + suffix] = np.array(draw(st.lists(values, min_size=count, max_size=count)), np.int64)
            nodes.append(helper.make_node(op, [current, k + "s", k + "e", k + "a", k + "p"], [out]))
        elif op == "Gather":
            inits[k] = np.array(draw(st.lists(st.integers(-4, 4), min_size=0, max_size=3)), np.int64)
            nodes.append(helper.make_node(op, [current, k], [out], axis=draw(st.integers(-len(dims), len(dims) - 1))))
        elif op == "Concat":
            nodes.append(
                helper.make_node(op, [current, current], [out], axis=draw(st.integers(-len(dims), len(dims) - 1)))
            )
        elif op == "Reshape":
            inits[k] = np.array(draw(st.sampled_from([[-1], [1, -1], [-1, 2], [0, -1], list(dims)[::-1]])), np.int64)
            nodes.append(helper.make_node(op, [current, k], [out]))
        elif op == "Tile":
            inits[k] = np.array(draw(st.lists(st.integers(0, 3), min_size=len(dims), max_size=len(dims))), np.int64)
            nodes.append(helper.make_node(op, [current, k], [out]))
        elif op == "Expand":
            inits[k] = np.array(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)), np.int64)
            nodes.append(helper.make_node(op, [current, k], [out]))
        elif op == "Neg":  # an op for onnxruntime: the numpy ones after it are fed its result
            nodes.append(helper.make_node(op, [current], [out]))
        elif op == "Flatten":
            nodes.append(helper.make_node(op, [current], [out], axis=draw(st.integers(-len(dims), len(dims)))))
        elif op == "Squeeze":  # every 1-long axis (no axes, or empty ones), or some
            axes = draw(st.lists(st.integers(-len(dims), len(dims) - 1), max_size=2, unique=True))
            if opset >= 13 and draw(st.booleans()):
                inits[k] = np.array(axes, np.int64)
                nodes.append(helper.make_node(op, [current, k], [out]))
            else:
                nodes.append(helper.make_node(op, [current], [out], **({"axes": axes} if axes and opset < 13 else {})))
        elif op in ("Add", "Div", "MatMul"):
            other = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
            inits[k] = rng.standard_normal(other).astype(np.float32)
            nodes.append(helper.make_node(op, [current, k], [out]))
        elif op == "Cast":  # through an integer type (a float to int cast is onnxruntime's, back is numpy's)
            to = draw(st.sampled_from([TensorProto.INT32, TensorProto.INT64, TensorProto.DOUBLE, TensorProto.FLOAT]))
            nodes += [
                helper.make_node(op, [current], [k], to=to),
                helper.make_node(op, [k], [out], to=TensorProto.FLOAT),
            ]
        elif op == "Shape":
            nodes += [helper.make_node(op, [current], [k]), helper.make_node("Cast", [k], [out], to=TensorProto.FLOAT)]
        elif op == "ReduceSum":
            axes = draw(st.lists(st.integers(-3, 2), min_size=0, max_size=2, unique=True))
            keepdims = draw(st.integers(0, 1))
            if opset >= 13:
                inits[k] = np.array(axes, np.int64)
                nodes.append(helper.make_node(op, [current, k], [out], keepdims=keepdims))
            else:
                nodes.append(
                    helper.make_node(op, [current], [out], keepdims=keepdims, **({"axes": axes} if axes else {}))
                )
        current = out
        shapes[out] = _shape(nodes, inits, out, opset)
        if shapes[out] is None:
            break  # an op onnxruntime refuses here: the file ends with it
    return nodes, inits, current


ATTRIBUTE_NAMES = ("axis", "axes", "perm", "to", "keepdims", "broadcast", "saturate", "allowzero",
                   "noop_with_empty_axes", "start", "foo")  # fmt: skip


def _attribute(draw) -> onnx.AttributeProto:
    """An attribute as a file may hold it: any name, any value, of its declared type or not, its value left out, or
    two value fields."""
    name = draw(st.sampled_from(ATTRIBUTE_NAMES))
    if draw(st.booleans()):
        value = draw(st.sampled_from([0, 1, -1, 2, 7, [0], [1, 0], [0, 1, 2], 1.0, [1.0, 0.0]]))
        return helper.make_attribute(name, value)
    attribute = onnx.AttributeProto(name=name, type=draw(st.sampled_from([1, 2, 6, 7])))  # FLOAT INT FLOATS INTS
    for field in draw(st.lists(st.sampled_from(["i", "f", "ints", "floats"]), max_size=2, unique=True)):
        if field in ("i", "f"):
            setattr(attribute, field, draw(st.sampled_from([0, 1, 2])))
        else:
            getattr(attribute, field).extend(draw(st.sampled_from([[], [0], [1, 0]])))
    return attribute


def _changed(draw, nodes: list, inits: dict, last: str) -> tuple[list, str]:
    """The chain as it was (most often), or with one node changed as a file may change it: an attribute added (see
    _attribute), one taken away, its output renamed to an initializer's name, a node computing its name again, or a
    Constant of an initializer's name."""
    change = draw(st.sampled_from(["none", "none", "none", "add", "drop", "clash", "again", "constant"]))
    if change == "none" or not nodes:
        return nodes, last
    index = draw(st.integers(0, len(nodes) - 1))
    node = onnx.NodeProto()
    node.CopyFrom(nodes[index])
    if change == "add":
        node.attribute.append(_attribute(draw))
    elif change == "drop" and node.attribute:
        del node.attribute[draw(st.integers(0, len(node.attribute) - 1))]
    elif change == "again":  # a second node computing the same name
        return [*nodes[: index + 1], helper.make_node("Identity", ["x0"], [node.output[0]]), *nodes[index + 1 :]], last
    elif change == "constant":  # of another shape (one of the same shape is refused where onnxruntime takes it)
        value = numpy_helper.from_array(np.ones((*inits["x0"].shape, 2), np.float32))
        return [helper.make_node("Constant", [], ["x0"], value=value), *nodes], last
    elif change == "clash":
        old = node.output[0]
        node.output[0] = "x0"  # the chain's first constant, an initializer
        later = [onnx.NodeProto() for _ in nodes[index + 1 :]]
        for copy, original in zip(later, nodes[index + 1 :], strict=True):
            copy.CopyFrom(original)
            copy.input[:] = ["x0" if name == old else name for name in copy.input]
        return [*nodes[:index], node, *later], "x0" if last == old else last
    return [*nodes[:index], node, *nodes[index + 1 :]], last


def _model(nodes: list, inits: dict, last: str, opset: int) -> bytes:
    graph = helper.make_graph(
        [*nodes, helper.make_node("Identity", [last], ["y"])],
        "chain",
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(value, key) for key, value in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8).SerializeToString()


def _shape(nodes: list, inits: dict, last: str, opset: int) -> tuple[int, ...] | None:
    """The shape onnxruntime computes for `last`, or None when it refuses the file."""
    try:
        return tuple(own_folding_session(_model(nodes, inits, last, opset)).run(["y"], {})[0].shape)
    except Exception:
        return None


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_chain_of_constant_ops_folds_to_what_onnxruntime_computes(data) -> None:
    """A file of such a chain loads if and only if onnxruntime loads it; then the check's shapes are the ones
    onnxruntime computes (never fewer values: the bound holds) and the folded file gives the same values, bit for
    bit. A file onnxruntime refuses is refused in one line."""
    opset = data.draw(st.sampled_from([11, 13, 17]))
    nodes, inits, last = _chain(data.draw, opset)
    nodes, last = _changed(data.draw, nodes, inits, last)
    model = _model(nodes, inits, last, opset)
    try:
        expected = own_folding_session(model).run(["y"], {})[0]
    except Exception:
        expected = None
    try:
        plan = check_graph(model, "chain.onnx")
        data_folded = folded(model, plan, "chain.onnx")
    except GraphError as err:
        assert "\n" not in str(err) and "was due" not in str(err)  # a shape found ahead that was not onnxruntime's
        assert expected is None or "reads two ways" in str(err), f"refused a file onnxruntime loads: {err}"
        return
    assert expected is not None, "a file onnxruntime refuses was folded"
    options = ort.SessionOptions()
    options.add_session_config_entry("optimization.disable_specified_optimizers", "ConstantFolding")
    got = ort.InferenceSession(data_folded, options, providers=["CPUExecutionProvider"]).run(["y"], {})[0]
    assert got.shape == expected.shape and np.array_equal(got, expected, equal_nan=True)


def _bare(nodes: list, inits: dict, output: str = "y", opset: int = 17) -> bytes:
    graph = helper.make_graph(
        nodes,
        "bare",
        [],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
        initializer=[_named(value, key) for key, value in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8).SerializeToString()


def _named(value: np.ndarray | TensorProto, name: str) -> TensorProto:
    if isinstance(value, TensorProto):
        value.name = name
        return value
    return numpy_helper.from_array(value, name)


def test_folds_for_onnxruntime_run_in_one_session_whatever_their_chain(monkeypatch) -> None:
    """A chain of ops only onnxruntime computes (each needing the one before) is one session, not one a link (a
    chain of 16,000 took 51 s)."""
    from makemore.runtime import folding

    sessions = []
    real = folding.FoldedValues.by_onnxruntime
    monkeypatch.setattr(
        folding.FoldedValues, "by_onnxruntime", lambda self, numbers: sessions.append(numbers) or real(self, numbers)
    )
    nodes = [helper.make_node("Neg", [f"x{i}"], [f"x{i + 1}"]) for i in range(50)]
    nodes.append(helper.make_node("Mul", ["x50", "two"], ["y"]))  # numpy's, after onnxruntime's
    model = _bare(nodes, {"x0": np.ones(3, np.float32), "two": np.full(3, 2.0, np.float32)})
    data = folded(model, check_graph(model, "chain.onnx"), "chain.onnx")
    assert len(sessions) == 1 and len(sessions[0]) == 51
    assert own_folding_session(data).run(["y"], {})[0].tolist() == [2.0, 2.0, 2.0]


def _declared(dims: list[int], raw: bytes = b"") -> TensorProto:
    """A float TensorProto named by its key that declares `dims` and holds `raw`."""
    tensor = TensorProto(data_type=TensorProto.FLOAT, dims=dims, raw_data=raw)
    return tensor


def _twice(node):
    """`node` with its first attribute given a second time (onnxruntime refuses it)."""
    node.attribute.append(node.attribute[0])
    return node


SCALAR = np.array(1.0, np.float32)
MALFORMED = {
    "a Gather of a scalar": ([helper.make_node("Gather", ["s", "i"], ["y"])], {"s": SCALAR, "i": np.array([0])}),
    "a Concat of scalars": ([helper.make_node("Concat", ["s", "s"], ["y"], axis=0)], {"s": SCALAR}),
    "a Slice of more axes than the value has": (
        [helper.make_node("Slice", ["v", "b", "e"], ["y"])],
        {"v": np.ones(3, np.float32), "b": np.array([0, 0]), "e": np.array([1, 1])},
    ),
    "an Expand of a string (bytes of any length a value)": (
        [
            helper.make_node("Expand", ["text", "n"], ["t"]),
            helper.make_node("Cast", ["t"], ["y"], to=TensorProto.FLOAT),
        ],
        {"text": np.array(["1" * 1000], dtype=object), "n": np.array([20000])},
    ),
    "a Slice of a tensor that declares 2**28 values and holds none": (
        [helper.make_node("Slice", ["declared", "b", "e"], ["y"])],
        {"declared": _declared([1 << 28]), "b": np.array([0]), "e": np.array([1 << 28])},
    ),
    "an Add of int32 and int64": (
        [helper.make_node("Add", ["i", "j"], ["s"]), helper.make_node("Cast", ["s"], ["y"], to=TensorProto.FLOAT)],
        {"i": np.array([1], np.int32), "j": np.array([1], np.int64)},
    ),
    "an attribute given twice": (
        [_twice(helper.make_node("Transpose", ["m"], ["y"], perm=[1, 0]))],
        {"m": np.ones((2, 3), np.float32)},
    ),
    "raw data of another length than the dims": (
        [helper.make_node("Mul", ["short", "short"], ["y"])],
        {"short": _declared([27], raw=b"\0" * 105)},
    ),
    "float16 arithmetic (computed in float32 by onnxruntime's optimizer, in float16 by its kernels)": (
        [helper.make_node("Div", ["h", "h"], ["q"]), helper.make_node("Cast", ["q"], ["y"], to=TensorProto.FLOAT)],
        {"h": np.ones(3, np.float16)},
    ),
    "a tensor of 70 dimensions": (
        [helper.make_node("Identity", ["big"], ["y"])],
        {"big": helper.make_tensor("big", TensorProto.FLOAT, [1] * 70, [0.0])},
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_constant_computation_is_one_line(case) -> None:
    """onnxruntime refuses each of these; the runtime refuses them in one line (they raised IndexError and
    ValueError tracebacks), and but for data that is not its size, before anything is computed: the check's own
    memory stays small (a Slice took 2 GB for its indices; onnxruntime computed 20 MB of strings)."""
    nodes, inits = MALFORMED[case]
    model = _bare(nodes, inits)
    tracemalloc.start()
    try:
        with pytest.raises(GraphError) as refused:
            plan = check_graph(model, "bad.onnx")
            assert case == "raw data of another length than the dims", "refused only once computed"
            folded(model, plan, "bad.onnx")
        assert tracemalloc.get_traced_memory()[1] < 32 << 20
    finally:
        tracemalloc.stop()
    assert "\n" not in str(refused.value)


def test_a_branch_may_not_compute_an_outer_name_again() -> None:
    """onnxruntime refuses a subgraph that computes a name its outer graph computes (but not the If's own
    output name); folding the outer node must not make such a file load."""
    then = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["t"])],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)],
    )
    other = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["y"])],
        "else",
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    nodes = [
        helper.make_node("Neg", ["x"], ["t"]),
        helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other),
    ]
    model = _bare(nodes, {"x": np.ones(2, np.float32), "c": np.array(True)})
    with pytest.raises(GraphError, match="'t' is computed twice"):
        check_graph(model, "twice.onnx")


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_the_load_path_reads_any_bytes_of_a_file_with_folds_in_one_line_or_folds_it(other_exports, data) -> None:
    """Bytes changed or cut in files that fold (an int8 gru: numpy and onnxruntime folds inside an If's branches; an
    int8 transformer): the check and the folding pass or raise their one-line GraphError, never another exception."""
    original = other_exports[data.draw(st.sampled_from(["gru int8", "transformer int8"]))].read_bytes()
    raw = bytearray(original)
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    for _ in range(data.draw(st.integers(1, 6))):
        if raw:
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        folded(bytes(raw), check_graph(bytes(raw), "model.onnx"), "model.onnx")
    except GraphError as err:
        assert "\n" not in str(err) and str(err).startswith("model.onnx")


def test_values_numpy_computed_are_given_to_onnxruntime_aligned() -> None:
    """onnxruntime computes on a caller's buffer in place, and a ReduceSum added in another order (another last bit)
    when the buffer (numpy's view of the file's bytes, at any offset) was not 16-byte aligned."""
    for seed in range(40):
        x = np.random.default_rng(seed).standard_normal((1, 4)).astype(np.float32)
        nodes = [
            helper.make_node("Transpose", ["x0"], ["x1"], perm=[0, 1]),
            helper.make_node("ReduceSum", ["x1"], ["x2"], keepdims=0),
        ]
        model = _model(nodes, {"x0": x}, "x2", 11)
        expected = own_folding_session(model).run(["y"], {})[0]
        got = own_folding_session(folded(model, check_graph(model, "sum.onnx"), "sum.onnx")).run(["y"], {})[0]
        assert got.tobytes() == expected.tobytes(), seed


def test_a_negative_axis_before_opset_11_is_refused() -> None:
    """Before opset 11 an axis is not counted from the end: onnxruntime refuses such a file, or reads it two ways
    (its folding and its kernels gave Unsqueeze(axes=[-1]) of a [2] value two shapes)."""
    model = _bare([helper.make_node("Unsqueeze", ["v"], ["y"], axes=[-1])], {"v": np.ones(2, np.float32)}, opset=9)
    with pytest.raises(GraphError, match="negative axis, which opset 9 does not take"):
        check_graph(model, "old.onnx")
    model = _bare([helper.make_node("Unsqueeze", ["v"], ["y"], axes=[1])], {"v": np.ones(2, np.float32)}, opset=9)
    assert check_graph(model, "old.onnx").folds


def test_the_budget_takes_what_an_int8_recurrent_weight_makes_and_no_more(monkeypatch) -> None:
    """An int8 recurrent weight makes 3.6 values a byte of the file (its cast, its scaled copy, a gate's rows, their
    transpose): a wide model's file must load. Six a byte, and no more, beyond the fixed allowance (taken to 0 here);
    a value may pass the one-value cap when it is no larger than what it was made from."""
    from makemore.contract import constants

    monkeypatch.setattr(constants, "FOLD_VALUES", 0)
    monkeypatch.setattr(constants, "MAX_CONSTANT_ELEMENTS", 1000)
    weight = np.ones((48, 64), np.int8)  # 3 gates of 16 rows, 64 wide: 3,072 values, more than the cap
    nodes = [
        helper.make_node("Cast", ["w"], ["wf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["wf", "scale"], ["scaled"]),
        helper.make_node("Gather", ["scaled", "rows"], ["gate"]),
        helper.make_node("Transpose", ["gate"], ["y"]),
    ]
    inits = {"w": weight, "scale": np.full((48, 1), 0.5, np.float32), "rows": np.arange(32)}
    assert len(check_graph(_bare(nodes, inits), "wide.onnx").folds) == 4
    grow = [helper.make_node("Tile", ["scaled", "twice"], ["y"])]  # larger than what it is made from: capped
    with pytest.raises(GraphError, match="asks a Tile for more than 1,000 values"):
        check_graph(_bare(nodes[:2] + grow, {**inits, "twice": np.array([2, 1])}), "grow.onnx")
    copies = [helper.make_node("Identity", ["wf"], [f"c{i}"]) for i in range(10)]  # each its own weight's size
    copies.append(helper.make_node("Identity", ["c0"], ["y"]))
    with pytest.raises(GraphError, match="more from its constants than a file of its size may"):
        check_graph(_bare(nodes[:1] + copies, {"w": weight}), "copies.onnx")


def _raw(op: str, inputs: list, outputs: list, *attributes: onnx.AttributeProto, **named) -> onnx.NodeProto:
    node = helper.make_node(op, inputs, outputs, **named)
    node.attribute.extend(attributes)
    return node


def test_the_table_of_attributes_is_onnxs() -> None:
    """contract/shapes.py's ATTRIBUTES: what the onnx package's schemas say each op takes, at every opset."""
    import onnx.defs
    from makemore.contract.shapes import RULES, attributes_taken

    for op in RULES:
        for opset in range(1, onnx.defs.onnx_opset_version() + 1):
            try:
                schema = onnx.defs.get_schema(op, opset, "")
            except onnx.defs.SchemaError:
                continue
            onnxs = {name: (int(a.type), a.required) for name, a in schema.attributes.items()}
            assert attributes_taken(op, opset) == onnxs, (op, opset)


@pytest.mark.parametrize(
    ("node", "opset"),
    [
        (helper.make_node("Transpose", ["w"], ["t"], perm=[1, 0], foo=3), 13),  # no op takes it
        (helper.make_node("Unsqueeze", ["w", "zero"], ["t"], axes=[0]), 13),  # an input from opset 13 on
        (helper.make_node("Add", ["w", "w"], ["t"], broadcast=1), 13),  # before opset 7
        (helper.make_node("Cast", ["w"], ["t"], to=TensorProto.FLOAT, saturate=1), 17),  # from opset 19 on
        (helper.make_node("Concat", ["w", "w"], ["t"]), 13),  # its axis must be given
        (helper.make_node("Cast", ["w"], ["t"]), 13),  # so must its type
        (_raw("Transpose", ["w"], ["t"], helper.make_attribute("perm", [1.0, 0.0])), 13),  # ints, not floats
        (_raw("Gather", ["w", "zero"], ["t"], helper.make_attribute("axis", [0, 0])), 13),  # an int, not ints
    ],
    ids=["unknown", "axes-at-13", "broadcast-at-13", "saturate-at-17", "no-axis", "no-to", "perm-floats", "axis-ints"],
)
def test_a_folded_node_with_an_attribute_its_op_does_not_take_is_refused_as_onnxruntime_refuses_it(node, opset) -> None:
    """onnxruntime refuses such a node (an attribute its op does not take at the opset, of another type, or left out
    when it must be given); folded, onnxruntime never sees it: the check refuses it in one line itself."""
    inits = {"w": np.ones((2, 2), np.float32), "zero": np.zeros(1, np.int64)}
    data = _bare([node, helper.make_node("Identity", ["t"], ["y"])], inits, opset=opset)
    with pytest.raises(Exception, match="INVALID_GRAPH|Unrecognized attribute"):
        own_folding_session(data)
    with pytest.raises(GraphError, match="attribute") as refused:
        onnx_sampler.open_session(data, "x.onnx")
    assert "\n" not in str(refused.value)


def test_a_node_that_computes_an_initializers_name_is_refused_as_onnxruntime_refuses_it() -> None:
    """onnxruntime refuses a graph whose node computes a name an initializer has ("Duplicate definition"); folded,
    the node would have become a Constant beside it, which onnxruntime accepts: the check refuses it itself."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])
    nodes = [helper.make_node("Neg", ["c"], ["w"]), helper.make_node("Add", ["x", "w"], ["y"])]
    inits = [_named(np.arange(3, dtype=np.float32), "w"), _named(np.full(3, 5, np.float32), "c")]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    graph = helper.make_graph(nodes, "g", [x], outputs, initializer=inits)
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8).SerializeToString()
    with pytest.raises(Exception, match="Duplicate definition"):
        own_folding_session(data)
    with pytest.raises(GraphError, match="'w' is computed and given too"):
        onnx_sampler.open_session(data, "x.onnx")


W = np.arange(6, dtype=np.float32).reshape(2, 3)


def _to_float(name: str) -> onnx.NodeProto:
    return helper.make_node("Cast", [name], ["y"], to=TensorProto.FLOAT)


READINGS = {  # a file onnxruntime reads one way (loads it, or refuses it), which the check must read the same way
    "an int with no value is 0": ([_raw("Flatten", ["w"], ["y"], onnx.AttributeProto(name="axis", type=2))], 13),
    "ints with no value are empty": ([_raw("Transpose", ["w"], ["y"], onnx.AttributeProto(name="perm", type=7))], 13),
    "keepdims of no value": ([_raw("ReduceSum", ["w"], ["y"], onnx.AttributeProto(name="keepdims", type=2))], 11),
    "keepdims 2 is not 1": ([helper.make_node("ReduceSum", ["w"], ["y"], keepdims=2)], 11),
    "a second value field": (
        [_raw("Gather", ["w", "i"], ["y"], onnx.AttributeProto(name="axis", type=2, ints=[0]))],
        13,
    ),
    "two nodes compute a name": (
        [
            helper.make_node("Neg", ["w"], ["t"]),
            helper.make_node("Abs", ["w"], ["t"]),
            helper.make_node("Neg", ["t"], ["y"]),
        ],
        13,
    ),
    "a Constant of an initializer's name and another shape": (
        [helper.make_node("Constant", [], ["w"], value_floats=[1.0, 2.0]), helper.make_node("Neg", ["w"], ["y"])],
        13,
    ),
    "fmod 2": ([helper.make_node("Mod", ["i", "i"], ["m"], fmod=2), helper.make_node("Cast", ["m"], ["y"], to=1)], 13),
    "saturate 0 outside float8": ([helper.make_node("Cast", ["w"], ["y"], to=1, saturate=0)], 19),
    "allowzero 2 is not 1": ([helper.make_node("Reshape", ["w", "s"], ["y"], allowzero=2)], 14),
    "a dequantized value of output_dtype float16": (
        [helper.make_node("DequantizeLinear", ["q", "sc"], ["d"], axis=0, output_dtype=10), _to_float("d")],
        23,
    ),
    "a quantized value of output_dtype int8": (
        [helper.make_node("QuantizeLinear", ["w", "sc"], ["d"], axis=0, output_dtype=3), _to_float("d")],
        21,
    ),
    "a quantized value of an int8 zero point": (
        [helper.make_node("QuantizeLinear", ["w", "sc", "zero"], ["d"], axis=0), _to_float("d")],
        13,
    ),
}


@pytest.mark.parametrize("case", list(READINGS))
def test_the_check_reads_a_files_attributes_and_names_as_onnxruntime_does(case) -> None:
    nodes, opset = READINGS[case]
    inits = {
        "w": W,
        "i": np.array([1, 2], np.int64),
        "s": np.array([0, 3], np.int64),
        "q": np.arange(-4, 4, dtype=np.int8).reshape(2, 4),
        "sc": np.array([0.5, 0.25], np.float32),
        "zero": np.array([1, -1], np.int8),
    }
    used = {name for node in nodes for name in node.input}
    data = _bare(nodes, {k: v for k, v in inits.items() if k in used}, opset=opset)
    try:
        expected = own_folding_session(data).run(["y"], {})[0]
    except Exception:
        expected = None
    try:
        session = onnx_sampler.open_session(data, "x.onnx")
    except GraphError as err:
        assert expected is None, f"refused a file onnxruntime loads: {err}"
        assert "\n" not in str(err)
        return
    assert expected is not None, "loaded a file onnxruntime refuses"
    got = session.run(["y"], {})[0]
    assert got.shape == expected.shape and np.array_equal(got, expected)


def test_a_constant_of_an_initializers_name_is_refused_though_onnxruntime_takes_it() -> None:
    """onnxruntime takes a Constant of an initializer's name and shape, and computes with one value or the other
    (here the Constant's; in a chain the property drew, the initializer's): the file says two things of one name,
    and the check refuses it (a case it refuses where onnxruntime loads, as a file that imports no version of ONNX's
    own ops)."""
    nodes = [helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(np.ones((2, 3), np.float32))),
             helper.make_node("Neg", ["w"], ["y"])]  # fmt: skip
    data = _bare(nodes, {"w": W}, opset=13)
    assert own_folding_session(data).run(["y"], {})[0].shape == (2, 3)  # onnxruntime loads it
    with pytest.raises(GraphError, match="'w' is computed and given too"):
        onnx_sampler.open_session(data, "x.onnx")
