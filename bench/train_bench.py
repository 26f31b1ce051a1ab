"""Train the default MLP on the bundled names and print wall time and losses.

python bench/train_bench.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402
from makemore.data import Vocab, bundled_names_path, read_words, split_words  # noqa: E402
from makemore.train.config import make_config  # noqa: E402
from makemore.train.trainer import train  # noqa: E402


def train_default() -> dict:
    """Train `mm-train mlp`'s default config; wall seconds (data prep included) and losses."""
    start = time.perf_counter()
    words = read_words(bundled_names_path())
    config = make_config("mlp")
    result = train("mlp", config, split_words(words, 42), Vocab.from_words(words))
    return {"seconds": time.perf_counter() - start, **result.metrics}


def main() -> None:
    print(f"Machine: {machine()}")
    print(f"Config: {make_config('mlp').flat()}")
    r = train_default()
    losses = ", ".join(f"{name} {r[f'{name}_loss']:.4f}" for name in ("train", "val", "test"))
    print(f"default mlp: {r['seconds']:.1f} s; {losses}")


if __name__ == "__main__":
    main()
