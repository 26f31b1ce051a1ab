"""mm-export: one self-contained, checked ONNX file with the makemore metadata; bad checkpoints refused."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from checkpoint_formats import as_format_1
from clirun import assert_usage_error, run
from conftest import KINDS, STEP_KINDS
from makemore.data import OutputError
from makemore.export.onnx_export import export_checkpoint
from makemore.runtime.onnx_sampler import open_session
from makemore.train.checkpoint import CheckpointError


@pytest.mark.parametrize("kind", KINDS)
def test_export_is_one_file_with_metadata(model_files, kind) -> None:
    pt, onnx_path = model_files[kind]
    assert onnx_path.is_file()
    assert not list(onnx_path.parent.glob("*.data"))  # no external-data side file
    proto = onnx.load(str(onnx_path))
    onnx.checker.check_model(proto, full_check=True)
    checkpoint = torch.load(pt, weights_only=True)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["makemore.format_version"] == "1"
    assert meta["makemore.kind"] == kind
    assert meta["makemore.vocab"] == checkpoint["vocab"]
    assert meta["makemore.block_size"] == str(checkpoint["config"]["model"]["block_size"])
    assert meta["makemore.data_sha256"] == checkpoint["data_sha256"]
    config = json.loads(meta["makemore.config"])
    assert config == as_format_1(checkpoint)["config"]  # the metadata's config: flat, as checkpoints of format 1
    assert {"split_seed", "split_fractions", "max_len"} <= set(config)
    metrics = json.loads(meta["makemore.metrics"])
    for name in ("train_loss", "val_loss", "test_loss"):
        assert metrics[name] == checkpoint["metrics"][name]


@pytest.mark.parametrize("kind", KINDS)
def test_export_signature_and_dynamic_batch(model_files, kind) -> None:
    _, onnx_path = model_files[kind]
    proto = onnx.load(str(onnx_path))
    [graph_input] = proto.graph.input
    assert graph_input.name == "context"
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.INT64
    batch_dim = graph_input.type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.HasField("dim_value")  # symbolic: any batch
    [graph_output] = proto.graph.output
    assert graph_output.name == "logits"
    assert graph_output.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    block_size = int({p.key: p.value for p in proto.metadata_props}["makemore.block_size"])
    vocab_size = len({p.key: p.value for p in proto.metadata_props}["makemore.vocab"]) + 1
    session = open_session(onnx_path)
    rng = np.random.default_rng(0)
    for batch in (1, 7, 4096):
        context = rng.integers(0, vocab_size, (batch, block_size), dtype=np.int64)
        [logits] = session.run(["logits"], {"context": context})
        assert logits.shape == (batch, vocab_size) and logits.dtype == np.float32


def test_export_api_refuses_missing_folder(model_files, tmp_path) -> None:
    with pytest.raises(OutputError, match="output folder does not exist"):
        export_checkpoint(model_files["bigram"][0], tmp_path / "nowhere" / "model.onnx")
    (tmp_path / "link.onnx").symlink_to(tmp_path / "missing" / "x.onnx")  # a dangling link: its target's folder
    with pytest.raises(OutputError, match=f"output folder does not exist: {tmp_path / 'missing'}$"):
        export_checkpoint(model_files["bigram"][0], tmp_path / "link.onnx")


def test_export_cli_writes_the_file(model_files, tmp_path) -> None:
    out = tmp_path / "model.onnx"
    result = run("mm-export", model_files["bigram"][0], out)
    assert result.returncode == 0, result.stderr
    assert "max |diff|" in result.stderr
    assert onnx.load(str(out)).metadata_props
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


class Payload:
    """Unpickling this runs code: open(marker, "w") creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _bad_checkpoint(case: str, folder: Path) -> Path:
    path = folder / "model.pt"
    if case == "foreign":
        torch.save({"weights": torch.zeros(3), "epoch": 4}, path)
    elif case == "pickle-with-code":
        torch.save({"format_version": 1, "payload": Payload(folder / "pwned")}, path)
    elif case == "garbage":
        path.write_bytes(b"\x80\x04not really a checkpoint")
    return path  # "missing": never created


def test_pickle_payload_really_runs_code_when_unsafe(tmp_path) -> None:
    """Control for the test below: the payload does create its marker under weights_only=False."""
    path = _bad_checkpoint("pickle-with-code", tmp_path)
    torch.load(path, weights_only=False)
    assert (tmp_path / "pwned").exists()


