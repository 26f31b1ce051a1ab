"""The step contract end to end, for every sequence kind: export, parity with torch (logits fed whole and one token
at a time; the names for every sampling option are in test_parity), mm-eval, int8, the server; and its refusals."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from clirun import assert_usage_error, run
from conftest import KINDS, STEP_KINDS, rewrite_metadata
from makemore.contract import ModelFileError, empty_state
from makemore.data import BOUNDARY
from makemore.export.onnx_export import export_checkpoint, mean_kl
from makemore.runtime.onnx_sampler import OnnxSampler
from makemore.runtime.options import SamplingError
from makemore.train.sampler import TorchSampler


@pytest.fixture(scope="module")
def samplers(model_files) -> dict[str, tuple[TorchSampler, OnnxSampler]]:
    return {kind: (TorchSampler(model_files[kind][0]), OnnxSampler(model_files[kind][1])) for kind in STEP_KINDS}


def random_words(sampler: OnnxSampler, rows: int, steps: int, seed: int = 0) -> np.ndarray:
    tokens = np.random.default_rng(seed).integers(1, sampler.vocab.size, (rows, steps), dtype=np.int64)
    tokens[:, 0] = BOUNDARY
    return tokens


@pytest.mark.parametrize("kind", STEP_KINDS)
def test_file_declares_the_step_contract_and_its_state(model_files, kind) -> None:
    proto = onnx.load(str(model_files[kind][1]))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["makemore.contract"] == "step"
    state = json.loads(meta["makemore.state"])
    names = [t["input"] for t in state["tensors"]]
    if kind == "transformer":
        assert names[:2] == ["past.0.key", "past.0.value"] and len(names) == 4
        assert [t["output"] for t in state["tensors"]][:2] == ["present.0.key", "present.0.value"]
        assert state["tensors"][0]["shape"] == ["batch", 4, "past", 8]
        assert state["max_positions"] == int(meta["makemore.block_size"]) == 16
    else:
        assert names == (["state.h", "state.c"] if kind == "lstm" else ["state.h"])
        assert state["tensors"][0]["shape"] == [1, "batch", 48] and state["max_positions"] is None
    assert [i.name for i in proto.graph.input] == ["tokens", *names]
    assert [o.name for o in proto.graph.output] == ["logits", *(t["output"] for t in state["tensors"])]


@pytest.mark.parametrize("kind", STEP_KINDS)
def test_a_call_on_0_rows_gives_empty_outputs_shaped_as_torchs(samplers, kind) -> None:
    """0 rows (one step, several, after a past): empty logits and state of the shapes torch gives, never a crash
    (onnxruntime's GRU and LSTM ops abort the process on a batch of 0)."""
    torch_sampler, onnx_sampler = samplers[kind]
    assert onnx_sampler.decoder().start([], 0).shape == (0, onnx_sampler.vocab.size)
    torch_state, onnx_state = empty_state(onnx_sampler.info, 0), empty_state(onnx_sampler.info, 0)
    for steps in (3, 1):
        tokens = np.zeros((0, steps), dtype=np.int64)
        want, torch_state = torch_sampler.forward.step_fn(tokens, torch_state)
        got, onnx_state = onnx_sampler.forward.step_fn(tokens, onnx_state)
        assert got.shape == want.shape == (0, steps, onnx_sampler.vocab.size) and got.dtype == np.float32
        assert [s.shape for s in onnx_state] == [s.shape for s in torch_state]
        assert all(s.dtype == np.float32 for s in onnx_state)
    for rows in (0, 1):  # the checks of a call still apply: a label given to an unlabelled model
        tokens, label = np.zeros((rows, 1), dtype=np.int64), np.zeros(rows, dtype=np.int64)
        with pytest.raises(ValueError, match="label"):
            onnx_sampler.forward.step_fn(tokens, empty_state(onnx_sampler.info, rows), label)


@pytest.mark.parametrize("kind", STEP_KINDS)
@pytest.mark.parametrize("rows", [1, 7, 300])
def test_logits_parity_whole_and_one_token_at_a_time(samplers, kind, rows) -> None:
    torch_sampler, onnx_sampler = samplers[kind]
    tokens = random_words(onnx_sampler, rows, 12, seed=rows)
    with torch.no_grad():
        expected = torch_sampler.model(torch.from_numpy(tokens)).numpy()
    step = onnx_sampler.forward.step_fn
    whole, state = step(tokens, empty_state(onnx_sampler.info, rows))
    np.testing.assert_allclose(whole, expected, rtol=1e-5, atol=1e-5)
    state, pieces = empty_state(onnx_sampler.info, rows), []
    for start, stop in ((0, 5), (5, 6), (6, 12)):  # a prefix, one token, the rest: any split gives the same
        logits, state = step(tokens[:, start:stop], state)
        pieces.append(logits)
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), expected, rtol=1e-5, atol=1e-5)
    torch_state = torch_sampler.forward.step_fn(tokens, empty_state(onnx_sampler.info, rows))[1]
    for got, want in zip(state, torch_state, strict=True):
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", STEP_KINDS)
def test_eval_and_score_match_torch(model_files, samplers, kind) -> None:
    pt, onnx_path = model_files[kind]
    result = run("mm-eval", onnx_path, "--split", "val")
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) == pytest.approx(torch.load(pt, weights_only=True)["metrics"]["val_loss"], abs=1e-4)
    torch_sampler, onnx_sampler = samplers[kind]
    names = ["emma", "a", "christopherjohn", "xqz"]
    np.testing.assert_allclose(onnx_sampler.score(names), torch_sampler.score(names), rtol=1e-5)
    samples = run("mm-eval", onnx_path, "--samples", 200)
    assert samples.returncode == 0 and "new" in samples.stdout


