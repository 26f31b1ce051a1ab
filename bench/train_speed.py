"""Training throughput of every kind at the last release's default config on the bundled names, as a Markdown table.

    python bench/train_speed.py [--steps 200] [--warmup 20] [--repeats 3] [--kinds rnn,gru] [--against PATH]

For each kind of the registry (train/kinds.py): milliseconds per training step, useful (unpadded target) tokens
per second, the matrix-multiply FLOPs of a step and their share of the float32 GEMM peak measured in the same run
(torch.mm of two 2048 x 2048 matrices on torch's threads, which default to the usable cores).

A measurement is one fresh process that runs the checkout's own `train()` (its real loop: batching, loss, backward,
clipping, optimizer) from that config (the `makemore` preset for the transformer) and times each step through the
progress callback; the first `--warmup` steps and the steps that also measured the val loss are left out, and the
run stops after the timed steps (no final evaluation). `--against PATH` measures another checkout (e.g. the last
release) the same way, with PATH/.venv/bin/python, alternating with this one (A B A B ...), and prints the ratio of
the medians.

FLOPs are counted from the config, on the useful tokens only (padding is not useful work): the multiply-adds of
the matrix products per target token (embedding lookups, biases, activations, norms and the optimizer are left
out), times 2 for FLOPs, times 3 for a training step (the backward pass costs two forward passes). Recurrent: per
layer gates x n_hidden x (input + n_hidden), and the head. Transformer: per layer 12 n_embd^2 (attention
projections and the 4x MLP) and 2 n_embd per attended position (scores and the weighted sum; a word's position i
attends to i positions), and the head. MLP and WaveNet: per example, every layer's weight matrix by the rows it
multiplies. bigram-nn's forward is a row lookup (no matrix product); bigram is counted, not trained.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, load_average, machine, markdown_table  # noqa: E402
from makemore.train.progress import Reporter  # noqa: E402

GEMM_SIZE = 2048
SPLIT_SEED = 42  # as bench/train_bench.py
HEADERS = ["kind", "ms/step", "useful tokens/step", "useful tokens/s", "MFLOP/step", "GFLOP/s", "of GEMM peak"]


class Enough(Exception):
    """Raised from the progress callback once the timed steps are done: the run stops there."""


def release_config(make_config, kind: str):
    """`kind`'s config as the last release defined it, so both sides time the same model: the `makemore` preset
    where this checkout has one (the transformer's default before issue 22), else the kind's default."""
    from makemore.data import UserError

    try:
        return make_config(kind, "makemore")
    except (UserError, TypeError):  # no such preset (ConfigError), or a release whose make_config takes none
        return make_config(kind)


def measure(kind: str, warmup: int, steps: int) -> dict:
    """One measurement of `kind` in this process, with whichever makemore this Python imports: per-step wall
    seconds of the timed steps (the real training loop), or the whole fit of a counted kind."""
    import torch  # noqa: F401  # imported before the clock starts
    from makemore.data import Vocab, bundled_names_path, read_words, split_words
    from makemore.train.trainer import train

    try:
        from makemore.train.config import make_config
    except ImportError:  # the last release kept it in the trainer
        from makemore.train.trainer import make_config  # type: ignore[no-redef]
    try:
        from makemore.train.evaluate import EVAL_POINTS
    except ImportError:
        from makemore.train.trainer import EVAL_POINTS  # type: ignore[no-redef,attr-defined]

    words = read_words(bundled_names_path())
    vocab, split = Vocab.from_words(words), split_words(words, SPLIT_SEED)
    config = release_config(make_config, kind)
    total = config.get("steps", 0) if isinstance(config, dict) else (config.train.steps if config.train else 0)
    warmup = min(warmup, total // 2)
    stop = min(total, warmup + steps)
    eval_every = max(1, total // EVAL_POINTS)
    stamps: list[float] = []
    reporter = _StepClock(stamps, stop)
    started = time.perf_counter()
    try:
        train(kind, config, split, vocab, reporter=reporter)
    except Enough:
        pass
    if not stamps:  # counted: one fit
        return {"seconds": [time.perf_counter() - started], "counted": True}
    timed = [
        stamps[i] - stamps[i - 1] for i in range(max(1, warmup), len(stamps)) if (i + 1) % eval_every != 0
    ]  # stamps[i] ends step i + 1; a step where (step) % eval_every == 0 also measured the val loss
    return {"seconds": timed, "counted": False}


class _StepClock(Reporter):
    """A silent reporter that stamps the end of each step and stops the run after `stop` steps."""

    def __init__(self, stamps: list[float], stop: int) -> None:
        self.stamps, self.stop = stamps, stop

    @contextmanager
    def steps(self, total: int) -> Iterator[Callable[[object], None]]:
        def on_step(progress: object) -> None:
            self.stamps.append(time.perf_counter())
            if len(self.stamps) >= self.stop:
                raise Enough

        yield on_step


def run_worker(python: str, checkout: Path, kind: str, args: argparse.Namespace) -> dict:
    """One measurement in a fresh process of `python` in `checkout` (which decides the makemore it imports)."""
    command = [python, str(Path(__file__).resolve()), "--worker", kind, "--steps", str(args.steps)]
    command += ["--warmup", str(args.warmup)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    done = subprocess.run(command, cwd=checkout, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def gemm_flops_per_second(size: int = GEMM_SIZE, repeats: int = 5) -> float:
    """torch's float32 matrix-multiply rate on its threads: the median of `repeats` products of size x size."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times)


def train_lengths() -> list[int]:
    """The target tokens of each training word (its characters and the end boundary)."""
    from makemore.data import bundled_names_path, read_words, split_words

    return [len(word) + 1 for word in split_words(read_words(bundled_names_path()), SPLIT_SEED).train]


def useful_tokens(kind: str, lengths: list[int]) -> float:
    """Expected useful target tokens in a training step: batch rows times the mean word's tokens (sequences),
    batch rows (windows: one target each), every training example (full batch)."""
    from makemore.train.kinds import kind_spec

    spec = kind_spec(kind)
    if spec.counted:
        return 0.0
    batch = spec.defaults.train.batch_size if spec.defaults.train else None
    if batch is None:
        return float(sum(lengths))
    return batch * statistics.fmean(lengths) if spec.sequence else float(batch)


def forward_macs_per_token(kind: str, vocab_size: int, lengths: list[int]) -> float | None:
    """Multiply-adds of the matrix products per useful target token, from the timed config (module doc)."""
    from makemore.train.config import make_config
    from makemore.train.config_types import MLPConfig, RecurrentConfig, TransformerConfig, WaveNetConfig
    from makemore.train.kinds import GATES, levels

    m, v = release_config(make_config, kind).model, vocab_size  # the config that is timed
    if isinstance(m, RecurrentConfig):
        widths = [m.n_embd] + [m.n_hidden] * (m.n_layer - 1)
        return sum(GATES[kind] * m.n_hidden * (width + m.n_hidden) for width in widths) + m.n_hidden * v
    if isinstance(m, TransformerConfig):
        attended = sum(n * (n + 1) / 2 for n in lengths) / sum(lengths)  # position i attends to i positions
        return m.n_layer * (12 * m.n_embd**2 + 2 * m.n_embd * attended) + m.n_embd * v
    if isinstance(m, MLPConfig):
        return m.block_size * m.n_embd * m.n_hidden + m.n_hidden * v
    if isinstance(m, WaveNetConfig):
        rows, width, macs = m.block_size // 2, m.n_embd, 0
        for _ in range(levels(m.block_size)):
            macs += rows * 2 * width * m.n_hidden
            rows, width = rows // 2, m.n_hidden
        return macs + m.n_hidden * v
    return None  # bigram-nn (a lookup), bigram (counted), a family without a formula here


def row(kind: str, seconds: float, tokens: float, macs: float | None, peak: float) -> list[object]:
    """One row of the table from a step's median seconds (a counted kind: its whole fit)."""
    if macs is None and tokens == 0:
        return [kind, f"fit: {seconds * 1000:,.0f}", "-", "-", "-", "-", "-"]
    flops = None if macs is None else 6 * macs * tokens
    rate = None if flops is None else flops / seconds
    return [
        kind,
        f"{seconds * 1000:.2f}",
        f"{tokens:,.0f}",
        f"{tokens / seconds:,.0f}",
        "-" if flops is None else f"{flops / 1e6:,.1f}",
        "-" if rate is None else f"{rate / 1e9:.2f}",
        "-" if rate is None else f"{rate / peak:.1%}",
    ]


def median_step(result: dict) -> float:
    """The median over a measurement's timed steps (robust to a step the machine's other jobs slowed)."""
    return statistics.median(result["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=20, help="steps left out first")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per kind (and per checkout)")
    parser.add_argument("--kinds", default="", help="comma-separated kinds (default: every kind of the registry)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's, the cores)")
    parser.add_argument("--against", type=Path, help="another checkout, measured alternately with this one")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(measure(args.worker, args.warmup, args.steps)))
        return
    report(args)


def report(args: argparse.Namespace) -> None:
    """Measure the kinds (alternating with --against), print the Markdown table."""
    import torch
    from makemore.data import Vocab, bundled_names_path, read_words
    from makemore.train.kinds import MODEL_KINDS

    kinds = [k for k in args.kinds.split(",") if k] or list(MODEL_KINDS)
    vocab_size, lengths = Vocab.from_words(read_words(bundled_names_path())).size, train_lengths()
    other = str(args.against / ".venv" / "bin" / "python") if args.against else None
    loads, peaks, rows = [], [], []
    for kind in kinds:
        new, old = [], []
        for _ in range(args.repeats):
            peaks.append(gemm_flops_per_second())
            new.append(median_step(run_worker(sys.executable, ROOT, kind, args)))
            if other:
                old.append(median_step(run_worker(other, args.against, kind, args)))
            so_far = f"{new[-1] * 1000:.1f} ms" + (f" (against: {old[-1] * 1000:.1f} ms)" if other else "")
            print(f"{kind}: {so_far}", file=sys.stderr, flush=True)
            loads.append(os.getloadavg()[0])
        rows.append((kind, statistics.median(new), statistics.median(old) if old else None, new, old))
    peak = statistics.median(peaks)
    print(f"Machine: {machine()}, torch {torch.__version__} on {torch.get_num_threads()} threads.")
    print(f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; load average at the end {load_average()},")
    print(f"1-minute load during the measurements {min(loads):.1f} to {max(loads):.1f}; float32 GEMM peak")
    print(f"(torch.mm, {GEMM_SIZE}^2) {peak / 1e9:.1f} GFLOP/s; medians of {args.repeats} measurements of")
    print(f"{args.steps} steps each.")
    print()
    headers = HEADERS + (["against: ms/step", "speed-up"] if other else [])
    table = []
    for kind, seconds, old_seconds, _, _ in rows:
        cells = row(
            kind, seconds, useful_tokens(kind, lengths), forward_macs_per_token(kind, vocab_size, lengths), peak
        )
        if other and old_seconds is not None:
            cells += [f"{old_seconds * 1000:.2f}", f"{old_seconds / seconds:.2f}x"]
        table.append(cells)
    print(markdown_table(headers, table))
    if other:
        print()
        for kind, _, _, new, old in rows:
            pairs = ", ".join(f"{o * 1000:.1f}/{n * 1000:.1f}" for n, o in zip(new, old, strict=True))
            ratio = statistics.median(o / n for n, o in zip(new, old, strict=True))
            print(f"- {kind}: against/this ms per step, pair by pair: {pairs}; median pair ratio {ratio:.2f}x")


if __name__ == "__main__":
    main()
