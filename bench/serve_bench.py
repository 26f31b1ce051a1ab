"""Throughput and latency of mm-serve on loopback: N requests from C concurrent keep-alive clients.

    .venv/bin/python bench/serve_bench.py out/model.onnx [--requests 2000] [--clients 16] [--n 10] [--workers 1 2]

For each number of server processes (mm-serve --workers, default 1 and 2, one after the other): requests/s and
latency percentiles, then a Markdown table with a row per number of workers.
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

from loopback import run_load, running_server  # noqa: E402


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), or what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, nargs="?", default=Path("out/model.onnx"))
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--n", type=int, default=10, help="names per request")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="mm-serve --workers values, side by side (default 1 2)"
    )
    args = parser.parse_args()
    if not args.model.is_file():
        raise SystemExit(f"error: model file not found: {args.model} (make demo writes out/model.onnx)")

    def body(i: int) -> dict:
        return {"n": args.n, "seed": i}

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    machine = f"{cpu_model()}, {os.cpu_count()} logical cores, Python {platform.python_version()}"
    rows, failed = [], 0
    for workers in args.workers:
        with running_server(args.model, "--workers", str(workers)) as port:
            run_load(port, min(200, args.requests), args.clients, body)  # warm-up: connections, thread pool
            result = run_load(port, args.requests, args.clients, body)
        bad = len(result.errors) + sum(reply.status != 200 for reply in result.replies)
        failed += bad
        p50, p99 = (result.latency_quantile(q) * 1000 for q in (0.5, 0.99))
        print(f"--workers {workers}: {args.requests} requests of {args.n} names, {args.clients} clients: {bad} failed")
        print(f"  {result.requests_per_second:.0f} requests/s, {result.requests_per_second * args.n:.0f} names/s")
        print(f"  latency p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        rows.append(
            f"| {machine} | {workers} | {args.requests} | {args.clients} | {args.n} | {result.requests_per_second:.0f}"
            f" | {p50:.1f} ms | {p99:.1f} ms | {bad} |"
        )
    print(f"machine: {machine} (1-minute load average before the run: {load:.1f}, after: {os.getloadavg()[0]:.1f})")
    print("\n| machine | workers | requests | clients | names/request | requests/s | p50 | p99 | failed |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