@pytest.mark.parametrize("kind", STEP_KINDS)
def test_int8_step_model_within_tolerance(model_files, names_path, tmp_path, kind) -> None:
    report = export_checkpoint(model_files[kind][0], tmp_path / "int8.onnx", quantize="int8")
    floats, int8 = OnnxSampler(model_files[kind][1]), OnnxSampler(report.path)
    assert int8.info.state == floats.info.state and int8.info.config["quantize"] == "int8"
    tokens = random_words(floats, 64, 12)
    kl = mean_kl(
        floats.forward.step_fn(tokens, empty_state(floats.info, 64))[0].reshape(-1, floats.vocab.size),
        int8.forward.step_fn(tokens, empty_state(int8.info, 64))[0].reshape(-1, floats.vocab.size),
    )
    assert kl <= 1e-3
    same = sum(a == b for a, b in zip(floats.sample(1000, seed=0), int8.sample(1000, seed=0), strict=True))
    assert same >= 750


def test_rnn_names_have_no_length_limit(model_files) -> None:
    result = run("mm-gen", model_files["rnn"][1], "--n", 200, "--seed", 0, "--max-len", 200, "--temperature", 1000)
    names = result.stdout.splitlines()
    assert result.returncode == 0 and len(names) == 200
    assert 100 < max(map(len, names)) <= 200  # near-uniform draws: some names run long, past any training word


