"""How training time and memory grow with the corpus: `mm-train mlp --steps 1000` on made-up corpora.

python bench/corpus_bench.py [--sizes 100000 1000000 10000000] [--threads 1]

Each corpus is made here, vectorised with numpy, into a temporary folder: lines drawn at random from the
bundled names, each mutated (one character replaced by a random letter with probability 1/2, a random letter
appended with probability 1/3). Each run is a subprocess; its wall time, CPU time (user + system: less
sensitive than the wall time to other jobs on a shared machine) and peak RSS come from os.wait4; the phases
from the checkpoint's metrics: setup (`setup_seconds`: reading, tokenising and splitting the data), the steps
(`train_seconds` minus `eval_seconds`: the optimisation steps alone) and evaluation (`eval_seconds`: the 40
val-subset losses and the final ones). The rest of the wall time is the interpreter and torch starting, the
memory check, building the model and writing the checkpoint.
Prints a Markdown table. Targets (issue 12): 1M lines in at most 20 s and 500 MB, setup + evaluation under half.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BIN, load_average, machine, markdown_table  # noqa: E402
from makemore.data import bundled_names_path, read_words  # noqa: E402

CHUNK_LINES = 1_000_000  # lines made at a time: bounds the benchmark's own memory
LETTERS = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)


def make_corpus(lines: int, path: Path, seed: int = 0) -> None:
    """Write `lines` mutated names to `path`, one a line, CHUNK_LINES at a time."""
    names = read_words(bundled_names_path())
    width = max(map(len, names)) + 2  # room for an appended letter and the newline
    table = np.zeros((len(names), width), dtype=np.uint8)
    lengths = np.array([len(name) for name in names], dtype=np.int64)
    for row, name in enumerate(names):
        table[row, : len(name)] = np.frombuffer(name.encode("ascii"), dtype=np.uint8)
    rng = np.random.default_rng(seed)
    with path.open("wb") as out:
        for start in range(0, lines, CHUNK_LINES):
            n = min(CHUNK_LINES, lines - start)
            pick = rng.integers(0, len(names), n)
            rows, length = table[pick], lengths[pick].copy()
            replace = rng.random(n) < 0.5
            at = (rng.random(n) * length).astype(np.int64)
            rows[replace, at[replace]] = rng.choice(LETTERS, int(replace.sum()))
            append = rng.random(n) < 1 / 3
            rows[append, length[append]] = rng.choice(LETTERS, int(append.sum()))
            length += append
            rows[np.arange(n), length] = ord("\n")
            flat = rows.ravel()
            out.write(flat[flat != 0].tobytes())


def run_training(data: Path, out: Path, steps: int, threads: int | None) -> dict:
    """One `mm-train mlp` subprocess: wall seconds, peak RSS (MB) and the checkpoint's metrics."""
    command = [str(BIN / "mm-train"), "mlp", "--data", str(data), "--out", str(out), "--steps", str(steps)]
    command += ["--quiet", "--samples", "0"] + ([] if threads is None else ["--threads", str(threads)])
    start = time.perf_counter()
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"mm-train failed on {data}")
    import torch

    metrics = torch.load(out, weights_only=True)["metrics"]
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024, **metrics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=None, help="mm-train --threads (default: torch's choice)")
    args = parser.parse_args()
    print(f"Machine: {machine()}")
    print(f"Load average at the start (1, 5, 15 min): {load_average()}")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for lines in args.sizes:
            data = Path(folder) / f"corpus{lines}.txt"
            make_corpus(lines, data)
            r = run_training(data, Path(folder) / "model.pt", args.steps, args.threads)
            steps_s = r["train_seconds"] - r["eval_seconds"]
            setup_eval = r["setup_seconds"] + r["eval_seconds"]
            rows.append(
                [
                    f"{lines:,}",
                    f"{data.stat().st_size / 2**20:.0f}",
                    f"{r['wall']:.1f}",
                    f"{r['cpu']:.1f}",
                    f"{r['wall'] - r['setup_seconds'] - r['train_seconds']:.1f}",
                    f"{r['setup_seconds']:.1f}",
                    f"{steps_s:.1f}",
                    f"{r['eval_seconds']:.1f}",
                    f"{setup_eval:.1f} ({setup_eval / r['wall']:.0%})",
                    f"{r['rss_mb']:.0f}",
                    f"{r['train_loss_chars']:,}",
                    f"{r['val_loss']:.4f}",
                ]
            )
            print(markdown_table(HEADERS, rows[-1:]).splitlines()[-1], flush=True)
            data.unlink()
    print(f"Load average at the end: {load_average()}")
    print()
    print(markdown_table(HEADERS, rows))


HEADERS = [
    "lines",
    "file (MiB)",
    "wall (s)",
    "CPU (s)",
    "start, model, save (s)",
    "setup (s)",
    "steps (s)",
    "evaluation (s)",
    "setup + evaluation (s, of wall)",
    "peak RSS (MiB)",
    "train loss on (chars)",
    "val loss",
]


if __name__ == "__main__":
    main()
