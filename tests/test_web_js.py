"""The page's JavaScript against numpy, under node: numpy's random stream bit for bit (SeedSequence, PCG64,
advance, random()), and the runtime's float32 weights and inverse-CDF draws."""

from __future__ import annotations

import numpy as np
import pytest
from makemore.runtime.chunks import ChunkDraws, ChunkSpan
from makemore.runtime.sampling import draw, next_token_weights
from nodejs import run_node

SEEDS = [0, 1, 2, 41, 2**32 - 1, 2**32, 2**63, 2**64 - 1, 123456789123456789]
INDICES = [0, 1, 2, 7, 2**32 - 1, 2**32 + 5]

STREAM_SCRIPT = """
import { readFileSync } from "node:fs";
import { ChunkDraws } from "./pcg64.js";
const cases = JSON.parse(readFileSync(0, "utf8"));
const out = cases.map(([seed, index, lo, hi, chunk, positions]) => {  // seed, index: decimal strings
  const draws = new ChunkDraws(BigInt(seed), BigInt(index), lo, hi, chunk);
  return Array.from({ length: positions }, () => Array.from(draws.next()));
});
console.log(JSON.stringify(out));
"""


def numpy_draws(seed: int, index: int, lo: int, hi: int, chunk: int, positions: int, monkeypatch) -> list:
    monkeypatch.setattr("makemore.runtime.chunks.CHUNK_SIZE", chunk)
    draws = ChunkDraws(seed, ChunkSpan(index, lo, hi))
    return [draws.next().tolist() for _ in range(positions)]


def test_chunk_draws_equal_numpys_bit_for_bit(tmp_path, monkeypatch) -> None:
    rng = np.random.default_rng(5)
    cases = [[seed, index, 0, 3, 4096, 2] for seed in SEEDS for index in INDICES]
    cases += [[int(rng.integers(0, 2**63)) * 2 + 1, int(rng.integers(0, 1000)), 0, 5, 4096, 2] for _ in range(20)]
    cases += [[7, 3, 2, 5, 10, 4], [2**64 - 1, 0, 4000, 4096, 4096, 3], [0, 0, 1, 2, 2**20, 3], [9, 2, 0, 64, 64, 2]]
    got = run_node(tmp_path, STREAM_SCRIPT, [[str(seed), str(index), *rest] for seed, index, *rest in cases])
    want = [numpy_draws(*case, monkeypatch) for case in cases]
    assert got == want  # exact: the same doubles, not close ones


WEIGHTS_SCRIPT = """
import { readFileSync } from "node:fs";
import { draw, nextTokenWeights } from "./sampler.js";
const cases = JSON.parse(readFileSync(0, "utf8"));
const out = cases.map(({ logits, rows, V, options, uniforms }) => {
  const weights = nextTokenWeights(Float32Array.from(logits), rows, V, options);
  return { weights: Array.from(weights), picks: Array.from(draw(weights, rows, V, Float64Array.from(uniforms))) };
});
console.log(JSON.stringify(out));
"""

OPTIONS = [
    {},
    {"temperature": 0.7},
    {"temperature": 1.9, "top_k": 3},
    {"temperature": 0},
    {"top_k": 1},
    {"top_p": 0.5},
    {"top_p": 0.9, "temperature": 0.8, "top_k": 10},
    {"top_p": 1e-12},
    {"temperature": 1e-300},
    {"temperature": 1e300},
    {"forbid_boundary": True, "top_k": 2},
    {"temperature": 1e50, "top_k": 2},  # every scaled gap rounds to 0: the ranks are the logits'
    {"temperature": 1e10, "top_p": 0.05},
    {"temperature": 1e45, "top_p": 0.5, "top_k": 4, "forbid_boundary": True},
]


def js_options(options: dict) -> dict:
    names = {"temperature": "temperature", "top_k": "topK", "top_p": "topP", "forbid_boundary": "forbidBoundary"}
    return {names[key]: value for key, value in options.items()}


@pytest.mark.parametrize("V", [2, 5, 27])
def test_weights_and_draws_equal_numpys(tmp_path, V) -> None:
    rng = np.random.default_rng(V)
    cases, want = [], []
    for options in OPTIONS:
        rows = 40
        logits = (rng.standard_normal((rows, V)) * 3).astype(np.float32)
        logits[:5] = np.round(logits[:5])  # ties: top-k keeps every character equal to the k-th
        uniforms = rng.random(rows)
        uniforms[:3] = [0.0, 1 - 2**-53, 0.5]
        weights = next_token_weights(logits, **options)
        want.append({"weights": weights.T.ravel().tolist(), "picks": draw(weights.copy(), uniforms).tolist()})
        case = {"logits": logits.ravel().tolist(), "rows": rows, "V": V, "options": js_options(options)}
        cases.append({**case, "uniforms": uniforms.tolist()})
    got = run_node(tmp_path, WEIGHTS_SCRIPT, cases)
    for options, mine, theirs in zip(OPTIONS, got, want, strict=True):
        assert mine["picks"] == theirs["picks"], options
        assert mine["weights"] == theirs["weights"], options  # bit for bit: exp in float64, rounded to float32
