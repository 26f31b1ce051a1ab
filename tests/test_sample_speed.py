"""Issue 22, part 2: what makes the step models sample faster keeps their names.

A transformer's attention is exported as onnxruntime's fused MultiHeadAttention (export/attention.py); the sessions
keep onnxruntime's memory arena; a step model's decoders run STEP_PIECE_ROWS rows. None of it may change a name.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from makemore.contract import PAST, TOKENS
from makemore.export import attention, onnx_export
from makemore.export.attention import FusedSelfAttention, fused_attention
from makemore.runtime import sampling
from makemore.runtime.onnx_sampler import OnnxSampler, open_session, session_options
from makemore.train.models import CausalSelfAttention

pytestmark = pytest.mark.filterwarnings("ignore")


def attention_case(rows: int, past: int, steps: int, n_head: int, head_dim: int, seed: int) -> tuple:
    """A CausalSelfAttention with random weights, and random x [rows, steps, C] and caches of `past` positions."""
    torch.manual_seed(seed)
    attn = CausalSelfAttention(n_head * head_dim, n_head, 0.0).eval()
    x = torch.randn(rows, steps, n_head * head_dim)
    caches = [torch.randn(rows, n_head, past, head_dim) for _ in range(2)]
    mask = torch.arange(past + steps).unsqueeze(0) > torch.arange(past, past + steps).unsqueeze(1)
    return attn, x, mask, caches


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 3),
    past=st.integers(0, 5),
    steps=st.integers(1, 4),
    n_head=st.integers(1, 4),
    head_dim=st.integers(1, 8),
    seed=st.integers(0, 1000),
)
def test_the_fused_module_computes_the_models_attention(rows, past, steps, n_head, head_dim, seed) -> None:
    """For every shape: FusedSelfAttention (in torch, the export's reference) is CausalSelfAttention's output and
    its grown caches."""
    attn, x, mask, caches = attention_case(rows, past, steps, n_head, head_dim, seed)
    with torch.no_grad():
        expected = attn(x, mask, *caches)
        actual = FusedSelfAttention(attn)(x, mask, *caches)
    for want, got in zip(expected, actual, strict=True):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def attention_onnx(attn: CausalSelfAttention) -> bytes:
    """FusedSelfAttention alone as an ONNX graph: x [B, T, C] and caches -> out and grown caches."""
    inputs = ["x", "past_key", "past_value"]
    axes = {"x": {0: "b", 1: "t"}, "past_key": {0: "b", 2: "p"}, "past_value": {0: "b", 2: "p"}}
    axes.update({"out": {0: "b", 1: "t"}, "key": {0: "b", 2: "pt"}, "value": {0: "b", 2: "pt"}})

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = FusedSelfAttention(attn)

        def forward(self, x, past_key, past_value):  # type: ignore[no-untyped-def]
            return self.attn(x, None, past_key, past_value)

    head_dim = attn.head_dim
    example = (torch.randn(2, 3, attn.n_head * head_dim), *(torch.randn(2, attn.n_head, 2, head_dim) for _ in "kv"))
    return onnx_export.trace_to_onnx(
        Graph().eval(), example, inputs, ["out", "key", "value"], axes, 17, attention.CUSTOM_OPSETS
    )


@pytest.mark.parametrize(("n_head", "head_dim"), [(1, 4), (4, 16), (3, 5)])
def test_onnxruntime_runs_the_fused_op_as_torch_computes_it(n_head, head_dim) -> None:
    """The exported MultiHeadAttention, on onnxruntime, for pasts from 0 and several steps: torch's numbers (the
    causal mask included: a query never sees a later position)."""
    attn = attention_case(1, 0, 1, n_head, head_dim, 0)[0]
    model = onnx.load_from_string(attention_onnx(attn))
    assert [n.op_type for n in model.graph.node].count("MultiHeadAttention") == 1
    session = open_session(model.SerializeToString())
    for rows, past, steps in [(1, 0, 1), (3, 0, 5), (2, 4, 1), (5, 7, 3)]:
        _, x, mask, caches = attention_case(rows, past, steps, n_head, head_dim, rows + past)
        with torch.no_grad():
            expected = attn(x, mask, *caches)
        feed = {"x": x.numpy(), "past_key": caches[0].numpy(), "past_value": caches[1].numpy()}
        for want, got in zip(expected, session.run(None, feed), strict=True):
            np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-5)


def test_the_transformer_file_attends_with_one_fused_node_per_layer(model_files) -> None:
    """The exported transformer: an If on the number of steps (export/one_step.py) whose graph of any steps has one
    MultiHeadAttention per layer and no Concat of a cache (the op grows them), whose one-step graph has one
    GroupQueryAttention per layer instead, and the step contract's inputs and outputs as before."""
    model = onnx.load(str(model_files["transformer"][1]))
    (if_node,) = [node for node in model.graph.node if node.op_type == "If"]
    branches = {a.name: a.g for a in if_node.attribute}
    sampler = OnnxSampler(model_files["transformer"][1])
    layers = len(sampler.info.state.tensors) // 2
    for name, op in (("else_branch", "MultiHeadAttention"), ("then_branch", "GroupQueryAttention")):
        graph = branches[name]
        ops = [node.op_type for node in graph.node]
        assert ops.count(op) == layers >= 1 and "Concat" not in ops
        made_by = {out: node.op_type for node in graph.node for out in node.output}
        assert {made_by[out.name] for out in graph.output[1:]} == {op}  # the grown caches
    assert list(if_node.output) == [o.name for o in model.graph.output]
    inputs = [i.name for i in model.graph.input]
    assert inputs == [TOKENS, *(t.input for t in sampler.info.state.tensors)]
    assert all(PAST in t.shape for t in sampler.info.state.tensors)


