"""Parity of torch and onnxruntime: logits, sampled names and the val loss, for every model kind."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from clirun import run
from conftest import KINDS, STEP_KINDS
from makemore.runtime.onnx_sampler import OnnxSampler
from makemore.train.sampler import TorchSampler

SAMPLING_CASES = [
    {"seed": 0},
    {"seed": 1, "temperature": 0.5},
    {"seed": 2, "temperature": 1.5},
    {"seed": 3, "top_k": 5},
    {"seed": 4, "top_p": 0.9},
    {"seed": 5, "prefix": "ka"},
    {"seed": 6, "temperature": 1.5, "top_k": 10, "top_p": 0.95},
]


@pytest.fixture(scope="module")
def samplers(model_files) -> dict[str, tuple[TorchSampler, OnnxSampler]]:
    kinds = (*KINDS, *STEP_KINDS)
    return {kind: (TorchSampler(model_files[kind][0]), OnnxSampler(model_files[kind][1])) for kind in kinds}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch", [1, 7, 4096])
def test_logits_parity(samplers, kind, batch) -> None:
    torch_sampler, onnx_sampler = samplers[kind]
    assert onnx_sampler.vocab == torch_sampler.vocab and onnx_sampler.block_size == torch_sampler.block_size
    context = np.random.default_rng(batch).integers(0, onnx_sampler.vocab.size, (batch, onnx_sampler.block_size))
    expected, actual = torch_sampler.logits(context), onnx_sampler.logits(context)
    assert actual.shape == (batch, onnx_sampler.vocab.size) and actual.dtype == np.float32
    print(f"{kind} batch {batch}: max |diff| {np.abs(actual - expected).max():.2e}")
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", (*KINDS, *STEP_KINDS))  # both contracts
@pytest.mark.parametrize("options", SAMPLING_CASES, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_names_parity(samplers, kind, options) -> None:
    torch_sampler, onnx_sampler = samplers[kind]
    expected, actual = torch_sampler.sample(1000, **options), onnx_sampler.sample(1000, **options)
    assert len(actual) == len(expected) == 1000
    differ = sum(a != b for a, b in zip(actual, expected, strict=True))
    print(f"{kind} {options}: {differ} of 1000 names differ")
    assert differ <= 1
    assert len(set(actual)) > 1  # a real sample, not one repeated name


@pytest.mark.parametrize("kind", KINDS)
def test_eval_cli_matches_checkpoint_val_loss(model_files, kind) -> None:
    pt, onnx_path = model_files[kind]
    result = run("mm-eval", onnx_path, "--split", "val")
    assert result.returncode == 0, result.stderr
    val_loss = torch.load(pt, weights_only=True)["metrics"]["val_loss"]
    assert float(result.stdout) == pytest.approx(val_loss, abs=1e-4)