@pytest.mark.parametrize("case", ["foreign", "pickle-with-code", "garbage", "missing"])
def test_export_cli_refuses_bad_checkpoints(tmp_path, case) -> None:
    checkpoint = _bad_checkpoint(case, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    out = tmp_path / "model.onnx"
    result = run("mm-export", checkpoint, out, cwd=tmp_path)
    assert_usage_error(result)
    assert not out.exists()
    assert not (tmp_path / "pwned").exists()  # the pickled code never ran
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("case", ["opset-99", "opset-24", "opset-3", "out-is-a-folder"])
def test_export_cli_refuses_bad_options(model_files, tmp_path, case) -> None:
    (tmp_path / "folder").mkdir()
    out = tmp_path / ("folder" if case == "out-is-a-folder" else "model.onnx")
    opset = case.removeprefix("opset-") if case.startswith("opset-") else "17"
    result = run("mm-export", model_files["mlp"][0], out, "--opset", opset)
    assert_usage_error(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"] and not list((tmp_path / "folder").iterdir())


@pytest.mark.parametrize("opset", [7, 8])
def test_an_opset_torch_cannot_export_the_kind_at_is_one_line(model_files, tmp_path, opset) -> None:
    """torch's C++ prints its IR graph on file descriptor 1 when an op has no export at the opset (the transformer's
    arange below 9): a subprocess, so that what reaches the descriptor is seen."""
    out = tmp_path / "model.onnx"
    result = run("mm-export", model_files["transformer"][0], out, "--opset", opset, env=dict(os.environ))
    assert_usage_error(result)
    assert "opset" in result.stderr and not out.exists()


def _with_weight(model_files, folder: Path, kind: str, tensor: str, value: float) -> Path:
    """A copy of the kind's checkpoint with `value` in the first element of `tensor`."""
    checkpoint = torch.load(model_files[kind][0], weights_only=True)
    checkpoint["state_dict"][tensor].view(-1)[0] = value
    path = folder / "bad.pt"
    torch.save(checkpoint, path)
    return path


NON_FINITE_PLACES = [
    ("mlp", "hidden.weight"),
    ("wavenet", "levels.0.norm.running_var"),  # a buffer, not a parameter
    ("bigram", "log_probs"),
    ("bigram-nn", "weight"),
]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(("kind", "tensor"), NON_FINITE_PLACES)
@pytest.mark.parametrize("quantize", [None, "int8"])
def test_export_refuses_non_finite_weights(model_files, tmp_path, kind, tensor, value, quantize) -> None:
    bad = _with_weight(model_files, tmp_path, kind, tensor, value)
    with pytest.raises(CheckpointError, match=f"non-finite weights \\(NaN or inf\\) in {re.escape(tensor)}"):
        export_checkpoint(bad, tmp_path / "model.onnx", quantize=quantize)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt"]


def test_export_cli_refuses_non_finite_weights_in_one_line(model_files, tmp_path) -> None:
    bad = _with_weight(model_files, tmp_path, "mlp", "output.bias", math.nan)
    result = run("mm-export", bad, tmp_path / "model.onnx")
    assert_usage_error(result)
    assert "non-finite weights" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt"]


# int8 for every kind; float32 for the step kinds too (the fused attention's contrib domain made torch warn on
# stderr for the recurrent kinds, whose graphs do not use it)
QUIET_EXPORTS = [(kind, ("--quantize", "int8")) for kind in (*KINDS, *STEP_KINDS)] + [(k, ()) for k in STEP_KINDS]


@pytest.mark.parametrize(("kind", "flags"), QUIET_EXPORTS)
def test_export_prints_only_its_result(model_files, tmp_path, kind, flags) -> None:
    result = run("mm-export", model_files[kind][0], tmp_path / "model.onnx", *flags)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("wrote ") and result.stderr.count("\n") == 1, result.stderr


def test_int8_export_of_extreme_finite_weights_is_one_line(model_files, tmp_path) -> None:
    """Weights near float32's limit made the quantizer and the KL check print numpy warnings."""
    bad = _with_weight(model_files, tmp_path, "mlp", "embedding.weight", 3e38)
    out = tmp_path / "model.onnx"
    result = run("mm-export", bad, out, "--quantize", "int8")
    assert "Warning" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    if result.returncode != 0:
        assert_usage_error(result)
        assert not out.exists()


@pytest.mark.parametrize(
    ("kind", "lr", "optimizer"), [("mlp", 1e4, "adamw"), ("mlp", 1e18, "sgd"), ("gru", 1e4, "adamw")]
)
def test_what_training_writes_at_a_huge_lr_exports(tmp_path, names_path, kind, lr, optimizer) -> None:
    """A run at a huge --lr that stays finite writes a checkpoint with huge weights; export takes it too (parity
    within what float32 allows at that scale) rather than refusing what training wrote."""
    from makemore.train.run import TrainRequest, run_training

    data = tmp_path / "names.txt"
    data.write_text("\n".join(names_path.read_text().split()[:300]) + "\n")
    pt = tmp_path / "model.pt"
    overrides = {"steps": 2, "lr": lr, "optimizer": optimizer, "n_hidden": 32, "n_embd": 8}
    assert run_training(TrainRequest(kind=kind, data=data, out=pt, samples=0, quiet=True, overrides=overrides))
    report = export_checkpoint(pt, tmp_path / "model.onnx")
    assert report.path.exists()


@pytest.mark.parametrize(
    ("where", "said"),
    [
        ("folder", "checkpoint path is a directory, not a file"),
        ("/dev/null", "checkpoint path is not a regular file"),
        ("missing", "checkpoint file not found"),
    ],
)
def test_a_checkpoint_path_that_is_no_file_says_what_it_is(tmp_path, where, said) -> None:
    """mm-export's input and mm-train's --resume: one line saying what the path is, and nothing written."""
    path = {"folder": tmp_path, "/dev/null": Path("/dev/null"), "missing": tmp_path / "none.pt"}[where]
    out = tmp_path / "out"
    for args in (("mm-export", path, f"{out}.onnx"), ("mm-train", "bigram-nn", "--resume", path, "--out", f"{out}.pt")):
        result = run(*args)
        assert_usage_error(result)
        assert f"error: {said}: {path}" in result.stderr
    assert not list(tmp_path.glob("out*"))
