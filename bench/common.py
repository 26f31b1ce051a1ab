"""Shared by the benchmark scripts: the machine, median timings, trained models, Markdown tables."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MODELS = ROOT / "out" / "bench"


def machine() -> str:
    """CPU model, cores, Python and key package versions, for the header of every table."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numpy
    import onnxruntime

    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {numpy.__version__}, onnxruntime {onnxruntime.__version__}"
    )


def call_seconds(fn: Callable[[], object], runs: int) -> list[float]:
    """Wall seconds of each of `runs` calls of `fn`."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def median_time(fn: Callable[[], object], repeats: int = 5) -> float:
    """Median wall seconds of `repeats` calls (after one warm-up call)."""
    fn()
    return statistics.median(call_seconds(fn, repeats))


def budget_median_time(fn: Callable[[], object], repeats: int = 5, budget: float = 60.0) -> float:
    """Median wall seconds of up to `repeats` calls after a timed warm-up call, in about `budget` seconds.

    Fewer calls where the warm-up shows `repeats` would take longer (at least one); when the warm-up alone
    took `budget` or more, it is the measurement (a call of minutes has nothing left to warm up).
    """
    (first,) = call_seconds(fn, 1)
    runs = min(repeats, int(budget / first))
    return statistics.median(call_seconds(fn, runs)) if runs >= 1 else first


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, for the header of a table measured on a shared machine."""
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def trained_model(kind: str, *extra: str) -> tuple[Path, Path]:
    """(model.pt, model.onnx) of `kind` with default settings, trained once into out/bench/."""
    MODELS.mkdir(parents=True, exist_ok=True)
    pt, onnx_path = MODELS / f"{kind}.pt", MODELS / f"{kind}.onnx"
    if not pt.exists():
        subprocess.run([BIN / "mm-train", kind, "--out", pt, "--quiet", *extra], check=True)
    if not onnx_path.exists():
        subprocess.run([BIN / "mm-export", pt, onnx_path], check=True)
    return pt, onnx_path


def markdown_table(headers: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


RESULTS_PAGE = ROOT / "docs" / "results.md"


def write_results_section(name: str, text: str, page: Path = RESULTS_PAGE) -> None:
    """Replace the generated section `name` of the results page (between its begin/end markers) by `text`;
    a page without that section gets it appended. The rest of the page (runs written by hand) is kept."""
    begin, end = f"<!-- begin generated: {name} -->", f"<!-- end generated: {name} -->"
    block = f"{begin}\n{text.strip()}\n{end}"
    current = page.read_text() if page.exists() else "# Results\n"
    if begin in current and end in current:
        head, rest = current.split(begin, 1)
        current = head + block + rest.split(end, 1)[1]
    else:
        current = current.rstrip() + "\n\n" + block + "\n"
    page.write_text(current)
