"""Issue 19, runtime half: a transformer's positions, the memory a file's state or a --workers flag sets, and logits
that turn non-finite only after some prefix. Hostile files are valid ONNX graphs built with onnx.helper."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from clirun import BIN, assert_usage_error, run
from conftest import rewrite_metadata
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from makemore.contract import STEP, ModelFileError, ModelInfo, ModelOutputError, StateSpec, StateTensor
from makemore.data import DatasetError, Vocab
from makemore.runtime.chunks import CHUNK_SIZE, chunk_spans
from makemore.runtime.onnx_sampler import OnnxSampler
from onnx import TensorProto, helper, numpy_helper

VOCAB = Vocab("abcdefghijklmnopqrstuvwxyz")
HUGE = 3e38  # two of them overflow float32
P_SHA = "makemore.data_sha256"


def save_graph(path: Path, graph: onnx.GraphProto, info: ModelInfo) -> Path:
    """`graph` as a model file at `path`, with `info`'s makemore metadata (checked by onnx.checker)."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    helper.set_model_props(model, info.to_metadata())
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def overflow_window_file(path: Path, after: str = "ba") -> Path:
    """A window model (block 3) with finite weights whose logits are finite for every context but those ending in
    `after`: logits = A[context[:, 1]] + B[context[:, 2]], one row of A and one of B at 3e38, inf when both add up."""
    size = VOCAB.size
    first, second = np.zeros((size, size), np.float32), np.zeros((size, size), np.float32)
    first[VOCAB.index[after[0]]], second[VOCAB.index[after[1]]] = HUGE, HUGE
    nodes = [
        helper.make_node("Gather", ["context", "one"], ["prev"], axis=1),
        helper.make_node("Gather", ["context", "two"], ["last"], axis=1),
        helper.make_node("Gather", ["A", "prev"], ["a"]),
        helper.make_node("Gather", ["B", "last"], ["b"]),
        helper.make_node("Add", ["a", "b"], ["logits"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(1, np.int64), "one"),
        numpy_helper.from_array(np.array(2, np.int64), "two"),
        numpy_helper.from_array(first, "A"),
        numpy_helper.from_array(second, "B"),
    ]
    graph = helper.make_graph(
        nodes,
        "overflow",
        [helper.make_tensor_value_info("context", TensorProto.INT64, ["batch", 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", size])],
        inits,
    )
    return save_graph(path, graph, ModelInfo("mlp", VOCAB, 3, config={"max_len": 10}))


def state_file(path: Path, shape: list[int | str]) -> Path:
    """A tiny step model declaring one state tensor of `shape` (its graph carries it through unchanged, whatever
    its size: the graph's own shapes are symbolic) and uniform logits."""
    dims = [f"d{i}" for i in range(len(shape))]
    nodes = [
        helper.make_node("Cast", ["tokens"], ["as_float"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["as_float", "axis"], ["column"]),
        helper.make_node("Mul", ["column", "zeros"], ["logits"]),
        helper.make_node("Identity", ["state.h"], ["next.h"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([2], np.int64), "axis"),
        numpy_helper.from_array(np.zeros(VOCAB.size, np.float32), "zeros"),
    ]
    graph = helper.make_graph(
        nodes,
        "state",
        [
            helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "steps"]),
            helper.make_tensor_value_info("state.h", TensorProto.FLOAT, dims),
        ],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "steps", VOCAB.size]),
            helper.make_tensor_value_info("next.h", TensorProto.FLOAT, dims),
        ],
        inits,
    )
    spec = StateSpec((StateTensor("state.h", "next.h", tuple(shape)),))
    return save_graph(path, graph, ModelInfo("gru", VOCAB, 1, config={"max_len": 8}, contract=STEP, state=spec))


def peak_rss_mb(script: str, *args: object) -> tuple[subprocess.CompletedProcess, float]:
    """Run a console script under /usr/bin/time: its result and its peak resident memory in MB."""
    command = ["/usr/bin/time", "-f", "maxrss_kb=%M", str(BIN / script), *map(str, args)]
    result = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in result.stderr.splitlines() if not line.startswith("Command exited with non-zero")]
    kb = int(lines[-1].removeprefix("maxrss_kb="))
    result.stderr = "".join(line + "\n" for line in lines[:-1])
    return result, kb / 1024


def set_positions(value: int | None):
    def change(props: dict) -> None:
        state = json.loads(props["makemore.state"])
        state["max_positions"] = value
        props["makemore.state"] = json.dumps(state)

    return change


def assert_one_error_line(result: subprocess.CompletedProcess, *words: str) -> None:
    """Exit 2, stderr exactly one `error:` line (no onnxruntime log, no traceback), naming `words`."""
    assert_usage_error(result)
    assert "onnxruntime:" not in result.stderr and "\x1b[" not in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


# 4. A transformer's positions


@pytest.fixture(scope="module")
def transformer(model_files, tmp_path_factory) -> Path:
    """The quick transformer (16 positions), its data hash cleared (no warning about other data)."""
    folder = tmp_path_factory.mktemp("transformer")
    return rewrite_metadata(model_files["transformer"][1], folder / "t.onnx", lambda p: p.update({P_SHA: ""}))


def test_eval_data_with_a_word_past_the_positions_is_one_line(transformer, tmp_path) -> None:
    data = tmp_path / "words.txt"
    data.write_text("".join(f"{'ab' * k}\n" for k in range(1, 40)))  # words of 2..78 characters
    for split in ("train", "val", "test"):
        result = run("mm-eval", transformer, "--data", data, "--split", split)
        assert_one_error_line(result, "longer than this model takes (15)")


