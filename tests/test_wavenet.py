"""The wavenet kind: the lecture's architecture, eval-mode batch norm, and torch/onnxruntime parity."""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
import torch
from clirun import assert_usage_error, run
from makemore.contract import CONTEXT as INPUT_NAME
from makemore.contract import LOGITS as OUTPUT_NAME
from makemore.export.onnx_export import TOLERANCE, to_onnx_bytes
from makemore.runtime.onnx_sampler import OnnxSampler, open_session
from makemore.train.checkpoint import load_checkpoint
from makemore.train.config import make_config
from makemore.train.kinds import ConfigError, build_model
from makemore.train.models import WaveNet
from makemore.train.run import TrainRequest, resolve_config
from makemore.train.sampler import TorchSampler


@pytest.fixture(scope="module")
def samplers(model_files) -> tuple[TorchSampler, OnnxSampler]:
    pt, onnx_path = model_files["wavenet"]
    return TorchSampler(pt), OnnxSampler(onnx_path)


def test_the_lectures_architecture() -> None:
    config = make_config("wavenet", n_embd=24, n_hidden=128)
    model = build_model("wavenet", 27, config)
    assert config.block_size == 8
    assert len(model.levels) == 3  # pairs, pairs of pairs, pairs of those: 8 -> 4 -> 2 -> 1
    assert sum(p.numel() for p in model.parameters()) == 76579  # the lecture's count
    logits = model.eval()(torch.randint(0, 27, (5, 8)))
    assert logits.shape == (5, 27) and logits.dtype == torch.float32


def test_dropout_is_off_in_eval_mode() -> None:
    model = build_model("wavenet", 27, make_config("wavenet", dropout=0.5))
    context = torch.randint(0, 27, (4, 8))
    model.eval()
    assert torch.equal(model(context), model(context))
    model.train()
    assert not torch.equal(model(context), model(context))


@pytest.mark.parametrize("block_size", [1, 3, 6, 12])
def test_block_size_must_be_a_power_of_two(block_size) -> None:
    with pytest.raises(ConfigError, match="power of two"):
        make_config("wavenet", block_size=block_size)


def test_cli_refuses_bad_sizes(tmp_path) -> None:
    out = tmp_path / "w.pt"
    assert_usage_error(run("mm-train", "wavenet", "--block-size", "6", "--out", out))
    assert_usage_error(run("mm-train", "wavenet", "--norm", "group", "--out", out))
    assert not out.exists()


def test_norm_cannot_change_on_resume(model_files) -> None:
    pt, _ = model_files["wavenet"]
    resumed = load_checkpoint(pt)  # its config typed
    with pytest.raises(ConfigError, match="norm"):
        resolve_config(TrainRequest(kind="wavenet", overrides={"norm": "layer"}), resumed)


def test_eval_batch_norm_uses_running_statistics(samplers) -> None:
    """A row alone and the same row among 6 others give the same logits (no batch statistics)."""
    torch_sampler, onnx_sampler = samplers
    norms = [m for m in torch_sampler.model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(norms) == 3 and all(m.running_var.ne(1).any() for m in norms)  # trained statistics
    context = np.random.default_rng(0).integers(0, onnx_sampler.vocab.size, (7, onnx_sampler.block_size))
    for sampler in samplers:
        together = sampler.logits(context)
        for i in range(7):
            np.testing.assert_allclose(sampler.logits(context[i : i + 1])[0], together[i], rtol=1e-5, atol=1e-5)
    # in training mode (a copy: it updates the running statistics) batch statistics do mix rows
    training = copy.deepcopy(torch_sampler.model).train()
    for module in training.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0  # so only batch norm could make the rows differ
    with torch.no_grad():
        among_seven = training(torch.from_numpy(context))[0]
        among_twins = training(torch.from_numpy(np.repeat(context[:1], 2, axis=0)))[0]
    assert not torch.allclose(among_seven, among_twins, atol=1e-3)


def test_exported_graph_has_batch_norm_and_any_batch(model_files) -> None:
    _, onnx_path = model_files["wavenet"]
    proto = onnx.load(str(onnx_path))
    assert sum(node.op_type == "BatchNormalization" for node in proto.graph.node) == 3
    batch_dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.HasField("dim_value")


def test_layer_norm_variant_exports_with_parity() -> None:
    torch.manual_seed(0)
    model = WaveNet(27, 8, 8, 16, norm="layer").eval()
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules())
    session = open_session(to_onnx_bytes(model, 27, 8, 17))
    context = np.random.default_rng(0).integers(0, 27, (33, 8), dtype=np.int64)
    with torch.no_grad():
        expected = model(torch.from_numpy(context)).numpy()
    np.testing.assert_allclose(session.run([OUTPUT_NAME], {INPUT_NAME: context})[0], expected, **TOLERANCE)