def test_transformer_refuses_a_max_len_beyond_its_positions(model_files) -> None:
    sampler = OnnxSampler(model_files["transformer"][1])
    with pytest.raises(SamplingError, match="at most 15"):
        sampler.sample(3, max_len=16)
    assert len(sampler.sample(3, max_len=15, seed=0)) == 3
    result = run("mm-gen", model_files["transformer"][1], "--max-len", 16)
    assert_usage_error(result)
    assert "max_len must be at most 15" in result.stderr
    assert_usage_error(run("mm-eval", model_files["transformer"][1], "--score", "a" * 16))


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p.pop("makemore.state"),
        lambda p: p.update({"makemore.contract": "window"}),
        lambda p: p.update({"makemore.state": p["makemore.state"].replace('"past"', "3")}),
        lambda p: p.update({"makemore.state": p["makemore.state"].replace("present.0.key", "present.9.key")}),
        lambda p: p.update({"makemore.state": p["makemore.state"].replace("past.1.value", "past.7.value")}),
        lambda p: p.update({"makemore.state": p["makemore.state"].replace(", 8]", ", 9]")}),
        lambda p: p.update({"makemore.state": '{"tensors": []}'}),
        lambda p: p.update({"makemore.state": "[1]"}),
    ],
    ids=["no-state", "says-window", "past-fixed", "wrong-output", "wrong-input", "wrong-width", "empty", "list"],
)
def test_state_that_does_not_match_the_graph_is_one_line(model_files, tmp_path, change) -> None:
    bad = rewrite_metadata(model_files["transformer"][1], tmp_path / "bad.onnx", change)
    with pytest.raises(ModelFileError):
        OnnxSampler(bad)
    assert_usage_error(run("mm-gen", bad, "--n", 3))


@pytest.mark.parametrize("kind", KINDS)
def test_a_window_file_from_before_the_step_contract_still_loads(model_files, tmp_path, kind) -> None:
    old = rewrite_metadata(model_files[kind][1], tmp_path / "old.onnx", lambda p: p.pop("makemore.contract"))
    assert OnnxSampler(old).sample(20, seed=3) == OnnxSampler(model_files[kind][1]).sample(20, seed=3)


def test_server_generates_and_scores_with_a_step_model(model_files) -> None:
    from makemore.runtime.serve.app import create_app
    from starlette.testclient import TestClient

    sampler = OnnxSampler(model_files["gru"][1])
    with TestClient(create_app(sampler)) as client:
        names = client.post("/v1/generate", json={"n": 5, "seed": 2, "prefix": "ma"}).json()["names"]
        assert names == sampler.sample(5, seed=2, prefix="ma")
        scores = client.post("/v1/score", json={"names": ["emma"]}).json()["scores"]
        assert scores[0]["nll"] == pytest.approx(sampler.score(["emma"])[0])


def test_plot_embeddings_of_a_step_model(model_files, tmp_path) -> None:
    """A transformer's token embeddings plot from its ONNX file as an mlp's do."""
    result = run("mm-plot", "embeddings", model_files["transformer"][1], "-o", tmp_path / "e.png")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "e.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("kind", "opset"), [*((kind, None) for kind in (*KINDS, *STEP_KINDS)), *((kind, 7) for kind in ("rnn", "gru"))]
)
def test_a_rows_logits_and_score_do_not_depend_on_its_batch(model_files, tmp_path, kind, opset) -> None:
    """Bit for bit: a name's score alone and beside others, and a step call's row alone and in a batch. onnxruntime's
    RNN op (and every recurrent op below opset 9) computes one row by another kernel than several."""
    from makemore.export.onnx_export import export_checkpoint
    from makemore.runtime.onnx_sampler import OnnxSampler

    path = model_files[kind][1]
    if opset is not None:
        path = tmp_path / f"{kind}-{opset}.onnx"
        export_checkpoint(model_files[kind][0], path, opset=opset)
    sampler = OnnxSampler(path)
    words = sampler.sample(40, seed=3)
    assert sampler.score(words)[:10] == [sampler.score([word])[0] for word in words[:10]]
    if sampler.info.state is None:
        return
    forward = sampler.forward
    tokens = np.random.default_rng(0).integers(1, sampler.info.vocab.size, (6, 5))
    logits, state = forward.step_fn(tokens, empty_state(sampler.info, 6))
    for row in range(6):
        alone, _ = forward.step_fn(tokens[row : row + 1], empty_state(sampler.info, 1))
        np.testing.assert_array_equal(alone[0], logits[row])