@settings(max_examples=25, deadline=None)
@given(length=st.integers(1, 40))
def test_every_length_scores_or_is_refused_as_data(transformer, length) -> None:
    """For every word length, nll and score give a finite number (within the positions) or a DatasetError."""
    sampler = OnnxSampler(transformer)
    word = ("emma" * 10)[:length]
    for call in (sampler.nll, sampler.score):
        if length <= sampler.info.longest_name:
            assert np.isfinite(call([word, "al"])).all()
        else:
            with pytest.raises(DatasetError, match="longer than"):
                call([word, "al"])


@pytest.mark.parametrize("positions", [None, 17, 64, 4096])
def test_max_positions_beyond_the_graph_are_refused_at_load(model_files, tmp_path, positions) -> None:
    bad = rewrite_metadata(model_files["transformer"][1], tmp_path / "bad.onnx", set_positions(positions))
    with pytest.raises(ModelFileError, match="max_positions" if positions is None else "fails at position"):
        OnnxSampler(bad)
    assert_one_error_line(run("mm-gen", bad, "--n", 3, "--prefix", "a" * 14), "bad.onnx")
    assert_one_error_line(run("mm-eval", bad, "--score", "a" * 30), "bad.onnx")


def test_max_positions_within_the_graph_still_load(model_files, tmp_path) -> None:
    """Fewer declared positions than the table holds are safe: the file loads and the limit follows them."""

    def change(props: dict) -> None:
        set_positions(10)(props)
        props["makemore.config"] = json.dumps({**json.loads(props["makemore.config"]), "max_len": 9})

    fewer = rewrite_metadata(model_files["transformer"][1], tmp_path / "fewer.onnx", change)
    sampler = OnnxSampler(fewer)
    assert sampler.info.longest_name == 9 and len(sampler.sample(5, seed=1, max_len=9)) == 5


def test_server_refuses_a_too_long_name_with_422(transformer) -> None:
    from makemore.runtime.serve.app import create_app
    from starlette.testclient import TestClient

    with TestClient(create_app(OnnxSampler(transformer)), raise_server_exceptions=False) as client:
        answer = client.post("/v1/score", json={"names": ["a" * 16]})
        assert answer.status_code == 422 and "longer than" in answer.json()["error"]
        answer = client.post("/v1/generate", json={"n": 2, "prefix": "a" * 15, "max_len": 16})
        assert answer.status_code == 422 and answer.json()["field"] == "max_len"