def test_an_int8_transformer_has_the_one_step_graph_of_its_int8_weights(model_files, tmp_path) -> None:
    """int8 stores the weights once, as int8, for the graph of any steps and its one-step copy with
    GroupQueryAttention beside it."""
    report = onnx_export.export_checkpoint(model_files["transformer"][0], tmp_path / "t.onnx", quantize="int8")
    graph = onnx.load(str(report.path)).graph
    (if_node,) = [node for node in graph.node if node.op_type == "If"]
    assert any(init.data_type == onnx.TensorProto.INT8 for init in graph.initializer)
    dequantized = {node.output[0] for node in graph.node if node.op_type == "Mul"}
    for branch in if_node.attribute:
        matmuls = [node for node in branch.g.node if node.op_type == "MatMul"]
        assert matmuls and all(node.input[1] in dequantized for node in matmuls if "MatMul" in node.input[1])
        ops = {node.op_type for node in branch.g.node}
        assert ("GroupQueryAttention" if branch.name == "then_branch" else "MultiHeadAttention") in ops


@pytest.mark.parametrize("quantize", [None, "int8"])
def test_the_one_step_graph_gives_the_names_of_the_other(model_files, tmp_path, quantize) -> None:
    """The transformer's file with and without its one-step graph: the same names for a seed (at most 1 of 1,000
    differs, by a rounding flip), with a prefix and options too."""
    alone = tmp_path / "alone.onnx"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(onnx_export, "grouped_query_attention", lambda proto: None)
        onnx_export.export_checkpoint(model_files["transformer"][0], alone, quantize=quantize)
    both = onnx_export.export_checkpoint(model_files["transformer"][0], tmp_path / "both.onnx", quantize=quantize)
    assert "If" not in {n.op_type for n in onnx.load(str(alone)).graph.node}
    for options in [{"seed": 0}, {"seed": 5, "prefix": "ka"}, {"seed": 6, "temperature": 1.5, "top_k": 10}]:
        old = OnnxSampler(alone).sample(1000, **options)
        new = OnnxSampler(both.path).sample(1000, **options)
        assert len(set(new)) > 1
        assert sum(a != b for a, b in zip(old, new, strict=True)) <= 1


def test_other_kinds_are_exported_as_they_were(model_files) -> None:
    """fused_attention leaves a model without attention as it is (the same object: nothing else changes)."""
    from makemore.train.checkpoint import load_checkpoint, load_model

    for kind in ("gru", "lstm"):
        model = load_model(load_checkpoint(model_files[kind][0]), kind)
        assert fused_attention(model) is model


@pytest.fixture(scope="module")
def unfused_transformer(model_files, tmp_path_factory):
    """The test transformer exported as before this change (torch's own attention graph): an older file."""
    path = tmp_path_factory.mktemp("unfused") / "transformer.onnx"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(onnx_export, "fused_attention", lambda model: model)
        onnx_export.export_checkpoint(model_files["transformer"][0], path)
    assert "MultiHeadAttention" not in {node.op_type for node in onnx.load(str(path)).graph.node}
    return path


