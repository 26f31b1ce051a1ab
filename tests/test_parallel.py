"""Parallel sampling: chunk seeds from (seed, chunk index), so the names of a seed are the same for any number of
workers, any cut of the request into calls and any sharding; the thread helper; mm-gen --workers / --shard;
mm-serve --workers."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from clirun import assert_usage_error, run
from hypothesis import given, settings
from hypothesis import strategies as st
from inprocess import is_usage_error, run_main
from loopback import get, running_server
from makemore.data import UserError
from makemore.runtime.chunks import CHUNK_SIZE, ChunkDraws, ChunkSpan, chunk_spans, parse_shard, shard_range
from makemore.runtime.cli import gen_main
from makemore.runtime.onnx_sampler import OnnxSampler
from makemore.runtime.parallel import check_workers, ordered_map

N = 2 * CHUNK_SIZE + 123  # three chunks, the last one partial
CASES = [{"seed": 5}, {"seed": 6, "prefix": "ka", "temperature": 1.3, "top_k": 12}]


@pytest.fixture(scope="module")
def mlp_onnx(model_files):
    return model_files["mlp"][1]


@pytest.fixture(scope="module")
def serial(mlp_onnx) -> OnnxSampler:
    return OnnxSampler(mlp_onnx)


# --- the seeding scheme --------------------------------------------------------------------------------


def test_chunk_draws_are_numpy_spawned_children():
    """Chunk k's uniforms are the documented ones: SeedSequence(seed).spawn(k + 1)[k] through PCG64, CHUNK_SIZE
    doubles per position, row r taking the r-th; a piece [lo, hi) of the chunk skips the others exactly."""
    seed, k = 2**64 - 1, 3
    child = np.random.SeedSequence(seed).spawn(k + 1)[k]
    reference = np.random.Generator(np.random.PCG64(child)).random((4, CHUNK_SIZE))  # 4 positions
    whole = ChunkDraws(seed, ChunkSpan(k, 0, CHUNK_SIZE))
    piece = ChunkDraws(seed, ChunkSpan(k, 100, 250))
    for position in range(4):
        np.testing.assert_array_equal(whole.next(), reference[position])
        np.testing.assert_array_equal(piece.next(), reference[position, 100:250])


def test_chunk_spans_cover_a_range_once():
    spans = list(chunk_spans(100, 2 * CHUNK_SIZE + 5))
    assert spans == [ChunkSpan(0, 100, CHUNK_SIZE), ChunkSpan(1, 0, CHUNK_SIZE), ChunkSpan(2, 0, 5)]
    assert list(chunk_spans(7, 7)) == []
    assert next(chunk_spans(10**15, 10**15 + 1)) == ChunkSpan(
        10**15 // CHUNK_SIZE, 10**15 % CHUNK_SIZE, 10**15 % CHUNK_SIZE + 1
    )


@settings(max_examples=200, deadline=None)
@given(start=st.integers(0, 3 * CHUNK_SIZE), size=st.integers(0, 3 * CHUNK_SIZE), rows=st.integers(1, CHUNK_SIZE))
def test_chunk_pieces_cover_a_range_once_within_their_chunks(start, size, rows):
    spans = list(chunk_spans(start, start + size, rows))
    names = [span.index * CHUNK_SIZE + row for span in spans for row in range(span.lo, span.hi)]
    assert names == list(range(start, start + size))
    assert all(0 < span.rows <= rows and span.lo // rows == (span.hi - 1) // rows for span in spans)


def test_a_big_step_model_runs_its_chunks_in_pieces_with_the_same_names(model_files, monkeypatch):
    """A decoder's state is bounded (sampling.DECODER_BYTES): a chunk of a transformer whose cache would pass it
    runs as several pieces of fewer rows, and gives the names of one decoder per chunk."""
    from makemore.runtime import sampling

    monkeypatch.setattr(sampling, "STEP_PIECE_ROWS", CHUNK_SIZE)

    path, n = model_files["transformer"][1], CHUNK_SIZE + 50
    monkeypatch.setattr(sampling, "DECODER_BYTES", 1 << 40)
    assert sampling.rows_per_decoder(OnnxSampler(path).info, 16) == sampling.STEP_PIECE_ROWS
    whole = OnnxSampler(path).sample(n, seed=4)
    monkeypatch.setattr(sampling, "DECODER_BYTES", 100_000)
    assert 1 < sampling.rows_per_decoder(OnnxSampler(path).info, 16) < 300
    assert OnnxSampler(path, workers=2).sample(n, seed=4) == whole


@pytest.mark.parametrize("n", [1, 20, CHUNK_SIZE, CHUNK_SIZE + 1, N, 10 * CHUNK_SIZE + 3])
@pytest.mark.parametrize("shards", [1, 2, 3, 7])
def test_shards_are_contiguous_chunk_slices(n, shards):
    ranges = [shard_range(n, i, shards) for i in range(1, shards + 1)]
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    for (_, stop), (start, _) in zip(ranges, ranges[1:], strict=False):
        assert stop == start
    for start, stop in ranges:
        assert start <= stop and (start == n or start % CHUNK_SIZE == 0)


@pytest.mark.parametrize("text", ["0/2", "3/2", "1/0", "a/b", "1", "1/2/3", "", "-1/2", "１/２", "1/" + "9" * 30])
def test_parse_shard_refuses(text):
    with pytest.raises(UserError, match="--shard"):
        parse_shard(text)


# --- the same names, however they are made --------------------------------------------------------------


@pytest.mark.parametrize("options", CASES, ids=str)
def test_names_do_not_depend_on_workers(mlp_onnx, serial, options):
    expected = serial.sample(N, **options)
    assert len(expected) == N and len(set(expected)) > 100
    for workers in (2, 3):
        assert OnnxSampler(mlp_onnx, workers=workers).sample(N, **options) == expected


def test_step_model_names_do_not_depend_on_workers(model_files):
    path = model_files["gru"][1]
    n = CHUNK_SIZE + 50
    assert OnnxSampler(path, workers=2).sample(n, seed=9) == OnnxSampler(path).sample(n, seed=9)


def test_torch_sampler_follows_the_same_chunks(model_files):
    from makemore.train.sampler import TorchSampler

    pt = model_files["mlp"][0]
    expected = TorchSampler(pt).sample(CHUNK_SIZE + 50, seed=4)
    assert TorchSampler(pt, workers=2).sample(CHUNK_SIZE + 50, seed=4) == expected


@pytest.mark.parametrize("cut", [1, 100, CHUNK_SIZE, CHUNK_SIZE + 77])
def test_any_cut_of_a_request_gives_its_names(serial, cut):
    """Names [0, N) are names [0, cut) followed by names [cut, N): a piece skips the draws of the other rows."""
    expected = serial.sample(N, seed=11)
    head = [name for chunk in serial.sample_chunks(cut, seed=11) for name in chunk]
    tail = [name for chunk in serial.sample_chunks(N - cut, seed=11, start=cut) for name in chunk]
    assert head + tail == expected


def test_fewer_names_are_the_first_names(serial):
    """Name j depends on (seed, j): a smaller request is the head of a larger one."""
    expected = serial.sample(N, seed=12, prefix="mo")
    for n in (1, 20, 1000, CHUNK_SIZE + 1):
        assert serial.sample(n, seed=12, prefix="mo") == expected[:n]


def test_unseeded_requests_differ(serial):
    assert serial.sample(50) != serial.sample(50)


# --- bounded memory ------------------------------------------------------------------------------------

RSS_PROBE = """
import sys
from makemore.runtime.onnx_sampler import OnnxSampler