def failing_window_file(path: Path) -> Path:
    """A window model (block 3) that passes the load probe (contexts of one repeated index) but fails on others:
    logits = T[context[:, 1] - context[:, 2]] with a table T of 10 rows (an index past -10..9 fails)."""
    nodes = [
        helper.make_node("Gather", ["context", "one"], ["prev"], axis=1),
        helper.make_node("Gather", ["context", "two"], ["last"], axis=1),
        helper.make_node("Sub", ["prev", "last"], ["gap"]),
        helper.make_node("Gather", ["T", "gap"], ["logits"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(1, np.int64), "one"),
        numpy_helper.from_array(np.array(2, np.int64), "two"),
        numpy_helper.from_array(np.zeros((10, VOCAB.size), np.float32), "T"),
    ]
    graph = helper.make_graph(
        nodes,
        "fails",
        [helper.make_tensor_value_info("context", TensorProto.INT64, ["batch", 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", VOCAB.size])],
        inits,
    )
    return save_graph(path, graph, ModelInfo("mlp", VOCAB, 3, config={"max_len": 10}))


def test_a_failing_run_is_one_line_without_onnxruntime_log(tmp_path) -> None:
    """A graph that passes every load check but fails on one context: one `error:` line, onnxruntime silent;
    the server answers 500 with the message."""
    from makemore.runtime.serve.app import create_app
    from starlette.testclient import TestClient

    path = failing_window_file(tmp_path / "fails.onnx")
    assert run("mm-eval", path, "--score", "ab").returncode == 0
    assert_one_error_line(run("mm-gen", path, "--n", 2, "--prefix", "za"), "the model fails to run", "Gather")
    assert_one_error_line(run("mm-eval", path, "--score", "zab"), "the model fails to run")
    with TestClient(create_app(OnnxSampler(path)), raise_server_exceptions=False) as client:
        answer = client.post("/v1/score", json={"names": ["zab"]})
        assert answer.status_code == 500 and "fails to run" in answer.json()["error"]


# 5. State and worker memory


def test_a_huge_declared_state_is_refused_before_any_allocation(tmp_path) -> None:
    path = state_file(tmp_path / "huge.onnx", ["batch", 65536, 512])
    assert path.stat().st_size < 4096
    result, peak = peak_rss_mb("mm-gen", path, "--n", 3)
    assert_one_error_line(result, "MiB per name")
    assert peak < 200, peak


@pytest.mark.parametrize("workers", [1, 1024])
def test_a_big_declared_state_runs_in_memory_bounded_by_the_request(tmp_path, workers) -> None:
    """8 MiB of state per name (allowed): the load probe runs one row, sampling holds few pieces at once."""
    path = state_file(tmp_path / "big.onnx", [1024, "batch", 2048])
    result, peak = peak_rss_mb("mm-gen", path, "--n", 64, "--seed", 0, "--workers", workers)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 64
    assert peak < 300, peak


def test_many_workers_do_not_multiply_memory(model_files) -> None:
    path = model_files["transformer"][1]
    peaks = {}
    for workers in (2, 1024):
        result, peaks[workers] = peak_rss_mb("mm-gen", path, "--n", 200_000, "--seed", 1, "--workers", workers)
        assert result.returncode == 0 and result.stdout.count("\n") == 200_000
    assert peaks[1024] < peaks[2] + 60, peaks


@pytest.mark.parametrize("kind", ["transformer", "gru", "mlp"])
def test_busy_workers_are_bounded_by_pieces_and_memory(model_files, kind) -> None:
    from makemore.runtime import sampling

    info = OnnxSampler(model_files[kind][1]).info
    rows = sampling.rows_per_decoder(info, info.max_len)
    for n in (1, 20, 5000, 3 * CHUNK_SIZE + 1):
        pieces = len(list(chunk_spans(7, 7 + n, rows)))
        assert sampling.busy_workers(1024, info, info.max_len, 7, n) <= pieces
    many = sampling.busy_workers(1024, info, info.max_len, 0, 10**9)
    assert 1 <= many and many * rows * sampling.row_bytes(info, info.max_len) <= sampling.IN_FLIGHT_BYTES
    assert sampling.busy_workers(2, info, info.max_len, 0, 10**9) == min(2, many)


def test_long_names_are_held_in_memory_bounded_by_the_decoders_bound(model_files) -> None:
    """A chunk's characters count in what a decoder may hold: 2,048 names of 2,000 characters (one piece of 2,048
    rows before, 65 MB of int64 picks and as much again stacked) stay near DECODER_BYTES, with the same names."""
    import tracemalloc

    from makemore.runtime import sampling

    sampler = OnnxSampler(model_files["mlp"][1], workers=1)
    request = {"n": 2048, "seed": 1, "min_len": 2000, "max_len": 2000, "top_k": 1}
    assert sampling.rows_per_decoder(sampler.info, 2000) < 2048  # the test asks for more than one piece
    tracemalloc.start()
    try:
        names = sampler.sample(**request)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(names) == 2048 and {len(name) for name in names} == {2000}
    assert peak < 1.5 * sampling.DECODER_BYTES, peak / 2**20
    assert sampler.sample(**{**request, "n": 5}) == names[:5]


@pytest.mark.parametrize("steps", [1, 2, 33, 200, 5000])
def test_a_step_models_prefix_is_fed_in_calls_of_bounded_positions(steps) -> None:
    """StepDecoder.start feeds a long prefix in groups of rows, each call at most START_TOKENS positions and
    START_PAIRS pairs (or 2 rows), and gives what one call of every row gives (a row's outputs are its own)."""
    from makemore.runtime import sampling

    spec = StateSpec((StateTensor("state.h", "next.h", (1, "batch", 4)),))
    info = ModelInfo("gru", VOCAB, 1, contract=STEP, state=spec)
    calls: list[tuple[int, int]] = []

    def step_fn(tokens: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        calls.append(tokens.shape)
        logits = np.cumsum(tokens, axis=1)[:, :, None] * np.ones(VOCAB.size, dtype=np.float32)
        return logits.astype(np.float32), [state[0] + tokens.sum(axis=1)[None, :, None]]

    prefix = [1 + i % 26 for i in range(steps - 1)]
    decoder = sampling.StepDecoder(step_fn, info)
    logits = decoder.start(prefix, 512)
    assert logits.shape == (512, VOCAB.size) and decoder.state[0].shape == (1, 512, 4)
    np.testing.assert_array_equal(logits[:, 0], sum(prefix))
    np.testing.assert_array_equal(decoder.state[0], sum(prefix))
    assert sum(rows for rows, _ in calls) == 512
    for rows, width in calls:
        assert width == steps and (
            rows <= 2 or (rows * steps <= sampling.START_TOKENS and rows * steps**2 <= sampling.START_PAIRS)
        )


def test_a_long_prefix_gives_the_same_names_in_any_grouping(model_files, monkeypatch) -> None:
    """The groups of StepDecoder.start do not change a name: a gru's and a transformer's names with a prefix are
    the same when each call feeds a few rows."""
    from makemore.runtime import sampling

    for kind, prefix in (("gru", "mari" * 10), ("transformer", "mari")):
        sampler = OnnxSampler(model_files[kind][1])
        request = {"n": 600, "seed": 4, "prefix": prefix, "max_len": min(len(prefix) + 8, sampler.info.longest_name)}
        whole = sampler.sample(**request)
        monkeypatch.setattr(sampling, "START_TOKENS", 3 * (len(prefix) + 1))
        assert sampler.sample(**request) == whole, kind
        monkeypatch.undo()


def test_a_state_that_grows_otherwise_than_declared_is_refused_mid_run(model_files) -> None:
    """Every step call's new state must be its input grown by the steps fed (no silent growth)."""
    sampler = OnnxSampler(model_files["gru"][1])
    step = sampler.forward.step_fn
    tokens = np.zeros((3, 2), np.int64)
    state = [np.zeros((1, 3, 48), np.float32)]
    logits, new_state = step(tokens, state)
    assert logits.shape == (3, 2, sampler.vocab.size)
    from makemore.contract.signature import check_step_outputs

    with pytest.raises(ModelOutputError, match="state"):
        check_step_outputs(tokens, state, logits, [np.zeros((1, 3, 49), np.float32)], sampler.info)


# 6. Non-finite logits after some prefix


@pytest.fixture(scope="module")
def overflow(tmp_path_factory) -> Path:
    return overflow_window_file(tmp_path_factory.mktemp("overflow") / "overflow.onnx")


def test_overflow_file_passes_the_load_probe_and_is_finite_elsewhere(overflow) -> None:
    sampler = OnnxSampler(overflow)
    assert np.isfinite(sampler.score(["ab", "bb", "aa"])).all()
    with pytest.raises(ModelOutputError, match="non-finite"):
        sampler.score(["bab"])


def test_gen_refuses_non_finite_logits(overflow) -> None:
    assert_one_error_line(run("mm-gen", overflow, "--n", 5, "--prefix", "ba"), "non-finite")
    assert_one_error_line(run("mm-gen", overflow, "--n", 2000, "--seed", 0), "non-finite")  # some names meet "ba"
    ok = run("mm-gen", overflow, "--n", 5, "--prefix", "c", "--seed", 0)
    assert ok.returncode == 0 and len(ok.stdout.splitlines()) == 5


def test_eval_refuses_non_finite_logits(overflow, tmp_path) -> None:
    assert_one_error_line(run("mm-eval", overflow, "--score", "emma", "abab"), "non-finite")
    data = tmp_path / "names.txt"
    data.write_text("".join(f"{a}ba{b}\n" for a in "cdefg" for b in "xyz"))  # every split meets "ba"
    for split in ("train", "val", "test"):
        assert_one_error_line(run("mm-eval", overflow, "--data", data, "--split", split), "non-finite")


def test_server_answers_500_with_a_message_never_null(overflow) -> None:
    from makemore.runtime.serve.app import create_app
    from starlette.testclient import TestClient

    with TestClient(create_app(OnnxSampler(overflow)), raise_server_exceptions=False) as client:
        for path, body in (("/v1/score", {"names": ["emma", "bab"]}), ("/v1/generate", {"n": 3, "prefix": "ba"})):
            answer = client.post(path, json=body)
            assert answer.status_code == 500, answer.text
            assert "non-finite" in answer.json()["error"] and answer.json()["error"] is not None
        assert client.post("/v1/score", json={"names": ["emma"]}).status_code == 200


def test_torch_free_check_is_cheap() -> None:
    """The per-step check costs little next to a step's draw (one isfinite pass over [rows, V])."""
    import timeit

    from makemore.contract.signature import check_finite_logits
    from makemore.runtime.sampling import draw, next_token_weights

    logits = np.random.default_rng(0).normal(size=(2048, 27)).astype(np.float32)
    uniforms = np.random.default_rng(1).random(2048)
    check = min(timeit.repeat(lambda: check_finite_logits(logits, "x"), number=50, repeat=5))
    step = min(timeit.repeat(lambda: draw(next_token_weights(logits), uniforms), number=50, repeat=5))
    assert check < 0.25 * step, (check, step)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_the_scoring_api_takes_any_iterable_of_names_and_refuses_what_is_not_one(model_files, backend) -> None:
    """score/nll/nll_totals read an iterator once (it was used up by the checks, so nothing was scored), refuse one
    string (scored letter by letter), an item that is not a string, an empty name, and a loss of no words (it was
    a ZeroDivisionError)."""
    from makemore.train.sampler import TorchSampler

    pt, onnx_path = model_files["mlp"]
    sampler = OnnxSampler(onnx_path) if backend == "onnx" else TorchSampler(pt)
    names = ["emma", "ava", "olivia"]
    assert sampler.score(iter(names)) == sampler.score(names) and len(sampler.score(names)) == 3
    assert sampler.nll(iter(names)) == sampler.nll(names)
    assert sampler.nll_totals(n for n in names) == sampler.nll_totals(names)
    for bad, message in (("emma", "not one string"), (["emma", 3], "must be strings"), (["emma", ""], "empty name")):
        for call in (sampler.score, sampler.nll, sampler.nll_totals):
            with pytest.raises(DatasetError, match=message):
                call(bad)
    with pytest.raises(DatasetError, match="no words"):
        sampler.nll([])
    assert sampler.score([]) == []
    for call in (sampler.score, sampler.nll, sampler.nll_totals):  # not a list at all: a TypeError before
        with pytest.raises(DatasetError, match="give a list of names, got NoneType"):
            call(None)
    from makemore.runtime.options import SamplingError

    with pytest.raises(SamplingError, match="options must be a SamplingOptions or None, got dict"):
        sampler.sample(3, {"seed": 1})  # an AttributeError before
    with pytest.raises(SamplingError, match="label must be a string or null, got 0"):
        sampler.score(names, label=0)  # the message sample(label=0) gives
    with pytest.raises(TypeError, match="until needs a threading.Event"):
        sampler.until(None)  # an AttributeError at the first call before


# --- a graph's own demands, checked from its bytes before a session is made (contract/wire.py) --------------------


@pytest.fixture(scope="module")
def mlp_onnx(model_files) -> Path:
    return model_files["mlp"][1]


def _with_side_branch(mlp_onnx: Path, folder: Path, name: str, nodes, initializers) -> Path:
    """The mlp file with a side branch added to its logits (times 0): the names stay, the graph's demands do not."""
    model = onnx.load(str(mlp_onnx))
    for node in model.graph.node:
        node.output[:] = ["logits.raw" if out == "logits" else out for out in node.output]
    model.graph.initializer.extend(numpy_helper.from_array(value, key) for key, value in initializers.items())
    model.graph.node.extend([*nodes, helper.make_node("Add", ["logits.raw", "side"], ["logits"])])
    path = folder / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def _loop_body():
    scalar = [helper.make_tensor_value_info(n, t, []) for n, t in (("i", TensorProto.INT64), ("c", TensorProto.BOOL))]
    value = helper.make_tensor_value_info("v", TensorProto.FLOAT, [])
    outs = [
        helper.make_tensor_value_info("c2", TensorProto.BOOL, []),
        helper.make_tensor_value_info("v2", TensorProto.FLOAT, []),
    ]
    nodes = [helper.make_node("Identity", ["c"], ["c2"]), helper.make_node("Identity", ["v"], ["v2"])]
    return helper.make_graph(nodes, "body", [*scalar, value], outs)


ONE = np.array([1.0], np.float32)
HOSTILE_GRAPHS = {
    "a loop of 10**12 steps": (
        [helper.make_node("Loop", ["trips", "yes", "zero"], ["side"], body=_loop_body())],
        {"trips": np.array(10**12, np.int64), "yes": np.array(True), "zero": np.array(0.0, np.float32)},
        "runs a Loop",
    ),
    "ConstantOfShape of 2**28": (
        [
            helper.make_node("ConstantOfShape", ["shape"], ["big"], value=numpy_helper.from_array(ONE)),
            helper.make_node("ReduceSum", ["big"], ["sum"], keepdims=0),
            helper.make_node("Mul", ["sum", "zero"], ["side"]),
        ],
        {"shape": np.array([1 << 14, 1 << 14], np.int64), "zero": np.array(0.0, np.float32)},
        "asks a ConstantOfShape for more than",
    ),
    "Expand to 2**28 from a Constant node": (
        [
            helper.make_node("Constant", [], ["shape"], value=numpy_helper.from_array(np.array([1 << 28], np.int64))),
            helper.make_node("Expand", ["zero", "shape"], ["big"]),
            helper.make_node("ReduceSum", ["big"], ["side"], keepdims=0),
        ],
        {"zero": np.array([0.0], np.float32)},
        "asks an Expand for more than",
    ),
    "Range of 2**30": (
        [
            helper.make_node("Range", ["start", "limit", "delta"], ["big"]),
            helper.make_node("ReduceSum", ["big"], ["sum"], keepdims=0),
            helper.make_node("Mul", ["sum", "zero"], ["side"]),
        ],
        {
            "start": np.array(0.0, np.float32),
            "limit": np.array(2.0**30, np.float32),
            "delta": np.array(1.0, np.float32),
            "zero": np.array(0.0, np.float32),
        },
        "asks a Range for more than",
    ),
}


HOSTILE_GRAPHS["a shape of 65 values (more than the check reads)"] = (
    [
        helper.make_node("ConstantOfShape", ["shape"], ["big"], value=numpy_helper.from_array(ONE)),
        helper.make_node("ReduceSum", ["big"], ["sum"], keepdims=0),
        helper.make_node("Mul", ["sum", "zero"], ["side"]),
    ],
    {"shape": np.array([1] * 64 + [1 << 28], np.int64), "zero": np.array(0.0, np.float32)},
    "computes a ConstantOfShape from constants whose shape is not read",
)
HOSTILE_GRAPHS["Range to a Constant's value_int"] = (
    [
        helper.make_node("Constant", [], ["limit"], value_int=1 << 30),
        helper.make_node("Range", ["start", "limit", "delta"], ["big"]),
        helper.make_node("ReduceSum", ["big"], ["sum"], keepdims=0),
        helper.make_node("Cast", ["sum"], ["float"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["float", "zero"], ["side"]),
    ],
    {"start": np.array(0, np.int64), "delta": np.array(1, np.int64), "zero": np.array(0.0, np.float32)},
    "asks a Range for more than",
)


N14 = 1 << 14
ZERO = {"zero": np.array(0.0, np.float32)}


def _reduced(name: str) -> list:
    return [
        helper.make_node("ReduceSum", [name], ["sum"], keepdims=0),
        helper.make_node("Mul", ["sum", "zero"], ["side"]),
    ]


# what onnxruntime's folding computed as it loaded a file (before folding was the runtime's, within bounds)
HOSTILE_GRAPHS["the broadcast of two constants (2**28 values)"] = (
    [helper.make_node("Add", ["a", "b"], ["big"]), *_reduced("big")],
    {"a": np.zeros((N14, 1), np.float32), "b": np.zeros((1, N14), np.float32), **ZERO},
    "asks an Add for more than",
)
HOSTILE_GRAPHS["ConstantOfShape of a product of constants"] = (
    [
        helper.make_node("Mul", ["k", "k"], ["shape"]),
        helper.make_node("ConstantOfShape", ["shape"], ["big"], value=numpy_helper.from_array(ONE)),
        *_reduced("big"),
    ],
    {"k": np.array([N14, N14], np.int64), **ZERO},
    "asks a ConstantOfShape for more than",
)
HOSTILE_GRAPHS["a chain of Tiles"] = (
    [helper.make_node("Tile", [f"t{i}", "r"], [f"t{i + 1}"]) for i in range(4)] + _reduced("t4"),
    {"t0": np.zeros(16, np.float32), "r": np.array([128], np.int64), **ZERO},
    "asks a Tile for more than",
)
HOSTILE_GRAPHS["a chain of Concats (12 GB before)"] = (
    [helper.make_node("Concat", [f"c{i}", f"c{i}"], [f"c{i + 1}"], axis=0) for i in range(24)] + _reduced("c24"),
    {"c0": np.zeros(64, np.float32), **ZERO},
    "computes more from its constants than a file of its size may",
)
HOSTILE_GRAPHS["a chain of products of constant matrices"] = (
    [helper.make_node("MatMul", [f"p{i}", "p0"], [f"p{i + 1}"]) for i in range(40)] + _reduced("p40"),
    {"p0": np.zeros((1024, 1024), np.float32), **ZERO},
    "computes more from its constants than a file of its size may",
)
HOSTILE_GRAPHS["a size from an op the check does not compute ahead"] = (
    [
        helper.make_node("Max", ["k", "k"], ["shape"]),
        helper.make_node("ConstantOfShape", ["shape"], ["big"], value=numpy_helper.from_array(ONE)),
        *_reduced("big"),
    ],
    {"k": np.array([N14, N14], np.int64), **ZERO},
    r"computes a Max from constants \(an op the runtime does not compute ahead\)",
)


HOSTILE_GRAPHS["the least integer divided by -1 (onnxruntime's process died of it)"] = (
    [
        helper.make_node("Div", ["least", "minus"], ["q"]),
        helper.make_node("Cast", ["q"], ["f"], to=TensorProto.FLOAT),
        *_reduced("f"),
    ],
    {"least": np.array([-(1 << 63)], np.int64), "minus": np.array([-1], np.int64), **ZERO},
    "computes a Div from constants dividing the least integer by -1",
)
HOSTILE_GRAPHS["a division by zero among more values than the check reads"] = (
    [
        helper.make_node("Div", ["many", "some_zero"], ["q"]),
        helper.make_node("Cast", ["q"], ["f"], to=TensorProto.FLOAT),
        *_reduced("f"),
    ],
    {"many": np.ones(100, np.int64), "some_zero": np.array([1] * 99 + [0], np.int64), **ZERO},
    "computes a Div from constants dividing by zero",
)
HOSTILE_GRAPHS["a constant cast to strings"] = (
    [
        helper.make_node("Cast", ["zero"], ["text"], to=TensorProto.STRING),
        helper.make_node("Cast", ["text"], ["back"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["back", "zero"], ["side"]),
    ],
    ZERO,
    "of a type the runtime does not fold",
)


@pytest.mark.parametrize("reverse", [False, True], ids=["in order", "nodes listed backwards"])
def test_what_a_graph_computes_from_constants_is_bounded_in_any_node_order(mlp_onnx, tmp_path, reverse) -> None:
    """onnxruntime sorts a graph's nodes: the check follows what each node reads, not the order they are listed."""
    nodes, initializers, message = HOSTILE_GRAPHS["ConstantOfShape of a product of constants"]
    model = onnx.load(str(_with_side_branch(mlp_onnx, tmp_path, "ordered", nodes, initializers)))
    if reverse:
        nodes = list(reversed(model.graph.node))
        del model.graph.node[:]
        model.graph.node.extend(nodes)
    onnx.save(model, str(tmp_path / "hostile.onnx"))
    with pytest.raises(ModelFileError, match=message):
        OnnxSampler(tmp_path / "hostile.onnx")


@pytest.mark.parametrize("case", [case for case, (_, _, message) in HOSTILE_GRAPHS.items() if message])
def test_a_graph_that_asks_for_unbounded_work_is_refused_before_it_runs(mlp_onnx, tmp_path, case) -> None:
    nodes, initializers, message = HOSTILE_GRAPHS[case]
    path = _with_side_branch(mlp_onnx, tmp_path, "hostile", nodes, initializers)
    with pytest.raises(ModelFileError, match=message):
        OnnxSampler(path)
    result = run("mm-gen", path, "--n", 1, timeout=30)
    assert_usage_error(result)


def test_a_bounded_side_branch_still_loads_and_gives_the_same_names(mlp_onnx, tmp_path) -> None:
    """The check refuses what a graph asks, not how it is built: a small constant size loads (and the names are
    the file's own)."""
    nodes = [
        helper.make_node("ConstantOfShape", ["shape"], ["small"], value=numpy_helper.from_array(ONE)),
        helper.make_node("ReduceSum", ["small"], ["sum"], keepdims=0),
        helper.make_node("Mul", ["sum", "zero"], ["side"]),
    ]
    initializers = {"shape": np.array([1 << 12, 1 << 12], np.int64), "zero": np.array(0.0, np.float32)}
    path = _with_side_branch(mlp_onnx, tmp_path, "small", nodes, initializers)
    assert OnnxSampler(path).sample(50, seed=3) == OnnxSampler(mlp_onnx).sample(50, seed=3)


def test_functions_of_its_own_and_broken_bytes_are_one_line(mlp_onnx, tmp_path) -> None:
    model = onnx.load(str(mlp_onnx))
    function = onnx.helper.make_function(
        "local", "Twice", ["x"], ["y"], [helper.make_node("Add", ["x", "x"], ["y"])], [helper.make_opsetid("", 17)]
    )
    model.functions.append(function)
    model.opset_import.append(helper.make_opsetid("local", 1))
    with_function = tmp_path / "function.onnx"
    onnx.save(model, str(with_function))
    with pytest.raises(ModelFileError, match="functions of its own"):
        OnnxSampler(with_function)
    data = mlp_onnx.read_bytes()
    for cut in (1, 7, len(data) // 2, len(data) - 3):
        broken = tmp_path / f"cut{cut}.onnx"
        broken.write_bytes(data[:cut])
        assert_usage_error(run("mm-gen", broken, "--n", 1))


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_the_graph_check_reads_any_bytes_in_one_line_or_passes(mlp_onnx_bytes, data) -> None:
    """contract/wire.py reads the protobuf itself: any bytes (a valid file's with bytes changed or cut, or noise)
    pass or raise its one-line GraphError, never another exception."""
    from makemore.contract.constants import check_graph
    from makemore.contract.wire import GraphError

    original = mlp_onnx_bytes
    kind = data.draw(st.sampled_from(["noise", "changed", "cut"]))
    if kind == "noise":
        raw = data.draw(st.binary(max_size=300))
    else:
        raw = bytearray(original)
        if kind == "cut":
            raw = raw[: data.draw(st.integers(0, len(raw)))]
        for _ in range(data.draw(st.integers(1, 8))) if kind == "changed" else ():
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        raw = bytes(raw)
    try:
        check_graph(raw, "model.onnx")
    except GraphError as err:
        assert "\n" not in str(err) and str(err).startswith("model.onnx")


@pytest.fixture(scope="module")
def mlp_onnx_bytes(model_files) -> bytes:
    return model_files["mlp"][1].read_bytes()


def _pb(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field: its key, its length and `payload`."""
    from makemore.contract.wire import message_field

    return message_field(number, payload)


def _cos_of(shape_name: str) -> list:
    return [
        helper.make_node("ConstantOfShape", [shape_name], ["big"], value=numpy_helper.from_array(ONE)),
        helper.make_node("ReduceSum", ["big"], ["sum"], keepdims=0),
        helper.make_node("Mul", ["sum", "zero"], ["side"]),
    ]


def test_protobuf_spellings_do_not_hide_a_constant_size(mlp_onnx, tmp_path) -> None:
    """The check reads the protobuf as onnxruntime does: a second `graph` field is merged into the first (its
    initializer is the graph's), the last `raw_data` of a tensor counts, and a subgraph's Constant of an outer
    initializer's name is refused (onnxruntime refuses it too: a name assigned twice), not taken for the outer
    value."""
    zero = {"zero": np.array(0.0, np.float32)}
    base = _with_side_branch(mlp_onnx, tmp_path, "base", _cos_of("s"), zero).read_bytes()
    big = numpy_helper.from_array(np.array([1 << 14, 1 << 14], np.int64), "s").SerializeToString()
    merged = base + _pb(7, _pb(5, _pb(9, np.array([0, 0], np.int64).tobytes()) + big))  # raw [0, 0], then the size
    branch = helper.make_graph(
        [helper.make_node("Constant", [], ["s"], value=numpy_helper.from_array(np.array([1 << 14, 1 << 14], np.int64))),
         *_cos_of("s")[:2]],
        "then", [], [helper.make_tensor_value_info("sum", TensorProto.FLOAT, [])],
    )  # fmt: skip
    other = helper.make_graph(
        [helper.make_node("Constant", [], ["sum"], value=numpy_helper.from_array(np.array(0.0, np.float32)))],
        "else", [], [helper.make_tensor_value_info("sum", TensorProto.FLOAT, [])],
    )  # fmt: skip
    shadowed = _with_side_branch(
        mlp_onnx,
        tmp_path,
        "shadowed",
        [helper.make_node("If", ["yes"], ["sum"], then_branch=branch, else_branch=other), _cos_of("s")[2]],
        {"yes": np.array(True), "s": np.array([1], np.int64), **zero},
    ).read_bytes()
    for name, data, why in (
        ("merged", merged, "asks a ConstantOfShape for more than"),
        ("shadowed", shadowed, "'s' is computed twice"),
    ):
        path = tmp_path / f"{name}.onnx"
        path.write_bytes(data)
        with pytest.raises(ModelFileError, match=why):
            OnnxSampler(path)


def test_weights_in_another_file_are_refused(mlp_onnx, tmp_path) -> None:
    """onnxruntime would read them from a path the file names (relative to the working folder); makemore files
    hold their weights."""
    model = onnx.load(str(mlp_onnx))
    onnx.save(model, str(tmp_path / "split.onnx"), save_as_external_data=True, location="weights.bin", size_threshold=0)
    with pytest.raises(ModelFileError, match="weights are in another file"):
        OnnxSampler(tmp_path / "split.onnx")
    assert_usage_error(run("mm-gen", tmp_path / "split.onnx", "--n", 1))


@pytest.mark.parametrize("where", ["sparse_initializer", "a Constant's sparse_value"])
def test_a_sparse_tensor_is_refused_before_onnxruntime_makes_it_dense(mlp_onnx, tmp_path, where) -> None:
    """onnxruntime made a sparse tensor of 2**28 values and one stored value dense as it loaded the file (2 GB),
    whatever read it; makemore files hold none."""
    values = numpy_helper.from_array(np.array([1.0], np.float32), "big")
    sparse = helper.make_sparse_tensor(values, numpy_helper.from_array(np.array([5], np.int64), "at"), [1 << 28])
    nodes = [
        helper.make_node("ReduceSum", ["logits.raw"], ["dyn"], keepdims=0),  # computed at every call: not folded
        helper.make_node("Mul", ["big", "dyn"], ["product"]),
        *_reduced("product"),
    ]
    if where != "sparse_initializer":
        nodes.insert(0, helper.make_node("Constant", [], ["big"], sparse_value=sparse))
    path = _with_side_branch(mlp_onnx, tmp_path, "sparse", nodes, ZERO)
    if where == "sparse_initializer":
        model = onnx.load(str(path))
        model.graph.sparse_initializer.append(sparse)
        onnx.save(model, str(path))
    with pytest.raises(ModelFileError, match="holds a sparse tensor"):
        OnnxSampler(path)


@pytest.mark.parametrize("ir_version", [3, 8])
def test_an_initializer_listed_as_an_input_is_bounded_as_a_constant(mlp_onnx, tmp_path, ir_version) -> None:
    """An initializer that is also a graph input (every initializer of an opset 7 export, at IR 3; a default at IR
    4 and later) is never fed by the runtime: onnxruntime computed from it at every call (2 GB a call) while the
    check took it for a fed input."""
    nodes, initializers, message = HOSTILE_GRAPHS["the broadcast of two constants (2**28 values)"]
    model = onnx.load(str(_with_side_branch(mlp_onnx, tmp_path, "listed", nodes, initializers)))
    model.ir_version = ir_version
    model.graph.input.extend(helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in ("a", "b"))
    onnx.save(model, str(tmp_path / "listed.onnx"))
    with pytest.raises(ModelFileError, match=message):
        OnnxSampler(tmp_path / "listed.onnx")


CONTEXTS = st.one_of(
    st.none(),
    st.text(max_size=4),
    st.integers(-3, 30),
    st.lists(st.lists(st.integers(-2, 29), min_size=0, max_size=5), min_size=0, max_size=3),
    st.tuples(
        st.sampled_from(["int64", "int32", "uint8", "float32", "bool"]),
        st.integers(0, 3),
        st.integers(0, 5),
        st.integers(-2, 29),
    ).map(lambda t: np.full((t[1], t[2]), t[3]).astype(t[0])),
)


@pytest.fixture(scope="module")
def window_pair(model_files):
    from makemore.train.sampler import TorchSampler

    pt, onnx_path = model_files["mlp"]
    return OnnxSampler(onnx_path), TorchSampler(pt)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(context=CONTEXTS)
def test_logits_take_indices_of_the_right_shape_or_refuse_them_alike_on_both_backends(window_pair, context) -> None:
    """logits(context) is [B, V] for whole numbers [B, block_size] in 0..V-1, else one SamplingError naming
    `context`, the same on onnxruntime and torch (a -1 was the last character's row on onnxruntime, an IndexError
    on torch; a float was cut to an int)."""
    from makemore.runtime.options import SamplingError

    outcomes = []
    for sampler in window_pair:
        try:
            outcomes.append(sampler.logits(context).shape)
        except SamplingError as err:
            assert err.field == "context" and "\n" not in str(err)
            outcomes.append(str(err))
    assert outcomes[0] == outcomes[1]
    try:
        array = np.asarray(context) if isinstance(context, (list, np.ndarray)) else None
    except ValueError:  # a ragged list
        array = None
    valid = (
        array is not None
        and array.dtype.kind in "iu"
        and array.ndim == 2
        and array.shape[1] == window_pair[0].block_size
        and (array.size == 0 or (array.min() >= 0 and array.max() < window_pair[0].vocab.size))
    )
    assert (outcomes[0] == (len(array), window_pair[0].vocab.size)) if valid else isinstance(outcomes[0], str)


def test_a_long_word_is_scored_in_calls_of_bounded_positions_with_its_state_carried() -> None:
    """A word past examples_per_call (a long word, or a big vocabulary's few positions a call) is scored in calls of
    at most that many positions, the state carried from one to the next, with the NLL one call gives: a gru's
    4,000-character name over 20,000 characters held 3.3 GB in one call of [1, 4001, 20001] logits."""
    from makemore.runtime import scoring

    vocab = Vocab("".join(chr(0x4E00 + i) for i in range(3000)))
    spec = StateSpec((StateTensor("state.h", "next.h", (1, "batch", 1)),))
    info = ModelInfo("gru", vocab, 1, contract=STEP, state=spec)
    calls: list[tuple[int, ...]] = []

    def step_fn(tokens: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        calls.append(tokens.shape)
        running = state[0][0, :, 0][:, None] + np.cumsum(tokens, axis=1)  # [B, T]: the sum of every token so far
        logits = np.sin(running[:, :, None] * 0.001 * np.arange(vocab.size)).astype(np.float32)
        return logits, [running[:, -1][None, :, None].astype(np.float32)]

    word = "".join(vocab.chars[(7 * i) % len(vocab.chars)] for i in range(1500))
    per_call = scoring.examples_per_call(info)
    assert per_call < len(word)  # the test's word needs several calls
    sliced = next(scoring.step_word_nll(step_fn, info, [word]))
    assert len(calls) > 1 and all(rows * steps <= per_call for rows, steps in calls)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scoring, "SCORE_BYTES", 1 << 40)  # one call of every position, as before
        calls.clear()
        whole = next(scoring.step_word_nll(step_fn, info, [word]))
    assert calls == [(1, len(word) + 1)]
    np.testing.assert_allclose(sliced, whole, rtol=0, atol=1e-9)
