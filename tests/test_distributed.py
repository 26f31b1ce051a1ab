"""torchrun: two CPU processes train one model with DistributedDataParallel; rank 0 alone prints and writes.

Each run is a real `torchrun --standalone --nproc-per-node 2 mm-train ...` on this machine (gloo). Its val loss
must be within 0.05 of one process trained on the same global batch (2 x batch size), its checkpoint must be the
only file written, and it must export and sample.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from clirun import BIN, assert_usage_error, run
from makemore.export.onnx_export import export_checkpoint
from makemore.runtime import OnnxSampler
from makemore.train.checkpoint import load_checkpoint, load_model
from makemore.train.launch import launch_from_env
from makemore.train.run import TrainRequest, run_training

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
# kind -> (flags, per-rank batch size): small enough that a 2-process run takes seconds here
CONFIGS = {
    "mlp": (("--n-hidden", 32, "--steps", 200), 64),
    "transformer": (("--n-layer", 1, "--n-head", 2, "--n-embd", 16, "--steps", 100, "--dropout", 0.1), 16),
}


def torchrun(cwd: Path, *args: object, timeout: float = 120) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc-per-node 2 mm-train ARGS` in `cwd`, one torch thread per process."""
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARIABLES}
    env["OMP_NUM_THREADS"] = "1"
    command = [BIN / "torchrun", "--standalone", "--nproc-per-node", "2", BIN / "mm-train", *args, "--threads", 1]
    return subprocess.run(list(map(str, command)), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("kind", CONFIGS)
def test_two_processes_train_one_model_as_one_process_with_the_global_batch(tmp_path, kind) -> None:
    flags, batch = CONFIGS[kind]
    folder = tmp_path / "run"
    folder.mkdir()
    result = torchrun(folder, kind, *flags, "--batch-size", batch, "--samples", 4)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [p.name for p in folder.iterdir()] == ["model.pt"]  # rank 1 wrote nothing, no temporary file left
    assert result.stderr.count("samples: ") == 1 and result.stderr.count("val loss") == 1  # rank 0 alone prints
    assert "Traceback" not in result.stderr

    checkpoint = load_checkpoint(folder / "model.pt")
    assert not any(key.startswith("module.") for key in checkpoint["state_dict"])  # the plain model's
    assert all(t.device.type == "cpu" for t in checkpoint["state_dict"].values())
    load_model(checkpoint)
    export_checkpoint(folder / "model.pt", tmp_path / "model.onnx")
    names = OnnxSampler(tmp_path / "model.onnx").sample(20, seed=1)
    assert len(names) == 20 and all(names)

    single = tmp_path / "single.pt"
    overrides = {k.removeprefix("--").replace("-", "_"): v for k, v in zip(flags[::2], flags[1::2], strict=True)}
    run_training(
        TrainRequest(kind, out=single, samples=0, quiet=True, overrides={**overrides, "batch_size": 2 * batch})
    )
    one, two = load_checkpoint(single)["metrics"]["val_loss"], checkpoint["metrics"]["val_loss"]
    print(f"{kind}: val loss {one:.4f} in one process (batch {2 * batch}), {two:.4f} in two (batch {batch} each)")
    assert abs(one - two) < 0.05
    assert two < 2.9  # learned something: the uniform loss is ln(27) = 3.30


def test_divergence_stops_both_ranks_with_one_error_and_no_file(tmp_path) -> None:
    result = torchrun(tmp_path, "mlp", "--n-hidden", 16, "--steps", 2000, "--lr", 1e6, timeout=90)
    assert result.returncode != 0
    assert result.stderr.count("error: training diverged at step") == 1, result.stderr[-3000:]
    assert list(tmp_path.iterdir()) == []


def test_a_bad_flag_stops_every_rank_before_they_meet(tmp_path) -> None:
    result = torchrun(tmp_path, "mlp", "--steps", 0, timeout=90)
    assert result.returncode != 0
    assert result.stderr.count("error: --steps must be a positive integer") == 1, result.stderr[-3000:]
    assert list(tmp_path.iterdir()) == []


def test_torchrun_variables_are_read_only_when_present() -> None:
    assert launch_from_env({}) is None
    full = {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    full |= {"MASTER_ADDR": "h", "MASTER_PORT": "1"}
    launch = launch_from_env(full)
    assert (launch.rank, launch.world_size, launch.local_rank, launch.local_world_size) == (1, 4, 1, 2)
    assert not launch.is_main
    for broken in ({"RANK": "0"}, {**full, "RANK": "x"}, {**full, "RANK": "4"}, {**full, "LOCAL_RANK": "2"}):
        with pytest.raises(Exception, match="torchrun"):
            launch_from_env(broken)


def test_mps_is_refused_under_torchrun() -> None:
    from makemore.train.device import DeviceError
    from makemore.train.distributed import backend

    assert backend(torch.device("cpu")) == "gloo" and backend(torch.device("cuda", 0)) == "nccl"
    with pytest.raises(DeviceError, match="cpu or cuda"):
        backend(torch.device("mps"))


def test_python_m_makemore_train_is_mm_train() -> None:
    result = subprocess.run([sys.executable, "-m", "makemore.train", "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "--device" in result.stdout and "per rank under torchrun" in result.stdout


@pytest.mark.parametrize(("rank", "timeout"), [("0", "2"), ("1", "2"), ("0", "soon"), ("0", "0")])
def test_a_rank_whose_peers_never_come_stops_with_one_line(tmp_path, rank, timeout) -> None:
    """torchrun's variables without the other ranks: one error line after MAKEMORE_RENDEZVOUS_TIMEOUT seconds
    (torch's own default waits 30 minutes in silence); a timeout that is no whole number is one line at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "RANK": rank, "WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1"}
    env |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "MAKEMORE_RENDEZVOUS_TIMEOUT": timeout}
    started = time.monotonic()
    result = run(
        "mm-train", "bigram-nn", "--steps", 2, "--samples", 0, "--out", tmp_path / "m.pt", env=env, timeout=120
    )
    assert_usage_error(result)
    assert ("could not meet" if timeout == "2" else "MAKEMORE_RENDEZVOUS_TIMEOUT") in result.stderr
    if (rank, timeout) == ("1", "2"):  # its own deadline: torch's client alone retried for about 10 s
        assert "rank 0 did not listen within 2 s" in result.stderr, result.stderr
    assert time.monotonic() - started < 60
    assert not (tmp_path / "m.pt").exists()


def test_a_rank_that_comes_before_rank_0_waits_and_they_train(tmp_path) -> None:
    """Ranks launched by hand (torchrun's variables, no torchrun): rank 1 probes rank 0's store port until it
    listens, then they meet, train, and rank 0 alone writes."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARIABLES} | {"OMP_NUM_THREADS": "1"}
    base |= {"WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    base["MAKEMORE_RENDEZVOUS_TIMEOUT"] = "60"

    def start(rank: int) -> subprocess.Popen:
        env = base | {"RANK": str(rank), "LOCAL_RANK": str(rank)}
        command = [BIN / "mm-train", "bigram-nn", "--steps", 5, "--samples", 0, "--threads", 1]
        command += ["--out", tmp_path / f"m{rank}.pt"]
        return subprocess.Popen(list(map(str, command)), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    late = start(1)
    time.sleep(1.0)
    first = start(0)
    outputs = [proc.communicate(timeout=120) for proc in (first, late)]
    assert (first.returncode, late.returncode) == (0, 0), outputs
    assert [p.name for p in tmp_path.iterdir()] == ["m0.pt"]