def rss_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS"))

chunks = OnnxSampler(sys.argv[1]).sample_chunks(55 * 4096, seed=1)
for _ in range(5):
    next(chunks)
early = rss_mb()
for _ in chunks:
    pass
print(early, rss_mb())
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS from /proc (Linux)")
def test_streaming_memory_does_not_grow_with_the_chunks(mlp_onnx):
    """50 more chunks leave the resident memory where 5 left it: every batch size from 4,096 down to 1 is a new
    input shape, and a per-shape block (onnxruntime's memory pattern) freed back to malloc each call fragmented the
    heap (measured with that pattern: +42 MB over these 50 chunks, about +150 MB at a million names; without: +3 MB).
    In a fresh process, so that no freed memory of other tests hides the growth."""
    result = subprocess.run([sys.executable, "-c", RSS_PROBE, str(mlp_onnx)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    early, late = map(float, result.stdout.split())
    assert late < early + 15, (early, late)


# --- the thread helper ----------------------------------------------------------------------------------


def test_ordered_map_keeps_order_and_bounds_what_is_in_flight():
    started, lock = [], threading.Lock()

    def work(i: int) -> int:
        with lock:
            started.append(i)
        time.sleep(0.002 * (i % 3))  # finish out of order
        return i * i

    results = ordered_map(work, range(40), workers=3)
    seen = []
    for value in results:
        seen.append(value)
        with lock:
            assert len(started) - len(seen) <= 2 * 3  # never more than 2 * workers ahead of the reader
    assert seen == [i * i for i in range(40)]
    for count in range(4):  # no item lost or repeated around the first two, inline or not
        for workers in (1, 2):
            assert list(ordered_map(lambda i: i, range(count), workers)) == list(range(count))


def test_ordered_map_runs_one_item_or_one_worker_inline():
    caller = threading.get_ident()
    assert list(ordered_map(lambda _: threading.get_ident(), [0], workers=4)) == [caller]
    assert set(ordered_map(lambda _: threading.get_ident(), range(5), workers=1)) == {caller}
    assert caller not in set(ordered_map(lambda _: threading.get_ident(), range(5), workers=2))


def test_ordered_map_raises_in_order_and_stops_early():
    def work(i: int) -> int:
        if i == 3:
            raise ValueError("three")
        return i

    results = ordered_map(work, range(100), workers=2)
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="three"):
        next(results)
    done = []
    lazy = ordered_map(lambda i: done.append(i) or i, range(10**9), workers=2)
    assert next(lazy) == 0
    lazy.close()  # cancels what has not started: the huge range is never walked
    assert len(done) <= 5


@pytest.mark.parametrize("value", [0, -1, 1025, True, 1.5, "2"])
def test_check_workers_refuses(value):
    with pytest.raises(UserError, match="workers must be"):
        check_workers(value)
    with pytest.raises(UserError, match="workers must be"):  # before the model is even opened
        OnnxSampler("missing.onnx", workers=value)


# --- the command lines ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shards", [1, 2, 3])
def test_gen_shards_concatenate_to_one_run(mlp_onnx, shards):
    args = ("--n", N, "--seed", 21, "--prefix", "a")
    whole = run("mm-gen", mlp_onnx, *args)
    assert whole.returncode == 0, whole.stderr
    parts = [run("mm-gen", mlp_onnx, *args, "--shard", f"{i}/{shards}", "--workers", 1) for i in range(1, 1 + shards)]
    assert all(part.returncode == 0 for part in parts), [part.stderr for part in parts]
    assert "".join(part.stdout for part in parts) == whole.stdout
    assert len(whole.stdout.splitlines()) == N
    if shards > 1:
        assert all(part.stdout for part in parts)  # three chunks: every shard has work


def test_gen_workers_flag_does_not_change_names(mlp_onnx):
    outputs = {w: run_main(gen_main, mlp_onnx, "--n", N, "--seed", 2, "--workers", w).stdout for w in (1, 2)}
    assert outputs[1] == outputs[2] and len(outputs[1].splitlines()) == N


@pytest.mark.parametrize(
    "args, message",
    [
        (["--workers", "0"], "--workers"),
        (["--workers", "-2"], "--workers"),
        (["--workers", "100000"], "--workers"),
        (["--workers", "two"], "--workers"),
        (["--shard", "0/3"], "--shard"),
        (["--shard", "4/3"], "--shard"),
        (["--shard", "1/0"], "--shard"),
        (["--shard", "half"], "--shard"),
        (["--shard", "1/2", "--novel-vs", "{names}"], "--shard"),
    ],
)
def test_gen_refuses_bad_workers_and_shards(mlp_onnx, names_path, args, message):
    outcome = run_main(gen_main, mlp_onnx, *[a.format(names=names_path) for a in args])
    assert is_usage_error(outcome), outcome
    assert message in outcome.stderr


def test_eval_samples_do_not_depend_on_workers(mlp_onnx):
    one, two = (run("mm-eval", mlp_onnx, "--samples", CHUNK_SIZE + 9, "--workers", w) for w in (1, 2))
    assert one.returncode == 0 and one.stdout == two.stdout and "samples" in one.stdout
    assert_usage_error(run("mm-eval", mlp_onnx, "--samples", 5, "--workers", 0))


def test_serve_with_two_workers_answers(mlp_onnx, serial):
    with running_server(mlp_onnx, "--workers", "2") as port:
        assert get(port, "/healthz")[0] == 200
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            for seed in range(4):  # keep-alive requests, answered by whichever worker accepted the connection
                conn.request("POST", "/v1/generate", json.dumps({"n": 7, "seed": seed}))
                reply = conn.getresponse()
                assert reply.status == 200
                assert json.loads(reply.read())["names"] == serial.sample(7, seed=seed)
        finally:
            conn.close()


def test_serve_refuses_bad_workers(mlp_onnx, tmp_path):
    result = run("mm-serve", mlp_onnx, "--workers", "0", cwd=tmp_path, timeout=60)
    assert_usage_error(result)
    assert "--workers" in result.stderr


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(
        st.lists(st.floats(-20, 20, width=32), min_size=27, max_size=27), min_size=1, max_size=5
    ),  # logits of a 27-character vocabulary, 1 to 5 rows
    cut=st.integers(1, 26),
    temperature=st.sampled_from([1.0, 0.8, 1.5]),
)
def test_a_rows_top_p_weights_do_not_depend_on_the_rows_beside_it(rows, cut, temperature) -> None:
    """top_p cut exactly where a row's nucleus ends (its sorted probabilities' running sum, as the sampler adds
    them): the row's weights are the same alone and in any batch, so a name does not depend on its batch (the
    page adds the same way)."""
    from makemore.runtime.sampling import next_token_weights

    logits = np.array(rows, dtype=np.float32)
    for b in range(len(logits)):
        z = logits[b].astype(np.float64) / temperature  # a top_p near a cut of row b (the exact value does not matter)
        probs = np.sort(np.exp(z - z.max()) / np.exp(z - z.max()).sum())[::-1]
        exact = np.float32(np.cumsum(probs.astype(np.float32))[cut - 1])
        for top_p in (exact, np.nextafter(exact, np.float32(0)), np.nextafter(exact, np.float32(1))):
            if not 0 < top_p < 1:
                continue
            options = {"temperature": temperature, "top_p": float(top_p)}
            together = next_token_weights(logits, **options)
            for row in range(len(logits)):
                alone = next_token_weights(logits[row : row + 1], **options)
                np.testing.assert_array_equal(together[:, row], alone[:, 0])


@pytest.mark.parametrize("temperature", [1.0, 1e10, 1e50, 1e300])
def test_top_k_and_top_p_keep_the_likeliest_characters_at_any_temperature(temperature) -> None:
    """A huge temperature rounds every scaled gap to 0 (all characters tie); top-k and top-p still keep the
    likeliest characters by their logits, not the first of the vocabulary."""
    from makemore.runtime.sampling import next_token_weights

    logits = np.random.default_rng(1).standard_normal((50, 27)).astype(np.float32)
    likeliest = np.argsort(-logits, axis=1, kind="stable")
    top_k = next_token_weights(logits, temperature=temperature, top_k=2).T > 0
    assert (top_k.sum(axis=1) == 2).all()
    assert (np.take_along_axis(top_k, likeliest[:, :2], axis=1)).all()
    top_p = next_token_weights(logits, temperature=temperature, top_p=1e-6).T > 0  # the likeliest alone
    assert (top_p.sum(axis=1) == 1).all() and np.take_along_axis(top_p, likeliest[:, :1], axis=1).all()
