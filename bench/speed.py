"""The speed benchmark: the ONNX runtime against torch, measured side by side in one run.

    python bench/speed.py [--quick] [--out bench/RESULTS.md]

Prints Markdown tables (sampling throughput and its bound, latency, cold start, install footprint,
training) with the machine, and writes them to --out. Every figure is a median of several runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BIN, ROOT, machine, markdown_table, median_time, trained_model  # noqa: E402
from makemore.runtime.onnx_sampler import OnnxSampler  # noqa: E402
from makemore.train.sampler import TorchSampler  # noqa: E402


@torch.no_grad()
def torch_eager_names(sampler: TorchSampler, n: int, max_len: int, seed: int) -> list[str]:
    """The loop a PyTorch user would write: all names in one batch, softmax + multinomial per character."""
    model, vocab = sampler.model, sampler.vocab.chars
    generator = torch.Generator().manual_seed(seed)
    context = torch.zeros(n, sampler.block_size, dtype=torch.long)
    out = torch.zeros(n, max_len, dtype=torch.long)
    done = torch.zeros(n, dtype=torch.bool)
    for pos in range(max_len):
        probs = torch.softmax(model(context), dim=-1)
        ix = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        ix[done] = 0
        out[:, pos] = ix
        done |= ix == 0
        if done.all():
            break
        context = torch.cat([context[:, 1:], ix[:, None]], dim=1)
    return ["".join(vocab[i - 1] for i in row if i) for row in out.tolist()]


def forward_rows_per_second(sampler: OnnxSampler, rows: int = 100_000) -> float:
    """The network alone: random contexts through onnxruntime, in the sampler's own chunk size."""
    from makemore.runtime.sampling import CHUNK_SIZE

    context = np.random.default_rng(0).integers(0, sampler.vocab.size, (rows, sampler.block_size), dtype=np.int64)

    def run() -> None:
        for start in range(0, rows, CHUNK_SIZE):
            sampler.logits(context[start : start + CHUNK_SIZE])

    return rows / median_time(run)


def throughput_rows(kind: str, pt: Path, onnx_path: Path, sizes: list[int], repeats: int) -> list[list[object]]:
    onnx_sampler, torch_sampler = OnnxSampler(onnx_path), TorchSampler(pt)
    rows = []
    rows_per_s = forward_rows_per_second(onnx_sampler)
    for n in sizes:
        names = onnx_sampler.sample(n, seed=0)
        positions = statistics.fmean(len(name) + 1 for name in names)
        bound = rows_per_s / positions
        t_onnx = median_time(lambda n=n: onnx_sampler.sample(n, seed=1), repeats)
        t_torch = median_time(lambda n=n: torch_sampler.sample(n, seed=1), repeats)
        t_eager = median_time(lambda n=n: torch_eager_names(torch_sampler, n, onnx_sampler.info.max_len, 1), repeats)
        rows.append(
            [
                kind,
                f"{n:,}",
                f"{n / t_onnx:,.0f}",
                f"{n / t_torch:,.0f}",
                f"{n / t_eager:,.0f}",
                f"{t_eager / t_onnx:.1f}x",
                f"{bound:,.0f}",
                f"{(n / t_onnx) / bound:.0%}",
                f"{positions:.2f}",
            ]
        )
    return rows


def latency_rows(kind: str, pt: Path, onnx_path: Path, repeats: int) -> list[list[object]]:
    onnx_sampler, torch_sampler = OnnxSampler(onnx_path), TorchSampler(pt)
    t_onnx = median_time(lambda: onnx_sampler.sample(20, seed=1), repeats * 4)
    t_torch = median_time(lambda: torch_sampler.sample(20, seed=1), repeats * 4)
    return [[kind, f"{t_onnx * 1e3:.2f}", f"{t_torch * 1e3:.2f}", f"{t_torch / t_onnx:.1f}x"]]


def process_seconds(cmd: list[str], repeats: int) -> float:
    """Median whole-process wall time of a command."""
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])  # the first run warms the page cache


