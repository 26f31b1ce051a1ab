"""Issue 22, part 2: a recurrent model's one-step calls run an explicit cell (export/recurrent_cell.py) beside the op.

The file keeps its contract (inputs, outputs, metadata) and stores each weight once; the cell computes the op's
numbers, so the names of a seed stay those of the op alone (test_parity's rule between two graphs: at most 1 of
1,000 names differs, by a rounding flip); so does an int8 file's, whose two graphs read the same int8 weights.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from makemore.contract import LABEL, TOKENS, ModelInfo
from makemore.data import Vocab
from makemore.export import onnx_export
from makemore.export.recurrent_cell import RECURRENCE_OPS
from makemore.runtime.onnx_sampler import OnnxSampler, open_session
from makemore.train.checkpoint import load_checkpoint, load_model
from makemore.train.config_types import RecurrentConfig
from makemore.train.kinds import kind_spec
from makemore.train.models import Recurrent

pytestmark = pytest.mark.filterwarnings("ignore")
CELLS = ("rnn", "gru", "lstm")


def random_model(cell: str, n_layer: int, n_labels: int, seed: int) -> Recurrent:
    """A small recurrent model whose every weight (the biases and the label embedding too) is random."""
    torch.manual_seed(seed)
    model = Recurrent(cell, 11, 6, 8, n_layer, n_labels=n_labels).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.7)
    return model


def info_of(model: Recurrent, n_labels: int) -> ModelInfo:
    config = RecurrentConfig(6, 8, model.n_layer, 0.0)
    labels = tuple(f"l{i}" for i in range(n_labels))
    return ModelInfo(model.cell, Vocab("abcdefghij"), 0, state=kind_spec(model.cell).state(config), labels=labels)


def exports(model: Recurrent, n_labels: int, opset: int = 17) -> list[onnx.ModelProto]:
    """The export with the cell and of the op alone."""
    info = info_of(model, n_labels)
    return [onnx.load_from_string(onnx_export.to_step_onnx_bytes(model, info, opset, cell)) for cell in (True, False)]


def sessions(model: Recurrent, n_labels: int):
    """onnxruntime sessions of the export with the cell and of the op alone."""
    return [open_session(proto.SerializeToString()) for proto in exports(model, n_labels)]


def has_cell(proto: onnx.ModelProto) -> bool:
    return "If" in {n.op_type for n in proto.graph.node}


@settings(max_examples=12, deadline=None)
@given(
    cell=st.sampled_from(CELLS),
    n_layer=st.integers(1, 2),
    n_labels=st.sampled_from([0, 3]),
    rows=st.integers(1, 5),
    seed=st.integers(0, 1000),
)
def test_the_cell_computes_the_ops_step(cell, n_layer, n_labels, rows, seed) -> None:
    """For every cell, depth, labels or none, and any state: a one-step call gives the op's logits and new state
    (within float32 rounding), and a call of several steps is the op's own."""
    model = random_model(cell, n_layer, n_labels, seed)
    with_cell, op_alone = sessions(model, n_labels)
    rng = np.random.default_rng(seed)
    for steps in (1, 3):
        feed = {TOKENS: rng.integers(0, 11, (rows, steps), dtype=np.int64)}
        if n_labels:
            feed[LABEL] = rng.integers(0, n_labels, rows, dtype=np.int64)
        for tensor in op_alone.get_inputs()[1 + bool(n_labels) :]:
            feed[tensor.name] = rng.standard_normal((n_layer, rows, 8)).astype(np.float32)
        for want, got in zip(op_alone.run(None, feed), with_cell.run(None, feed), strict=True):
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_weights_torch_stores_once_are_found_through_its_identity_nodes(cell) -> None:
    """Equal weights (here every recurrent bias zero, in two layers) are one initializer behind Identity nodes in
    torch's export: the cell still reads them, and computes the op's step."""
    model = random_model(cell, 2, 3, 0)
    with torch.no_grad():
        for name, p in model.rnn.named_parameters():
            if "bias" in name:
                p.zero_()
    with_cell, op_alone = exports(model, 3)
    assert has_cell(with_cell) and "Identity" in {n.op_type for n in op_alone.graph.node}
    feed = {TOKENS: np.array([[1], [4]]), LABEL: np.array([0, 2])}
    feed |= {i.name: np.full((2, 2, 8), 0.3, np.float32) for i in op_alone.graph.input[2:]}
    want_all, got_all = (open_session(p.SerializeToString()).run(None, feed) for p in (op_alone, with_cell))
    assert len(want_all) == len(got_all) == 2 + (cell == "lstm")
    for want, got in zip(want_all, got_all, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("opset", [7, 8, 9])
def test_below_opset_9_the_file_is_the_op_alone(opset) -> None:
    """torch computes the op's weights in the graph below opset 9: those files keep the op alone."""
    with_cell, op_alone = exports(random_model("gru", 1, 0, 1), 0, opset)
    assert has_cell(with_cell) == (opset >= 9) and not has_cell(op_alone)


def test_mm_export_at_opset_8_writes_a_verified_file(model_files, tmp_path) -> None:
    report = onnx_export.export_checkpoint(model_files["lstm"][0], tmp_path / "lstm.onnx", opset=8)
    assert report.opset == 8 and not has_cell(onnx.load(str(report.path)))
    assert len(set(OnnxSampler(report.path).sample(50, seed=0))) > 1


@pytest.mark.parametrize("kind", CELLS)
def test_the_file_has_both_branches_and_each_weight_once(model_files, kind) -> None:
    """The exported file: an If whose one-step branch has no recurrence op and whose other branch is the op, the
    step contract's inputs and outputs, and no weight matrix stored twice."""
    model = onnx.load(str(model_files[kind][1]))
    (node,) = [n for n in model.graph.node if n.op_type == "If"]
    branches = {a.name: {n.op_type for n in a.g.node} for a in node.attribute}
    assert not branches["then_branch"] & set(RECURRENCE_OPS)
    assert kind.upper() in branches["else_branch"]
    sampler = OnnxSampler(model_files[kind][1])
    assert [i.name for i in model.graph.input] == [TOKENS, *(t.input for t in sampler.info.state.tensors)]
    assert list(node.output) == [o.name for o in model.graph.output]
    op_alone = onnx.load_from_string(
        onnx_export.to_step_onnx_bytes(load_model(load_checkpoint(model_files[kind][0])), sampler.info, 17, False)
    )
    assert stored(model) == stored(op_alone)


def stored(model: onnx.ModelProto) -> list[tuple[int, ...]]:
    """The shapes of the initializers a file holds of more than one value (its weights), sorted."""
    return sorted(tuple(i.dims) for i in model.graph.initializer if np.prod(i.dims) > 1)


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_the_names_of_a_seed_are_the_ops(model_files, kind, tmp_path) -> None:
    """The file with the cell and the op alone sample the same names for a seed, with a prefix and options too."""
    path = tmp_path / f"{kind}.onnx"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(onnx_export, "Recurrent", type(None))  # no recurrent model: the op alone, as files before
        onnx_export.export_checkpoint(model_files[kind][0], path)
    assert "If" not in {n.op_type for n in onnx.load(str(path)).graph.node}
    for options in [{"seed": 0}, {"seed": 5, "prefix": "ka"}, {"seed": 6, "temperature": 1.5, "top_k": 10}]:
        old = OnnxSampler(path).sample(1000, **options)
        new = OnnxSampler(model_files[kind][1]).sample(1000, **options)
        assert len(set(new)) > 1
        assert sum(a != b for a, b in zip(old, new, strict=True)) <= 1


def test_an_int8_file_has_the_cell_of_its_int8_weights(model_files, tmp_path) -> None:
    """int8 stores each weight once, as int8 (export/int8.py), for both graphs: the int8 file with its cell gives
    the names of the int8 op alone, for a seed, with a prefix and options too."""
    with_cell = onnx_export.export_checkpoint(model_files["lstm"][0], tmp_path / "cell.onnx", quantize="int8").path
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(onnx_export, "Recurrent", type(None))  # no recurrent model: the op alone
        alone = onnx_export.export_checkpoint(model_files["lstm"][0], tmp_path / "op.onnx", quantize="int8").path
    graphs = {path: onnx.load(str(path)).graph for path in (with_cell, alone)}
    assert "If" in {n.op_type for n in graphs[with_cell].node} and "If" not in {n.op_type for n in graphs[alone].node}
    assert all(any(i.data_type == onnx.TensorProto.INT8 for i in graph.initializer) for graph in graphs.values())
    for options in [{"seed": 0}, {"seed": 5, "prefix": "ka"}, {"seed": 6, "temperature": 1.5, "top_k": 10}]:
        old, new = OnnxSampler(alone).sample(1000, **options), OnnxSampler(with_cell).sample(1000, **options)
        assert len(set(new)) > 1
        assert sum(a != b for a, b in zip(old, new, strict=True)) <= 1
