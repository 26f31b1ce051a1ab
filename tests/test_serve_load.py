"""A real mm-serve on a loopback port under a bounded load: 2,000 requests from 16 concurrent clients."""

from __future__ import annotations

import json

from loopback import get, memory_mb, run_load, running_server
from makemore.runtime.onnx_sampler import OnnxSampler

REQUESTS, CLIENTS, N = 2000, 16, 5


def body(i: int) -> dict:
    return {"n": N, "seed": i, "temperature": 0.9}


def test_loopback_server_under_load(model_files):
    onnx_path = model_files["mlp"][1]
    sampler = OnnxSampler(onnx_path)
    with running_server(onnx_path) as port:
        result = run_load(port, REQUESTS, CLIENTS, body)
        status, raw = get(port, "/healthz")  # still up after the load
    assert result.errors == []
    assert sorted(reply.index for reply in result.replies) == list(range(REQUESTS))
    assert all(reply.status == 200 for reply in result.replies)
    for reply in result.replies:  # every answer is exactly what the runtime gives for that seed
        assert reply.payload["names"] == sampler.sample(N, seed=reply.index, temperature=0.9)
    assert (status, json.loads(raw)) == (200, {"status": "ok"})


def test_loopback_server_survives_bad_requests(model_files):
    bad = [{"n": "many"}, {"prefix": "#"}, {"n": 10**9}, {"wat": 1}, {"seed": -1}]
    with running_server(model_files["bigram"][1], "--max-n", "100") as port:
        result = run_load(port, 200, 8, lambda i: bad[i % len(bad)] if i % 2 else {"n": 3, "seed": i})
    assert result.errors == []
    for reply in result.replies:
        if reply.index % 2:
            assert reply.status == 422 and reply.payload["error"]
        else:
            assert reply.status == 200 and len(reply.payload["names"]) == 3
    assert len(result.replies) == 200


def test_server_memory_is_bounded_and_returned(model_files):
    """Max-size score requests at once (10,000 names of 100 characters, just under the 1 MiB body cap): the
    server's peak stays under 500 MB, and it hands the memory back afterwards."""
    pids: list[int] = []
    names = ["a" * 100] * 10_000
    with running_server(model_files["mlp"][1], pids=pids) as port:
        before = memory_mb(pids[0])
        result = run_load(port, 8, 8, lambda i: {"names": names}, path="/v1/score", timeout=300)
        after = memory_mb(pids[0])
    assert result.errors == [] and [reply.status for reply in result.replies] == [200] * 8
    assert after["VmHWM"] < 500, after
    assert after["VmRSS"] < before["VmRSS"] + 100, (before, after)