def cold_start_rows(pt: Path, onnx_path: Path, repeats: int) -> list[list[object]]:
    torch_script = (
        "import sys; from makemore.train import TorchSampler; print('\\n'.join(TorchSampler(sys.argv[1]).sample(20)))"
    )
    t_gen = process_seconds([str(BIN / "mm-gen"), str(onnx_path), "--n", "20"], repeats)
    t_help = process_seconds([str(BIN / "mm-gen"), "--help"], repeats)
    t_torch = process_seconds([sys.executable, "-c", torch_script, str(pt)], repeats)
    return [
        ["`mm-gen model.onnx --n 20`", f"{t_gen * 1e3:.0f}", f"{t_torch / t_gen:.1f}x"],
        ["`mm-gen --help`", f"{t_help * 1e3:.0f}", ""],
        ["torch script (load model.pt, print 20 names)", f"{t_torch * 1e3:.0f}", "1.0x"],
    ]


def peak_rss_megabytes(cmd: list[str]) -> float:
    """Peak resident memory of `cmd`, measured from a fresh parent (Linux ru_maxrss is in KiB)."""
    probe = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", probe, *cmd], check=True, capture_output=True, text=True)
    return int(out.stdout) / 1024


def memory_rows(onnx_path: Path) -> list[list[object]]:
    cmd = [str(BIN / "mm-gen"), str(onnx_path), "--n", "1000000", "--seed", "0"]
    start = time.perf_counter()
    peak = peak_rss_megabytes(cmd)
    return [["`mm-gen model.onnx --n 1000000 > /dev/null`", f"{peak:,.0f}", f"{time.perf_counter() - start:.1f}"]]


def venv_megabytes(extra: str) -> float:
    """Size of a fresh venv with `pip install .{extra}` (torch from the CPU wheel)."""
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        if "train" in extra:
            subprocess.run([*pip, os.environ.get("TORCH_SPEC", "torch==2.13.0")], check=True)
        subprocess.run([*pip, f"{ROOT}{extra}"], check=True)
        out = subprocess.run(["du", "-sm", str(venv)], check=True, capture_output=True, text=True).stdout
        return float(out.split()[0])


def footprint_rows() -> list[list[object]]:
    base, train = venv_megabytes(""), venv_megabytes("[train]")
    return [
        ["runtime only: `pip install .`", f"{base:,.0f}", f"{base / train:.0%}"],
        ["training: `pip install .[train]`", f"{train:,.0f}", "100%"],
    ]


def training_rows(repeats: int) -> list[list[object]]:
    from train_bench import train_default

    runs = [train_default() for _ in range(repeats)]
    seconds = statistics.median(r["seconds"] for r in runs)
    val = statistics.median(r["val_loss"] for r in runs)
    return [["mlp (defaults)", f"{seconds:.1f}", f"{val:.4f}", str(len(runs))]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, n = 10,000 only, no footprint")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    repeats = 3 if args.quick else 5
    sizes = [10_000] if args.quick else [10_000, 100_000]
    mlp, bigram = trained_model("mlp"), trained_model("bigram")

    sections = [f"Machine: {machine()}. Date: {time.strftime('%Y-%m-%d')}. Medians of {repeats} runs."]
    sections.append(
        "### Batched sampling (names/s)\n\n"
        + markdown_table(
            ["model", "n", "OnnxSampler", "TorchSampler", "torch eager", "vs eager", "bound", "of bound", "steps/name"],
            throughput_rows("mlp", *mlp, sizes, repeats) + throughput_rows("bigram", *bigram, sizes, repeats),
        )
    )
    sections.append(
        "### Latency of 20 names in one call (ms)\n\n"
        + markdown_table(
            ["model", "OnnxSampler", "TorchSampler", "speed-up"],
            latency_rows("mlp", *mlp, repeats) + latency_rows("bigram", *bigram, repeats),
        )
    )
    sections.append(
        "### Cold start, whole process (ms)\n\n"
        + markdown_table(["command", "ms", "speed-up vs torch"], cold_start_rows(*mlp, repeats))
    )
    sections.append(
        "### Memory: a million names, streamed to stdout\n\n"
        + markdown_table(["command", "peak RSS (MB)", "seconds"], memory_rows(mlp[1]))
    )
    if not args.quick:
        sections.append(
            "### Install footprint (fresh venv, MB)\n\n"
            + markdown_table(["install", "MB", "of training venv"], footprint_rows())
        )
        sections.append(
            "### Training the default MLP\n\n"
            + markdown_table(["model", "seconds", "val loss", "runs"], training_rows(3))
        )
    report = "\n\n".join(sections) + "\n"
    print(report)
    args.out.write_text(report)


if __name__ == "__main__":
    main()
