"""Step models' sampling speed, this tree against another checkout (the last release), side by side in one run.

    python bench/sample_speed.py --old-root /work/wt/old --old-python /work/wt/old/.venv/bin/python \\
        --pair transformer OLD.onnx NEW.onnx --pair gru OLD.onnx NEW.onnx [--n 10000] [--pairs 5]

Each --pair names a kind, the file the old checkout samples (exported by it, or by an exporter of its graph) and
the file this tree samples (exported by this tree). Every measurement is a fresh process (old code: the old
checkout's python, run in its folder; new code: this tree's) sampling n names with one worker after a warm-up;
old and new alternate (A B A B ...). Prints, per kind, the medians of wall-clock names/s and of names per CPU
second (the process's user + system time: what one core does, whatever else shares the machine), their ratios, and
the load average before and after. Both sides must give the same names for the same seed (parity) where both
sample the same file; with files of different graphs they may differ by a rounding flip, and the script says how
many names differ.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = 1
# One measurement, run by either checkout's python in its own folder (both import makemore.* from there).
CHILD = """
import json, sys, time, zlib
from makemore.runtime.onnx_sampler import OnnxSampler
sampler = OnnxSampler(sys.argv[1], workers=1)
sampler.sample(500, seed=0)
wall, cpu = time.perf_counter(), time.process_time()
names = sampler.sample(int(sys.argv[2]), seed=int(sys.argv[3]))
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print(json.dumps({"wall": wall, "cpu": cpu, "crc": zlib.crc32("\\n".join(names).encode()), "names": names[:2000]}))
"""


def measure(python: str, root: Path, model: Path, n: int) -> dict:
    """One fresh process sampling n names of `model` with one worker: wall and CPU seconds, a checksum of the names."""
    env = {**os.environ, "ORT_DISABLE_TELEMETRY": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [python, "-c", CHILD, str(model), str(n), str(SEED)], cwd=root, env=env, capture_output=True, text=True
    )
    if done.returncode:
        sys.exit(f"error: {python} failed on {model}: {done.stderr.strip().splitlines()[-1:]}")
    result: dict = json.loads(done.stdout)
    return result


def load_average() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def compare(kind: str, old: Path, new: Path, args: argparse.Namespace) -> str:
    """`pairs` interleaved old/new measurements of one kind: a Markdown table row with medians and ratios."""
    runs: dict[str, list[dict]] = {"old": [], "new": []}
    for _ in range(args.pairs):
        runs["old"].append(measure(args.old_python, args.old_root, old.resolve(), args.n))
        runs["new"].append(measure(sys.executable, ROOT, new.resolve(), args.n))
    wall = {side: statistics.median(args.n / r["wall"] for r in rs) for side, rs in runs.items()}
    cpu = {side: statistics.median(args.n / r["cpu"] for r in rs) for side, rs in runs.items()}
    old_names, new_names = runs["old"][0]["names"], runs["new"][0]["names"]
    differ = sum(a != b for a, b in zip(old_names, new_names, strict=True))
    return (
        f"| {kind} | {wall['old']:,.0f} | {wall['new']:,.0f} | {wall['new'] / wall['old']:.2f}x"
        f" | {cpu['old']:,.0f} | {cpu['new']:,.0f} | {cpu['new'] / cpu['old']:.2f}x"
        f" | {differ} of {len(old_names)} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-root", type=Path, required=True)
    parser.add_argument("--old-python", required=True)
    parser.add_argument("--pair", nargs=3, action="append", metavar=("KIND", "OLD", "NEW"), required=True)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    before = load_average()
    rows = [compare(kind, Path(old), Path(new), args) for kind, old, new in args.pair]
    print(f"n = {args.n:,}, one worker, {args.pairs} interleaved pairs, medians; load {before} -> {load_average()}")
    columns = ["kind", "old names/s", "new names/s", "ratio", "old names/CPU-s", "new names/CPU-s", "ratio", "differ"]
    print("\n| " + " | ".join(columns) + " |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