@pytest.mark.parametrize(
    "options", [{"seed": 0}, {"seed": 5, "prefix": "ka"}, {"seed": 6, "temperature": 1.5, "top_k": 10}]
)
def test_a_file_of_the_old_graph_loads_and_gives_the_names_of_the_new_one(model_files, unfused_transformer, options):
    """An older transformer file still loads and samples; both graphs give the same names for the same seed, as
    torch and onnxruntime do (test_parity's rule: at most 1 of 1,000 names differs, by a rounding flip)."""
    old = OnnxSampler(unfused_transformer).sample(1000, **options)
    new = OnnxSampler(model_files["transformer"][1]).sample(1000, **options)
    assert len(old) == len(new) == 1000 and len(set(new)) > 1
    assert sum(a != b for a, b in zip(old, new, strict=True)) <= 1


@pytest.mark.parametrize("kind", ["transformer", "gru", "lstm"])
def test_the_names_do_not_depend_on_the_piece_rows_or_the_arena(model_files, kind, monkeypatch) -> None:
    """STEP_PIECE_ROWS and the memory arena are speed only: other piece sizes and no arena give the same names."""
    path = model_files[kind][1]
    names = OnnxSampler(path).sample(1500, seed=3)
    assert sampling.rows_per_decoder(OnnxSampler(path).info, 16) == sampling.STEP_PIECE_ROWS
    monkeypatch.setattr(sampling, "STEP_PIECE_ROWS", 97)
    assert OnnxSampler(path).sample(1500, seed=3) == names

    def no_arena():  # type: ignore[no-untyped-def]
        options = session_options()
        options.enable_cpu_mem_arena = False
        return options

    monkeypatch.setattr("makemore.runtime.onnx_sampler.session_options", no_arena)
    monkeypatch.setattr(sampling, "STEP_PIECE_ROWS", 2048)
    assert OnnxSampler(path).sample(1500, seed=3) == names


def test_sessions_keep_the_arena_and_no_memory_pattern() -> None:
    """The speed setting and the fragmentation guard together (runtime.onnx_sampler.session_options)."""
    options = session_options()
    assert options.enable_cpu_mem_arena and not options.enable_mem_pattern


def transformer_info(n_embd: int, n_head: int):
    """A small transformer with random weights, and its ModelInfo, as an export sees them."""
    from makemore.contract import ModelInfo
    from makemore.data import Vocab
    from makemore.train.config import DEFAULTS
    from makemore.train.kinds import build_model, state_spec

    config = DEFAULTS["transformer"].replace(n_layer=2, n_embd=n_embd, n_head=n_head, block_size=8)
    torch.manual_seed(0)
    model = build_model("transformer", 11, config).eval()
    info = ModelInfo("transformer", Vocab("abcdefghij"), 8, state=state_spec("transformer", config))
    return model, info


@pytest.mark.parametrize(("n_embd", "n_head", "grouped"), [(16, 2, True), (12, 4, False), (48, 4, False)])
def test_heads_not_a_multiple_of_8_wide_keep_multi_head_attention_alone(n_embd, n_head, grouped) -> None:
    """onnxruntime's GroupQueryAttention refuses heads not a multiple of 8 wide: such a transformer exports with
    MultiHeadAttention alone, and runs."""
    model, info = transformer_info(n_embd, n_head)
    proto = onnx.load_from_string(onnx_export.to_step_onnx_bytes(model, info, 17))
    assert ("If" in {node.op_type for node in proto.graph.node}) == grouped
    step = onnx_export.session_step(open_session(proto.SerializeToString()), info)
    from makemore.contract import empty_state

    logits, _ = step(np.ones((3, 1), dtype=np.int64), empty_state(info, 3))
    assert logits.shape == (3, 1, 11) and np.isfinite(logits).all()


@pytest.mark.parametrize("steps", [1, 2])
def test_a_call_on_no_rows_gives_no_logits(steps) -> None:
    """The If takes the general graph for 0 rows (GroupQueryAttention stops the process on an empty batch)."""
    from makemore.contract import empty_state

    model, info = transformer_info(16, 2)
    proto = onnx.load_from_string(onnx_export.to_step_onnx_bytes(model, info, 17))
    step = onnx_export.session_step(open_session(proto.SerializeToString()), info)
    logits, state = step(np.zeros((0, steps), dtype=np.int64), empty_state(info, 0))
    assert logits.shape == (0, steps, 11) and all(len(s) == 0 for s in state)
