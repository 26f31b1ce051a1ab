"""Parallel sampling against its bounds, side by side in one run: 1 worker and every core.

    python bench/parallel_speed.py [--kind mlp] [--n 100000] [--repeats 5]

For `--n` names of the default model (trained into out/bench/ if missing): names/s with 1 and with W workers
(W = the usable cores) and the speed-up; the forward-pass bound measured as speed.py does (random contexts in
the sampler's chunk size through the session, over the positions per name), on 1 thread and on W threads
sharing the session as the sampler's workers do; the physical limit, the FLOPs of the matrix products per
sampled name against the peak float32 matrix-multiply rate of a large GEMM timed in the same run; and the
latency of 20 names, which must not pay for the threads. speed.py prints the same section.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_average, machine, markdown_table, median_time, trained_model  # noqa: E402
from makemore.runtime.chunks import CHUNK_SIZE  # noqa: E402
from makemore.runtime.onnx_sampler import OnnxSampler  # noqa: E402
from makemore.runtime.parallel import ordered_map, usable_cores  # noqa: E402
from makemore.runtime.sampling import PIECE_ROWS  # noqa: E402

SEED = 1
HEADERS = ["model", "n", "workers", "names/s", "speed-up", "bound", "of bound", "chunk bound", "of chunk bound"]
HEADERS += ["steps/name"]
FORWARD_ROWS = 100_000  # context rows per timed forward-pass call
GEMM_SIZE = 2048  # a float32 matrix product this large runs at the BLAS's peak rate


def forward_pass(
    sampler: OnnxSampler, workers: int, rows: int = 100_000, piece: int = PIECE_ROWS
) -> Callable[[], None]:
    """The network alone: random contexts through the session in pieces of `piece` rows, on `workers` threads (as
    the sampler's workers call it); `rows` rows per call."""
    context = np.random.default_rng(0).integers(0, sampler.vocab.size, (rows, sampler.block_size), dtype=np.int64)
    pieces = [context[start : start + piece] for start in range(0, rows, piece)]

    def run() -> None:
        for _ in ordered_map(sampler.logits, pieces, workers):
            pass

    return run


def interleaved_seconds(calls: dict[object, Callable[[], object]], repeats: int) -> dict[object, float]:
    """Median wall seconds of each call, after one warm-up each, the calls taking turns (so a change in the
    machine's load hits each alike)."""
    times: dict[object, list[float]] = {key: [] for key in calls}
    for call in calls.values():
        call()
    for _ in range(repeats):
        for key, call in calls.items():
            start = time.perf_counter()
            call()
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(values) for key, values in times.items()}


def gemm_flops_per_second(size: int = GEMM_SIZE, repeats: int = 5) -> float:
    """The machine's float32 matrix-multiply rate: numpy's BLAS (every core) on two size x size matrices."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    return 2 * size**3 / median_time(lambda: a @ b, repeats)


def matmul_flops_per_row(onnx_path: Path) -> int:
    """FLOPs of one context row through a window model: 2 * K * N for every MatMul or Gemm by a weight matrix
    (embedding lookups, biases and activations are not counted: they are a few percent of the MLP's)."""
    import onnx

    graph = onnx.load(str(onnx_path)).graph
    weights = {init.name: list(init.dims) for init in graph.initializer}
    flops = 0
    for node in graph.node:
        if node.op_type in ("MatMul", "Gemm") and node.input[1] in weights:
            dims = weights[node.input[1]]
            flops += 2 * int(np.prod(dims)) if len(dims) == 2 else 0
    return flops


def latency_ms(sampler: OnnxSampler, repeats: int = 200) -> float:
    """Median milliseconds of sample(20) (many repeats: it is short)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sampler.sample(20, seed=SEED)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def parallel_section(kind: str = "mlp", n: int = 100_000, repeats: int = 5) -> str:
    """The Markdown section: workers side by side, their bounds, the physical limit and the small-request latency."""
    _, onnx_path = trained_model(kind)
    cores = usable_cores()
    samplers = {workers: OnnxSampler(onnx_path, workers=workers) for workers in sorted({1, cores})}
    gemm = gemm_flops_per_second()
    flops_row = matmul_flops_per_row(onnx_path)
    names = {workers: sampler.sample(n, seed=SEED) for workers, sampler in samplers.items()}
    calls: dict[object, Callable[[], object]] = {}
    for workers, sampler in samplers.items():
        calls["sample", workers] = functools.partial(sampler.sample, n, seed=SEED)
        calls["forward", workers] = forward_pass(sampler, workers, FORWARD_ROWS)
        calls["chunk forward", workers] = forward_pass(sampler, workers, FORWARD_ROWS, CHUNK_SIZE)
    seconds = interleaved_seconds(calls, repeats)
    rows = []
    for workers in samplers:
        positions = statistics.fmean(len(name) + 1 for name in names[workers])
        bound, chunk_bound = (FORWARD_ROWS / seconds[key, workers] / positions for key in ("forward", "chunk forward"))
        rows.append([workers, n / seconds["sample", workers], bound, chunk_bound, positions])
    same = all(names[w] == names[1] for w in names)
    base = rows[0][1]
    table = [
        [kind, f"{n:,}", w, f"{rate:,.0f}", f"{rate / base:.2f}x"]
        + [f"{bound:,.0f}", f"{rate / bound:.0%}", f"{chunk_bound:,.0f}", f"{rate / chunk_bound:.0%}", f"{p:.2f}"]
        for w, rate, bound, chunk_bound, p in rows
    ]
    best_rate, positions = max(row[1] for row in rows), rows[-1][4]
    flops_name = flops_row * positions
    limit = gemm / flops_name
    latency = [[kind, w, f"{latency_ms(s):.3f}"] for w, s in samplers.items()]
    return (
        f"### Parallel sampling: 1 worker and {cores} (names/s)\n\n"
        + markdown_table(HEADERS, table)
        + f"\n\nbound: the forward pass alone (random contexts in the sampler's {PIECE_ROWS:,}-row pieces through the"
        " session) on as many threads as workers, over the positions per name; chunk bound: the same in"
        f" {CHUNK_SIZE:,}-row chunks (the bound as issue 13 defined it, when the sampler ran whole chunks)."
        " The names are "
        + ("the same" if same else "NOT the same")
        + " for every number of workers.\n\n"
        + "#### The physical limit\n\n"
        + markdown_table(
            ["model", "FLOPs/row", "FLOPs/name", "GEMM peak (GFLOP/s)", "limit (names/s)", "sampler", "of limit"],
            [
                [
                    kind,
                    f"{flops_row:,}",
                    f"{flops_name:,.0f}",
                    f"{gemm / 1e9:,.1f}",
                    f"{limit:,.0f}",
                    f"{best_rate:,.0f}",
                    f"{best_rate / limit:.1%}",
                ]
            ],
        )
        + f"\n\nFLOPs/row: 2 x K x N of every matrix product by a weight (one forward row); FLOPs/name: times the "
        f"positions per name. GEMM peak: numpy's BLAS on two {GEMM_SIZE}x{GEMM_SIZE} float32 matrices, every core, "
        "in the same run. sampler: the best names/s above.\n\n"
        + "#### Latency of 20 names in one call (ms)\n\n"
        + markdown_table(["model", "workers", "median ms"], latency)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="mlp")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"Machine: {machine()}. Load average before: {load_average()}.\n")
    print(parallel_section(args.kind, args.n, args.repeats))
    print(f"\nLoad average after: {load_average()}.")


if __name__ == "__main__":
    main()
