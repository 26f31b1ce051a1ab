"""The results table: every model kind with its default config, and the mlp and wavenet quantized to int8.

    python bench/results.py [--models out/bench] [--out docs/results.md]

Trains each kind's default (`mm-train KIND`) unless --models already holds KIND.pt, exports it
(`mm-export`; mlp and wavenet also with --quantize int8), and prints a Markdown table: parameters, val loss
(the runtime's, as `mm-eval` reports it), ONNX file size and sampling speed (OnnxSampler.sample of
10,000 names, median of 3), with the machine.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import machine, markdown_table, median_time, trained_model  # noqa: E402
from makemore.data import bundled_names_path, read_words  # noqa: E402
from makemore.runtime.novelty import model_split  # noqa: E402
from makemore.runtime.onnx_sampler import OnnxSampler  # noqa: E402

KINDS = ("bigram", "bigram-nn", "mlp", "wavenet")
QUANTIZED = ("mlp", "wavenet")  # kinds also shown as int8
NAMES = 10_000


def int8_model(pt: Path) -> Path:
    """The int8 export of a checkpoint, beside it (made once)."""
    from makemore.export.onnx_export import export_checkpoint

    out = pt.with_suffix(".int8.onnx")
    if not out.exists():
        export_checkpoint(pt, out, quantize="int8")
    return out


def param_count(pt: Path) -> int:
    from makemore.train.checkpoint import load_checkpoint, load_model

    return sum(p.numel() for p in load_model(load_checkpoint(pt)).parameters())


def row(label: str, pt: Path, onnx_path: Path, words: list[str]) -> list[object]:
    """kind, params, val loss (on the model's own split of `words`), ONNX size, names/s of one model file."""
    sampler = OnnxSampler(onnx_path)
    val = model_split(sampler.info, words).val
    seconds = median_time(lambda: sampler.sample(NAMES, seed=0), repeats=3)
    return [
        label,
        f"{param_count(pt):,}",
        f"{sampler.nll(val):.4f}",
        f"{onnx_path.stat().st_size / 1024:.1f} KiB",
        f"{NAMES / seconds:,.0f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=common.MODELS, help="folder of KIND.pt (trained if missing)")
    parser.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    args = parser.parse_args()
    common.MODELS = args.models  # where trained_model() looks for and writes the checkpoints
    words = read_words(bundled_names_path())
    rows = []
    for kind in KINDS:
        pt, onnx_path = trained_model(kind)
        rows.append(row(kind, pt, onnx_path, words))
        if kind in QUANTIZED:
            rows.append(row(f"{kind} int8", pt, int8_model(pt), words))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    text = "\n".join(
        [
            f"Machine: {machine()}; load average (1, 5, 15 min) at the end of the run: {load}.",
            f"Each kind with its default config; val loss as `mm-eval` reports it; names/s = "
            f"OnnxSampler.sample({NAMES:,}) names per second, median of 3.",
            "",
            markdown_table(["kind", "params", "val loss", "ONNX size", "names/s"], rows),
        ]
    )
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
