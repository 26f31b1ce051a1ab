"""The checkpoint format: documented keys, weights_only round trip, atomic save, refusals."""

from __future__ import annotations

import os

import pytest
import torch
from conftest import KINDS
from makemore.contract import CHECKPOINT_FORMAT_VERSION
from makemore.data import OutputError, atomic_write, file_sha256
from makemore.train.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint


@pytest.mark.parametrize("kind", KINDS)
def test_checkpoint_has_documented_keys(model_files, names_path, kind) -> None:
    checkpoint = torch.load(model_files[kind][0], map_location="cpu", weights_only=True)
    assert {"format_version", "kind", "config", "vocab", "state_dict", "metrics", "data_sha256"} <= set(checkpoint)
    assert checkpoint["format_version"] == CHECKPOINT_FORMAT_VERSION == 2
    assert checkpoint["kind"] == kind
    config = checkpoint["config"]
    assert config["split_seed"] == 42
    assert config["split_fractions"] == [0.8, 0.1, 0.1]
    assert config["max_len"] == 15  # the longest name in the train split
    assert config["kind"] == kind
    assert config["model"]["block_size"] == {"bigram": 1, "bigram-nn": 1, "mlp": 4, "wavenet": 8}[kind]
    assert checkpoint["vocab"] == "abcdefghijklmnopqrstuvwxyz"
    model = load_model(load_checkpoint(model_files[kind][0]))
    context = torch.zeros(1, config["model"]["block_size"], dtype=torch.int64)
    assert len(checkpoint["vocab"]) == model(context).shape[1] - 1
    assert all(isinstance(v, torch.Tensor) for v in checkpoint["state_dict"].values())
    for name in ("train_loss", "val_loss", "test_loss"):
        assert type(checkpoint["metrics"][name]) is float
        assert 1.5 < checkpoint["metrics"][name] < 3.0
    assert checkpoint["data_sha256"] == file_sha256(names_path)


@pytest.mark.parametrize("kind", KINDS)
def test_checkpoint_round_trip(model_files, tmp_path, kind) -> None:
    checkpoint = load_checkpoint(model_files[kind][0])
    copy_path = tmp_path / "copy.pt"
    save_checkpoint(checkpoint, copy_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.pt"]  # no temporary file left
    again = torch.load(copy_path, weights_only=True)
    assert again["config"] == checkpoint["config"].to_dict() and again["metrics"] == checkpoint["metrics"]
    assert load_checkpoint(copy_path)["config"] == checkpoint["config"]
    context = torch.randint(0, 27, (64, checkpoint["config"].block_size), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(load_model(checkpoint)(context), load_model(load_checkpoint(copy_path))(context))


def test_saved_files_get_the_usual_permissions(model_files, tmp_path) -> None:
    """mkstemp's private 0600 must not leak into model.pt: a plain open() would give 0666 & ~umask."""
    umask = os.umask(0o022)
    try:
        save_checkpoint(load_checkpoint(model_files["bigram"][0]), tmp_path / "model.pt")
    finally:
        os.umask(umask)
    assert (tmp_path / "model.pt").stat().st_mode & 0o777 == 0o644


def test_atomic_write_keeps_old_file_on_failure(tmp_path) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(b"old")

    def broken(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OutputError, match="disk full"):
        atomic_write(path, broken)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"weights": torch.zeros(2)}, "not a makemore checkpoint"),
        ([1, 2, 3], "not a makemore checkpoint"),
        ({"format_version": 3}, "format version 3; this reads 1 and 2"),
        ({"format_version": 1, "kind": "mlp"}, "lacks checkpoint keys"),
    ],
)
def test_load_refuses_foreign_checkpoints(tmp_path, content, message) -> None:
    path = tmp_path / "other.pt"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_load_refuses_missing_and_garbage(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match=r"is not a checkpoint \(a model.pt of mm-train\)$"):
        load_checkpoint(garbage)
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(b"\x08\x08\x12\x07pytorch")  # an ONNX protobuf's first bytes (ir_version 8)
    with pytest.raises(CheckpointError, match="is not a checkpoint .*: it is an ONNX model"):
        load_checkpoint(onnx_file)
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(b"PK\x03\x04 but not a zip archive")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(damaged)
