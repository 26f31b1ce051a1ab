"""--device: auto/cpu/cuda/mps resolved before any work, CPU checkpoints, and a CUDA run where there is a GPU."""

from __future__ import annotations

import pytest
import torch
from inprocess import is_usage_error, run_main
from makemore.train import device as device_module
from makemore.train.checkpoint import load_checkpoint, load_model
from makemore.train.cli import main as train_main
from makemore.train.device import DeviceError, resolve_device
from makemore.train.distributed import SINGLE
from makemore.train.run import TrainRequest, run_training
from makemore.train.sweep import main as sweep_main

TINY = {"steps": 60, "n_hidden": 16, "batch_size": 32}
TINY_TRANSFORMER = {"steps": 40, "n_layer": 1, "n_head": 2, "n_embd": 16, "batch_size": 16, "dropout": 0.0}
NO_CUDA = not torch.cuda.is_available()


def _pretend(monkeypatch, cuda: bool, mps: bool, gpus: int = 1) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus if cuda else 0)
    monkeypatch.setattr(device_module, "mps_available", lambda: mps)


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [(False, False, "cpu"), (False, True, "mps"), (True, True, "cuda:0"), (True, False, "cuda:0")],
)
def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected) -> None:
    _pretend(monkeypatch, cuda, mps)
    assert resolve_device("auto") == torch.device(expected)


def test_auto_is_the_cpu_on_this_machine_when_it_has_no_gpu() -> None:
    if torch.cuda.is_available() or device_module.mps_available():
        pytest.skip("this machine has a GPU")
    assert resolve_device("auto") == torch.device("cpu")


def test_cuda_takes_the_gpu_of_the_local_rank_and_needs_one_per_process(monkeypatch) -> None:
    _pretend(monkeypatch, cuda=True, mps=False, gpus=2)
    assert resolve_device("cuda", local_rank=1, local_world_size=2) == torch.device("cuda", 1)
    with pytest.raises(DeviceError, match="3 processes on this node but 2 GPU"):
        resolve_device("cuda", local_rank=0, local_world_size=3)


@pytest.mark.parametrize("name", ["cuda", "mps"])
def test_a_device_not_here_is_refused(monkeypatch, name) -> None:
    _pretend(monkeypatch, cuda=False, mps=False)
    with pytest.raises(DeviceError, match=f"--device {name} is not available here"):
        resolve_device(name)
    with pytest.raises(DeviceError, match="must be one of"):
        resolve_device("tpu")


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
def test_mm_train_device_cuda_without_a_gpu_is_one_line_and_writes_nothing(tmp_path) -> None:
    out = tmp_path / "model.pt"
    outcome = run_main(train_main, "mlp", "--device", "cuda", "--out", out)
    assert is_usage_error(outcome), outcome
    assert "--device cuda is not available" in outcome.stderr
    assert list(tmp_path.iterdir()) == []


def test_mm_train_unknown_device_is_one_line(tmp_path) -> None:
    outcome = run_main(train_main, "mlp", "--device", "tpu", "--out", tmp_path / "model.pt")
    assert is_usage_error(outcome), outcome
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
def test_mm_sweep_device_cuda_without_a_gpu_is_one_line() -> None:
    outcome = run_main(sweep_main, "--device", "cuda", "--steps", 1, "--block-size", 3, "--n-embd", 2)
    assert is_usage_error(outcome), outcome
    assert "--device cuda is not available" in outcome.stderr


def _train(tmp_path, kind: str, device: str, overrides: dict) -> dict:
    out = tmp_path / f"{kind}-{device}.pt"
    assert run_training(TrainRequest(kind=kind, out=out, samples=3, quiet=True, device=device, overrides=overrides))
    return load_checkpoint(out)


def test_device_cpu_trains_as_auto_does_here_and_saves_cpu_tensors(tmp_path) -> None:
    if torch.cuda.is_available() or device_module.mps_available():
        pytest.skip("auto is a GPU on this machine")
    on_cpu, on_auto = _train(tmp_path, "mlp", "cpu", TINY), _train(tmp_path, "mlp", "auto", TINY)
    assert on_cpu["metrics"]["val_loss"] == on_auto["metrics"]["val_loss"]
    assert all(t.device.type == "cpu" for t in on_cpu["state_dict"].values())
    load_model(on_cpu)


def test_the_single_process_ranks_change_nothing() -> None:
    assert SINGLE.is_main and SINGLE.world_size == 1 and SINGLE.seed(7) == 7
    assert torch.equal(
        torch.randint(0, 100, (8,), generator=SINGLE.generator(7)),
        torch.randint(0, 100, (8,), generator=torch.Generator().manual_seed(7)),
    )
    model = torch.nn.Linear(2, 2)
    assert SINGLE.wrap(model) is model


@pytest.mark.skipif(NO_CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize(
    ("kind", "overrides"),
    [("mlp", TINY), ("transformer", TINY_TRANSFORMER), ("gru", TINY), ("lstm", TINY)],  # gru, lstm: float32 on CUDA
)
def test_cuda_trains_and_saves_a_checkpoint_that_loads_on_the_cpu(tmp_path, kind, overrides) -> None:
    from makemore.export.onnx_export import export_checkpoint
    from makemore.runtime import OnnxSampler

    on_gpu, on_cpu = _train(tmp_path, kind, "cuda", overrides), _train(tmp_path, kind, "cpu", overrides)
    assert all(t.device.type == "cpu" for t in on_gpu["state_dict"].values())
    # the same seed: the same initial weights (built on the CPU) and batches; kernels differ in the last bits
    assert on_gpu["metrics"]["val_loss"] == pytest.approx(on_cpu["metrics"]["val_loss"], abs=0.02)
    export_checkpoint(tmp_path / f"{kind}-cuda.pt", tmp_path / f"{kind}.onnx")
    assert len(OnnxSampler(tmp_path / f"{kind}.onnx").sample(5, seed=1)) == 5
