"""mm-serve with clients that leave before their answers: this tree against another version, side by side.

    python bench/abandoned_requests.py MODEL.onnx [--against DIR] [--rounds 3] [--abandoned 6]

`--against DIR`: a folder holding another version's `makemore` package (its data, contract, runtime, train and
export folders under DIR/makemore), imported instead of this tree's by the same python (e.g. the last commit's:
`git archive HEAD~1 data contract runtime train export | tar -x -C DIR/makemore`, with this tree's
`makemore/__init__.py`). Each round starts each version's server in turn and sends it `--abandoned` generate
requests of 10,000 names of at least 250 characters, whose clients leave 0.3 s later; then it times a request of 3
names, and counts the server's CPU seconds from the clients' leaving to 5 s after. Prints a Markdown table of the
medians, and the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from loopback import cpu_seconds, running_server, sent_generate

HEAVY = {"n": 10_000, "min_len": 250, "max_len": 256, "seed": 1}
SMALL = {"n": 3, "seed": 1}


def one_round(model: Path, abandoned: int) -> tuple[float, float]:
    """(seconds to the answer of a small request after `abandoned` clients left, server CPU seconds in the 5 s
    after they left)."""
    pids: list[int] = []
    with running_server(model, pids=pids) as port:
        socks = [sent_generate(port, HEAVY) for _ in range(abandoned)]
        time.sleep(0.3)
        for sock in socks:
            sock.close()
        left, cpu = time.monotonic(), cpu_seconds(pids[0])
        with sent_generate(port, SMALL) as sock:
            assert sock.recv(12) == b"HTTP/1.1 200"
        answered = time.monotonic() - left
        time.sleep(max(0.0, left + 5 - time.monotonic()))
        return answered, cpu_seconds(pids[0]) - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--against", type=Path, help="a folder holding another version's makemore package")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--abandoned", type=int, default=6)
    args = parser.parse_args()
    versions = {"this tree": None, **({f"against ({args.against})": args.against} if args.against else {})}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in versions}
    print(f"load average before: {os.getloadavg()}", file=sys.stderr)
    for _ in range(args.rounds):
        for name, folder in versions.items():
            saved = os.environ.get("PYTHONPATH")
            if folder is not None:
                os.environ["PYTHONPATH"] = str(folder)  # the server's process imports that version
            try:
                results[name].append(one_round(args.model, args.abandoned))
            finally:
                if saved is None:
                    os.environ.pop("PYTHONPATH", None)
                else:
                    os.environ["PYTHONPATH"] = saved
            print(name, results[name][-1], file=sys.stderr)
    print("| version | next answer after the clients left (s) | server CPU in the 5 s after (s) |")
    print("|---|---|---|")
    for name, rows in results.items():
        print(f"| {name} | {statistics.median(r[0] for r in rows):.3f} | {statistics.median(r[1] for r in rows):.2f} |")
    print(f"load average after: {os.getloadavg()}", file=sys.stderr)


if __name__ == "__main__":
    main()
