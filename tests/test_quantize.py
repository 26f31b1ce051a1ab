"""mm-export --quantize int8: a smaller file, same metadata, same runtime, val loss within a stated tolerance."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from clirun import assert_usage_error, run
from conftest import KINDS
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from makemore.data import make_examples, read_words, split_words
from makemore.export.int8 import PER_COLUMN, PER_GATE_ROW, PER_ROW, quantize, scale_axes
from makemore.export.onnx_export import ExportError, export_checkpoint, mean_kl
from makemore.runtime import sampling
from makemore.runtime.onnx_sampler import OnnxSampler

# Tolerances of int8 against float32 (measured on the quick test models: val loss change <= 3e-5,
# mean KL on val contexts <= 6e-5, 11-16% of 1,000 seeded names differ).
MAX_VAL_LOSS_RISE = 0.01  # the bound on the mm-eval val loss
MAX_VAL_MEAN_KL = 1e-3  # nats per predicted character
MIN_SAME_NAMES = 750  # of 1,000 names drawn with the same seed


@pytest.fixture(scope="module")
def int8_files(model_files, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("int8")
    reports = {}
    for kind, (pt, _) in model_files.items():
        reports[kind] = export_checkpoint(pt, folder / f"{kind}.int8.onnx", quantize="int8")
    return reports


def val_words(names_path, sampler: OnnxSampler) -> list[str]:
    config = sampler.info.config
    return split_words(read_words(names_path), config["split_seed"], tuple(config["split_fractions"]))["val"]


@pytest.mark.parametrize("kind", KINDS)
def test_int8_file_is_smaller_and_keeps_the_metadata(model_files, int8_files, kind) -> None:
    _, float_path = model_files[kind]
    report = int8_files[kind]
    assert report.quantize == "int8" and report.size_bytes == report.path.stat().st_size
    assert report.size_bytes < report.float_size_bytes == float_path.stat().st_size
    assert not list(report.path.parent.glob("*.data"))  # one self-contained file
    proto = onnx.load(str(report.path))
    onnx.checker.check_model(proto, full_check=True)
    assert any(init.data_type == onnx.TensorProto.INT8 for init in proto.graph.initializer)
    assert not scale_axes(proto)  # no weight matrix is left in float32
    float_meta = {p.key: p.value for p in onnx.load(str(float_path)).metadata_props}
    int8_meta = {p.key: p.value for p in proto.metadata_props}
    assert int8_meta.keys() == float_meta.keys()
    assert {k for k in int8_meta if int8_meta[k] != float_meta[k]} == {"makemore.config"}
    assert json.loads(int8_meta["makemore.config"]) == {**json.loads(float_meta["makemore.config"]), "quantize": "int8"}


@pytest.mark.parametrize("kind", KINDS)
def test_int8_val_loss_and_names_within_tolerance(model_files, int8_files, names_path, kind) -> None:
    floats, int8 = OnnxSampler(model_files[kind][1]), OnnxSampler(int8_files[kind].path)
    assert int8.info.config["quantize"] == "int8" and "quantize" not in floats.info.config
    words = val_words(names_path, floats)
    float_loss, int8_loss = floats.nll(words), int8.nll(words)
    print(f"{kind}: val {float_loss:.6f} -> int8 {int8_loss:.6f}")
    assert int8_loss - float_loss <= MAX_VAL_LOSS_RISE
    x, _ = make_examples(words, floats.vocab, floats.block_size)
    assert mean_kl(floats.logits(x).astype(np.float64), int8.logits(x).astype(np.float64)) <= MAX_VAL_MEAN_KL
    same = sum(a == b for a, b in zip(floats.sample(1000, seed=0), int8.sample(1000, seed=0), strict=True))
    assert same >= MIN_SAME_NAMES


@pytest.mark.parametrize("kind", KINDS)
def test_an_int8_name_or_score_depends_on_nothing_but_its_seed_number_and_word(int8_files, kind, monkeypatch) -> None:
    """The promise of float32 files holds for int8 ones: the first 20 names of 600 are the names of 20, a request
    cut in two gives the names of one, decoders of any number of rows give the same names, and a name's score does
    not move with the names scored beside it (int8 weights, float32 arithmetic: a row's logits are its own)."""
    sampler = OnnxSampler(int8_files[kind].path)
    names = sampler.sample(600, seed=7)
    assert len(set(names)) > 1 and sampler.sample(20, seed=7) == names[:20]
    assert [name for chunk in sampler.sample_chunks(100, seed=7, start=450) for name in chunk] == names[450:550]
    monkeypatch.setattr(sampling, "rows_per_decoder", lambda info, max_len: 7)
    assert sampler.sample(600, seed=7) == names
    words = names[:40]
    alone = [sampler.score([word])[0] for word in words[:8]]
    assert sampler.score(words)[:8] == pytest.approx(alone, abs=1e-5)


def test_mm_eval_of_int8_mlp(model_files, tmp_path) -> None:
    """The CLI path end to end on the trained mlp: the int8 val loss rises by at most 0.01."""
    pt, float_path = model_files["mlp"]
    out = tmp_path / "mlp.int8.onnx"
    result = run("mm-export", pt, out, "--quantize", "int8")
    assert result.returncode == 0, result.stderr
    assert "int8" in result.stderr and out.stat().st_size < float_path.stat().st_size
    float_loss = float(run("mm-eval", float_path).stdout)
    int8_loss = float(run("mm-eval", out).stdout)
    assert abs(int8_loss - float_loss) <= MAX_VAL_LOSS_RISE
    gen = run("mm-gen", out, "--n", "5", "--seed", "1")
    assert gen.returncode == 0 and len(gen.stdout.splitlines()) == 5


def test_unknown_quantization_is_refused(model_files, tmp_path) -> None:
    pt, _ = model_files["mlp"]
    out = tmp_path / "model.onnx"
    assert_usage_error(run("mm-export", pt, out, "--quantize", "int4"))
    with pytest.raises(ExportError, match="unknown quantization"):
        export_checkpoint(pt, out, quantize="fp16")
    assert not out.exists()


@pytest.mark.parametrize(("kind", "opset"), [("mlp", 7), ("gru", 8)])
def test_int8_exports_at_the_oldest_opsets(model_files, tmp_path, kind, opset) -> None:
    """Opsets 7 and 8 go with IR version 3, where every initializer must be a graph input, which the quantizer's
    scales are not: the int8 file declares IR version 4, passes onnx.checker and samples."""
    report = export_checkpoint(model_files[kind][0], tmp_path / "int8.onnx", quantize="int8", opset=opset)
    proto = onnx.load(str(report.path))
    assert report.opset == opset and proto.ir_version >= 4
    assert len(set(OnnxSampler(report.path).sample(100, seed=0))) > 1


@settings(max_examples=200, deadline=None)
@given(
    weights=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=2, max_dims=3, max_side=6),
        elements=st.floats(allow_nan=False, allow_infinity=False, width=32),
    ),
    per=st.sampled_from([PER_COLUMN, PER_ROW, PER_GATE_ROW]),
)
@example(weights=np.array([[1e-45, 0.0], [3e-44, -1e-45]], dtype=np.float32), per=PER_COLUMN)  # subnormal columns
@example(weights=np.array([[1.81e-43], [2.5e-43]], dtype=np.float32), per=PER_ROW)  # a scale rounded below
@example(weights=np.array([[3.4028235e38, 1.0], [-3.4e38, 0.0]], dtype=np.float32), per=PER_ROW)  # float32's largest
def test_int8_weights_are_within_half_a_step_of_their_scale_for_any_finite_matrix(weights, per) -> None:
    """Any finite weights, subnormal to float32's largest: int8 values in [-127, 127], a positive finite scale per
    index of the kept axes, each weight within half a step of its int8 value times its scale (0 stays 0; within
    1e-4 of a step more near float32's largest), and that product finite in float32, as the graph computes it."""
    per = tuple(axis for axis in per if axis < weights.ndim)
    values, scale = quantize(weights, per)
    assert values.dtype == np.int8 and np.abs(values.astype(np.int16)).max(initial=0) <= 127
    assert scale.dtype == np.float32 and np.isfinite(scale).all() and (scale > 0).all()
    kept = {axis % weights.ndim for axis in per}
    assert all(scale.shape[axis] == (weights.shape[axis] if axis in kept else 1) for axis in range(weights.ndim))
    assert np.isfinite(values.astype(np.float32) * scale).all()
    back = values.astype(np.float64) * scale.astype(np.float64)
    assert (np.abs(back - weights) <= scale.astype(np.float64) * 0.5001).all()
    assert (back[weights == 0] == 0).all()
