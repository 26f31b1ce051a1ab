"""Experiment: the sampling step inside the ONNX graph, against the numpy step of OnnxSampler.

    python bench/graph_sampler.py

Appends to each model's graph: softmax weights, CumSum, the inverse-CDF comparison against input
uniforms and a ReduceSum, so one onnxruntime call returns the next character of every row. The loop
around it (uniforms from the seeded generator, finished rows dropping out) is the runtime's own.
Plain temperature-1 sampling only: enough to measure whether moving the step into the graph pays.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, markdown_table, median_time, trained_model  # noqa: E402
from makemore.runtime.chunks import CHUNK_SIZE  # noqa: E402
from makemore.runtime.onnx_sampler import OnnxSampler, open_session, read_model_info  # noqa: E402


def with_sampling_head(path: Path) -> bytes:
    """The model plus a head: (context, uniforms) -> next index, by inverse CDF."""
    model = onnx.load(str(path))
    graph = model.graph
    vocab_size = graph.output[0].type.tensor_type.shape.dim[1].dim_value
    graph.input.append(helper.make_tensor_value_info("uniforms", TensorProto.FLOAT, ["batch"]))
    graph.initializer.extend(
        [
            helper.make_tensor("axis1", TensorProto.INT64, [], [1]),
            helper.make_tensor("last_start", TensorProto.INT64, [1], [vocab_size - 1]),
            helper.make_tensor("last_end", TensorProto.INT64, [1], [vocab_size]),
            helper.make_tensor("axes1", TensorProto.INT64, [1], [1]),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("ReduceMax", ["logits"], ["max"], axes=[1], keepdims=1),
            helper.make_node("Sub", ["logits", "max"], ["gaps"]),
            helper.make_node("Exp", ["gaps"], ["weights"]),
            helper.make_node("CumSum", ["weights", "axis1"], ["cdf"]),
            helper.make_node("Slice", ["cdf", "last_start", "last_end", "axes1"], ["total"]),
            helper.make_node("Unsqueeze", ["uniforms", "axes1"], ["u_column"]),
            helper.make_node("Mul", ["u_column", "total"], ["threshold"]),
            helper.make_node("LessOrEqual", ["cdf", "threshold"], ["below"]),
            helper.make_node("Cast", ["below"], ["below_int"], to=TensorProto.INT64),
            helper.make_node("ReduceSum", ["below_int", "axes1"], ["next"], keepdims=0),
        ]
    )
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("next", TensorProto.INT64, ["batch"]))
    return model.SerializeToString()


def graph_sample(session, block_size: int, vocab_size: int, max_len: int, n: int, seed: int) -> int:
    """Sample n names with the in-graph step; returns the number of characters made (a checksum of work)."""
    rng = np.random.default_rng(seed)
    made = 0
    for start in range(0, n, CHUNK_SIZE):
        rows = min(CHUNK_SIZE, n - start)
        context = np.zeros((rows, block_size), dtype=np.int64)
        active = np.arange(rows)
        for _ in range(max_len):
            uniforms = rng.random(rows).astype(np.float32)
            if active.size == 0:
                break
            picks = session.run(["next"], {"context": context, "uniforms": uniforms[active]})[0]
            picks = np.minimum(picks, vocab_size - 1)  # u * total rounding up to the total
            made += active.size
            ended = picks == 0
            context = np.concatenate([context[:, 1:], picks[:, None]], axis=1)[~ended]
            active = active[~ended]
    return made


def main() -> None:
    rows = []
    n = 100_000
    for kind in ("mlp", "bigram"):
        _, onnx_path = trained_model(kind)
        sampler = OnnxSampler(onnx_path)
        session = open_session(with_sampling_head(onnx_path), "sampling graph")
        info = read_model_info(open_session(onnx_path), str(onnx_path))
        t_numpy = median_time(lambda s=sampler: s.sample(n, seed=1), 5)
        t_graph = median_time(lambda s=session, i=info: graph_sample(s, i.block_size, i.vocab.size, i.max_len, n, 1), 5)
        steps = statistics.fmean(len(name) + 1 for name in sampler.sample(n, seed=1))
        rows.append(
            [kind, f"{n:,}", f"{n / t_numpy:,.0f}", f"{n / t_graph:,.0f}", f"{t_numpy / t_graph:.2f}x", f"{steps:.2f}"]
        )
    print(f"Machine: {machine()}. Medians of 5 runs.\n")
    print(
        markdown_table(["model", "n", "numpy step (names/s)", "in-graph step (names/s)", "ratio", "steps/name"], rows)
    )


if __name__ == "__main__":
    main()
